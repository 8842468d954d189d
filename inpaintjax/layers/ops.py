"""Small array helpers that reproduce TF1 and PyTorch behaviour exactly.

Everything is NHWC. These are the places where a naive JAX call silently differs from the
original code, each written to TF1's or PyTorch's documented behaviour of the op it stands in for:
TF1 align-corners nearest resizing (`tf.image.resize_nearest_neighbor(..., align_corners=True)`,
used by contextual attention), PyTorch's symmetric integer padding (`nn.Conv2d(padding=p)`),
reflection padding (`nn.ReflectionPad2d`), `nn.InstanceNorm2d` and `nn.BatchNorm2d` defaults,
and the padding that makes a flax transposed convolution equal PyTorch's `nn.ConvTranspose2d`.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from inpaintjax.layers.reductions import broadcast_leading, leading_mean

Padding2D = Tuple[Tuple[int, int], Tuple[int, int]]


def align_corners_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source indices of TF1 `resize_nearest_neighbor(..., align_corners=True)` along one axis.

    Output index i reads input index min(roundf(i * scale), n_in - 1) with
    scale = (n_in - 1) / (n_out - 1), both the scale and the product in float32 as in TF's kernel,
    and `roundf` rounding halves up (values are non-negative): floor(x + 0.5). For n_out == 1 it
    reads index 0. Float32 matters only where i * (n_in - 1) / (n_out - 1) is exactly k + 1/2
    (e.g. 2 -> 83 at i = 41, where TF reads 0, not 1); DeepFill's sizes never hit such a tie.
    Returns int32 [n_out]. Example: 64 -> 32 gives 0, 2, ..., 30, 33, 35, ..., 63 (not every
    second pixel).
    """
    n_in, n_out = int(n_in), int(n_out)
    if n_in < 1 or n_out < 1:
        raise ValueError(f"align_corners_indices needs sizes >= 1, got n_in={n_in}, n_out={n_out}")
    if n_out == 1:
        return np.zeros((1,), np.int32)
    scale = np.float32(n_in - 1) / np.float32(n_out - 1)
    x = np.arange(n_out, dtype=np.float32) * scale  # float32 product, as TF
    idx = np.floor(x.astype(np.float64) + 0.5)
    return np.minimum(idx, n_in - 1).astype(np.int32)


def resize_nearest_align_corners(x: jnp.ndarray, size: Sequence[int]) -> jnp.ndarray:
    """TF1 nearest-neighbour resize with `align_corners=True` of x [B, H, W, C] to [B, h, w, C].

    A static gather with `align_corners_indices`; `jax.image.resize(method='nearest')` uses
    half-pixel centres and picks different pixels.
    """
    if x.ndim != 4:
        raise ValueError(f"resize_nearest_align_corners expects NHWC [B, H, W, C], got shape {x.shape}")
    h, w = (int(s) for s in size)
    rows = align_corners_indices(x.shape[1], h)
    cols = align_corners_indices(x.shape[2], w)
    return jnp.take(jnp.take(x, rows, axis=1), cols, axis=2)


def torch_pad(p: Union[int, Sequence[int]]) -> Padding2D:
    """Explicit flax/lax padding equal to PyTorch's `padding=p` of a Conv2d: ((p, p), (p, p)).

    `p` may be an int or a pair (p_h, p_w). Never use 'SAME' for PyTorch convs: e.g. a 4x4
    stride-1 conv with p=1 shrinks 32 -> 31, which 'SAME' does not.
    """
    if isinstance(p, (int, np.integer)):
        ph = pw = int(p)
    else:
        p = tuple(p)
        if len(p) != 2:
            raise ValueError(f"torch_pad expects an int or a pair (p_h, p_w), got {p!r}")
        ph, pw = (int(v) for v in p)
    if ph < 0 or pw < 0:
        raise ValueError(f"torch_pad expects non-negative padding, got {(ph, pw)}")
    return ((ph, ph), (pw, pw))


