"""The one convolution primitive every layer in inpaintjax goes through.

`conv_general_dilated` has the signature of `jax.lax.conv_general_dilated` and is passed to
`flax.linen.Conv(conv_general_dilated=...)` by every layer, so a faster formulation of the
convolution (and of its gradients) on one backend reaches every model at once.

The forward pass is always XLA's own. On CPU the backward pass is replaced where XLA's is slow:

* input gradient of a strided convolution (stride s > 1, undilated, >= 16 input channels): XLA
  lowers it to an input-dilated convolution that multiplies by the inserted zeros (2-5x slower
  than needed). Here it is the s*s "phases" of the input, each a stride-1 convolution of grad_out
  with a sub-kernel (taps r, r+s, r+2s, ...), interleaved: the same FLOPs as the forward.
* kernel gradient, only when XLA:CPU's convolutions go to YNNPACK (jaxlib's default, see
  `inpaintjax.xla_cpu`): YNNPACK's kernel gradient runs nearly single-threaded, up to 6x slower
  than a matmul. Here it is the k*k shifted (strided, dilated) windows of the padded input
  gathered into patches [rows, k*k*Cin], then one `patches^T @ grad_out` matmul, accumulated
  over chunks of (batch, output rows) in a `lax.scan` so the patches of one chunk (about 1 MiB by
  default) stay in cache and no k*k-times copy of the activation is ever materialised. With
  YNNPACK's fusions off XLA's own kernel gradient is faster and is used instead.
* gradient of a gradient (WGAN-GP's penalty differentiates an input gradient): the input
  gradient has its own closed-form VJP (a forward convolution and a kernel gradient), so the
  second-order pass runs near first-order speed. Autodiff of XLA's input gradient (or of the
  phases) produced convolutions XLA:CPU ran 4-10x slower (docs/deepfill_v1.md). This is
  why convolutions whose first-order gradients are XLA's own take the custom VJP too.

Importing inpaintjax leaves XLA's set-up alone: the fusions are off only once
`inpaintjax.xla_cpu.configure()` (which `train.py`, `eval.py`, the `inpaintjax` command and the
benchmark call) has applied the set-up calibrated as faster for this CPU or forced by
INPAINTJAX_XLA_CPU=tuned, or when the user's own XLA_FLAGS turn them off.
`xla_cpu.ynn_convolutions_off()` says which, and is read when a function is traced.

The backward pass is selected by platform with `jax.lax.platform_dependent`, resolved when the
computation is lowered for its actual device: under `jit` for GPU or TPU (with any sharding) the
lowered program holds only the native branch, which is exactly what autodiff of
`lax.conv_general_dilated` emits, so accelerators keep cuDNN's / the TPU compiler's gradients
untouched. Anything outside the fast formulation (grouped or transposed convolutions, other
layouts, negative padding, 1-D / 3-D) goes straight to `lax.conv_general_dilated`.

Switches (read when a function is traced; already-compiled functions keep their choice):
  INPAINTJAX_CONV=native        force the native path everywhere (for A/B comparisons)
  INPAINTJAX_CONV_CHUNK=<int>   patch elements per kernel-gradient chunk (default 262144 = 1 MiB f32)
  INPAINTJAX_CONV_MIN_FLOPS=<n> convolutions with fewer forward FLOPs stay native (default 1e8:
                                tiny convolutions gain nothing and compile faster natively)
or `set_conv_impl('native' | 'auto')` from Python.

Limitation: like every `jax.custom_vjp`, the fast path supports reverse-mode differentiation to any
order (e.g. WGAN-GP's gradient of a gradient) and vmap, but not forward mode (`jax.jvp`,
`jax.jacfwd`, `jax.hessian`): use `set_conv_impl('native')` for those (it also turns off the
per-channel sums of `inpaintjax.layers.reductions` and the gated layers' fused activation
gradient, which have the same limitation).
"""

from __future__ import annotations

import math
import os
from functools import partial
from typing import Callable, NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen.dtypes import promote_dtype
from jax import lax

from inpaintjax import xla_cpu
from inpaintjax.layers.reductions import broadcast_leading

