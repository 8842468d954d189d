"""Data parallelism and checkpoints, in this process (8 simulated CPU devices, tests/conftest.py):

- every family's jitted step on a mesh over 8 devices, with the batch sharded one row per device
  and the state replicated (as `train()` places them), gives the 1-device step's losses and state
  at the same global batch, and the 1-device state reads back bit for bit through the
  Checkpointer;
- `train()` itself (the generic loop) on 8 devices gives the 1-device run's losses and state;
- 2 processes over jax.distributed (gloo, 127.0.0.1) end with identical parameters, equal to a
  1-process run."""

import json
import os
import re
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import family_steps as fs  # noqa: E402
import toy_family  # noqa: E402  (registers 'toy')
from conftest import mesh_over  # noqa: E402

from inpaintjax.checkpoints import Checkpointer, abstract_state  # noqa: E402
from inpaintjax.families import get as get_family  # noqa: E402
from inpaintjax.training import sharding, train  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "tests", "run_toy.py")
STEPS = 2


def _flat(tree):
    return {jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]}


def _groups(flat):
    """Leaf names by the part of the state they belong to: a top-level field, split into its
    networks where it holds a few (EdgeConnect's `edge`/`inpaint`/`opt`, DeepFill v1's critics,
    the toy's `first`/`second`), not into layers."""
    parts = {k: re.findall(r"\.\w+|\[[^\]]*\]", k) for k in flat}
    children = {}
    for p in parts.values():
        children.setdefault(p[0], set()).add(p[1] if len(p) > 1 else "")
    out = {}
    for k, p in parts.items():
        few = len(children[p[0]]) <= 4 and len(p) > 2 and p[1].startswith("['")
        out.setdefault(p[0] + (p[1] if few else ""), []).append(k)
    return out


def _assert_states_agree(s8, s1, before):
    """Each part of the state (a network, its optimiser state, its statistics) on 8 devices
    against 1: integers equal; floats by the size of their difference against how far the steps
    moved them from `before`. A sharding mistake (a per-device mean, per-device BatchNorm
    statistics) differs by about as much as it moves. The optimiser's moments are linear in the
    gradients: they must agree to 0.5% (the last step's gradients are taken at parameters that
    may differ as said next; EdgeConnect's D2 moments differed by 0.2%). The parameters (and their
    EMA) to 5%: Adam's first updates are about lr * sign(gradient), so where a gradient is zero
    but for rounding (a conv bias before an instance norm, a GAN critic's cancelling real and fake
    terms) another reduction order flips its sign and moves that weight by a whole step the other
    way."""
    assert list(s1) == list(s8) == list(before)
    for group, keys in _groups(s1).items():
        ints = [k for k in keys if not np.issubdtype(s1[k].dtype, np.floating)]
        for k in ints:
            np.testing.assert_array_equal(s8[k], s1[k], err_msg=k)
        floats = [k for k in keys if k not in ints]
        if not floats:
            continue
        diff = np.sqrt(sum(np.sum((s8[k].astype(np.float64) - s1[k]) ** 2) for k in floats))
        moved = np.sqrt(sum(np.sum((s1[k].astype(np.float64) - before[k]) ** 2) for k in floats))
        if moved == 0:  # frozen this run (e.g. toy's second network): untouched on 8 devices too
            assert diff == 0, group
        else:
            assert diff < (5e-3 if "opt" in group else 0.05) * moved, (group, diff, moved)


@pytest.mark.parametrize("name", fs.per_family())
def test_eight_devices_step_like_one_and_the_state_checkpoints_bit_for_bit(name, tmp_path):
    run = fs.family_step(name)
    mesh = mesh_over(fs.ROWS)
    repl = sharding.replicated(mesh)
    stacked_axis = 1 if run.family.batches_per_step > 1 else 0
    step8 = jax.jit(run.family.train_step, out_shardings=(repl, repl))
    _, host_batch = fs.batch(run.family, fs.mixed_holes())
    batch8 = jax.device_put(host_batch, sharding.batch_sharding(mesh, stacked_axis))
    state1, state8 = run.state, jax.device_put(run.state, repl)
    frozen8 = jax.device_put(run.frozen, repl)
    m1, m8 = [], []
    for i in range(STEPS + 1):  # the schedule's first rate is 0: two steps that move the state
        key = jax.random.key(i + 1)
        state1, metrics1 = run.step(state1, host_batch, key, run.frozen)
        state8, metrics8 = step8(state8, batch8, jax.device_put(key, repl), frozen8)
        m1.append(jax.device_get(metrics1))
        m8.append(jax.device_get(metrics8))
    assert {len(x.sharding.device_set) for x in jax.tree.leaves(state8)} == {fs.ROWS}

    # the losses of every step. The first two run on the initial parameters (the schedule's first
    # rate is 0): only the reduction order differs, 1e-4. The last runs on parameters one update
    # later, which may differ by the sign flips `_assert_states_agree` explains: 2e-3 (EdgeConnect's
    # D2 gradient norm differed by 6e-4 there); a sharding mistake shows in the first step already
    losses = sorted(k for k in m1[0] if "loss" in k or k.startswith(("g/l1", "d/", "edge/", "inpaint/")))
    assert losses
    for key in losses:
        for i, (a, b) in enumerate(zip(m8, m1, strict=True)):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-4 if i < 2 else 2e-3, atol=1e-6,
                                       err_msg=f"{key} at step {i + 1}")
    s1 = _flat(state1)
    _assert_states_agree(_flat(state8), s1, _flat(run.state))
    assert any("ema" in k for k in s1)

    # the state reads back bit for bit: every network, optimiser state, EMA, spectral-norm
    # vector, BatchNorm statistic and the step
    ckpt = Checkpointer(str(tmp_path))
    try:
        ckpt.save(STEPS + 1, state1, {})
        ckpt.wait()
        saved = _flat(ckpt.restore(abstract_state(run.family, run.config), STEPS + 1)[1])
    finally:
        ckpt.close()
    assert list(saved) == list(s1)
    for k in s1:
        assert saved[k].dtype == s1[k].dtype and saved[k].tobytes() == s1[k].tobytes(), k


