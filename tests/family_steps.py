"""One jitted training step per family on small fixed batches, shared by the tests that need a
family's real step (compiling it is most of such a test's cost, so each family compiles once per
session): a warm-up + cosine learning-rate schedule, 32x32 images, two rows with different holes."""
import functools
import importlib
from typing import Any, NamedTuple

import jax
import numpy as np

from inpaintjax.families import get as get_family

PEAK, WARMUP, STEPS, FINAL = 1e-3, 2, 6, 0.1
SCHEDULE = (f",optim.lr={PEAK},optim.schedule=cosine,optim.warmup_steps={WARMUP},"
            f"num_steps={STEPS},optim.final_lr_ratio={FINAL}")
# each family's `test` variant, made cheaper where the step allows it
ARGS = {"deepfill_v2": "test,loss.gan_alpha=0", "deepfill_v1": "test,optim.critic_steps=1",
        "pconv": "test", "edgeconnect": "test,model.mode=1"}
NAMES = sorted(ARGS)
SIZE = 32


class FamilyStep(NamedTuple):
    family: Any
    state: Any     # the initial state (jax.jit does not donate it: reusable)
    step: Any      # jax.jit(family.train_step)
    frozen: Any


def holes(kind: str, n: int = 2) -> np.ndarray:
    """[n, SIZE, SIZE, 1] hole masks, all rows alike: 'a' a square at the top left, 'b' a wide
    rectangle at the bottom right (disjoint from 'a')."""
    m = np.zeros((n, SIZE, SIZE, 1), np.float32)
    if kind == "a":
        m[:, 2:14, 3:15] = 1
    else:
        m[:, 18:28, 12:30] = 1
    return m


def images(n: int = 2) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    return np.stack([np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.5 + 0.3 * np.sin(6 * xx + i)], -1)
                     for i in range(n)]).astype(np.float32)


def batch(family, hole: np.ndarray, image: np.ndarray | None = None):
    """(one batch, the batch as train_step takes it: stacked when batches_per_step > 1) of
    `image` (default `images(n)`) with the holes `hole` [n, SIZE, SIZE, 1]."""
    from inpaintjax.data import fields
    n = hole.shape[0]
    one = fields.compute_batch(family.batch_spec(), images(n) if image is None else image, hole,
                               [np.random.default_rng(i) for i in range(n)])
    k = family.batches_per_step
    return one, (one if k == 1 else {key: np.stack([v] * k) for key, v in one.items()})


@functools.lru_cache(maxsize=None)
def family_step(name: str) -> FamilyStep:
    config = importlib.import_module(f"configs.{name}").get_config(ARGS[name] + SCHEDULE)
    family = get_family(name)(config)
    one, _ = batch(family, holes("a"))
    state = jax.jit(family.init_state)(jax.random.key(0), one)
    frozen = jax.tree.map(jax.numpy.asarray, family.load_frozen())
    return FamilyStep(family, state, jax.jit(family.train_step), frozen)