NHWC_DIMENSIONS = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2))
_IMPLS = ("auto", "native")
_impl_override: Optional[str] = None
DEFAULT_CHUNK_ELEMENTS = 1 << 18
DEFAULT_MIN_FLOPS = 100_000_000
_PHASE_MIN_CHANNELS = 16


def set_conv_impl(impl: Optional[str]) -> None:
    """Choose the convolution gradient path for functions traced from now on.

    'auto' (default): the fast CPU backward pass on CPU, the native one elsewhere. 'native':
    `lax.conv_general_dilated` and its autodiff everywhere. None: back to the environment variable
    INPAINTJAX_CONV (default 'auto').
    """
    global _impl_override
    if impl is not None and impl not in _IMPLS:
        raise ValueError(f"set_conv_impl: unknown implementation {impl!r}; use one of {_IMPLS}")
    _impl_override = impl


def conv_impl() -> str:
    """The implementation functions traced now will use: 'auto' or 'native'."""
    if _impl_override is not None:
        return _impl_override
    impl = os.environ.get("INPAINTJAX_CONV", "auto").strip().lower() or "auto"
    if impl not in _IMPLS:
        raise ValueError(f"environment variable INPAINTJAX_CONV={impl!r} is not one of {_IMPLS}")
    return impl


def _min_flops() -> int:
    raw = os.environ.get("INPAINTJAX_CONV_MIN_FLOPS", "")
    try:
        value = int(float(raw)) if raw else DEFAULT_MIN_FLOPS
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"environment variable INPAINTJAX_CONV_MIN_FLOPS={raw!r} must be a "
                         "non-negative number (FLOPs below which a convolution stays native)")
    return value


def _chunk_elements() -> int:
    raw = os.environ.get("INPAINTJAX_CONV_CHUNK", "")
    if not raw:
        return DEFAULT_CHUNK_ELEMENTS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"environment variable INPAINTJAX_CONV_CHUNK={raw!r} must be a positive "
                         "integer (patch elements per kernel-gradient chunk, e.g. 262144)")
    return value


def describe() -> dict:
    """The convolution set-up functions traced now get, for a run's record: {'conv': 'auto' or
    'native', 'conv_chunk_elements', 'conv_min_flops'} (the INPAINTJAX_CONV* switches above)."""
    return {"conv": conv_impl(), "conv_chunk_elements": _chunk_elements(),
            "conv_min_flops": _min_flops()}


class _Spec(NamedTuple):
    """Static description of one NHWC/HWIO 2-D convolution on the fast path (hashable)."""
    strides: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]
    dilation: tuple[int, int]
    precision: object
    preferred_element_type: object
    chunk: int


def _fast_spec(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
               feature_group_count, batch_group_count, precision, preferred_element_type,
               out_sharding) -> Optional[_Spec]:
    """The static parameters if this call is one the fast backward pass handles, else None."""
    if conv_impl() == "native" or out_sharding is not None:
        return None
    if lhs.ndim != 4 or rhs.ndim != 4 or feature_group_count != 1 or batch_group_count != 1:
        return None
    if lhs_dilation is not None and any(d != 1 for d in lhs_dilation):
        return None
    try:
        dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    except (TypeError, ValueError):
        return None
    if dn != NHWC_DIMENSIONS:
        return None
    strides = tuple(int(s) for s in window_strides)
    dilation = tuple(int(d) for d in (rhs_dilation or (1, 1)))
    if len(strides) != 2 or len(dilation) != 2 or min(strides + dilation) < 1:
        return None
    if isinstance(padding, str):
        eff = tuple((k - 1) * d + 1 for k, d in zip(rhs.shape[:2], dilation))
        pads = lax.padtype_to_pads(lhs.shape[1:3], eff, strides, padding)
    else:
        pads = padding
    try:
        pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    except (TypeError, ValueError):
        return None
    if len(pads) != 2 or any(p < 0 for pair in pads for p in pair):
        return None
    if lhs.dtype != rhs.dtype or not jnp.issubdtype(lhs.dtype, jnp.floating):
        return None
    out_pixels = 1
    for n, k, s, d, (lo, hi) in zip(lhs.shape[1:3], rhs.shape[:2], strides, dilation, pads):
        out_pixels *= max(0, (n + lo + hi - (k - 1) * d - 1) // s + 1)
    if 2 * lhs.shape[0] * out_pixels * math.prod(rhs.shape) < _min_flops():
        # Too small to matter: keep XLA's own program (smaller, faster to compile).
        return None
    return _Spec(strides, pads, dilation, precision, preferred_element_type, _chunk_elements())


def conv_general_dilated(lhs, rhs, window_strides: Sequence[int], padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision=None, preferred_element_type=None,
                         out_sharding=None):
    """`jax.lax.conv_general_dilated` with a fast backward pass on CPU (see the module docstring).

    Same arguments, same result and same gradients (to float rounding) as the lax function. 2-D
    NHWC/HWIO/NHWC convolutions with non-negative padding (or 'SAME'/'VALID'), any strides and
    kernel dilation, one feature group, take the custom gradient; every other call is forwarded
    to lax unchanged.
    """
    spec = _fast_spec(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                      dimension_numbers, feature_group_count, batch_group_count, precision,
                      preferred_element_type, out_sharding)
    if spec is None:
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count, batch_group_count=batch_group_count,
            precision=precision, preferred_element_type=preferred_element_type,
            out_sharding=out_sharding)
    return _conv(spec, lhs, rhs)


