"""Pictures of inpainting results: the TensorBoard preview grid (input | mask | output | truth |
family extras, `image_grid`) and the labelled picture of runs/<x>/samples.png (`mark_hole`,
`labelled_grid`, `save_png`). Arrays in, uint8 RGB arrays out (Pillow draws the labels)."""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
from PIL import Image


def _to_uint8(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    if x.shape[-1] == 2:  # e.g. a flow field without a colour rendering: show its magnitude
        x = np.repeat(np.linalg.norm(x, axis=-1, keepdims=True), 3, axis=-1)
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _fit(x: np.ndarray, h: int, w: int) -> np.ndarray:
    if x.shape[:2] == (h, w):
        return x
    return np.asarray(Image.fromarray(x).resize((w, h), Image.NEAREST))


def image_grid(image: np.ndarray, mask: np.ndarray, output: np.ndarray,
               extras: Mapping[str, np.ndarray] | None = None, gap: int = 2) -> np.ndarray:
    """One row per example: input (holes shown white) | mask | output | truth | extras...

    image/output float [B, H, W, 3] in [0, 1]; mask [B, H, W, 1] (1 = hole); extras [B, h, w, C]
    in [0, 1] (resized to H x W). Returns uint8 [rows, cols, 3] with white gaps."""
    image, mask, output = (np.asarray(a, np.float32) for a in (image, mask, output))
    b, h, w, _ = image.shape
    cols = [image * (1.0 - mask) + mask, mask, output, image]
    cols += [np.asarray(v) for _, v in sorted((extras or {}).items())]
    rows = []
    for i in range(b):
        tiles = [_fit(_to_uint8(c[i]), h, w) for c in cols]
        sep = np.full((h, gap, 3), 255, np.uint8)
        row = tiles[0]
        for t in tiles[1:]:
            row = np.concatenate([row, sep, t], axis=1)
        rows.append(row)
    grid = rows[0]
    for r in rows[1:]:
        grid = np.concatenate([grid, np.full((gap, grid.shape[1], 3), 255, np.uint8), r], axis=0)
    return grid


def grid_columns(extras: Sequence[str] = ()) -> list[str]:
    return ["input", "mask", "output", "truth"] + sorted(extras)


HOLE_TINT = np.array([1.0, 0.35, 0.75], np.float32)   # magenta: rare in photographs
HOLE_EDGE = np.array([0.85, 0.0, 0.45], np.float32)


def mark_hole(image: np.ndarray, mask: np.ndarray, scale: int = 1) -> np.ndarray:
    """The input as a person should see it: hole pixels tinted magenta over a light checker (so
    the hole reads as missing, not as a colour of the photo) and outlined. image float [H,W,3] in
    [0,1], mask [H,W,1] (1 = hole). Returns uint8 [H*scale, W*scale, 3], enlarged by whole pixels
    first so the outline is one thin line at the displayed size."""
    img = np.repeat(np.repeat(np.asarray(image, np.float32), scale, 0), scale, 1)
    hole = np.repeat(np.repeat(np.asarray(mask, np.float32)[..., 0] > 0.5, scale, 0), scale, 1)
    yy, xx = np.mgrid[0:hole.shape[0], 0:hole.shape[1]]
    checker = (((yy // 4) + (xx // 4)) % 2).astype(np.float32)[..., None]
    tint = HOLE_TINT * (0.80 + 0.15 * checker)
    out = np.where(hole[..., None], tint, img)
    pad = np.pad(hole, 1, mode="edge")
    edge = hole & ~(pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:])
    out[edge] = HOLE_EDGE
    return _to_uint8(out)


def labelled_grid(columns: Sequence[tuple[str, np.ndarray]], scale: int = 1, gap: int = 4,
                  font_size: int = 14) -> np.ndarray:
    """A table of images with a text label above each column (Pillow's built-in font).

    columns: (label, tiles) with tiles uint8 [B, h, w, 3] already at display size, or float
    [B, H, W, C] in [0, 1] enlarged here by `scale` (whole pixels, no smoothing). Returns uint8
    [header + B rows, cols, 3] on white."""
    from PIL import ImageDraw, ImageFont

    tiles = []
    for _, t in columns:
        t = np.asarray(t)
        if t.dtype != np.uint8:
            t = np.stack([_to_uint8(x) for x in t])
            t = np.repeat(np.repeat(t, scale, axis=1), scale, axis=2)
        tiles.append(t)
    b, h, w = tiles[0].shape[:3]
    if any(t.shape[:3] != (b, h, w) for t in tiles):
        raise ValueError(f"labelled_grid: every column must be [B, h, w, 3] of one size, got "
                         f"{[t.shape for t in tiles]}")
    try:
        font = ImageFont.load_default(size=font_size)
    except TypeError:  # Pillow built without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    head = font_size + 2 * gap + 2
    n = len(tiles)
    grid = np.full((head + b * (h + gap), n * (w + gap) + gap, 3), 255, np.uint8)
    for j, t in enumerate(tiles):
        x0 = gap + j * (w + gap)
        for i in range(b):
            y0 = head + i * (h + gap)
            grid[y0:y0 + h, x0:x0 + w] = t[i, ..., :3]
    canvas = Image.fromarray(grid)
    draw = ImageDraw.Draw(canvas)
    for j, (label, _) in enumerate(columns):
        x0 = gap + j * (w + gap)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        draw.text((x0 + max(0, (w - (right - left)) // 2), gap), label, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def save_png(array: np.ndarray, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(array).save(path)
