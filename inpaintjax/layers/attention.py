"""Contextual attention (DeepFill v1 and v2; JiahuiYu/generative_inpainting
`inpaint_ops.py::contextual_attention`) and the flow colour wheel for its visualisation.

The layer fills each position of a foreground feature map `f` with a softmax-weighted blend of 2r x 2r
patches of a background feature map `b`, where the weights come from the normalised correlation of
3x3 patches of `f` and `b` both down-sampled by r. Candidate background patches that touch the hole
get score 0 before and weight 0 after the softmax. It has no parameters.

Every step follows the released TF code (GI `inpaint_ops.py::contextual_attention`), including its
quirks: TF align-corners nearest down-sampling (not every second pixel), 'SAME' padding of the raw
patches, the fuse on *flattened* indices (wrap-around at row ends), masked scores set to 0 rather
than -inf, and the division of the transposed-conv paste by 4 (border rows/columns at half scale).

One generalisation: the mask is per sample (the original used the first element's mask for the
whole batch; with a shared mask, or a [1, H, W, 1] mask, the two are identical).

Formulation: per sample, matching is one [h*w, 9C] x [9C, L] matrix product, the fuse is shifted
adds on the [h*w, L] score matrix, and the paste is one [h*w, L] x [L, 16C] product followed by an
overlap-add of the 4x4 blocks. All of it is differentiable and jit-compatible; the batch is vmapped.

Memory. The score matrix has (h*w) x L entries, the square of the pixel count (2048 x 2048 input to
DeepFill v2: 65536^2 floats, 17 GB per copy). When it has more than `BLOCK_SCORES` entries (or
`query_block` is given) the scores are computed for blocks of query positions in turn (`lax.map`,
each block rematerialised in the backward pass), so memory grows linearly with the pixel count.
Each query's softmax is over all candidates, so a block's softmax is exact. The fuse couples a query
with its neighbours in both flattened orders; the blocked form folds the first (row-major) fuse into
the matrix product (`fuse_k` shifted copies of the patch columns on both sides: sum_i F[p+i].W[q+i]
is one dot product of the concatenations) and runs the blocks in column-major query order, so the
second fuse needs only `fuse_k - 1` extra score rows per block. Same numbers up to float rounding;
the folded product costs `fuse_k` times the matching FLOPs, so small maps keep the direct form.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from inpaintjax.layers.ops import resize_nearest_align_corners


# --------------------------------------------------------------------------------------------------
# TF-exact resize index rules (TF1 `resize_nearest_neighbor` / `resize_bilinear`, align_corners=True)
# --------------------------------------------------------------------------------------------------

def _tf_align_corners_scale(in_size: int, out_size: int) -> np.float32:
    # TF computes the scale in float32; with out_size == 1 it falls back to in/out (index 0 anyway).
    if out_size > 1:
        return np.float32(in_size - 1) / np.float32(out_size - 1)
    return np.float32(in_size) / np.float32(out_size)


def _bilinear_weights(in_size: int, out_size: int):
    scale = _tf_align_corners_scale(in_size, out_size)
    pos = np.arange(out_size, dtype=np.float32) * scale
    lo = np.floor(pos).astype(np.int32)
    hi = np.minimum(np.ceil(pos).astype(np.int32), in_size - 1)
    lerp = (pos - lo.astype(np.float32)).astype(np.float32)
    return lo, hi, lerp


def _resize_bilinear_align_corners(x, out_h: int, out_w: int):
    """TF1 `resize_bilinear(align_corners=True)` of x [B, H, W, C] to [B, out_h, out_w, C]."""
    y0, y1, ly = _bilinear_weights(x.shape[1], out_h)
    x0, x1, lx = _bilinear_weights(x.shape[2], out_w)
    top = jnp.take(x, y0, axis=1)
    bottom = jnp.take(x, y1, axis=1)
    lx = jnp.asarray(lx)[None, None, :, None]
    ly = jnp.asarray(ly)[None, :, None, None]

    def horiz(rows):
        left = jnp.take(rows, x0, axis=2)
        right = jnp.take(rows, x1, axis=2)
        return left + (right - left) * lx

    t, bt = horiz(top), horiz(bottom)
    return t + (bt - t) * ly


# --------------------------------------------------------------------------------------------------
# Patch helpers (TF 'SAME' padding: before = total // 2)
# --------------------------------------------------------------------------------------------------

def _same_padding(n_in: int, k: int, s: int):
    n_out = -(-n_in // s)
    total = max((n_out - 1) * s + k - n_in, 0)
    return n_out, total // 2, total - total // 2


def _extract_patches(x, k: int, s: int):
    """TF `extract_image_patches(ksize=k, stride=s, padding='SAME')` of x [H, W, C] -> [nh, nw, k, k, C]."""
    nh, top, bottom = _same_padding(x.shape[0], k, s)
    nw, left, right = _same_padding(x.shape[1], k, s)
    xp = jnp.pad(x, ((top, bottom), (left, right), (0, 0)))
    rows = []
    for a in range(k):
        cols = [xp[a:a + (nh - 1) * s + 1:s, c:c + (nw - 1) * s + 1:s] for c in range(k)]
        rows.append(jnp.stack(cols, axis=2))
    return jnp.stack(rows, axis=2)


def _overlap_add(blocks, rate: int, out_h: int, out_w: int):
    """TF `conv2d_transpose(stride=rate, padding='SAME', output=[out_h, out_w])` in scatter form.

    blocks [h, w, 2r, 2r, C] holds, for each input position, its kernel-weighted 2r x 2r block;
    block (py, px) lands on rows r*py + a - pad, cols r*px + b - pad. Since the kernel is exactly two
    strides wide, the sum is four interleaved, shifted tilings.
    """
    h, w, k, _, c = blocks.shape
    r = rate
    _, top, _ = _same_padding(out_h, k, r)
    _, left, _ = _same_padding(out_w, k, r)
    out = None
    for a1 in range(2):
        for b1 in range(2):
            part = blocks[:, :, a1 * r:(a1 + 1) * r, b1 * r:(b1 + 1) * r, :]
            part = part.transpose(0, 2, 1, 3, 4).reshape(h * r, w * r, c)
            part = jnp.pad(part, ((a1 * r, (1 - a1) * r), (b1 * r, (1 - b1) * r), (0, 0)))
            out = part if out is None else out + part
    return out[top:top + out_h, left:left + out_w]


def _diagonal_fuse(s, k: int):
    """TF conv2d of the 2-D matrix s [P, Q] with eye(k), 'SAME': sum_i s[P + i - pad, Q + i - pad]."""
    before = (k - 1) // 2
    after = k - 1 - before
    n_p, n_q = s.shape
    sp = jnp.pad(s, ((before, after), (before, after)))
    out = sp[0:n_p, 0:n_q]
    for i in range(1, k):
        out = out + sp[i:i + n_p, i:i + n_q]
    return out


# --------------------------------------------------------------------------------------------------
# The layer
# --------------------------------------------------------------------------------------------------

class ContextualAttentionOutput(NamedTuple):
    """y [B, H, W, C] (dtype of f); attention [B, h, w, L] float32 (h = H/rate, L = candidates;
    None when not asked for);
    offsets int32 [B, h, w, 2]: (dy, dx) from each down-sampled position to its argmax candidate."""

    y: jax.Array
    attention: jax.Array
    offsets: jax.Array


def _check_inputs(f, b, mask, ksize, stride, rate, fuse_k, fuse):
    if f.ndim != 4 or b.ndim != 4:
        raise ValueError(f"contextual_attention: f and b must be [B, H, W, C], got f{tuple(f.shape)}, "
                         f"b{tuple(b.shape)}")
    if f.shape != b.shape:
        raise ValueError(f"contextual_attention: f{tuple(f.shape)} and b{tuple(b.shape)} must have the "
                         "same shape (DeepFill calls it with f = b)")
    _, height, width, _ = f.shape
    if rate < 1 or ksize < 1 or stride < 1 or fuse_k < 1:
        raise ValueError(f"contextual_attention: ksize={ksize}, stride={stride}, rate={rate}, "
                         f"fuse_k={fuse_k} must all be >= 1")
    if height % rate or width % rate:
        raise ValueError(f"contextual_attention: spatial size {height}x{width} must be divisible by "
                         f"rate={rate} (crop the image to a multiple of 8 for DeepFill)")
    if int(height * (1.0 / rate)) != height // rate or int(width * (1.0 / rate)) != width // rate:
        raise ValueError(f"contextual_attention: {height}x{width} scaled by 1/{rate} is not exact in "
                         "floating point; choose another size")
    if fuse and stride != 1:
        raise ValueError(f"contextual_attention: fuse=True needs stride=1 (got stride={stride}); the "
                         "fuse views the scores as an [h*w, h*w] matrix")
    if mask is not None:
        if (mask.ndim != 4 or mask.shape[1:] != (height, width, 1)
                or mask.shape[0] not in (1, f.shape[0])):
            raise ValueError(f"contextual_attention: mask must be [B or 1, {height}, {width}, 1] "
                             f"(1 = hole) at f's resolution, got {tuple(mask.shape)}")


def _attend_one(b, f_d, b_d, m_d, *, ksize, stride, rate, fuse_k, softmax_scale, fuse):
    """One sample: b [H, W, C] and the down-sampled f_d, b_d [h, w, C], m_d [h, w, 1]
    -> (y [H, W, C], attention [h, w, L], offsets [h, w, 2])."""
    height, width, channels = b.shape
    dtype = b.dtype
    h, w = f_d.shape[:2]

    # 1. raw 2r x 2r patches of full-resolution b at stride r*s (reconstruction filters).
    raw = _extract_patches(b, 2 * rate, rate * stride)
    nbh, nbw = raw.shape[:2]
    n_cand = nbh * nbw
    raw = raw.reshape(n_cand, 4 * rate * rate * channels)

    # 3. matching patches of down-sampled b; 4. valid-candidate indicator from the mask patches.
    patches = _extract_patches(b_d, ksize, stride)
    assert patches.shape[:2] == (nbh, nbw), (patches.shape, nbh, nbw)
    patches = patches.reshape(n_cand, ksize * ksize * channels)
    m_patches = _extract_patches(m_d, ksize, stride).reshape(n_cand, -1)
    mm = (jnp.mean(m_patches, axis=1) == 0.0).astype(jnp.float32)
    mm = jax.lax.stop_gradient(mm)

    # 5. normalise the background patches only. The norm is computed so that an all-zero patch
    # (norm 0, clamped to 1e-4) has a finite gradient: d sqrt(s)/ds at s = 0 would give 0 * inf.
    patches32 = patches.astype(jnp.float32)
    sq = jnp.sum(jnp.square(patches32), axis=1, keepdims=True)
    positive = sq > 0
    norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)
    normed = (patches32 / jnp.maximum(norm, 1e-4)).astype(dtype)

    # 6. scores: stride-1 'SAME' correlation of f_d with every normalised patch, as one matmul.
    f_cols = _extract_patches(f_d, ksize, 1).reshape(h * w, ksize * ksize * channels)
    scores = jnp.matmul(f_cols, normed.T, preferred_element_type=jnp.float32)  # [h*w, L]

    # 7. fuse on flattened indices (row-major, then column-major), wrap-around included.
    if fuse:
        scores = _diagonal_fuse(scores, fuse_k)
        scores = scores.reshape(h, w, h, w).transpose(1, 0, 3, 2).reshape(h * w, h * w)
        scores = _diagonal_fuse(scores, fuse_k)
        scores = scores.reshape(w, h, w, h).transpose(1, 0, 3, 2).reshape(h * w, h * w)

    # 8. masked softmax: invalid candidates score 0 (not -inf) and are zeroed afterwards.
    scores = scores * mm
    attention = jax.nn.softmax(scores * softmax_scale, axis=-1) * mm

    # 9. offsets of the argmax candidate (visualisation only). For stride > 1 candidate (qy, qx)
    # sits at down-sampled pixel (qy*s, qx*s).
    best = jnp.argmax(jax.lax.stop_gradient(attention), axis=-1).astype(jnp.int32)
    qy, qx = (best // nbw) * stride, (best % nbw) * stride
    py, px = jnp.divmod(jnp.arange(h * w, dtype=jnp.int32), w)
    offsets = jnp.stack([qy - py, qx - px], axis=-1).reshape(h, w, 2)

    # 10. paste: transposed conv of the attention map with the raw patches, then / 4.
    blocks = jnp.matmul(attention.astype(dtype), raw, preferred_element_type=jnp.float32)
    blocks = blocks.reshape(h, w, 2 * rate, 2 * rate, channels)
    y = _overlap_add(blocks, rate, height, width) / 4.0
    return y.astype(dtype), attention.reshape(h, w, n_cand), offsets


#: score-matrix entries above which contextual_attention works in blocks of query positions, and
#: the entries per block it then aims at (2^24 float32 = 64 MiB per live copy of a block)
BLOCK_SCORES = 1 << 24


def _shift_rows(x, d: int):
    """out[a] = x[a + d], zero where a + d is outside x's rows."""
    if d == 0:
        return x
    zeros = jnp.zeros((abs(d),) + x.shape[1:], x.dtype)
    if d > 0:
        return jnp.concatenate([x[d:], zeros], axis=0)
    return jnp.concatenate([zeros, x[:d]], axis=0)