def _native(spec: _Spec, lhs, rhs):
    return lax.conv_general_dilated(
        lhs, rhs, spec.strides, spec.padding, rhs_dilation=spec.dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=spec.precision,
        preferred_element_type=spec.preferred_element_type)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _conv(spec: _Spec, lhs, rhs):
    return _native(spec, lhs, rhs)


def _conv_fwd(spec, lhs, rhs):
    return _native(spec, lhs, rhs), (lhs, rhs)


def _conv_bwd(spec, residuals, g):
    lhs, rhs = residuals
    return lax.platform_dependent(
        lhs, rhs, g,
        cpu=partial(_cpu_backward, spec),
        default=partial(_native_backward, spec))


_conv.defvjp(_conv_fwd, _conv_bwd)


def _native_backward(spec: _Spec, lhs, rhs, g):
    """Exactly what autodiff of lax.conv_general_dilated computes (used off-CPU)."""
    _, vjp = jax.vjp(partial(_native, spec), lhs, rhs)
    return vjp(g)


def _cpu_backward(spec: _Spec, lhs, rhs, g):
    return input_grad(spec, lhs, rhs, g), _cpu_kernel_grad(spec, lhs, rhs, g)


def _cpu_kernel_grad(spec: _Spec, lhs, rhs, g):
    """d(loss)/d(rhs) on CPU: XLA's own (Eigen) kernel gradient when YNNPACK's convolutions are
    off (faster there than the patches formulation), else `kernel_grad`."""
    if xla_cpu.ynn_convolutions_off():
        _, vjp = jax.vjp(lambda w: _native(spec, lhs, w), rhs)
        return vjp(g)[0]
    return kernel_grad(spec, lhs, g, rhs.shape)


def _phase_input_grad_applies(strides, dilation, in_channels: int) -> bool:
    """Whether the phase formulation beats XLA's input gradient for this convolution."""
    (s0, s1), (d0, d1) = strides, dilation
    # Stride 1 is XLA's fast case already; strided *and* dilated is used by no model here; and
    # with few input channels (an RGB(+mask) first layer) the phases' convolutions have too few
    # output channels to beat the native form (measured: 4 -> 64, 5x5, stride 2).
    return ((s0 > 1 or s1 > 1) and not (s0 > 1 and d0 > 1) and not (s1 > 1 and d1 > 1)
            and in_channels >= _PHASE_MIN_CHANNELS)


