"""Gated convolution (DeepFill v2's `gen_conv`) and its nearest-x2 up-sampling variant (`gen_deconv`).

SPEC.md 1.2: one convolution with 2*features outputs, split [features | gates] along channels,
output = activation(features) * sigmoid(gates). TF 'SAME' zero padding (JAX's 'SAME' rule is TF's,
including stride 2 on even sizes and dilation). `activation=None` is DeepFill's plain RGB layer.
"""

from __future__ import annotations

from typing import Callable, Optional

import flax.linen as nn
import jax.numpy as jnp

from inpaintjax.layers.conv import conv_general_dilated


class GatedConv(nn.Module):
    """y = activation(W*x)[..., :F] * sigmoid(W*x)[..., F:] with one kernel of 2F outputs.

    x: [B, H, W, C]. Output [B, ceil(H/s), ceil(W/s), F]. With `activation=None` the layer is one
    plain convolution with F outputs (no gate), as DeepFill's output layers (conv17, allconv17).
    The conv sub-module is named 'conv' (kernel HWIO [k, k, C, 2F], bias [2F]).
    """

    features: int
    kernel_size: int = 3
    strides: int = 1
    dilation: int = 1
    activation: Optional[Callable] = nn.elu
    dtype: Optional[jnp.dtype] = None

    @nn.compact
    def __call__(self, x):
        gated = self.activation is not None
        y = nn.Conv(
            self.features * 2 if gated else self.features,
            (self.kernel_size, self.kernel_size),
            strides=(self.strides, self.strides),
            kernel_dilation=(self.dilation, self.dilation),
            padding="SAME",
            dtype=self.dtype,
            # TF1's tf.layers.conv2d defaults, so training from scratch starts as the original.
            kernel_init=nn.initializers.glorot_uniform(),
            bias_init=nn.initializers.zeros,
            conv_general_dilated=conv_general_dilated,
            name="conv",
        )(x)
        if not gated:
            return y
        features, gates = jnp.split(y, 2, axis=-1)
        return self.activation(features) * nn.sigmoid(gates)


def upsample_nearest2x(x):
    """Nearest x2 up-sampling: output[i, j] = x[i // 2, j // 2] (TF align-corners NN at exact 2x)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class GatedUpConv(nn.Module):
    """DeepFill v2's `gen_deconv`: nearest x2 up-sampling, then a 3x3 stride-1 GatedConv.

    The inner gated conv is named 'conv' so parameters nest as <name>/conv/conv/{kernel,bias},
    mirroring TF's <name>/<name>_conv/{kernel,bias}.
    """

    features: int
    activation: Optional[Callable] = nn.elu
    dtype: Optional[jnp.dtype] = None

    @nn.compact
    def __call__(self, x):
        return GatedConv(self.features, 3, activation=self.activation, dtype=self.dtype,
                         name="conv")(upsample_nearest2x(x))
