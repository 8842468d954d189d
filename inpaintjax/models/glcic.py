"""Globally and Locally Consistent Image Completion (Iizuka, Simo-Serra and Ishikawa, SIGGRAPH
2017): the completion network as the released Torch7 models lay it out
(satoshiiizuka/siggraph2017_inpainting, `completionnet_*.t7`), and the paper's global and local
discriminators (not released; built from the paper's description).

CompletionNetwork: 17 convolutions, each but the last followed by BatchNorm and ReLU, a sigmoid at
the end. Layer i (1..17) is `conv{i}` (and `bn{i}`); in the .t7's flat `nn.Sequential` it is module
3 * (i - 1) (its BatchNorm the next one):

  conv1   5x5 s1            in -> c        conv10  3x3 dilation 16   4c -> 4c
  conv2   3x3 s2            c -> 2c        conv11  3x3               4c -> 4c
  conv3   3x3               2c -> 2c       conv12  3x3               4c -> 4c
  conv4   3x3 s2            2c -> 4c       conv13  4x4 s2 transposed 4c -> 2c
  conv5   3x3               4c -> 4c       conv14  3x3               2c -> 2c
  conv6   3x3               4c -> 4c       conv15  4x4 s2 transposed 2c -> c
  conv7   3x3 dilation 2    4c -> 4c       conv16  3x3               c -> c/2
  conv8   3x3 dilation 4    4c -> 4c       conv17  3x3               c/2 -> 3, sigmoid
  conv9   3x3 dilation 8    4c -> 4c

with c = 64 in the release (6,072,131 parameters with a 4-channel input). Every convolution has a
bias; padding keeps the size ('same' for odd kernels; the transposed ones double it, as Torch's
SpatialFullConvolution(k=4, d=2, pad=1)).

Every BatchNorm is Torch's (`inpaintjax.layers.BatchNorm`): in training the running variance is
updated with the unbiased batch variance, as Torch7's SpatialBatchNormalization and PyTorch's
BatchNorm2d do (flax's own BatchNorm keeps the biased one).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from inpaintjax.layers import BatchNorm
from inpaintjax.layers.conv import Conv, transpose_conv_4x4_s2_p1
from inpaintjax.layers.reductions import broadcast_leading

#: (kind, kernel, stride, dilation, width multiple of c) of conv1..conv17 ('t' = transposed);
#: the last layer's width is the 3 RGB channels.
LAYERS: tuple[tuple[str, int, int, int, float], ...] = (
    ("c", 5, 1, 1, 1), ("c", 3, 2, 1, 2), ("c", 3, 1, 1, 2), ("c", 3, 2, 1, 4),
    ("c", 3, 1, 1, 4), ("c", 3, 1, 1, 4), ("c", 3, 1, 2, 4), ("c", 3, 1, 4, 4),
    ("c", 3, 1, 8, 4), ("c", 3, 1, 16, 4), ("c", 3, 1, 1, 4), ("c", 3, 1, 1, 4),
    ("t", 4, 2, 1, 2), ("c", 3, 1, 1, 2), ("t", 4, 2, 1, 1), ("c", 3, 1, 1, 0.5),
    ("c", 3, 1, 1, 0),
)


def _torch_uniform(fan_in: int):
    """Torch7's default initialisation of convolutions (uniform in +-1/sqrt(fan_in))."""
    bound = 1.0 / float(fan_in) ** 0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class TorchFullConv(nn.Module):
    """Torch7's SpatialFullConvolution (PyTorch's ConvTranspose2d) with the released layers' kernel
    4, stride 2 and padding 1: output side 2H. `kernel` is [4, 4, in, out] in Torch's orientation
    (Torch weight (in, out, kH, kW) transposed to (kH, kW, in, out), not flipped). It runs as one
    2x2 convolution computing the four output phases (`transpose_conv_4x4_s2_p1`), not as the
    input-dilated convolution with the flipped kernel: the same numbers, but the dilated form's
    kernel gradient takes XLA:CPU's slow path (about 6x the whole training step's time, measured)."""

    features: int
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x):
        k, cin = 4, x.shape[-1]
        # Torch7's SpatialFullConvolution:reset() draws from +-1/sqrt(nInputPlane * kH * kW)
        # (PyTorch's ConvTranspose2d uses the output channels instead)
        fan_in = cin * k * k
        kernel = self.param("kernel", _torch_uniform(fan_in), (k, k, cin, self.features))
        bias = self.param("bias", _torch_uniform(fan_in), (self.features,))
        dtype = self.dtype or x.dtype
        y = transpose_conv_4x4_s2_p1(x.astype(dtype), kernel.astype(dtype))
        return y + broadcast_leading(bias.astype(dtype), y.shape)


