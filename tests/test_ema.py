"""The exponential moving average of the generator (`config.ema_decay`), in every family: the
recurrence re-derived in NumPy from the raw parameters each train step produced, the EMA as what
inference (evaluation, `inpaint`, export) uses, and a bad decay refused before any file is written.
"""
import importlib
import os

import jax
import numpy as np
import pytest

import family_steps as fs
from inpaintjax.families import get as get_family
from inpaintjax.training import warm_start as ws

DECAY = fs.EMA_DECAY

# family -> (the state's EMA field, the raw generator parameters of a state, their EMA, the same
# in inference_variables' output)
FAMILIES = {
    "deepfill_v2": ("g_ema", lambda s: s.g_params, lambda s: s.g_ema, lambda v: v["params"]),
    "deepfill_v1": ("g_ema", lambda s: s.g_params, lambda s: s.g_ema, lambda v: v["params"]),
    "pconv": ("ema", lambda s: s.params, lambda s: s.ema, lambda v: v["params"]),
    # EdgeConnect keeps one EMA per trained generator (mode 4 trains both)
    "edgeconnect": ("ema", lambda s: (s.edge["generator"]["params"], s.inpaint["generator"]["params"]),
                    lambda s: (s.ema["edge"], s.ema["inpaint"]),
                    lambda v: (v["edge"]["params"], v["inpaint"]["params"])),
    "glcic": ("g_ema", lambda s: s.g_params, lambda s: s.g_ema, lambda v: v["params"]),
    "shiftnet": ("ema", lambda s: s.g_params, lambda s: s.ema, lambda v: v["params"]),
}


def _leaves(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(jax.device_get(tree))]


@pytest.mark.parametrize("name", fs.per_family(sorted(FAMILIES)))
def test_ema_follows_the_recurrence_and_is_what_inference_uses(name):
    _, raw_of, ema_of, inference_params_of = FAMILIES[name]
    run = fs.family_step(name)
    assert float(run.config.ema_decay) == DECAY
    _, stacked = fs.batch(run.family, fs.mixed_holes())
    state = run.state
    expected = _leaves(raw_of(state))  # the EMA starts as a copy of the initial parameters
    for ema, raw in zip(_leaves(ema_of(state)), expected, strict=True):
        np.testing.assert_array_equal(ema, raw)
    for i in range(3):
        state, _ = run.step(state, stacked, jax.random.key(i + 1), run.frozen)
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
    for a, b in zip(_leaves(inference_params_of(run.family.inference_variables(state))), got, strict=True):
        np.testing.assert_array_equal(a, b)
    # init_from from this trained state into a fresh one (the family's default paths): the EMA
    # restarts as the copied parameters (not the fresh run's random ones, nor the source's EMA)
    pairs = ws.parse_init_from_paths("", run.family.warm_start_paths)
    started, restarted = ws.restart_emas(ws.warm_start(run.state, state, pairs, "the trained state"),
                                         run.family.ema_paths, pairs)
    assert restarted == [ema for ema, _ in run.family.ema_paths] != []
    for a, b in zip(_leaves(ema_of(started)), raw, strict=True):
        np.testing.assert_array_equal(a, b)
    # an EMA the warm start copies itself stays the source's EMA
    pairs += [(ema, ema) for ema, _ in run.family.ema_paths]
    started, restarted = ws.restart_emas(ws.warm_start(run.state, state, pairs, "the trained state"),
                                         run.family.ema_paths, pairs)
    assert restarted == []
    for a, b in zip(_leaves(ema_of(started)), got, strict=True):
        np.testing.assert_array_equal(a, b)


def _config(family, extra=""):
    """The family's test config without the shared step's EMA (`ema_decay` 0 by default)."""
    module = importlib.import_module(f"configs.{family}")
    return module.get_config(fs.ARGS[family] + extra)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_without_ema_inference_uses_the_raw_parameters(name):
    ema_field, raw_of, _, inference_params_of = FAMILIES[name]
    config = _config(name)
    assert config.ema_decay == 0
    family = get_family(name)(config)
    one, _ = fs.batch(family, fs.holes("a"))
    state = jax.eval_shape(family.init_state, jax.random.key(0), one)
    assert getattr(state, ema_field) is None
    got, raw = inference_params_of(family.inference_variables(state)), raw_of(state)
    assert all(a is b for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(raw), strict=True))


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5])
def test_a_decay_outside_0_1_stops_train_before_the_workdir_is_written(tmp_path, decay):
    from inpaintjax.training import train
    config = _config("deepfill_v2", f",ema_decay={decay}")
    with pytest.raises(ValueError, match=r"config.ema_decay must be 0 \(off\) or in \(0, 1\)"):
        train(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def test_a_run_too_short_for_its_ema_is_warned_about():
    """The EMA keeps decay ** steps of the initial weights (hand-worked: 0.997 ** 300 = 0.4065,
    0.99 ** 300 = 0.0490, 0.991 ** 300 = 0.0669, 0.98 ** 300 = 0.0023); above 5% the run warns
    and names the largest decay, to 3 decimals, that leaves at most 5%."""
    from inpaintjax.families.common import ema_horizon_warning
    message = ema_horizon_warning(0.997, 300)
    assert message.startswith("warning: ema_decay 0.997 over 300 steps")
    assert "hold 41% of the initial weights" in message and "ema_decay to 0.99 or less" in message
    assert ema_horizon_warning(0.99, 300) is None and ema_horizon_warning(0.98, 300) is None
    assert "0.99 or less" in ema_horizon_warning(0.991, 300)
    assert ema_horizon_warning(0.997, 4000) is None   # the demo preset's own length: 0.997 ** 4000 ~ 6e-6
    assert ema_horizon_warning(0.0, 10) is None       # EMA off
