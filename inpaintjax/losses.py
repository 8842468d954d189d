"""Losses shared by the families (each cites the system it comes from).

All take and return float arrays; reductions are plain means over every element unless stated,
as in the original systems. Compute them in float32 (cast bfloat16 network outputs first).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import nn as jnn


def l1(a, b):
    """mean |a - b| over all elements (DeepFill v2's `ae_loss` terms, SPEC.md 1.7)."""
    return jnp.mean(jnp.abs(a - b))


def hinge_d(pos, neg):
    """Hinge loss of a discriminator (SN-PatchGAN, NG `gan_hinge_loss`): element-wise over all
    patch outputs, 0.5 * mean(relu(1 - D(real))) + 0.5 * mean(relu(1 + D(fake)))."""
    return 0.5 * jnp.mean(jnn.relu(1.0 - pos)) + 0.5 * jnp.mean(jnn.relu(1.0 + neg))


def hinge_g(neg):
    """The generator's side of the hinge GAN: -mean(D(fake))."""
    return -jnp.mean(neg)


# --- EdgeConnect (Nazeri et al., 2019; knazeri/edge-connect src/loss.py, src/models.py) -----------

from jax import lax as _lax  # noqa: E402  (kept inside this block so the families' blocks stay separate)

GAN_LOSSES = ("nsgan", "lsgan", "hinge")
EDGECONNECT_PERCEPTUAL_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
EDGECONNECT_STYLE_LAYERS = ("relu2_2", "relu3_4", "relu4_4", "relu5_2")


def adversarial(outputs, is_real: bool, is_disc: bool, kind: str = "nsgan"):
    """EdgeConnect's `AdversarialLoss` of a discriminator's patch map, mean over every element.

    nsgan: binary cross-entropy of the (sigmoid) outputs against 1 (real) or 0 (fake), with the
    log clamped at -100 as PyTorch's BCELoss; lsgan: mean squared error to 1 / 0 (of the sigmoid
    outputs, as the original); hinge (raw outputs): discriminator mean(relu(1 - D)) for real,
    mean(relu(1 + D)) for fake, generator -mean(D) whatever `is_real`. The generator's side of
    nsgan / lsgan is the real-label loss of its fakes (`is_real=True, is_disc=False`).
    """
    outputs = jnp.asarray(outputs, jnp.float32)
    if kind == "hinge":
        if is_disc:
            return jnp.mean(jnn.relu(1.0 + (-outputs if is_real else outputs)))
        return -jnp.mean(outputs)
    target = 1.0 if is_real else 0.0
    if kind == "nsgan":
        log_p = jnp.maximum(jnp.log(outputs), -100.0)
        log_q = jnp.maximum(jnp.log1p(-outputs), -100.0)
        return -jnp.mean(target * log_p + (1.0 - target) * log_q)
    if kind == "lsgan":
        return jnp.mean(jnp.square(outputs - target))
    raise ValueError(f"GAN loss {kind!r} is not one of {GAN_LOSSES}")


def feature_matching(fake_features, real_features):
    """sum over blocks of mean |f_fake - f_real| with the real features held fixed (EdgeModel's FM term)."""
    if len(fake_features) != len(real_features):
        raise ValueError(f"feature_matching: {len(fake_features)} fake vs {len(real_features)} real blocks")
    return sum(jnp.mean(jnp.abs(f.astype(jnp.float32) - _lax.stop_gradient(r).astype(jnp.float32)))
               for f, r in zip(fake_features, real_features))


def l1_over_hole_fraction(output, target, mask):
    """mean |output - target| over the whole image divided by the hole fraction mean(mask)
    (InpaintingModel's L1 term; mask [B, H, W, 1], 1 = hole, not empty)."""
    return jnp.mean(jnp.abs(output - target)) / jnp.mean(mask)


def gram(features):
    """Gram matrices [B, C, C] of features [B, H, W, C], divided by C * H * W (EdgeConnect's compute_gram)."""
    b, h, w, c = features.shape
    f = features.astype(jnp.float32).reshape(b, h * w, c)
    return jnp.einsum("bnc,bnd->bcd", f, f) / (h * w * c)


def perceptual(features_x, features_y, layers=EDGECONNECT_PERCEPTUAL_LAYERS, weights=None):
    """sum_l w_l mean |phi_l(x) - phi_l(y)| over the named VGG activations (dicts name -> [B, h, w, C]).

    EdgeConnect: VGG-19 relu1_1 .. relu5_1 with unit weights, x the raw generator output and y the
    ground truth, both in [0, 1] without ImageNet normalisation."""
    weights = (1.0,) * len(layers) if weights is None else tuple(weights)
    return sum(w * jnp.mean(jnp.abs(features_x[n].astype(jnp.float32) - features_y[n].astype(jnp.float32)))
               for n, w in zip(layers, weights))


def style(features_x, features_y, layers=EDGECONNECT_STYLE_LAYERS):
    """sum_l mean |Gram(phi_l(x)) - Gram(phi_l(y))| (EdgeConnect: VGG-19 relu2_2, relu3_4, relu4_4,
    relu5_2 of output * mask and image * mask)."""
    return sum(jnp.mean(jnp.abs(gram(features_x[n]) - gram(features_y[n]))) for n in layers)
