"""Gated convolution (DeepFill v2's `gen_conv`) and its nearest-x2 up-sampling variant (`gen_deconv`).

As in the authors' TF1 code (JiahuiYu/generative_inpainting `inpaint_ops.py::gen_conv`,
`gen_deconv`; Yu et al., arXiv 1806.03589): one convolution with 2*features outputs, split
[features | gates] along channels, output = activation(features) * sigmoid(gates). TF 'SAME' zero
padding (JAX's 'SAME' rule is TF's, including stride 2 on even sizes and dilation).
`PlainConv` is the same convolution without a gate (DeepFill v1's layers, the RGB output layers);
`PlainUpConv` its up-sampling variant.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from inpaintjax.layers.conv import NHWC_DIMENSIONS, Conv, conv_general_dilated, conv_impl


def _tf_conv(features: int, kernel_size: int, strides: int, dilation: int, dtype,
             upsample_input: bool) -> Conv:
    """TF1's `tf.layers.conv2d` ('SAME' padding, its default initialisers) as the sub-module
    'conv' of the calling layer; `upsample_input`: it reads the nearest-x2 up-sampled input
    (DeepFill's gen_deconv), computed without materialising the up-sampled image."""
    if upsample_input and (strides != 1 or dilation != 1 or kernel_size % 2 == 0):
        raise ValueError("an up-sampling convolution (upsample_input=True) needs an odd kernel, "
                         f"stride 1 and dilation 1 (got kernel_size={kernel_size}, "
                         f"strides={strides}, dilation={dilation})")
    return Conv(
        features,
        (kernel_size, kernel_size),
        strides=(strides, strides),
        kernel_dilation=(dilation, dilation),
        padding="SAME",
        dtype=dtype,
        # TF1's tf.layers.conv2d defaults, so training from scratch starts as the original.
        kernel_init=nn.initializers.glorot_uniform(),
        bias_init=nn.initializers.zeros,
        conv_general_dilated=upsample2x_conv if upsample_input else conv_general_dilated,
        name="conv",
    )


class PlainConv(nn.Module):
    """One TF 'SAME' convolution without a gate: y = W*x + b, x [B, H, W, C] ->
    [B, ceil(H/s), ceil(W/s), F]. Every DeepFill v1 layer (`tf.layers.conv2d`) and both versions'
    RGB output layers (conv17, allconv17). The conv sub-module is named 'conv' (kernel HWIO
    [k, k, C, F], bias [F]), as GatedConv's, so both nest their parameters alike."""

    features: int
    kernel_size: int = 3
    strides: int = 1
    dilation: int = 1
    dtype: Optional[jnp.dtype] = None
    upsample_input: bool = False  # True: read the nearest-x2 up-sampled input (see GatedConv)

    @nn.compact
    def __call__(self, x):
        return _tf_conv(self.features, self.kernel_size, self.strides, self.dilation, self.dtype,
                        self.upsample_input)(x)


class GatedConv(nn.Module):
    """y = activation(W*x)[..., :F] * sigmoid(W*x)[..., F:] with one kernel of 2F outputs.

    x: [B, H, W, C]. Output [B, ceil(H/s), ceil(W/s), F]. A convolution without a gate is
    `PlainConv`. The conv sub-module is named 'conv' (kernel HWIO [k, k, C, 2F], bias [2F]).
    """

    features: int
    kernel_size: int = 3
    strides: int = 1
    dilation: int = 1
    activation: Callable = nn.elu
    dtype: Optional[jnp.dtype] = None
    # True: the convolution reads the nearest-x2 up-sampled input (DeepFill's gen_deconv), computed
    # without materialising the up-sampled image (see `upsample2x_conv`).
    upsample_input: bool = False

    @nn.compact
    def __call__(self, x):
        if self.activation is None:
            raise ValueError("GatedConv needs an activation; a convolution without a gate is "
                             "PlainConv")
        y = _tf_conv(self.features * 2, self.kernel_size, self.strides, self.dilation,
                     self.dtype, self.upsample_input)(x)
        return gated_activation(y, self.activation)


def _elu_derivative(f):
    return jnp.where(f > 0, jnp.ones_like(f), jnp.exp(jnp.minimum(f, 0)))


def _relu_derivative(f):
    return (f > 0).astype(f.dtype)


# Activations the fused gradient below knows: name -> (function, derivative), and the function
# objects a layer may be given for each name.
_ACTIVATIONS = {"elu": (jax.nn.elu, _elu_derivative), "relu": (jax.nn.relu, _relu_derivative)}
_NAMES = {nn.elu: "elu", jax.nn.elu: "elu", nn.relu: "relu", jax.nn.relu: "relu"}


def gated_activation(y, activation: Callable):
    """activation(y[..., :F]) * sigmoid(y[..., F:]) for y [..., 2F].

    For ELU and ReLU the gradient is one fused pass that recomputes the activation and the sigmoid
    from y (which the convolution's gradient keeps anyway), instead of autodiff's separately
    materialised intermediates: on the CPU that turned four memory passes per layer into one
    (DeepFill v2 runs 60 gated layers per training step). Same values and gradients as the plain
    formula (to float rounding; tested); other activations, and `set_conv_impl('native')` (for
    forward-mode differentiation, which a custom_vjp does not support), use plain autodiff.
    """
    name = _NAMES.get(activation)
    if name is None or conv_impl() == "native":
        features, gates = jnp.split(y, 2, axis=-1)
        return activation(features) * nn.sigmoid(gates)
    return _fused_gated(name, y)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused_gated(name, y):
    act, _ = _ACTIVATIONS[name]
    features, gates = jnp.split(y, 2, axis=-1)
    return act(features) * jax.nn.sigmoid(gates)


def _fused_gated_fwd(name, y):
    return _fused_gated(name, y), y


def _fused_gated_bwd(name, y, g):
    act, derivative = _ACTIVATIONS[name]
    # The barrier keeps XLA from merging this recomputation with the forward's (CSE), which would
    # materialise the activation and the sigmoid for the backward pass: three arrays written
    # instead of one.
    features, gates = jnp.split(jax.lax.optimization_barrier(y), 2, axis=-1)
    sig = jax.nn.sigmoid(gates)
    g = g.astype(y.dtype)
    d_features = g * sig * derivative(features)
    d_gates = g * act(features) * sig * (1 - sig)
    return (jnp.concatenate([d_features, d_gates], axis=-1),)


_fused_gated.defvjp(_fused_gated_fwd, _fused_gated_bwd)


class GatedUpConv(nn.Module):
    """DeepFill v2's `gen_deconv`: nearest x2 up-sampling, then a 3x3 stride-1 GatedConv.

    The inner gated conv is named 'conv' so parameters nest as <name>/conv/conv/{kernel,bias},
    mirroring TF's <name>/<name>_conv/{kernel,bias}.
    """

    features: int
    activation: Callable = nn.elu
    dtype: Optional[jnp.dtype] = None

    @nn.compact
    def __call__(self, x):
        return GatedConv(self.features, 3, activation=self.activation, dtype=self.dtype,
                         upsample_input=True, name="conv")(x)


class PlainUpConv(nn.Module):
    """DeepFill v1's up-sampling: nearest x2, then a 3x3 stride-1 PlainConv named 'conv'
    (parameters <name>/conv/conv/{kernel,bias}, as GatedUpConv's)."""

    features: int
    dtype: Optional[jnp.dtype] = None

    @nn.compact
    def __call__(self, x):
        return PlainConv(self.features, 3, dtype=self.dtype, upsample_input=True, name="conv")(x)


def _phase_taps(k: int, phase: int):
    """For output phase `phase` (0/1) of a k-tap 'SAME' convolution of a nearest-x2 up-sampled
    signal: {offset in the low-resolution signal: [kernel taps whose products land there]}.
    Up-sampled row 2P + phase + i - (k-1)/2 is low-resolution row P + floor((phase + i - p) / 2),
    so each offset's taps are a contiguous run of i."""
    p = (k - 1) // 2
    groups: dict[int, list[int]] = {}
    for i in range(k):
        groups.setdefault((phase + i - p) // 2, []).append(i)
    return groups


def upsample2x_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                    dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                    precision=None, preferred_element_type=None, **unused):
    """conv('SAME', stride 1)(nearest_x2_upsample(lhs), rhs) without the up-sampled image.

    lhs [B, H, W, Ci] (low resolution), rhs [k, k, Ci, Co] (k odd) -> [B, 2H, 2W, Co]. Each of
    the four output phases (even/odd row, even/odd column) reads a 2x2 neighbourhood of the
    low-resolution input: a 3x3 kernel on the up-sampled image is, per phase, a 2x2 kernel whose
    taps are sums of the original taps. Four 2x2 convolutions on H x W do 16 multiply-adds per
    low-resolution pixel instead of 36 on the 4x larger image (2.25x fewer FLOPs in the forward
    pass and in both gradients), and the 4x larger up-sampled activation is never written, read
    back or transposed. Same result as the plain formulation to float rounding (the taps are
    added before multiplying); tested against it. The signature is `lax.conv_general_dilated`'s,
    for `Conv(conv_general_dilated=...)`.
    """
    k = rhs.shape[0]
    p = (k - 1) // 2
    pads = padding if isinstance(padding, str) else tuple(
        tuple(int(v) for v in pair) for pair in padding)
    try:
        dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    except (TypeError, ValueError):
        dn = None
    if (lhs.ndim != 4 or rhs.shape[0] != rhs.shape[1] or k % 2 == 0
            or tuple(window_strides) != (1, 1)
            or any(tuple(d or (1, 1)) != (1, 1) for d in (lhs_dilation, rhs_dilation))
            or feature_group_count != 1 or batch_group_count != 1
            or pads not in ("SAME", ((p, p), (p, p))) or dn != NHWC_DIMENSIONS):
        raise ValueError("upsample2x_conv expects a square odd kernel, stride 1, 'SAME' padding, "
                         f"no dilation or groups, NHWC/HWIO/NHWC; got kernel {rhs.shape}, "
                         f"strides {window_strides}, padding {padding}, lhs_dilation "
                         f"{lhs_dilation}, rhs_dilation {rhs_dilation}")
    taps = [_phase_taps(k, a) for a in range(2)]

    def combine(w, groups, axis):
        # the taps of each offset (a contiguous run of kernel indices) summed, in increasing
        # offset order: one slice and one sum per offset, not an indexing per tap
        return jnp.stack([jnp.sum(lax.slice_in_dim(w, groups[o][0], groups[o][-1] + 1, axis=axis),
                                  axis=axis) for o in sorted(groups)], axis=axis)

    rows = []
    for a in range(2):
        ga = taps[a]
        by_rows = combine(rhs, ga, 0)                   # [len(ga), k, Ci, Co]
        cols = []
        for b in range(2):
            gb = taps[b]
            kernel = combine(by_rows, gb, 1)            # [len(ga), len(gb), Ci, Co]
            pads = ((-min(ga), max(ga)), (-min(gb), max(gb)))
            cols.append(conv_general_dilated(
                lhs, kernel, (1, 1), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                precision=precision, preferred_element_type=preferred_element_type))
        rows.append(jnp.stack(cols, axis=3))         # [B, H, W, 2(b), Co]
    y = jnp.stack(rows, axis=2)                      # [B, H, 2(a), W, 2(b), Co]
    bsz, h, _, w, _, co = y.shape
    return y.reshape(bsz, 2 * h, 2 * w, co)
