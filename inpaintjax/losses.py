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
