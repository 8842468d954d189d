"""P-IDS / U-IDS on hand-worked feature sets (CoModGAN's definitions)."""

import numpy as np
import pytest

import sklearn  # noqa: F401
from inpaintjax.perceptual.ids import inception_discriminative_scores  # noqa: E402


def test_separable_sets_score_zero():
    rng = np.random.default_rng(0)
    real = rng.normal(0, 0.1, (40, 8)) + 5.0
    fake = rng.normal(0, 0.1, (40, 8)) - 5.0
    pids, uids = inception_discriminative_scores(real, fake)
    assert pids == 0.0 and uids == 0.0  # every fake scores below its real image; no mistakes


def test_indistinguishable_sets():
    # fake == real: whatever the SVM learns, fake_i and real_i score the same, so no pair has
    # fake > real (P-IDS 0) and each point carries both labels, so exactly half are wrong (U-IDS 0.5)
    real = np.random.default_rng(1).normal(size=(30, 4))
    pids, uids = inception_discriminative_scores(real, real.copy())
    assert pids == 0.0 and uids == pytest.approx(0.5)


def test_one_fooling_pair():
    # 1-d: real at +1 except pair 0, whose fake (+3) lies deep on the real side
    real = np.array([[1.0]] * 10)
    fake = np.array([[3.0]] + [[-1.0]] * 9)
    pids, uids = inception_discriminative_scores(real, fake)
    assert pids == pytest.approx(0.1)  # only pair 0's fake scores above its real image
    assert uids == pytest.approx(1 / 20)  # that fake is the one misclassified point of 20


def test_shapes_checked():
    with pytest.raises(ValueError, match="paired features"):
        inception_discriminative_scores(np.zeros((3, 2)), np.zeros((4, 2)))
