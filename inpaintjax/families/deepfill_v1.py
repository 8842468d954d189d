"""DeepFill v1 (Yu et al., "Generative Image Inpainting with Contextual Attention", CVPR 2018).

Plain-convolution coarse-to-fine generator with contextual attention, trained against two WGAN-GP
critics: a global one on the whole image and a local one on the crop around the hole. Training
follows the released trainer (JiahuiYu/generative_inpainting tag v1.0.0, `inpaint_model.py::
build_graph_with_losses`, `inpaint.yml`, `train.py`):

  one step = `optim.critic_steps` (5) critic updates, each on a fresh batch and box mask, then one
             generator update on another fresh batch (`batches_per_step` = critic_steps + 1);
  critic loss   = sum over {global, local} of mean(D(fake)) - mean(D(real))
                  + gp_lambda * (gradient penalty on interpolates, hole pixels only)
  generator loss = gan_alpha * (global_wgan_alpha * -mean(Dg(fake)) - mean(Dl(fake_local)))
                  + l1_alpha * [coarse_alpha * dL1(x1) + dL1(x2)]     (discounted, local crop)
                  + ae_alpha * [coarse_alpha * kL1(x1) + kL1(x2)]     (known region, by area)
where fake = stage2 * mask + image * (1 - mask), dL1 = mean(|x - y| * discount) on the local
crop with discount = gamma^(distance to the crop's edge), kL1 = known-pixel L1; Adam 1e-4,
betas (0.5, 0.9) for both networks. The local crop is `model.local_size` square around the hole's
bounding box (the batch's `hole_box` field; the original's 128x128 box, inside which its hole
sits centred; 0 = half the image side). Images enter the networks in [-1, 1].

Config keys read (configs/deepfill_v1.py): model.cnum, model.d_cnum, model.local_size,
optim.critic_steps, loss.{l1_alpha, ae_alpha, coarse_alpha, gan_alpha, global_wgan_alpha, gp_lambda,
gamma}, optim.* (families/common.py), compute_dtype, remat, ema_decay. Whether a batch shares one
mask (and box) is the input pipeline's choice (`mask.per_batch`); the family uses each row's own.
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
from inpaintjax.data import fields
from inpaintjax.families import common
from inpaintjax.families.base import Batch, Family, Metrics, WeightFormat, register
from inpaintjax.models.deepfill import DeepFillV1Generator
from inpaintjax.models.discriminators import WGANGlobalCritic, WGANLocalCritic


@flax.struct.dataclass
class DeepFillV1State:
    """Train state: generator and critic parameters (d_params = {'local': ..., 'global': ...}),
    both Adam states and the generator's EMA (None when config.ema_decay is 0)."""

    step: jax.Array
    g_params: Any
    d_params: Any
    g_opt_state: Any
    d_opt_state: Any
    g_ema: Any = None


def default_config(cnum: int = 32) -> ml_collections.ConfigDict:
    """The released model's settings on top of the base config (v1.0.0 `inpaint.yml`); used when
    only weights are at hand (official checkpoints). Training runs use configs/deepfill_v1.py."""
    c = base_config()
    c.family = "deepfill_v1"
    c.model.cnum = cnum
    c.model.d_cnum = 64
    c.model.local_size = 0       # 0: half the image side (the released 128 at 256)
    c.loss.l1_alpha = 1.2
    c.loss.ae_alpha = 1.2
    c.loss.coarse_alpha = 1.2
    c.loss.gan_alpha = 0.001
    c.loss.global_wgan_alpha = 1.0
    c.loss.gp_lambda = 10.0
    c.loss.gamma = 0.9
    c.optim.lr = 1e-4
    c.optim.b1 = 0.5
    c.optim.b2 = 0.9
    c.optim.critic_steps = 5     # critic updates per generator update, each on a fresh batch
    c.mask.generator = "deepfill_box"
    c.mask.per_batch = True
    return c


def _is_official(path: str) -> bool:
    from inpaintjax.convert.deepfill import tf_checkpoint_version
    return tf_checkpoint_version(path) == 1


def config_for_weights(weights) -> ml_collections.ConfigDict:
    """The run config for converted official weights (`convert.deepfill.DeepFillWeights`): the
    released settings with the widths the checkpoint holds."""
    c = default_config(cnum=weights.cnum)
    if weights.d_cnum:
        c.model.d_cnum = weights.d_cnum
    return c


def _load_official(path: str):
    from inpaintjax.convert.deepfill import from_tf_checkpoint
    weights = from_tf_checkpoint(path, version=1, discriminator=False)
    return config_for_weights(weights), weights.generator