def _metrics(workdir):
    return [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]


def test_train_on_eight_devices_like_one(tmp_path, train_devices, capsys):
    """The generic loop (batch assembly, state placement, logging) on 8 devices: the toy family."""
    config = toy_family.toy_config()
    for key, value in {"batch_size": 8, "num_steps": STEPS, "log_every": 1, "checkpoint_every": 1,
                       "keep_checkpoints": 5, "image_every": 0}.items():
        setattr(config, key, value)
    one = train(config, str(tmp_path / "one"))
    capsys.readouterr()
    train_devices(8)
    eight = train(config, str(tmp_path / "eight"))
    assert "global batch 8 = 1 per device x 8 devices" in capsys.readouterr().out
    assert {len(x.sharding.device_set) for x in jax.tree.leaves(eight["state"])} == {8}
    m1, m8 = _metrics(str(tmp_path / "one")), _metrics(str(tmp_path / "eight"))
    assert [m["step"] for m in m1] == [m["step"] for m in m8] == list(range(1, STEPS + 1))
    np.testing.assert_allclose([m["loss/l1"] for m in m8], [m["loss/l1"] for m in m1], rtol=1e-5)
    ckpt = Checkpointer(str(tmp_path / "one"), read_only=True)
    try:
        before = _flat(ckpt.restore(abstract_state(get_family(config.family)(config), config), STEPS - 1)[1])
    finally:
        ckpt.close()
    _assert_states_agree(_flat(eight["state"]), _flat(one["state"]), before)


# ------------------------------------------------------------------------------------------------
# Two processes over gloo (the multi-host code path: each process loads its own batch rows)

GLOO_ARGS = ["num_steps=4", "log_every=1", "checkpoint_every=4", "image_every=0", "batch_size=8",
             "eval.baselines=mean"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.multiprocess
@pytest.mark.long
def test_two_processes_over_gloo_end_identical(tmp_path, child_env):
    address = f"127.0.0.1:{_free_port()}"
    workers = [subprocess.Popen(
        [sys.executable, RUN, str(tmp_path / "multi"), str(tmp_path / f"p{i}.npz")] + GLOO_ARGS
        + ["--cpu_devices", "2", "--coordinator", address, "--num_processes", "2",
           "--process_id", str(i), "--evaluate"], env=child_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True) for i in range(2)]
    # the same run in one process, on one device, while the workers start
    from inpaintjax.config import apply_overrides
    single = train(apply_overrides(toy_family.toy_config(), GLOO_ARGS), str(tmp_path / "single"))
    outs = []
    for w in workers:
        out, _ = w.communicate(timeout=400)
        assert w.returncode == 0, out[-3000:]
        outs.append(out)
    assert all("devices=4 processes=2 step=4" in o for o in outs)
    assert "this process loads rows 0..3" in outs[0]  # process 0 reports; process 1 loads 4..7
    p0, p1 = np.load(tmp_path / "p0.npz"), np.load(tmp_path / "p1.npz")
    ref = _flat(single["state"].params)
    assert sorted(p0) == sorted(p1) == sorted(ref)
    for k in ref:
        np.testing.assert_array_equal(p1[k], p0[k], err_msg=k)                 # identical replicas
        np.testing.assert_allclose(p0[k], ref[k], rtol=0, atol=1e-6, err_msg=k)  # same global batches
    np.testing.assert_allclose([m["loss/l1"] for m in _metrics(str(tmp_path / "multi"))],
                               [m["loss/l1"] for m in _metrics(str(tmp_path / "single"))], rtol=1e-5)
    # the evaluation: each process scores its share of the batches; both report the whole set's
    # row, equal to the one-process evaluation of the one-process run; process 0 writes the tables
    from inpaintjax.training.evaluate import evaluate
    config = apply_overrides(toy_family.toy_config(), GLOO_ARGS)
    family = get_family(config.family)(config)
    want = evaluate(config, family, family.inference_variables(single["state"]),
                    str(tmp_path / "single"), progress=False)["all"]
    rows = [json.loads(next(x for x in o.splitlines() if x.startswith("eval "))[5:]) for o in outs]
    assert rows[0] == rows[1]
    assert sorted(rows[0]) == sorted(want) and want["count"] > 1
    for key, value in want.items():
        assert rows[0][key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    assert os.path.isfile(tmp_path / "multi" / "eval" / "metrics.md")
