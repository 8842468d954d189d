"""Hole-mask generators of the published inpainting systems.

Every generator is NumPy + PIL only (no JAX), seeded by a `np.random.Generator` (or an int seed,
turned into `np.random.default_rng(seed)`, i.e. PCG64), works at any image size (H, W) and returns a
float32 array [H, W] with values in {0, 1}, **1 = hole (missing), 0 = known** (the project-wide
convention). `mask_hw1(mask)` gives the [H, W, 1] form the data pipeline batches into [B, H, W, 1].

Generators (`MASK_GENERATORS`, `make_mask(name, rng, h, w)`):

| name | source | what |
|---|---|---|
| `deepfill_v2_strokes` | DeepFill v2 `inpaint_ops.py::brush_stroke_mask` | 1..3 free-form brush strokes |
| `deepfill_box` | DeepFill v1/v2 `inpaint_ops.py::random_bbox` + `bbox2mask` | one 128x128 box shrunk by 0..16 px per side |
| `deepfill_v2_training` | DeepFill v2 training graph | union of one box and one stroke mask |
| `glcic_box` | GLCIC (Iizuka et al. 2017) training hole | one rectangle, each side uniform in 96..128 px at 256 |
| `center_box` | DeepFill v1 validation view | fixed centred box of half the image side |
| `irregular_random_walk` | the PConv re-implementation's `generate_data.py` (naoto0804) | 4-neighbour random walk |
| `lama_thin`, `lama_medium`, `lama_thick` | LaMa `configs/data_gen/random_*_{256,512}.yaml` | line strokes (+ boxes), area <= 50%; config by size |
| `lama_{thin,medium,thick}_{256,512}` | the same, one named config each (`lama_mask(variant, rng, h, w, ref)`) | exact at ref x ref, lengths scaled elsewhere |
| `comodgan_512`, `comodgan_512_h0`..`_h4` | CoModGAN `training/mask_generator.py::RandomMask` (+ `hole_range` of its `-h0`..`-h4` metrics) | boxes + free-form brush strokes (`brush_box_mask`) |
| `mat_{large,small}_{512,256}` | MAT `datasets/mask_generator_{512,256}{,_small}.py` | the same with MAT's counts |
| `edgeconnect_block` | EdgeConnect `MASK=1` (`dataset.py::load_mask`) | an (H//2) x (W//2) block at a uniform position |
| `edgeconnect_half` | EdgeConnect `MASK=2` | the left or the right half |
| `shiftnet_center` | Shift-Net (Zhaoyi-Yan/Shift-Net_pytorch) `mask_type=center` | fixed centred box, half the side less 2x4 px (120x120 at 68 for 256) |
| `shiftnet_rect` | Shift-Net `mask_sub_type=rect` | that box at a random position |
| `shiftnet_island` | Shift-Net `mask_sub_type=island` (`util.py::wrapper_gmask`) | blobs of a thresholded, up-sampled noise field, 20-30% holes |

Determinism: a mask depends only on the generator's random stream and the drawing code, so the same
seed gives the same mask for the same NumPy and Pillow versions on any machine (NumPy does not promise
that `Generator` streams stay identical across its releases; the eval-set manifest records both
versions so a changed mask set can be explained).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

RngLike = Union[np.random.Generator, int, np.integer]



def as_rng(rng: RngLike) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng must be a numpy.random.Generator or an int seed, got {type(rng).__name__}: {rng!r}; "
        "pass e.g. np.random.default_rng(0) or 0"
    )


def check_size(h, w) -> Tuple[int, int]:
    if isinstance(h, bool) or isinstance(w, bool) or not isinstance(h, (int, np.integer)) or not isinstance(
        w, (int, np.integer)
    ):
        raise TypeError(f"image size must be two ints (h, w), got h={h!r}, w={w!r}")
    h, w = int(h), int(w)
    if h < 2 or w < 2:
        raise ValueError(f"image size must be at least 2x2, got h={h}, w={w}")
    return h, w


def mask_hw1(mask: np.ndarray) -> np.ndarray:
    """[H, W] hole mask -> float32 [H, W, 1] (the per-example form of the batch's [B, H, W, 1] mask)."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        return mask.astype(np.float32, copy=False)
    if mask.ndim != 2:
        raise ValueError(f"mask_hw1 expects a [H, W] mask, got shape {mask.shape}")
    return mask.astype(np.float32, copy=False)[:, :, None]


# ----------------------------------------------------------------------------------------------
# DeepFill v2 free-form brush strokes (JiahuiYu/generative_inpainting `inpaint_ops.py`)
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Stroke:
    """One brush stroke: integer pixel vertices [(x, y), ...] (x = column, y = row) and a width in px."""

    vertices: Tuple[Tuple[int, int], ...]
    width: int


def free_form_strokes(
    rng: RngLike,
    h: int,
    w: int,
    n_strokes: int,
    *,
    min_num_vertex: int,
    max_num_vertex: int,
    min_width: float,
    max_width: float,
) -> List[Stroke]:
    """`n_strokes` free-form brush strokes as DeepFill v2's `brush_stroke_mask` samples them (the
    sampler CoModGAN's and MAT's `RandomBrush` copy with other constants), without drawing them.

    Per stroke: randint(min_num_vertex, max_num_vertex) segments (exclusive max); angles alternate
    2pi - U(a_min, a_max) and U(a_min, a_max) around the mean angle 2pi/5, with a_min = 2pi/5 -
    U(0, 2pi/15) and a_max = 2pi/5 + U(0, 2pi/15); the start is uniform; each segment is
    clip(Normal(r, floor(r/2)), 0, 2r) long with r = sqrt(H^2 + W^2)/8, its end clipped to
    [0, W] x [0, H] and truncated to int; the brush width is int(U(min_width, max_width)).

    The originals read PIL's `size` (which is (W, H)) as (h, w), which swaps the axes of the start
    point and of the clipping bounds; that is harmless only for square images. Here x (column) is
    sampled and clipped in [0, W] and y (row) in [0, H], so non-square images are covered correctly.
    """
    rng = as_rng(rng)
    h, w = check_size(h, w)
    mean_angle = 2 * math.pi / 5
    angle_range = 2 * math.pi / 15
    average_radius = math.sqrt(h * h + w * w) / 8
    strokes = []
    for _ in range(int(n_strokes)):
        num_vertex = int(rng.integers(min_num_vertex, max_num_vertex))
        angle_min = mean_angle - rng.uniform(0, angle_range)
        angle_max = mean_angle + rng.uniform(0, angle_range)
        angles = []
        for i in range(num_vertex):
            if i % 2 == 0:
                angles.append(2 * math.pi - rng.uniform(angle_min, angle_max))
            else:
                angles.append(rng.uniform(angle_min, angle_max))
        vertices = [(int(rng.integers(0, w)), int(rng.integers(0, h)))]
        for i in range(num_vertex):
            r = float(np.clip(rng.normal(average_radius, average_radius // 2), 0, 2 * average_radius))
            new_x = min(max(vertices[-1][0] + r * math.cos(angles[i]), 0.0), float(w))
            new_y = min(max(vertices[-1][1] + r * math.sin(angles[i]), 0.0), float(h))
            vertices.append((int(new_x), int(new_y)))
        width = int(rng.uniform(min_width, max_width))
        strokes.append(Stroke(tuple(vertices), width))
    return strokes


def deepfill_v2_stroke_params(
    rng: RngLike,
    h: int,
    w: int,
    *,
    min_num_vertex: int = 4,
    max_num_vertex: int = 12,
    min_width: float = 12,
    max_width: float = 40,
    max_strokes: int = 3,
) -> List[Stroke]:
    """Sample the strokes of DeepFill v2's released `brush_stroke_mask` without drawing them
    (JiahuiYu/generative_inpainting `inpaint_ops.py`).

    Defaults are the released constants: 1..3 strokes, 4..11 segments per stroke (max_num_vertex is
    exclusive, so 5..12 vertices with the start point), mean angle 2pi/5 +- U(0, 2pi/15), segment
    length clip(Normal(r, floor(r/2)), 0, 2r) with r = sqrt(H^2+W^2)/8, width int(U(12, 40)) = 12..39
    (`free_form_strokes`). Widths are absolute pixels as in the original (not scaled with the image
    size), so small images get relatively thick strokes. The original's intended random flips are
    no-ops (the flipped image is discarded), so none are done.
    """
    rng = as_rng(rng)
    n_strokes = int(rng.integers(1, max_strokes + 1))
    return free_form_strokes(rng, h, w, n_strokes, min_num_vertex=min_num_vertex,
                             max_num_vertex=max_num_vertex, min_width=min_width, max_width=max_width)


def draw_strokes(strokes: Sequence[Stroke], h: int, w: int) -> np.ndarray:
    """Rasterise DeepFill-style strokes with PIL: a polyline of the stroke's width, then a filled circle
    of diameter ~width at every vertex (the original's smooth joints). Returns float32 [H, W] in {0,1}."""
    h, w = check_size(h, w)
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for stroke in strokes:
        draw.line(list(stroke.vertices), fill=1, width=stroke.width)
        half = stroke.width // 2
        for x, y in stroke.vertices:
            draw.ellipse((x - half, y - half, x + half, y + half), fill=1)
    return np.asarray(canvas, dtype=np.float32)


def deepfill_v2_strokes(rng: RngLike, h: int, w: int) -> np.ndarray:
    """DeepFill v2 free-form brush mask (released training code, generative_inpainting
    `inpaint_ops.py::brush_stroke_mask`). float32 [H, W], 1 = hole."""
    return draw_strokes(deepfill_v2_stroke_params(rng, h, w), h, w)


# ----------------------------------------------------------------------------------------------
# DeepFill rectangles (generative_inpainting `inpaint_ops.py::random_bbox`, `bbox2mask`; v1 and v2)
# ----------------------------------------------------------------------------------------------


def _fit_box(side: int, box: int, max_delta: int, margin: int) -> Tuple[int, int]:
    # The original needs side - 2*margin - box >= 1 (TF random_uniform with an exclusive max).
    # When the image is too small for the box, the box becomes half of the usable side and the
    # shrink range scales with it (128 at 256 is half the side, so this keeps DeepFill's geometry).
    if side - 2 * margin - box >= 1:
        return box, max_delta
    usable = side - 2 * margin
    if usable < 2:
        raise ValueError(f"image side {side} leaves no room for a box with margin {margin}")
    new_box = max(1, usable // 2)
    new_delta = int(max_delta * new_box / box) if box > 0 else 0
    return new_box, new_delta


def deepfill_box(
    rng: RngLike,
    h: int,
    w: int,
    box_h: int = 128,
    box_w: int = 128,
    max_delta_h: int = 32,
    max_delta_w: int = 32,
    margin: int = 0,
) -> np.ndarray:
    """DeepFill v1/v2 training rectangle (generative_inpainting `inpaint_ops.py::random_bbox` +
    `bbox2mask`, as on both the v1.0.0 branch (v1) and master (v2)).

    top ~ uniform int in [margin, h - margin - box_h), left likewise (exclusive max, as TF's
    random_uniform); then each side pair is shrunk by dh ~ randint(0..max_delta_h//2) and
    dw ~ randint(0..max_delta_w//2) (inclusive): hole rows [top+dh, top+box_h-dh), cols
    [left+dw, left+box_w-dw). At 256x256 with the defaults hole sides are 96..128 (even).

    Small images: if a dimension has no valid position for the box (h - 2*margin - box_h < 1), that
    dimension's box becomes half the usable side and its max_delta scales by the same factor
    (e.g. 64 px: box 32, delta 8 -> sides 24..32; 128 px: box 64, delta 16 -> sides 48..64).
    Returns float32 [H, W], 1 = hole.
    """
    rng = as_rng(rng)
    h, w = check_size(h, w)
    box_h, max_delta_h = _fit_box(h, box_h, max_delta_h, margin)
    box_w, max_delta_w = _fit_box(w, box_w, max_delta_w, margin)
    top = int(rng.integers(margin, h - margin - box_h))
    left = int(rng.integers(margin, w - margin - box_w))
    dh = int(rng.integers(0, max_delta_h // 2 + 1))
    dw = int(rng.integers(0, max_delta_w // 2 + 1))
    mask = np.zeros((h, w), np.float32)
    mask[top + dh : top + box_h - dh, left + dw : left + box_w - dw] = 1.0
    return mask


def glcic_box(rng: RngLike, h: int, w: int, min_side: float = 96 / 256,
              max_side: float = 128 / 256) -> np.ndarray:
    """GLCIC's training hole (Iizuka, Simo-Serra and Ishikawa 2017, section 3.3 of the paper; the
    released README: "random holes of [96,128] px" in 256x256 crops): one rectangle whose height
    and width are drawn independently, uniform integers in [min_side * side, max_side * side]
    (96..128 inclusive at 256; the same fractions at other sizes), placed uniformly where it fits
    inside the image. Returns float32 [H, W], 1 = hole."""
    rng = as_rng(rng)
    h, w = check_size(h, w)
    sides = []
    for side in (h, w):
        lo = max(1, int(round(min_side * side)))
        hi = max(lo, min(side - 1, int(round(max_side * side))))
        sides.append(int(rng.integers(lo, hi + 1)))
    hh, ww = sides
    top = int(rng.integers(0, h - hh + 1))
    left = int(rng.integers(0, w - ww + 1))
    mask = np.zeros((h, w), np.float32)
    mask[top:top + hh, left:left + ww] = 1.0
    return mask


def center_box(rng: RngLike, h: int, w: int) -> np.ndarray:
    """DeepFill v1's validation hole: a centred box of half each side (128x128 at top=left=64 for 256).

    Deterministic; `rng` is accepted (and ignored) so that it fits the generator registry."""
    as_rng(rng)
    h, w = check_size(h, w)
    bh, bw = h // 2, w // 2
    top, left = (h - bh) // 2, (w - bw) // 2
    mask = np.zeros((h, w), np.float32)
    mask[top : top + bh, left : left + bw] = 1.0
    return mask


def deepfill_v2_training(rng: RngLike, h: int, w: int) -> np.ndarray:
    """DeepFill v2's training mask: the logical OR (union) of one `deepfill_box` and one
    `deepfill_v2_strokes` mask (as generative_inpainting `inpaint_model.py::build_graph_with_losses`
    combines them), so every mask contains a rectangle (>= 14% of the image at 256x256, which is
    why this generator cannot fill the (0.01, 0.1] bucket)."""
    rng = as_rng(rng)
    box = deepfill_box(rng, h, w)
    strokes = deepfill_v2_strokes(rng, h, w)
    return np.maximum(box, strokes)


# ----------------------------------------------------------------------------------------------
# PConv reimplementation (NI = naoto0804/pytorch-inpainting-with-partial-conv) random walk
# ----------------------------------------------------------------------------------------------

_WALK_DX = np.array([0, 0, 1, -1], np.int64)  # NI's action list [[0,1],[0,-1],[1,0],[-1,0]]; x = row
_WALK_DY = np.array([1, -1, 0, 0], np.int64)


def _clipped_walk(rng: np.random.Generator, n: int, length: int) -> Tuple[np.ndarray, np.ndarray]:
    """Positions after each of `length` steps of NI's walk clipped to [0, n-1]^2 (start excluded).

    Exact and vectorised: positions are cumulative sums within a chunk until the first step that would
    leave the canvas; that step is clipped (for a one-axis unit step, clipping = staying put) and the
    walk continues from there. Chunks grow while the walk stays inside, shrink near a border."""
    x, y = (int(v) for v in rng.integers(0, n, size=2))
    moves = rng.integers(0, 4, size=length)
    dx, dy = _WALK_DX[moves], _WALK_DY[moves]
    out_x = np.empty(length, np.int64)
    out_y = np.empty(length, np.int64)
    i, chunk = 0, 256
    while i < length:
        end = min(length, i + chunk)
        cx = x + np.cumsum(dx[i:end])
        cy = y + np.cumsum(dy[i:end])
        bad = (cx < 0) | (cx >= n) | (cy < 0) | (cy >= n)
        if not bad.any():
            out_x[i:end], out_y[i:end] = cx, cy
            x, y = int(cx[-1]), int(cy[-1])
            i = end
            chunk = min(chunk * 2, 1 << 16)
            continue
        k = int(np.argmax(bad))
        out_x[i : i + k], out_y[i : i + k] = cx[:k], cy[:k]
        if k > 0:
            x, y = int(cx[k - 1]), int(cy[k - 1])
        out_x[i + k], out_y[i + k] = x, y
        i += k + 1
        chunk = max(64, 2 * k)
    return out_x, out_y


def irregular_random_walk(
    rng: RngLike, h: int, w: int, canvas_size: int = 512, length: Optional[int] = None
) -> np.ndarray:
    """NI's irregular mask (naoto0804/pytorch-inpainting-with-partial-conv `generate_data.py`): a
    4-neighbour random walk from a uniform start on a square canvas, each step one of
    up/down/left/right with probability 1/4, clipped at the border; every visited pixel (the start
    itself excluded, as in NI) is a hole.

    Defaults follow NI: canvas 512, `length` = canvas_size**2 steps; the result is resized to (h, w)
    (bilinear, as NI's training-time resize, then thresholded at 0.5 so the mask stays binary; NI keeps
    the soft values). A non-square (h, w) stretches the square canvas. The walk is computed exactly in
    vectorised chunks (about 30 ms for the default 262,144 steps) instead of NI's per-step loop. Pass a
    smaller `canvas_size`/`length` for thinner or cheaper masks. Returns float32 [H, W], 1 = hole.
    """
    rng = as_rng(rng)
    h, w = check_size(h, w)
    if canvas_size < 2:
        raise ValueError(f"canvas_size must be >= 2, got {canvas_size}")
    length = canvas_size**2 if length is None else int(length)
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    rows, cols = _clipped_walk(rng, canvas_size, length)
    canvas = np.zeros((canvas_size, canvas_size), np.uint8)
    canvas[rows, cols] = 255
    if (h, w) != (canvas_size, canvas_size):
        resized = Image.fromarray(canvas).resize((w, h), resample=Image.BILINEAR)
        canvas = np.asarray(resized)
        return (canvas >= 128).astype(np.float32)
    return (canvas > 0).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# LaMa thin / medium / thick (advimman/lama configs/data_gen, saicinpainting/training/data/masks.py)
# ----------------------------------------------------------------------------------------------

# Per variant and reference resolution, from LaMa's configs/data_gen/random_{variant}_{256,512}.yaml.
# strokes: (min_times, max_times, max_width, max_len), max_angle 4 everywhere;
# boxes: (margin, bbox_min_size, bbox_max_size, min_times, max_times) or None; box_proba 0.3 against
# irregular_proba 1 (LaMa's mixed generator normalises these: boxes in 0.3/1.3 of the masks).
_LAMA_CONFIGS = {
    ("thin", 256): dict(strokes=(4, 50, 10, 40), boxes=None),
    ("thin", 512): dict(strokes=(4, 70, 20, 100), boxes=None),
    ("medium", 256): dict(strokes=(4, 5, 50, 100), boxes=(0, 10, 50, 1, 5)),
    ("medium", 512): dict(strokes=(4, 10, 100, 200), boxes=(0, 30, 150, 1, 5)),
    ("thick", 256): dict(strokes=(1, 5, 100, 200), boxes=(10, 30, 150, 1, 3)),
    ("thick", 512): dict(strokes=(1, 5, 250, 450), boxes=(10, 30, 300, 1, 4)),
}
LAMA_VARIANTS = ("thin", "medium", "thick")
LAMA_REFERENCE_SIZES = (256, 512)
_LAMA_MAX_TAMPER_AREA = 0.5
_LAMA_BOX_PROBA = 0.3 / 1.3


def lama_params(variant: str, h: int, w: int, ref: Optional[int] = None) -> dict:
    """LaMa's generator parameters for `variant` in {thin, medium, thick}, from its config
    `random_{variant}_{ref}.yaml` (ref 256 or 512), at image size (h, w).

    `ref=None` picks the config by size: 512 when min(h, w) >= 384, else 256 (what the names
    `lama_thin` etc. do; `lama_thin_256` etc. name the config). Lengths (brush width, stroke length,
    their fixed offsets 5 and 10, box sizes and margin) scale by min(h, w) / ref, rounded, at least
    1 (the margin at least 0); counts and probabilities do not. At h = w = ref every value is the
    config's own, so `lama_thin_256` at 256x256 and `lama_thin_512` at 512x512 are LaMa's masks.

    The values are the config's numbers; `lama_stroke_params` and `lama_mask` apply them as LaMa's
    generator classes do, which widens two ranges by one (see there).
    Returns dict(ref, max_angle, min_times, max_times, width_offset, max_width, len_offset, max_len,
    box_proba, boxes=None | dict(margin, min_size, max_size, min_times, max_times), max_area).
    """
    if variant not in LAMA_VARIANTS:
        raise ValueError(f"unknown LaMa variant {variant!r}; valid: 'thin', 'medium', 'thick'")
    h, w = check_size(h, w)
    side = min(h, w)
    if ref is None:
        ref = 512 if side >= 384 else 256
    if ref not in LAMA_REFERENCE_SIZES:
        raise ValueError(f"LaMa's configs exist for ref 256 and 512, got ref={ref!r}")
    scale = side / ref
    cfg = _LAMA_CONFIGS[(variant, ref)]

    def sc(v):
        return max(1, int(round(v * scale)))

    min_t, max_t, max_width, max_len = cfg["strokes"]
    out = dict(
        ref=ref,
        max_angle=4,
        min_times=min_t,
        max_times=max_t,
        width_offset=sc(5),
        max_width=sc(max_width),
        len_offset=sc(10),
        max_len=sc(max_len),
        box_proba=0.0 if cfg["boxes"] is None else _LAMA_BOX_PROBA,
        boxes=None,
        max_area=_LAMA_MAX_TAMPER_AREA,
    )
    if cfg["boxes"] is not None:
        margin, bmin, bmax, bt0, bt1 = cfg["boxes"]
        out["boxes"] = dict(
            margin=int(round(margin * scale)), min_size=sc(bmin), max_size=sc(bmax), min_times=bt0, max_times=bt1
        )
    return out


def lama_stroke_params(rng: RngLike, h: int, w: int, p: dict) -> List[List[Stroke]]:
    """Sample LaMa's `make_random_irregular_mask` strokes (without drawing) for params `p` from
    `lama_params`: a list of strokes, each a list of 1..5 connected straight segments (a `Stroke` of
    two vertices and its own brush width).

    LaMa's algorithm: min_times..max_times + 1 strokes (its `RandomIrregularMaskGenerator`, at its
    evaluation-time coefficient 1, passes max_times + 1 to `make_random_irregular_mask`, which draws
    randint(min_times, max_times + 1 + 1)), each from a uniform start point; per segment angle =
    0.01 + randint(0..max_angle-1) radians, mirrored to 2*pi - angle on even *stroke* indices;
    length = 10 + randint(0..max_len-1); width = 5 + randint(0..max_width-1); end = start +
    length * (sin, cos) (x uses sin), truncated to int and clipped to [0, W] / [0, H]; the next
    segment starts at that end.
    """
    rng = as_rng(rng)
    h, w = check_size(h, w)
    strokes = []
    for i in range(int(rng.integers(p["min_times"], p["max_times"] + 2))):
        sx, sy = int(rng.integers(0, w)), int(rng.integers(0, h))
        segments = []
        for _ in range(1 + int(rng.integers(0, 5))):
            angle = 0.01 + int(rng.integers(0, p["max_angle"]))
            if i % 2 == 0:
                angle = 2 * 3.1415926 - angle
            length = p["len_offset"] + int(rng.integers(0, p["max_len"]))
            brush_w = p["width_offset"] + int(rng.integers(0, p["max_width"]))
            ex = min(max(int(sx + length * math.sin(angle)), 0), w)
            ey = min(max(int(sy + length * math.cos(angle)), 0), h)
            segments.append(Stroke(((sx, sy), (ex, ey)), brush_w))
            sx, sy = ex, ey
        strokes.append(segments)
    return strokes


@functools.lru_cache(maxsize=None)
def _cv2_disc_half_widths(radius: int) -> np.ndarray:
    """Half-width of each row dy = -r..r of OpenCV's filled `Circle` of integer radius r (its
    midpoint algorithm, drawing.cpp): row cy + dy covers columns cx - hw[dy + r] .. cx + hw[dy + r]."""
    half = np.zeros(2 * radius + 1, np.int64)
    err, dx, dy, plus, minus = 0, radius, 0, 1, 2 * radius - 1
    while dx >= dy:
        for row, hw in ((dy, dx), (-dy, dx), (dx, dy), (-dx, dy)):
            half[row + radius] = max(half[row + radius], hw)
        dy += 1
        err += plus
        plus += 2
        if err > 0:
            err -= minus
            dx -= 1
            minus -= 2
    return half


def _slab_x_range(ys, cx, cy, c0, lo, hi):
    """Per row y (arrays, one entry per row): the x interval where lo <= cx*x + cy*y + c0 <= hi."""
    flat = np.abs(cx) < 1e-12
    safe = np.where(flat, 1.0, cx)
    a = (lo - cy * ys - c0) / safe
    b = (hi - cy * ys - c0) / safe
    v = cy * ys + c0
    inside = (v >= lo - 1e-9) & (v <= hi + 1e-9)
    x_lo = np.where(flat, np.where(inside, -np.inf, np.inf), np.minimum(a, b))
    x_hi = np.where(flat, np.where(inside, np.inf, -np.inf), np.maximum(a, b))
    return x_lo, x_hi


def draw_cv2_lines(segments: Sequence[Stroke], h: int, w: int) -> np.ndarray:
    """Rasterise straight segments (two-vertex `Stroke`s) as OpenCV's `cv2.line(mask, p0, p1, 1,
    thickness=width)` does, which is how LaMa draws its strokes; float32 [H, W] in {0, 1}.

    OpenCV (drawing.cpp, `ThickLine`, 8-connected, no sub-pixel shift) fills the rectangle around
    the segment of half-width (width + width % 2) / 2 (so widths 5 and 6 both give 3) with its
    outline, and a filled circle of radius (width + 1) // 2 at each end. Here the circles are
    OpenCV's own midpoint circles, pixel for pixel; the rectangle is every pixel centre within half
    a pixel of it (half-width + 0.5 across, 0.5 beyond each end), which stands for OpenCV's
    rounding of the span ends and its 1-pixel outline. Measured against cv2.line for widths 5-101:
    the hole area agrees within 1%, a few pixels per segment differ along the edges. Width <= 1
    (only at tiny image sizes) gives a one-pixel line without end circles.
    Every shape is a set of row spans, computed for all segments at once and summed into one
    difference array.
    """
    h, w = check_size(h, w)
    if not segments:
        return np.zeros((h, w), np.float32)
    v = np.array([(*s.vertices[0], *s.vertices[1], s.width) for s in segments], np.float64)
    x0, y0, x1, y1, t = v.T
    ti = t.astype(np.int64)
    half = np.where(ti <= 1, 0.0, (ti + (ti & 1)) / 2.0)
    length = np.hypot(x1 - x0, y1 - y0)
    span_y, span_x0, span_x1 = [], [], []
    lines = length > 0
    if np.any(lines):
        x0l, y0l, x1l, y1l, hl, ll = x0[lines], y0[lines], x1[lines], y1[lines], half[lines], length[lines]
        first = np.floor(np.minimum(y0l, y1l) - hl - 1.0).astype(np.int64)
        last = np.ceil(np.maximum(y0l, y1l) + hl + 1.0).astype(np.int64)
        counts = last - first + 1
        which = np.repeat(np.arange(len(counts)), counts)
        ys = (np.repeat(first, counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
        ys = ys.astype(np.float64)
        ux, uy = ((x1l - x0l) / ll)[which], ((y1l - y0l) / ll)[which]
        xa, ya, hw, ln = x0l[which], y0l[which], hl[which], ll[which]
        # across: |-uy (x - x0) + ux (y - y0)| <= hw + 0.5; along: -0.5 <= ux (x - x0) + uy (y - y0) <= length + 0.5
        a_lo, a_hi = _slab_x_range(ys, -uy, ux, uy * xa - ux * ya, -(hw + 0.5), hw + 0.5)
        b_lo, b_hi = _slab_x_range(ys, ux, uy, -ux * xa - uy * ya, -0.5, ln + 0.5)
        span_y.append(ys)
        span_x0.append(np.ceil(np.maximum(a_lo, b_lo) - 1e-9))
        span_x1.append(np.floor(np.minimum(a_hi, b_hi) + 1e-9))
    centre_x, centre_y, radius = np.concatenate([x0, x1]), np.concatenate([y0, y1]), np.concatenate([ti, ti])
    radius = np.where(radius > 1, (radius + 1) // 2, 0)
    for r in np.unique(radius[radius > 0]):
        r = int(r)
        sel = radius == r
        disc = _cv2_disc_half_widths(r)
        span_y.append((centre_y[sel][:, None] + np.arange(-r, r + 1)[None, :]).ravel())
        span_x0.append((centre_x[sel][:, None] - disc[None, :]).ravel())
        span_x1.append((centre_x[sel][:, None] + disc[None, :]).ravel())
    ys = np.concatenate(span_y)
    xs0 = np.maximum(np.concatenate(span_x0), 0)
    xs1 = np.minimum(np.concatenate(span_x1), w - 1)
    keep = (ys >= 0) & (ys < h) & (xs0 <= xs1)
    ys, xs0, xs1 = ys[keep].astype(np.int64), xs0[keep].astype(np.int64), xs1[keep].astype(np.int64)
    # +1 where a span starts, -1 after it ends, in rows of w + 1; every row sums to 0, so one running
    # sum over the flat array counts the spans covering each pixel
    size = h * (w + 1)
    diff = (np.bincount(ys * (w + 1) + xs0, minlength=size)
            - np.bincount(ys * (w + 1) + xs1 + 1, minlength=size))
    covered = np.cumsum(diff).reshape(h, w + 1)[:, :w] > 0
    return covered.astype(np.float32)


def _lama_boxes(rng: np.random.Generator, h: int, w: int, b: dict) -> np.ndarray:
    # LaMa's RandomRectangleMaskGenerator (coefficient 1) passes bbox_max_size + 1 to
    # make_random_rectangle_mask, which caps it by the image minus the margins and draws each side
    # with randint(min, cap) (exclusive): sides min_size..max_size inclusive unless the image is
    # smaller; 1..N boxes, top-left uniform so the box stays inside the margins.
    mask = np.zeros((h, w), np.float32)
    margin = b["margin"]
    side_end = min(b["max_size"] + 1, h - 2 * margin, w - 2 * margin)
    min_size = min(b["min_size"], side_end - 1)
    if min_size < 1:
        raise ValueError(f"image {h}x{w} is too small for LaMa boxes with margin {margin}")
    for _ in range(int(rng.integers(b["min_times"], b["max_times"] + 1))):
        bw = int(rng.integers(min_size, side_end))
        bh = int(rng.integers(min_size, side_end))
        x0 = int(rng.integers(margin, w - margin - bw + 1))
        y0 = int(rng.integers(margin, h - margin - bh + 1))
        mask[y0 : y0 + bh, x0 : x0 + bw] = 1.0
    return mask


def lama_mask(variant: str, rng: RngLike, h: int, w: int, ref: Optional[int] = None,
              max_attempts: int = 1000, return_info: bool = False):
    """One mask of LaMa's evaluation-set generator `random_{variant}_{ref}` at (h, w) (`lama_params`
    for `ref` and the scaling): float32 [H, W], 1 = hole; with `return_info`, (mask,
    dict(kind='strokes' or 'box', segments=number of segments drawn, 0 for boxes)).

    As LaMa's `MixedMaskGenerator` with `bin/gen_mask_dataset.py`: strokes (`lama_stroke_params`,
    drawn by `draw_cv2_lines`) or, for medium and thick, with probability 0.3/1.3 boxes; a mask
    covering more than `max_tamper_area` = 50% is rejected. LaMa draws 5 masks per image and keeps
    one of those under 50% at random, which gives the same distribution as redrawing until one is
    under 50%, as done here. LaMa makes masks on the image resized to a short side of ref and then
    takes a square crop; for a square image (as here, at (h, w) = (ref, ref)) the crop is the whole
    mask.
    """
    rng = as_rng(rng)
    h, w = check_size(h, w)
    p = lama_params(variant, h, w, ref)
    for _ in range(max_attempts):
        if p["boxes"] is not None and rng.random() < p["box_proba"]:
            mask, info = _lama_boxes(rng, h, w, p["boxes"]), dict(kind="box", segments=0)
        else:
            segments = [seg for stroke in lama_stroke_params(rng, h, w, p) for seg in stroke]
            mask, info = draw_cv2_lines(segments, h, w), dict(kind="strokes", segments=len(segments))
        if mask.mean() <= p["max_area"]:
            return (mask, info) if return_info else mask
    raise RuntimeError(
        f"lama_{variant}: no mask with hole area <= {p['max_area']} in {max_attempts} draws at {h}x{w}"
    )


def lama_thin(rng: RngLike, h: int, w: int) -> np.ndarray:
    """LaMa 'thin' (narrow) masks, config by size (`lama_thin_512` when min(H, W) >= 384, else
    `lama_thin_256`, lengths scaled): strokes only (256: 4..51 strokes, width 5..14, length 10..49;
    512: 4..71, width 5..24, length 10..109); area <= 50%. float32 [H, W], 1 = hole."""
    return lama_mask("thin", rng, h, w)


def lama_medium(rng: RngLike, h: int, w: int) -> np.ndarray:
    """LaMa 'medium', config by size as `lama_thin`: strokes (256: 4..6 strokes, width 5..54,
    length 10..109; 512: 4..11, 5..104, 10..209) or, in 0.3/1.3 of the masks, 1..5 boxes (256:
    sides 10..50; 512: 30..150); area <= 50%."""
    return lama_mask("medium", rng, h, w)


def lama_thick(rng: RngLike, h: int, w: int) -> np.ndarray:
    """LaMa 'thick' (wide), config by size as `lama_thin`: 1..6 strokes (256: width 5..104, length
    10..209; 512: 5..254, 10..459) or, in 0.3/1.3 of the masks, boxes with margin 10 (256: 1..3
    boxes, sides 30..150; 512: 1..4, 30..300); area <= 50%."""
    return lama_mask("thick", rng, h, w)


def _lama_named(variant: str, ref: int) -> Callable[[RngLike, int, int], np.ndarray]:
    def generator(rng: RngLike, h: int, w: int) -> np.ndarray:
        return lama_mask(variant, rng, h, w, ref=ref)

    generator.__name__ = generator.__qualname__ = f"lama_{variant}_{ref}"
    generator.__doc__ = (
        f"LaMa's `configs/data_gen/random_{variant}_{ref}.yaml` masks: exact at {ref}x{ref}; at other "
        f"sizes the lengths scale by min(H, W)/{ref} (`lama_params(..., ref={ref})`). float32 [H, W], 1 = hole.")
    return generator


# ----------------------------------------------------------------------------------------------
# CoModGAN and MAT (zsyzzsoft/co-mod-gan training/mask_generator.py; fenglinglwb/MAT
# datasets/mask_generator_{512,512_small,256,256_small}.py): boxes plus free-form brush strokes
# ----------------------------------------------------------------------------------------------

# name: (reference size, tries of half-size boxes, tries of full-size boxes, brush stroke tries),
# the counts at hole_range [0, 1] (coefficient 1): each draws randint(tries) = 0..tries-1 items.
BRUSH_BOX_CONFIGS = {
    "comodgan_512": (512, 10, 5, 20),    # co-mod-gan training/mask_generator.py RandomMask
    "mat_large_512": (512, 5, 3, 9),     # MAT datasets/mask_generator_512.py
    "mat_small_512": (512, 3, 2, 4),     # MAT datasets/mask_generator_512_small.py
    "mat_large_256": (256, 4, 2, 8),     # MAT datasets/mask_generator_256.py
    "mat_small_256": (256, 2, 2, 3),     # MAT datasets/mask_generator_256_small.py
}
# co-mod-gan metrics/metric_defaults.py: the `-h0`..`-h4` variants of its FID and P-IDS/U-IDS metrics
COMODGAN_HOLE_RANGES = {
    "h0": (0.0, 0.2),
    "h1": (0.2, 0.4),
    "h2": (0.4, 0.6),
    "h3": (0.6, 0.8),
    "h4": (0.8, 1.0),
}


def _union_box(mask: np.ndarray, rng: np.random.Generator, max_h: int, max_w: int) -> None:
    # `Fill(max_size)`: sides randint(max_size) (0..max-1), the top-left uniform so that up to half
    # the box may hang over each edge; the part inside the image becomes hole.
    h, w = mask.shape
    bw, bh = int(rng.integers(max(max_w, 1))), int(rng.integers(max(max_h, 1)))
    x = int(rng.integers(-(bw // 2), w - bw + bw // 2))
    y = int(rng.integers(-(bh // 2), h - bh + bh // 2))
    mask[max(y, 0): min(y + bh, h), max(x, 0): min(x + bw, w)] = 1.0


def brush_box_mask(
    rng: RngLike,
    h: int,
    w: int,
    *,
    ref: int,
    half_box_tries: int,
    box_tries: int,
    brush_tries: int,
    hole_range: Tuple[float, float] = (0.0, 1.0),
    max_attempts: int = 100_000,
    return_parts: bool = False,
):
    """CoModGAN's `RandomMask` (and MAT's copies with other counts): boxes plus free-form brush
    strokes, redrawn until the hole ratio is strictly inside `hole_range`. float32 [H, W], 1 = hole
    (the originals return 1 = known). With `return_parts`: (mask, brush strokes' own hole mask).

    With coef = min(hole_range[0] + hole_range[1], 1), each draw makes:
    - randint(int(half_box_tries * coef)) boxes with sides randint(S // 2) (0..S/2-1),
    - randint(int(box_tries * coef)) boxes with sides randint(S),
      each at a uniform position that lets up to half of it hang over the border (only the part in
      the image is hole);
    - randint(int(brush_tries * coef)) brush strokes (`free_form_strokes`: 4..17 segments, width
      int(U(12, 48)) px at the reference size), drawn with Pillow as a polyline plus a circle of
      diameter ~width at every vertex, the stroke canvas then flipped upside down with p 1/2 and
      left-right with p 1/2;
    and the hole is the union. A tries count of 0 (only at small coef) draws nothing.

    (h, w) = (ref, ref) is the original. At other sizes the box side limits follow each axis (H // 2
    and H for heights, W for widths), the stroke geometry follows (h, w) as in the original, and the
    brush width bounds scale by min(h, w) / ref.
    """
    rng = as_rng(rng)
    h, w = check_size(h, w)
    lo, hi = (float(v) for v in hole_range)
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"hole_range must be (lo, hi) with 0 <= lo < hi <= 1, got {hole_range!r}")
    coef = min(lo + hi, 1.0)
    scale = min(h, w) / ref
    n_half, n_full, n_brush = int(half_box_tries * coef), int(box_tries * coef), int(brush_tries * coef)
    for _ in range(max_attempts):
        mask = np.zeros((h, w), np.float32)
        for _ in range(int(rng.integers(n_half)) if n_half > 0 else 0):
            _union_box(mask, rng, h // 2, w // 2)
        for _ in range(int(rng.integers(n_full)) if n_full > 0 else 0):
            _union_box(mask, rng, h, w)
        n_strokes = int(rng.integers(n_brush)) if n_brush > 0 else 0
        strokes = free_form_strokes(rng, h, w, n_strokes, min_num_vertex=4, max_num_vertex=18,
                                    min_width=12 * scale, max_width=48 * scale)
        brush = draw_strokes(strokes, h, w)
        if rng.random() > 0.5:
            brush = brush[::-1]
        if rng.random() > 0.5:
            brush = brush[:, ::-1]
        mask = np.maximum(mask, brush)
        ratio = float(mask.mean())
        if lo < ratio < hi:
            mask = np.ascontiguousarray(mask)
            return (mask, np.ascontiguousarray(brush)) if return_parts else mask
    raise RuntimeError(f"no mask with hole ratio in ({lo}, {hi}) in {max_attempts} draws at {h}x{w}")


def _brush_box_named(name: str, hole_range: Tuple[float, float] = (0.0, 1.0),
                     suffix: str = "") -> Callable[[RngLike, int, int], np.ndarray]:
    ref, n_half, n_full, n_brush = BRUSH_BOX_CONFIGS[name]

    def generator(rng: RngLike, h: int, w: int) -> np.ndarray:
        return brush_box_mask(rng, h, w, ref=ref, half_box_tries=n_half, box_tries=n_full,
                              brush_tries=n_brush, hole_range=hole_range)

    generator.__name__ = generator.__qualname__ = name + suffix
    generator.__doc__ = (
        f"`brush_box_mask` with {name}'s counts ({n_half}, {n_full}, {n_brush}) at reference size {ref}, "
        f"hole ratio in ({hole_range[0]}, {hole_range[1]}). float32 [H, W], 1 = hole.")
    return generator


# ----------------------------------------------------------------------------------------------
# EdgeConnect (knazeri/edge-connect `src/dataset.py::load_mask`)
# ----------------------------------------------------------------------------------------------


def edgeconnect_block(rng: RngLike, h: int, w: int) -> np.ndarray:
    """EdgeConnect MASK=1: a (H//2) x (W//2) block whose top-left is uniform over every position that
    keeps it inside (0..H-H//2, 0..W-W//2 inclusive). float32 [H, W], 1 = hole."""
    rng = as_rng(rng)
    h, w = check_size(h, w)
    bh, bw = h // 2, w // 2
    x = int(rng.integers(0, w - bw + 1))
    y = int(rng.integers(0, h - bh + 1))
    mask = np.zeros((h, w), np.float32)
    mask[y : y + bh, x : x + bw] = 1.0
    return mask


def edgeconnect_half(rng: RngLike, h: int, w: int) -> np.ndarray:
    """EdgeConnect MASK=2: the left half (columns [0, W//2)) or the right half (columns [W//2, 2*(W//2)))
    with probability 1/2 each; for odd W the last column stays known, as in EdgeConnect."""
    rng = as_rng(rng)
    h, w = check_size(h, w)
    bw = w // 2
    x = 0 if rng.random() < 0.5 else bw
    mask = np.zeros((h, w), np.float32)
    mask[:, x : x + bw] = 1.0
    return mask


# ----------------------------------------------------------------------------------------------
# Shift-Net (Zhaoyi-Yan/Shift-Net_pytorch `models/shift_net/shiftnet_model.py`, `util/util.py`)
# ----------------------------------------------------------------------------------------------

SHIFTNET_OVERLAP = 4  # the original's `--overlap`


def shiftnet_center(rng: RngLike, h: int, w: int) -> np.ndarray:
    """Shift-Net's centre hole: rows [h/4 + 4, h/2 + h/4 - 4) and the same for columns (120x120 at
    68..187 for 256; `mask_type=center`, overlap 4). Deterministic; `rng` is accepted and ignored."""
    as_rng(rng)
    h, w = check_size(h, w)
    o = SHIFTNET_OVERLAP
    mask = np.zeros((h, w), np.float32)
    mask[h // 4 + o: h // 2 + h // 4 - o, w // 4 + o: w // 2 + w // 4 - o] = 1.0
    return mask


def shiftnet_rect(rng: RngLike, h: int, w: int) -> np.ndarray:
    """Shift-Net's random square (`util.py::create_rand_mask`): an (h/2 - 8) x (w/2 - 8) box whose
    top is uniform in [4, h - 4 - h/2) and left in [4, w - 4 - w/2)."""
    rng = as_rng(rng)
    h, w = check_size(h, w)
    o = SHIFTNET_OVERLAP
    top = int(rng.integers(o, max(h - o - h // 2, o + 1)))
    left = int(rng.integers(o, max(w - o - w // 2, o + 1)))
    mask = np.zeros((h, w), np.float32)
    mask[top: top + h // 2 - 2 * o, left: left + w // 2 - 2 * o] = 1.0
    return mask


def _bilinear_half_pixel(x: np.ndarray, size: int) -> np.ndarray:
    """PyTorch `F.interpolate(mode='bilinear', align_corners=False)` of a square [n, n] array."""
    n = x.shape[0]
    src = np.clip((np.arange(size) + 0.5) * (n / size) - 0.5, 0.0, None)
    i0 = np.minimum(np.floor(src).astype(np.int64), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    f = src - i0
    rows = x[i0] * (1 - f)[:, None] + x[i1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]


def shiftnet_island(rng: RngLike, h: int, w: int) -> np.ndarray:
    """Shift-Net's online random mask (`util.py::wrapper_gmask`, `create_gMask`): uniform noise on a
    0.06 * S grid, bilinearly up-sampled to S x S (S = 350 at 256, scaled with the image), holes
    where it is below 0.25; an h x w window at a random position, redrawn once if its hole covers
    not strictly between 20% and 30% (the original's two tries; the second window is kept)."""
    rng = as_rng(rng)
    h, w = check_size(h, w)
    size = max(int(round(350 * max(h, w) / 256)), max(h, w) + 2)
    low = rng.uniform(0, 255, (int(0.06 * size),) * 2)
    pattern = (_bilinear_half_pixel(low, size) / 255.0 < 0.25).astype(np.float32)
    for _ in range(2):
        top = int(rng.integers(1, size - h + 1))
        left = int(rng.integers(1, size - w + 1))
        mask = pattern[top: top + h, left: left + w]
        area = 100.0 * mask.mean()
        if 20 < area < 30:
            break
    return np.ascontiguousarray(mask)


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------

MASK_GENERATORS: Dict[str, Callable[[RngLike, int, int], np.ndarray]] = {
    "deepfill_v2_strokes": deepfill_v2_strokes,
    "deepfill_box": deepfill_box,
    "deepfill_v2_training": deepfill_v2_training,
    "glcic_box": glcic_box,
    "center_box": center_box,
    "irregular_random_walk": irregular_random_walk,
    "lama_thin": lama_thin,
    "lama_medium": lama_medium,
    "lama_thick": lama_thick,
    "edgeconnect_block": edgeconnect_block,
    "edgeconnect_half": edgeconnect_half,
    "shiftnet_center": shiftnet_center,
    "shiftnet_rect": shiftnet_rect,
    "shiftnet_island": shiftnet_island,
}
MASK_GENERATORS.update({f"lama_{v}_{r}": _lama_named(v, r) for r in LAMA_REFERENCE_SIZES for v in LAMA_VARIANTS})
MASK_GENERATORS.update({name: _brush_box_named(name) for name in BRUSH_BOX_CONFIGS})
MASK_GENERATORS.update({f"comodgan_512_{k}": _brush_box_named("comodgan_512", rng_, "_" + k)
                        for k, rng_ in COMODGAN_HOLE_RANGES.items()})


def _lookup_one(name: str) -> Callable[[RngLike, int, int], np.ndarray]:
    if name in MASK_GENERATORS:
        return MASK_GENERATORS[name]
    close = difflib.get_close_matches(str(name), MASK_GENERATORS.keys(), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown mask generator {name!r}.{hint} Valid names: {', '.join(sorted(MASK_GENERATORS))} "
        "(several joined by '+' for their union, or by '|' for a mixture)"
    )


def _resolve_union(name: str) -> Callable[[RngLike, int, int], np.ndarray]:
    fns = [_lookup_one(p.strip()) for p in name.split("+")]
    if len(fns) == 1:
        return fns[0]

    def union(rng: RngLike, h: int, w: int) -> np.ndarray:
        rng = as_rng(rng)
        out = fns[0](rng, h, w)
        for fn in fns[1:]:
            out = np.maximum(out, fn(rng, h, w))
        return out

    return union


def resolve(name: str) -> Callable[[RngLike, int, int], np.ndarray]:
    """The generator a name denotes: a registered name, a '+'-union of them, or a '|'-mixture of
    those ('|' binds loosest: 'a|b+c' draws `a` or the union `b+c`)."""
    if not isinstance(name, str):
        raise TypeError(f"mask generator name must be a str, got {type(name).__name__}: {name!r}")
    choices = [_resolve_union(p) for p in name.split("|")]
    if len(choices) == 1:
        return choices[0]

    def mixture(rng: RngLike, h: int, w: int) -> np.ndarray:
        rng = as_rng(rng)
        return choices[int(rng.integers(len(choices)))](rng, h, w)

    return mixture


def make_mask(name: str, rng: RngLike, h: int, w: int) -> np.ndarray:
    """Draw one mask from the generator registered as `name`: float32 [H, W] in {0,1}, 1 = hole.

    `name` may join several registered names with '+' (e.g. 'deepfill_v2_training+deepfill_v2_strokes'):
    the union of one draw from each, in order, from the same stream; this reaches hole areas (50-60%)
    that no single published generator produces. Names joined with '|' (e.g.
    'lama_medium|deepfill_v2_training') are a mixture: the stream first picks one of them uniformly
    (one integer draw), then draws that one's mask. An unknown name raises ValueError listing the
    valid names and the nearest one."""
    return resolve(name)(as_rng(rng), h, w)
