"""Classical (non-learned) hole fills: the rows a reader expects beside a learned model's numbers.

    from inpaintjax import baselines
    filled = baselines.fill("biharmonic", images, masks)   # [B,H,W,3] float32 in [0, 1]

Every fill takes images float [B,H,W,3] in [0, 1] (integer images, NaN/Inf and values outside
[0, 1] are refused with a ValueError) and masks [B,H,W,1] (1 = hole, > 0.5 counts) and returns
float32 [B,H,W,3] in [0, 1] whose known pixels are the input's, exactly:

  mean        every hole pixel = the mean colour of the image's known pixels.
  biharmonic  the smooth (biharmonic) continuation of the known pixels into the hole, per channel:
              scikit-image `skimage.restoration.inpaint_biharmonic` (Damelin & Hoang 2018).
  telea       fast-marching fill (Telea, "An Image Inpainting Technique Based on the Fast Marching
              Method", 2004): OpenCV `cv2.inpaint(..., cv2.INPAINT_TELEA)` on 8-bit RGB, from the
              optional `opencv-python-headless` wheel (`pip install 'inpaintjax[baselines]'`).
  patchmatch  PatchMatch (Barnes et al., SIGGRAPH 2009) coarse-to-fine patch-based completion with
              7x7 patches, a JAX program (`inpaintjax.patchmatch`, docs/patchmatch.md); randomised:
              `seed` picks its random stream (the other fills ignore it).

An image without known pixels has nothing to continue: every fill then returns zeros in the hole
(the mean fill's convention), and an image without hole pixels is returned unchanged.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

TELEA_RADIUS = 3  # px neighbourhood of each filled pixel; OpenCV's documentation example uses 3

OPENCV_MISSING = ("the Telea baseline needs OpenCV: pip install opencv-python-headless "
                  "(or pip install 'inpaintjax[baselines]')")


def _check(images, masks) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images)
    if images.dtype.kind in "iu":
        raise ValueError(f"images: {images.dtype} values; the fills take float images in [0, 1]: "
                         f"pass images / 255 (8-bit) or images / 65535 (16-bit)")
    images = images.astype(np.float32)
    bad = ~np.isfinite(images)
    if bad.any():
        raise ValueError(f"images: {int(bad.sum())} NaN or Inf value{'s' if bad.sum() > 1 else ''} "
                         f"(first at index {tuple(int(i) for i in np.argwhere(bad)[0])}); the fills "
                         f"take finite float images in [0, 1]")
    if images.size and (images.min() < -1e-6 or images.max() > 1.0 + 1e-6):
        raise ValueError(f"images: values in [{images.min():.4g}, {images.max():.4g}] are outside "
                         f"[0, 1]; the fills take float images in [0, 1] (for 0..255 data pass "
                         f"images / 255)")
    masks = np.asarray(masks, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images: expected [B,H,W,3] float in [0, 1], got shape {images.shape}")
    if masks.shape != images.shape[:3] + (1,):
        raise ValueError(f"masks: expected [B,H,W,1] = {images.shape[:3] + (1,)} to match the "
                         f"images, got shape {masks.shape}")
    return images, (masks > 0.5).astype(np.float32)


def _composite(images: np.ndarray, masks: np.ndarray, fills: np.ndarray) -> np.ndarray:
    # a select, not a blend: known pixels come back bit for bit
    return np.where(masks > 0.5, np.clip(fills, 0.0, 1.0), images).astype(np.float32)


def mean_fill(images, masks) -> np.ndarray:
    """Each hole pixel = the mean colour of that image's known pixels (0 if it has none)."""
    images, masks = _check(images, masks)
    known = 1.0 - masks
    mean = (images * known).sum(axis=(1, 2), keepdims=True) / np.maximum(
        known.sum(axis=(1, 2), keepdims=True), 1.0)
    return _composite(images, masks, np.broadcast_to(mean, images.shape))


def _per_image(images, masks, one: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    images, masks = _check(images, masks)
    fills = mean_fill(images, masks)
    for i in range(len(images)):
        hole = masks[i, ..., 0] > 0.5
        if hole.any() and not hole.all():
            fills[i] = one(images[i], hole)
    return _composite(images, masks, fills)


def biharmonic_fill(images, masks) -> np.ndarray:
    """scikit-image's biharmonic inpainting of every image, channels solved independently."""
    from skimage.restoration import inpaint_biharmonic

    return _per_image(images, masks, lambda im, hole: inpaint_biharmonic(im, hole, channel_axis=-1))


def have_opencv() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def telea_fill(images, masks, radius: int = TELEA_RADIUS) -> np.ndarray:
    """OpenCV's Telea fast-marching inpainting. The image is quantised to 8 bits for OpenCV (its
    Telea takes 8-bit colour images); known pixels are restored from the float input."""
    try:
        import cv2
    except ImportError:
        raise ImportError(OPENCV_MISSING) from None

    def one(im, hole):
        u8 = np.round(np.clip(im, 0.0, 1.0) * 255.0).astype(np.uint8)
        out = cv2.inpaint(u8, hole.astype(np.uint8), float(radius), cv2.INPAINT_TELEA)
        return out.astype(np.float32) / 255.0

    return _per_image(images, masks, one)


def patchmatch_fill(images, masks, seed: int = 0) -> np.ndarray:
    """PatchMatch completion (inpaintjax.patchmatch, patch radius 3) of the whole batch at once;
    `seed` picks the random search's stream (same seed, same output)."""
    from inpaintjax import patchmatch

    images, masks = _check(images, masks)
    return _composite(images, masks, patchmatch.inpaint(images, masks, seed=seed))


BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "mean": mean_fill,
    "biharmonic": biharmonic_fill,
    "telea": telea_fill,
    "patchmatch": patchmatch_fill,
}

DESCRIPTIONS = {
    "mean": "mean colour of the known pixels",
    "biharmonic": "biharmonic (scikit-image inpaint_biharmonic)",
    "telea": "Telea fast marching (OpenCV cv2.inpaint)",
    "patchmatch": "PatchMatch, 7x7 patches (inpaintjax.patchmatch)",
}

RANDOMISED = ("patchmatch",)  # fills that take a seed


def available() -> list[str]:
    """The baselines that can run here (telea needs OpenCV; patchmatch runs on JAX)."""
    return [n for n in BASELINES if n != "telea" or have_opencv()]


def selected(names: str) -> list[str]:
    """The baselines named in a comma-separated list (config.eval.baselines) that can run here;
    a name that is not a baseline is a ValueError naming the valid ones."""
    chosen = [n.strip() for n in str(names).split(",") if n.strip()]
    unknown = [n for n in chosen if n not in BASELINES]
    if unknown:
        raise ValueError(f"config.eval.baselines={names!r}: unknown baseline(s) {unknown}; "
                         f"valid: {', '.join(BASELINES)} (comma-separated, '' for none)")
    return [n for n in chosen if n in available()]


def fill(name: str, images, masks, seed: int = 0) -> np.ndarray:
    """The baseline `name` ('mean' | 'biharmonic' | 'telea' | 'patchmatch') applied to a batch;
    `seed` is used by the randomised fills (patchmatch) and ignored by the others."""
    try:
        fn = BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}") from None
    return fn(images, masks, seed=seed) if name in RANDOMISED else fn(images, masks)
