"""Partial Convolutions (Liu et al., "Image Inpainting for Irregular Holes Using Partial
Convolutions", ECCV 2018), trained as naoto0804/pytorch-inpainting-with-partial-conv (`train.py`,
`loss.py`, `opt.py`) with the paper's hole-dilated total variation.

Network: `inpaintjax.models.pconv.PConvUNet(levels)`, no discriminator. The U-Net works in
ImageNet-normalised RGB ((x - mean) / std); this family converts the batch's [0, 1] RGB at its
boundary, zeroes the hole in that space (the original data loader's gt * mask), and maps the
output back to [0, 1] for `inpaint`. The loss is computed in the normalised space, as the original:
  L = 1 valid_l1 + 6 hole_l1 + 0.05 (perc(out) + perc(comp)) + 120 (style(out) + style(comp))
      + 0.1 tv(comp on the 1-pixel dilation of the hole)
with comp = hole * out + (1 - hole) * gt and VGG-16 pool1, pool2, pool3 features
(`inpaintjax.models.vgg`) fed the same normalised tensors. The VGG is a frozen network
(`load_frozen`): config.loss.vgg_weights names torchvision's `vgg16-397923af.pth` or Keras'
`vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`; 'random' (tests, demo) uses a random VGG and
is logged as such.

Phases: phase 1 Adam 2e-4, BatchNorm in training mode; phase 2 (config.model.freeze_encoder_bn)
Adam 5e-5 with the encoder's BatchNorm on its running statistics, which stay unchanged, while its
scale and bias keep training; the phase-2 run starts from phase 1 by `config.init_from`, which
copies `params` and `batch_stats` (the Adam moments start afresh).

BatchNorm over several devices: `train_step` runs under `jax.jit` on the globally sharded batch, so
each BatchNorm's mean and variance are those of the whole global batch (all devices, all hosts),
exactly what one device would compute for the same batch; not per-device statistics (PyTorch's
DataParallel without SyncBatchNorm would compute per-device ones).

Config keys read (configs/pconv.py): model.levels, model.width, model.freeze_encoder_bn, loss.{valid, hole,
perceptual, style, tv}, loss.vgg_weights, loss.vgg_widths, optim.*, compute_dtype, remat, ema_decay.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from inpaintjax import losses
from inpaintjax.config import base_config
from inpaintjax.convert import pconv as convert
from inpaintjax.families import common
from inpaintjax.families.base import Batch, Family, Metrics, WeightFormat, register
from inpaintjax.models import vgg
from inpaintjax.models.pconv import PConvUNet

log = logging.getLogger(__name__)

VGG_LAYERS = ("pool1", "pool2", "pool3")


@flax.struct.dataclass
class PConvState:
    """Train state: U-Net parameters, its BatchNorm running statistics, Adam's state and the EMA of
    the parameters (None when config.ema_decay is 0)."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    ema: Any = None


def default_config(levels: int = 7) -> ml_collections.ConfigDict:
    """The reimplementation's phase-1 settings on the base config (the released 256x256 model has
    7 levels); training runs use configs/pconv.py."""
    c = base_config()
    c.family = "pconv"
    c.model.levels = levels
    c.model.width = 64           # enc_1's channels (published: 64; the rest scale with it)
    c.model.freeze_encoder_bn = False
    c.loss.valid = 1.0
    c.loss.hole = 6.0
    c.loss.perceptual = 0.05
    c.loss.style = 120.0
    c.loss.tv = 0.1
    c.loss.vgg_weights = ""      # path to VGG-16 weights (torchvision .pth or Keras notop .h5) | 'random'
    c.loss.vgg_widths = tuple(vgg.WIDTHS)
    c.optim.lr = 2e-4
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.mask.generator = "irregular_random_walk"
    c.mask.per_batch = False
    return c


def _load_official(path: str):
    variables = convert.from_torch(path)
    c = default_config(levels=convert.levels_of(variables))
    c.model.width = int(variables["params"]["enc_1"]["conv"]["conv"]["kernel"].shape[-1])
    return c, variables


