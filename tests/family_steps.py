"""One jitted training step per family on small fixed batches, shared by the tests that check what
every family must do (the logged learning rate, the EMA, per-row masks, bfloat16 compute, 8
devices like one): compiling the step is most of such a test's cost, so each family compiles it
once per worker. The tests mark themselves with `per_family(...)` so that pytest-xdist (`--dist
loadgroup`) runs one family's tests in one worker, where the compiled step is cached.

The step: each family's `test` variant, made cheaper where the step allows it, with a warm-up +
cosine learning-rate schedule and an EMA of the generator; 32x32 images, ROWS = 8 rows (one per
simulated device), whose holes the test chooses."""
import functools
import importlib
from typing import Any, NamedTuple

import jax
import numpy as np
import pytest

from inpaintjax.families import get as get_family

PEAK, WARMUP, STEPS, FINAL = 1e-3, 2, 6, 0.1
EMA_DECAY = 0.6  # far from 1, so that a few steps leave the EMA well apart from the parameters
SCHEDULE = (f",optim.lr={PEAK},optim.schedule=cosine,optim.warmup_steps={WARMUP},"
            f"num_steps={STEPS},optim.final_lr_ratio={FINAL},ema_decay={EMA_DECAY}")
# each family's `test` variant, made cheaper where the step allows it. EdgeConnect in mode 4
# trains all four of its networks (G1, D1, G2, D2) and uses the VGG-19 losses.
# DeepFill v1's is its `test` variant unchanged (two critic updates per step, a scan: one more
# costs run time, not compile time), which its own family test trains too.
ARGS = {"deepfill_v2": "test,loss.gan_alpha=0", "deepfill_v1": "test",
        "pconv": "test", "edgeconnect": "test,model.mode=4,loss.vgg_weights=random",
        # GLCIC's joint phase (completion network and both discriminators); Shift-Net's U-Net one
        # level shallower than its 64x64 `test` preset, for 32x32, its discriminator on the whole
        # image (the hole crop needs 64x64)
        "glcic": "test,phase=joint",
        "shiftnet": "test,model.num_downs=5,data.image_size=32,eval.image_size=32,loss.hole_crop=False"}
# the families of the per-row-mask and 8-device tests (the EMA, lr-log and bfloat16 tests take all
# of ARGS; GLCIC's and Shift-Net's 8-device tests are in their own files)
NAMES = ["deepfill_v1", "deepfill_v2", "edgeconnect", "pconv"]
SIZE = 32
ROWS = 8


def group(name: str):
    """The xdist group of a family's shared step: a test that calls family_step(name) carries it,
    so that the worker that compiled the step runs it."""
    return pytest.mark.xdist_group(f"family-{name}")


def per_family(names=NAMES):
    """pytest parameters, one per family, each in the xdist group of its family."""
    return [pytest.param(name, marks=group(name)) for name in names]


class FamilyStep(NamedTuple):
    config: Any
    family: Any
    state: Any     # the initial state (jax.jit does not donate it: reusable)
    step: Any      # jax.jit(family.train_step)
    frozen: Any


def holes(kind: str, n: int = ROWS) -> np.ndarray:
    """[n, SIZE, SIZE, 1] hole masks, all rows alike: 'a' a square at the top left, 'b' a wide
    rectangle at the bottom right (disjoint from 'a')."""
    m = np.zeros((n, SIZE, SIZE, 1), np.float32)
    if kind == "a":
        m[:, 2:14, 3:15] = 1
    else:
        m[:, 18:28, 12:30] = 1
    return m


def mixed_holes() -> np.ndarray:
    """ROWS rows, the first half with hole 'a', the second with hole 'b'."""
    return np.concatenate([holes("a", ROWS // 2), holes("b", ROWS - ROWS // 2)])


def images(n: int = ROWS) -> np.ndarray:
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


def config_of(name: str, extra: str = ""):
    return importlib.import_module(f"configs.{name}").get_config(ARGS[name] + SCHEDULE + extra)


def family_step(name: str, extra: str = "") -> FamilyStep:
    """The family's step on one device. `extra` (e.g. ',compute_dtype=bfloat16') modifies the
    config of the step, which starts from the unmodified config's initial state: the modified
    config must give a state of the same structure, shapes and dtypes (checked). Built once per
    (name, extra) in a process, however it is called (`family_step(n)` and `family_step(n, "")`
    are one step: an lru_cache on this function would key them apart and trace twice)."""
    return _family_step(name, extra)


@functools.lru_cache(maxsize=None)
def _family_step(name: str, extra: str) -> FamilyStep:
    config = config_of(name, extra)
    family = get_family(name)(config)
    one, _ = batch(family, holes("a"))
    if extra:
        state = family_step(name).state
        expected = jax.eval_shape(family.init_state, jax.random.key(0), one)
        assert (jax.tree.structure(expected) == jax.tree.structure(state) and all(
            (a.shape, a.dtype) == (b.shape, b.dtype)
            for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(state), strict=True))), extra
    else:
        state = jax.jit(family.init_state)(jax.random.key(0), one)
    frozen = jax.tree.map(jax.numpy.asarray, family.load_frozen())
    step = jax.jit(family.train_step)
    return FamilyStep(config, family, state, step, frozen)
