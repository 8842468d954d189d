"""inpaintjax.bench in reduced mode (what CI runs), and bfloat16-compute loss parity."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _bench(*args):
    proc = subprocess.run([sys.executable, "-m", "inpaintjax.bench", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    return proc, [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]


def test_reduced_bench_records():
    """Peak matmul + the conv stack on both convolution paths under both XLA:CPU set-ups: one
    well-formed record per case, every speed also a fraction of the measured peak, and the FLOPs
    of the stack equal to the count from its definition (8 convolutions, forward + input and
    kernel gradients)."""
    proc, recs = _bench("--reduced", "--cases", "peak,stack", "--conv", "both", "--xla-cpu",
                        "both", "--repeats", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    kinds = [r["kind"] for r in recs]
    assert kinds == ["machine", "peak_matmul"] + ["stack"] * 4
    peak = recs[1]
    assert peak["flops"] == 2 * 512 ** 3
    assert peak["peak_flops_per_s"] == round(peak["flops"] / peak["median_s"])
    chans, dil, b, s = [5, 64, 64, 64, 64, 64, 64, 64, 3], [1, 1, 2, 4, 8, 1, 1, 1], 1, 32
    # XLA counts the multiply-adds of taps inside the image ('SAME' zero padding excluded): per
    # spatial dim, tap offsets -d, 0, +d reach s - d, s, s - d output positions.
    valid = [2 * b * (s + 2 * (s - d)) ** 2 * chans[i] * chans[i + 1] for i, d in enumerate(dil)]
    # forward + kernel gradient for all 8, input gradient for layers 2..8
    expected = 3 * sum(valid) - valid[0]
    setups = [("default", "native"), ("default", "auto"), ("tuned", "native"), ("tuned", "auto")]
    for rec, (mode, conv) in zip(recs[2:], setups):
        assert rec["conv"] == conv and rec["xla_cpu"] == mode and "error" not in rec
        # the child really ran with YNNPACK's convolutions as asked (the parent's own
        # `import inpaintjax` put the option into XLA_FLAGS; the child must not inherit it)
        assert rec["ynn_convolutions_off"] is (mode == "tuned")
        assert rec["min_s"] <= rec["median_s"] <= rec["max_s"]
        assert rec["repeats"] == 2 and rec["compile_s"] > 0 and rec["peak_rss_mb"] > 50
        # XLA also counts the ReLUs, their masks and the loss: within 1% of the conv FLOPs
        assert abs(rec["flops"] - expected) / expected < 0.01
        assert np.isclose(rec["fraction_of_peak"],
                          rec["flops"] / rec["median_s"] / peak["peak_flops_per_s"], rtol=1e-3)
        assert rec["images_per_s"] == round(b / rec["median_s"], 4)


def test_torch_side_by_side_or_clear_error():
    """With torch installed (the bench extra) the PyTorch stack runs in the same invocation and
    carries the JAX record's FLOPs; without it, --torch stops with the install command."""
    have_torch = importlib.util.find_spec("torch") is not None
    proc, recs = _bench("--reduced", "--cases", "stack", "--torch", "--repeats", "1")
    if have_torch:
        assert proc.returncode == 0, proc.stderr[-3000:]
        jax_rec, torch_rec = recs[-2], recs[-1]
        assert torch_rec["framework"] == "torch" and torch_rec["kind"] == "stack"
        assert torch_rec["flops"] == jax_rec["flops"] and torch_rec["median_s"] > 0
    else:
        assert proc.returncode != 0 and "pip install -e '.[bench]'" in proc.stderr


def test_bfloat16_compute_loss_parity():
    """DeepFill v2 (tiny widths, 32x32) trained 3 steps with float32 and with bfloat16 compute
    from the same initial parameters: parameters stay float32 and every loss term agrees within
    5% relative (bf16 has an 8-bit mantissa, ~0.4% per rounding; 3 Adam steps at lr 1e-4
    do not amplify it)."""
    from inpaintjax.families.deepfill_v2 import DeepFillV2, default_config

    rng = np.random.default_rng(0)
    image = rng.random((2, 32, 32, 3)).astype(np.float32)
    mask = np.zeros((2, 32, 32, 1), np.float32)
    mask[:, 8:20, 6:26] = 1.0
    batch = {"image": jnp.asarray(image), "mask": jnp.asarray(mask)}
    losses = {}
    for dtype in ("float32", "bfloat16"):
        config = default_config(cnum=8)
        config.model.d_cnum = 8
        config.compute_dtype = dtype
        family = DeepFillV2(config)
        state = jax.jit(family.init_state)(jax.random.key(0), batch)
        assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(state.g_params))
        step = jax.jit(family.train_step)
        history = []
        for i in range(3):
            state, metrics = step(state, batch, jax.random.key(i), {})
            history.append({k: float(v) for k, v in metrics.items()})
        assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(state.g_params))
        losses[dtype] = history
    for f32, bf16 in zip(losses["float32"], losses["bfloat16"]):
        for key in ("g/l1_stage1", "g/l1_stage2", "d/hinge"):
            assert abs(bf16[key] - f32[key]) <= 0.05 * abs(f32[key]), (key, f32[key], bf16[key])
        assert np.isfinite(list(bf16.values())).all()
