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
    """mean |a - b| over all elements (DeepFill v2's `ae_loss` terms, SPEC.md 1.7)."""
    return jnp.mean(jnp.abs(a - b))


def hinge_d(pos, neg):
    """Hinge loss of a discriminator (SN-PatchGAN, NG `gan_hinge_loss`): element-wise over all
    patch outputs, 0.5 * mean(relu(1 - D(real))) + 0.5 * mean(relu(1 + D(fake)))."""
    return 0.5 * jnp.mean(jnn.relu(1.0 - pos)) + 0.5 * jnp.mean(jnn.relu(1.0 + neg))


def hinge_g(neg):
    """The generator's side of the hinge GAN: -mean(D(fake))."""
    return -jnp.mean(neg)


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
