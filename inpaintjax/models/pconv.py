"""The Partial Convolutions U-Net (Liu et al., "Image Inpainting for Irregular Holes Using Partial
Convolutions", ECCV 2018), laid out as naoto0804/pytorch-inpainting-with-partial-conv `net.py`.

Every convolution is a partial convolution with multi-channel mask propagation
(`inpaintjax.layers.PartialConv`, NVIDIA/partialconv's window scaling). Encoder: enc_1 7x7/2
(64, no BatchNorm), enc_2 5x5/2 (128), enc_3 5x5/2 (256), enc_4 .. enc_L 3x3/2 (512), ReLU.
Decoder dec_L .. dec_1: nearest x2 up-sampling of features and mask, concatenation
[up-sampled, encoder skip] of both, a 3x3/1 partial convolution, BatchNorm and LeakyReLU 0.2;
dec_1 (3 outputs, bias, no BatchNorm) takes the input image and mask as its skip and is linear.
Hidden convolutions have no bias (BatchNorm follows). levels=7 (the reimplementation, 256x256
inputs) has 25,779,796 parameters, levels=8 (the paper's 512x512 table) 32,859,732.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from inpaintjax.layers import BatchNorm, PartialConv, leaky_relu


def encoder_widths(levels: int, width: int = 64) -> list[int]:
    return [width, 2 * width, 4 * width] + [8 * width] * (levels - 3)


def encoder_kernels(levels: int) -> list[int]:
    return [7, 5, 5] + [3] * (levels - 3)


class PConvBlock(nn.Module):
    """Partial conv (multi-channel masks) -> optional BatchNorm -> activation ('relu' | 'leaky' | None)."""

    features: int
    kernel_size: int
    strides: int
    use_bn: bool = True
    activation: Optional[str] = "relu"
    use_bias: bool = False
    dtype: Optional[jnp.dtype] = None

    @nn.compact
    def __call__(self, x, hole, train: bool, bn_frozen: bool = False):
        y, hole = PartialConv(
            self.features, self.kernel_size, strides=self.strides,
            padding=(self.kernel_size - 1) // 2, use_bias=self.use_bias, multi_channel=True,
            dtype=self.dtype, name="conv")(x, hole)
        if self.use_bn:
            y = BatchNorm(use_running_average=(not train) or bn_frozen, dtype=self.dtype, name="bn")(y)
        if self.activation == "relu":
            y = nn.relu(y)
        elif self.activation == "leaky":
            y = leaky_relu(y)
        elif self.activation is not None:
            raise ValueError(f"PConvBlock: unknown activation {self.activation!r}")
        return y, hole


def _up2(x):
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class PConvUNet(nn.Module):
    """`output, out_mask = PConvUNet(levels=7).apply(variables, image, hole, train=False)`.

    image: [B, H, W, 3] ImageNet-normalised RGB ((x - mean) / std of a [0, 1] image); hole pixels
           may hold anything (every partial convolution masks its input).
    hole:  [B, H, W, 1] or [B, H, W, 3], 1 = hole, 0 = known.
    H and W must be multiples of 2**levels (128 for 7 levels, 256 for 8). `width` is enc_1's
    channel count (64 in the published networks; the others scale with it: 2x, 4x, 8x).
    Returns the raw (not composited) output [B, H, W, 3] float32 in the same normalised space and
    the propagated hole mask [B, H, W, 3] (1 where no known pixel reached the output).
    train=True normalises with batch statistics and needs `mutable=['batch_stats']`;
    `freeze_encoder_bn` keeps the encoder's BatchNorm on its running statistics in training too
    (the fine-tuning phase), while their scale and bias still receive gradients.
    `remat=True` wraps every block in `nn.remat` (its activations are recomputed in the backward
    pass: less memory, more compute; same parameters and values).
    """

    levels: int = 7
    width: int = 64
    freeze_encoder_bn: bool = False
    dtype: Optional[jnp.dtype] = None
    remat: bool = False

    @nn.compact
    def __call__(self, image: jax.Array, hole: jax.Array, train: bool = False):
        if self.levels < 4:
            raise ValueError(f"PConvUNet: levels must be >= 4, got {self.levels}")
        if image.ndim != 4 or image.shape[-1] != 3:
            raise ValueError(f"PConvUNet: image must be [B, H, W, 3], got shape {image.shape}")
        b, h, w, c = image.shape
        if hole.ndim != 4 or hole.shape[:3] != (b, h, w) or hole.shape[-1] not in (1, c):
            raise ValueError(f"PConvUNet: hole must be [{b}, {h}, {w}, 1 or {c}], got shape {hole.shape}")
        m = 2 ** self.levels
        if h % m or w % m:
            raise ValueError(
                f"PConvUNet(levels={self.levels}): H and W must be multiples of {m}, got {h}x{w}; "
                f"pad the image (the Inpainter does) or use fewer levels")
        hole = jnp.broadcast_to(hole.astype(jnp.float32), (b, h, w, c))
        x = image.astype(self.dtype or image.dtype)
        feats, holes = [x], [hole]
        widths, kernels = encoder_widths(self.levels, self.width), encoder_kernels(self.levels)
        # train and bn_frozen are Python bools (static): arguments 3 and 4, counting self
        block = nn.remat(PConvBlock, static_argnums=(3, 4)) if self.remat else PConvBlock
        for i in range(self.levels):
            x, hole = block(widths[i], kernels[i], 2, use_bn=i > 0, activation="relu",
                            dtype=self.dtype, name=f"enc_{i + 1}")(
                x, hole, train, self.freeze_encoder_bn)
            feats.append(x)
            holes.append(hole)
        skip_widths = [c] + widths
        for i in range(self.levels, 0, -1):
            x = jnp.concatenate([_up2(x), feats[i - 1].astype(x.dtype)], axis=-1)
            hole = jnp.concatenate([_up2(hole), holes[i - 1]], axis=-1)
            last = i == 1
            x, hole = block(
                c if last else skip_widths[i - 1], 3, 1, use_bn=not last,
                activation=None if last else "leaky", use_bias=last, dtype=self.dtype,
                name=f"dec_{i}")(x, hole, train, False)
        return x.astype(jnp.float32), hole
