"""Resuming a run: each step logged once (metrics.jsonl and TensorBoard), the config compared with
the saved one (schedule keys may change and are recorded, model/data keys are refused), on the
tiny toy family (tests/toy_family.py)."""

import json
import os
import shutil
import struct
import sys
import types

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toy_family  # noqa: E402  (registers 'toy')

from inpaintjax.training import configuration_error, train  # noqa: E402


def _event_steps(tb_dir):
    """{tag: [steps]} of every scalar/image summary in the TensorBoard event files, read with
    tensorboardX's own protobuf definitions (records: u64 length, u32 crc, data, u32 crc)."""
    from tensorboardX.proto import event_pb2
    out = {}
    for name in sorted(os.listdir(tb_dir)):
        data = open(os.path.join(tb_dir, name), "rb").read()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append(event.step)
    return out


def _metric_steps(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line)["step"] for line in f]


def _config(num_steps):
    c = toy_family.toy_config()
    c.num_steps, c.log_every, c.checkpoint_every, c.image_every = num_steps, 1, 3, 2
    return c


def test_a_resume_within_the_same_second_keeps_the_first_runs_events(tmp_path, monkeypatch):
    """tensorboardX names an event file by the second it is opened and the host; a resumed run
    opening its writer in the same second (a fast crash and restart) must not truncate the file of
    the run before it. The clock of tensorboardX's event writer (its module's `time`, nobody else's)
    is frozen, so both runs open their files in one second."""
    from tensorboardX import event_file_writer
    monkeypatch.setattr(event_file_writer, "time", types.SimpleNamespace(time=lambda: 1_700_000_000.0))
    workdir = str(tmp_path / "run")
    train(_config(3), workdir)
    train(_config(5), workdir)                   # resumes from checkpoint 3
    assert len(os.listdir(os.path.join(workdir, "tb"))) == 2   # (their names order them at random)
    assert sorted(_event_steps(os.path.join(workdir, "tb"))["loss/l1"]) == [1, 2, 3, 4, 5]


def test_resumed_run_logs_each_step_once_and_records_its_config_changes(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    train(_config(5), workdir)                   # logs 1..5, checkpoints 3 and 5
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("inpaintjax: family toy") and "program: " in first
    assert "xla_cpu=" in first and "conv=" in first
    # a run killed after logging step 5 but before checkpoint 5 was written
    shutil.rmtree(os.path.join(workdir, "checkpoints", "5"))
    saved_config = open(os.path.join(workdir, "config.json")).read()
    result = train(_config(7), workdir)          # resumes from 3, logs 4..7
    assert result["step"] == 7
    assert _metric_steps(workdir) == [1, 2, 3, 4, 5, 6, 7]
    steps = _event_steps(os.path.join(workdir, "tb"))
    assert steps["loss/l1"] == [1, 2, 3, 4, 5, 6, 7]
    assert [s for tag, s in steps.items() if tag.startswith("preview/")] == [[2, 4, 6, 7]]
    # the original config is kept; the change is recorded with the start it belongs to
    assert open(os.path.join(workdir, "config.json")).read() == saved_config
    starts = [json.loads(line) for line in open(os.path.join(workdir, "starts.jsonl"))]
    assert [s["step"] for s in starts] == [0, 3]
    assert starts[0]["config_changes"] == {}
    assert starts[1]["config_changes"] == {"num_steps": [5, 7]}
    assert starts[1]["program"]["conv"] in ("auto", "native")
    assert "xla_cpu" in starts[1]["program"]


def test_resume_refuses_a_config_that_changes_the_model_or_the_data(tmp_path):
    workdir = str(tmp_path / "run")
    train(_config(3), workdir)
    before = {name: open(os.path.join(workdir, name), "rb").read()
              for name in ("config.json", "metrics.jsonl")}
    c = _config(6)
    c.optim.lr = 0.5
    c.data.image_size = 24
    with pytest.raises(ValueError) as info:
        train(c, workdir)
    assert configuration_error(info.value)      # train.py: one line, exit 2
    text = str(info.value)
    assert "optim.lr: 0.01 -> 0.5" in text and "data.image_size: 16 -> 24" in text
    assert "num_steps" not in text.split("(")[1].split(")")[0]   # an allowed change is not named
    for name, data in before.items():           # nothing was written
        assert open(os.path.join(workdir, name), "rb").read() == data, name


def test_resume_below_the_checkpoint_is_refused_and_at_it_says_so(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    train(_config(3), workdir)                   # checkpoint 3
    before = {name: open(os.path.join(workdir, name), "rb").read()
              for name in ("config.json", "metrics.jsonl", "starts.jsonl")}
    capsys.readouterr()
    with pytest.raises(ValueError, match=r"config.num_steps=2 is below checkpoint 3 in .*nothing "
                                         r"would train") as info:
        train(_config(2), workdir)
    assert configuration_error(info.value)      # train.py: one line, exit 2
    for name, data in before.items():           # nothing was written
        assert open(os.path.join(workdir, name), "rb").read() == data, name
    assert train(_config(3), workdir)["step"] == 3   # the same target again: a finished run
    out = capsys.readouterr().out
    assert "resumed from checkpoint 3" in out and "num_steps reached, nothing to train" in out, out
