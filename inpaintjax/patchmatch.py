"""PatchMatch hole filling (Barnes, Shechtman, Finkelstein, Goldman, SIGGRAPH 2009) as a JAX program.

    from inpaintjax import patchmatch
    out = patchmatch.inpaint(images, masks, seed=0)   # [B,H,W,3] float32 in [0, 1]

Coarse-to-fine expectation-maximisation completion (Wexler, Shechtman, Irani 2007) as the open
reference implementation does it (Xavier Philippeau's algorithm in vacancy/PyPatchMatch, MIT,
csrc/inpaint.cpp, nnf.cpp, masked_image.cpp):

- a pyramid, each level half the size of the one below, built by a [1,5,10,10,5,1] x [1,5,10,10,5,1]
  filter over known pixels only (a pixel with no known pixel under the filter stays a hole), added
  while both sides are larger than the patch radius;
- at level L (0 = full size) 1+2L EM iterations, each with min(7, 1+L) passes over two
  nearest-neighbour fields, hole -> known ("source to target") and known -> hole ("target to
  source"); patches without hole pixels are pinned to themselves;
- the patch distance: the sum of squared differences of RGB and of the x and y gradients
  (I[+1]/2 - I[-1]/2 + 128, 8-bit) over the (2r+1)^2 patch, where a hole pixel or a pixel on or past
  the image border costs the maximum 9 * 255^2; normalised to 0..65535;
- voting: every patch of both fields votes its known pixels, weighted by the reference's
  distance-to-similarity table; the last iteration of a level votes straight into the next finer
  level (each vote copied to a 2x2 block of the finer level's known pixels).

What differs from the sequential C++, and why: the C++ scans the image in raster order, so a pixel
sees the offsets its upper/left neighbours found a moment earlier. Here every hole-touching pixel
tries its neighbours' offsets at once (2 and 1 pixels up and left on forward half-passes, down and
right on backward ones, each shifted by its distance: PROPAGATION_JUMPS), from the field as it
stood when the half-pass began, then does the same halving random search, all pixels in
parallel. Propagation candidates are clamped to the image (the C++ may try a centre one pixel
past the border, which the border penalty makes lose). Random numbers are not libc `rand()`'s:
each field entry's draws are JAX's Threefry-2x32 hash, under a key derived from the seed (per
level, then per EM iteration and half-pass, or initial try), of a counter naming the entry's
field and pixel (`_entry_bits`). Levels so small that every vote weight is 0 are computed
directly instead of searched (`is_dead_level`). The result is the same algorithm with a
different schedule of updates, not a bit-exact copy; docs/patchmatch.md measures it against
PyPatchMatch.

Shapes are static: one jitted program per pyramid level and patch-radius/capacity combination; the
work of a level is done on one compact list of field entries: field 0's for the pixels whose patch
touches the hole and can still vote (`searched`: a hole-side patch with more invalid pixels than
`max_voting_invalid` weighs 0 whatever it matches, so it is not searched), then field 1's for
every pixel whose patch touches the hole. Each segment's length, and that of the list of pixels
receiving field 1's votes, is chosen on the host from the masks before the level runs (one of 8
sizes per octave, `capacity`), so masks of about the same size share the compiled program. The
distance reads int16 channels-first feature maps whose invalid pixels hold +-INVALID, which makes
a validity channel unnecessary (`patch_distance`). A batch of images runs at once (vmapped); `mesh`
shards the batch over devices. Every image's result depends only on that image, its mask, the
radius and the seed: an entry's random draws are keyed by its field and pixel, never by its place
in the list, so neither the list's padding (set by the batch's largest mask) nor the other
images change them.
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np

DEFAULT_PATCH_RADIUS = 3  # 7x7 patches, the paper's size
DISTANCE_SCALE = 65535  # the reference's kDistanceScale: distances are ints in 0..65535
PIXEL_PENALTY = 9 * 255 * 255  # kSSDScale: a hole or border pixel costs the largest possible SSD
INIT_TRIES = 20  # random initial offsets tried until one scores below DISTANCE_SCALE
# propagation: each half-pass tries the neighbours 2 and 1 pixels up/left (down/right), shifting
# their offsets by as much (jump flooding's last two rounds); a single 1-pixel step, the C++'s
# neighbourhood, filled 3-4% worse on the golden cases (docs/patchmatch.md)
PROPAGATION_JUMPS = (2, 1)
MAX_RADIUS = 29  # the exact int32 distance arithmetic holds up to 59x59 patches
_FEATURES = 9  # RGB, x gradient, y gradient
# an invalid pixel's features: far enough from 0..255 that any SSD against it exceeds the penalty,
# +INVALID on a level's own pixels, -INVALID on the completion (two invalid pixels differ too)
INVALID = 1024
_SIMILARITY_BASE = (1.0, 0.99, 0.96, 0.83, 0.38, 0.11, 0.02, 0.005, 0.0006, 0.0001, 0.0)


# ---------------------------------------------------------------------------------------------
# schedule and tables (host side)

def pyramid_sizes(height: int, width: int, radius: int) -> list[tuple[int, int]]:
    """(h, w) of each pyramid level, full size first: halved (floor) while both sides > radius."""
    sizes = [(height, width)]
    while sizes[-1][0] > radius and sizes[-1][1] > radius:
        h, w = sizes[-1]
        sizes.append((h // 2, w // 2))
    return sizes


def em_schedule(level: int) -> tuple[int, int]:
    """(EM iterations, nearest-neighbour-field passes per iteration) at pyramid level `level`."""
    return 1 + 2 * level, min(7, 1 + level)


def similarity_table() -> np.ndarray:
    """float64 [65536]: vote weight of a patch at distance d (0..65535), the reference's table:
    linear interpolation over t = 100 * d / 65536 of _SIMILARITY_BASE, the values at t = 0, 1,
    ..., 10 (the last 0): positive while t < 10 (the last positive entry is d = 6553, 9.2e-8), 0
    from d = 6554 on, 10% of the range."""
    i = np.arange(DISTANCE_SCALE + 1, dtype=np.float64)
    t = 100.0 * (i / (DISTANCE_SCALE + 1))
    j = np.floor(t).astype(np.int64)
    base = np.zeros(102)
    base[:len(_SIMILARITY_BASE)] = _SIMILARITY_BASE
    vj, vk = base[np.minimum(j, 101)], base[np.minimum(j + 1, 101)]
    return vj + (t - j) * (vk - vj)


def random_search_scales(height: int, width: int) -> list[int]:
    """Search radii of one random search on a (height, width) target: (min side - 1) // 2, halved
    down to 1."""
    s, out = (min(height, width) - 1) // 2, []
    while s > 0:
        out.append(s)
        s //= 2
    return out


def capacity(count: int, entries: int) -> int:
    """Length of the compact entry list for `count` searched entries: `count` rounded up to one of
    8 sizes per octave (at least 64, at most `entries`), so that at most 1/8 of the list is
    padding while a mask of about the same size reuses the compiled program."""
    count = max(64, int(count))
    step = 1 << max(0, count.bit_length() - 4)
    return int(min(entries, -(-count // step) * step))


# ---------------------------------------------------------------------------------------------
# deterministic pieces (one image; vmapped over the batch)

def downsample(image, known):
    """One pyramid step of one image. image int32 [h,w,3] (0..255), known bool [h,w] ->
    (int32 [h//2, w//2, 3], bool [h//2, w//2]): the [1,5,10,10,5,1]^2 filter over the 6x6 known
    pixels at rows 2y-2..2y+3, columns 2x-2..2x+3; integer division by the weight sum; 0 and
    unknown where no known pixel is under the filter."""
    h, w = known.shape
    k = jnp.array([1, 5, 10, 10, 5, 1], jnp.int32)
    kn = known.astype(jnp.int32)
    num = jnp.pad(image * kn[..., None], ((2, 3), (2, 3), (0, 0)))
    den = jnp.pad(kn, ((2, 3), (2, 3)))
    oh, ow = h // 2, w // 2

    def filt(a, axis, n):
        # out[i] = sum_d k[d] * a[2i + d] along `axis`
        return sum(k[d] * jax.lax.slice_in_dim(a, d, d + 2 * n - 1, 2, axis) for d in range(6))

    num = filt(filt(num, 0, oh), 1, ow)
    den = filt(filt(den, 0, oh), 1, ow)
    out = jnp.where(den[..., None] > 0, num // jnp.maximum(den, 1)[..., None], 0)
    return out.astype(jnp.int32), den > 0


def upsample(image, height: int, width: int):
    """Nearest-neighbour enlargement of int [h,w,C] to [height,width,C]: pixel (y, x) takes
    (y * h // height, x * w // width)."""
    h, w = image.shape[:2]
    ys = jnp.arange(height) * h // height
    xs = jnp.arange(width) * w // width
    return image[ys][:, xs]


def features(image, known, invalid_value: int):
    """int16 [9,h,w] of one image, channels first: RGB, x gradient, y gradient
    (I[+1]//2 - I[-1]//2 + 128), with every channel of an invalid pixel (not known, or on the
    border, where the distance charges the full penalty) set to `invalid_value` (+INVALID for a
    level's own pixels, -INVALID for the completion it is matched against: `patch_distance`)."""
    h, w = known.shape
    half = image // 2
    gx = jnp.zeros_like(image).at[1:-1, 1:-1].set(half[1:-1, 2:] - half[1:-1, :-2] + 128)
    gy = jnp.zeros_like(image).at[1:-1, 1:-1].set(half[2:, 1:-1] - half[:-2, 1:-1] + 128)
    inside = jnp.zeros((h, w), bool).at[1:-1, 1:-1].set(True)
    valid = known & inside
    feat = jnp.concatenate([image, gx, gy], -1)
    feat = jnp.where(valid[..., None], feat, invalid_value)
    return jnp.moveaxis(feat, -1, 0).astype(jnp.int16)


def _pad_features(feat, radius: int, invalid_value: int):
    # pixels outside the image are invalid: the penalty applies
    return jnp.pad(feat, ((0, 0), (radius, radius), (radius, radius)),
                   constant_values=invalid_value)


def _patches_of(maps, which, centres, radius: int):
    """[N, 9, 2r+1, 2r+1] patches of stacked padded maps [M, 9, h+2r, w+2r]: entry n from map
    which[n] at centre centres[n]."""
    size = 2 * radius + 1
    return jax.vmap(lambda m, c: jax.lax.dynamic_slice(
        maps, (m, 0, c[0], c[1]), (1, _FEATURES, size, size))[0])(which, centres)


def patch_distance(a, b):
    """Distance 0..65535 (int32) between patches [..., 9, P, P], one from a map whose invalid
    pixels are +INVALID, the other from one where they are -INVALID: the SSD of the 9 feature
    channels over pixels valid in both, plus PIXEL_PENALTY for every other pixel, as
    floor(65535 * (sum / PIXEL_PENALTY) / P^2), computed exactly in int32. A pixel valid in both
    has an SSD of at most 9 * 255^2 = PIXEL_PENALTY; one invalid on either side differs by at
    least INVALID - 255 in every channel, so min(SSD, PIXEL_PENALTY) is the penalty there: no
    validity channel is needed."""
    n = a.shape[-2] * a.shape[-1]
    diff = a.astype(jnp.int32) - b.astype(jnp.int32)
    per_pixel = jnp.minimum(jnp.sum(diff * diff, -3), PIXEL_PENALTY)
    total = jnp.sum(per_pixel, (-2, -1))
    # 65535 / (9 * 255^2) = 257 / 2295: floor(257 * total / (2295 n)) without int32 overflow
    den = 2295 * n
    return 257 * (total // den) + (257 * (total % den)) // den


def max_voting_invalid(radius: int) -> int:
    """The most invalid (hole or border) pixels a patch can hold and still get a vote weight above
    0 in the best case (all its valid pixels matching exactly): a hole-side patch with more can
    never vote, so it is not searched (see `_entries`)."""
    n = (2 * radius + 1) ** 2
    table = similarity_table()
    return max(m for m in range(n + 1) if table[DISTANCE_SCALE * m // n] > 0.0)


def hole_touching(known, radius: int):
    """bool [h,w]: the (2r+1)^2 patch centred here holds a hole pixel (these pixels get a field;
    all others are pinned to themselves)."""
    size = 2 * radius + 1
    hole = (~known).astype(jnp.int32)
    return jax.lax.reduce_window(hole, 0, jax.lax.max, (size, size), (1, 1),
                                 [(radius, radius), (radius, radius)]) > 0


def _box_count(a, radius: int):
    size = 2 * radius + 1
    return jax.lax.reduce_window(a, 0, jax.lax.add, (size, size), (1, 1),
                                 [(radius, radius), (radius, radius)])


def scale_field(coarse, height: int, width: int, centres, which):
    """Initial offsets at a finer level from the coarser level's full fields int [2,oh,ow,2]:
    entry n (field which[n], pixel (i, j) = centres[n]) takes the coarse entry at
    (min(i*oh//h, oh-1), min(j*ow//w, ow-1)) times h/oh, w/ow (floored), the reference's scaling
    for sizes h = 2*oh or 2*oh+1."""
    oh, ow = coarse.shape[1:3]
    i = jnp.minimum(centres[:, 0] * oh // height, oh - 1)
    j = jnp.minimum(centres[:, 1] * ow // width, ow - 1)
    v = coarse[which, i, j]
    return jnp.stack([v[:, 0] * height // oh, v[:, 1] * width // ow], -1)


def votes(source_centres, target_centres, weight, ok, src_image, src_known, out_shape,
          radius: int, upscale: bool):
    """Weighted votes [H*W, 4] (sum of weight*RGB, sum of weight) of N patch pairs: pixel
    source_centre + d of `src_image` (if known) votes for target_centre + d, for every offset d
    of the patch with both ends inside the (coarse) image. With `upscale` the centres are on a
    grid half the size of `src_image` / the output and each vote is copied to the 2x2 block
    (2y + u, 2x + v) of fine pixels, read from the fine `src_image`."""
    # with upscale the coarse grid is the fine size halved (floor): a trailing odd row or column
    # of the fine level gets no votes
    h, w = (out_shape[0] // 2, out_shape[1] // 2) if upscale else src_image.shape[:2]
    d = jnp.arange(-radius, radius + 1)
    dy, dx = jnp.meshgrid(d, d, indexing="ij")
    sy = source_centres[:, 0, None, None] + dy
    sx = source_centres[:, 1, None, None] + dx
    ty = target_centres[:, 0, None, None] + dy
    tx = target_centres[:, 1, None, None] + dx
    inside = ((sy >= 0) & (sy < h) & (sx >= 0) & (sx < w) & (ty >= 0) & (ty < h) & (tx >= 0)
              & (tx < w) & ok[:, None, None])
    wgt = weight[:, None, None]
    if upscale:
        u = jnp.array([0, 1])
        sy = 2 * sy[..., None, None] + u[:, None]
        sx = 2 * sx[..., None, None] + u[None, :]
        ty = 2 * ty[..., None, None] + u[:, None]
        tx = 2 * tx[..., None, None] + u[None, :]
        inside = jnp.broadcast_to(inside[..., None, None], sy.shape)
        wgt = wgt[..., None, None]
    H, W = out_shape
    sy_c, sx_c = jnp.clip(sy, 0, src_image.shape[0] - 1), jnp.clip(sx, 0, src_image.shape[1] - 1)
    use = inside & src_known[sy_c, sx_c]
    val = src_image[sy_c, sx_c].astype(jnp.float32)
    contrib = jnp.where(use[..., None], jnp.concatenate(
        [val * wgt[..., None], jnp.broadcast_to(wgt, use.shape)[..., None]], -1), 0.0)
    index = jnp.where(use, jnp.clip(ty, 0, H - 1) * W + jnp.clip(tx, 0, W - 1), H * W)
    acc = jnp.zeros((H * W + 1, 4), jnp.float32)
    acc = acc.at[index.reshape(-1)].add(contrib.reshape(-1, 4))
    return acc[:-1]


def gathered_votes(receivers, receivers_live, index_map, field, weight, src_image, src_known,
                   out_shape, radius: int, upscale: bool):
    """The votes of a field from the target's pixels (`votes` with target centres = the entries'
    own pixels), gathered per receiving pixel instead of scattered: receiver t (int [R,2], a
    pixel within the radius of an entry; entries of `receivers_live` False get nothing) sums,
    over the patch offsets d, the vote of the entry at t - d (index_map int [h,w]: its index
    into field int [K,2] / weight [K], -1 for none): weight * src_image[field + d] if that pixel
    is inside and known. Returns (flat output indices int [R*U], sums [R*U, 4]) with U = 1, or
    U = 4 with `upscale` (receiver t's 2x2 block of the finer output, read from the fine
    `src_image`)."""
    h, w = index_map.shape
    H, W = out_shape
    d = jnp.arange(-radius, radius + 1)
    offsets = jnp.stack(jnp.meshgrid(d, d, indexing="ij"), -1).reshape(-1, 2)  # [P^2, 2]
    voter = receivers[:, None, :] - offsets[None]  # [R, P^2, 2]
    hi = jnp.array([h - 1, w - 1])
    k = index_map[jnp.clip(voter[..., 0], 0, h - 1), jnp.clip(voter[..., 1], 0, w - 1)]
    has = jnp.all((voter >= 0) & (voter <= hi), -1) & (k >= 0) & receivers_live[:, None]
    k = jnp.maximum(k, 0)
    s = field[k] + offsets[None]
    has = has & jnp.all((s >= 0) & (s <= hi), -1)
    wgt = jnp.where(has, weight[k], 0.0)
    blocks = jnp.array([[0, 0], [0, 1], [1, 0], [1, 1]]) if upscale else jnp.zeros((1, 2), int)
    scale = 2 if upscale else 1
    sums, index = [], []
    for u in blocks:  # each of the (1 or 4) output pixels of a receiver
        sy = jnp.clip(scale * s[..., 0] + u[0], 0, src_image.shape[0] - 1)
        sx = jnp.clip(scale * s[..., 1] + u[1], 0, src_image.shape[1] - 1)
        wu = jnp.where(src_known[sy, sx], wgt, 0.0)
        rgb = jnp.sum(src_image[sy, sx].astype(jnp.float32) * wu[..., None], 1)
        sums.append(jnp.concatenate([rgb, jnp.sum(wu, 1)[:, None]], -1))
        ty, tx = scale * receivers[:, 0] + u[0], scale * receivers[:, 1] + u[1]
        index.append(jnp.where(receivers_live, ty * W + tx, H * W))
    return jnp.stack(index, 1).reshape(-1), jnp.stack(sums, 1).reshape(-1, 4)


def identity_votes(active, image, image_known, out_shape, radius: int, upscale: bool):
    """Votes [H*W, 4] of the pixels pinned to themselves (not `active`, distance 0, weight 1) in
    both fields: every known pixel onto itself once per covering pinned patch, per field."""
    h, w = active.shape
    H, W = out_shape
    sv = 2.0 * _box_count((~active).astype(jnp.int32), radius).astype(jnp.float32)
    if upscale:
        sv = jnp.pad(jnp.repeat(jnp.repeat(sv, 2, 0), 2, 1), ((0, H - 2 * h), (0, W - 2 * w)))
    sv = sv * image_known
    own = jnp.concatenate([image.astype(jnp.float32) * sv[..., None], sv[..., None]], -1)
    return own.reshape(H * W, 4)


def em_votes(centres, live, field, dist, split: int, index_map, receivers, receivers_live,
             active, image, image_known, out_shape, radius: int, upscale: bool):
    """Votes [H*W, 4] of both fields of one level. The K entries (pixels centres int [K,2],
    matched to field int [K,2] at distance dist [K]; entries with live False do not vote) are
    field 0's (this level's pixels, the hole side, matched into the target) for n < split, and
    field 1's (the target's pixels matched into this level) after; index_map int [h,w] holds
    every field-1 entry's index at its pixel (-1 elsewhere), `receivers` int [R,2] every pixel
    within the radius of one (`receivers_live`). A hole-touching pixel of field 0 without an
    entry can only have weight 0 (`max_voting_invalid`); every pixel not `active` has the
    identity field at distance 0 (weight 1) in both fields. `image` / `image_known` are this
    level's (or, with `upscale`, the finer level's) pixels."""
    table = jnp.asarray(similarity_table(), jnp.float32)
    weight = table[dist]
    H, W = out_shape
    # hole side -> target (few entries: scattered): the hole side's pixels vote where they matched
    acc = votes(centres[:split], field[:split], weight[:split], live[:split], image, image_known,
                out_shape, radius, upscale)
    # target -> hole side (gathered): the matched pixels vote for the target's own pixels
    index, sums = gathered_votes(receivers, receivers_live, index_map,
                                 field, jnp.where(live, weight, 0.0), image, image_known,
                                 out_shape, radius, upscale)
    acc = acc + jnp.zeros((H * W + 1, 4), jnp.float32).at[index].add(sums)[:-1]
    return acc + identity_votes(active, image, image_known, out_shape, radius, upscale)


def maximization(vote_sums, base):
    """The M step: pixels with votes become round-half-even(sum of weight*RGB / sum of weight),
    saturated to 0..255; pixels without votes keep `base` (int [H,W,3])."""
    H, W = base.shape[:2]
    v = vote_sums.reshape(H, W, 4)
    has = v[..., 3] > 0
    mean = jnp.clip(jnp.round(v[..., :3] / jnp.where(has, v[..., 3], 1.0)[..., None]), 0, 255)
    return jnp.where(has[..., None], mean.astype(jnp.int32), base)


# ---------------------------------------------------------------------------------------------
# one pyramid level of one image

def _cost(maps, which, queries, cands, radius: int):
    """Distances int32 [K] of the query patches [K,9,P,P] to the patches at cands int [K,2] of
    the map the entry searches (field 0 searches the target, map 1; field 1 this level, map 0)."""
    return patch_distance(queries, _patches_of(maps, 1 - which, cands, radius))


def _entry_bits(key, ids, n: int):
    """uint32 [n, K]: n random words for each of K entries, counter-based. With B = ceil(n/2),
    entry k's word j is half j // B of the Threefry-2x32 hash, under `key` (a threefry2x32 key),
    of the counter pair (ids[k], j mod B), where ids[k] names the entry's field and pixel
    (`_level`). An entry's words depend on the key, n and its id only, not on its place in the
    list, the list's length or the other entries (the padding that the batch's largest mask
    sets). One hash per two words, as `jax.random.bits`."""
    k = jax.random.key_data(key)
    blocks = -(-n // 2)
    shape = (blocks, ids.shape[0])
    counters = jnp.stack([jnp.broadcast_to(ids.astype(jnp.uint32), shape),
                          jnp.broadcast_to(jnp.arange(blocks, dtype=jnp.uint32)[:, None], shape)])
    # threefry_2x32 hashes the pairs (first half, second half) of its flattened input
    words = jax.extend.random.threefry_2x32((k[0], k[1]), counters)  # [2, B, K]
    return words.reshape(2 * blocks, ids.shape[0])[:n]


def _minimize(maps, queries, field, dist, centres, which, live_k, index_map, ids, key, *,
              radius: int, passes: int, scales: tuple[int, ...], jumps: tuple[int, ...]):
    """`passes` passes over the fields of the K entries (target centres int [K,2], distances int
    [K]): each a forward and a backward half-pass of parallel propagation then random search.
    A half-pass is one loop over candidate slots: the propagation slots (one per neighbour, from
    the field as the half-pass began, accepted in the sequential scan's order), then one slot
    per random-search radius; each slot scores one candidate per entry. The random offsets of
    entry k come from `key`, the half-pass and ids[k] (`_entry_bits`)."""
    h = maps.shape[2] - 2 * radius
    w = maps.shape[3] - 2 * radius
    hi = jnp.array([h - 1, w - 1])
    n_prop = 2 * len(jumps)
    scales_arr = jnp.array(scales if scales else (0,), jnp.int32)
    # forward half-pass: the upper then the left neighbour at each jump length; backward: mirrored
    steps = jnp.array([s for j in jumps for s in ((j, 0), (0, j))], jnp.int32)

    def half(i, carry):
        field, dist = carry
        direction = 1 - 2 * (i % 2)
        live = live_k & (dist > 0)
        start = field  # Jacobi: propagation reads the field as the half-pass began
        # all random offsets of the half-pass at once, one 32-bit draw per entry and radius, its
        # two 16-bit halves the y and x offsets: (bits mod (2s+1)) - s, as rand() % n
        bits = _entry_bits(jax.random.fold_in(key, i), ids, max(1, len(scales)))
        halves = jnp.stack([bits >> 16, bits & 0xFFFF], -1)

        def slot(j, carry):
            field, dist = carry
            # propagation: the neighbour at centre - step, its offset shifted by step (the
            # identity where that pixel has no entry)
            step = direction * steps[jnp.minimum(j, n_prop - 1)]
            n = centres - step
            inb = jnp.all((n >= 0) & (n <= hi), -1)
            nc = jnp.clip(n, 0, hi)
            k = index_map[which, nc[:, 0], nc[:, 1]]
            prop = jnp.where((k >= 0)[:, None], start[jnp.maximum(k, 0)], nc) + step
            # random search around the current best
            js = jnp.maximum(j - n_prop, 0)
            s = scales_arr[js]
            off = (halves[js] % (2 * s + 1).astype(jnp.uint32)).astype(jnp.int32) - s
            is_prop = j < n_prop
            cand = jnp.clip(jnp.where(is_prop, prop, field + off), 0, hi)
            dc = _cost(maps, which, queries, cand, radius)
            take = live & (inb | ~is_prop) & (dc < dist)
            return jnp.where(take[:, None], cand, field), jnp.where(take, dc, dist)

        return jax.lax.fori_loop(0, n_prop + len(scales), slot, (field, dist))

    return jax.lax.fori_loop(0, 2 * passes, half, (field, dist))


def _random_centres(key, ids, h: int, w: int):
    """int [K, 2]: a uniformly drawn pixel of an h x w image for each entry (bits mod h, as
    rand() % h), entry k's from `key` and ids[k] (`_entry_bits`)."""
    bits = _entry_bits(key, ids, 2).T
    return (bits % jnp.array([h, w], jnp.uint32)).astype(jnp.int32)


def _initial_field(first_guess, maps, queries, which, live_k, ids, key, *, radius: int):
    """Distances of `first_guess` int [K,2], then up to INIT_TRIES - 1 random centres for every
    entry still at DISTANCE_SCALE (the reference's retries), try t (1..) of entry k drawn from
    `key`, t and ids[k]."""
    h = maps.shape[2] - 2 * radius
    w = maps.shape[3] - 2 * radius
    K = first_guess.shape[0]

    def need(state):
        _, d, t = state
        return (t == 0) | ((t < INIT_TRIES) & jnp.any(live_k & (d >= DISTANCE_SCALE)))

    def retry(state):
        f, d, t = state
        c = _random_centres(jax.random.fold_in(key, t), ids, h, w)
        c = jnp.where(t == 0, first_guess, c)
        redo = d >= DISTANCE_SCALE
        dc = _cost(maps, which, queries, c, radius)
        return (jnp.where(redo[:, None], c, f), jnp.where(redo, dc, d), t + 1)

    f, d, _ = jax.lax.while_loop(
        need, retry, (first_guess, jnp.full((K,), DISTANCE_SCALE, jnp.int32), jnp.int32(0)))
    return f, d


def searched(known, radius: int):
    """bool [2,h,w]: the pixels that get a searched field entry, per field. Field 1 (target ->
    this level): every pixel whose patch touches the hole (all others are pinned to themselves).
    Field 0 (this level -> target): those whose patch also has at most `max_voting_invalid`
    invalid pixels; any other's distance is past the similarity table's cut-off whatever it is
    matched to, so its vote weighs 0 (a patch of hole pixels only is always at the maximum)."""
    h, w = known.shape
    active = hole_touching(known, radius)
    inside = jnp.zeros((h, w), bool).at[1:-1, 1:-1].set(True)
    valid = _box_count((known & inside).astype(jnp.int32), radius)
    can_vote = (2 * radius + 1) ** 2 - valid <= max_voting_invalid(radius)
    return jnp.stack([active & can_vote, active])


def receiving(known, radius: int):
    """bool [h,w]: the pixels a field-1 entry (a hole-touching pixel) can vote for: those within
    the patch radius of one."""
    return _box_count(hole_touching(known, radius).astype(jnp.int32), radius) > 0


def _level(src, known, target, coarse_fields, fine_src, fine_known, key, *, radius: int,
           capacity_: int, level: int, coarsest: bool, jumps: tuple[int, ...] = PROPAGATION_JUMPS):
    """One pyramid level of one image: initial fields (random, or scaled from `coarse_fields`
    int [2, oh, ow, 2]), the EM iterations, and the last vote at the next finer level's size
    (`fine_src` / `fine_known`; at level 0 they are unused). Returns (new target int [H,W,3] at
    the finer size, or this size at level 0; full fields int [2, h, w, 2] for the next level:
    the identity where a pixel has no entry)."""
    h, w = known.shape
    n_em, passes = em_schedule(level)
    scales = tuple(random_search_scales(h, w))
    K0, K1, R = capacity_
    active = hole_touching(known, radius)
    listed = searched(known, radius)
    # the entries: field 0's first (K0 long), then field 1's (K1 long), each padded
    y0, x0 = jnp.nonzero(listed[0], size=K0, fill_value=0)
    y1, x1 = jnp.nonzero(listed[1], size=K1, fill_value=0)
    cy, cx = jnp.concatenate([y0, y1]), jnp.concatenate([x0, x1])
    which = jnp.concatenate([jnp.zeros(K0, jnp.int32), jnp.ones(K1, jnp.int32)])
    centres = jnp.stack([cy, cx], -1).astype(jnp.int32)
    live_k = jnp.concatenate([jnp.arange(K0) < jnp.sum(listed[0]),
                              jnp.arange(K1) < jnp.sum(listed[1])])
    K = K0 + K1
    # an entry's random draws are keyed by its field and pixel, never by its place in the list
    # (which the batch's largest mask sets): one image's fill does not depend on its batch
    ids = which * (h * w) + cy * w + cx
    index_map = jnp.full((2, h, w), -1, jnp.int32).at[
        which, jnp.where(live_k, cy, h), cx].set(jnp.arange(K, dtype=jnp.int32), mode="drop")
    ry, rx = jnp.nonzero(receiving(known, radius), size=R, fill_value=0)
    receivers = jnp.stack([ry, rx], -1).astype(jnp.int32)
    receivers_live = jnp.arange(R) < jnp.sum(receiving(known, radius))
    src_padded = _pad_features(features(src, known, INVALID), radius, INVALID)
    everywhere = jnp.ones((h, w), bool)

    def maps_and_queries(target):
        # map 0: this level (holes invalid); map 1: the completion. Field 0's queries are this
        # level's patches, field 1's the completion's
        tgt_padded = _pad_features(features(target, everywhere, -INVALID), radius, -INVALID)
        maps = jnp.stack([src_padded, tgt_padded])
        return maps, _patches_of(maps, which, centres, radius)

    maps0, queries0 = maps_and_queries(target)
    k_init = jax.random.fold_in(key, 1_000_000)
    if coarsest:
        guess = _random_centres(jax.random.fold_in(k_init, 0), ids, h, w)  # retries: 1..
    else:
        guess = scale_field(coarse_fields, h, w, centres, which)
    field, dist = _initial_field(guess, maps0, queries0, which, live_k, ids, k_init,
                                 radius=radius)

    def vote(field, dist, image, image_known, out_shape, upscale):
        return em_votes(centres, live_k, field, dist, K0, index_map[1], receivers,
                        receivers_live, active, image, image_known, out_shape, radius, upscale)

    def em(i, carry):
        target, _, field, dist = carry
        maps, queries = maps_and_queries(target)
        field, dist = _minimize(maps, queries, field, dist, centres, which, live_k, index_map,
                                ids, jax.random.fold_in(key, i), radius=radius, passes=passes,
                                scales=scales, jumps=jumps)
        new = maximization(vote(field, dist, src, known, (h, w), False), target)
        return new, target, field, dist

    target, last_input, field, dist = jax.lax.fori_loop(
        0, n_em, em, (target, target, field, dist))
    if level > 0:
        H, W = fine_known.shape
        target = maximization(vote(field, dist, fine_src, fine_known, (H, W), True),
                              upsample(last_input, H, W))
    full = jnp.broadcast_to(jnp.stack(jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij"),
                                      -1), (2, h, w, 2))
    full = full.at[which, jnp.where(live_k, cy, h), cx].set(field, mode="drop")
    return target, full


def is_dead_level(height: int, width: int, radius: int) -> bool:
    """Whether no patch of an h x w level can score a vote weight above 0: every patch has so many
    border (or outside) pixels that its distance is past the similarity table's cut-off. Such a
    level (the last two or three of a pyramid) votes nothing but the known pixels onto themselves,
    whatever its fields are, so it is not searched (`_dead_level`)."""
    side = 2 * radius + 1
    n = side * side
    inside = min(side, max(height - 2, 0)) * min(side, max(width - 2, 0))
    nearest = DISTANCE_SCALE * (n - inside) // n  # the smallest distance any patch can have
    return bool(similarity_table()[nearest] == 0.0)


def _dead_level(src, known, target, fine_src, fine_known, *, radius: int, level: int):
    """`_level` for a level where every vote weight is 0 (`is_dead_level`): each EM iteration
    keeps the target except where identity patches copy known pixels onto themselves, the same
    every iteration; the next level starts from the identity fields (the searched fields would be
    random draws at the maximum distance)."""
    h, w = known.shape
    n_em, _ = em_schedule(level)
    active = hole_touching(known, radius)
    first = maximization(identity_votes(active, src, known, (h, w), radius, False), target)
    last_input = target if n_em == 1 else first
    if level > 0:
        H, W = fine_known.shape
        first = maximization(identity_votes(active, fine_src, fine_known, (H, W), radius, True),
                             upsample(last_input, H, W))
    full = jnp.broadcast_to(jnp.stack(jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij"),
                                      -1), (2, h, w, 2))
    return first, full


@functools.partial(jax.jit, static_argnames=("radius", "level"))
def _dead_level_batch(src, known, target, fine_src, fine_known, *, radius, level):
    return jax.vmap(functools.partial(_dead_level, radius=radius, level=level))(
        src, known, target, fine_src, fine_known)


# LLVM optimisation level 1 instead of 2: a level compiles in ~30% less time on XLA:CPU with
# no measurable loss of speed (docs/patchmatch.md)
_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


@functools.partial(jax.jit, static_argnames=("radius", "capacity_", "level", "coarsest", "jumps"),
                   compiler_options=_COMPILER_OPTIONS)
def _level_batch(src, known, target, coarse_fields, fine_src, fine_known, key, *, radius,
                 capacity_, level, coarsest, jumps=PROPAGATION_JUMPS):
    return jax.vmap(functools.partial(_level, radius=radius, capacity_=capacity_, level=level,
                                      coarsest=coarsest, jumps=jumps),
                    (0, 0, 0, 0, 0, 0, None))(src, known, target, coarse_fields, fine_src,
                                              fine_known, key)


@functools.partial(jax.jit, static_argnames=("radius", "levels"),
                   compiler_options=_COMPILER_OPTIONS)
def _pyramid(image, known, *, radius, levels):
    """Per level (full size first): source image int32 [B,h,w,3] with holes zeroed, known bool
    [B,h,w], and per image the number of field-0 entries, field-1 entries and vote-receiving
    pixels int32 [B,3] (`searched`, `receiving`)."""
    out = []
    img = jnp.where(known[..., None], image, 0)
    for level in range(levels):
        if level:
            img, known = jax.vmap(downsample)(img, known)
        count = jnp.concatenate(
            [jnp.sum(jax.vmap(lambda k: searched(k, radius))(known), (2, 3)),
             jnp.sum(jax.vmap(lambda k: receiving(k, radius))(known), (1, 2))[:, None]], -1)
        out.append((img, known, count))
    return out


# ---------------------------------------------------------------------------------------------
# public entry point

def _check_radius(radius: int) -> None:
    if not 1 <= radius <= MAX_RADIUS:
        raise ValueError(f"PatchMatch: patch radius {radius} out of range 1..{MAX_RADIUS} "
                         f"(3 = the paper's 7x7 patches)")


def inpaint_uint8(images, holes, seed: int = 0, radius: int = DEFAULT_PATCH_RADIUS,
                  mesh: Optional[jax.sharding.Mesh] = None,
                  jumps: tuple[int, ...] = PROPAGATION_JUMPS) -> np.ndarray:
    """PatchMatch completion of a batch. images uint8-valued [B,H,W,3], holes bool [B,H,W]
    (True = hole). Returns uint8 [B,H,W,3]: the completed images before compositing (known
    pixels near the hole are revoted too, as in the reference; composite them back yourself or
    use `inpaint`). With `mesh` (1-D) the batch is sharded over its devices. `jumps`: the
    propagation distances of a half-pass (PROPAGATION_JUMPS)."""
    images = np.asarray(images)
    holes = np.asarray(holes, bool)
    if images.ndim != 4 or images.shape[-1] != 3 or holes.shape != images.shape[:3]:
        raise ValueError(f"PatchMatch: expected images [B,H,W,3] and holes [B,H,W], got "
                         f"{images.shape} and {holes.shape}")
    _check_radius(radius)
    B, H, W, _ = images.shape
    sizes = pyramid_sizes(H, W, radius)
    n_dev = 1 if mesh is None else mesh.devices.size
    pad = (-B) % n_dev
    img = np.concatenate([images, np.repeat(images[-1:], pad, 0)]) if pad else images
    hol = np.concatenate([holes, np.repeat(holes[-1:], pad, 0)]) if pad else holes

    if mesh is None:
        put = jnp.asarray
    else:
        # Auto axes: the program carries no sharding annotations; XLA partitions the batch
        auto = jax.sharding.Mesh(mesh.devices, mesh.axis_names,
                                 axis_types=(jax.sharding.AxisType.Auto,) * mesh.devices.ndim)
        sharding = jax.sharding.NamedSharding(auto, jax.sharding.PartitionSpec(mesh.axis_names[0]))
        put = functools.partial(jax.device_put, device=sharding)
    pyr = _pyramid(put(img.astype(np.int32)), put(~hol), radius=radius, levels=len(sizes))
    counts = [np.max(jax.device_get(c), 0) for _, _, c in pyr]  # field 0, field 1, receivers
    key = jax.random.key(seed, impl="threefry2x32")  # whatever JAX's default: `_entry_bits`
    target = fields = None
    for level in range(len(sizes) - 1, -1, -1):
        src, known, _ = pyr[level]
        h, w = sizes[level]
        coarsest = level == len(sizes) - 1
        if coarsest:
            target = src
            fields = jnp.zeros((src.shape[0], 2, 1, 1, 2), jnp.int32)
        fine_src, fine_known = pyr[level - 1][:2] if level else (src, known)
        if is_dead_level(h, w, radius):
            target, fields = _dead_level_batch(src, known, target, fine_src, fine_known,
                                               radius=radius, level=level)
            continue
        target, fields = _level_batch(
            src, known, target, fields, fine_src, fine_known, jax.random.fold_in(key, level),
            radius=radius, capacity_=tuple(capacity(c, h * w) for c in counts[level]), level=level,
            coarsest=coarsest, jumps=tuple(jumps))
    out = np.asarray(jax.device_get(target))[:B].astype(np.uint8)
    return out


def inpaint(images, masks, seed: int = 0, radius: int = DEFAULT_PATCH_RADIUS,
            mesh: Optional[jax.sharding.Mesh] = None) -> np.ndarray:
    """PatchMatch fill of a batch: images float [B,H,W,3] in [0, 1], masks [B,H,W,1] (1 = hole)
    -> float32 [B,H,W,3] in [0, 1] whose known pixels are the input's, bit for bit. The images
    are quantised to 8 bits for the search and the votes (as the reference works); an image
    without known pixels gets zeros in the hole. `seed` keys the random draws; `radius` the
    patch radius (3 = 7x7 patches); `mesh` shards the batch over its devices."""
    images = np.asarray(images, np.float32)
    masks = np.asarray(masks, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3 or masks.shape != images.shape[:3] + (1,):
        raise ValueError(f"PatchMatch: expected images [B,H,W,3] and masks [B,H,W,1] (1 = hole), "
                         f"got {images.shape} and {masks.shape}")
    _check_radius(radius)
    holes = masks[..., 0] > 0.5
    no_known = holes.all(axis=(1, 2))
    if not np.any(holes.any(axis=(1, 2)) & ~no_known):
        # nothing to search: images without a hole stay as they are, holes without known pixels
        # are zeros (the result of the algorithm too: nothing votes into them)
        filled = np.zeros(images.shape, np.uint8)
    else:
        u8 = np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)
        filled = inpaint_uint8(u8, holes, seed=seed, radius=radius, mesh=mesh)
    filled = np.where(no_known[:, None, None, None], 0, filled)
    return np.where(holes[..., None], filled.astype(np.float32) / 255.0, images).astype(np.float32)