@register
class DeepFillV1(Family):
    """The DeepFill v1 family (see the module docstring)."""

    name = "deepfill_v1"
    size_multiple = 8
    weight_formats = (WeightFormat("tf1-checkpoint", _is_official, _load_official),)
    warm_start_paths = ("g_params", "d_params")
    ema_paths = (("g_ema", "g_params"),)

    def __init__(self, config):
        super().__init__(config)
        m, w = config.model, config.loss
        dtype = common.compute_dtype(config)
        self.generator = DeepFillV1Generator(cnum=m.cnum, dtype=dtype, remat=bool(config.remat))
        d_cnum = int(m.d_cnum)
        self.local_critic = WGANLocalCritic(cnum=d_cnum, dtype=dtype)
        self.global_critic = WGANGlobalCritic(cnum=d_cnum, dtype=dtype)
        self.local_size = int(m.local_size)
        self.critic_steps = int(config.optim.critic_steps)
        if self.critic_steps < 1:
            raise ValueError(f"config.optim.critic_steps must be >= 1, got {self.critic_steps}")
        self.l1_alpha, self.ae_alpha = float(w.l1_alpha), float(w.ae_alpha)
        self.coarse_alpha, self.gan_alpha = float(w.coarse_alpha), float(w.gan_alpha)
        self.global_wgan_alpha, self.gp_lambda = float(w.global_wgan_alpha), float(w.gp_lambda)
        self.gamma = float(w.gamma)
        steps = int(config.num_steps)
        self.g_tx = common.make_optimizer(config.optim, steps)
        # the critics' schedule advances once per training step too: k updates per step, so its
        # warm-up and its decay both span k times as many updates
        critic_optim = ml_collections.ConfigDict(config.optim.to_dict())
        critic_optim.warmup_steps = int(config.optim.warmup_steps) * self.critic_steps
        self.d_tx = common.make_optimizer(critic_optim, steps * self.critic_steps)
        self.ema_decay = common.ema_decay(config)

    @classmethod
    def default_config(cls) -> ml_collections.ConfigDict:
        return default_config()

    @property
    def batches_per_step(self) -> int:
        return self.critic_steps + 1

    def batch_spec(self) -> dict:
        spec = fields.default_spec()
        spec["hole_box"] = fields.hole_box()
        return spec

    # -- pieces ---------------------------------------------------------------------------------
    def _inputs(self, batch: Batch):
        """image in [-1, 1], each row's own mask and hole box (whether masks are shared by the
        batch is the input pipeline's choice, `mask.per_batch`)."""
        image = batch["image"].astype(jnp.float32) * 2.0 - 1.0
        mask = batch["mask"].astype(jnp.float32)
        boxes = batch["hole_box"]
        return image, mask, boxes

    def _crop_size(self, x) -> int:
        """model.local_size, or half the image's shorter side when it is 0 (128 at 256)."""
        return self.local_size or min(x.shape[1], x.shape[2]) // 2

    def _local(self, x, boxes):
        return common.crop_boxes(x, boxes, self._crop_size(x))

    def _critics(self, d_params, x_global, x_local):
        return (self.global_critic.apply({"params": d_params["global"]}, x_global),
                self.local_critic.apply({"params": d_params["local"]}, x_local))

    def _critic_loss(self, d_params, image, fake, mask, boxes, rng):
        real_l, fake_l = self._local(image, boxes), self._local(fake, boxes)
        pos_g, pos_l = self._critics(d_params, image, real_l)
        neg_g, neg_l = self._critics(d_params, fake, fake_l)
        d_global, d_local = losses.wgan_d(pos_g, neg_g), losses.wgan_d(pos_l, neg_l)
        # independent interpolation factors for the two critics, one per sample (as the original)
        a_l, a_g = jax.random.uniform(rng, (2, image.shape[0]))
        gp_local = losses.gradient_penalty(
            lambda x: self.local_critic.apply({"params": d_params["local"]}, x),
            losses.random_interpolates(real_l, fake_l, a_l), self._local(mask, boxes))
        gp_global = losses.gradient_penalty(
            lambda x: self.global_critic.apply({"params": d_params["global"]}, x),
            losses.random_interpolates(image, fake, a_g), mask)
        gp = self.gp_lambda * (gp_local + gp_global)
        total = d_global + d_local + gp
        return total, {"d/loss": total, "d/wgan_global": d_global, "d/wgan_local": d_local,
                       "d/gp_global": gp_global, "d/gp_local": gp_local}

    def _generator_loss(self, g_params, d_params, image, mask, boxes):
        coarse = self.coarse_alpha
        x1, x2 = self.generator.apply({"params": g_params}, image, mask)
        complete = x2 * mask + image * (1.0 - mask)
        real_l = self._local(image, boxes)
        size = self._crop_size(image)
        discount = losses.spatial_discount(size, size, self.gamma)
        l1 = (coarse * losses.discounted_l1(real_l, self._local(x1, boxes), discount)
              + losses.discounted_l1(real_l, self._local(x2, boxes), discount))
        ae = coarse * losses.known_l1(image, x1, mask) + losses.known_l1(image, x2, mask)
        neg_g, neg_l = self._critics(d_params, complete, self._local(complete, boxes))
        g_global, g_local = losses.wgan_g(neg_g), losses.wgan_g(neg_l)
        gan = self.global_wgan_alpha * g_global + g_local
        total = self.gan_alpha * gan + self.l1_alpha * l1 + self.ae_alpha * ae
        return total, {"g/loss": total, "g/l1_discounted": l1, "g/l1_known": ae,
                       "g/wgan_global": g_global, "g/wgan_local": g_local}

    # -- Family interface -----------------------------------------------------------------------
    def init_state(self, rng: jax.Array, batch: Batch) -> DeepFillV1State:
        image, mask, boxes = self._inputs(batch)
        g_rng, l_rng, gl_rng = jax.random.split(common.param_key(rng), 3)
        g_params = self.generator.init(g_rng, image, mask)["params"]
        d_params = {"local": self.local_critic.init(l_rng, self._local(image, boxes))["params"],
                    "global": self.global_critic.init(gl_rng, image)["params"]}
        return DeepFillV1State(
            step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
            g_opt_state=self.g_tx.init(g_params), d_opt_state=self.d_tx.init(d_params),
            g_ema=common.ema_init(g_params, self.ema_decay))

    def train_step(self, state: DeepFillV1State, batch: Batch, rng: jax.Array,
                   frozen: Any) -> tuple[DeepFillV1State, Metrics]:
        """batch: every field stacked [critic_steps + 1, B, ...]: the first critic_steps batches
        train the critics (one update each), the last one the generator."""
        del frozen
        k = self.critic_steps
        lead = jax.tree.leaves(batch)[0].shape[0]
        if lead != k + 1:
            raise ValueError(f"deepfill_v1 train_step needs {k + 1} stacked batches "
                             f"(critic_steps + 1), got a leading axis of {lead}")
        critic_batches = jax.tree.map(lambda x: x[:k], batch)
        g_batch = jax.tree.map(lambda x: x[k], batch)

        def critic_update(carry, inp):
            d_params, d_opt_state = carry
            sub, i = inp
            image, mask, boxes = self._inputs(sub)
            x1, x2 = self.generator.apply({"params": state.g_params}, image, mask)
            del x1
            fake = jax.lax.stop_gradient(x2 * mask + image * (1.0 - mask))
            (_, logs), grads = jax.value_and_grad(self._critic_loss, has_aux=True)(
                d_params, image, fake, mask, boxes, jax.random.fold_in(rng, i))
            logs["d/grad_norm"] = optax.tree.norm(grads)
            d_params, d_opt_state = common.apply_gradients(self.d_tx, grads, d_opt_state, d_params)
            return (d_params, d_opt_state), logs

        # unrolled: XLA:CPU runs the unrolled updates several times faster than a while loop
        # (docs/deepfill_v1.md)
        (d_params, d_opt_state), d_logs = jax.lax.scan(
            critic_update, (state.d_params, state.d_opt_state),
            (critic_batches, jnp.arange(k)), unroll=k)
        # the critic metrics of this step: the mean over its critic updates
        d_logs = jax.tree.map(jnp.mean, d_logs)

        image, mask, boxes = self._inputs(g_batch)
        (_, g_logs), g_grads = jax.value_and_grad(self._generator_loss, has_aux=True)(
            state.g_params, d_params, image, mask, boxes)
        g_params, g_opt_state = common.apply_gradients(self.g_tx, g_grads, state.g_opt_state,
                                                       state.g_params)
        new_state = state.replace(step=state.step + 1, g_params=g_params, d_params=d_params,
                                  g_opt_state=g_opt_state, d_opt_state=d_opt_state,
                                  g_ema=common.ema_update(state.g_ema, g_params, self.ema_decay))
        metrics = dict(g_logs)
        metrics.update(d_logs)
        metrics["g/grad_norm"] = optax.tree.norm(g_grads)
        metrics["g/lr"] = common.learning_rate(g_opt_state)
        return new_state, metrics

    def inference_variables(self, state: DeepFillV1State) -> Any:
        return {"params": state.g_params if state.g_ema is None else state.g_ema}

    def inpaint(self, variables: Any, inputs: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """inputs: image [B,H,W,3] in [0,1], mask [B,H,W,1] (1 = hole). Returns 'output'
        (composited: known pixels equal to the input), 'stage1' (raw coarse output) and 'flow'
        (attention offsets, nearest up-sampled as v1 shows them), all [B,H,W,3] in [0,1]."""
        image = inputs["image"].astype(jnp.float32)
        mask = inputs["mask"].astype(jnp.float32)
        stage1, stage2, flow = self.generator.apply(variables, image * 2.0 - 1.0, mask,
                                                    return_flow=True)
        scale = image.shape[1] // flow.shape[1]
        return {
            # a select, not a blend: known pixels come back bit-exact whatever the network says
            "output": jnp.where(mask > 0.5, (stage2 + 1.0) * 0.5, image),
            "stage1": (stage1 + 1.0) * 0.5,
            "flow": jnp.repeat(jnp.repeat(flow.astype(jnp.float32), scale, 1), scale, 2),
        }