def reflect_pad(x: jnp.ndarray, p: Union[int, Sequence[int]]) -> jnp.ndarray:
    """PyTorch `ReflectionPad2d(p)` on x [B, H, W, C]: mirror without repeating the edge pixel.

    `p` is an int or a pair (p_h, p_w), applied on both sides. Like PyTorch, p must be smaller
    than the padded dimension (numpy would silently reflect repeatedly instead).
    """
    if x.ndim != 4:
        raise ValueError(f"reflect_pad expects NHWC [B, H, W, C], got shape {x.shape}")
    (ph, _), (pw, _) = torch_pad(p)
    if ph >= x.shape[1] or pw >= x.shape[2]:
        raise ValueError(
            f"reflect_pad: padding {(ph, pw)} must be smaller than the spatial size "
            f"{tuple(x.shape[1:3])} (PyTorch ReflectionPad2d rule); use a larger input")
    return jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), mode="reflect")


class InstanceNorm(nn.Module):
    """PyTorch `InstanceNorm2d` (EdgeConnect without affine parameters, Shift-Net with them):
    eps 1e-5, the biased variance, two passes (mean, then the mean square of x - mean).

    Normalises each sample and channel over every axis between the first and the last (H, W):
    y = (x - mean) / sqrt(var + eps) [* scale + bias]; the same in training and inference.
    Parameters as flax's InstanceNorm: `scale` (init 1) and `bias` (init 0) [C], with `use_scale`
    / `use_bias`. Statistics in float32; the sums and the gradients of the per-image and
    per-channel broadcasts go through `inpaintjax.layers.reductions` (matrix-vector products on
    CPU, where XLA:CPU's reductions over the spatial axes are slow).
    """

    epsilon: float = 1e-5
    use_scale: bool = False
    use_bias: bool = False
    dtype: Optional[jnp.dtype] = None
    param_dtype: jnp.dtype = jnp.float32
    scale_init: Callable = nn.initializers.ones
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if x.ndim < 3:
            raise ValueError(f"InstanceNorm: expected [N, ..., C] with spatial axes, got shape {x.shape}")
        c = x.shape[-1]
        xf = x.astype(jnp.float32)
        centred = xf - broadcast_leading(leading_mean(xf, keep=1), xf.shape, keep=1)
        a = jax.lax.rsqrt(leading_mean(jnp.square(centred), keep=1) + self.epsilon)  # [N, C]
        if self.use_scale:
            a = a * self.param("scale", self.scale_init, (c,), self.param_dtype).astype(jnp.float32)
        y = centred * broadcast_leading(a, xf.shape, keep=1)
        if self.use_bias:
            bias = self.param("bias", self.bias_init, (c,), self.param_dtype).astype(jnp.float32)
            y = y + broadcast_leading(bias, xf.shape)
        return y.astype(self.dtype if self.dtype is not None else x.dtype)