@register
class PConv(Family):
    """The Partial Convolutions family (see the module docstring)."""

    name = "pconv"
    size_multiple = 128
    weight_formats = (WeightFormat("torch-state-dict", convert.detect, _load_official),)
    warm_start_paths = ("params", "batch_stats")
    ema_paths = (("ema", "params"),)

    def __init__(self, config):
        super().__init__(config)
        self.levels = int(config.model.levels)
        self.size_multiple = 2 ** self.levels
        self.dtype = common.compute_dtype(config)
        self.freeze_encoder_bn = bool(config.model.freeze_encoder_bn)
        self.net = PConvUNet(levels=self.levels, width=int(config.model.width),
                             freeze_encoder_bn=self.freeze_encoder_bn, dtype=self.dtype,
                             remat=bool(config.remat))
        self.vgg_weights = str(config.loss.vgg_weights)
        self.vgg_widths = tuple(int(w) for w in config.loss.vgg_widths)
        w = config.loss
        self.loss_weights = {"valid": float(w.valid), "hole": float(w.hole),
                             "perceptual": float(w.perceptual), "style": float(w.style),
                             "tv": float(w.tv)}
        self.vgg = vgg.VGG(depth=16, outputs=VGG_LAYERS, widths=self.vgg_widths, dtype=self.dtype)
        self.tx = common.make_optimizer(config.optim, int(config.num_steps))
        self.ema_decay = common.ema_decay(config)

    @classmethod
    def default_config(cls) -> ml_collections.ConfigDict:
        return default_config()

    # -- frozen VGG -----------------------------------------------------------------------------
    def load_frozen(self) -> Any:
        """{'vgg': VGG-16 variables (numpy)} from config.loss.vgg_weights (a file, or 'random')."""
        src = self.vgg_weights
        if self.freeze_encoder_bn and not self.config.init_from:
            log.warning("pconv: encoder BatchNorm frozen (fine-tuning phase) but config.init_from is "
                        "empty: the frozen statistics are a fresh network's (0 and 1)")
        return common.load_frozen_vgg("pconv", 16, src, self.vgg_widths, int(self.config.seed),
                                      "the PConv loss")

    def evaluation_label(self) -> str:
        if self.vgg_weights == "random":
            return f"{self.name} (trained with random VGG-16 loss features)"
        return self.name

    # -- inputs ---------------------------------------------------------------------------------
    @staticmethod
    def _to_net(image01, hole):
        """[0, 1] RGB -> normalised, holes zeroed (the original loader's gt * mask)."""
        b, h, w, _ = image01.shape
        if hole.ndim != 4 or hole.shape[:3] != (b, h, w) or hole.shape[3] not in (1, 3):
            raise ValueError(f"pconv: mask must be [{b}, {h}, {w}, 1] (1 = hole), the image's size, "
                             f"got {tuple(hole.shape)}")
        x = vgg.imagenet_normalise(image01.astype(jnp.float32))
        return x, x * (1.0 - hole)

    @staticmethod
    def _to_01(x):
        return x * jnp.asarray(vgg.IMAGENET_STD, x.dtype) + jnp.asarray(vgg.IMAGENET_MEAN, x.dtype)

    # -- Family interface -----------------------------------------------------------------------
    def init_state(self, rng: jax.Array, batch: Batch) -> PConvState:
        hole = batch["mask"].astype(jnp.float32)
        _, x_in = self._to_net(batch["image"], hole)
        variables = self.net.init(common.param_key(rng), x_in, hole, train=False)
        params = variables["params"]
        return PConvState(step=jnp.zeros((), jnp.int32), params=params,
                          batch_stats=variables["batch_stats"], opt_state=self.tx.init(params),
                          ema=common.ema_init(params, self.ema_decay))

    def loss_terms(self, params, batch_stats, batch: Batch, frozen: Any):
        """(total loss, (new batch_stats, {term: value})) of one training forward."""
        hole = batch["mask"].astype(jnp.float32)
        gt, x_in = self._to_net(batch["image"], hole)
        (out, _), upd = self.net.apply({"params": params, "batch_stats": batch_stats}, x_in, hole,
                                       train=True, mutable=["batch_stats"])
        comp = hole * out + (1.0 - hole) * gt
        b = gt.shape[0]
        feats = self.vgg.apply(jax.lax.stop_gradient(frozen["vgg"]),
                               jnp.concatenate([out, comp, gt]).astype(self.dtype))
        f_out, f_comp, f_gt = ([f[i * b:(i + 1) * b] for f in feats.values()] for i in range(3))
        f_gt = [jax.lax.stop_gradient(f) for f in f_gt]
        terms = {
            "valid": losses.valid_l1(out, gt, hole),
            "hole": losses.hole_l1(out, gt, hole),
            "perceptual": losses.perceptual(f_out, f_gt) + losses.perceptual(f_comp, f_gt),
            "style": losses.style(f_out, f_gt) + losses.style(f_comp, f_gt),
            "tv": losses.tv_dilated_hole(comp, hole),
        }
        total = sum(self.loss_weights[k] * terms[k] for k in terms)
        return total, (upd["batch_stats"], terms)

    def train_step(self, state: PConvState, batch: Batch, rng: jax.Array,
                   frozen: Any) -> tuple[PConvState, Metrics]:
        del rng  # masks come from the pipeline; nothing here is random
        (loss, (batch_stats, terms)), grads = jax.value_and_grad(self.loss_terms, has_aux=True)(
            state.params, state.batch_stats, batch, frozen)
        params, opt_state = common.apply_gradients(self.tx, grads, state.opt_state, state.params)
        new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                                  opt_state=opt_state,
                                  ema=common.ema_update(state.ema, params, self.ema_decay))
        metrics = {"g/loss": loss, **{f"g/{k}": v for k, v in terms.items()},
                   "g/grad_norm": optax.tree.norm(grads), "g/lr": common.learning_rate(opt_state)}
        return new_state, metrics

    def inference_variables(self, state: PConvState) -> Any:
        return {"params": state.params if state.ema is None else state.ema,
                "batch_stats": state.batch_stats}

    def inpaint(self, variables: Any, inputs: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """inputs: image [B,H,W,3] in [0,1], mask [B,H,W,1] (1 = hole). Returns 'output' (the
        network's hole pixels clipped to [0, 1], known pixels exactly the input) and 'raw' (the
        whole network output in [0, 1]), both [B,H,W,3]."""
        image = inputs["image"].astype(jnp.float32)
        hole = inputs["mask"].astype(jnp.float32)
        _, x_in = self._to_net(image, hole)
        out, _ = self.net.apply(variables, x_in, hole, train=False)
        raw = jnp.clip(self._to_01(out), 0.0, 1.0)
        return {"output": jnp.where(hole > 0.5, raw, image), "raw": raw}
