"""DeepFill v2 (Yu et al., "Free-Form Image Inpainting with Gated Convolution", ICCV 2019).

Gated-conv coarse-to-fine generator with contextual attention, SN-PatchGAN, hinge loss; optional
sketch/edge guidance. Training follows SPEC.md 1.7/1.9 (JiahuiYu/generative_inpainting master):
per iteration one discriminator step, then one generator step; Adam lr 1e-4, betas (0.5, 0.999)
for both networks;
  D loss = 0.5 mean(relu(1 - D(real))) + 0.5 mean(relu(1 + D(fake)))
  G loss = l1_alpha * (mean|x - stage1| + mean|x - stage2|) + gan_alpha * -mean(D(fake))
where fake = the composited image stage2 * mask + x * (1 - mask), and D sees [image, mask(, guide)].
Images enter the networks in [-1, 1] (the batch's [0, 1] RGB is mapped at this boundary).

Config keys read (see configs/deepfill_v2.py): model.cnum, model.d_cnum, model.guided,
loss.l1_alpha, loss.gan_alpha, optim.lr, optim.b1, optim.b2, mask.per_batch, compute_dtype, remat.

Deviation from the original trainer: the D step and the G step of one iteration use the same
batch and mask (the original dequeued a fresh batch for each); the family interface hands one
batch per iteration, and the PyTorch port does the same.
"""

from __future__ import annotations

from typing import Any, Optional

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from inpaintjax import losses
from inpaintjax.config import base_config
from inpaintjax.families.base import Batch, Family, Metrics, register
from inpaintjax.models.deepfill import DeepFillV2Generator
from inpaintjax.models.discriminators import SNPatchGAN


@flax.struct.dataclass
class DeepFillV2State:
    """Train state: both networks' parameters, the SN power-iteration vectors of D (flax
    `batch_stats`: u and sigma per layer) and both Adam states."""

    step: jax.Array
    g_params: Any
    d_params: Any
    d_batch_stats: Any
    g_opt_state: Any
    d_opt_state: Any


def default_config(cnum: int = 48, guided: bool = False) -> ml_collections.ConfigDict:
    """The released model's settings (SPEC.md 1.9) on top of the base config; used when only
    weights are at hand (official checkpoints). Training runs use configs/deepfill_v2.py."""
    c = base_config()
    c.family = "deepfill_v2"
    c.model.cnum = cnum
    c.model.d_cnum = 64
    c.model.guided = guided
    c.loss.l1_alpha = 1.0
    c.loss.gan_alpha = 1.0
    c.optim.lr = 1e-4
    c.optim.b1 = 0.5
    c.optim.b2 = 0.999
    return c


def _dtype(name: str):
    try:
        return {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}[name]
    except KeyError:
        raise ValueError(f"config.compute_dtype must be 'float32' or 'bfloat16', got {name!r}") from None