def input_grad(spec: _Spec, lhs, rhs, g):
    """d(loss)/d(lhs) for the convolution `spec` (lhs [B,H,W,Ci], rhs [kh,kw,Ci,Co], g [B,Ho,Wo,Co]).

    Only lhs's shape and dtype are used. The result is bilinear in (rhs, g), and its own VJP is
    given in closed form: for a cotangent v shaped like lhs, d/dg = conv(v, rhs) (the forward
    convolution) and d/drhs = the kernel gradient of the convolution at input v and output
    cotangent g (why: the module docstring's "gradient of a gradient").
    """
    return _input_grad(spec, (tuple(lhs.shape), jnp.dtype(lhs.dtype)), rhs, g)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _input_grad(spec: _Spec, lhs_aval, rhs, g):
    shape, dtype = lhs_aval
    if not _phase_input_grad_applies(spec.strides, spec.dilation, shape[3]):
        return jax.linear_transpose(lambda x: _native(spec, x, rhs),
                                    jax.ShapeDtypeStruct(shape, dtype))(g)[0]
    return _phase_input_grad(spec, shape, dtype, rhs, g)


def _input_grad_fwd(spec, lhs_aval, rhs, g):
    return _input_grad(spec, lhs_aval, rhs, g), (rhs, g)


def _input_grad_bwd(spec, lhs_aval, residuals, v):
    rhs, g = residuals
    v = v.astype(lhs_aval[1])
    return _cpu_kernel_grad(spec, v, rhs, g), _native(spec, v, rhs).astype(g.dtype)


_input_grad.defvjp(_input_grad_fwd, _input_grad_bwd)


