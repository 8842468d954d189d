"""A tiny inpainting family for testing the generic training system quickly (registered as 'toy').

Two small networks, `first` and `second` (two 3x3 convolutions each, on [masked image, mask]):
`model.phase` 1 trains `first`; phase 2 trains `second` on top of a frozen `first` (started from a
phase-1 run with `init_from`, copying `params.first`): the two-phase recipes of PConv and
EdgeConnect in miniature. The L1 loss is taken after a frozen 1x1 "feature" projection that comes
from `load_frozen` (the perceptual losses' VGG in miniature): a seeded random kernel, or the .npz
file named by `model.frozen_file`.

`model.substeps` = k > 1 makes one training step consume k batches (one update of the trained
network per batch, as a critic's several updates per generator update) and report:
  'loss/l1'        one value per substep (Metric total over k, count k)
  'sub/index'      the substep number 1..k, per substep (its logged mean is (k + 1) / 2)
  'last/l1'        once per step, from the last substep only
  'even/step'      the step number, only on even steps (count 0 on odd ones)
`model.nan_at_step` (>= 0) makes the L1 term NaN at that step, to test the non-finite guard.
"""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from inpaintjax.config import base_config
from inpaintjax.families import common
from inpaintjax.families.base import Family, FrozenWeightsError, Metric, register
from inpaintjax.layers.conv import conv_general_dilated

FROZEN_SHAPE = (1, 1, 3, 5)  # the frozen projection's kernel: RGB -> 5 "features"


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
    params: Any      # {'first': ..., 'second': ...}
    opt_state: Any   # of the network this phase trains


def frozen_kernel(seed: int = 0) -> np.ndarray:
    return np.random.default_rng([seed, 77]).normal(size=FROZEN_SHAPE).astype(np.float32)


@register
class ToyFamily(Family):
    name = "toy"
    size_multiple = 1
    warm_start_paths = ("params.first",)

    def __init__(self, config):
        super().__init__(config)
        self.net = ToyNet(config.model.features)
        self.tx = common.make_optimizer(config.optim, int(config.num_steps))
        self.phase = int(config.model.phase)
        self.trained = "first" if self.phase == 1 else "second"

    @classmethod
    def default_config(cls):
        return toy_config()

    @property
    def batches_per_step(self) -> int:
        return int(self.config.model.substeps)

    def load_frozen(self):
        path = self.config.model.frozen_file
        if path == "random":
            return {"kernel": frozen_kernel(int(self.config.seed))}
        try:
            with np.load(path) as f:
                return {"kernel": np.asarray(f["kernel"], np.float32)}
        except FileNotFoundError:
            raise FrozenWeightsError(f"frozen projection file {path!r} not found: write one with "
                                     f"np.savez(path, kernel=...) or set model.frozen_file='random'")

    def _apply(self, params, image, mask):
        out = self.net.apply({"params": params["first"]}, image, mask)
        if self.phase == 2:
            out = self.net.apply({"params": params["second"]}, out, mask)
        return out

    def init_state(self, rng, batch):
        k1, k2 = jax.random.split(common.param_key(rng))
        params = {"first": self.net.init(k1, batch["image"], batch["mask"])["params"],
                  "second": self.net.init(k2, batch["image"], batch["mask"])["params"]}
        return ToyState(step=jnp.zeros((), jnp.int32), params=params,
                        opt_state=self.tx.init(params[self.trained]))

    def _update(self, params, opt_state, batch, noise_key, frozen, step):
        # noise from the step key makes the tests sensitive to the per-step RNG
        image = batch["image"] + 1e-3 * jax.random.normal(noise_key, batch["image"].shape)

        def loss_fn(trained):
            p = dict(params, **{self.trained: trained})
            out = self._apply(p, image, batch["mask"])
            project = lambda x: jnp.einsum("bhwc,cf->bhwf", x, frozen["kernel"][0, 0])  # noqa: E731
            l1 = jnp.mean(jnp.abs(project(out) - project(batch["image"])))
            bad = jnp.where(step == self.config.model.nan_at_step, jnp.nan, 1.0)
            return l1 * bad

        l1, grads = jax.value_and_grad(loss_fn)(params[self.trained])
        new, opt_state = common.apply_gradients(self.tx, grads, opt_state, params[self.trained])
        return dict(params, **{self.trained: new}), opt_state, l1, optax.tree.norm(grads)

    def train_step(self, state, batch, rng, frozen):
        k = self.batches_per_step
        if k == 1:
            params, opt_state, l1, gnorm = self._update(state.params, state.opt_state, batch, rng,
                                                        frozen, state.step)
            metrics = {"loss/l1": l1, "grad_norm": gnorm, "lr": common.learning_rate(opt_state)}
        else:
            def substep(carry, xs):
                params, opt_state = carry
                j, sub_batch = xs
                params, opt_state, l1, gnorm = self._update(
                    params, opt_state, sub_batch, jax.random.fold_in(rng, j), frozen, state.step)
                return (params, opt_state), (l1, gnorm)

            (params, opt_state), (l1s, gnorms) = jax.lax.scan(
                substep, (state.params, state.opt_state), (jnp.arange(k), batch))
            even = (state.step % 2 == 0).astype(jnp.float32)
            metrics = {
                "loss/l1": Metric(jnp.sum(l1s), jnp.float32(k)),
                "sub/index": Metric(jnp.sum(jnp.arange(1, k + 1, dtype=jnp.float32)), jnp.float32(k)),
                "last/l1": l1s[-1],
                "even/step": Metric(even * state.step.astype(jnp.float32), even),
                "grad_norm": Metric(jnp.sum(gnorms), jnp.float32(k)),
                "lr": common.learning_rate(opt_state),
            }
        return ToyState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    def inference_variables(self, state):
        return state.params

    def inpaint(self, variables, inputs):
        image, mask = inputs["image"], inputs["mask"]
        out = self._apply(variables, image, mask)
        return {"output": out * mask + image * (1.0 - mask), "raw": out}


def toy_config(arg: str = "") -> Any:
    c = base_config()
    c.family = "toy"
    c.model.features = 8
    c.model.phase = 1
    c.model.substeps = 1
    c.model.frozen_file = "random"
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
    # the other classical rows (PatchMatch's compile, the biharmonic and Telea fills, their plots)
    # are computed by the tests that ask for them, not by every evaluation
    c.eval.baselines = "mean"
    return c
