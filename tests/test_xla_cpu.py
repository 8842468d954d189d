"""inpaintjax.xla_cpu: `import inpaintjax` turns XLA:CPU's YNNPACK fusions off when it still can,
respects the user's own XLA_FLAGS, and says so when it is too late; XLA honours the option."""

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
import jax, jax.numpy as jnp
from inpaintjax import xla_cpu
a = jnp.ones((256, 256))
hlo = jax.jit(lambda a: a @ a).lower(a).compile().as_text()
print(json.dumps({{"state": xla_cpu.state, "off": xla_cpu.ynn_convolutions_off(),
                  "flags": os.environ.get("XLA_FLAGS", ""), "ynn_in_hlo": "__ynn_fusion" in hlo}}))
"""


def _probe(before: str = "", **env_overrides) -> tuple[dict, str]:
    env = dict(os.environ)
    for key in ("XLA_FLAGS", "INPAINTJAX_XLA_CPU"):
        env.pop(key, None)
    env.update(env_overrides)
    out = subprocess.run([sys.executable, "-c", PROBE.format(before=before)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_import_turns_ynnpack_off_and_xla_honours_it():
    rec, _ = _probe(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert rec["state"] == "tuned" and rec["off"]
    # the user's flags are kept, ours appended
    assert rec["flags"] == ("--xla_force_host_platform_device_count=2 "
                            "--xla_cpu_experimental_ynn_fusion_type=")
    assert not rec["ynn_in_hlo"]  # the compiled dot is XLA's own, not a YNNPACK fusion


def test_too_late_warns_and_falls_back():
    rec, err = _probe(before="import jax; jax.devices()")
    assert rec["state"] == "too_late" and not rec["off"]
    assert rec["ynn_in_hlo"]  # XLA's default stayed in force
    assert "import inpaintjax before running any JAX computation" in err


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
