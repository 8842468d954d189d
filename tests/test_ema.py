"""The exponential moving average of the generator (`config.ema_decay`), in every family: the
recurrence re-derived in NumPy from the raw parameters each train step produced, the EMA as what
inference (evaluation, `inpaint`, export) uses, and a bad decay refused before any file is written.
"""
import importlib
import os

import jax
import numpy as np
import pytest

from inpaintjax.families import get as get_family

DECAY = 0.6  # far from 1, so that three steps leave the EMA well apart from the raw parameters

# family -> (config argument, the state's EMA field, the raw generator parameters of a state,
# their EMA, the same in inference_variables' output)
FAMILIES = {
    "deepfill_v2": ("test", "g_ema", lambda s: s.g_params, lambda s: s.g_ema,
                    lambda v: v["params"]),
    "deepfill_v1": ("test,optim.critic_steps=1", "g_ema", lambda s: s.g_params, lambda s: s.g_ema,
                    lambda v: v["params"]),
    "pconv": ("test", "ema", lambda s: s.params, lambda s: s.ema, lambda v: v["params"]),
    "edgeconnect": ("test,model.mode=1", "ema", lambda s: s.edge["generator"]["params"],
                    lambda s: s.ema["edge"], lambda v: v["edge"]["params"]),
}


def _config(family, extra=""):
    module = importlib.import_module(f"configs.{family}")
    return module.get_config(FAMILIES[family][0] + extra)


def _batch(family, size, n=2):
    """Fixed batches of smooth made-up scenes with a square hole (stacked when the family
    consumes several batches per step)."""
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
    return one, stacked


def _leaves(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(jax.device_get(tree))]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_ema_follows_the_recurrence_and_is_what_inference_uses(name):
    _, _, raw_of, ema_of, inference_params_of = FAMILIES[name]
    config = _config(name, f",ema_decay={DECAY}")
    family = get_family(name)(config)
    one, stacked = _batch(family, int(config.data.image_size))
    state = jax.jit(family.init_state)(jax.random.key(0), one)
    step = jax.jit(family.train_step)
    frozen = jax.tree.map(jax.numpy.asarray, family.load_frozen())
    expected = _leaves(raw_of(state))  # the EMA starts as a copy of the initial parameters
    for ema, raw in zip(_leaves(ema_of(state)), expected, strict=True):
        np.testing.assert_array_equal(ema, raw)
    for i in range(3):
        state, _ = step(state, stacked, jax.random.key(i + 1), frozen)
        raw = _leaves(raw_of(state))
        expected = [DECAY * e + (1 - DECAY) * p for e, p in zip(expected, raw, strict=True)]
        got = _leaves(ema_of(state))
        assert len(got) == len(expected) > 0
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7)
    # three steps of training moved the parameters and the EMA lags behind them
    moved = sum(float(np.abs(r - e).sum()) for r, e in zip(raw, got, strict=True))
    assert moved > 0
    # inference (evaluation, Inpainter, export) uses the EMA, not the raw parameters
    for a, b in zip(_leaves(inference_params_of(family.inference_variables(state))), got, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_without_ema_inference_uses_the_raw_parameters(name):
    _, ema_field, raw_of, _, inference_params_of = FAMILIES[name]
    config = _config(name)
    assert config.ema_decay == 0
    family = get_family(name)(config)
    one, _ = _batch(family, int(config.data.image_size))
    state = jax.eval_shape(family.init_state, jax.random.key(0), one)
    assert getattr(state, ema_field) is None
    assert inference_params_of(family.inference_variables(state)) is raw_of(state)


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5])
def test_a_decay_outside_0_1_stops_train_before_the_workdir_is_written(tmp_path, decay):
    from inpaintjax.training import train
    config = _config("deepfill_v2", f",ema_decay={decay}")
    with pytest.raises(ValueError, match=r"config.ema_decay must be 0 \(off\) or in \(0, 1\)"):
        train(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")
