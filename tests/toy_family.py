"""A tiny inpainting family for testing the generic training system quickly (registered as 'toy').

Two 3x3 convolutions on [masked image, mask] -> RGB, an L1 loss on all pixels, Adam. It reports
'loss/l1' and 'grad_norm' like a real family. `config.model.nan_at_step` (>= 0) makes the L1 term
NaN at that step, to test the non-finite guard.
"""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from inpaintjax.config import base_config
from inpaintjax.families.base import Family, register
from inpaintjax.layers.conv import conv_general_dilated


class ToyNet(nn.Module):
    features: int = 8

    @nn.compact
    def __call__(self, image, mask):
        x = jnp.concatenate([image * (1.0 - mask), mask], axis=-1)
        x = nn.relu(nn.Conv(self.features, (3, 3), conv_general_dilated=conv_general_dilated)(x))
        return nn.sigmoid(nn.Conv(3, (3, 3), conv_general_dilated=conv_general_dilated)(x))


@flax.struct.dataclass
class ToyState:
    step: jax.Array
    params: Any
    opt_state: Any


@register
class ToyFamily(Family):
    name = "toy"
    size_multiple = 1

    def __init__(self, config):
        super().__init__(config)
        self.net = ToyNet(config.model.features)
        self.tx = optax.adam(config.optim.lr)

    def init_state(self, rng, batch):
        params = self.net.init(rng, batch["image"], batch["mask"])["params"]
        return ToyState(step=jnp.zeros((), jnp.int32), params=params, opt_state=self.tx.init(params))

    def train_step(self, state, batch, rng):
        # noise from the step key makes the test sensitive to the per-step RNG
        noise = 1e-3 * jax.random.normal(rng, batch["image"].shape)

        def loss_fn(params):
            out = self.net.apply({"params": params}, batch["image"] + noise, batch["mask"])
            l1 = jnp.mean(jnp.abs(out - batch["image"]))
            bad = jnp.where(state.step == self.config.model.nan_at_step, jnp.nan, 1.0)
            return l1 * bad

        l1, grads = jax.value_and_grad(loss_fn)(state.params)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss/l1": l1, "grad_norm": optax.tree.norm(grads),
                   "lr": jnp.asarray(self.config.optim.lr, jnp.float32)}
        return ToyState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    def inference_variables(self, state):
        return {"params": state.params}

    def inpaint(self, variables, image, mask, guide=None):
        out = self.net.apply(variables, image, mask)
        return {"output": out * mask + image * (1.0 - mask), "raw": out}


def toy_config(arg: str = "") -> Any:
    c = base_config()
    c.family = "toy"
    c.model.features = 8
    c.model.nan_at_step = -1
    c.optim.lr = 1e-2
    c.batch_size = 8
    c.num_steps = 6
    c.log_every = 2
    c.image_every = 4
    c.checkpoint_every = 2
    c.keep_checkpoints = 3
    c.data.image_size = 16
    c.data.num_workers = 0
    c.mask.generator = "deepfill_v2_strokes"
    c.mask.per_batch = False
    c.eval.image_size = 32
    c.eval.mask_generator = "lama_thin,deepfill_v2_training"  # strokes 12+ px wide miss 1-10% at 32x32
    c.eval.per_bucket = 2
    c.eval.num_images = 4
    c.eval.batch_size = 4
    c.eval.num_samples = 3
    return c
