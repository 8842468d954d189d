"""inpaintjax.xla_cpu: importing inpaintjax changes nothing; `configure()` (what the entry points
call) applies this CPU's calibrated set-up, or a forced one, respects the user's own XLA_FLAGS and
says so when it is too late; XLA honours the option."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from inpaintjax import xla_cpu

PROBE = """
import json, os, sys, warnings
warnings.simplefilter("always")
{before}
import inpaintjax
flags_after_import = os.environ.get("XLA_FLAGS", "")
import jax, jax.numpy as jnp
from inpaintjax import xla_cpu
{configure}
a = jnp.ones((256, 256))
hlo = jax.jit(lambda a: a @ a).lower(a).compile().as_text()
print(json.dumps({{"state": xla_cpu.state, "off": xla_cpu.ynn_convolutions_off(),
                  "flags": os.environ.get("XLA_FLAGS", ""), "ynn_in_hlo": "__ynn_fusion" in hlo,
                  "flags_after_import": flags_after_import}}))
"""


def _probe(before: str = "", configure: str = "xla_cpu.configure()", **env_overrides) -> tuple[dict, str]:
    env = dict(os.environ)
    for key in ("XLA_FLAGS", "INPAINTJAX_XLA_CPU", "INPAINTJAX_CALIBRATION"):
        env.pop(key, None)
    env.setdefault("INPAINTJAX_CALIBRATION", os.devnull + ".absent")
    env.update(env_overrides)
    out = subprocess.run([sys.executable, "-c", PROBE.format(before=before, configure=configure)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_import_changes_nothing_and_tuned_turns_ynnpack_off_which_xla_honours():
    rec, _ = _probe(configure="", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert rec["state"] == "unconfigured" and not rec["off"] and rec["ynn_in_hlo"]
    assert rec["flags"] == rec["flags_after_import"] == "--xla_force_host_platform_device_count=2"
    rec, _ = _probe(INPAINTJAX_XLA_CPU="tuned", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert rec["state"] == "tuned" and rec["off"]
    # the user's flags are kept, ours appended
    assert rec["flags"] == ("--xla_force_host_platform_device_count=2 "
                            "--xla_cpu_experimental_ynn_fusion_type=")
    assert not rec["ynn_in_hlo"]  # the compiled dot is XLA's own, not a YNNPACK fusion


def test_auto_applies_this_cpus_calibration_and_defaults_without_one(tmp_path):
    # no calibration record: the rule for this CPU's kind (tests/test_xla_cpu_auto.py)
    flags = xla_cpu.cpu_info()[1]
    rule = "tuned" if {"avx2", "avx512f"} & flags else "off"
    rec, _ = _probe(INPAINTJAX_CALIBRATION=str(tmp_path / "none.json"))
    assert rec["state"] == rule and rec["ynn_in_hlo"] == (rule == "off")
    path = str(tmp_path / "cal.json")
    for winner, state in (("tuned", "tuned"), ("default", "off")):
        xla_cpu.record_calibration({winner: [1.0, 1.1, 0.9], ("default" if winner == "tuned" else "tuned"): [2.0, 2.0, 2.1]},
                                   path=path)
        rec, _ = _probe(INPAINTJAX_CALIBRATION=path)
        assert rec["state"] == state and rec["ynn_in_hlo"] == (state == "off")
    # a record for another CPU does not apply here
    other = str(tmp_path / "other.json")
    xla_cpu.record_calibration({"tuned": [1.0], "default": [2.0]}, path=other, key="another CPU")
    xla_cpu.record_calibration({"tuned": [2.0], "default": [1.0]}, path=other)
    assert _probe(INPAINTJAX_CALIBRATION=other)[0]["state"] == "off"


def test_calibration_record_picks_the_lower_median(tmp_path):
    path = str(tmp_path / "cal.json")
    rec = xla_cpu.record_calibration({"tuned": [5.6, 9.0, 5.5], "default": [6.9, 7.0, 6.0]}, path=path,
                                     key="cpu A")
    assert rec["winner"] == "tuned" and rec["median_s"] == {"tuned": 5.6, "default": 6.9}
    assert rec["speedup_of_winner"] == pytest.approx(6.9 / 5.6)
    xla_cpu.record_calibration({"tuned": [1.0], "default": [0.95]}, path=path, key="cpu B")
    data = json.load(open(path))
    assert data["cpu A"]["winner"] == "tuned" and data["cpu B"]["winner"] == "default"
    with pytest.raises(ValueError, match="both"):
        xla_cpu.record_calibration({"tuned": [1.0]}, path=path)
    assert "cpus" in xla_cpu.cpu_key()


def test_too_late_warns_and_falls_back():
    rec, err = _probe(before="import jax; jax.devices()", INPAINTJAX_XLA_CPU="tuned")
    assert rec["state"] == "too_late" and not rec["off"]
    assert rec["ynn_in_hlo"]  # XLA's default stayed in force
    assert "Call it before running any JAX computation" in err


def test_user_setting_and_opt_out_are_respected():
    rec, _ = _probe(XLA_FLAGS="--xla_cpu_experimental_ynn_fusion_type=-individual_convolution")
    assert rec["state"] == "user" and rec["off"]
    assert rec["flags"] == "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
    rec, _ = _probe(INPAINTJAX_XLA_CPU="default")
    assert rec["state"] == "off" and not rec["off"] and rec["flags"] == ""
    assert rec["ynn_in_hlo"]


@pytest.mark.parametrize("value, off", [
    ("", True), ("individual_dot", True), ("individual_dot,individual_convolution", False),
    ("-individual_convolution", True), ("+eltwise", False), ("-individual_dot", False)])
def test_reading_the_users_value(monkeypatch, value, off):
    monkeypatch.setattr(xla_cpu, "state", "user")
    monkeypatch.setenv("XLA_FLAGS", f"--xla_force_host_platform_device_count=8 "
                                    f"--xla_cpu_experimental_ynn_fusion_type={value}")
    assert xla_cpu.ynn_convolutions_off() is off


def test_bad_mode_names_the_variable(monkeypatch):
    monkeypatch.setattr(xla_cpu, "state", "unconfigured")
    monkeypatch.setenv("INPAINTJAX_XLA_CPU", "fastest")
    with pytest.raises(ValueError, match="INPAINTJAX_XLA_CPU='fastest'"):
        xla_cpu.configure()


def test_without_option_keeps_other_flags():
    flags = ("--xla_force_host_platform_device_count=8 --xla_cpu_experimental_ynn_fusion_type= "
             "--xla_dump_to=/tmp/x")
    assert xla_cpu.without_option(flags) == ("--xla_force_host_platform_device_count=8 "
                                             "--xla_dump_to=/tmp/x")
