"""Checkpoints and failure: a run killed with SIGKILL (at a seeded step, while it is blocked there,
so the kill cannot come too late) resumes to the uninterrupted run's state bit for bit; a truncated
newest checkpoint is skipped with a warning for the previous one; SIGTERM saves and exits. Every
family's state reads back bit for bit through the Checkpointer in test_parallel.py."""

import logging
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toy_family  # noqa: E402

from inpaintjax.config import apply_overrides  # noqa: E402
from inpaintjax.training import load_for_inference, train  # noqa: E402
from inpaintjax.training.checkpoint import Checkpointer, abstract_state  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "tests", "run_toy.py")
TOY_ARGS = ["num_steps=24", "checkpoint_every=4", "log_every=4", "image_every=0",
            "data.image_size=64", "model.features=16"]


def _steps(workdir):
    d = os.path.join(workdir, "checkpoints")
    return sorted(int(s) for s in os.listdir(d) if s.isdigit()) if os.path.isdir(d) else []


def _flat(tree):
    return [(jax.tree_util.keystr(k), np.asarray(v))
            for k, v in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]]


def test_sigkill_at_a_seeded_step_then_resume_matches_uninterrupted(tmp_path, child_env, capsys):
    """A child process trains the toy family and is SIGKILLed while blocked after step `pause_at`
    (run_toy.py --pause_at never starts the next step); train() in this process resumes in its
    workdir and ends with the uninterrupted run's whole state, bit for bit."""
    pause_at = random.Random(20190606).randrange(5, 20)   # seeded: the same kill point every run
    broken = str(tmp_path / "broken")
    # the victim runs the programs this process runs: 8 simulated devices, training on the first
    victim = subprocess.Popen([sys.executable, RUN, broken, str(tmp_path / "x.npz"), "--pause_at",
                               str(pause_at), "--mesh_devices", "1"] + TOY_ARGS,
                              env=child_env("--xla_force_host_platform_device_count=8"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        config = apply_overrides(toy_family.toy_config(), TOY_ARGS)
        reference = train(config, str(tmp_path / "ref"))["state"]    # while the victim starts
        marker = os.path.join(broken, f"paused.{pause_at}")
        deadline = time.time() + 600
        while not (os.path.exists(marker) and _steps(broken)) and time.time() < deadline:
            assert victim.poll() is None, victim.stdout.read().decode()[-3000:]
            time.sleep(0.05)
        assert os.path.exists(marker) and _steps(broken), "the victim never reached the kill point"
        killed_after = _steps(broken)
        assert victim.poll() is None
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert killed_after[-1] <= pause_at < 24
    capsys.readouterr()
    resumed = train(config, broken)["state"]
    assert f"resumed from checkpoint {killed_after[-1]}" in capsys.readouterr().out
    a, b = _flat(reference), _flat(resumed)
    assert [k for k, _ in a] == [k for k, _ in b] and len(a) >= 4
    for (k, x), (_, y) in zip(a, b, strict=True):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), k


def test_truncated_newest_checkpoint_is_skipped_with_a_warning(tmp_path, caplog):
    c = toy_family.toy_config()
    c.num_steps, c.checkpoint_every, c.image_every = 4, 2, 0
    workdir = str(tmp_path)
    final = train(c, workdir)["state"]
    with caplog.at_level(logging.WARNING):
        ckpt = Checkpointer(workdir, read_only=True)
    # opening a run to read it is not warned about (orbax logs "Given directory is read only")
    assert not any("read only" in r.getMessage() for r in caplog.records), caplog.records
    assert ckpt.steps() == [2, 4]
    ckpt.close()
    # truncate checkpoint 4's array data files (as a crash mid-copy or a full disk would leave them)
    files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(workdir, "checkpoints", "4", "state"))
             for f in fs if os.path.basename(d) == "d"]
    assert files
    for path in files:
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    family = toy_family.ToyFamily(c)
    ckpt = Checkpointer(workdir, read_only=True)
    with caplog.at_level(logging.WARNING):
        step, state, meta = ckpt.restore(abstract_state(family, c))
    ckpt.close()
    assert step == 2 and meta["step"] == 2
    assert any("checkpoint 4" in r.getMessage() and "corrupt" in r.getMessage() for r in caplog.records)
    # resuming in that workdir starts from 2 and recomputes steps 3-4 to the same parameters
    resumed = train(c, workdir)["state"]
    assert os.path.isdir(os.path.join(workdir, "checkpoints", "4.corrupt"))  # moved aside, kept
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-7),
                 final.params, resumed.params)
    _, _, variables = load_for_inference(workdir)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-7),
                 final.params, variables)


def test_sigterm_saves_then_exits(tmp_path, child_env):
    workdir = str(tmp_path / "run")
    args = ["num_steps=100000", "checkpoint_every=50", "log_every=50", "image_every=0"]
    proc = subprocess.Popen([sys.executable, RUN, workdir, str(tmp_path / "p.npz")] + args,
                            env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not _steps(workdir) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    line = [x for x in out.splitlines() if x.startswith("SIGTERM: saved checkpoint")]
    assert len(line) == 1
    step = int(line[0].split()[3].rstrip(";"))
    assert 50 <= step < 100000 and _steps(workdir)[-1] == step
