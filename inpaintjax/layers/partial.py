"""Partial convolution with mask propagation (Liu et al., ECCV 2018; NVIDIA `PartialConv2d`).

NVIDIA's rule (NVIDIA/partialconv `models/partialconv2d.py::PartialConv2d.forward`), written with
M = 1 - hole (1 = valid):
  sumM  = conv(M, ones) with the layer's stride, padding and dilation (zero padding = hole)
  ratio = slide_winsize / (sumM + eps) * clamp(sumM, 0, 1)
  raw   = conv(X * M) + b
  out   = ((raw - b) * ratio + b) * clamp(sumM, 0, 1)     with a bias
  out   = raw * ratio                                      without a bias
  new hole mask = 1 - clamp(sumM, 0, 1)
slide_winsize = kh*kw (one-channel mask) or C_in*kh*kw (multi_channel). The mask arithmetic runs
under stop_gradient, as NVIDIA's runs under no_grad.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from inpaintjax.layers.conv import Conv, conv_general_dilated
from inpaintjax.layers.ops import torch_pad

IntOrPair = Union[int, Sequence[int]]


def _pair(v: IntOrPair, what: str) -> Tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(a) for a in v)
    if len(v) != 2:
        raise ValueError(f"PartialConv: {what} must be an int or a pair, got {v!r}")
    return v


class PartialConv(nn.Module):
    """NVIDIA's `PartialConv2d` (`return_mask=True`) on NHWC arrays with hole masks.

    Call: `y, new_mask = PartialConv(...)(x, mask)`.
      x:    [B, H, W, C]
      mask: hole mask (1 = hole, 0 = known); [B, H, W, 1] (also when `multi_channel`, where it is
            broadcast over C, equal to a C-channel copy), or [B, H, W, C] when `multi_channel`.
            `None` means no hole (NVIDIA's default), so the layer still re-weights zero-padded
            border windows.
    Returns y [B, H', W', features] and the new hole mask, float32 [B, H', W', 1], or
    [B, H', W', features] identical channels when `multi_channel` (NVIDIA returns an out-channel
    mask there, which concatenates with features in a U-Net skip).

    padding: 'SAME' (TF rule), 'VALID', or an int p (PyTorch's symmetric padding, (p, p) per side).
    The kernel is an ordinary HWIO conv kernel in sub-module 'conv' (params conv/kernel
    [kh, kw, C, features], conv/bias [features]). `epsilon` is NVIDIA's 1e-8 (its README advises
    1e-6 for mixed precision); the mask arithmetic is done in float32 regardless of `dtype`, so
    window sums stay exact integers even with bfloat16 compute.
    """

    features: int
    kernel_size: IntOrPair = 3
    strides: IntOrPair = 1
    dilation: IntOrPair = 1
    padding: Union[str, int] = "SAME"
    use_bias: bool = True
    multi_channel: bool = False
    epsilon: float = 1e-8
    dtype: Optional[jnp.dtype] = None
    # NI (the reference U-Net reimplementation) initialises with Kaiming-normal, fan_in.
    kernel_init: Callable = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
    bias_init: Callable = nn.initializers.zeros

    def _lax_padding(self):
        if isinstance(self.padding, str):
            if self.padding.upper() not in ("SAME", "VALID"):
                raise ValueError(f"PartialConv: padding must be 'SAME', 'VALID' or an int, got {self.padding!r}")
            return self.padding.upper()
        if isinstance(self.padding, int):
            return torch_pad(self.padding)
        raise ValueError(f"PartialConv: padding must be 'SAME', 'VALID' or an int, got {self.padding!r}")

    @nn.compact
    def __call__(self, x: jnp.ndarray, mask: Optional[jnp.ndarray] = None):
        if x.ndim != 4:
            raise ValueError(f"PartialConv expects x as NHWC [B, H, W, C], got shape {x.shape}")
        b, h, w, c = x.shape
        if mask is None:
            mask = jnp.zeros((b, h, w, 1), jnp.float32)
        allowed = (1, c) if self.multi_channel else (1,)
        if mask.ndim != 4 or mask.shape[:3] != (b, h, w) or mask.shape[3] not in allowed:
            raise ValueError(
                f"PartialConv: mask shape {mask.shape} does not fit x {x.shape}; expected "
                f"[{b}, {h}, {w}, {' or '.join(str(a) for a in allowed)}] (hole mask, 1 = hole)"
                + ("" if self.multi_channel else "; use multi_channel=True for per-channel masks"))

        kernel_size = _pair(self.kernel_size, "kernel_size")
        strides = _pair(self.strides, "strides")
        dilation = _pair(self.dilation, "dilation")
        padding = self._lax_padding()

        valid = 1.0 - jax.lax.stop_gradient(mask.astype(jnp.float32))
        if self.multi_channel:
            # A one-channel mask stands for C identical channels (slide_winsize counts all C).
            valid = jnp.broadcast_to(valid, (b, h, w, c))
        # The window sum of the valid mask. All out channels of NVIDIA's ones-kernel are equal, so
        # summing the mask's channels first and convolving one channel gives the same sumM.
        valid_sum_ch = jnp.sum(valid, axis=-1, keepdims=True)
        ones = jnp.ones(kernel_size + (1, 1), jnp.float32)
        sum_m = conv_general_dilated(
            valid_sum_ch, ones, window_strides=strides, padding=padding,
            rhs_dilation=dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"))
        in_mask_channels = c if self.multi_channel else 1
        slide_winsize = float(in_mask_channels * kernel_size[0] * kernel_size[1])
        new_valid = jnp.clip(sum_m, 0.0, 1.0)
        ratio = slide_winsize / (sum_m + self.epsilon) * new_valid
        ratio = jax.lax.stop_gradient(ratio)
        new_valid = jax.lax.stop_gradient(new_valid)

        conv = Conv(
            self.features, kernel_size, strides=strides, padding=padding,
            kernel_dilation=dilation, use_bias=self.use_bias, dtype=self.dtype,
            kernel_init=self.kernel_init, bias_init=self.bias_init, name="conv")
        raw = conv(x * valid.astype(x.dtype))
        ratio = ratio.astype(raw.dtype)
        if self.use_bias:
            bias = conv.variables["params"]["bias"].astype(raw.dtype)
            y = ((raw - bias) * ratio + bias) * new_valid.astype(raw.dtype)
        else:
            y = raw * ratio

        new_mask = 1.0 - new_valid
        if self.multi_channel:
            new_mask = jnp.broadcast_to(new_mask, new_mask.shape[:3] + (self.features,))
        return y, new_mask
