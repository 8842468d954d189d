"""Batch fields: what the input pipeline computes for each example, as a family declares it.

A family's `batch_spec()` maps batch keys to `Field`s. The pipeline crops and flips an example,
draws its hole mask, and then computes every field of the spec from the (flipped) image and mask,
so edges, grey images and hole boxes always agree with the image they came from. Training,
evaluation, the training previews and the checkpoint's abstract state all read the same spec.

Every spec holds `image` and `mask`, the two keys the whole library shares:
  image  float32 [H, W, 3] RGB in [0, 1]
  mask   float32 [H, W, 1], 1 = hole, 0 = known
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import numpy as np

#: (image float32 [H, W, 3] in [0, 1], hole float32 [H, W, 1], rng) -> the field's array
Compute = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Field:
    """One batch entry: its per-example shape for an (H, W) crop, dtype and how to compute it."""

    shape: Callable[[int, int], tuple[int, ...]]
    dtype: str
    compute: Compute


def _hw(channels: int) -> Callable[[int, int], tuple[int, ...]]:
    return lambda h, w: (h, w, channels)


def image() -> Field:
    """The RGB image itself, float32 [H, W, 3] in [0, 1]."""
    return Field(_hw(3), "float32", lambda img, hole, rng: img)


def hole() -> Field:
    """The hole mask, float32 [H, W, 1], 1 = hole."""
    return Field(_hw(1), "float32", lambda img, hole, rng: hole)


def grey_image(img: np.ndarray) -> np.ndarray:
    """scikit-image's `rgb2gray` (ITU-R 709 luma) of an RGB float image: float32 [H, W, 1]."""
    from skimage.color import rgb2gray
    return rgb2gray(np.asarray(img, np.float32)).astype(np.float32)[..., None]


def canny(img: np.ndarray, sigma: float, rng: np.random.Generator | None = None,
          known: np.ndarray | None = None) -> np.ndarray:
    """scikit-image's Canny edges of `rgb2gray(img)`: float32 [H, W, 1] in {0, 1}.

    sigma > 0 as given; sigma == 0 draws an integer sigma in 1..4 from `rng` (EdgeConnect's
    `SIGMA: 0`); sigma < 0 gives no edges. `known` ([H, W] or [H, W, 1], True = known pixel)
    restricts the detector to those pixels (scikit-image's `mask=`), as EdgeConnect does at test
    time so that no edge is found on the hole's border."""
    from skimage.feature import canny as sk_canny
    h, w = img.shape[:2]
    if sigma < 0:
        return np.zeros((h, w, 1), np.float32)
    if sigma == 0:
        if rng is None:
            raise ValueError("canny with sigma 0 (random sigma per image) needs an rng")
        sigma = float(rng.integers(1, 5))
    grey = grey_image(img)[..., 0]
    kw = {} if known is None else {"mask": np.asarray(known).reshape(h, w) > 0.5}
    return sk_canny(grey, sigma=float(sigma), **kw).astype(np.float32)[..., None]


def canny_edges(sigma: float = 2.0) -> Field:
    """Canny edges of the whole ground truth (see `canny` for the sigma rules), [H, W, 1] {0, 1}."""
    return Field(_hw(1), "float32", lambda img, hole, rng: canny(img, sigma, rng))


def grey() -> Field:
    """The greyscale image (`rgb2gray`), float32 [H, W, 1] in [0, 1]."""
    return Field(_hw(1), "float32", lambda img, hole, rng: grey_image(img))


def box_of(hole_mask: np.ndarray) -> np.ndarray:
    """(top, left, height, width) int32 of the bounding box of the hole pixels (> 0.5); all zeros
    for a mask without a hole."""
    m = np.asarray(hole_mask).reshape(hole_mask.shape[0], hole_mask.shape[1]) > 0.5
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if not len(rows):
        return np.zeros(4, np.int32)
    return np.array([rows[0], cols[0], rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1], np.int32)


def hole_box() -> Field:
    """The bounding box of the hole, int32 [4] = (top, left, height, width)."""
    return Field(lambda h, w: (4,), "int32", lambda img, hole, rng: box_of(hole))


def default_spec() -> dict[str, Field]:
    return {"image": image(), "mask": hole()}


def check_spec(spec: Mapping[str, Field], owner: str = "batch_spec") -> None:
    for key in ("image", "mask"):
        if key not in spec:
            raise ValueError(f"{owner} must contain {key!r} (got keys {sorted(spec)})")


def compute_example(spec: Mapping[str, Field], img: np.ndarray, hole_mask: np.ndarray,
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every field of `spec` for one example (image float32 [H, W, 3] in [0, 1], hole [H, W, 1])."""
    h, w = img.shape[:2]
    out = {}
    for key, f in spec.items():
        value = np.asarray(f.compute(img, hole_mask, rng), dtype=f.dtype)
        if value.shape != f.shape(h, w):
            raise ValueError(f"batch field {key!r} computed shape {value.shape}, its spec says "
                             f"{f.shape(h, w)}")
        out[key] = value
    return out


def compute_batch(spec: Mapping[str, Field], images: np.ndarray, holes: np.ndarray,
                  rngs: Sequence[np.random.Generator]) -> dict[str, np.ndarray]:
    """Fields for a batch: images float32 [B, H, W, 3] in [0, 1], holes [B, H, W, 1], one rng per
    example. Returns each field stacked on a leading batch axis."""
    rows = [compute_example(spec, images[i], holes[i], rngs[i]) for i in range(len(images))]
    return {k: np.stack([r[k] for r in rows]) for k in spec}


def example_batch(spec: Mapping[str, Field], batch: int, height: int, width: int) -> dict[str, np.ndarray]:
    """A batch of zeros with the spec's shapes and dtypes (to initialise networks)."""
    return {k: np.zeros((batch,) + f.shape(height, width), f.dtype) for k, f in spec.items()}


def abstract_batch(spec: Mapping[str, Field], batch: int, height: int, width: int,
                   leading: tuple[int, ...] = ()):
    """`jax.ShapeDtypeStruct`s of a batch of the spec (optionally with extra leading axes)."""
    import jax
    return {k: jax.ShapeDtypeStruct(leading + (batch,) + f.shape(height, width), np.dtype(f.dtype))
            for k, f in spec.items()}
