"""Each row of a batch keeps its own mask: the input pipeline alone decides whether a batch
shares one mask (`mask.per_batch`) and never replaces a paired mask (`data.mask_dir`), and the
DeepFill families train every row on the mask it came with."""
import jax
import numpy as np
import pytest

import family_steps as fs
from configs import deepfill_v1 as deepfill_v1_configs
from inpaintjax.data import fields
from inpaintjax.data.pipeline import TrainBatches


def test_pipeline_keeps_paired_masks_when_masks_are_shared_per_batch():
    config = deepfill_v1_configs.get_config("test")
    assert config.mask.per_batch  # the DeepFill default: drawn masks are shared by the batch
    size = int(config.data.image_size)
    paired = [np.zeros((size, size), np.float32) for _ in range(4)]
    for i, m in enumerate(paired):  # four different holes
        m[2 + 5 * i:10 + 5 * i, 4:4 + 6 * (i + 1)] = 1
    rng = np.random.default_rng(0)
    source = [(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), m) for m in paired]
    spec = {**fields.default_spec(), "hole_box": fields.hole_box()}
    batches = TrainBatches(config, source, rows=range(2), spec=spec)
    for k in range(2):
        got = batches.batch(k)
        for r in range(2):
            want = paired[batches.example_index(k, r)]
            np.testing.assert_array_equal(got["mask"][r, ..., 0], want)
            top, left = np.argwhere(want).min(0)
            height, width = np.ptp(np.argwhere(want), axis=0) + 1
            np.testing.assert_array_equal(got["hole_box"][r], [top, left, height, width])
    # the shared draw itself is still shared when there is no paired mask
    drawn = TrainBatches(config, [(s[0], None) for s in source], rows=range(2), spec=spec).batch(0)
    np.testing.assert_array_equal(drawn["mask"][0], drawn["mask"][1])


def _first_moment(state, metrics):
    """Adam's first moment of the generator after one update from a fresh state: (1 - b1) times
    the gradient, so linear in the gradient (optax.inject_hyperparams(adam) state)."""
    del metrics
    return jax.tree.leaves(state.g_opt_state.inner_state[0].mu)


def _metric(name):
    return lambda state, metrics: [np.asarray(metrics[name])]


# what each family's step logs or keeps that is a mean over rows of per-row terms:
#   DeepFill v2 (L1 only): the generator's gradient, seen through Adam's first moment;
#   DeepFill v1: the discounted L1 on the local crops around each row's hole box (the critics'
#   update before it is not linear in the rows, so the generator's gradient is not either)
OBSERVED = {"deepfill_v2": _first_moment, "deepfill_v1": _metric("g/l1_discounted")}


@pytest.mark.parametrize("name", fs.per_family(sorted(OBSERVED)))
def test_family_step_trains_each_row_on_its_own_mask(name):
    """All rows hold the same image, so the batch whose first half has hole a and second half hole
    b must give the mean of what the all-a and all-b batches give. Copying row 0's hole over the
    batch would give the all-a batch's."""
    run = fs.family_step(name)
    same = np.repeat(fs.images(1), fs.ROWS, axis=0)

    def observed(hole):
        _, stacked = fs.batch(run.family, hole, same)
        return [np.asarray(x, np.float64) for x in OBSERVED[name](
            *run.step(run.state, stacked, jax.random.key(1), run.frozen))]

    a, b = fs.holes("a"), fs.holes("b")
    value_a, value_b = observed(a), observed(b)
    mixed = observed(fs.mixed_holes())
    scale = max(float(np.abs(v).max()) for v in value_a)
    differ = max(float(np.abs(x - y).max()) for x, y in zip(value_a, value_b, strict=True))
    assert differ > 1e-3 * scale  # the two holes train differently
    for m, x, y in zip(mixed, value_a, value_b, strict=True):
        np.testing.assert_allclose(m, (x + y) / 2, rtol=1e-4, atol=1e-5 * scale)
