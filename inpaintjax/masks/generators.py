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
| `lama_thin`, `lama_medium`, `lama_thick` | LaMa `configs/data_gen/random_*_{256,512}.yaml` | line strokes (+ boxes), area <= 50% |
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
    length clip(Normal(r, floor(r/2)), 0, 2r) with r = sqrt(H^2+W^2)/8, width int(U(12, 40)) = 12..39.
    Widths are absolute pixels as in the original (not scaled with the image size), so small images get
    relatively thick strokes.

    The original reads PIL's `size` (which is (W, H)) as (h, w), which swaps the axes of the start point
    and of the clipping bounds; that is harmless only for square images. Here x (column) is sampled and
    clipped in [0, W] and y (row) in [0, H], so non-square images are covered correctly.
    The original's intended random flips are no-ops (the flipped image is discarded), so none are done.
    """
    rng = as_rng(rng)
    h, w = check_size(h, w)
    mean_angle = 2 * math.pi / 5
    angle_range = 2 * math.pi / 15
    average_radius = math.sqrt(h * h + w * w) / 8
    strokes = []
    for _ in range(int(rng.integers(1, max_strokes + 1))):
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
_LAMA_MAX_TAMPER_AREA = 0.5
_LAMA_BOX_PROBA = 0.3 / 1.3


def lama_params(variant: str, h: int, w: int) -> dict:
    """LaMa's generator parameters for `variant` in {thin, medium, thick} at image size (h, w).

    The reference config is LaMa's 512 one when min(h, w) >= 384, else its 256 one; lengths (brush
    width, stroke length, their fixed offsets 5 and 10, box sizes and margin) scale by
    min(h, w) / reference, counts do not. At exactly 256 or 512 the values are LaMa's own.
    Returns dict(max_angle, min_times, max_times, width_offset, max_width, len_offset, max_len,
    box_proba, boxes=None | dict(margin, min_size, max_size, min_times, max_times), max_area, ref).
    """
    if variant not in ("thin", "medium", "thick"):
        raise ValueError(f"unknown LaMa variant {variant!r}; valid: 'thin', 'medium', 'thick'")
    h, w = check_size(h, w)
    side = min(h, w)
    ref = 512 if side >= 384 else 256
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

    LaMa's algorithm: `times` ~ randint(min_times..max_times) strokes, each from a uniform start point;
    per segment angle = 0.01 + randint(0..max_angle-1) radians, mirrored to 2*pi - angle on even
    *stroke* indices; length = 10 + randint(0..max_len-1); width = 5 + randint(0..max_width-1);
    end = start + length * (sin, cos) (x uses sin), truncated to int and clipped to [0, W] / [0, H];
    the next segment starts at that end.
    """
    rng = as_rng(rng)
    h, w = check_size(h, w)
    strokes = []
    for i in range(int(rng.integers(p["min_times"], p["max_times"] + 1))):
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


def _lama_lines(rng: np.random.Generator, h: int, w: int, p: dict) -> np.ndarray:
    # LaMa draws each segment with cv2.line, whose thick lines have round caps; `draw_strokes` gives a
    # PIL line of the same width plus a filled circle of ~that diameter at both ends.
    return draw_strokes([seg for st in lama_stroke_params(rng, h, w, p) for seg in st], h, w)


def _lama_boxes(rng: np.random.Generator, h: int, w: int, b: dict) -> np.ndarray:
    # LaMa's make_random_rectangle_mask: 1..N boxes, sides randint(min, max) (exclusive max, capped by
    # the image minus margins), top-left uniform so the box stays inside the margins.
    mask = np.zeros((h, w), np.float32)
    margin = b["margin"]
    max_size = min(b["max_size"], h - 2 * margin, w - 2 * margin)
    min_size = min(b["min_size"], max_size - 1)
    if min_size < 1:
        raise ValueError(f"image {h}x{w} is too small for LaMa boxes with margin {margin}")
    for _ in range(int(rng.integers(b["min_times"], b["max_times"] + 1))):
        bw = int(rng.integers(min_size, max_size))
        bh = int(rng.integers(min_size, max_size))
        x0 = int(rng.integers(margin, w - margin - bw + 1))
        y0 = int(rng.integers(margin, h - margin - bh + 1))
        mask[y0 : y0 + bh, x0 : x0 + bw] = 1.0
    return mask


def _lama(variant: str, rng: RngLike, h: int, w: int, max_attempts: int = 100) -> np.ndarray:
    rng = as_rng(rng)
    h, w = check_size(h, w)
    p = lama_params(variant, h, w)
    for _ in range(max_attempts):
        if p["boxes"] is not None and rng.random() < p["box_proba"]:
            mask = _lama_boxes(rng, h, w, p["boxes"])
        else:
            mask = _lama_lines(rng, h, w, p)
        # LaMa's gen_mask_dataset drops masks covering more than max_tamper_area of the image.
        if mask.mean() <= p["max_area"]:
            return mask
    raise RuntimeError(
        f"lama_{variant}: no mask with hole area <= {p['max_area']} in {max_attempts} draws at {h}x{w}"
    )


def lama_thin(rng: RngLike, h: int, w: int) -> np.ndarray:
    """LaMa 'thin' evaluation masks: strokes only (256: 4..50 strokes, width 5..14, length 10..49;
    512: 4..70, width 5..24, length 10..109); masks over 50% area are redrawn. float32 [H, W], 1 = hole."""
    return _lama("thin", rng, h, w)


def lama_medium(rng: RngLike, h: int, w: int) -> np.ndarray:
    """LaMa 'medium': strokes (256: 4..5 strokes, width < 55, length < 110; 512: 4..10, < 105, < 210)
    or, in 0.3/1.3 of the masks, 1..5 boxes (256: sides 10..49; 512: 30..149); area <= 50%."""
    return _lama("medium", rng, h, w)


def lama_thick(rng: RngLike, h: int, w: int) -> np.ndarray:
    """LaMa 'thick': 1..5 strokes (256: width < 105, length < 210; 512: < 255, < 460) or, in 0.3/1.3
    of the masks, boxes with margin 10 (256: 1..3 boxes, sides 30..149; 512: 1..4, 30..299);
    area <= 50%."""
    return _lama("thick", rng, h, w)


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
