"""inpaintjax.xla_cpu without a calibration record: `configure()` picks the set-up by the rule for
the CPU's kind (x86 with AVX2 or AVX-512: YNNPACK fusions off; otherwise jaxlib's defaults),
records it, says so in one line, and reuses the record; a rule's record that an older rule wrote is
replaced; a measured record, a forced mode or the user's own XLA_FLAGS setting bypass the rule. All in-process, on injected CPU descriptions (no child process)."""

from __future__ import annotations

import json
import os

import pytest

from inpaintjax import xla_cpu

BASE_FLAGS = "--xla_force_host_platform_device_count=8"
AVX512_XEON = ("Test Xeon", frozenset({"sse4_2", "avx2", "fma", "avx512f", "avx512bw"}))
EPYC = ("Test EPYC", frozenset({"sse4_2", "avx2", "fma"}))
ARM = ("Test Arm", frozenset({"fp", "asimd", "sve"}))


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """configure() as in a fresh process: not yet configured, no backend running, a calibration
    file of its own, no forced mode; returns the calibration file's path."""
    path = str(tmp_path / "xla_cpu.json")
    monkeypatch.setattr(xla_cpu, "state", "unconfigured")
    monkeypatch.setattr(xla_cpu, "_backends_running", lambda: False)
    monkeypatch.setenv("INPAINTJAX_CALIBRATION", path)
    monkeypatch.setenv("XLA_FLAGS", BASE_FLAGS)
    monkeypatch.delenv("INPAINTJAX_XLA_CPU", raising=False)
    return path


def _cpu(monkeypatch, cpu):
    monkeypatch.setattr(xla_cpu, "cpu_info", lambda: cpu)
    return f"{cpu[0]} | {'avx512' if 'avx512f' in cpu[1] else 'no-avx512'} | {os.cpu_count()} cpus"


