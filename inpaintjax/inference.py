"""Inpainter: the user-facing prediction API (any family, any image size, single image or batch).

    from inpaintjax import Inpainter
    inp = Inpainter.load('release_places2_256')          # official weights of any family, or a workdir
    out = inp.inpaint('photo.png', 'mask.png')          # uint8 HxWx3, known pixels untouched
    inp = Inpainter.load('completionnet_places2.t7', settings=['inference.postprocess=true'])

Images: a path, a PIL image, or an array HxWx3 (or BxHxWx3, or a list of same-size images) of
uint8 [0, 255], uint16 [0, 65535] or float [0, 1] (grey HxW or HxWx1, grey + alpha HxWx2 and RGBA
are accepted: grey is repeated, alpha dropped). A PIL image is read by `image_io.read_image`'s
rules (EXIF orientation applied, any mode: 16-bit and 32-bit integer `I` as 16-bit data, `F` in
[0, 1]) at its own depth (`image_io.pixels_from_pil`: a 16-bit image is uint16, a float one
float32); a PIL mask or sketch by `read_mask`'s (`image_io.mask_from_pil`). An empty batch,
images of different sizes in one batch, other dtypes, NaN/Inf and floats outside [0, 1] are refused
with a ValueError or TypeError naming the value; so is a mask or sketch with NaN/Inf or of another
size. Masks: a path, PIL image or array HxW (or HxWxC, BxHxW[x1], or one HxW mask for a whole
batch). Files, PIL images and arrays follow one rule (`image_io.read_mask` / `mask_from_pil` /
`mask_from_array`): a pixel is a hole from half of the value
range up (128 of uint8, 32768 of uint16, 0.5 of float, True of bool), a mask holding only 0 and 1
has 1 = hole, a channel constant over the whole mask is ignored and any other channel marks a hole,
alpha counts only where the colour is constant. For a batch
of B images a BxHxW array is B masks, even where it could also be read as one HxWxC mask
(B = H = W = C). Sketches (guided models): same form as masks, 1 = stroke, kept inside the hole
only. The result has the input's layout and dtype (uint8 in -> uint8 out, uint16 -> uint16, a float
dtype in -> the same float dtype out, bool -> float32; the network itself computes in float32).

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
from typing import Any, Iterable, Mapping, Optional, Union

import numpy as np

from inpaintjax.image_io import (mask_from_array, mask_from_pil, pixels_from_pil,  # noqa: F401
                                 read_image, read_mask, write_image)

#: largest image (padded width x height) an Inpainter accepts unless told otherwise: 4096 x 4096.
#: Inference memory grows linearly with the pixel count, and this bound keeps one image well inside
#: a 24 GB machine; above it the image is refused before any work (the measured memory per size:
#: docs/performance.md, "Inference memory").
DEFAULT_MAX_PIXELS = 4096 * 4096


def _to_array(x, what: str) -> np.ndarray:
    if isinstance(x, (str, os.PathLike)):
        return read_image(x, what) if what == "image" else read_mask(x, what)
    try:
        from PIL import Image
        if isinstance(x, Image.Image):
            # read_image's / read_mask's rules (one helper with them): EXIF orientation, every
            # mode (16/32-bit integer as 16-bit data, float checked) at its own depth
            return pixels_from_pil(x, what) if what == "image" else mask_from_pil(x, what)
    except ImportError:  # pragma: no cover - pillow is a dependency
        pass
    if isinstance(x, (list, tuple)) and x:
        shapes = [np.shape(e) for e in x]
        if len(set(shapes)) > 1:
            sizes = ", ".join(dict.fromkeys(f"{s[1]}x{s[0]}" if len(s) >= 2 else str(s) for s in shapes))
            raise ValueError(f"{what}: a batch of {what}s of different sizes ({sizes}, WxH); a batch "
                             f"must share one size: inpaint them one at a time, or resize them to one "
                             f"size first")
    arr = np.asarray(x)
    if arr.dtype == object:
        raise TypeError(f"{what}: expected a path, a PIL image or a numeric array, got {type(x).__name__}")
    return arr


def _image_batch(image) -> tuple[np.ndarray, np.ndarray, bool]:
    """-> (float32 [B,H,W,3] in [0,1], the input as [B,H,W,3] in its own dtype (uint8 or a
    float dtype; bool as float32): the pixels the output keeps, was_batched)."""
    arr = _to_array(image, "image")
    batched = arr.ndim == 4
    if arr.ndim in (1, 4) and arr.shape[0] == 0:
        raise ValueError("image: the batch is empty (0 images); pass at least one image")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"image: expected HxWx3 (or BxHxWx3, HxW, HxWx2 grey + alpha, RGBA) but got "
                         f"shape {arr.shape}")
    if not arr.shape[1] or not arr.shape[2]:
        raise ValueError(f"image: {arr.shape[2]}x{arr.shape[1]} has no pixels")
    if arr.shape[-1] == 4:
        arr = arr[..., :3]
    elif arr.shape[-1] in (1, 2):                 # grey (+ alpha): alpha dropped, grey repeated
        arr = np.repeat(arr[..., :1], 3, axis=-1)
    if arr.dtype in (np.uint8, np.uint16):
        return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max), arr, batched
    if not (np.issubdtype(arr.dtype, np.floating) or arr.dtype == np.bool_):
        raise TypeError(f"image: unsupported dtype {arr.dtype}; pass uint8 [0, 255], uint16 "
                        f"[0, 65535] or float [0, 1] (e.g. image.astype(np.uint8) for 0..255 values)")
    f = arr.astype(np.float32)
    if not np.all(np.isfinite(f)):
        raise ValueError("image: the array holds NaN or Inf values; the output would be all NaN")
    if f.size and (f.min() < 0.0 or f.max() > 1.0):
        raise ValueError(f"image: float images must be in [0, 1], got values in "
                         f"[{f.min():.3g}, {f.max():.3g}] (pass uint8 for 0..255)")
    return f, (arr if arr.dtype != np.bool_ else f), batched


def _binary_batch(x, what: str, batch: int, hw: tuple[int, int]) -> np.ndarray:
    """Mask/sketch -> float32 [B,H,W,1] in {0,1}: files by image_io.read_mask, arrays (and PIL
    images) by image_io.mask_from_array, the same rule, one mask at a time."""
    arr = _to_array(x, what)
    if arr.ndim == 4:                     # B,H,W,C
        masks = [mask_from_array(a, what) for a in arr]
    elif arr.ndim == 3:
        # H,W,C, unless a batch of images makes B,H,W fit too (then B masks)
        hwc = arr.shape[:2] == tuple(hw) and not (batch > 1 and arr.shape == (batch,) + tuple(hw))
        if hwc or (arr.shape[1:] != tuple(hw) and arr.shape[-1] in (1, 2, 3, 4)):
            masks = [mask_from_array(arr, what)]
        else:                             # B,H,W
            masks = [mask_from_array(a, what) for a in arr]
    elif arr.ndim == 2:
        masks = [mask_from_array(arr, what)]
    else:
        raise ValueError(f"{what}: expected an HxW array, got shape {arr.shape}")
    arr = np.stack(masks)
    if arr.shape[1:3] != tuple(hw):
        raise ValueError(f"{what} size {arr.shape[2]}x{arr.shape[1]} (WxH) differs from the image "
                         f"size {hw[1]}x{hw[0]}; resize the {what} to the image first")
    if arr.shape[0] not in (1, batch):
        raise ValueError(f"{what}: {arr.shape[0]} {what}s for {batch} images (give one or one per image)")
    arr = np.broadcast_to(arr, (batch,) + tuple(hw))
    return arr[..., None].astype(np.float32)


Settings = Union[Iterable[str], Mapping[str, Any]]


def with_settings(family, variables, settings: Settings, where: str):
    """`family` rebuilt with `settings` (["inference.postprocess=true"] or {"model.edge_sigma":
    1.5}, `config.apply_overrides`) applied to a copy of its config, for weights already loaded.
    A setting may change how the network is run, not the network: the rebuilt family's inference
    variables must have the structure, shapes and dtypes of `variables` (checked by tracing its
    initialisation, no compilation), or a ValueError names the settings and the first difference.
    An unknown key raises `config.ConfigKeyError` naming the nearest one."""
    if not settings:
        return family
    import jax

    from inpaintjax.checkpoints import abstract_state
    from inpaintjax.config import apply_overrides
    given = (dict(settings) if isinstance(settings, Mapping)
             else [settings] if isinstance(settings, str) else list(settings))
    config = family.config.copy_and_resolve_references()
    apply_overrides(config, given)
    rebuilt = type(family)(config)
    want = jax.eval_shape(rebuilt.inference_variables, abstract_state(rebuilt, config))
    have = jax.tree.map(lambda x: jax.ShapeDtypeStruct(
        np.shape(x), x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype), variables)
    named = given if isinstance(given, list) else [f"{k}={v}" for k, v in given.items()]
    if jax.tree.structure(want) != jax.tree.structure(have):
        raise ValueError(f"{', '.join(named)}: changes the network of {where} (its variables "
                         f"would be {_first_path_difference(want, have)}); settings of loaded "
                         f"weights may change how the network runs, not its layers")
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(want), jax.tree.leaves(have),
                            strict=True):
        if (a.shape, a.dtype) != (b.shape, b.dtype):
            raise ValueError(f"{', '.join(named)}: changes the network of {where} "
                             f"({jax.tree_util.keystr(path)} would be {a.dtype}{list(a.shape)}, the "
                             f"weights hold {b.dtype}{list(b.shape)}); settings of loaded weights "
                             f"may change how the network runs, not its layers")
    return rebuilt


def _first_path_difference(want, have) -> str:
    import jax
    paths = [{jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(t)}
             for t in (want, have)]
    missing, extra = sorted(paths[0] - paths[1]), sorted(paths[1] - paths[0])
    if missing:
        return f"needing {missing[0]}, which the weights lack"
    if extra:
        return f"without {extra[0]}, which the weights hold"
    return "of another structure"


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
    the network at once (>= 1). `max_pixels` bounds the padded width x height of one image (None = no
    bound): a larger image is refused with a ValueError before any work (DEFAULT_MAX_PIXELS).
    """

    def __init__(self, family, variables, max_batch: int = 4,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS):
        import jax
        self.family = family
        # on the device once (converters return NumPy), not copied over with every call
        self.variables = jax.device_put(variables)
        if int(max_batch) < 1:
            raise ValueError(f"Inpainter: max_batch must be >= 1, got {max_batch}")
        self.max_batch = int(max_batch)
        if max_pixels is not None and int(max_pixels) < 1:
            raise ValueError(f"Inpainter: max_pixels must be >= 1 or None, got {max_pixels}")
        self.max_pixels = None if max_pixels is None else int(max_pixels)
        self._fn = jax.jit(family.inpaint)

    @property
    def guided(self) -> bool:
        """Whether the model takes a sketch (the family's `guided`: a user's guide drawing)."""
        return bool(self.family.guided)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_workdir(cls, workdir, step: Optional[int] = None, family: Optional[str] = None,
                     settings: Settings = (), **kw) -> "Inpainter":
        """The checkpoint of a training run (train.py's --workdir), newest step unless `step`.
        `family`: if given, the run must be of that family (e.g. 'deepfill_v2'). `settings`:
        config keys changed for this inpainter (`with_settings`), e.g.
        ["model.edge_sigma=1.5"]; the run's saved config is not touched."""
        workdir = os.fspath(workdir)
        if not os.path.isdir(workdir):
            raise FileNotFoundError(f"training workdir not found: {workdir}")
        from inpaintjax.checkpoints import load_for_inference
        config, fam, variables = load_for_inference(workdir, step)
        if family is not None and fam.name != family:
            raise ValueError(f"{workdir} holds a {fam.name!r} checkpoint, not {family!r}")
        return cls(with_settings(fam, variables, settings, workdir), variables, **kw)

    @classmethod
    def load(cls, path, family: Optional[str] = None, settings: Settings = (),
             step: Optional[int] = None, **kw) -> "Inpainter":
        """Detects the format: a training workdir (holds config.json) -> from_workdir (its
        checkpoint `step`, default the newest; a `step` for anything else is refused); otherwise
        the official weight format of a registered family that recognises `path` (`family`
        restricts the search and settles files more than one family could read). `settings`:
        config keys changed after the weights are read (`with_settings`), e.g. GLCIC's
        ["inference.postprocess=true", "inference.maxdim=1000"] (inpaint.lua's --postproc and
        --maxdim) or EdgeConnect's {"model.edge_sigma": 1.5}; keys that would change the network
        are refused."""
        from inpaintjax.families import detect_weights, get, names
        from inpaintjax.config import CONFIG_FILE  # not checkpoints: official weights need no orbax
        path = os.fspath(path)
        if family is not None:
            get(family)  # an unknown name fails here, naming the known ones
        if os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG_FILE)):
            return cls.from_workdir(path, step=step, family=family, settings=settings, **kw)
        if step is not None:
            raise ValueError(f"step {step} names a checkpoint of a train.py workdir, and {path} is "
                             f"not one (no {CONFIG_FILE}): drop the step for official weights")
        if not os.path.exists(path) and not os.path.exists(path + ".index"):
            raise FileNotFoundError(f"weights not found: {path} (a train.py workdir or official "
                                    f"weights of a family: {', '.join(names())})")
        found = detect_weights(path, family)
        if not found and family is not None:
            others = [c.name for c, _ in detect_weights(path)]
            if others:
                raise ValueError(f"{path} holds {' or '.join(others)} weights, not {family}'s: pass "
                                 f"family={others[0]!r} (--family {others[0]}), or no family to detect it")
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
        return cls(with_settings(fam_cls(config), variables, settings, path), variables, **kw)

    # -- prediction ------------------------------------------------------------------------------
    def check_size(self, height: int, width: int, what: str = "image") -> None:
        """Raise ValueError when a height x width image (padded to the family's size multiple)
        has more than max_pixels pixels; the message names `what`, the size and the limit."""
        m = self.family.size_multiple
        ph, pw = -(-int(height) // m) * m, -(-int(width) // m) * m
        if self.max_pixels is not None and ph * pw > self.max_pixels:
            raise ValueError(
                f"{what}: {width}x{height} ({ph * pw / 1e6:.1f} megapixels as the network sees it) "
                f"is above the limit of {self.max_pixels:,} pixels ({self.max_pixels / 1e6:.1f} "
                f"MP); inference memory grows with the pixel count: downscale or tile the image, "
                f"or raise the limit (Inpainter(max_pixels=...), inpaintjax inpaint --max-pixels)")

    def inpaint(self, image, mask, sketch=None, return_extras: bool = False):
        """Fill the holes of `image` (see the module docstring for accepted forms).

        Returns the completed image(s) with the input's layout and dtype; with
        `return_extras=True`, a dict {'output', plus the family's extras such as 'stage1',
        'flow'} (extras float32 in [0, 1]). An all-zero mask returns the input with a warning
        (with `return_extras=True`, a dict holding 'output' only: the network did not run).
        Images go through the network `max_batch` at a time.
        """
        if isinstance(image, (str, os.PathLike)):  # from the header, before decoding
            from inpaintjax.image_io import image_size
            iw, ih = image_size(image)
            self.check_size(ih, iw, os.fspath(image))
        img, base, batched = _image_batch(image)
        b, h, w, _ = img.shape
        self.check_size(h, w)
        msk = _binary_batch(mask, "mask", b, (h, w))
        sk = None
        if sketch is not None:
            if not self.guided:
                raise ValueError(f"this {self.family.name} model was not trained with sketch "
                                 f"guidance; drop the sketch or use a guided model")
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
                from inpaintjax.families.base import GUIDE_KEY
                batch[GUIDE_KEY] = _pad_to(sk[sl], m)
            res = self.family.predict(self._fn, self.variables, batch)
            res = {k: np.asarray(v)[:, :h, :w] for k, v in res.items()}
            outs.append(res.pop("output"))
            for k, v in res.items():
                extras.setdefault(k, []).append(v)
        fill = np.concatenate(outs)
        extras = {k: np.concatenate(v) for k, v in extras.items()}
        hole = msk > 0.5
        if base.dtype in (np.uint8, np.uint16):
            top = float(np.iinfo(base.dtype).max)
            fill = np.round(np.clip(fill, 0.0, 1.0) * top).astype(base.dtype)
        out = np.where(hole, fill.astype(base.dtype), base)
        return finish(out, extras)
