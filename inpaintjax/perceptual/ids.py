"""P-IDS and U-IDS, the paired / unpaired Inception discriminative scores of CoModGAN (Zhao et al.,
"Large Scale Image Completion via Co-Modulated Generative Adversarial Networks", ICLR 2021;
zsyzzsoft/co-mod-gan `metrics/inception_discriminative_score.py`, also MAT's evaluation).

A linear SVM (scikit-learn's `LinearSVC(dual=False)` with its defaults: squared hinge loss, C = 1,
an L2-regularised intercept, liblinear's primal solver) is fitted on the pool3 features of the real
images (label 1) and of their inpainted counterparts (label 0), paired by index.
U-IDS = the SVM's misclassification rate on those same features (1 - accuracy);
P-IDS = the fraction of pairs whose inpainted image scores higher than its real one
(decision_function(fake_i) > decision_function(real_i)). Both in [0, 1]; papers print them x 100.
"""

from __future__ import annotations

import numpy as np


def inception_discriminative_scores(real, fake) -> tuple[float, float]:
    """(P-IDS, U-IDS) from paired features real [N, D], fake [N, D] (row i of each: one image)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if real.shape != fake.shape or real.ndim != 2:
        raise ValueError(f"P-IDS/U-IDS need paired features of one shape [N, D], got {real.shape} and {fake.shape}")
    if len(real) < 2:
        raise ValueError(f"P-IDS/U-IDS need at least 2 image pairs, got {len(real)}")
    try:
        from sklearn.svm import LinearSVC
    except ImportError as e:
        raise ImportError("P-IDS/U-IDS need scikit-learn: pip install scikit-learn") from e
    inputs = np.concatenate([real, fake])
    targets = np.concatenate([np.ones(len(real)), np.zeros(len(fake))])
    svm = LinearSVC(dual=False)
    svm.fit(inputs, targets)
    uids = 1.0 - svm.score(inputs, targets)
    pids = float(np.mean(svm.decision_function(fake) > svm.decision_function(real)))
    return pids, float(uids)
