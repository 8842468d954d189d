"""bfloat16 compute (`config.compute_dtype`) in every family: two tiny training steps from the
same initial parameters as float32, the parameters stored in float32, the programs really
computing in bfloat16, and every loss term within a few percent of float32's (bf16 keeps an 8-bit
mantissa: about 0.4% per rounding)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import family_steps as fs

# two steps: the schedule's first rate is 0 (warm-up), the second moves the parameters
STEPS = 2


@pytest.mark.parametrize("name", fs.per_family(sorted(fs.ARGS)))
def test_bfloat16_compute_trains_like_float32(name):
    history, programs, moves = {}, {}, {}
    for dtype in ("float32", "bfloat16"):
        run = fs.family_step(name, "" if dtype == "float32" else ",compute_dtype=bfloat16")
        assert run.config.compute_dtype == dtype
        _, stacked = fs.batch(run.family, fs.mixed_holes())
        state = run.state  # the same initial state (parameters in float32 for both dtypes)
        start = [np.asarray(x, np.float64) for x in jax.tree.leaves(state)]
        history[dtype] = []
        for i in range(STEPS):
            state, metrics = run.step(state, stacked, jax.random.key(i + 1), run.frozen)
            history[dtype].append({k: float(v) for k, v in metrics.items()})
        # the program that ran (lowering after the call reuses its trace: no second trace)
        programs[dtype] = run.step.lower(run.state, stacked, jax.random.key(1), run.frozen).as_text()
        moves[dtype] = np.concatenate([(np.asarray(x, np.float64) - x0).ravel() for x, x0 in
                                       zip(jax.tree.leaves(state), start, strict=True)])
        floats = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
        assert floats and all(x.dtype == jnp.float32 for x in floats)
        assert all(np.isfinite(np.asarray(x)).all() for x in floats)
    # the bfloat16 program computes in bfloat16 (the float32 one nowhere)
    assert "bf16" in programs["bfloat16"] and "bf16" not in programs["float32"]
    # the update (parameters, optimiser and EMA states) points the same way
    a, b = moves["float32"], moves["bfloat16"]
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert cosine > 0.5, cosine
    for f32, bf16 in zip(history["float32"], history["bfloat16"], strict=True):
        assert sorted(f32) == sorted(bf16)
        assert np.isfinite(list(bf16.values())).all()
        for key in f32:
            if "grad_norm" in key or key.endswith("/lr"):
                continue
            assert abs(bf16[key] - f32[key]) <= 0.05 * abs(f32[key]) + 2e-3, (key, f32[key], bf16[key])
