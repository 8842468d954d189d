"""Shift-Net's networks (Yan, Li, Li, Zuo, Shan, "Shift-Net: Image Inpainting via Deep Feature
Rearrangement", ECCV 2018; the authors' PyTorch code Zhaoyi-Yan/Shift-Net_pytorch, MIT,
`models/modules/shift_unet.py`, `models/shift_net/InnerShiftTripleFunction.py`,
`util/NonparametricShift.py`, `models/modules/discrimators.py`), NHWC.

`ShiftNetGenerator` is the released `unet_shift_triple`: the pix2pix U-Net with `num_downs`
4x4 stride-2 levels (8 for 256x256 inputs, down to 1x1), every convolution with a bias,
  down path  level 1: conv;  levels 2..n-1: LeakyReLU(0.2), conv, InstanceNorm;  level n: LeakyReLU, conv
  up path    level n: ReLU, transposed conv, IN;  levels n-1..2: ReLU([decoder, encoder skip]),
             transposed conv, IN;  level 1: ReLU, transposed conv, tanh
and the shift connection inside level 3, where the features are 1/8 of the input (32x32 at 256):
its up path is ReLU([decoder 4*ngf, encoder 4*ngf]) -> shift -> transposed conv(12*ngf -> 2*ngf)
-> IN. InstanceNorm is PyTorch's `InstanceNorm2d(affine=True)`: eps 1e-5, biased variance, a
scale and a bias per channel, the same in training and inference.

Input: [B, H, W, 4] = RGB in [-1, 1] with hole pixels 0 and a channel that is 1 on known pixels
(the released models' `add_mask2input`), plus the hole mask [B, H, W, 1] (1 = hole) for the shift;
H and W multiples of 2^num_downs. Output: tanh, [-1, 1], raw (composite it yourself).

The shift (`hard_shift`): with m = hole[:, ::8, ::8] (PyTorch's nearest resize to 1/8) and the
decoder half F (`former`) and encoder half E (`latter`) of the ReLU output, every hole position i
takes E_j* with j* = argmax over known j of cos(F_i, E_j) = <F_i, E_j> / sqrt(|F_i|^2 |E_j|^2)
(1x1 patches, no epsilon: the original's `Batch_NonShift`), known positions get 0; the output is
[F, E, shifted]. Each batch row may have its own hole (the original needs the same number of hole
pixels in every row): the cosines are those of a [B, N, N] matrix with hole columns at -inf, of
which only the hole's rows are computed, a block of rows at a time (`_hole_argmax`).
Gradients: none through the argmax; the shifted vectors' gradient is added to the chosen encoder
positions times `triple_weight` (the original's custom backward; autodiff of the gather does it).
Zero vectors: as in the original, a zero F_i or E_j (possible after the ReLU) makes its cosines
NaN, and the argmax picks NaN (NumPy / PyTorch semantics): a hole whose decoder vector is zero
copies the first known position, and a zero encoder vector at a known position is chosen by every
hole. A row with no known position at this scale gets zeros (the original fails there).

`shift='res'` is the released `res_unet_shift_triple`: F <- F + R([F, F * shifted]) with R =
conv3x3(8*ngf -> 4*ngf), IN (no affine), ReLU, conv3x3, IN (no affine); the output is [F, E] and
the level-3 up-convolution takes 8*ngf channels.

`shift='soft'` is the released `patch_soft_unet_shift_triple` (`soft_shift`: 3x3 patches, a
softmax x10 over the known patches, optional `fuse`, pasted over the whole map; no parameters),
`shift='flip'` the face model `face_unet_shift_triple` (a 6x6 stride-2 padding-2 level-3 down
convolution; levels 1..3 also run, without gradient, on the left-right mirrored input, and
`flip_shift` matches against both, as the released code computes it). The `feats` dict then also
holds 'flip_encoder', the mirrored pass's encoder half.

Parameter names (`converter`: inpaintjax.convert.shiftnet): `down_k` / `up_k` (k = 1 outermost ..
n innermost) with `kernel` [4, 4, in, out] and `bias`, `down_norm_k` (k = 2..n-1), `up_norm_k`
(k = 2..n) with `scale`, `bias`; `res_conv_1`, `res_conv_2` for shift='res'.
Counts (ngf 64, 8 levels, 4 input channels): 54,944,771 (`hard`, `soft`), 56,190,467 (`res`),
55,600,131 (`flip`).

`PatchDiscriminator` is pix2pix's `NLayerDiscriminator` with n_layers=3 (70x70 PatchGAN) as the
released training uses it: spectral-normalised 4x4 convolutions with bias, 64 (stride 2) ->
128 (2) -> 256 (2) -> 512 (1) -> 1 (1), zero padding 1, InstanceNorm (affine) + LeakyReLU(0.2)
after the middle three, LeakyReLU after the first, sigmoid at the end: [B, H, W, 3] in [-1, 1] ->
probabilities [B, H/8 - 2, W/8 - 2, 1]. 2,766,529 parameters.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from inpaintjax.layers.ops import InstanceNorm, leaky_relu
from inpaintjax.models.edgeconnect import SpectralConv

SHIFT_LEVEL = 3          # `layer_to_last=3`: the shift sits where features are 1/8 of the input
SHIFTS = ("hard", "res", "soft", "flip")
SOFT_PATCH = 3           # the README's `--shift_sz 3 --mask_thred 4` for patch_soft_unet_shift_triple
SOFT_MASK_THRED = 4
SOFT_SCALE = 10.0        # softmax(10 * score) in InnerPatchSoftShiftTripleModule
SHIFT_ROW_BLOCK = 256    # hole rows of the cosine matrix scored at a time (`_hole_argmax`)


def feature_hole(hole: jax.Array, factor: int) -> jax.Array:
    """The hole at 1/factor scale as the original computes it (`F.interpolate(mask, size // factor,
    'nearest')`, i.e. every factor-th pixel from the top-left): [B, H, W, 1] -> [B, H/f, W/f, 1]."""
    return hole[:, ::factor, ::factor, :]


def _hole_argmax(f: jax.Array, e: jax.Array, in_hole: jax.Array, block: int = SHIFT_ROW_BLOCK) -> jax.Array:
    """index int32 [B, N]: at each hole position i (in_hole [B, N]), argmax over the known j of
    <f_i, e_j> / sqrt(|f_i|^2 |e_j|^2) (f, e [B, N, C]; NaN wins, as NumPy's argmax); 0 at known
    positions. Only the hole's rows are scored: they are gathered first, `block` rows of the
    [B, N, N] cosine matrix at a time, for as many blocks as the largest hole needs (a loop with
    a run-time trip count), so the work is proportional to the hole's size (12% of the dense
    matrix for the bench's hole at 512x512). Each row's cosines are the dense matrix's formula,
    elementwise; the matrix product's rounding can differ from the whole product's in the last bit."""
    b, n, _ = f.shape
    block = min(block, n)
    ff, ee = jnp.sum(f * f, -1), jnp.sum(e * e, -1)                                 # [B, N]
    order = jnp.argsort(jnp.logical_not(in_hole), axis=1, stable=True).astype(jnp.int32)
    blocks = (jnp.max(jnp.sum(in_hole, axis=1)) + block - 1) // block
    rows_of = jnp.arange(b)[:, None]

    def score(k, index):
        start = jnp.minimum(k * block, n - block)  # the last block may score some rows again
        rows = jax.lax.dynamic_slice_in_dim(order, start, block, axis=1)               # [B, block]
        num = jnp.einsum("bic,bjc->bij", jnp.take_along_axis(f, rows[:, :, None], axis=1), e,
                         precision=jax.lax.Precision.HIGHEST)
        den = jnp.sqrt(jnp.take_along_axis(ff, rows, axis=1)[:, :, None] * ee[:, None, :])
        cos = jnp.where(in_hole[:, None, :], -jnp.inf, num / den)
        return index.at[rows_of, rows].set(jnp.argmax(cos, axis=-1).astype(jnp.int32))

    index = jax.lax.fori_loop(0, blocks, score, jnp.zeros((b, n), jnp.int32))
    return jnp.where(in_hole, index, 0)


def hard_shift(former: jax.Array, latter: jax.Array, hole: jax.Array,
               triple_weight: float = 1.0) -> tuple[jax.Array, jax.Array]:
    """Shift-Net's shift with 1x1 patches (see the module docstring).

    former, latter [B, h, w, C] (decoder and encoder features after the ReLU), hole [B, h, w, 1]
    (1 = hole). Returns (shifted [B, h, w, C]: at each hole position the encoder vector of the known
    position of highest cosine similarity, 0 elsewhere; index [B, h*w] int32: that position, row-major,
    at hole positions, 0 at known ones)."""
    b, h, w, c = former.shape
    n = h * w
    f = jax.lax.stop_gradient(former).reshape(b, n, c).astype(jnp.float32)
    e_sg = jax.lax.stop_gradient(latter).reshape(b, n, c).astype(jnp.float32)
    in_hole = hole.reshape(b, n) > 0.5
    index = _hole_argmax(f, e_sg, in_hole)
    e = latter.reshape(b, n, c)
    if triple_weight != 1.0:  # scale the gradient that flows back through the copy, not the value
        e_const = jax.lax.stop_gradient(e)
        e = e_const + triple_weight * (e - e_const)
    picked = jnp.take_along_axis(e, index[:, :, None], axis=1)
    has_known = jnp.any(~in_hole, axis=1)
    keep = in_hole[:, :, None] & has_known[:, None, None]
    shifted = jnp.where(keep, picked, jnp.zeros((), picked.dtype))
    return shifted.reshape(b, h, w, c), index


def _windows_torch_layout(x: jax.Array, k: int) -> jax.Array:
    """k x k windows of x [B, h, w, C] (zero padding k // 2), laid out as the original's
    `F.pad(x).unfold(2, k, 1).unfold(3, k, 1).contiguous().view(B, -1, C, k, k)`: the unfolded
    [B, C, h, w, k, k] block read straight into [B, h*w, C, k, k] without moving the channel axis,
    so 'patch' p, channel c holds the window of channel t // (h*w) at position t % (h*w), t = p*C + c
    (for C = h*w that is a transposition; it is a real patch only for C = 1)."""
    b, h, w, c = x.shape
    r = k // 2
    xp = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)))
    win = jnp.stack([jnp.stack([xp[:, i:i + h, j:j + w, :] for j in range(k)], -1) for i in range(k)], -2)
    win = jnp.transpose(win, (0, 3, 1, 2, 4, 5))                          # [B, C, h, w, k, k]
    return win.reshape(b, h * w, c, k, k)


def _fuse_diagonal(y: jax.Array) -> jax.Array:
    """y [B, N, N] -> sum of y[p + d, q + d] over d in -1, 0, 1 (zero outside 0..N-1): the original's
    `F.conv2d(y, eye(3), padding=1)` on the score matrix viewed as an N x N image."""
    yp = jnp.pad(y, ((0, 0), (1, 1), (1, 1)))
    n = y.shape[1]
    return yp[:, 0:n, 0:n] + yp[:, 1:n + 1, 1:n + 1] + yp[:, 2:n + 2, 2:n + 2]


def soft_shift(former: jax.Array, latter: jax.Array, hole: jax.Array, fuse: bool = False) -> jax.Array:
    """The released `patch_soft_unet_shift_triple` shift (`InnerPatchSoftShiftTripleModule`, 3x3
    patches, mask_thred 4): former, latter [B, h, w, C], hole [B, h, w, 1] (1 = hole, 1/8 scale) ->
    the third part [B, h, w, C], at every position (not only in the hole), with plain gradients.

    With W_p the 3x3 'patches' of latter in the original's layout (`_windows_torch_layout`), their
    norms n_p = max(|W_p|, 1e-4), and the known-patch indicator k_p = (mean of the hole over the
    zero-padded 3x3 window at p <= 4/9):
      s[p, q] = <W_p / n_p, 3x3 window of former at q>   (the original's conv2d)
      fuse: s <- diagonal sums of s along the row-major flat indices, then along the column-major
            ones (the two `conv2d(eye(3))` passes; neighbours wrap across rows / columns as there)
      a[:, q] = k * softmax_p(10 * k * s[:, q])   (hole patches enter the softmax with score 0)
      out[q'] = sum over the 3x3 offsets o, sum_p a[p, q' - o + 1] W_p[o] / 9   (conv_transpose2d)."""
    b, h, w, c = former.shape
    n, k = h * w, SOFT_PATCH
    f32 = jnp.float32
    hp = jax.lax.Precision.HIGHEST
    patches = _windows_torch_layout(latter.astype(f32), k).reshape(b, n, c * k * k)
    norm = jnp.maximum(jnp.sqrt(jnp.sum(patches * patches, -1, keepdims=True)), 1e-4)
    # the 3x3 windows of former in (channel, row, column) order, as conv2d pairs them with W_p
    r = k // 2
    fp = jnp.pad(former.astype(f32), ((0, 0), (r, r), (r, r), (0, 0)))
    fwin = jnp.stack([jnp.stack([fp[:, i:i + h, j:j + w, :] for j in range(k)], -1) for i in range(k)], -2)
    fwin = fwin.reshape(b, n, c * k * k)                                   # [B, q, (C, k, k)]
    s = jnp.einsum("bpd,bqd->bpq", patches / norm, fwin, precision=hp)     # [B, source p, target q]
    if fuse:
        s = _fuse_diagonal(s)
        # to column-major flat indices (p = pw * h + ph), fuse again, and back
        t = s.reshape(b, h, w, h, w).transpose(0, 2, 1, 4, 3).reshape(b, n, n)
        s = _fuse_diagonal(t).reshape(b, w, h, w, h).transpose(0, 2, 1, 4, 3).reshape(b, n, n)
    hp_mask = jnp.pad(hole.astype(f32)[..., 0], ((0, 0), (r, r), (r, r)))
    hole_mean = sum(hp_mask[:, i:i + h, j:j + w] for i in range(k) for j in range(k)) / (k * k)
    known = (hole_mean <= SOFT_MASK_THRED / (k * k)).astype(f32).reshape(b, n, 1)
    attn = jax.nn.softmax(SOFT_SCALE * s * known, axis=1) * known          # over the sources p
    v = jnp.einsum("bpq,bpd->bqd", attn, patches, precision=hp).reshape(b, h, w, c, k, k)
    vp = jnp.pad(v, ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)))
    out = sum(vp[:, 2 - i:2 - i + h, 2 - j:2 - j + w, :, i, j] for i in range(k) for j in range(k))
    return (out / 9.0).astype(former.dtype)


def _rank_positions(in_hole: jax.Array) -> jax.Array:
    """in_hole [B, N] bool -> [B, N] int: the hole positions in row-major order, then the known
    ones (entry r is the r-th hole position for r below the number of holes)."""
    return jnp.argsort(~in_hole, axis=1, stable=True)


def flip_shift(former: jax.Array, latter: jax.Array, flip_latter: jax.Array, hole: jax.Array,
               triple_weight: float = 1.0) -> jax.Array:
    """The face model's shift (`InnerFaceShiftTripleFunction` of the released code), as it computes:
    former, latter [B, h, w, C] (decoder, encoder halves), flip_latter [B, h, w, C] (the encoder half
    of the horizontally flipped masked input's own pass), hole [B, h, w, 1] (1/8 scale) -> the third
    part [B, h, w, C].

    Let p_r be the r-th hole position (row-major) of the hole and q_r the r-th of the mirrored hole.
      a_r = argmax over known j of cos(F[p_r], E[j])
      b_r = argmax over j known in the mirrored hole of cos(F[q_r], E_flip[j])   (F at q_r, not p_r)
      o_r = the larger maximum is a_r's (ties: a_r)
    The released code then fills its transition matrix by broadcasting a [S] index vector against
    an [R, 1] one, so every chosen hole position receives the SUM of the vectors at ALL chosen
    sources: shifted[p_r] = sum over distinct {a_1..a_R} of E  if o_r, else the sum over distinct
    {b_1..b_R} of E_flip; a hole at flat position 0 receives nothing (its index is dropped by a
    `nonzero` on the position itself). Gradients (its custom backward): none into former or
    flip_latter; the gradient of each shifted vector, times triple_weight, goes to E at every source
    of its set, the flipped sources included (at the same flat index of the unflipped E).
    Cosines have no epsilon (zero vectors give NaN, which the argmax picks, as there); a row with no
    known position gets zeros."""
    b, h, w, c = former.shape
    n = h * w
    f32 = jnp.float32
    f = jax.lax.stop_gradient(former).reshape(b, n, c).astype(f32)
    e_sg = jax.lax.stop_gradient(latter).reshape(b, n, c).astype(f32)
    ef = jax.lax.stop_gradient(flip_latter).reshape(b, n, c).astype(f32)
    in_hole = hole.reshape(b, n) > 0.5
    in_hole_m = jnp.flip(hole, axis=2).reshape(b, n) > 0.5
    # q_r for the hole position of rank r: ranks of the hole, positions of the mirrored hole by rank
    rank = jnp.cumsum(in_hole, axis=1) - 1
    q = jnp.take_along_axis(_rank_positions(in_hole_m), jnp.clip(rank, 0, n - 1), axis=1)   # [B, N]
    f_q = jnp.take_along_axis(f, q[:, :, None], axis=1)

    def cosines(a, e, hole_cols):
        num = jnp.einsum("bic,bjc->bij", a, e, precision=jax.lax.Precision.HIGHEST)
        den = jnp.sqrt(jnp.sum(a * a, -1)[:, :, None] * jnp.sum(e * e, -1)[:, None, :])
        return jnp.where(hole_cols[:, None, :], -jnp.inf, num / den)

    cos = cosines(f, e_sg, in_hole)
    cos_f = cosines(f_q, ef, in_hole_m)
    a = jnp.argmax(cos, axis=-1)
    bsel = jnp.argmax(cos_f, axis=-1)
    ori = jnp.argmax(jnp.concatenate([cos, cos_f], axis=-1), axis=-1) < n
    rows = jnp.arange(b)[:, None]
    chosen = jnp.zeros((b, n), f32).at[rows, a].max(in_hole.astype(f32))          # the set {a_r}
    chosen_f = jnp.zeros((b, n), f32).at[rows, bsel].max(in_hole.astype(f32))     # the set {b_r}
    has_known = jnp.any(~in_hole, axis=1)[:, None]
    live = in_hole & (jnp.arange(n)[None, :] != 0) & has_known
    take_ori = (live & ori).astype(f32)[:, :, None]
    take_flip = (live & ~ori).astype(f32)[:, :, None]
    e = latter.reshape(b, n, c).astype(f32)
    if triple_weight != 1.0:
        e = e_sg + triple_weight * (e - e_sg)
    sum_ori = jnp.einsum("bj,bjc->bc", chosen, e)[:, None, :]
    sum_flip = jnp.einsum("bj,bjc->bc", chosen_f, ef)[:, None, :]
    # value 0; carries the flipped picks' gradient to E at their (unflipped) flat indices
    ghost = jnp.einsum("bj,bjc->bc", chosen_f, e - jax.lax.stop_gradient(e))[:, None, :]
    shifted = take_ori * sum_ori + take_flip * (sum_flip + ghost)
    return shifted.reshape(b, h, w, c).astype(former.dtype)


def _affine_norm(name: str, dtype) -> nn.Module:
    # PyTorch InstanceNorm2d(affine=True, track_running_stats=False): eps 1e-5, biased variance.
    return InstanceNorm(use_scale=True, use_bias=True, dtype=dtype, name=name)


def level_channels(num_downs: int, ngf: int) -> list[int]:
    """Encoder channels of levels 1..n (index 0 unused): ngf * min(2^(k-1), 8)."""
    return [0] + [ngf * min(2 ** (k - 1), 8) for k in range(1, num_downs + 1)]


class ShiftNetGenerator(nn.Module):
    """The `unet_shift_triple` generator (module docstring). Call:
    `out, feats = g(x, hole)`: x [B, H, W, C_in], hole [B, H, W, 1] (1 = hole) -> out [B, H, W, 3]
    in [-1, 1] and feats {'decoder', 'encoder': [B, H/8, W/8, 4*ngf]}, the two halves of the shift's
    input (after its ReLU; the guidance loss compares them; shift='flip' adds 'flip_encoder').
    `g(x, hole, target_only=True)` runs only levels 1..3 and returns the encoder half the shift
    would see, ReLU(level-3 encoder feature) [B, H/8, W/8, 4*ngf]: the guidance loss's target
    from the ground truth's own pass (the original runs the whole network to get it)."""

    num_downs: int = 8
    ngf: int = 64
    out_channels: int = 3
    shift: str = "hard"
    triple_weight: float = 1.0
    fuse: bool = False
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x, hole, target_only: bool = False):
        n, ngf = self.num_downs, self.ngf
        if self.shift not in SHIFTS:
            raise ValueError(f"ShiftNetGenerator: shift must be one of {SHIFTS}, got {self.shift!r}")
        if n < 5:
            raise ValueError(f"ShiftNetGenerator: num_downs must be >= 5 (the shift is at level 3 of "
                             f"a U-Net with at least 5 levels), got {n}")
        mult = 2 ** n
        if x.ndim != 4 or x.shape[1] % mult or x.shape[2] % mult:
            raise ValueError(f"ShiftNetGenerator: input must be [B, H, W, C] with H and W multiples of "
                             f"{mult} (2^num_downs), got shape {x.shape}; pad the image (Inpainter does)")
        if hole.shape[:3] != x.shape[:3]:
            raise ValueError(f"ShiftNetGenerator: hole {hole.shape} does not match input {x.shape}")
        dtype = self.dtype or jnp.float32
        ch = level_channels(n, ngf)
        conv = dict(dtype=self.dtype)
        x = x.astype(dtype)

        # created once, called for the masked input and, for shift='flip', the mirrored one
        down = [None] + [SpectralConv(ch[k], 6 if (k == SHIFT_LEVEL and self.shift == "flip") else 4,
                                      strides=2, padding=2 if (k == SHIFT_LEVEL and self.shift == "flip") else 1,
                                      name=f"down_{k}", **conv) for k in range(1, n + 1)]
        down_norm = {k: _affine_norm(f"down_norm_{k}", self.dtype) for k in range(2, n)}

        def encode(inp, levels):
            out = [None] * (levels + 1)
            out[1] = down[1](inp)
            for k in range(2, levels + 1):
                y = down[k](leaky_relu(out[k - 1]))
                out[k] = down_norm[k](y) if k < n else y
            return out

        if target_only:
            return nn.relu(encode(x, SHIFT_LEVEL)[SHIFT_LEVEL])
        enc = encode(x, n)

        d = SpectralConv(ch[n - 1], 4, strides=2, padding=1, transpose=True, name=f"up_{n}", **conv)(
            nn.relu(enc[n]))
        d = _affine_norm(f"up_norm_{n}", self.dtype)(d)
        feats = {}
        for k in range(n - 1, 1, -1):
            y = nn.relu(jnp.concatenate([d, enc[k]], axis=-1))
            if k == SHIFT_LEVEL:
                former, latter = jnp.split(y, 2, axis=-1)
                feats = {"decoder": former, "encoder": latter}
                small = feature_hole(hole.astype(jnp.float32), x.shape[1] // y.shape[1])
                if self.shift == "soft":
                    shifted = soft_shift(former, latter, small, self.fuse)
                elif self.shift == "flip":
                    # the released face model's first pass: the mirrored masked input, no gradient
                    flip_latter = jax.lax.stop_gradient(nn.relu(encode(jnp.flip(x, axis=2), SHIFT_LEVEL)[SHIFT_LEVEL]))
                    feats["flip_encoder"] = flip_latter
                    shifted = flip_shift(former, latter, flip_latter, small, self.triple_weight)
                else:
                    shifted, _ = hard_shift(former, latter, small, self.triple_weight)
                shifted = shifted.astype(y.dtype)
                if self.shift == "res":
                    r = SpectralConv(ch[k], 3, padding=1, name="res_conv_1", **conv)(
                        jnp.concatenate([former, former * shifted], axis=-1))
                    r = SpectralConv(ch[k], 3, padding=1, name="res_conv_2", **conv)(
                        nn.relu(InstanceNorm(dtype=self.dtype)(r)))
                    y = jnp.concatenate([former + InstanceNorm(dtype=self.dtype)(r), latter], axis=-1)
                else:
                    y = jnp.concatenate([former, latter, shifted], axis=-1)
            d = SpectralConv(ch[k - 1], 4, strides=2, padding=1, transpose=True, name=f"up_{k}", **conv)(y)
            d = _affine_norm(f"up_norm_{k}", self.dtype)(d)
        y = SpectralConv(self.out_channels, 4, strides=2, padding=1, transpose=True, name="up_1", **conv)(
            nn.relu(jnp.concatenate([d, enc[1]], axis=-1)))
        return jnp.tanh(y.astype(jnp.float32)), feats


class PatchDiscriminator(nn.Module):
    """The released 70x70 PatchGAN (module docstring). `d(x, train)`: x [B, H, W, 3] in [-1, 1]
    (H, W >= 24) -> sigmoid probabilities [B, H/8 - 2, W/8 - 2, 1] float32. `train=True` with
    mutable=['batch_stats'] runs PyTorch's spectral-norm power iteration (u, v in batch_stats)."""

    ndf: int = 64
    spectral_norm: bool = True
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        if x.ndim != 4 or min(x.shape[1:3]) < 24:
            raise ValueError(f"PatchDiscriminator: input must be [B, H, W, C] with H, W >= 24 (three "
                             f"stride-2 and two 4x4 stride-1 convolutions), got shape {x.shape}")
        sn = dict(spectral_norm=self.spectral_norm, dtype=self.dtype)
        x = SpectralConv(self.ndf, 4, strides=2, padding=1, name="conv_0", **sn)(x, train)
        x = leaky_relu(x)
        for i, (mult, stride) in enumerate(((2, 2), (4, 2), (8, 1)), start=1):
            x = SpectralConv(self.ndf * mult, 4, strides=stride, padding=1, name=f"conv_{i}", **sn)(x, train)
            x = leaky_relu(_affine_norm(f"norm_{i}", self.dtype)(x))
        x = SpectralConv(1, 4, strides=1, padding=1, name="conv_4", **sn)(x, train)
        return jax.nn.sigmoid(x.astype(jnp.float32))
