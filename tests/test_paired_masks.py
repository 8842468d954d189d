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


@pytest.mark.parametrize("name,metric", [("deepfill_v2", "g/l1_stage1"),
                                         ("deepfill_v1", "g/l1_discounted")])
def test_family_step_trains_each_row_on_its_own_mask(name, metric):
    """Both rows hold the same image; `metric` is a mean over rows of a per-row term, so the
    batch with holes (a, b) must log the mean of the batches (a, a) and (b, b). Copying row 0's
    hole over the batch would log (a, a)'s value instead."""
    run = fs.family_step(name)
    same = np.repeat(fs.images(1), 2, axis=0)

    def logged(hole):
        _, stacked = fs.batch(run.family, hole, same)
        return float(run.step(run.state, stacked, jax.random.key(1), run.frozen)[1][metric])

    a, b = fs.holes("a"), fs.holes("b")
    value_a, value_b = logged(a), logged(b)
    assert abs(value_a - value_b) > 1e-3 * abs(value_a)  # the two holes give different losses
    mixed = logged(np.concatenate([a[:1], b[:1]]))
    assert mixed == pytest.approx((value_a + value_b) / 2, rel=1e-5)
