"""bfloat16 compute (`config.compute_dtype`) in every family: one tiny training step from the
same initial parameters as float32, the parameters stored in float32, the programs really
computing in bfloat16, and every loss term within a few percent of float32's (bf16 keeps an 8-bit
mantissa: about 0.4% per rounding)."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaintjax.families import get as get_family

# EdgeConnect's inpainting model (mode 2: G2, D2 and the VGG-19 losses; test_parallel.py trains
# its edge model on 8 devices)
ARGS = {"deepfill_v2": "test", "deepfill_v1": "test,optim.critic_steps=1", "pconv": "test",
        "edgeconnect": "test,model.mode=2,loss.vgg_weights={vgg}"}


STEPS = 1


def _batch(family, size, n=2):
    """Smooth made-up scenes with a square hole (stacked when a step takes several batches)."""
    from inpaintjax.data import fields
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = np.stack([np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.5 + 0.3 * np.sin(6 * xx + i)], -1)
                       for i in range(n)]).astype(np.float32)
    holes = np.zeros((n, size, size, 1), np.float32)
    holes[:, size // 4:3 * size // 4, size // 4:3 * size // 4] = 1
    one = fields.compute_batch(family.batch_spec(), images, holes,
                               [np.random.default_rng(i) for i in range(n)])
    k = family.batches_per_step
    stacked = one if k == 1 else {key: np.stack([v] * k) for key, v in one.items()}
    return ({key: jnp.asarray(v) for key, v in one.items()},
            {key: jnp.asarray(v) for key, v in stacked.items()})


@pytest.mark.parametrize("name", sorted(ARGS))
def test_bfloat16_compute_trains_like_float32(name, tiny_vgg19):
    history, jaxprs, moves = {}, {}, {}
    for dtype in ("float32", "bfloat16"):
        config = importlib.import_module(f"configs.{name}").get_config(ARGS[name].format(vgg=tiny_vgg19))
        config.compute_dtype = dtype
        family = get_family(name)(config)
        one, stacked = _batch(family, int(config.data.image_size))
        state = jax.jit(family.init_state)(jax.random.key(0), one)
        start = [np.asarray(x, np.float64) for x in jax.tree.leaves(state)]
        frozen = jax.tree.map(jnp.asarray, family.load_frozen())
        jaxprs[dtype] = str(jax.make_jaxpr(family.train_step)(state, stacked, jax.random.key(1), frozen))
        step = jax.jit(family.train_step)
        history[dtype] = []
        for i in range(STEPS):
            state, metrics = step(state, stacked, jax.random.key(i + 1), frozen)
            history[dtype].append({k: float(v) for k, v in metrics.items()})
        moves[dtype] = np.concatenate([(np.asarray(x, np.float64) - x0).ravel() for x, x0 in
                                       zip(jax.tree.leaves(state), start, strict=True)])
        floats = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
        assert floats and all(x.dtype == jnp.float32 for x in floats)
        assert all(bool(jnp.isfinite(x).all()) for x in floats)
    # the bfloat16 program computes in bfloat16 (the float32 one nowhere)
    assert "bf16" in jaxprs["bfloat16"] and "bf16" not in jaxprs["float32"]
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
