"""Discriminators.

SNPatchGAN: DeepFill v2's spectral-normalised patch discriminator (SPEC.md 1.6; GI
`build_sn_patch_gan_discriminator`, `dis_conv`).
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from inpaintjax.layers.ops import leaky_relu
from inpaintjax.layers.spectral import SNConv


class SNPatchGAN(nn.Module):
    """Six 5x5 stride-2 'SAME' spectral-normalised convolutions, LeakyReLU(0.2) after every one
    (the last included), flattened: one hinge-loss output per 4x4x256 patch cell.

    Call: `d(x, update_stats)` with x [B, H, W, C] = [image RGB in [-1, 1], mask(, guide)]
    (C = 4, or 5 guided) -> [B, (H/64) * (W/64) * 4*cnum] float32 ([B, 4096] at 256x256, cnum 64).
    Layers conv1..conv6 (official names); cnum=64 with a 4-channel input has 5,946,816 parameters.

    Spectral norm is flax's `nn.SpectralNorm` (via SNConv: u and sigma in `batch_stats`, one power
    iteration per call; pass `update_stats=True` and `mutable=['batch_stats']` in training).
    Difference from the original (neuralgym `Conv2DSepctralNorm`): NG lets gradients flow through
    the power-iteration vectors u, v and normalises with x / (||x|| + 1e-12); flax stops gradients
    through u, v and uses x * rsqrt(sum x^2 + eps). The forward value is the same for a given u.
    """

    cnum: int = 64
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        c = self.cnum
        for i, features in enumerate((c, 2 * c, 4 * c, 4 * c, 4 * c, 4 * c)):
            x = SNConv(features, 5, strides=2, padding="SAME", dtype=self.dtype,
                       name=f"conv{i + 1}")(x, update_stats=update_stats)
            x = leaky_relu(x)
        return jnp.reshape(x, (x.shape[0], -1)).astype(jnp.float32)
