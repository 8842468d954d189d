"""Inpainter: the user-facing prediction API (any family, any image size, single image or batch).

    from inpaintjax import Inpainter
    inp = Inpainter.load('release_places2_256')          # official weights of any family, or a workdir
    out = inp.inpaint('photo.png', 'mask.png')          # uint8 HxWx3, known pixels untouched

Images: a path, a PIL image, or an array HxWx3 (or BxHxWx3) of uint8 [0, 255] or float [0, 1]
(greyscale HxW and RGBA are accepted: grey is repeated, alpha dropped). Masks: a path, PIL image
or array HxW (or HxWxC, BxHxW[x1], or one HxW mask for a whole batch); any non-zero value is a
hole. Sketches (guided models): same form as masks; non-zero = stroke, kept inside the hole only.
The result has the input's layout and dtype (uint8 in -> uint8 out, float in -> float32 out).

Sizes: the network needs sides divisible by the family's `size_multiple` (8 for DeepFill). The
image, mask and sketch are padded at the bottom/right by mirror reflection (numpy 'reflect') and
the output is cropped back. Reflection, not zeros: padded pixels count as known context, and a
mirrored border is closer to the real surroundings than a flat black band, which would bleed into
holes near the edge; the mask is mirrored too, so a hole touching the border stays a hole.

Known pixels are preserved exactly: the final image is chosen per pixel between the input and the
network's fill (a select in the input's own dtype, never a blend).
"""

from __future__ import annotations

import os
import warnings
from typing import Optional

import numpy as np

_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def read_image(path, what: str = "image") -> np.ndarray:
    """Read an image file as a uint8 array (HxW or HxWxC); clear errors for missing/unreadable files."""
    from PIL import Image, UnidentifiedImageError
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} file not found: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} path {path} is a directory; expected an image file")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA" if im.mode != "LA" else "LA")
            elif im.mode not in ("RGB", "L"):
                im = im.convert("RGB")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read {what} {path}: not an image file PIL can decode "
                         f"(PNG, JPEG, BMP, TIFF, WebP ...): {e}") from None


def write_image(path, image: np.ndarray) -> None:
    """Write a uint8 HxWx3 (or float [0, 1]) image; the format follows the file extension."""
    from PIL import Image
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(arr).save(path)


def _to_array(x, what: str) -> np.ndarray:
    if isinstance(x, (str, os.PathLike)):
        return read_image(x, what)
    try:
        from PIL import Image
        if isinstance(x, Image.Image):
            return np.asarray(x.convert("RGBA") if x.mode == "P" else x)
    except ImportError:  # pragma: no cover - pillow is a dependency
        pass
    arr = np.asarray(x)
    if arr.dtype == object:
        raise TypeError(f"{what}: expected a path, a PIL image or a numeric array, got {type(x).__name__}")
    return arr


def _image_batch(image) -> tuple[np.ndarray, np.ndarray, bool]:
    """-> (float32 [B,H,W,3] in [0,1], the input as [B,H,W,3] in its own dtype (uint8 or
    float32): the pixels the output keeps, was_batched)."""
    arr = _to_array(image, "image")
    batched = arr.ndim == 4
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image: expected HxWx3 (or BxHxWx3, HxW, RGBA) but got shape {arr.shape}")
    if arr.shape[-1] == 4:
        arr = arr[..., :3]
    elif arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0, arr, batched
    if not (np.issubdtype(arr.dtype, np.floating) or arr.dtype == np.bool_):
        raise TypeError(f"image: unsupported dtype {arr.dtype}; pass uint8 [0, 255] or float [0, 1]")
    f = arr.astype(np.float32)
    if f.size and (f.min() < 0.0 or f.max() > 1.0):
        raise ValueError(f"image: float images must be in [0, 1], got values in "
                         f"[{f.min():.3g}, {f.max():.3g}] (pass uint8 for 0..255)")
    return f, f, batched


def _binary_batch(x, what: str, batch: int, hw: tuple[int, int]) -> np.ndarray:
    """Mask/sketch -> float32 [B,H,W,1] in {0,1}: any non-zero value (any channel) is 1."""
    arr = _to_array(x, what)
    if arr.ndim == 4:                     # B,H,W,C
        arr = np.any(arr != 0, axis=-1)
    elif arr.ndim == 3:
        if arr.shape[:2] == tuple(hw):    # H,W,C
            arr = np.any(arr != 0, axis=-1)[None]
        else:                             # B,H,W
            arr = arr != 0
    elif arr.ndim == 2:
        arr = (arr != 0)[None]
    else:
        raise ValueError(f"{what}: expected an HxW array, got shape {arr.shape}")
    if arr.shape[1:3] != tuple(hw):
        raise ValueError(f"{what} size {arr.shape[2]}x{arr.shape[1]} (WxH) differs from the image "
                         f"size {hw[1]}x{hw[0]}; resize the {what} to the image first")
    if arr.shape[0] not in (1, batch):
        raise ValueError(f"{what}: {arr.shape[0]} {what}s for {batch} images (give one or one per image)")
    arr = np.broadcast_to(arr, (batch,) + tuple(hw))
    return arr[..., None].astype(np.float32)


def _pad_to(x: np.ndarray, multiple: int) -> np.ndarray:
    h, w = x.shape[1:3]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not ph and not pw:
        return x
    # 'reflect' mirrors without repeating the edge; numpy reflects repeatedly for tiny images
    return np.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")


