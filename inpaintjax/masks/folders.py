"""Mask folders grouped as PConv's evaluation groups them: by the measured hole ratio into the six
buckets (0.01, 0.1], ..., (0.5, 0.6], each split into masks with and without holes near the border.

Liu et al. (PConv, ECCV 2018, section 4) evaluate on 512x512 masks in six hole-to-image area ratios
and split each into masks whose holes all lie at least 50 pixels from the image border ("without
border", N/B in their Table 1) and the others ("with border", B). The NVIDIA Irregular Mask Dataset
(the PConv test set, `testing_mask_dataset/NNNNN.png`, CC BY-NC-SA 4.0) is said to be ordered in
such groups, but the grouping is not stated in its files, so here every mask's group is measured
from its pixels.

The border rule: a hole pixel at row r, column c of an H x W mask lies r pixels from the top edge
(rows 0..r-1 between it and the edge), H - 1 - r from the bottom, c from the left, W - 1 - c from
the right. The distance is scaled to a 512-pixel reference per axis (rows by 512 / H, columns by
512 / W) so that a mask resized with nearest neighbour keeps its group: 50 px at 512, 25 px at 256.
A mask belongs to "without border" when every hole pixel is at least 50 reference pixels from every
edge, else to "with border". A mask with no hole has no border distance (inf) and no bucket.

Polarity is a property of the source, so it is an argument and never guessed:
- 'white_hole' (white / non-zero = hole): the NVIDIA irregular masks as EdgeConnect reads them
  (knazeri/edge-connect `src/dataset.py::load_mask`: `mask > 0` is hole), EdgeConnect's, LaMa's and
  DeepFill's mask files, and inpaintjax's own (`build_eval_mask_set`).
- 'black_hole' (black = hole, white = known): CoModGAN's and MAT's mask files (their generators
  return 1 = known, 0 = hole; MAT's README: "0 and 1 values in a mask refer to masked and
  remained pixels").
`MASK_SOURCE_POLARITY` maps those source names to their polarity; either a polarity or a source
name is accepted. A pixel's value is read by `inpaintjax.image_io.read_mask`'s rule (bright from
half of the value range up; a 0/1 label map: 1 is bright); 'white_hole' takes the bright pixels as
hole, 'black_hole' the others.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from inpaintjax import image_io
from inpaintjax.masks.buckets import BUCKETS, bucket_name, bucket_of

POLARITIES = ("white_hole", "black_hole")
MASK_SOURCE_POLARITY = {
    "nvidia": "white_hole",
    "edgeconnect": "white_hole",
    "lama": "white_hole",
    "deepfill": "white_hole",
    "inpaintjax": "white_hole",
    "comodgan": "black_hole",
    "mat": "black_hole",
}
#: PConv's border margin, in pixels of a 512 x 512 mask
BORDER_MARGIN = 50.0
BORDER_REFERENCE = 512


def resolve_polarity(polarity: str) -> str:
    """'white_hole' or 'black_hole' for a polarity or a source name in MASK_SOURCE_POLARITY."""
    if polarity in POLARITIES:
        return polarity
    if isinstance(polarity, str) and polarity.lower() in MASK_SOURCE_POLARITY:
        return MASK_SOURCE_POLARITY[polarity.lower()]
    sources = ", ".join(f"{k} ({v})" for k, v in MASK_SOURCE_POLARITY.items())
    raise ValueError(f"unknown mask polarity {polarity!r}: pass 'white_hole' (white = hole) or "
                     f"'black_hole' (black = hole), or a source name: {sources}")


def read_polarity_mask(path: str, polarity: str) -> np.ndarray:
    """Read a mask file with the given polarity: float32 [H, W] in {0, 1}, 1 = hole.

    Errors (missing, not an image, damaged) are image_io's and name the file. image_io's warning
    that a mask covers more than 90% of its image is about white = hole; for 'black_hole' it is
    re-issued only when the hole (the dark part) covers more than 90%."""
    polarity = resolve_polarity(polarity)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bright = image_io.read_mask(path, "mask")
    hole = bright if polarity == "white_hole" else 1.0 - bright
    for w in caught:
        coverage = "as hole (1 = hole, white = hole)" in str(w.message)
        if not coverage or polarity == "white_hole":
            warnings.warn(w.message, stacklevel=2)
    if polarity == "black_hole" and hole.size and hole.mean() > image_io.MASK_COVERAGE_WARNING:
        warnings.warn(f"mask {path} marks {hole.mean():.0%} of the image as hole with polarity "
                      f"black_hole (black = hole); check the polarity", stacklevel=2)
    return hole.astype(np.float32)


def load_mask(path: str, size: Union[None, int, Tuple[int, int]] = None, polarity: str = "white_hole") -> np.ndarray:
    """Read a user's mask file by `image_io.read_mask`'s rules (any format and channel count; a
    pixel is bright from half of the value range up; 0/1 label maps have 1 = bright). `polarity`
    says which is hole: 'white_hole' (the default: NVIDIA, EdgeConnect, LaMa, DeepFill masks) or
    'black_hole' (CoModGAN, MAT), or a source name (MASK_SOURCE_POLARITY). When `size` = (H, W) or
    an int for a square is given, the mask is resized with nearest neighbour. Returns float32
    [H, W] in {0, 1}, 1 = hole."""
    from PIL import Image
    from inpaintjax.masks.generators import check_size

    hole = read_polarity_mask(path, polarity)
    if size is not None:
        if isinstance(size, (int, np.integer)):
            size = (int(size), int(size))
        th, tw = check_size(*size)
        if hole.shape != (th, tw):
            img = Image.fromarray((hole > 0.5).astype(np.uint8) * 255).resize((tw, th), resample=Image.NEAREST)
            hole = np.asarray(img) > 0
    return hole.astype(np.float32)


def border_distance(mask: np.ndarray, reference: int = BORDER_REFERENCE) -> float:
    """Fewest pixels between a hole pixel of `mask` ([H, W], > 0.5 = hole) and the nearest image
    edge, in pixels of a `reference`-sized mask (rows scaled by reference / H, columns by
    reference / W); inf when there is no hole. A hole in row 0 gives 0."""
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 2:
        raise ValueError(f"border_distance expects a [H, W] mask, got shape {m.shape}")
    h, w = m.shape
    hole = m > 0.5
    rows = np.flatnonzero(hole.any(axis=1))
    cols = np.flatnonzero(hole.any(axis=0))
    if rows.size == 0:
        return float("inf")
    dy = min(rows[0], h - 1 - rows[-1]) * (reference / h)
    dx = min(cols[0], w - 1 - cols[-1]) * (reference / w)
    return float(min(dy, dx))


@dataclasses.dataclass(frozen=True)
class MaskInfo:
    """One mask file: its path, size (H, W), hole ratio, PConv bucket (-1 = in none), border
    distance (reference pixels, `border_distance`) and whether it is in the 'with border' group."""

    path: str
    size: Tuple[int, int]
    hole_ratio: float
    bucket: int
    border_distance: float
    with_border: bool

    @property
    def group(self) -> Optional[Tuple[int, bool]]:
        """(bucket, with_border), or None outside every bucket."""
        return None if self.bucket < 0 else (self.bucket, self.with_border)


def group_name(bucket: int, with_border: bool) -> str:
    """'10-20%, with border' / '10-20%, without border' (PConv's B and N/B columns)."""
    return f"{bucket_name(bucket)}, {'with' if with_border else 'without'} border"


@dataclasses.dataclass(frozen=True)
class MaskGroups:
    """The masks of a folder by PConv group. `groups[(bucket, with_border)]` lists the MaskInfo of
    that group (all 12 keys present, in file order); `outside` the masks in no bucket (hole ratio
    <= 0.01 or > 0.6); `masks` every mask in file order."""

    folder: str
    polarity: str
    masks: Tuple[MaskInfo, ...]
    groups: Dict[Tuple[int, bool], Tuple[MaskInfo, ...]]
    outside: Tuple[MaskInfo, ...]

    def counts(self) -> Dict[str, int]:
        """{group_name: number of masks}, the 12 groups in bucket order, then 'outside'."""
        out = {group_name(b, wb): len(v) for (b, wb), v in self.groups.items()}
        out["outside"] = len(self.outside)
        return out

    def paths(self, bucket: int, with_border: bool) -> List[str]:
        """The file paths of one group."""
        return [m.path for m in self.groups[(bucket, with_border)]]


def mask_info(path: str, polarity: str, size: Union[None, int, Tuple[int, int]] = None,
              margin: float = BORDER_MARGIN, reference: int = BORDER_REFERENCE) -> MaskInfo:
    """Measure one mask file (read with `polarity`, optionally resized to `size` with nearest
    neighbour first): hole ratio, bucket and border group."""
    from inpaintjax.masks.buckets import hole_ratio

    hole = load_mask(path, size, polarity)
    ratio = hole_ratio(hole)
    dist = border_distance(hole, reference)
    return MaskInfo(path=path, size=tuple(hole.shape), hole_ratio=ratio, bucket=int(bucket_of(ratio)),
                    border_distance=dist, with_border=bool(dist < margin))


def group_mask_folder(folder: str, polarity: str, *, size: Union[None, int, Tuple[int, int]] = None,
                      recursive: bool = False, margin: float = BORDER_MARGIN,
                      reference: int = BORDER_REFERENCE) -> MaskGroups:
    """Group every mask file in `folder` (image_io.list_images: PNG, JPEG, BMP, TIFF, WebP, GIF;
    names starting with '.' skipped; sub-folders with `recursive`) by PConv's rule.

    `polarity`: 'white_hole', 'black_hole' or a source name ('nvidia', 'edgeconnect', 'lama',
    'comodgan', 'mat', ...: MASK_SOURCE_POLARITY). `size`: measure each mask after a nearest resize
    to (H, W) (or an int side), as it will be used; default, at its own size. `margin`/`reference`:
    the border margin in pixels of a reference-sized mask (PConv: 50 of 512).

    Returns MaskGroups. Raises FileNotFoundError / NotADirectoryError for a missing folder,
    ValueError for a folder without mask files, and image_io's errors (naming the file) for an
    unreadable one."""
    polarity = resolve_polarity(polarity)
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise FileNotFoundError(f"mask folder {folder!r} does not exist")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"mask folder {folder!r} is not a directory")
    names = image_io.list_images(folder, recursive=recursive)
    if not names:
        hint = "" if recursive else "; files in sub-folders need recursive=True"
        raise ValueError(f"mask folder {folder!r} holds no image files (extensions: "
                         f"{', '.join(image_io.IMAGE_EXTENSIONS)}){hint}")
    infos = tuple(mask_info(os.path.join(folder, n), polarity, size, margin, reference) for n in names)
    groups = {(b, wb): tuple(m for m in infos if m.group == (b, wb))
              for b in range(len(BUCKETS)) for wb in (True, False)}
    outside = tuple(m for m in infos if m.group is None)
    return MaskGroups(folder=folder, polarity=polarity, masks=infos, groups=groups, outside=outside)
