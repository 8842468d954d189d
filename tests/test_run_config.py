"""Schedule keys of the training loop checked before the workdir exists, and the logged
throughput that leaves compile time out (tests/toy_family.py)."""

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toy_family  # noqa: E402  (registers 'toy')

from inpaintjax.training import configuration_error, train  # noqa: E402


@pytest.mark.parametrize("key, value", [("log_every", 0), ("checkpoint_every", 0),
                                        ("log_every", -2), ("keep_checkpoints", 0),
                                        ("image_every", -1), ("num_steps", 0)])
def test_bad_interval_stops_the_run_before_the_workdir_exists(tmp_path, key, value):
    c = toy_family.toy_config()
    c.num_steps = 2
    c[key] = value
    workdir = tmp_path / "never"
    with pytest.raises(ValueError) as info:
        train(c, str(workdir))
    assert configuration_error(info.value)
    assert str(info.value).startswith(f"config.{key}={value}: must be ")
    assert "\n" not in str(info.value)
    assert not workdir.exists()


def test_step_clock_times_from_the_end_of_the_first_step():
    from inpaintjax.training.loop import StepClock
    now = [100.0]
    clock = StepClock(lambda: now[0])
    now[0] = 130.0                       # the first step compiled for 30 s
    clock.started(1)
    assert clock.rate(1) is None         # nothing timed yet at a first-step log
    now[0] = 132.0
    assert clock.rate(5) == pytest.approx(2.0)     # steps 2..5 in 2 s
    now[0] = 133.0
    assert clock.rate(7) == pytest.approx(2.0)
    resumed = StepClock(lambda: now[0])
    resumed.started(41)                  # a resumed run times from its own first step
    now[0] = 143.0
    assert resumed.rate(50) == pytest.approx(0.9)


def test_first_logged_record_has_no_compile_time_rate(tmp_path):
    c = toy_family.toy_config()
    c.num_steps, c.log_every, c.image_every = 3, 1, 0
    train(c, str(tmp_path))
    records = [json.loads(line) for line in open(os.path.join(tmp_path, "metrics.jsonl"))]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert "steps_per_sec" not in records[0]             # step 1 is the compile
    assert all(r["steps_per_sec"] > 0 for r in records[1:])


FAMILY_CONFIGS = ("deepfill_v1", "deepfill_v2", "pconv", "edgeconnect", "glcic", "shiftnet")


@pytest.mark.parametrize("name", FAMILY_CONFIGS)
def test_test_preset_builds_its_evaluation_mask_set(name, tmp_path):
    """Every family's `test` preset (and so its evaluation) reaches each hole-area bucket with its
    own mask generators at its own size: the frozen set holds `eval.per_bucket` masks per bucket."""
    import importlib

    from inpaintjax.masks import buckets
    from inpaintjax.training.evaluate import frozen_masks
    config = importlib.import_module(f"configs.{name}").get_config("test")
    masks, labels = frozen_masks(config, str(tmp_path / "masks"))
    size = int(config.eval.image_size)
    assert masks.shape[1:3] == (size, size)
    counts = np.bincount([buckets.bucket_of(buckets.hole_ratio(m)) for m in masks],
                         minlength=len(buckets.BUCKETS))
    assert counts.tolist() == [int(config.eval.per_bucket)] * len(buckets.BUCKETS), counts


def test_a_mask_set_built_from_other_settings_is_refused_not_reused(tmp_path):
    """eval.py reuses the frozen set of its --mask_dir: one built from another seed, per-bucket
    count or generator list is refused, naming each setting and the set's value."""
    import importlib

    from inpaintjax.training.evaluate import frozen_masks
    module = importlib.import_module("configs.deepfill_v2")
    folder = str(tmp_path / "masks")
    first, _ = frozen_masks(module.get_config("test"), folder)
    again, _ = frozen_masks(module.get_config("test"), folder)          # the same settings: reused
    np.testing.assert_array_equal(first, again)
    for change, named in (("eval.seed=7", "config.eval.seed=7 (the set's: 1234)"),
                          ("eval.per_bucket=2", "config.eval.per_bucket=2 (the set's: 1)"),
                          ("eval.mask_generator=lama_thin", "config.eval.mask_generator=['lama_thin']")):
        with pytest.raises(ValueError, match="was built from other settings") as info:
            frozen_masks(module.get_config(f"test,{change}"), folder)
        assert named in str(info.value) and folder in str(info.value), str(info.value)