class BatchNorm(nn.Module):
    """PyTorch `BatchNorm2d` (PConv U-Net): eps 1e-5, momentum 0.1, unbiased running variance.

    x: [..., C] (NHWC in the models); statistics per channel over every other axis. Variables as
    flax's BatchNorm: params `scale`, `bias` [C]; batch_stats `mean`, `var` [C] (init 0 and 1).
    Training mode (`use_running_average=False`) normalises with the batch mean and the biased
    batch variance, and updates (when `batch_stats` is mutable and not initialising)
      mean <- 0.9 * mean + 0.1 * batch_mean
      var  <- 0.9 * var  + 0.1 * batch_var * N / (N - 1)        N = elements per channel
    as PyTorch does (flax's own BatchNorm keeps the biased variance). Inference mode uses the
    stored statistics. Under `jax.jit` with a sharded batch the statistics are those of the whole
    (global) array, whatever the device count; inside `shard_map`/`pmap` pass `axis_name` to
    combine the per-device statistics into the global ones. Statistics are computed in float32.
    """

    use_running_average: Optional[bool] = None
    momentum: float = 0.9
    epsilon: float = 1e-5
    dtype: Optional[jnp.dtype] = None
    param_dtype: jnp.dtype = jnp.float32
    use_bias: bool = True
    use_scale: bool = True
    axis_name: Optional[str] = None
    scale_init: Callable = nn.initializers.ones
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jnp.ndarray, use_running_average: Optional[bool] = None) -> jnp.ndarray:
        use_running_average = nn.merge_param(
            "use_running_average", self.use_running_average, use_running_average)
        c = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        axes = tuple(range(x.ndim - 1))
        xf = x.astype(jnp.float32)
        scale = (self.param("scale", self.scale_init, (c,), self.param_dtype).astype(jnp.float32)
                 if self.use_scale else None)
        bias = (self.param("bias", self.bias_init, (c,), self.param_dtype).astype(jnp.float32)
                if self.use_bias else None)
        if use_running_average:
            # one multiply-add per element: y = x * a + b, a = scale / sqrt(var + eps),
            # b = bias - mean * a
            a = jax.lax.rsqrt(ra_var.value + self.epsilon)
            a = a * scale if scale is not None else a
            b = -ra_mean.value * a
            b = b + bias if bias is not None else b
            y = xf * broadcast_leading(a, xf.shape) + broadcast_leading(b, xf.shape)
        else:
            n = int(np.prod([x.shape[a] for a in axes]))
            mean = leading_mean(xf)
            if self.axis_name is not None:
                mean = jax.lax.pmean(mean, self.axis_name)
                n = n * jax.lax.psum(1, self.axis_name)
            elif n < 2:
                raise ValueError(
                    f"BatchNorm: training mode needs more than one value per channel, got input "
                    f"shape {x.shape} (PyTorch refuses this too); use a larger batch or image")
            # Two-pass variance: the one-pass E[x^2] - E[x]^2 loses digits on large activations.
            centred = xf - broadcast_leading(mean, xf.shape)
            var = leading_mean(jnp.square(centred))
            if self.axis_name is not None:
                var = jax.lax.pmean(var, self.axis_name)
            if not self.is_initializing():
                m = self.momentum
                ra_mean.value = m * ra_mean.value + (1.0 - m) * mean
                ra_var.value = m * ra_var.value + (1.0 - m) * var * (n / (n - 1))
            # the per-channel factor applied once (scale / sqrt(var + eps)): its gradient is one
            # reduction over the batch where (centred / sqrt(var + eps)) * scale needs two
            # (docs/performance.md, "Other families": PConv's training step)
            a = jax.lax.rsqrt(var + self.epsilon)
            y = centred * broadcast_leading(a * scale if scale is not None else a, xf.shape)
            y = y + broadcast_leading(bias, xf.shape) if bias is not None else y
        dtype = self.dtype if self.dtype is not None else x.dtype
        return y.astype(dtype)


def leaky_relu(x: jnp.ndarray) -> jnp.ndarray:
    """LeakyReLU with slope 0.2 (DeepFill TF default, EdgeConnect, PConv decoder); flax's default is 0.01."""
    return nn.leaky_relu(x, negative_slope=0.2)


def torch_conv_transpose_padding(kernel_size: int, padding: int) -> Padding2D:
    """Padding for `flax.linen.ConvTranspose(transpose_kernel=True)` equal to PyTorch
    `ConvTranspose2d(kernel_size, stride, padding)` (output_padding 0, dilation 1).

    lax pads the stride-dilated input by k - 1 - p on each side, giving the PyTorch output size
    (in - 1) * stride - 2p + k. The PyTorch weight [in, out, k, k] maps to the flax kernel
    [k, k, out, in] via `w.transpose(2, 3, 1, 0)` (see tests/test_layers.py for the check).
    """
    q = int(kernel_size) - 1 - int(padding)
    if q < 0:
        raise ValueError(f"torch_conv_transpose_padding: padding={padding} > kernel_size-1={kernel_size - 1}")
    return ((q, q), (q, q))