class CompletionNetwork(nn.Module):
    """The completion network (see the module docstring).

    Call: `net(x, train)` with x [B, H, W, 4] = [RGB minus the model's mean pixel with the hole set
    to 0, hole mask (1 = hole)], H and W multiples of 4 -> [B, H, W, 3] float32 RGB in [0, 1]
    (absolute, not mean-subtracted). `train=True` normalises with the batch's statistics and
    updates the running ones (`mutable=['batch_stats']`); `train=False` uses the running ones.
    """

    width: int = 64
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1     # Torch's: running = (1 - m) running + m batch
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        if x.shape[1] % 4 or x.shape[2] % 4:
            raise ValueError(f"CompletionNetwork: H and W must be multiples of 4, got "
                             f"{x.shape[1]}x{x.shape[2]}")
        x = x.astype(self.dtype or jnp.float32)
        for i, (kind, k, s, d, mult) in enumerate(LAYERS, start=1):
            features = 3 if i == len(LAYERS) else int(self.width * mult)
            if kind == "t":  # every released transposed layer: kernel 4, stride 2, padding 1
                x = TorchFullConv(features, dtype=self.dtype, name=f"conv{i}")(x)
            else:
                pad = d * (k - 1) // 2
                fan_in = x.shape[-1] * k * k
                x = Conv(features, (k, k), strides=(s, s), padding=[(pad, pad), (pad, pad)],
                         kernel_dilation=(d, d), dtype=self.dtype,
                         kernel_init=_torch_uniform(fan_in), bias_init=_torch_uniform(fan_in),
                         name=f"conv{i}")(x)
            if i == len(LAYERS):
                return jax.nn.sigmoid(x.astype(jnp.float32))
            x = BatchNorm(use_running_average=not train, momentum=1.0 - self.bn_momentum,
                          epsilon=self.bn_eps, dtype=self.dtype, name=f"bn{i}")(x)
            x = nn.relu(x)


class _DiscriminatorBranch(nn.Module):
    """`len(widths)` 5x5 stride-2 convolutions (padding 2), each followed by BatchNorm and ReLU,
    flattened (NHWC order), then a dense layer to `features` with ReLU (as the paper's released
    reimplementations: otenim/GLCIC-PyTorch, open-mmlab/mmagic `MultiLayerDiscriminator`)."""

    widths: Sequence[int]
    features: int = 1024
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x, train: bool):
        x = x.astype(self.dtype or jnp.float32)
        for i, w in enumerate(self.widths, start=1):
            x = Conv(w, (5, 5), strides=(2, 2), padding=[(2, 2), (2, 2)], dtype=self.dtype,
                     name=f"conv{i}")(x)
            x = BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                          dtype=self.dtype, name=f"bn{i}")(x)
            x = nn.relu(x)
        x = jnp.reshape(x, (x.shape[0], -1))
        return nn.relu(nn.Dense(self.features, dtype=self.dtype, name="fc")(x))


class GlobalLocalDiscriminator(nn.Module):
    """The paper's context discriminator: a global branch on the whole image (six convolutions of
    c, 2c, 4c, 8c, 8c, 8c), a local branch on the crop around the hole (five: c, 2c, 4c, 8c, 8c),
    each ending in a 1024-wide dense layer, concatenated and mapped to one logit.

    Call: `d(whole, local, train)` with whole [B, H, W, 3] (256x256 in the paper) and local
    [B, h, w, 3] (128x128) RGB in [0, 1] -> [B] float32 logits (the paper's sigmoid output is
    `jax.nn.sigmoid` of them; the losses take the logits). c = 64: 45,063,681 parameters at
    256/128 (global 25,808,384, local 19,253,248, the final layer 2,049).
    """

    width: int = 64
    features: int = 1024
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, whole, local, train: bool = False):
        c = self.width
        g = _DiscriminatorBranch((c, 2 * c, 4 * c, 8 * c, 8 * c, 8 * c), self.features,
                                 self.dtype, name="global_branch")(whole, train)
        lo = _DiscriminatorBranch((c, 2 * c, 4 * c, 8 * c, 8 * c), self.features,
                                  self.dtype, name="local_branch")(local, train)
        y = nn.Dense(1, dtype=self.dtype, name="fc")(jnp.concatenate([g, lo], axis=-1))
        return y[:, 0].astype(jnp.float32)


def completion_input(image01, hole, mean: Sequence[float]):
    """The network's input as `inpaint.lua` builds it: [B, H, W, 4] = [image minus the mean pixel,
    0 in the hole (so the hole holds the mean pixel), hole mask]. image01 [B, H, W, 3] in [0, 1],
    hole [B, H, W, 1] (1 = hole), mean 3 floats (RGB)."""
    image01 = image01.astype(jnp.float32)
    hole = hole.astype(jnp.float32)
    x = (image01 - jnp.asarray(mean, jnp.float32)) * (1.0 - hole)
    return jnp.concatenate([x, hole], axis=-1)