def _rule_must_not_run(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("the rule ran although the set-up was already decided")
    monkeypatch.setattr(xla_cpu, "rule_mode", fail)


def test_the_rule_follows_the_measured_cpu_kinds():
    assert xla_cpu.rule_mode(AVX512_XEON[1])[0] == "tuned"
    assert xla_cpu.rule_mode(EPYC[1])[0] == "tuned"
    assert xla_cpu.rule_mode(ARM[1])[0] == "default"
    assert xla_cpu.rule_mode(frozenset({"sse4_2", "avx"}))[0] == "default"  # an x86 before AVX2
    assert xla_cpu.rule_mode(frozenset())[0] == "default"                  # no /proc/cpuinfo


@pytest.mark.parametrize("cpu, state, flags, why", [
    (AVX512_XEON, "tuned", BASE_FLAGS + " --xla_cpu_experimental_ynn_fusion_type=", "AVX-512 CPU"),
    (EPYC, "tuned", BASE_FLAGS + " --xla_cpu_experimental_ynn_fusion_type=", "AVX2 CPU"),
    (ARM, "off", BASE_FLAGS, "neither measured kind")])
def test_without_a_record_the_rule_chooses_records_and_says_so_once(fresh, monkeypatch, capsys,
                                                                     cpu, state, flags, why):
    key = _cpu(monkeypatch, cpu)
    assert xla_cpu.configure() == state
    assert os.environ["XLA_FLAGS"] == flags
    assert xla_cpu.ynn_convolutions_off() is (state == "tuned")
    rec = json.load(open(fresh))[key]
    assert rec["winner"] == ("tuned" if state == "tuned" else "default")
    assert rec["source"] == "rule" and not xla_cpu.is_measured(rec)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    chosen = "YNNPACK fusions off (tuned)" if state == "tuned" else "jaxlib's defaults"
    assert f"XLA:CPU set-up {chosen} for this CPU ({key}), chosen by rule" in lines[0]
    assert why in lines[0] and "replacing" not in lines[0]
    assert f"recorded in {fresh}" in lines[0] and "--calibrate" in lines[0]

    # the next run (a fresh process: state reset, flags as at start) reuses the record silently
    monkeypatch.setattr(xla_cpu, "state", "unconfigured")
    monkeypatch.setenv("XLA_FLAGS", BASE_FLAGS)
    written = open(fresh).read()
    assert xla_cpu.configure() == state
    assert open(fresh).read() == written
    assert os.environ["XLA_FLAGS"] == flags
    assert capsys.readouterr().err == ""
    assert xla_cpu.configure() == state  # idempotent within a process


def test_an_older_rules_record_is_replaced_by_the_rule_and_said(fresh, monkeypatch, capsys):
    """A Zen 3 EPYC that ran inpaintjax when the rule gave AVX2-only CPUs jaxlib's defaults holds
    a rule's record 'default'; the rule now says 'tuned': it is applied, recorded and said once.
    A measured 'default' for the same CPU is kept."""
    key = _cpu(monkeypatch, EPYC)
    xla_cpu.record_rule("default", "no AVX-512 (an older rule)", path=fresh)
    assert xla_cpu.configure() == "tuned"
    rec = json.load(open(fresh))[key]
    assert rec["winner"] == "tuned" and rec["source"] == "rule" and "AVX2 CPU" in rec["why"]
    line = capsys.readouterr().err.strip()
    assert "chosen by rule (replacing the earlier rule's 'default')" in line and "\n" not in line
    monkeypatch.setattr(xla_cpu, "state", "unconfigured")
    monkeypatch.setenv("XLA_FLAGS", BASE_FLAGS)
    xla_cpu.record_calibration({"tuned": [2.0], "default": [1.0]}, path=fresh)
    _rule_must_not_run(monkeypatch)
    assert xla_cpu.configure() == "off" and capsys.readouterr().err == ""


def test_a_measured_record_beats_the_rule(fresh, monkeypatch, capsys):
    _cpu(monkeypatch, AVX512_XEON)
    xla_cpu.record_calibration({"tuned": [2.0, 2.1], "default": [1.5, 1.6]}, path=fresh)
    _rule_must_not_run(monkeypatch)
    assert xla_cpu.configure() == "off" and os.environ["XLA_FLAGS"] == BASE_FLAGS
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("forced, state", [("tuned", "tuned"), ("default", "off")])
def test_a_forced_mode_bypasses_the_rule_and_records_nothing(fresh, monkeypatch, capsys, forced,
                                                             state):
    _cpu(monkeypatch, ARM if forced == "tuned" else AVX512_XEON)  # the rule would say otherwise
    _rule_must_not_run(monkeypatch)
    monkeypatch.setenv("INPAINTJAX_XLA_CPU", forced)
    assert xla_cpu.configure() == state
    assert not os.path.exists(fresh) and capsys.readouterr().err == ""


def test_the_users_flag_bypasses_the_rule_and_records_nothing(fresh, monkeypatch, capsys):
    _cpu(monkeypatch, AVX512_XEON)
    _rule_must_not_run(monkeypatch)
    flags = BASE_FLAGS + " --xla_cpu_experimental_ynn_fusion_type=individual_convolution"
    monkeypatch.setenv("XLA_FLAGS", flags)
    assert xla_cpu.configure() == "user" and os.environ["XLA_FLAGS"] == flags
    assert not os.path.exists(fresh) and capsys.readouterr().err == ""


@pytest.mark.filterwarnings("ignore:ignoring the unreadable")
def test_an_unwritable_record_still_applies_the_choice_and_says_why(fresh, monkeypatch, capsys,
                                                                     tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("INPAINTJAX_CALIBRATION", str(blocker / "xla_cpu.json"))
    _cpu(monkeypatch, AVX512_XEON)
    assert xla_cpu.configure() == "tuned"
    line = capsys.readouterr().err.strip()
    assert "chosen by rule" in line and "not recorded (" in line and "\n" not in line


def test_calibrate_if_missing_treats_the_rules_record_as_missing(fresh, monkeypatch):
    key = _cpu(monkeypatch, AVX512_XEON)
    xla_cpu.record_rule("tuned", "a reason", path=fresh)
    assert not xla_cpu.is_measured(xla_cpu.read_calibration(fresh)[key])
    xla_cpu.record_calibration({"tuned": [1.0], "default": [2.0]}, path=fresh)
    assert xla_cpu.is_measured(xla_cpu.read_calibration(fresh)[key])
    # records written before the rule existed carry no 'source': they were all measured
    assert xla_cpu.is_measured({"winner": "tuned", "median_s": {"tuned": 1.0, "default": 2.0}})
    with pytest.raises(ValueError, match="winner"):
        xla_cpu.record_rule("fastest", "?", path=fresh)
