"""The logged learning rate (`g/lr`) is the rate the step's update applied, in every family: a
warm-up + cosine schedule re-derived by hand (no optax) and evaluated at the step's index."""
import math

import jax
import numpy as np
import pytest

import family_steps as fs


def expected_rate(i: int) -> float:
    """The rate the update of 0-based step i applies: a linear warm-up from 0 over WARMUP steps,
    then a cosine from PEAK down to FINAL * PEAK over the remaining STEPS - WARMUP steps."""
    if i < fs.WARMUP:
        return fs.PEAK * i / fs.WARMUP
    t = (i - fs.WARMUP) / (fs.STEPS - fs.WARMUP)
    return fs.PEAK * (fs.FINAL + (1.0 - fs.FINAL) * 0.5 * (1.0 + math.cos(math.pi * t)))


def test_expected_rate_by_hand():
    # warm-up 0, 1/2 peak; peak at the end of the warm-up; cos(pi/4) a quarter into the decay
    assert [expected_rate(i) for i in range(3)] == [0.0, 5e-4, 1e-3]
    assert expected_rate(3) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + 2 ** -0.5)))
    assert expected_rate(fs.STEPS) == pytest.approx(1e-4)


def test_the_shared_steps_cover_every_registered_family():
    # the cross-family tests (this one, the EMA and bfloat16 tests) run on fs.ARGS: a family
    # registered without an entry there would escape them (Shift-Net's one-step-late rate did)
    from inpaintjax.families import names
    toy = {"toy"}  # the tests' own family (tests/toy_family.py), when another test registered it
    assert set(fs.ARGS) == set(names()) - toy


@pytest.mark.parametrize("name", fs.per_family(sorted(fs.ARGS)))
def test_logged_rate_is_the_rate_the_update_applied(name):
    # every rate the family logs: the generator's, and the discriminator's where it has one (GLCIC)
    run = fs.family_step(name)
    _, stacked = fs.batch(run.family, fs.mixed_holes())
    state, logged = run.state, {}
    for i in range(4):
        state, metrics = run.step(state, stacked, jax.random.key(i + 1), run.frozen)
        for key in metrics:
            if key.endswith("/lr"):
                logged.setdefault(key, []).append(float(metrics[key]))
    assert "g/lr" in logged
    for key, rates in logged.items():
        np.testing.assert_allclose(rates, [expected_rate(i) for i in range(4)], rtol=1e-6,
                                   atol=1e-12, err_msg=key)
