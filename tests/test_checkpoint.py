"""Checkpoints and failure: a run killed with SIGKILL resumes to the uninterrupted run's parameters;
a truncated newest checkpoint is skipped with a warning for the previous one."""

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

from inpaintjax.training import load_for_inference, train  # noqa: E402
from inpaintjax.training.checkpoint import Checkpointer, abstract_state  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "tests", "run_toy.py")
# enough steps (64x64, 16 features; about 7 s of training on two idle cores, 50 checkpoints) that
# a kill up to 1.5 s after the first checkpoint lands mid-run however fast the machine is
NUM_STEPS = 200
ARGS = [f"num_steps={NUM_STEPS}", "checkpoint_every=4", "log_every=4", "image_every=0", "data.image_size=64",
        "model.features=16"]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("XLA_FLAGS", None)
    return env


def _steps(workdir):
    d = os.path.join(workdir, "checkpoints")
    return sorted(int(s) for s in os.listdir(d) if s.isdigit()) if os.path.isdir(d) else []


def test_sigkill_at_a_random_moment_then_resume_matches_uninterrupted(tmp_path):
    ref, broken = str(tmp_path / "ref"), str(tmp_path / "broken")
    reference = subprocess.Popen([sys.executable, RUN, ref, str(tmp_path / "ref.npz")] + ARGS,
                                 env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    victim = subprocess.Popen([sys.executable, RUN, broken, str(tmp_path / "x.npz")] + ARGS,
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not _steps(broken) and victim.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 1.5))   # somewhere after the first checkpoint began
    assert victim.poll() is None, "the run finished before it could be killed"
    killed_after = _steps(broken)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert killed_after and killed_after[-1] < NUM_STEPS
    out = subprocess.run([sys.executable, RUN, broken, str(tmp_path / "resumed.npz")] + ARGS,
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "resumed from checkpoint" in out.stdout
    assert reference.wait(timeout=300) == 0
    a, b = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "resumed.npz")
    assert sorted(a) == sorted(b) and len(a) == 8  # two networks of two convolutions
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=0, atol=1e-7, err_msg=k)


def test_truncated_newest_checkpoint_is_skipped_with_a_warning(tmp_path, caplog):
    c = toy_family.toy_config()
    c.num_steps, c.checkpoint_every, c.image_every = 4, 2, 0
    workdir = str(tmp_path)
    final = train(c, workdir)["state"]
    ckpt = Checkpointer(workdir, read_only=True)
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
    for a, b in zip(jax.tree.leaves(final.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-7)
    _, _, variables = load_for_inference(workdir)
    for a, b in zip(jax.tree.leaves(final.params), jax.tree.leaves(variables)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-7)


def test_sigterm_saves_then_exits(tmp_path):
    workdir = str(tmp_path / "run")
    args = ["num_steps=100000", "checkpoint_every=50", "log_every=50", "image_every=0"]
    proc = subprocess.Popen([sys.executable, RUN, workdir, str(tmp_path / "p.npz")] + args,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
