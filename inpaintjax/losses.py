"""Losses shared by the families (each cites the system it comes from).

All take and return float arrays; reductions are plain means over every element unless stated,
as in the original systems. Compute them in float32 (cast bfloat16 network outputs first).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import nn as jnn


def l1(a, b):
    """mean |a - b| over all elements (DeepFill v2's `ae_loss` terms, `inpaint_model.py::build_graph_with_losses`)."""
    return jnp.mean(jnp.abs(a - b))


def hinge_d(pos, neg):
    """Hinge loss of a discriminator (SN-PatchGAN, NG `gan_hinge_loss`): element-wise over all
    patch outputs, 0.5 * mean(relu(1 - D(real))) + 0.5 * mean(relu(1 + D(fake)))."""
    return 0.5 * jnp.mean(jnn.relu(1.0 - pos)) + 0.5 * jnp.mean(jnn.relu(1.0 + neg))


def hinge_g(neg):
    """The generator's side of the hinge GAN: -mean(D(fake))."""
    return -jnp.mean(neg)


# ------------------------------------------------------------------ Partial Convolutions (PConv)
# Liu et al., "Image Inpainting for Irregular Holes Using Partial Convolutions" (ECCV 2018), eq. 1-7,
# with the size-averaged L1 of naoto0804/pytorch-inpainting-with-partial-conv `loss.py`. Images are
# [B, H, W, C], holes [B, H, W, 1] (1 = hole), features [B, h, w, c]; means run over every element.

def valid_l1(output, target, hole):
    """mean |(1 - hole) * (output - target)| over all B*H*W*C elements (L_valid)."""
    return jnp.mean(jnp.abs((1.0 - hole) * (output - target)))


def hole_l1(output, target, hole):
    """mean |hole * (output - target)| over all B*H*W*C elements (L_hole)."""
    return jnp.mean(jnp.abs(hole * (output - target)))


def gram_matrix(feat):
    """[B, h, w, c] -> [B, c, c]: F^T F / (c * h * w), F the features reshaped [B, h*w, c]."""
    b, h, w, c = feat.shape
    f = feat.reshape(b, h * w, c).astype(jnp.float32)
    return jnp.einsum("bnc,bnd->bcd", f, f) / (c * h * w)


def _feature_pairs(feats, feats_target, layers):
    """(a, t) pairs: sequences pair up in order; dicts name -> [B, h, w, c] by `layers`."""
    if isinstance(feats, dict):
        names = tuple(feats) if layers is None else tuple(layers)
        return [(feats[n], feats_target[n]) for n in names]
    return list(zip(feats, feats_target, strict=True))


def perceptual(feats, feats_target, layers=None, weights=None):
    """sum over layers of w_l mean |psi_l(x) - psi_l(target)|. Features: sequences (paired in
    order) or dicts name -> [B, h, w, c] (the names in `layers`; all when None). PConv: VGG-16
    pool1..3, one of L_perceptual's two sums; EdgeConnect: VGG-19 relu1_1 .. relu5_1, unit weights."""
    pairs = _feature_pairs(feats, feats_target, layers)
    weights = (1.0,) * len(pairs) if weights is None else tuple(weights)
    return sum(w * jnp.mean(jnp.abs(a.astype(jnp.float32) - t.astype(jnp.float32)))
               for w, (a, t) in zip(weights, pairs, strict=True))


def style(feats, feats_target, layers=None):
    """sum over layers of mean |Gram(psi(x)) - Gram(psi(target))| over the B*c*c entries, Gram
    divided by c*h*w (PConv's L_style_out / L_style_comp: the paper's 1/c^2 with Gram's 1/(c*h*w);
    EdgeConnect's style loss on VGG-19 relu2_2, relu3_4, relu4_4, relu5_2). Features as in
    `perceptual`."""
    return sum(jnp.mean(jnp.abs(gram_matrix(a) - gram_matrix(t)))
               for a, t in _feature_pairs(feats, feats_target, layers))


def dilate_hole(hole, pixels: int = 1):
    """The hole grown by `pixels` in every direction (8-neighbourhood): [B, H, W, 1] in {0, 1}."""
    h, w = hole.shape[1], hole.shape[2]
    padded = jnp.pad(hole, ((0, 0), (pixels, pixels), (pixels, pixels), (0, 0)))
    out = hole
    for dy in range(2 * pixels + 1):
        for dx in range(2 * pixels + 1):
            out = jnp.maximum(out, padded[:, dy:dy + h, dx:dx + w])
    return out


def tv_dilated_hole(image, hole):
    """Total variation of `image` (the composite) on P, the 1-pixel dilation of the hole (L_tv):
    sum of |I[i, j+1] - I[i, j]| over horizontal neighbour pairs with both pixels in P, plus the
    same vertically, divided by the element count B*H*W*C."""
    p = dilate_hole(hole)
    x = image.astype(jnp.float32)
    horiz = jnp.sum(p[:, :, 1:] * p[:, :, :-1] * jnp.abs(x[:, :, 1:] - x[:, :, :-1]))
    vert = jnp.sum(p[:, 1:] * p[:, :-1] * jnp.abs(x[:, 1:] - x[:, :-1]))
    return (horiz + vert) / x.size


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


# --------------------------------------------------------------------------------------------------
# DeepFill v1: WGAN-GP with a hole-only gradient penalty, spatially discounted L1
# (JiahuiYu/generative_inpainting tag v1.0.0 `inpaint_model.py::build_graph_with_losses`,
# `inpaint_ops.py::spatial_discounting_mask`; JiahuiYu/neuralgym `ops/gan_ops.py`:
# `gan_wgan_loss`, `random_interpolates`, `gradients_penalty`)

def wgan_d(pos, neg):
    """A WGAN critic's loss, mean(D(fake)) - mean(D(real)) (elementwise over the critic outputs)."""
    return jnp.mean(neg - pos)


def wgan_g(neg):
    """The generator's side of the WGAN: -mean(D(fake))."""
    return -jnp.mean(neg)


def random_interpolates(real, fake, alpha):
    """real + alpha * (fake - real) with one factor per sample: real, fake [B, ...], alpha [B] or
    [B, 1] (DeepFill v1 draws alpha ~ U(0, 1) per sample)."""
    alpha = jnp.reshape(alpha, (real.shape[0],) + (1,) * (real.ndim - 1)).astype(real.dtype)
    return real + alpha * (fake - real)


def gradient_penalty(critic, interpolates, mask=None, norm: float = 1.0):
    """WGAN-GP penalty mean_b((||dD/dx_b||_mask - norm)^2) (Gulrajani et al. 2017, as DeepFill v1).

    critic: a function [B, H, W, C] -> [B, ...] of the critic; interpolates [B, H, W, C];
    mask [B or 1, H, W, 1] (1 = hole): the squared gradient is summed over hole pixels only (all
    pixels if None), over H, W and C, per sample. The square root is taken safely (value 0 and
    gradient 0 where the masked gradient vanishes) so an empty mask gives penalty norm^2, not NaN.
    """
    grads = jax.grad(lambda x: jnp.sum(critic(x).astype(jnp.float32)))(interpolates)
    sq = jnp.square(grads.astype(jnp.float32))
    if mask is not None:
        sq = sq * mask.astype(jnp.float32)
    sq = jnp.sum(sq, axis=tuple(range(1, sq.ndim)))
    positive = sq > 0
    slopes = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)
    return jnp.mean(jnp.square(slopes - norm))