class Inpainter:
    """Inpaints images with a trained model of any family (see the module docstring).

    Build with `Inpainter.load(path)` (detects the format and the family), `Inpainter.from_workdir
    (workdir)`, or `Inpainter(family, variables)`. `max_batch` bounds how many images go through
    the network at once.
    """

    def __init__(self, family, variables, max_batch: int = 4):
        import jax
        self.family = family
        self.variables = variables
        self.max_batch = int(max_batch)
        self._fn = jax.jit(family.inpaint)

    @property
    def guided(self) -> bool:
        return bool(self.family.config.model.get("guided", False))

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_workdir(cls, workdir, step: Optional[int] = None, family: Optional[str] = None,
                     **kw) -> "Inpainter":
        """The checkpoint of a training run (train.py's --workdir), newest step unless `step`.
        `family`: if given, the run must be of that family (e.g. 'deepfill_v2')."""
        workdir = os.fspath(workdir)
        if not os.path.isdir(workdir):
            raise FileNotFoundError(f"training workdir not found: {workdir}")
        from inpaintjax.training.checkpoint import load_for_inference
        config, fam, variables = load_for_inference(workdir, step)
        if family is not None and fam.name != family:
            raise ValueError(f"{workdir} holds a {fam.name!r} checkpoint, not {family!r}")
        return cls(fam, variables, **kw)

    @classmethod
    def load(cls, path, family: Optional[str] = None, **kw) -> "Inpainter":
        """Detects the format: a training workdir (holds config.json) -> from_workdir; otherwise
        the official weight format of a registered family that recognises `path` (`family`
        restricts the search and settles files more than one family could read)."""
        from inpaintjax.families import detect_weights, get, names
        from inpaintjax.training.checkpoint import CONFIG_FILE
        path = os.fspath(path)
        if family is not None:
            get(family)  # an unknown name fails here, naming the known ones
        if os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG_FILE)):
            return cls.from_workdir(path, family=family, **kw)
        if not os.path.exists(path) and not os.path.exists(path + ".index"):
            raise FileNotFoundError(f"weights not found: {path} (a train.py workdir or official "
                                    f"weights of a family: {', '.join(names())})")
        found = detect_weights(path, family)
        if not found:
            formats = [f"{get(n).name}: {', '.join(f.name for f in get(n).weight_formats) or 'workdirs only'}"
                       for n in ([family] if family else names())]
            held = sorted(os.listdir(path)) if os.path.isdir(path) else [os.path.basename(path)]
            raise ValueError(f"unrecognised weights {path} (holding {', '.join(held[:8]) or 'nothing'}"
                             f"{' ...' if len(held) > 8 else ''}): not a train.py workdir (no "
                             f"{CONFIG_FILE}) and no family's official format matches "
                             f"({'; '.join(formats)})")
        if len(found) > 1:
            raise ValueError(f"{path} could be weights of {', '.join(c.name for c, _ in found)}: "
                             f"pass family=... (--family on the command line)")
        fam_cls, fmt = found[0]
        config, variables = fmt.load(path)
        return cls(fam_cls(config), variables, **kw)

    # -- prediction ------------------------------------------------------------------------------
    def inpaint(self, image, mask, sketch=None, return_extras: bool = False):
        """Fill the holes of `image` (see the module docstring for accepted forms).

        Returns the completed image(s) with the input's layout and dtype; with
        `return_extras=True`, a dict {'output', plus the family's extras such as 'stage1',
        'flow'} (extras float32 in [0, 1]). An all-zero mask returns the input with a warning.
        """
        img, base, batched = _image_batch(image)
        b, h, w, _ = img.shape
        msk = _binary_batch(mask, "mask", b, (h, w))
        sk = None
        if sketch is not None:
            if not self.guided:
                raise ValueError("this model was not trained with sketch guidance "
                                 "(model.guided=False); drop the sketch or use a guided model")
            sk = _binary_batch(sketch, "sketch", b, (h, w))

        def finish(out, extras):
            out = out if batched else out[0]
            if return_extras:
                return {"output": out, **{k: (v if batched else v[0]) for k, v in extras.items()}}
            return out

        if not msk.any():
            warnings.warn("inpaint: the mask has no hole pixels; returning the input unchanged",
                          stacklevel=2)
            return finish(base.copy(), {})

        m = self.family.size_multiple
        outs, extras = [], {}
        for s in range(0, b, self.max_batch):
            sl = slice(s, s + self.max_batch)
            batch = {"image": _pad_to(img[sl], m), "mask": _pad_to(msk[sl], m)}
            if sk is not None:
                batch["sketch"] = _pad_to(sk[sl], m)
            res = self._fn(self.variables, self.family.inference_inputs(batch))
            res = {k: np.asarray(v)[:, :h, :w] for k, v in res.items()}
            outs.append(res.pop("output"))
            for k, v in res.items():
                extras.setdefault(k, []).append(v)
        fill = np.concatenate(outs)
        extras = {k: np.concatenate(v) for k, v in extras.items()}
        hole = msk > 0.5
        if base.dtype == np.uint8:
            fill = np.round(np.clip(fill, 0.0, 1.0) * 255.0).astype(np.uint8)
        out = np.where(hole, fill.astype(base.dtype), base)
        return finish(out, extras)
