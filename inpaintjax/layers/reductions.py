"""Sums over the leading axes of NHWC activations, and the broadcasts they undo.

Normalisation layers and biases need per-channel sums over every position of a batch (BatchNorm's
statistics, a bias's gradient) or over every position of one image (InstanceNorm's). XLA:CPU runs
such a reduction over the leading axes of a row-major array as a loop on one core, and splits a
long one into a `reduce-window` and a second reduce (its tree-reduction pass) that runs slower
still: in GLCIC's training step 241 of them took 2.5 s of the 8.9 s step (`jax.profiler`, 4 x
256 x 256, docs/performance.md, "Reductions"). Here the same sum is a matrix-vector product with a
vector of ones, which XLA:CPU hands to its matmul library: both cores at memory speed, 5-25x
faster per reduction. The rows are summed in groups of at most 128 at a time, then the group sums
the same way, so each float32 addition chain stays short: the sums are as exact as XLA's tree
reduction (within 1e-6 of float64 on every shape measured).

Off the CPU (`jax.lax.platform_dependent`, resolved when the program is lowered for its device)
the sums are `jnp.sum`: GPU and TPU reductions are already fast. Arrays under `MIN_ELEMENTS`
elements keep `jnp.sum` and autodiff's gradients everywhere: the matrix-vector form saves little
there and costs tracing and compile time per sum (docs/performance.md, "Reductions").

`leading_sum` and `broadcast_leading` are each other's transpose, and each is a `jax.custom_vjp`
whose backward pass is the other: a model that writes its per-channel broadcasts with
`broadcast_leading` gets matrix-vector products for their gradients too, where autodiff of an
implicit broadcast would emit XLA's reduction. Like the convolutions' custom gradients they
support reverse mode to any order but not forward mode (`jax.jvp`, `jax.hessian`):
`inpaintjax.layers.conv.set_conv_impl('native')` (or INPAINTJAX_CONV=native) turns both off for
functions traced afterwards.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

#: rows summed in one float32 chain by one matrix-vector product
GROUP_ROWS = 128
#: arrays with fewer elements keep XLA's own reduction (and autodiff's gradients): at most tens of
#: microseconds slower per sum, and quicker to trace and compile
MIN_ELEMENTS = 1 << 16


def _check(shape: tuple, keep: int) -> None:
    if len(shape) < keep + 2:
        raise ValueError(f"leading_sum: an array of rank >= {keep + 2} is needed to keep {keep} "
                         f"leading axes and the last, got shape {shape}")


def _group(rows: int) -> int:
    """How many groups of rows one matrix-vector product sums: gcd(rows, GROUP_ROWS) (a power of
    two: the groups of a batch sharded over devices stay on their device), else, for an odd row
    count, its largest divisor up to GROUP_ROWS (1 for a prime above it)."""
    k = math.gcd(rows, GROUP_ROWS)
    return k if k > 1 else max(d for d in range(1, GROUP_ROWS + 1) if rows % d == 0)


def _dot_sum(keep: int, x):
    """Sum of x [*lead, *summed, C] over the summed axes: [*lead, C], as matrix-vector products of
    at most GROUP_ROWS rows at a time, accumulated in float32."""
    lead, c = x.shape[:keep], x.shape[-1]
    b = math.prod(lead)
    rows = math.prod(x.shape[keep:-1])
    s = x.reshape(b, rows, c)
    while rows > 1:
        k = _group(rows)
        if k == 1:  # a prime number of rows above GROUP_ROWS: XLA's own reduction
            s = jnp.sum(s, axis=1, keepdims=True, dtype=jnp.float32)
            break
        grouped = s.reshape(b, k, (rows // k) * c)
        ones = jnp.ones((b, 1, k), s.dtype)
        # batched [1, k] @ [k, rows/k * C]: no transpose of the activation (its rows are contracted)
        s = lax.dot_general(ones, grouped, (((2,), (1,)), ((0,), (0,))),
                            preferred_element_type=jnp.float32).reshape(b, rows // k, c)
        rows //= k
    return s.reshape(*lead, c).astype(x.dtype)


def _plain_sum(keep: int, x):
    return jnp.sum(x, axis=tuple(range(keep, x.ndim - 1)), dtype=jnp.float32).astype(x.dtype)


def _sum(keep: int, x):
    return lax.platform_dependent(x, cpu=partial(_dot_sum, keep), default=partial(_plain_sum, keep))


def _expand(v, shape: tuple, keep: int):
    """v [*shape[:keep], C] broadcast to `shape`."""
    return jnp.broadcast_to(v.reshape(shape[:keep] + (1,) * (len(shape) - keep - 1) + shape[-1:]), shape)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _leading_sum(shape, keep, x):
    return _sum(keep, x)


def _leading_sum_fwd(shape, keep, x):
    return _sum(keep, x), None


def _leading_sum_bwd(shape, keep, _, ct):
    return (_broadcast_leading(shape, keep, ct),)


_leading_sum.defvjp(_leading_sum_fwd, _leading_sum_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _broadcast_leading(shape, keep, v):
    return _expand(v, shape, keep)


def _broadcast_leading_fwd(shape, keep, v):
    return _expand(v, shape, keep), None


def _broadcast_leading_bwd(shape, keep, _, ct):
    return (_leading_sum(shape, keep, ct),)


_broadcast_leading.defvjp(_broadcast_leading_fwd, _broadcast_leading_bwd)


def _native() -> bool:
    """`set_conv_impl('native')` / INPAINTJAX_CONV=native: plain jnp.sum and broadcasting with
    autodiff's gradients, for forward-mode differentiation (no `custom_vjp` in the way)."""
    from inpaintjax.layers.conv import conv_impl  # conv imports this module
    return conv_impl() == "native"


def _plain(shape) -> bool:
    """XLA's reduction and autodiff's gradients: under INPAINTJAX_CONV=native, and for small arrays."""
    return _native() or math.prod(shape) < MIN_ELEMENTS


def leading_sum(x: jax.Array, keep: int = 0) -> jax.Array:
    """x [..., C] summed over every axis but the first `keep` and the last: keep=0 gives the [C]
    per-channel sums over a whole batch (BatchNorm), keep=1 the [N, C] sums over each image's
    positions (InstanceNorm). Accumulated in float32, returned in x's dtype."""
    _check(x.shape, keep)
    if _plain(x.shape):
        return _plain_sum(keep, x)
    return _leading_sum(tuple(x.shape), keep, x)


def broadcast_leading(v: jax.Array, shape, keep: int = 0) -> jax.Array:
    """v [*shape[:keep], C] broadcast to `shape` (the transpose of `leading_sum`): its gradient is
    `leading_sum` of the cotangent."""
    shape = tuple(shape)
    _check(shape, keep)
    if tuple(v.shape) != shape[:keep] + shape[-1:]:
        raise ValueError(f"broadcast_leading: v of shape {tuple(v.shape)} does not match "
                         f"{shape[:keep] + shape[-1:]} (the first {keep} and the last axes of {shape})")
    return _expand(v, shape, keep) if _plain(shape) else _broadcast_leading(shape, keep, v)


def leading_mean(x: jax.Array, keep: int = 0) -> jax.Array:
    """`leading_sum(x, keep)` divided by the number of values summed per output."""
    return leading_sum(x, keep) / math.prod(x.shape[keep:-1])
