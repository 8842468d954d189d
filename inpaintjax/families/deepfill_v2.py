"""DeepFill v2 (Yu et al., "Free-Form Image Inpainting with Gated Convolution", ICCV 2019).

Gated-conv coarse-to-fine generator with contextual attention, SN-PatchGAN, hinge loss; optional
sketch/edge guidance. Training follows the released trainer (JiahuiYu/generative_inpainting,
`inpaint_model.py::build_graph_with_losses`, `inpaint.yml`, `train.py`): per iteration one discriminator step, then one generator step; Adam lr 1e-4, betas (0.5, 0.999)
for both networks;
  D loss = 0.5 mean(relu(1 - D(real))) + 0.5 mean(relu(1 + D(fake)))
  G loss = l1_alpha * (mean|x - stage1| + mean|x - stage2|) + gan_alpha * -mean(D(fake))
where fake = the composited image stage2 * mask + x * (1 - mask), and D sees [image, mask(, guide)].
Images enter the networks in [-1, 1] (the batch's [0, 1] RGB is mapped at this boundary).

Config keys read (see configs/deepfill_v2.py): model.cnum, model.d_cnum, model.guided,
loss.l1_alpha, loss.gan_alpha, model.edge_sigma (guided), optim.* (families/common.py),
compute_dtype, remat, ema_decay. Whether a batch shares one mask is the input pipeline's choice
(`mask.per_batch`); the family uses each row's own mask.

Deviation from the original trainer: the D step and the G step of one iteration use the same
batch and mask (the original dequeued a fresh batch for each, as `batches_per_step = 2` would);
the widely used PyTorch port (nipponjo/deepfillv2-pytorch) does the same, and it halves the input
pipeline's work per step.

With loss.gan_alpha = 0 (the demo) a step is the generator's L1 update alone: the discriminator is
not run, its parameters and optimiser state stay as initialised, and no d/* metric is logged.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from inpaintjax import losses
from inpaintjax.config import base_config
from inpaintjax.data import fields
from inpaintjax.families import common
from inpaintjax.families.base import Batch, Family, Metrics, WeightFormat, register
from inpaintjax.models.deepfill import DeepFillV2Generator
from inpaintjax.models.discriminators import SNPatchGAN


@flax.struct.dataclass
class DeepFillV2State:
    """Train state: both networks' parameters, the SN power-iteration vectors of D (flax
    `batch_stats`: u and sigma per layer), both Adam states and the generator's EMA (None when
    config.ema_decay is 0)."""

    step: jax.Array
    g_params: Any
    d_params: Any
    d_batch_stats: Any
    g_opt_state: Any
    d_opt_state: Any
    g_ema: Any = None


def default_config(cnum: int = 48, guided: bool = False) -> ml_collections.ConfigDict:
    """The released model's settings on top of the base config; used when only weights are at
    hand (official checkpoints). Training runs use configs/deepfill_v2.py."""
    c = base_config()
    c.family = "deepfill_v2"
    c.model.cnum = cnum
    c.model.d_cnum = 64
    c.model.guided = guided
    c.model.edge_sigma = 2.0     # guided: Canny sigma of the training sketch (0 = random 1..4, -1 = none)
    c.loss.l1_alpha = 1.0
    c.loss.gan_alpha = 1.0
    c.optim.lr = 1e-4
    c.optim.b1 = 0.5
    c.optim.b2 = 0.999
    return c


def config_for_weights(weights) -> ml_collections.ConfigDict:
    """The run config for converted official weights (`convert.deepfill.DeepFillWeights`): the
    released settings with the widths and guidance the checkpoint holds."""
    c = default_config(cnum=weights.cnum, guided=weights.guided)
    if weights.d_cnum:
        c.model.d_cnum = weights.d_cnum
    return c


def _load_official(path: str):
    from inpaintjax.convert.deepfill import from_tf_checkpoint
    weights = from_tf_checkpoint(path, version=2, discriminator=False)
    return config_for_weights(weights), weights.generator


def _is_official(path: str) -> bool:
    from inpaintjax.convert.deepfill import tf_checkpoint_version
    return tf_checkpoint_version(path) == 2


@register
class DeepFillV2(Family):
    """The DeepFill v2 family (see the module docstring)."""

    name = "deepfill_v2"
    size_multiple = 8
    weight_formats = (WeightFormat("tf1-checkpoint", _is_official, _load_official),)
    warm_start_paths = ("g_params", "d_params", "d_batch_stats")
    ema_paths = (("g_ema", "g_params"),)

    def __init__(self, config):
        super().__init__(config)
        m = config.model
        self.guided = bool(m.guided)
        self.edge_sigma = float(m.edge_sigma)
        dtype = common.compute_dtype(config)
        self.generator = DeepFillV2Generator(cnum=m.cnum, guided=self.guided, dtype=dtype,
                                             remat=bool(config.remat))
        self.discriminator = SNPatchGAN(cnum=int(m.d_cnum), dtype=dtype)
        self.l1_alpha = float(config.loss.l1_alpha)
        self.gan_alpha = float(config.loss.gan_alpha)
        steps = int(config.num_steps)
        self.g_tx = common.make_optimizer(config.optim, steps)
        self.d_tx = common.make_optimizer(config.optim, steps)
        self.ema_decay = common.ema_decay(config)

    @classmethod
    def default_config(cls) -> ml_collections.ConfigDict:
        return default_config()

    def batch_spec(self) -> dict:
        spec = fields.default_spec()
        if self.guided:  # the sketch stand-in: Canny edges of the ground truth (kept in the hole)
            spec["guide"] = fields.canny_edges(self.edge_sigma)
        return spec

    # -- inputs ---------------------------------------------------------------------------------
    def _inputs(self, batch: Batch):
        """image in [-1, 1], each row's own mask (whether masks are shared by the batch is the
        input pipeline's choice, `mask.per_batch`), guide restricted to the hole."""
        image = batch["image"].astype(jnp.float32) * 2.0 - 1.0
        mask = batch["mask"].astype(jnp.float32)
        guide = batch["guide"].astype(jnp.float32) * mask if self.guided else None
        return image, mask, guide

    def _d_input(self, image, mask, guide):
        parts = [image, mask] + ([guide] if guide is not None else [])
        return jnp.concatenate(parts, axis=-1)

    # -- Family interface -----------------------------------------------------------------------
    def init_state(self, rng: jax.Array, batch: Batch) -> DeepFillV2State:
        image, mask, guide = self._inputs(batch)
        g_rng, d_rng = jax.random.split(common.param_key(rng))
        g_params = self.generator.init(g_rng, image, mask, guide)["params"]
        d_vars = self.discriminator.init(d_rng, self._d_input(image, mask, guide))
        return DeepFillV2State(
            step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_vars["params"],
            d_batch_stats=d_vars["batch_stats"], g_opt_state=self.g_tx.init(g_params),
            d_opt_state=self.d_tx.init(d_vars["params"]),
            g_ema=common.ema_init(g_params, self.ema_decay))

    def _discriminator_update(self, state: DeepFillV2State, image, mask, guide):
        """One hinge update of D on real and (fixed) composited fake images: (new params, new
        optimiser state, spectral-norm vectors after the call, metrics)."""
        _, stage2 = self.generator.apply({"params": state.g_params}, image, mask, guide)
        fake = jax.lax.stop_gradient(stage2 * mask + image * (1.0 - mask))

        def d_loss_fn(d_params):
            x = self._d_input(jnp.concatenate([image, fake]), jnp.concatenate([mask, mask]),
                              None if guide is None else jnp.concatenate([guide, guide]))
            out, upd = self.discriminator.apply(
                {"params": d_params, "batch_stats": state.d_batch_stats}, x,
                update_stats=True, mutable=["batch_stats"])
            pos, neg = jnp.split(out, 2)
            return losses.hinge_d(pos, neg), (upd["batch_stats"], jnp.mean(pos), jnp.mean(neg))

        (d_loss, (d_stats, d_real, d_fake)), d_grads = jax.value_and_grad(
            d_loss_fn, has_aux=True)(state.d_params)
        d_params, d_opt_state = common.apply_gradients(self.d_tx, d_grads, state.d_opt_state,
                                                       state.d_params)
        return d_params, d_opt_state, d_stats, {
            "d/hinge": d_loss, "d/real": d_real, "d/fake": d_fake,
            "d/grad_norm": optax.tree.norm(d_grads)}

    def train_step(self, state: DeepFillV2State, batch: Batch, rng: jax.Array,
                   frozen: Any) -> tuple[DeepFillV2State, Metrics]:
        del rng, frozen  # masks come from the pipeline; nothing here is random or frozen
        image, mask, guide = self._inputs(batch)
        adversarial = self.gan_alpha != 0
        # with gan_alpha 0 the discriminator would not change the generator's update, so it is
        # neither run nor trained (its parameters stay as they are in the state)
        d_params, d_opt_state, d_stats, metrics = (
            self._discriminator_update(state, image, mask, guide) if adversarial
            else (state.d_params, state.d_opt_state, state.d_batch_stats, {}))

        # generator step against the updated discriminator
        def g_loss_fn(g_params):
            s1, s2 = self.generator.apply({"params": g_params}, image, mask, guide)
            l1_s1, l1_s2 = losses.l1(image, s1), losses.l1(image, s2)
            total = self.l1_alpha * (l1_s1 + l1_s2)
            if not adversarial:
                return total, (d_stats, l1_s1, l1_s2, {})
            complete = s2 * mask + image * (1.0 - mask)
            neg, upd = self.discriminator.apply(
                {"params": d_params, "batch_stats": d_stats}, self._d_input(complete, mask, guide),
                update_stats=True, mutable=["batch_stats"])
            gan = losses.hinge_g(neg)
            return total + self.gan_alpha * gan, (upd["batch_stats"], l1_s1, l1_s2, {"g/gan": gan})

        (g_loss, (d_stats, l1_s1, l1_s2, gan_logs)), g_grads = jax.value_and_grad(
            g_loss_fn, has_aux=True)(state.g_params)
        g_params, g_opt_state = common.apply_gradients(self.g_tx, g_grads, state.g_opt_state,
                                                       state.g_params)

        new_state = state.replace(step=state.step + 1, g_params=g_params, d_params=d_params,
                                  d_batch_stats=d_stats, g_opt_state=g_opt_state,
                                  d_opt_state=d_opt_state,
                                  g_ema=common.ema_update(state.g_ema, g_params, self.ema_decay))
        metrics.update({"g/loss": g_loss, "g/l1_stage1": l1_s1, "g/l1_stage2": l1_s2, **gan_logs,
                        "g/grad_norm": optax.tree.norm(g_grads),
                        "g/lr": common.learning_rate(g_opt_state)})
        return new_state, metrics

    def inference_variables(self, state: DeepFillV2State) -> Any:
        return {"params": state.g_params if state.g_ema is None else state.g_ema}

    def inference_inputs(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """image and mask; for a guided model also 'guide' [B,H,W,1] inside the hole: the user's
        'sketch', else the batch's ground-truth 'guide' (evaluation, previews), else none."""
        out = super().inference_inputs(batch)
        if self.guided:
            guide = batch.get("sketch", batch.get("guide"))
            guide = np.zeros_like(out["mask"]) if guide is None else np.asarray(guide, np.float32)
            out["guide"] = guide * out["mask"]
        return out

    def inpaint(self, variables: Any, inputs: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """inputs: image [B,H,W,3] in [0,1], mask [B,H,W,1] in {0,1} (1 = hole), and guide
        [B,H,W,1] for a guided model. Returns 'output' (composited, known pixels equal to the
        input), 'stage1' (raw coarse output), 'flow' (attention offsets, bilinearly up-sampled),
        all [B,H,W,3] in [0,1]."""
        image = inputs["image"].astype(jnp.float32)
        mask = inputs["mask"].astype(jnp.float32)
        guide = inputs["guide"].astype(jnp.float32) if self.guided else None
        stage1, stage2, flow = self.generator.apply(variables, image * 2.0 - 1.0, mask, guide,
                                                    return_flow=True)
        out = (stage2 + 1.0) * 0.5
        b, h, w, _ = image.shape
        return {
            # a select, not a blend: known pixels come back bit-exact whatever the network says
            "output": jnp.where(mask > 0.5, out, image),
            "stage1": (stage1 + 1.0) * 0.5,
            "flow": jax.image.resize(flow.astype(jnp.float32), (b, h, w, flow.shape[-1]),
                                     "bilinear"),
        }