def _attend_one_blocked(b, f_d, b_d, m_d, *, ksize, stride, rate, fuse_k, softmax_scale, fuse,
                        query_block, with_attention):
    """`_attend_one` with the score matrix built `query_block` query positions at a time (module
    docstring). Returns (y [H, W, C], attention [h, w, L] or None, offsets [h, w, 2])."""
    height, width, channels = b.shape
    dtype = b.dtype
    h, w = f_d.shape[:2]
    n_q = h * w

    raw = _extract_patches(b, 2 * rate, rate * stride)
    nbh, nbw = raw.shape[:2]
    n_cand = nbh * nbw
    raw = raw.reshape(n_cand, 4 * rate * rate * channels)
    patches = _extract_patches(b_d, ksize, stride).reshape(n_cand, ksize * ksize * channels)
    m_patches = _extract_patches(m_d, ksize, stride).reshape(n_cand, -1)
    mm = jax.lax.stop_gradient((jnp.mean(m_patches, axis=1) == 0.0).astype(jnp.float32))
    patches32 = patches.astype(jnp.float32)
    sq = jnp.sum(jnp.square(patches32), axis=1, keepdims=True)
    positive = sq > 0
    norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)
    normed = (patches32 / jnp.maximum(norm, 1e-4)).astype(dtype)
    f_cols = _extract_patches(f_d, ksize, 1).reshape(n_q, ksize * ksize * channels)

    if fuse:
        # first fuse folded into the product: S1[p, q] = sum_i S[p + i - lo, q + i - lo]
        lo, hi = (fuse_k - 1) // 2, fuse_k - 1 - (fuse_k - 1) // 2
        shifts = [i - lo for i in range(fuse_k)]
        x = jnp.concatenate([_shift_rows(f_cols, d) for d in shifts], axis=1)
        cand = jnp.concatenate([_shift_rows(normed, d) for d in shifts], axis=1)
        # column-major order (position x*h + y) on both sides, where the second fuse is a shift
        order = np.arange(n_q).reshape(h, w).T.reshape(-1)
        x, cand = jnp.take(x, order, axis=0), jnp.take(cand, order, axis=0)
    else:
        lo = hi = 0
        x, cand = f_cols, normed
    q = int(query_block)
    n_blocks = -(-n_q // q)
    x = jnp.pad(x, ((lo, n_blocks * q - n_q + hi), (0, 0)))  # zero rows: out-of-range neighbours
    cand_t = cand.T

    def one_block(i):
        rows = jax.lax.dynamic_slice_in_dim(x, i * q, q + lo + hi, axis=0)
        s = jnp.matmul(rows, cand_t, preferred_element_type=jnp.float32)  # [q + lo + hi, L]
        if fuse:
            # second fuse: S2[p', c'] = sum_j S1[p' + j - lo, c' + j - lo] in column-major order
            sp = jnp.pad(s, ((0, 0), (lo, hi)))
            s = sum(sp[j:j + q, j:j + n_cand] for j in range(fuse_k))
            s = s.reshape(q, w, h).transpose(0, 2, 1).reshape(q, n_cand)  # candidates row-major
        s = s * mm
        attention = jax.nn.softmax(s * softmax_scale, axis=-1) * mm
        best = jnp.argmax(jax.lax.stop_gradient(attention), axis=-1).astype(jnp.int32)
        pasted = jnp.matmul(attention.astype(dtype), raw, preferred_element_type=jnp.float32)
        return (pasted, best, attention) if with_attention else (pasted, best)

    outs = jax.lax.map(jax.checkpoint(one_block, prevent_cse=False), jnp.arange(n_blocks))
    outs = [o.reshape((n_blocks * q,) + o.shape[2:])[:n_q] for o in outs]
    if fuse:  # query rows back to row-major order
        outs = [jnp.take(o, np.argsort(order), axis=0) for o in outs]
    pasted, best = outs[0], outs[1]
    qy, qx = (best // nbw) * stride, (best % nbw) * stride
    py, px = jnp.divmod(jnp.arange(n_q, dtype=jnp.int32), w)
    offsets = jnp.stack([qy - py, qx - px], axis=-1).reshape(h, w, 2)
    blocks = pasted.reshape(h, w, 2 * rate, 2 * rate, channels)
    y = _overlap_add(blocks, rate, height, width) / 4.0
    attention = outs[2].reshape(h, w, n_cand) if with_attention else None
    return y.astype(dtype), attention, offsets


def _query_block(n_q: int, n_cand: int, query_block: int) -> int:
    """Query positions per block: `query_block` if given, else all of them when the score matrix
    has at most BLOCK_SCORES entries, else BLOCK_SCORES // candidates (at least 1)."""
    if query_block:
        return min(int(query_block), n_q)
    if n_q * n_cand <= BLOCK_SCORES:
        return n_q
    return max(1, min(n_q, BLOCK_SCORES // n_cand))


@functools.partial(jax.jit, static_argnames=("ksize", "stride", "rate", "fuse_k", "softmax_scale",
                                             "fuse", "query_block", "return_attention"))
def contextual_attention(f, b, mask=None, *, ksize: int = 3, stride: int = 1, rate: int = 2,
                         fuse_k: int = 3, softmax_scale: float = 10.0, fuse: bool = True,
                         query_block: int = 0,
                         return_attention: bool = True) -> ContextualAttentionOutput:
    """Contextual attention as JiahuiYu/generative_inpainting's `inpaint_ops.py::contextual_attention`, batched, per-sample masks.

    f: foreground features [B, H, W, C] (float32 or bfloat16); b: background features, same shape
    (DeepFill passes f = b); mask: [B, H, W, 1] or [1, H, W, 1] with 1 = hole, at f's resolution,
    or None (every candidate valid). H and W must be multiples of `rate`.
    query_block: query positions (down-sampled pixels) per block of the score matrix; 0 chooses
    (one block up to BLOCK_SCORES entries, see the module docstring). return_attention=False leaves
    `attention` None: the full [h*w, L] map is the one quadratic-size result, skip it for big images.
    Returns ContextualAttentionOutput(y [B, H, W, C] in f's dtype, attention [B, H/r, W/r, L]
    float32, offsets int32 [B, H/r, W/r, 2] as (dy, dx) in down-sampled pixels).
    """
    _check_inputs(f, b, mask, ksize, stride, rate, fuse_k, fuse)
    if query_block < 0:
        raise ValueError(f"contextual_attention: query_block={query_block} must be >= 0 (0 = auto)")
    b = b.astype(f.dtype)
    if mask is None:
        mask = jnp.zeros(f.shape[:3] + (1,), jnp.float32)
    if mask.shape[0] != f.shape[0]:
        mask = jnp.broadcast_to(mask, f.shape[:3] + (1,))
    # 2. TF align-corners nearest down-sampling (f and mask by scale 1/r, b to int(H/r) x int(W/r);
    # the sizes agree, checked above). jax.image.resize would pick other pixels.
    size = (f.shape[1] // rate, f.shape[2] // rate)
    f_d = resize_nearest_align_corners(f, size)
    b_d = resize_nearest_align_corners(b, size)
    m_d = resize_nearest_align_corners(mask.astype(jnp.float32), size)
    n_q = size[0] * size[1]
    n_cand = (-(-size[0] // stride)) * (-(-size[1] // stride))
    block = _query_block(n_q, n_cand, query_block)
    if block >= n_q:
        one = functools.partial(_attend_one, ksize=ksize, stride=stride, rate=rate, fuse_k=fuse_k,
                                softmax_scale=softmax_scale, fuse=fuse)
        y, attention, offsets = jax.vmap(one)(b, f_d, b_d, m_d)
        return ContextualAttentionOutput(y, attention if return_attention else None, offsets)
    one = functools.partial(_attend_one_blocked, ksize=ksize, stride=stride, rate=rate,
                            fuse_k=fuse_k, softmax_scale=softmax_scale, fuse=fuse,
                            query_block=block, with_attention=return_attention)
    # samples one after another too: a vmapped block would hold B blocks at once
    y, attention, offsets = jax.lax.map(lambda args: one(*args), (b, f_d, b_d, m_d))
    return ContextualAttentionOutput(y, attention, offsets)


class ContextualAttention(nn.Module):
    """Flax wrapper of `contextual_attention` (no parameters).

    `y = layer(f, b, mask)` or `y, flow = layer(f, b, mask, return_flow=True)`; f, b [B, H, W, C],
    mask [B or 1, H, W, 1] (1 = hole) or None. y has f's shape and dtype. flow is the Middlebury
    colour image of the argmax offsets, float32 in [0, 1], [B, H, W, 3], up-sampled from H/r x W/r
    by TF align-corners resizing: `flow_resize='bilinear'` as DeepFill v2 (GI master), 'nearest' as
    DeepFill v1 (the caller up-samples it further to image size for TensorBoard).
    """

    ksize: int = 3
    stride: int = 1
    rate: int = 2
    fuse_k: int = 3
    softmax_scale: float = 10.0
    fuse: bool = True
    flow_resize: str = "bilinear"
    query_block: int = 0  # 0 = automatic (see contextual_attention)

    def __call__(self, f, b, mask=None, return_flow: bool = False):
        out = contextual_attention(f, b, mask, ksize=self.ksize, stride=self.stride, rate=self.rate,
                                   fuse_k=self.fuse_k, softmax_scale=self.softmax_scale,
                                   fuse=self.fuse, query_block=self.query_block,
                                   return_attention=False)
        if not return_flow:
            return out.y
        flow = flow_to_image(out.offsets)
        if self.rate != 1:
            if self.flow_resize == "bilinear":
                flow = _resize_bilinear_align_corners(flow, f.shape[1], f.shape[2])
            elif self.flow_resize == "nearest":
                flow = resize_nearest_align_corners(flow, f.shape[1:3])
            else:
                raise ValueError(f"ContextualAttention.flow_resize must be 'bilinear' (DeepFill v2) or "
                                 f"'nearest' (DeepFill v1), got {self.flow_resize!r}")
        return out.y, flow


# --------------------------------------------------------------------------------------------------
# Flow visualisation (Middlebury colour wheel, as in GI `make_color_wheel` / `compute_color`)
# --------------------------------------------------------------------------------------------------

def make_color_wheel() -> np.ndarray:
    """The Middlebury flow colour wheel: [55, 3] float64 in [0, 255], hues red -> yellow -> green ->
    cyan -> blue -> magenta -> red in segments of 15, 6, 4, 11, 13, 6 entries."""
    segments = [  # (length, channel that ramps, direction, channel held at 255)
        (15, 1, +1, 0),  # red -> yellow
        (6, 0, -1, 1),   # yellow -> green
        (4, 2, +1, 1),   # green -> cyan
        (11, 1, -1, 2),  # cyan -> blue
        (13, 0, +1, 2),  # blue -> magenta
        (6, 2, -1, 0),   # magenta -> red
    ]
    rows = []
    for n, ramp_ch, direction, full_ch in segments:
        seg = np.zeros((n, 3))
        ramp = np.floor(255.0 * np.arange(n) / n)
        seg[:, ramp_ch] = ramp if direction > 0 else 255.0 - ramp
        seg[:, full_ch] = 255.0
        rows.append(seg)
    return np.concatenate(rows, axis=0)


_COLOR_WHEEL = make_color_wheel()


@jax.jit
def compute_color(u, v):
    """Middlebury colour of flow (u, v) with |(u, v)| <= 1 for the saturated range.

    u, v: float arrays of equal shape (u horizontal, v vertical in the Middlebury convention).
    Hue from atan2(-v, -u) around the wheel, saturation from the radius (0 -> white); radii > 1 are
    darkened by 0.75; NaN -> black. Returns float32 [..., 3] in [0, 1], quantised to k/255 as the
    original's uint8 image. Computed in float32 in 0..255 units, so colours whose exact value is a
    whole level stay exact; the original's float64 arithmetic sometimes lands a hair below such a
    level and floors one level lower (at most 1/255 difference, visualisation only).
    """
    u = jnp.asarray(u, jnp.float32)
    v = jnp.asarray(v, jnp.float32)
    nan = jnp.isnan(u) | jnp.isnan(v)
    u = jnp.where(nan, 0.0, u)
    v = jnp.where(nan, 0.0, v)
    ncols = _COLOR_WHEEL.shape[0]
    # Work in 0..255 units: the wheel entries are integers, so exact cases (wheel entries, midpoints,
    # white) stay exact through the floor below instead of landing a hair under an integer.
    wheel = jnp.asarray(_COLOR_WHEEL, jnp.float32)
    rad = jnp.sqrt(u * u + v * v)
    a = jnp.arctan2(-v, -u) / np.pi
    # 1-based wheel position, rounded exactly as the original computes it.
    fk = (a + 1.0) / 2.0 * (ncols - 1) + 1.0
    k0 = jnp.floor(fk).astype(jnp.int32)
    k1 = jnp.where(k0 + 1 == ncols + 1, 1, k0 + 1)
    frac = (fk - k0.astype(jnp.float32))[..., None]
    col = (1.0 - frac) * wheel[k0 - 1] + frac * wheel[k1 - 1]
    inside = (rad <= 1.0)[..., None]
    col = jnp.where(inside, 255.0 - rad[..., None] * (255.0 - col), col * 0.75)
    col = col * (1.0 - nan[..., None].astype(jnp.float32))
    return jnp.floor(col) / 255.0


@jax.jit
def flow_to_image(offsets):
    """Colour image of contextual-attention offsets, as GI's `flow_to_image`.

    offsets: [B, h, w, 2] (dy, dx), any numeric dtype. As in the original, channel 0 (dy) is passed
    as the wheel's u and channel 1 (dx) as v, and each sample is normalised by the largest radius
    seen in samples 0..i (a running maximum over the batch). Values above 1e7 count as unknown (0).
    Returns float32 [B, h, w, 3] in [0, 1]. Not differentiable (visualisation only).
    """
    flow = jax.lax.stop_gradient(jnp.asarray(offsets)).astype(jnp.float32)
    if flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"flow_to_image: offsets must be [B, h, w, 2], got {tuple(flow.shape)}")
    u, v = flow[..., 0], flow[..., 1]
    unknown = (jnp.abs(u) > 1e7) | (jnp.abs(v) > 1e7)
    u = jnp.where(unknown, 0.0, u)
    v = jnp.where(unknown, 0.0, v)
    rad_max = jnp.max(jnp.sqrt(u * u + v * v), axis=(1, 2))
    maxrad = jax.lax.cummax(rad_max, axis=0)[:, None, None]
    eps = np.float32(np.finfo(float).eps)
    return compute_color(u / (maxrad + eps), v / (maxrad + eps))
