"""Discriminators.

SNPatchGAN: DeepFill v2's spectral-normalised patch discriminator (JiahuiYu/generative_inpainting
`build_sn_patch_gan_discriminator`, `dis_conv`).
WGANLocalCritic, WGANGlobalCritic: DeepFill v1's two WGAN-GP critics (JiahuiYu/generative_inpainting
tag v1.0.0, `build_wgan_local_discriminator`, `build_wgan_global_discriminator`,
`build_wgan_discriminator`).
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from inpaintjax.layers.conv import Conv
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


class _WGANCritic(nn.Module):
    """Four 5x5 stride-2 'SAME' convolutions with bias, LeakyReLU(0.2) after each (v1's
    `dis_conv`: no normalisation), flattened in NHWC order, then one dense output.

    x [B, H, W, 3] (RGB in [-1, 1], H, W multiples of 16) -> [B, 1] float32 critic values.
    Sub-modules conv1..conv4 and `dense` (TF's `dout_<local|global>_fc`); conv widths are
    `cnum` times the subclass's multipliers.
    """

    cnum: int = 64
    dtype: Optional[Any] = None
    multipliers = (1, 2, 4, 8)

    @nn.compact
    def __call__(self, x):
        for i, m in enumerate(self.multipliers):
            x = Conv(m * self.cnum, (5, 5), strides=(2, 2), padding="SAME", dtype=self.dtype,
                     kernel_init=nn.initializers.glorot_uniform(), name=f"conv{i + 1}")(x)
            x = leaky_relu(x)
        x = jnp.reshape(x, (x.shape[0], -1))
        return nn.Dense(1, dtype=self.dtype, kernel_init=nn.initializers.glorot_uniform(),
                        name="dense")(x).astype(jnp.float32)


class WGANLocalCritic(_WGANCritic):
    """DeepFill v1's local critic on the 128x128 crop at the hole box: conv widths cnum x (1, 2,
    4, 8) (8x8x512 features at 128x128, cnum 64), 4,339,329 parameters. TF scope
    `discriminator/discriminator_local/conv{1..4}` and `discriminator/dout_local_fc`."""

    multipliers = (1, 2, 4, 8)


class WGANGlobalCritic(_WGANCritic):
    """DeepFill v1's global critic on the whole 256x256 image: conv widths cnum x (1, 2, 4, 4)
    (16x16x256 features, cnum 64), 2,733,441 parameters. TF scope
    `discriminator/discriminator_global/conv{1..4}` and `discriminator/dout_global_fc`."""

    multipliers = (1, 2, 4, 4)