@register
class DeepFillV2(Family):
    """The DeepFill v2 family (see the module docstring)."""

    name = "deepfill_v2"
    size_multiple = 8

    def __init__(self, config):
        super().__init__(config)
        m = config.model
        self.guided = bool(m.guided)
        dtype = _dtype(config.get("compute_dtype", "float32"))
        self.generator = DeepFillV2Generator(cnum=m.cnum, guided=self.guided, dtype=dtype,
                                             remat=bool(config.get("remat", False)))
        self.discriminator = SNPatchGAN(cnum=m.get("d_cnum", 64), dtype=dtype)
        o = config.optim
        self.g_tx = optax.adam(o.lr, b1=o.b1, b2=o.b2)
        self.d_tx = optax.adam(o.lr, b1=o.b1, b2=o.b2)

    # -- inputs ---------------------------------------------------------------------------------
    def _inputs(self, batch: Batch):
        """image in [-1, 1], mask (shared per batch if configured), guide restricted to the hole."""
        image = batch["image"].astype(jnp.float32) * 2.0 - 1.0
        mask = batch["mask"].astype(jnp.float32)
        if self.config.mask.get("per_batch", True):
            # the original draws one mask per step; taking sample 0 also works on a sharded batch
            mask = jnp.broadcast_to(mask[:1], mask.shape)
        guide = None
        if self.guided:
            if "guide" not in batch:
                raise KeyError("deepfill_v2 with model.guided=True needs batch['guide'] "
                               "(set config.data.guide='edges')")
            guide = batch["guide"].astype(jnp.float32) * mask
        return image, mask, guide

    def _d_input(self, image, mask, guide):
        parts = [image, mask] + ([guide] if guide is not None else [])
        return jnp.concatenate(parts, axis=-1)

    # -- Family interface -----------------------------------------------------------------------
    def init_state(self, rng: jax.Array, batch: Batch) -> DeepFillV2State:
        image, mask, guide = self._inputs(batch)
        # Parameter draws with an 'rbg' key (XLA's RngBitGenerator) seeded from `rng`: the same
        # draws as threefry would need ~5x longer to compile on CPU (about 30 s for 84 kernels).
        # Deterministic for a given rng and backend; a resumed run reads its parameters back anyway.
        rng = jax.random.wrap_key_data(jax.random.bits(rng, (4,), jnp.uint32), impl="rbg")
        g_rng, d_rng = jax.random.split(rng)
        g_params = self.generator.init(g_rng, image, mask, guide)["params"]
        d_vars = self.discriminator.init(d_rng, self._d_input(image, mask, guide))
        return DeepFillV2State(
            step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_vars["params"],
            d_batch_stats=d_vars["batch_stats"], g_opt_state=self.g_tx.init(g_params),
            d_opt_state=self.d_tx.init(d_vars["params"]))

    def train_step(self, state: DeepFillV2State, batch: Batch,
                   rng: jax.Array) -> tuple[DeepFillV2State, Metrics]:
        del rng  # masks come from the pipeline; nothing here is random
        image, mask, guide = self._inputs(batch)
        l1_alpha, gan_alpha = self.config.loss.l1_alpha, self.config.loss.gan_alpha

        # discriminator step on real and (fixed) composited fake images
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
        d_updates, d_opt_state = self.d_tx.update(d_grads, state.d_opt_state, state.d_params)
        d_params = optax.apply_updates(state.d_params, d_updates)

        # generator step against the updated discriminator
        def g_loss_fn(g_params):
            s1, s2 = self.generator.apply({"params": g_params}, image, mask, guide)
            complete = s2 * mask + image * (1.0 - mask)
            neg, upd = self.discriminator.apply(
                {"params": d_params, "batch_stats": d_stats}, self._d_input(complete, mask, guide),
                update_stats=True, mutable=["batch_stats"])
            l1_s1, l1_s2 = losses.l1(image, s1), losses.l1(image, s2)
            gan = losses.hinge_g(neg)
            total = l1_alpha * (l1_s1 + l1_s2) + gan_alpha * gan
            return total, (upd["batch_stats"], l1_s1, l1_s2, gan)

        (g_loss, (d_stats, l1_s1, l1_s2, g_gan)), g_grads = jax.value_and_grad(
            g_loss_fn, has_aux=True)(state.g_params)
        g_updates, g_opt_state = self.g_tx.update(g_grads, state.g_opt_state, state.g_params)
        g_params = optax.apply_updates(state.g_params, g_updates)

        new_state = state.replace(step=state.step + 1, g_params=g_params, d_params=d_params,
                                  d_batch_stats=d_stats, g_opt_state=g_opt_state,
                                  d_opt_state=d_opt_state)
        metrics = {
            "g/loss": g_loss, "g/l1_stage1": l1_s1, "g/l1_stage2": l1_s2, "g/gan": g_gan,
            "d/hinge": d_loss, "d/real": d_real, "d/fake": d_fake,
            "g/grad_norm": optax.tree.norm(g_grads), "d/grad_norm": optax.tree.norm(d_grads),
        }
        return new_state, metrics

    def inference_variables(self, state: DeepFillV2State) -> Any:
        return {"params": state.g_params}

    def inpaint(self, variables: Any, image: jax.Array, mask: jax.Array,
                guide: Optional[jax.Array] = None) -> dict[str, jax.Array]:
        """image [B,H,W,3] in [0,1], mask [B,H,W,1] in {0,1} (1 = hole), guide [B,H,W,1] (used
        only if the model is guided; zeros if omitted; kept only inside the hole).
        Returns 'output' (composited, known pixels equal to the input), 'stage1' (raw coarse
        output), 'flow' (attention offsets, bilinearly up-sampled), all [B,H,W,3] in [0,1]."""
        image = image.astype(jnp.float32)
        mask = mask.astype(jnp.float32)
        g = None
        if self.guided:
            g = jnp.zeros_like(mask) if guide is None else guide.astype(jnp.float32) * mask
        stage1, stage2, flow = self.generator.apply(variables, image * 2.0 - 1.0, mask, g,
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
