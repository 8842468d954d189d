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
[F, E, shifted]. It is dense (a [B, N, N] cosine matrix with hole columns at -inf), so each batch
row may have its own hole (the original needs the same number of hole pixels in every row).
Gradients: none through the argmax; the shifted vectors' gradient is added to the chosen encoder
positions times `triple_weight` (the original's custom backward; autodiff of the gather does it).
Zero vectors: as in the original, a zero F_i or E_j (possible after the ReLU) makes its cosines
NaN, and the argmax picks NaN (NumPy / PyTorch semantics): a hole whose decoder vector is zero
copies the first known position, and a zero encoder vector at a known position is chosen by every
hole. A row with no known position at this scale gets zeros (the original fails there).

`shift='res'` is the released `res_unet_shift_triple`: F <- F + R([F, F * shifted]) with R =
conv3x3(8*ngf -> 4*ngf), IN (no affine), ReLU, conv3x3, IN (no affine); the output is [F, E] and
the level-3 up-convolution takes 8*ngf channels.

Parameter names (`converter`: inpaintjax.convert.shiftnet): `down_k` / `up_k` (k = 1 outermost ..
n innermost) with `kernel` [4, 4, in, out] and `bias`, `down_norm_k` (k = 2..n-1), `up_norm_k`
(k = 2..n) with `scale`, `bias`; `res_conv_1`, `res_conv_2` for shift='res'.
Counts (ngf 64, 8 levels, 4 input channels): 54,944,771 (`hard`), 56,190,467 (`res`).

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
SHIFTS = ("hard", "res")


def feature_hole(hole: jax.Array, factor: int) -> jax.Array:
    """The hole at 1/factor scale as the original computes it (`F.interpolate(mask, size // factor,
    'nearest')`, i.e. every factor-th pixel from the top-left): [B, H, W, 1] -> [B, H/f, W/f, 1]."""
    return hole[:, ::factor, ::factor, :]


def hard_shift(former: jax.Array, latter: jax.Array, hole: jax.Array,
               triple_weight: float = 1.0) -> tuple[jax.Array, jax.Array]:
    """Shift-Net's shift with 1x1 patches (see the module docstring).

    former, latter [B, h, w, C] (decoder and encoder features after the ReLU), hole [B, h, w, 1]
    (1 = hole). Returns (shifted [B, h, w, C]: at each hole position the encoder vector of the known
    position of highest cosine similarity, 0 elsewhere; index [B, h*w] int32: that position, row-major,
    meaningful at hole positions only)."""
    b, h, w, c = former.shape
    n = h * w
    f = jax.lax.stop_gradient(former).reshape(b, n, c).astype(jnp.float32)
    e_sg = jax.lax.stop_gradient(latter).reshape(b, n, c).astype(jnp.float32)
    in_hole = hole.reshape(b, n) > 0.5
    num = jnp.einsum("bic,bjc->bij", f, e_sg, precision=jax.lax.Precision.HIGHEST)
    den = jnp.sqrt(jnp.sum(f * f, -1)[:, :, None] * jnp.sum(e_sg * e_sg, -1)[:, None, :])
    cos = jnp.where(in_hole[:, None, :], -jnp.inf, num / den)
    index = jnp.argmax(cos, axis=-1).astype(jnp.int32)                 # [B, N] (NaN wins, as NumPy)
    e = latter.reshape(b, n, c)
    if triple_weight != 1.0:  # scale the gradient that flows back through the copy, not the value
        e_const = jax.lax.stop_gradient(e)
        e = e_const + triple_weight * (e - e_const)
    picked = jnp.take_along_axis(e, index[:, :, None], axis=1)
    has_known = jnp.any(~in_hole, axis=1)
    keep = in_hole[:, :, None] & has_known[:, None, None]
    shifted = jnp.where(keep, picked, jnp.zeros((), picked.dtype))
    return shifted.reshape(b, h, w, c), index


def _affine_norm(name: str, dtype) -> nn.Module:
    # PyTorch InstanceNorm2d(affine=True, track_running_stats=False): eps 1e-5, biased variance.
    return nn.InstanceNorm(epsilon=1e-5, use_fast_variance=False, dtype=dtype, name=name)


def level_channels(num_downs: int, ngf: int) -> list[int]:
    """Encoder channels of levels 1..n (index 0 unused): ngf * min(2^(k-1), 8)."""
    return [0] + [ngf * min(2 ** (k - 1), 8) for k in range(1, num_downs + 1)]


class ShiftNetGenerator(nn.Module):
    """The `unet_shift_triple` generator (module docstring). Call:
    `out, feats = g(x, hole)`: x [B, H, W, C_in], hole [B, H, W, 1] (1 = hole) -> out [B, H, W, 3]
    in [-1, 1] and feats {'decoder', 'encoder': [B, H/8, W/8, 4*ngf]}, the two halves of the shift's
    input (after its ReLU; the guidance loss compares them).
    `g(x, hole, target_only=True)` runs only levels 1..3 and returns the encoder half the shift
    would see, ReLU(level-3 encoder feature) [B, H/8, W/8, 4*ngf]: the guidance loss's target
    from the ground truth's own pass (the original runs the whole network to get it)."""

    num_downs: int = 8
    ngf: int = 64
    out_channels: int = 3
    shift: str = "hard"
    triple_weight: float = 1.0
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

        enc = [None] * (n + 1)
        enc[1] = SpectralConv(ch[1], 4, strides=2, padding=1, name="down_1", **conv)(x)
        for k in range(2, n + 1):
            y = SpectralConv(ch[k], 4, strides=2, padding=1, name=f"down_{k}", **conv)(leaky_relu(enc[k - 1]))
            if k < n:
                y = _affine_norm(f"down_norm_{k}", self.dtype)(y)
            enc[k] = y
            if target_only and k == SHIFT_LEVEL:
                return nn.relu(y)

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
