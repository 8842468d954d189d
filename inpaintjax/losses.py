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


def perceptual(feats, feats_target):
    """sum over layers of mean |psi(x) - psi(target)| (one of L_perceptual's two sums)."""
    return sum(jnp.mean(jnp.abs(a.astype(jnp.float32) - t.astype(jnp.float32)))
               for a, t in zip(feats, feats_target, strict=True))


def style(feats, feats_target):
    """sum over layers of mean |Gram(psi(x)) - Gram(psi(target))| over the B*c*c entries
    (L_style_out or L_style_comp; the mean is the paper's 1/c^2 with Gram's 1/(c*h*w))."""
    return sum(jnp.mean(jnp.abs(gram_matrix(a) - gram_matrix(t)))
               for a, t in zip(feats, feats_target, strict=True))


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