def _phase_input_grad(spec: _Spec, lhs_shape, lhs_dtype, rhs, g):
    """Input gradient of a strided convolution as s0*s1 interleaved stride-1 convolutions.

    With xp the padded input, y[o] = sum_k xp[o*s + k*d] w[k] (per spatial dim). For dilation 1 the
    gradient at xp[q*s + r] is sum_m g[q - m] w[r + m*s]: a stride-1 correlation of g with the
    reversed sub-kernel w[r::s] (for each residue r), so each phase is an ordinary convolution.
    """
    B, H, W, Ci = lhs_shape
    kh, kw, _, Co = rhs.shape
    (s0, s1), ((plo0, phi0), (plo1, phi1)) = spec.strides, spec.padding
    d0, d1 = spec.dilation
    Ho, Wo = g.shape[1:3]
    Hp, Wp = H + plo0 + phi0, W + plo1 + phi1
    Q0, Q1 = -(-Hp // s0), -(-Wp // s1)
    # A dim with stride 1 (possibly dilated) is one phase holding every tap.
    taps0 = [list(range(r, kh, s0)) for r in range(s0)]
    taps1 = [list(range(r, kw, s1)) for r in range(s1)]
    wt = jnp.swapaxes(rhs, 2, 3)  # [kh, kw, Co, Ci]: the gradient maps g's Co channels to Ci
    gg = g.astype(lhs_dtype)
    phases = []
    for r0 in range(s0):
        row = []
        for r1 in range(s1):
            if not taps0[r0] or not taps1[r1]:  # stride larger than the kernel: untouched pixels
                row.append(jnp.zeros((B, Q0, Q1, Ci), lhs_dtype))
                continue
            sub = wt[r0::s0, r1::s1][::-1, ::-1]
            m0, m1 = sub.shape[:2]
            row.append(lax.conv_general_dilated(
                gg, sub, (1, 1), (((m0 - 1) * d0, Q0 - Ho), ((m1 - 1) * d1, Q1 - Wo)),
                rhs_dilation=(d0, d1), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                precision=spec.precision, preferred_element_type=jnp.float32).astype(lhs_dtype))
        phases.append(jnp.stack(row, axis=3))          # [B, Q0, Q1, s1, Ci]
    full = jnp.stack(phases, axis=2)                   # [B, Q0, s0, Q1, s1, Ci]
    full = full.reshape(B, Q0 * s0, Q1 * s1, Ci)
    return lax.slice(full, (0, plo0, plo1, 0), (B, plo0 + H, plo1 + W, Ci))


def _largest_divisor_at_most(n: int, cap: int) -> int:
    cap = max(1, min(n, cap))
    for c in range(cap, 0, -1):
        if n % c == 0:
            return c
    return 1


def kernel_grad(spec: _Spec, lhs, g, kernel_shape):
    """d(loss)/d(rhs) as patches^T @ g, chunked over (batch, output rows) to bound memory.

    lhs [B,H,W,Ci], g [B,Ho,Wo,Co] -> [kh,kw,Ci,Co] in lhs's dtype, accumulated in float32.
    Each chunk's patches hold at most `spec.chunk` elements (unless one output row of one image
    is already larger), so memory is bounded for any image size.
    """
    B, H, W, Ci = lhs.shape
    kh, kw = kernel_shape[:2]
    _, Ho, Wo, Co = g.shape
    (s0, s1), (d0, d1), ((plo0, phi0), (plo1, phi1)) = spec.strides, spec.dilation, spec.padding
    K = kh * kw * Ci
    row_cost = Wo * K
    rows = _largest_divisor_at_most(Ho, spec.chunk // row_cost)
    bc = _largest_divisor_at_most(B, spec.chunk // (row_cost * Ho)) if rows == Ho else 1
    nr, nb = Ho // rows, B // bc
    in_rows = (rows - 1) * s0 + (kh - 1) * d0 + 1
    dtype = jnp.promote_types(lhs.dtype, g.dtype)
    xp = jnp.pad(lhs.astype(dtype), ((0, 0), (plo0, phi0), (plo1, phi1), (0, 0)))
    g = g.astype(dtype)

    # Patches of one chunk by a single gather of Ci-long pixel rows at offsets that are the same
    # for every chunk (relative to the chunk's first input row). One gather instead of k*k
    # slices + a concatenate keeps the compiled program small: XLA:CPU compiles every slice and
    # the concatenate as separate kernels, which tripled the compile time of a DeepFill v2 step.
    Wp = W + plo1 + phi1
    b_, r_, w_, i_, j_ = np.meshgrid(np.arange(bc), np.arange(rows), np.arange(Wo), np.arange(kh),
                                     np.arange(kw), indexing="ij")
    offsets = ((b_ * in_rows + r_ * s0 + i_ * d0) * Wp + w_ * s1 + j_ * d1).reshape(-1)

    def patches(xc):
        pixels = xc.reshape(-1, Ci)
        return pixels.at[jnp.asarray(offsets.astype(np.int32))].get(
            mode="promise_in_bounds").reshape(-1, K)

    def chunk_product(xc, gc):
        return lax.dot_general(patches(xc), gc.reshape(-1, Co), (((0,), (0,)), ((), ())),
                               precision=spec.precision, preferred_element_type=jnp.float32)

    if nb * nr == 1:
        acc = chunk_product(lax.slice_in_dim(xp, 0, in_rows, axis=1), g)
    else:
        def body(acc, starts):
            b0, r0, x0 = starts[0], starts[1], starts[2]
            zero = jnp.zeros((), jnp.int32)
            xc = lax.dynamic_slice(xp, (b0, x0, zero, zero), (bc, in_rows, xp.shape[2], Ci))
            gc = lax.dynamic_slice(g, (b0, r0, zero, zero), (bc, rows, Wo, Co))
            return acc + chunk_product(xc, gc), None

        # chunk start offsets precomputed on the host: the loop body holds no index arithmetic
        b_idx, r_idx = np.divmod(np.arange(nb * nr), nr)
        starts = np.stack([b_idx * bc, r_idx * rows, r_idx * rows * s0], axis=1).astype(np.int32)
        acc, _ = lax.scan(body, jnp.zeros((K, Co), jnp.float32), jnp.asarray(starts))
    return acc.reshape(kh, kw, Ci, Co).astype(lhs.dtype)


def transpose_conv_4x4_s2_p1(x, kernel):
    """PyTorch ConvTranspose2d(k=4, stride=2, padding=1) of x [B, H, W, I] -> [B, 2H, 2W, O].

    kernel [4, 4, I, O] in scatter form (PyTorch weight[i, o, t_h, t_w] at [t_h, t_w, i, o]).
    Output row 2m + a (a = 0, 1) takes rows m + a + u (u = 0, 1) of the input zero-padded by one,
    with tap t = 3 - a - 2u (from o = 2i - 1 + t); columns likewise. So all four output phases
    are ONE 2x2 stride-1 convolution of the padded input to 4*O channels (the kernel's taps
    rearranged to [u, v, I, (a, c, O)]), evaluated at (H+1) x (W+1) positions: phase (a, c) is
    its output channels (a, c) at positions [a : a+H, c : c+W], interleaved into the result.
    No multiply touches the zeros of the stride-dilated formulation (whose kernel gradient is
    XLA:CPU's slow path for input-dilated convolutions), and against four separate phase
    convolutions the input is read, padded and transposed for the kernel gradient once, the
    kernel is rearranged by one copy instead of four gathers, and the input gradient needs no
    sum over four windows (measurements: docs/performance.md, "What makes the CPU step fast",
    item 6). The price is the extra row and column of positions, (H+1)(W+1)/(HW) of the FLOPs.
    """
    b, h, w, i = x.shape
    o = kernel.shape[-1]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    # kernel[::-1] puts tap 3 - a - 2u at index 2u + a: [u, a, v, c, I, O] -> [u, v, I, (a, c, O)]
    k = kernel[::-1, ::-1].reshape(2, 2, 2, 2, i, o).transpose(0, 2, 4, 1, 3, 5).reshape(2, 2, i, 4 * o)
    z = conv_general_dilated(xp, k, (1, 1), ((0, 0), (0, 0)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    z = z.reshape(b, h + 1, w + 1, 2, 2, o)
    rows = [jnp.stack([z[:, a:a + h, c:c + w, a, c] for c in (0, 1)], axis=3)  # [B, H, W, 2(c), O]
            for a in (0, 1)]
    return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, o)  # [B, H, 2(a), W, 2(c), O]


class Conv(nn.Module):
    """A 2-D NHWC convolution with `flax.linen.Conv`'s arguments and parameters ('kernel' HWIO
    [kh, kw, C / feature_group_count, features], 'bias' [features]; the same initialisers by
    default), that every model's layer uses in place of `nn.Conv`. Two differences: the convolution
    is `conv_general_dilated` above (its fast CPU backward pass) unless another function is given,
    and the bias is added with `inpaintjax.layers.reductions.broadcast_leading`, so that its
    gradient (a sum over every position of the batch) is a matrix-vector product on CPU where
    autodiff of flax's broadcasting add gave XLA:CPU's slow reduction (docs/performance.md,
    "Reductions"). Padding: 'SAME', 'VALID', an int, or per-axis ints or (low, high) pairs, as
    flax; flax's 'CIRCULAR', 'REFLECT' and 'CAUSAL' are not taken (pad the input instead)."""

    features: int
    kernel_size: int | Sequence[int]
    strides: int | Sequence[int] = 1
    padding: str | int | Sequence = "SAME"
    kernel_dilation: int | Sequence[int] = 1
    feature_group_count: int = 1
    use_bias: bool = True
    dtype: Optional[jnp.dtype] = None
    param_dtype: jnp.dtype = jnp.float32
    precision: object = None
    kernel_init: Callable = nn.linear.default_kernel_init
    bias_init: Callable = nn.initializers.zeros_init()
    conv_general_dilated: Callable = conv_general_dilated

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"Conv: expected an NHWC input of rank 4, got shape {x.shape}")
        ks = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else tuple(self.kernel_size)

        def pair(v):
            return (v, v) if isinstance(v, int) else tuple(v)

        padding = nn.linear.canonicalize_padding(self.padding, 2)
        if isinstance(padding, str) and padding not in ("SAME", "VALID"):
            raise ValueError(f"Conv: padding {self.padding!r} is not taken here; use 'SAME', "
                             "'VALID', ints or (low, high) pairs (pad the input for other modes)")
        c = x.shape[-1]
        if c % self.feature_group_count:
            raise ValueError(f"Conv: {c} input channels are not divisible by "
                             f"feature_group_count={self.feature_group_count}")
        kernel = self.param("kernel", self.kernel_init,
                            ks + (c // self.feature_group_count, self.features), self.param_dtype)
        bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
                if self.use_bias else None)
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = self.conv_general_dilated(
            x, kernel, pair(self.strides), padding, rhs_dilation=pair(self.kernel_dilation),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=self.feature_group_count, precision=self.precision)
        if bias is not None:
            y = y + broadcast_leading(bias, y.shape)
        return y
