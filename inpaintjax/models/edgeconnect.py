"""EdgeConnect's networks (Nazeri et al., "EdgeConnect: Generative Image Inpainting with Adversarial
Edge Learning", 2019; knazeri/edge-connect `src/networks.py`), NHWC.

* `EdgeGenerator` (G1): [grey with white holes, known edges, mask] -> edge map in [0, 1] (sigmoid).
* `InpaintGenerator` (G2): [RGB with white holes, edge map] -> RGB in [0, 1] ((tanh + 1) / 2).
* `EdgeConnectDiscriminator` (D1 with 2 input channels, D2 with 3): 70x70 PatchGAN returning
  `(patch_map, [conv1 .. conv5 features])`.

Both generators: reflect-pad 3 + 7x7 conv (64), two 4x4 stride-2 convs (128, 256), eight residual
blocks at 1/4 resolution (reflect-pad 2 + 3x3 dilation-2 conv, IN, ReLU, reflect-pad 1 + 3x3 conv,
IN; added to the input, no ReLU after), two 4x4 stride-2 transposed convs (128, 64), reflect-pad 3 +
7x7 conv. InstanceNorm without affine parameters at eps 1e-5 and ReLU after every conv but the
last. Inputs must have H and W divisible by 4 and larger than 12 (the reflect pads need it).

Spectral norm (`SpectralConv`) is PyTorch's `torch.nn.utils.spectral_norm` exactly: the weight is
viewed as W [out, in * kh * kw] in PyTorch's element order (dim 1 = output channels for the
transposed convs, as PyTorch chooses for ConvTranspose2d); the vectors u [out] and v [in*kh*kw]
live in `batch_stats`; a training call (`train=True`, `mutable=['batch_stats']`) runs one power
iteration v = n(W^T u), u = n(W v) with n(x) = x / max(||x||, 1e-12) and stores u, v; every call uses
W / sigma with sigma = u . (W v) from the (updated or stored) u, v, with gradients through W only.
So an evaluation call reproduces a PyTorch model in `eval()` mode from its state dict's
`weight_u`, `weight_v`, and training continues the original's power iteration.

Parameter names follow the PyTorch state dict (`encoder_1` = `encoder.1`, `middle_3/conv_block_5`
= `middle.3.conv_block.5`, `decoder_7`, `conv1` = `conv1.0`). Kernels are [kh, kw, in, out] for
both convolutions and transposed convolutions (a transposed conv kernel K[t_h, t_w, i, o] is the
weight scattered from input i to output o at tap (t_h, t_w): PyTorch's weight[i, o, t_h, t_w]).
Parameter counts: G1 10,761,089; G2 10,774,595; D1 2,762,752; D2 2,763,776.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from inpaintjax.layers.conv import conv_general_dilated, transpose_conv_4x4_s2_p1
from inpaintjax.layers.ops import InstanceNorm, leaky_relu, reflect_pad, torch_pad
from inpaintjax.layers.reductions import broadcast_leading

# PyTorch's `BaseNetwork.init_weights('normal', 0.02)`: weights N(0, 0.02), biases 0.
_KERNEL_INIT = nn.initializers.normal(0.02)
_SN_EPS = 1e-12


def _normalize(x: jnp.ndarray) -> jnp.ndarray:
    # torch.nn.functional.normalize: x / max(||x||, eps)
    return x / jnp.maximum(jnp.sqrt(jnp.sum(x * x)), _SN_EPS)


def weight_matrix(kernel: jnp.ndarray) -> jnp.ndarray:
    """The matrix PyTorch's spectral norm normalises, [out, in * kh * kw], from a [kh, kw, in, out] kernel.

    For a Conv2d the PyTorch weight is [out, in, kh, kw]; for a ConvTranspose2d it is
    [in, out, kh, kw], permuted to [out, in, kh, kw] by spectral_norm's dim=1. Both equal
    `kernel.transpose(3, 2, 0, 1)` here.
    """
    out = kernel.shape[-1]
    return jnp.transpose(kernel, (3, 2, 0, 1)).reshape(out, -1)


class SpectralConv(nn.Module):
    """A PyTorch-style 2-D convolution or 4x4/2/1 transposed convolution with optional spectral norm.

    x [B, H, W, C] -> [B, H', W', features]. `padding` is PyTorch's symmetric zero padding
    (reflection padding is applied by the caller, as the original's ReflectionPad2d layers).
    Variables: params `kernel` [k, k, C, features], `bias` [features] (if use_bias); with
    spectral_norm also batch_stats `u` [features], `v` [C * k * k] (PyTorch's weight_u, weight_v).
    """

    features: int
    kernel_size: int
    strides: int = 1
    padding: int = 0
    dilation: int = 1
    use_bias: bool = True
    spectral_norm: bool = False
    transpose: bool = False
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        k = self.kernel_size
        if self.transpose and (k, self.strides, self.padding, self.dilation) != (4, 2, 1, 1):
            raise ValueError("SpectralConv: transposed convolutions are implemented for kernel 4, "
                             f"stride 2, padding 1 (EdgeConnect's decoder), got kernel {k}, stride "
                             f"{self.strides}, padding {self.padding}, dilation {self.dilation}")
        in_ch = x.shape[-1]
        kernel = self.param("kernel", _KERNEL_INIT, (k, k, in_ch, self.features), jnp.float32)
        if self.spectral_norm:
            def init_vec(n):
                return _normalize(jax.random.normal(self.make_rng("params"), (n,), jnp.float32))

            u_var = self.variable("batch_stats", "u", init_vec, self.features)
            v_var = self.variable("batch_stats", "v", init_vec, in_ch * k * k)
            w = lax.stop_gradient(weight_matrix(kernel))
            u, v = u_var.value, v_var.value
            if train and not self.is_initializing():
                v = _normalize(w.T @ u)
                u = _normalize(w @ v)
                u_var.value, v_var.value = u, v
            sigma = jnp.dot(u, weight_matrix(kernel) @ v)
            kernel = kernel / sigma
        dtype = self.dtype or x.dtype
        x = x.astype(dtype)
        kernel = kernel.astype(dtype)
        if self.transpose:
            y = transpose_conv_4x4_s2_p1(x, kernel)
        else:
            y = conv_general_dilated(x, kernel, (self.strides, self.strides), torch_pad(self.padding),
                                     rhs_dilation=(self.dilation, self.dilation),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
            y = y + broadcast_leading(bias.astype(dtype), y.shape)
        return y


def _norm(x):
    return InstanceNorm(dtype=x.dtype)(x)


class ResnetBlock(nn.Module):
    """reflect-pad d, 3x3 conv dilation d, IN, ReLU, reflect-pad 1, 3x3 conv, IN; added to x."""

    dim: int = 256
    dilation: int = 2
    use_bias: bool = True
    spectral_norm: bool = False
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = dict(use_bias=self.use_bias, spectral_norm=self.spectral_norm, dtype=self.dtype)
        y = reflect_pad(x, self.dilation)
        y = SpectralConv(self.dim, 3, dilation=self.dilation, name="conv_block_1", **conv)(y, train)
        y = nn.relu(_norm(y))
        y = reflect_pad(y, 1)
        y = SpectralConv(self.dim, 3, name="conv_block_5", **conv)(y, train)
        return x + _norm(y)


def _generator(x, train, out_channels, spectral_norm, residual_bias, residual_blocks, dtype, who,
               remat=False, channels=64):
    """The encoder / residual blocks / decoder shared by G1 and G2 (built inside the caller's
    compact method, so the layers sit at the top of its parameter tree); the last conv's output.
    remat: the residual blocks recompute their activations in the backward pass. channels: the
    first layer's width (64 in the released networks; the others are 2x and 4x it)."""
    if x.ndim != 4 or x.shape[1] % 4 or x.shape[2] % 4 or min(x.shape[1:3]) < 16:
        raise ValueError(f"{who}: input must be [B, H, W, C] with H and W multiples of 4 and at "
                         f"least 16, got shape {x.shape}; pad the image (Inpainter does)")
    conv = dict(spectral_norm=spectral_norm, dtype=dtype)
    x = reflect_pad(x, 3)
    c = channels
    x = nn.relu(_norm(SpectralConv(c, 7, name="encoder_1", **conv)(x, train)))
    x = nn.relu(_norm(SpectralConv(2 * c, 4, strides=2, padding=1, name="encoder_4", **conv)(x, train)))
    x = nn.relu(_norm(SpectralConv(4 * c, 4, strides=2, padding=1, name="encoder_7", **conv)(x, train)))
    # train is a Python bool (static): argument 2, counting self
    block = nn.remat(ResnetBlock, static_argnums=(2,)) if remat else ResnetBlock
    for i in range(residual_blocks):
        x = block(4 * c, 2, residual_bias, spectral_norm, dtype=dtype, name=f"middle_{i}")(x, train)
    x = nn.relu(_norm(SpectralConv(2 * c, 4, strides=2, padding=1, transpose=True, name="decoder_0",
                                   **conv)(x, train)))
    x = nn.relu(_norm(SpectralConv(c, 4, strides=2, padding=1, transpose=True, name="decoder_3",
                                   **conv)(x, train)))
    x = reflect_pad(x, 3)
    x = SpectralConv(out_channels, 7, dtype=dtype, name="decoder_7")(x, train)
    return x.astype(jnp.float32)


class EdgeGenerator(nn.Module):
    """G1. x [B, H, W, 3] = [grey * (1 - m) + m, edges * (1 - m), m], all in [0, 1] ->
    edge probabilities [B, H, W, 1] in [0, 1]. Spectral norm on every conv but the last.
    `train=True` (with mutable=['batch_stats']) runs the spectral norm's power iteration.
    `spectral_norm=False` is the same network for kernels with the norm baked in
    (`inpaintjax.convert.edgeconnect.from_torch(..., bake=True)`)."""

    residual_blocks: int = 8
    spectral_norm: bool = True
    dtype: Optional[Any] = None
    remat: bool = False  # recompute the residual blocks' activations in the backward pass
    channels: int = 64   # the first layer's width (the released network's 64)

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = _generator(x, train, 1, self.spectral_norm, False, self.residual_blocks, self.dtype,
                       "EdgeGenerator", self.remat, self.channels)
        return jax.nn.sigmoid(y)


class InpaintGenerator(nn.Module):
    """G2. x [B, H, W, 4] = [rgb * (1 - m) + m, edges] in [0, 1] -> RGB [B, H, W, 3] in [0, 1].
    No spectral norm (so no `batch_stats`); `train` changes nothing."""

    residual_blocks: int = 8
    dtype: Optional[Any] = None
    remat: bool = False  # recompute the residual blocks' activations in the backward pass
    channels: int = 64   # the first layer's width (the released network's 64)

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = _generator(x, train, 3, False, True, self.residual_blocks, self.dtype,
                       "InpaintGenerator", self.remat, self.channels)
        return (jnp.tanh(y) + 1.0) / 2.0


class EdgeConnectDiscriminator(nn.Module):
    """D1 (x = [grey, edges], 2 channels) or D2 (x = RGB, 3 channels), values in [0, 1].

    Five 4x4 spectral-normalised convs without bias (stride 2, 2, 2, 1, 1; zero padding 1; 64,
    128, 256, 512, 1 channels in the released network: `channels` x 1, 2, 4, 8, then 1), LeakyReLU(0.2) after the first four. Returns (patch_map, features):
    patch_map [B, H/8 - 2, W/8 - 2, 1] (30x30 for 256), passed through a sigmoid when
    `use_sigmoid` (the nsgan and lsgan losses; hinge uses the raw map); features the five block
    outputs [conv1 .. conv4 after their LeakyReLU, conv5 before the sigmoid] for feature matching.
    `spectral_norm=False`: the same network for kernels with the norm baked in.
    """

    use_sigmoid: bool = True
    spectral_norm: bool = True
    dtype: Optional[Any] = None
    channels: int = 64   # the first layer's width (the released network's 64)

    @nn.compact
    def __call__(self, x, train: bool = False):
        if x.ndim != 4 or min(x.shape[1:3]) < 32:
            raise ValueError(f"EdgeConnectDiscriminator: input must be [B, H, W, C] with H, W >= 32, "
                             f"got shape {x.shape}")
        feats = []
        c = self.channels
        for i, (features, stride) in enumerate(((c, 2), (2 * c, 2), (4 * c, 2), (8 * c, 1), (1, 1))):
            x = SpectralConv(features, 4, strides=stride, padding=1, use_bias=False,
                             spectral_norm=self.spectral_norm,
                             dtype=self.dtype, name=f"conv{i + 1}")(x, train)
            if i < 4:
                x = leaky_relu(x)
            feats.append(x.astype(jnp.float32))
        out = feats[-1]
        if self.use_sigmoid:
            out = jax.nn.sigmoid(out)
        return out, feats
