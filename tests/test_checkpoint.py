"""Checkpoints and failure: a run killed with SIGKILL (at a seeded step, while it is blocked there,
so the kill cannot come too late) resumes to the uninterrupted run's state bit for bit, for the
toy family and for DeepFill v2; a truncated newest checkpoint is skipped with a warning for the
previous one; SIGTERM saves and exits."""

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
TOY_ARGS = ["num_steps=40", "checkpoint_every=4", "log_every=4", "image_every=0",
            "data.image_size=64", "model.features=16"]
DEEPFILL = ["--config", os.path.join(ROOT, "configs", "deepfill_v2.py") + ":test", "--dump", "state"]
DEEPFILL_ARGS = ["num_steps=6", "checkpoint_every=2", "log_every=1", "image_every=0",
                 "data.num_workers=0"]


def _env(cache_dir):
    """The child processes' environment: this checkout importable, no inherited XLA_FLAGS, and one
    persistent compilation cache, so the resumed run reuses what the first two runs compiled."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("XLA_FLAGS", None)
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    return env


def _steps(workdir):
    d = os.path.join(workdir, "checkpoints")
    return sorted(int(s) for s in os.listdir(d) if s.isdigit()) if os.path.isdir(d) else []


def _kill_then_resume(tmp_path, args, num_steps, pause_at):
    """Run `args` uninterrupted, and again SIGKILLed while blocked after step `pause_at` (it cannot
    finish first: run_toy.py --pause_at never starts the next step), then resumed in the killed
    run's workdir. -> (uninterrupted dump, resumed dump, checkpoints present at the kill)."""
    ref, broken = str(tmp_path / "ref"), str(tmp_path / "broken")
    env = _env(tmp_path / "jax_cache")
    reference = subprocess.Popen([sys.executable, RUN, ref, str(tmp_path / "ref.npz")] + args,
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    victim = subprocess.Popen([sys.executable, RUN, broken, str(tmp_path / "x.npz"), "--pause_at",
                               str(pause_at)] + args, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    marker = os.path.join(broken, f"paused.{pause_at}")
    deadline = time.time() + 600
    while not (os.path.exists(marker) and _steps(broken)) and time.time() < deadline:
        assert victim.poll() is None, victim.stdout.read().decode()[-3000:]
        time.sleep(0.05)
    assert os.path.exists(marker) and _steps(broken), "the victim never reached the kill point"
    killed_after = _steps(broken)
    assert victim.poll() is None
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert killed_after[-1] <= pause_at < num_steps
    out = subprocess.run([sys.executable, RUN, broken, str(tmp_path / "resumed.npz")] + args,
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "resumed from checkpoint" in out.stdout
    ref_out = reference.communicate(timeout=600)[0].decode()
    assert reference.returncode == 0, ref_out[-3000:]
    return np.load(tmp_path / "ref.npz"), np.load(tmp_path / "resumed.npz"), killed_after


def _assert_identical(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k


def test_sigkill_at_a_seeded_step_then_resume_matches_uninterrupted(tmp_path):
    pause_at = random.Random(20190606).randrange(5, 35)   # seeded: the same kill point every run
    a, b, _ = _kill_then_resume(tmp_path, TOY_ARGS, 40, pause_at)
    assert len(a) >= 4
    _assert_identical(a, b)


def test_deepfill_v2_sigkill_then_resume_matches_uninterrupted(tmp_path):
    # the real family: both networks, the SN-PatchGAN's power-iteration vectors, both Adam states
    pause_at = random.Random(14).randrange(2, 6)
    a, b, killed_after = _kill_then_resume(tmp_path, DEEPFILL + DEEPFILL_ARGS, 6, pause_at)
    assert killed_after[-1] < 6
    groups = {k.split("[")[0] for k in a}
    assert {".g_params", ".d_params", ".d_batch_stats", ".step"} <= groups
    assert any(k.startswith(".g_opt_state") for k in a) and any(k.startswith(".d_opt_state") for k in a)
    assert any(k.startswith(".d_batch_stats") and k.endswith("u']") for k in a)
    _assert_identical(a, b)


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
                            env=_env(tmp_path / "jax_cache"), stdout=subprocess.PIPE,
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
