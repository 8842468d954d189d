"""Shift-Net (Yan, Li, Li, Zuo, Shan, "Shift-Net: Image Inpainting via Deep Feature Rearrangement",
ECCV 2018), trained as the authors' released PyTorch code (Zhaoyi-Yan/Shift-Net_pytorch,
`models/shift_net/shiftnet_model.py`, `options/*.py`).

Networks: `inpaintjax.models.shiftnet.ShiftNetGenerator` (`unet_shift_triple`; `model.shift='res'`
for `res_unet_shift_triple`, 'soft' for `patch_soft_unet_shift_triple` with `model.fuse`, 'flip'
for the face model `face_unet_shift_triple`, which also matches against the features of the
horizontally flipped input) and `PatchDiscriminator` (70x70 PatchGAN, spectral norm, sigmoid).
The generator works in [-1, 1]: its input is [RGB * (1 - hole), 1 - hole] (model.in_channels 4,
the released models; 3 drops the known-pixel channel), its output raw; `inpaint` composites.

One training step (the original's `optimize_parameters` order):
  1. the ground truth [RGB, 1 - hole] through the generator's levels 1..3: the guidance target
     T = ReLU(level-3 encoder feature) (the original runs the whole network for it);
  2. the masked input through the generator: fake, and the shift's decoder half F;
  3. the discriminator step on (fake, real), both cut to the hole's box when loss.hole_crop
     (centre and rectangular masks): 0.5 (BCE(D(fake), 0) + BCE(D(real), 1));
  4. the generator step against the updated discriminator, with
       L = l1 * mean|fake - real| + hole_l1 * mean|discount * (fake_c - real_c)|   (hole_crop only)
         + gan * BCE(D(fake_c), 1) + style * sum_l MSE(G(phi_l(fake_c)), G(phi_l(real_c)))
         + content * sum_l MSE(phi_l(fake_c), phi_l(real_c)) + guidance * L_g
     with phi_l VGG-16 pool1..pool3 of the raw [-1, 1] image (as the original feeds it), G the Gram
     matrix / (C H W), the discount DeepFill's (gamma 0.9) over the crop, and _c the hole-box crop
     (the whole image without hole_crop). L_g is the released InnerCos (loss.guidance_form
     'released'): the value MSE(F * m, T) with m the hole at 1/8 scale, and the gradient
     2 (F * m - T) / N into F everywhere (T is not masked, and InnerCos injects the gradient with
     respect to F * m, so known positions are pulled by -2 T / N; `guidance_loss`); 'paper' masks
     both sides, MSE(F * m, T * m), with its true gradient.
Both networks use Adam (optim.lr, b1, b2) and N(0, 0.02) initial weights, zero biases.

The discriminator runs once per step on [fake; real] (one spectral-norm power iteration) and once
in the generator step; the original calls it three times (fake, real, then fake again), each a
power iteration. The power iteration converges to the same sigma; the sequence differs slightly.

Config keys read (configs/shiftnet.py): model.{num_downs, ngf, ndf, shift, fuse, triple_weight,
in_channels}, loss.{l1, hole_l1, gan, style, content, guidance, guidance_form, hole_crop,
discount_gamma, vgg_weights, vgg_widths}, optim.*, compute_dtype, ema_decay, data.image_size.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from inpaintjax import losses
from inpaintjax.config import base_config
from inpaintjax.convert import shiftnet as convert
from inpaintjax.data import fields
from inpaintjax.families import common
from inpaintjax.families.base import Batch, Family, Metrics, WeightFormat, register
from inpaintjax.models import vgg
from inpaintjax.models.shiftnet import SHIFTS, PatchDiscriminator, ShiftNetGenerator, feature_hole

VGG_LAYERS = ("pool1", "pool2", "pool3")
GUIDANCE_FORMS = ("released", "paper")


@flax.struct.dataclass
class ShiftNetState:
    """Train state: generator parameters, discriminator variables ({'params', 'batch_stats'}: the
    spectral norm's u, v), both Adam states and the EMA of the generator (None when off)."""

    step: jax.Array
    g_params: Any
    d_vars: Any
    g_opt: Any
    d_opt: Any
    ema: Any = None


def default_config() -> ml_collections.ConfigDict:
    """The released code's defaults (`unet_shift_triple`, centre masks, 256x256) on the base config."""
    c = base_config()
    c.family = "shiftnet"
    c.model.num_downs = 8
    c.model.ngf = 64
    c.model.ndf = 64
    c.model.shift = "hard"          # 'hard' (unet_shift_triple) | 'res' (res_unet_shift_triple) |
                                    # 'soft' (patch_soft_unet_shift_triple) | 'flip' (face_unet_shift_triple)
    c.model.fuse = False            # shift='soft' only: the released `--fuse` (diagonal score fusion)
    c.model.triple_weight = 1.0     # gradient weight of the shifted features back to the encoder
    c.model.in_channels = 4         # 4: RGB + known-pixel channel (released models); 3: RGB only
    c.loss.l1 = 100.0               # lambda_A
    c.loss.hole_l1 = 400.0          # mask_weight_G, discounted L1 on the hole crop
    c.loss.gan = 0.2                # gan_weight
    c.loss.style = 10.0             # style_weight
    c.loss.content = 1.0            # content_weight
    c.loss.guidance = 1.0           # strength
    c.loss.guidance_form = "released"
    c.loss.hole_crop = True         # centre / rectangular masks: D and the hole L1 see the hole's box
    c.loss.discount_gamma = 0.9
    c.loss.vgg_weights = ""         # torchvision vgg16-397923af.pth or Keras notop .h5 | 'random'
    c.loss.vgg_widths = tuple(vgg.WIDTHS)
    c.optim.lr = 2e-4
    c.optim.b1 = 0.5
    c.optim.b2 = 0.999
    c.mask.generator = "shiftnet_center"
    c.mask.per_batch = False
    c.data.image_size = 256
    c.eval.image_size = 256
    return c


def _load_official(path: str):
    variables, info = convert.from_torch(path)
    c = default_config()
    for key in ("num_downs", "ngf", "shift", "in_channels"):
        c.model[key] = info[key]
    return c, variables


def bce(p, is_real: bool):
    """PyTorch BCELoss of probabilities p against all-1 or all-0 targets (logs clamped at -100)."""
    return losses.adversarial(p, is_real=is_real, is_disc=True, kind="nsgan")


def gram(feat):
    """[B, H, W, C] -> [B, C, C] Gram matrix / (C H W) (the original's `util.gram_matrix`)."""
    b, h, w, c = feat.shape
    f = feat.reshape(b, h * w, c).astype(jnp.float32)
    return jnp.einsum("bnc,bnd->bcd", f, f) / (c * h * w)


def guidance_loss(decoder, target, hole_small, form: str = "released"):
    """Shift-Net's guidance loss; decoder, target [B, h, w, C], hole_small [B, h, w, 1] (1 = hole);
    the mean is over every element, as torch's MSELoss.

    'released' (InnerCos): the value is MSE(decoder * m, target) and the gradient injected into the
    decoder features is 2 (decoder * m - target) / N at EVERY position, the gradient with respect to
    the product decoder * m, not to decoder (InnerCosFunction adds `former_in_mask.grad`): known
    positions are pulled by -2 target / N. 'paper': MSE(decoder * m, target * m) with its true
    gradient (zero at known positions)."""
    if form not in GUIDANCE_FORMS:
        raise ValueError(f"loss.guidance_form must be one of {GUIDANCE_FORMS}, got {form!r}")
    m = hole_small.astype(jnp.float32)
    d = decoder.astype(jnp.float32)
    t = target.astype(jnp.float32)
    if form == "paper":
        return jnp.mean(jnp.square(d * m - t * m))
    # value d * m, derivative 1 with respect to d (the original's gradient of the masked product)
    masked = jax.lax.stop_gradient(d * m) + (d - jax.lax.stop_gradient(d))
    return jnp.mean(jnp.square(masked - t))


@register
class ShiftNet(Family):
    """The Shift-Net family (see the module docstring)."""

    name = "shiftnet"
    weight_formats = (WeightFormat("torch-state-dict", convert.detect, _load_official),)
    warm_start_paths = ("g_params", "d_vars")
    ema_paths = (("ema", "g_params"),)

    def __init__(self, config):
        super().__init__(config)
        m = config.model
        self.num_downs = int(m.num_downs)
        self.size_multiple = 2 ** self.num_downs
        self.in_channels = int(m.in_channels)
        if self.in_channels not in (3, 4):
            raise ValueError(f"model.in_channels must be 4 (RGB + known-pixel channel) or 3, got {self.in_channels}")
        self.dtype = common.compute_dtype(config)
        shift = str(m.shift)
        if shift not in SHIFTS:
            raise ValueError(f"model.shift must be one of {SHIFTS}, got {shift!r}")
        if bool(m.fuse) and shift != "soft":
            raise ValueError(f"model.fuse applies to model.shift='soft' only (got shift={shift!r})")
        self.generator = ShiftNetGenerator(num_downs=self.num_downs, ngf=int(m.ngf), shift=shift,
                                           triple_weight=float(m.triple_weight), fuse=bool(m.fuse),
                                           dtype=self.dtype)
        self.discriminator = PatchDiscriminator(ndf=int(m.ndf), dtype=self.dtype)
        w = config.loss
        self.guidance_form = str(w.guidance_form)
        if self.guidance_form not in GUIDANCE_FORMS:
            raise ValueError(f"loss.guidance_form must be one of {GUIDANCE_FORMS}, got {self.guidance_form!r}")
        self.uses_vgg = float(w.style) != 0.0 or float(w.content) != 0.0
        self.hole_crop = bool(w.hole_crop)
        size = int(config.data.image_size)
        self.crop_size = size // 2 - 8   # the original's fineSize / 2 - 2 * overlap (120 at 256)
        if self.hole_crop and self.crop_size < 24:
            raise ValueError(f"loss.hole_crop needs data.image_size >= 64 (the hole crop of "
                             f"{self.crop_size} px is too small for the 70x70 PatchGAN); got {size}")
        self.vgg_widths = tuple(int(x) for x in w.vgg_widths)
        self.vgg = vgg.VGG(depth=16, outputs=VGG_LAYERS, widths=self.vgg_widths, dtype=self.dtype)
        self.g_tx = common.make_optimizer(config.optim, int(config.num_steps))
        self.d_tx = common.make_optimizer(config.optim, int(config.num_steps))
        self.ema_decay = common.ema_decay(config)
        common.no_remat(config, "shiftnet")

    @classmethod
    def default_config(cls) -> ml_collections.ConfigDict:
        return default_config()

    def batch_spec(self) -> dict:
        spec = fields.default_spec()
        if self.hole_crop:
            spec["hole_box"] = fields.hole_box()
        return spec

    # -- frozen VGG -----------------------------------------------------------------------------
    def load_frozen(self) -> Any:
        """{'vgg': VGG-16 variables} from config.loss.vgg_weights, or {} when style and content
        weights are 0 (the `paper` loss)."""
        if not self.uses_vgg:
            return {}
        return common.load_frozen_vgg("shiftnet", 16, str(self.config.loss.vgg_weights), self.vgg_widths,
                                      int(self.config.seed), "Shift-Net's style and content loss "
                                      "(or the 'paper' variant, without VGG)")

    def evaluation_label(self) -> str:
        if self.uses_vgg and str(self.config.loss.vgg_weights) == "random":
            return f"{self.name} (trained with random VGG-16 loss features)"
        return self.name

    # -- pieces ---------------------------------------------------------------------------------
    def _net_input(self, image11, hole, hide: bool = True):
        """[RGB (holes 0 when `hide`), 1 - hole] (or RGB only for in_channels 3)."""
        rgb = image11 * (1.0 - hole) if hide else image11
        if self.in_channels == 3:
            return rgb
        return jnp.concatenate([rgb, 1.0 - hole], axis=-1)

    def _crop(self, x, boxes):
        return common.crop_boxes(x, boxes, self.crop_size) if self.hole_crop else x

    def _discriminate(self, d_vars, x):
        pred, upd = self.discriminator.apply(d_vars, x.astype(self.dtype), train=True, mutable=["batch_stats"])
        return pred, {"params": d_vars["params"], "batch_stats": upd["batch_stats"]}

    # -- Family interface -----------------------------------------------------------------------
    def init_state(self, rng: jax.Array, batch: Batch) -> ShiftNetState:
        hole = batch["mask"].astype(jnp.float32)
        x = self._net_input(batch["image"].astype(jnp.float32) * 2.0 - 1.0, hole)
        kg, kd = jax.random.split(common.param_key(rng))
        g_params = self.generator.init(kg, x, hole)["params"]
        size = self.crop_size if self.hole_crop else int(batch["image"].shape[1])
        d_vars = self.discriminator.init(kd, jnp.zeros((1, size, size, 3), jnp.float32))
        d_vars = {"params": d_vars["params"], "batch_stats": d_vars["batch_stats"]}
        return ShiftNetState(step=jnp.zeros((), jnp.int32), g_params=g_params, d_vars=d_vars,
                             g_opt=self.g_tx.init(g_params), d_opt=self.d_tx.init(d_vars["params"]),
                             ema=common.ema_init(g_params, self.ema_decay))

    def generator_loss(self, fake, decoder, real, hole, boxes, target, d_vars, frozen):
        """(total, (d_vars after D's power iteration, {term: value})) of the generator's losses
        for a fake image and the shift's decoder half (see the module docstring)."""
        w = self.config.loss
        fake_c, real_c = self._crop(fake, boxes), self._crop(real, boxes)
        pred, d_vars = self._discriminate(d_vars, fake_c)
        small = feature_hole(hole, fake.shape[1] // decoder.shape[1])
        terms = {"l1": jnp.mean(jnp.abs(fake - real)),
                 "gan": bce(pred, True),
                 "guidance": guidance_loss(decoder, target, small, self.guidance_form)}
        total = w.l1 * terms["l1"] + w.gan * terms["gan"] + w.guidance * terms["guidance"]
        if self.hole_crop:
            discount = jnp.asarray(losses.spatial_discount(self.crop_size, self.crop_size,
                                                           float(w.discount_gamma)))
            terms["hole_l1"] = jnp.mean(jnp.abs(discount * (fake_c - real_c)))
            total = total + w.hole_l1 * terms["hole_l1"]
        if self.uses_vgg:
            b = fake_c.shape[0]
            feats = self.vgg.apply(jax.lax.stop_gradient(frozen["vgg"]),
                                   jnp.concatenate([fake_c, real_c]).astype(self.dtype))
            f_fake = [f[:b].astype(jnp.float32) for f in feats.values()]
            f_real = [jax.lax.stop_gradient(f[b:]).astype(jnp.float32) for f in feats.values()]
            terms["style"] = sum(jnp.mean(jnp.square(gram(a) - gram(r))) for a, r in zip(f_fake, f_real))
            terms["content"] = sum(jnp.mean(jnp.square(a - r)) for a, r in zip(f_fake, f_real))
            total = total + w.style * terms["style"] + w.content * terms["content"]
        return total, (d_vars, terms)

    def train_step(self, state: ShiftNetState, batch: Batch, rng: jax.Array,
                   frozen: Any) -> tuple[ShiftNetState, Metrics]:
        del rng  # masks come from the pipeline; nothing here is random
        real = batch["image"].astype(jnp.float32) * 2.0 - 1.0
        hole = batch["mask"].astype(jnp.float32)
        boxes = batch.get("hole_box")
        target = jax.lax.stop_gradient(self.generator.apply(
            {"params": state.g_params}, self._net_input(real, hole, hide=False), hole, target_only=True))
        x = self._net_input(real, hole)
        (fake, feats), g_vjp = jax.vjp(lambda p: self.generator.apply({"params": p}, x, hole), state.g_params)

        # discriminator step on the detached fake
        def d_loss_fn(d_params):
            both = jnp.concatenate([jax.lax.stop_gradient(self._crop(fake, boxes)), self._crop(real, boxes)])
            pred, d_vars = self._discriminate({"params": d_params, "batch_stats": state.d_vars["batch_stats"]}, both)
            b = fake.shape[0]
            d_fake, d_real = bce(pred[:b], False), bce(pred[b:], True)
            return 0.5 * (d_fake + d_real), (d_vars["batch_stats"], d_fake, d_real)

        (d_loss, (d_stats, d_fake, d_real)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
            state.d_vars["params"])
        d_params, d_opt = common.apply_gradients(self.d_tx, d_grads, state.d_opt, state.d_vars["params"])
        d_vars = {"params": d_params, "batch_stats": d_stats}

        # generator step against the updated discriminator, through the saved forward pass
        def g_loss_fn(fake_, decoder_):
            return self.generator_loss(fake_, decoder_, real, hole, boxes, target, d_vars, frozen)

        (g_loss, (d_vars, terms)), (g_fake, g_decoder) = jax.value_and_grad(
            g_loss_fn, argnums=(0, 1), has_aux=True)(fake, feats["decoder"])
        feats_cot = {k: (g_decoder if k == "decoder" else jnp.zeros_like(v)) for k, v in feats.items()}
        (g_grads,) = g_vjp((g_fake, feats_cot))
        g_params, g_opt = common.apply_gradients(self.g_tx, g_grads, state.g_opt, state.g_params)
        new_state = state.replace(step=state.step + 1, g_params=g_params, d_vars=d_vars, g_opt=g_opt,
                                  d_opt=d_opt, ema=common.ema_update(state.ema, g_params, self.ema_decay))
        metrics = {"g/loss": g_loss, **{f"g/{k}": v for k, v in terms.items()},
                   "g/grad_norm": optax.tree.norm(g_grads), "g/lr": common.learning_rate(g_opt),
                   "d/loss": d_loss, "d/fake": d_fake, "d/real": d_real,
                   "d/grad_norm": optax.tree.norm(d_grads)}
        return new_state, metrics

    def inference_variables(self, state: ShiftNetState) -> Any:
        return {"params": state.g_params if state.ema is None else state.ema}

    def inpaint(self, variables: Any, inputs: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """inputs: image [B,H,W,3] in [0,1], mask [B,H,W,1] (1 = hole). Returns 'output' (the
        generator's hole pixels, known pixels exactly the input) and 'raw' (the whole generator
        output), both [B,H,W,3] in [0, 1]."""
        image = inputs["image"].astype(jnp.float32)
        hole = inputs["mask"].astype(jnp.float32)
        out, _ = self.generator.apply(variables, self._net_input(image * 2.0 - 1.0, hole), hole)
        raw = jnp.clip((out + 1.0) / 2.0, 0.0, 1.0)
        return {"output": jnp.where(hole > 0.5, raw, image), "raw": raw}

