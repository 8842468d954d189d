"""inpaintjax.accelerator_check at toy sizes, in-process on the session's simulated CPU devices
(the data-parallel cases run over all of them): the record's fields, counts that add up, every
registered family planned with its own `test` configuration, and failures recorded, not fatal.

The timed run uses the test suite's toy family (tests/toy_family.py, two batches per step): the
check is the same code for every family, and the real families' toy steps take 15-30 s of CPU
each to compile (a pconv toy run of the check took 52 s of CPU), beyond this file's budget."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import jax
import pytest

from inpaintjax import accelerator_check as ac
from inpaintjax.config import load_config_file
from inpaintjax.families import base

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toy_family  # noqa: E402,F401  (registers 'toy')

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TOY_CONFIG = Path(__file__).resolve().parent / "toy_config.py"
SUBSTEPS = 2


@pytest.fixture(scope="module")
def toy_record(tmp_path_factory):
    out = tmp_path_factory.mktemp("accelerator") / "record.json"
    rc = ac.main(["--toy", "--families", "toy", "--config", f"toy={TOY_CONFIG}",
                  "--set", f"toy:model.substeps={SUBSTEPS}", "--dtypes", "float32,bfloat16",
                  "--infer-sizes", "32,48", "--runs", "2", "--max-minutes", "60",
                  "--out", str(out)])
    return rc, json.loads(out.read_text())


def test_toy_record_fields_and_counts(toy_record):
    rc, rec = toy_record
    n = jax.device_count()
    assert rc == 0 and rec["failed_cases"] == 0 and rec["skipped_cases"] == 0
    assert rec["kind"] == "accelerator_check" and rec["toy"] is True
    assert rec["backend"] == "cpu" and rec["device_count"] == n == len(rec["devices"])
    assert "per-image" in rec["evaluation_note"] and "Inception" in rec["evaluation_note"]
    assert list(rec["families"]) == ["toy"]
    fam = rec["families"]["toy"]
    plan = [(c["kind"], c["dtype"], c.get("size"), c["devices"]) for c in fam["cases"]]
    single = [("train", "float32", 32, 1), ("train", "bfloat16", 32, 1),
              ("evaluate", "float32", 32, 1), ("infer", "float32", 32, 1),
              ("infer", "float32", 48, 1)]
    # data parallel: every train and evaluate case and the smallest inference size again
    assert plan == single + ([c[:3] + (n,) for c in single[:4]] if n > 1 else [])
    for c in fam["cases"]:
        per_device = {"train": 2, "evaluate": 2, "infer": 1}[c["kind"]]
        assert c["batch"] == per_device * c["devices"]
        assert c["data_parallel"] == (c["devices"] > 1)
        assert c["runs"] == 2
        per_step = c["batch"] * (SUBSTEPS if c["kind"] == "train" else 1)
        assert c["items"] == per_step * c["runs"]
        assert c["items_per_s"] == pytest.approx(c["items"] / c["total_s"], rel=1e-2)
        assert 0 < c["min_s"] <= c["median_s"] <= c["total_s"]
        assert c["compile_s"] > 0 and c["warmup_s"] > 0
        # the CPU client has no memory statistics: None, not a made-up number
        assert c["peak_bytes_in_use"] is None and c["bytes_in_use"] is None
        if c["kind"] == "train":
            assert c["batches_per_step"] == SUBSTEPS
        if c["kind"] == "evaluate":
            assert {"psnr", "ssim", "l1"} <= set(c["metrics"])


def test_every_registered_family_is_planned_with_its_test_variant(monkeypatch):
    seen = []

    def fake_check_family(name, sizes, devices, toy, overrides, deadline, log, spec=""):
        seen.append((name, toy, tuple(overrides)))
        return {"cases": []}

    monkeypatch.setattr(ac, "check_family", fake_check_family)
    rec = ac.run_check(toy=True, overrides=["pconv:optim.lr=0.5"], log=lambda line: None)
    assert list(rec["families"]) == base.names() == [name for name, _, _ in seen]
    assert {"deepfill_v1", "deepfill_v2", "edgeconnect", "pconv", "toy"} <= set(base.names())
    assert dict((n, o) for n, _, o in seen)["pconv"] == ("optim.lr=0.5",)
    for name in base.names():
        if not (CONFIGS / f"{name}.py").is_file():  # the test suite's own toy family
            with pytest.raises(FileNotFoundError, match="test"):
                ac.family_config(name, True, "float32")
            continue
        test_variant = load_config_file(f"{CONFIGS}/{name}.py:test")
        config = ac.family_config(name, True, "bfloat16")
        assert config.compute_dtype == "bfloat16"
        assert config.model.to_dict() == test_variant.model.to_dict()  # the tiny networks
        vgg = config.get("loss", {}).get("vgg_weights", None)
        assert vgg in (None, "random") or vgg == test_variant.loss.vgg_weights
    # full size: the released settings
    assert ac.family_config("pconv", False, "float32").model.levels == (
        base.get("pconv").default_config().model.levels)


def test_bad_arguments_name_the_fix(tmp_path):
    with pytest.raises(KeyError, match="Known"):
        ac.main(["--toy", "--families", "pconvv", "--out", str(tmp_path / "r.json")])
    with pytest.raises(ValueError, match="FAMILY:key=value"):
        ac.run_check(toy=True, overrides=["nofamily:x=1"], log=lambda line: None)
    with pytest.raises(SystemExit):
        ac.main(["--toy", "--dtypes", "float16", "--out", str(tmp_path / "r.json")])


def test_a_failing_case_is_recorded_and_the_check_goes_on(tmp_path):
    out = tmp_path / "r.json"
    rc = ac.main(["--toy", "--families", "pconv", "--set", "pconv:model.no_such_key=1",
                  "--out", str(out)])
    rec = json.loads(out.read_text())
    cases = rec["families"]["pconv"]["cases"]
    assert rc == 1 and rec["failed_cases"] == len(cases) > 0
    assert all("no_such_key" in c["error"] for c in cases)


def test_memory_takes_the_largest_device_and_none_without_statistics():
    class Dev:
        def __init__(self, stats):
            self.stats = stats

        def memory_stats(self):
            if isinstance(self.stats, Exception):
                raise self.stats
            return self.stats

    gpus = [Dev({"peak_bytes_in_use": 5, "bytes_in_use": 3}),
            Dev({"peak_bytes_in_use": 9, "bytes_in_use": 1})]
    assert ac.memory(gpus) == {"peak_bytes_in_use": 9, "bytes_in_use": 3}
    assert ac.memory([Dev(None), Dev(NotImplementedError())]) == {"peak_bytes_in_use": None,
                                                                    "bytes_in_use": None}