def spatial_discount(height: int, width: int, gamma: float = 0.9) -> np.ndarray:
    """DeepFill v1's spatial discounting weights for a height x width box, [1, H, W, 1] float32:
    w[i, j] = max(gamma^min(i, H - i), gamma^min(j, W - j)), i.e. gamma to the power of the
    distance to the nearest box edge (1 on the border, gamma^(H/2) in the centre)."""
    i = np.arange(height, dtype=np.float64)
    j = np.arange(width, dtype=np.float64)
    rows = gamma ** np.minimum(i, height - i)
    cols = gamma ** np.minimum(j, width - j)
    w = np.maximum(rows[:, None], cols[None, :])
    return w.astype(np.float32)[None, :, :, None]


def discounted_l1(a, b, discount):
    """mean(|a - b| * discount) over every element (discount broadcast, e.g. [1, h, w, 1] on
    [B, h, w, C] local crops): DeepFill v1's `l1_loss` term of one stage."""
    return jnp.mean(jnp.abs(a - b) * discount)


def known_l1(a, b, mask):
    """DeepFill v1's `ae_loss` term of one stage: mean(|a - b| * (1 - mask)) / mean(1 - mask),
    the L1 averaged over the known pixels. a, b [B, H, W, C], mask [B or 1, H, W, 1] (1 = hole)."""
    known = 1.0 - mask.astype(jnp.float32)
    return jnp.mean(jnp.abs(a - b) * known) / jnp.mean(known)
