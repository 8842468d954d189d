"""Reading and writing image and mask files: the one place inpaintjax decodes or encodes a file.

    from inpaintjax import image_io
    img = image_io.read_image('photo.png')      # uint8 [H, W, 3] RGB, EXIF orientation applied
    hole = image_io.read_mask('mask.png')       # float32 [H, W] in {0, 1}, 1 = hole
    image_io.write_image('out.png', img)
    names = image_io.list_images('photos/', recursive=True)
    img = image_io.image_from_pil(Image.open(io.BytesIO(data)))   # read_image's rules, no file

A PIL image already open (an upload's bytes, an image handed to the Inpainter) goes through the
same conversions as a file: `image_from_pil` (read_image's uint8 RGB), `pixels_from_pil` (the same
values at the image's own depth) and `mask_from_pil` (read_mask's rule).

Images. Every mode Pillow decodes becomes 8-bit RGB with its full range kept: 16-bit greyscale
(`I;16*`) and 32-bit integer (`I`, as 16-bit data in 0..65535) are scaled by 255/65535, float (`F`)
images must hold finite values in [0, 1], palette/alpha images lose their alpha, CMYK/YCbCr/LAB
are converted by Pillow. The EXIF orientation tag is applied (`ImageOps.exif_transpose`), so the
array is the picture as viewers show it, and a mask drawn on the displayed picture fits it.

Size limit. A file whose header declares more pixels than `PIL.Image.MAX_IMAGE_PIXELS` (Pillow's
decompression-bomb limit, 89.5 megapixels by default) is refused with a ValueError before it is
decoded (Pillow itself only warns up to twice the limit). Raise the limit by setting
`PIL.Image.MAX_IMAGE_PIXELS` (None = no limit) before reading.

Masks. A pixel is a hole when its value is at least half of the value range (128 of 255, 32768 of
65535, 0.5 for float files), so a grey background, JPEG ringing or anti-aliased strokes do not turn
into holes. A file whose only values are 0 and 1 (a label map) has 1 = hole. Colour masks: a channel
that is the same after thresholding at every pixel (e.g. a saturated blue background) carries no
mask and is ignored; a pixel is a hole when any remaining channel is at least half (red strokes on
black, white strokes on blue). Alpha is ignored unless the colour is constant and the alpha is not
(strokes drawn only in the alpha channel). A mask with more than two distinct values, or covering
more than 90% of the image, gets a warning naming the file. An array given in place of a file
(`mask_from_array`: the Inpainter's masks and sketches given as arrays) follows the same rule, with
the value range of its dtype: 255 for uint8, 65535 for uint16, 1.0 for float, True for bool; a PIL
image (`mask_from_pil`: the Inpainter's PIL masks, the serve page's drawings) with the value range
of its mode, as a file.

Folders. `list_images` lists files whose extension is in IMAGE_EXTENSIONS (any case), skipping
names starting with '.', sorted. With recursive=True it descends into real sub-directories only:
symbolic links to directories are never followed (so link loops cannot make a scan endless, and no
file is listed twice through two paths); symbolic links to files are listed.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from typing import Iterable

import numpy as np

#: every file extension inpaintjax reads as an image (lower case, with the dot)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
#: extensions write_image encodes (GIF is left out: it would quantise the colours to a palette)
OUTPUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: fraction of the image above which read_mask warns that the hole covers (nearly) everything
MASK_COVERAGE_WARNING = 0.9


def has_image_extension(path) -> bool:
    """Whether `path` ends with one of IMAGE_EXTENSIONS (case-insensitive)."""
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def _check_file(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} file not found: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} path {path} is a directory; expected an image file")


def _open_header(path: str, what: str):
    """Open (the header only) and check the size against the bomb limit; errors name the file: a
    file in no format Pillow knows, or one whose header is cut or broken."""
    from PIL import Image, UnidentifiedImageError
    _check_file(path, what)
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) between 1x and 2x the limit: make that an error too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(_bomb_message(path, what, e, limit)) from None
    except UnidentifiedImageError as e:
        raise ValueError(f"cannot read {what} {path}: not an image file Pillow can decode "
                         f"(PNG, JPEG, BMP, TIFF, WebP, GIF): {e}") from None
    except Exception as e:  # a known format whose header is cut or broken (Pillow raises several types)
        raise ValueError(_damaged(path, what, f"{type(e).__name__}: {e}")) from None
    w, h = im.size
    if limit is not None and w * h > limit:
        im.close()
        raise ValueError(_bomb_message(path, what, (w, h), limit))
    return im


def _label(what: str, path: str) -> str:
    """How messages name the file: 'image photo.png', or 'image' for a PIL image without a path."""
    return f"{what} {path}" if path else what


def _damaged(path: str, what: str, e, size: str = "") -> str:
    return f"cannot decode {_label(what, path)}{size}: the file is damaged or truncated: {e}"


def _transposed(im, path: str, what: str):
    """Decode `im` and apply its EXIF orientation -> a new image (a copy when there is nothing to
    turn); `im` itself is left open. Decoding errors -> ValueError naming the file."""
    from PIL import ImageOps
    try:
        im.load()
        return ImageOps.exif_transpose(im)
    except (OSError, ValueError, SyntaxError) as e:
        raise ValueError(_damaged(path, what, e, f" ({im.size[0]}x{im.size[1]})")) from None


def _open(path: str, what: str):
    """Open (`_open_header`), decode, apply EXIF orientation."""
    im = _open_header(path, what)
    with im:
        return _transposed(im, path, what)


def _bomb_message(path, what, size, limit) -> str:
    """size: (width, height), or Pillow's own exception (its message states the pixel count)."""
    if isinstance(size, tuple):
        dims = f"{size[0]}x{size[1]} = {size[0] * size[1]:,} pixels"
    else:
        import re
        n = re.search(r"\((\d+) pixels\)", str(size))
        dims = f"{int(n.group(1)):,} pixels" if n else "the declared size"
    return (f"{what} {path}: {dims} is above Pillow's decompression-bomb limit of {limit:,} pixels; "
            f"refusing to decode it (if the file is trusted, raise PIL.Image.MAX_IMAGE_PIXELS)")


def image_size(path, what: str = "image") -> tuple[int, int]:
    """(width, height) of an image file from its header, as displayed (EXIF rotation applied),
    without decoding the pixels. Same errors as read_image (missing, undecodable, damaged, too
    large)."""
    path = os.fspath(path)
    with _open_header(path, what) as im:
        w, h = im.size
        try:
            orientation = im.getexif().get(0x0112, 1)
        except (OSError, ValueError, SyntaxError) as e:  # the chunks before the pixels are cut
            raise ValueError(_damaged(path, what, e, f" ({w}x{h})")) from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _scaled_array(im, path: str, what: str) -> tuple[np.ndarray, float]:
    """Pixel values of a decoded image without alpha, and the value that means 'full scale'.

    Returns (array [H, W] or [H, W, C] of the file's own numbers, full_scale)."""
    mode = im.mode
    if mode == "1":
        return np.asarray(im.convert("L")), 255.0
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(im).astype(np.int64)
        return np.clip(arr, 0, 65535), 65535.0
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{_label(what, path)} holds NaN or Inf values; refusing it (a "
                             f"non-finite pixel would make the whole output NaN)")
        if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
            raise ValueError(f"{_label(what, path)} is a float image with values in "
                             f"[{arr.min():.4g}, {arr.max():.4g}]; float images must be in [0, 1]")
        return arr, 1.0
    if mode in ("L", "RGB"):
        return np.asarray(im), 255.0
    if mode == "LA":
        return np.asarray(im)[..., 0], 255.0
    return np.asarray(im.convert("RGB")), 255.0  # P, PA, RGBA, CMYK, YCbCr, LAB, HSV


def _to_uint8(arr: np.ndarray, full_scale: float) -> np.ndarray:
    if arr.dtype == np.uint8 and full_scale == 255.0:
        return arr
    return np.round(arr.astype(np.float64) * (255.0 / full_scale)).astype(np.uint8)


def _rgb8(arr: np.ndarray, full_scale: float) -> np.ndarray:
    """`_scaled_array`'s result -> uint8 [H, W, 3] (grey repeated)."""
    arr = _to_uint8(arr, full_scale)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return np.ascontiguousarray(arr)


def read_image(path, what: str = "image") -> np.ndarray:
    """Read an image file as uint8 [H, W, 3] RGB (see the module docstring for the conversions).

    `what` names the file in error messages ('image', 'mask', 'sketch'). Raises FileNotFoundError,
    IsADirectoryError, or ValueError (undecodable, damaged, above the pixel limit, float file with
    NaN/Inf or outside [0, 1]) naming the file."""
    path = os.fspath(path)
    im = _open(path, what)
    with im:
        return _rgb8(*_scaled_array(im, path, what))


def image_from_pil(im, what: str = "image", path: str = "") -> np.ndarray:
    """A PIL image (opened, e.g. from bytes, or made in memory) -> uint8 [H, W, 3] RGB by
    read_image's rules: the array read_image returns for a file holding it (EXIF orientation
    applied, 16/32-bit integer scaled by 255/65535, float checked, alpha dropped). `im` is decoded
    if it is not yet, not closed. `path` (optional) names it in error messages (ValueError: damaged
    data, float with NaN/Inf or outside [0, 1]); `im.size` is not checked against a limit."""
    out = _transposed(im, path, what)
    with out:
        return _rgb8(*_scaled_array(out, path, what))


def pixels_from_pil(im, what: str = "image", path: str = "") -> np.ndarray:
    """A PIL image's pixels by read_image's rules at the image's own depth: uint8 [H, W] or
    [H, W, 3] for 8-bit (and 1-bit, palette, CMYK, ...) modes, uint16 [H, W] for 16- and 32-bit
    integer modes (`I;16*`, `I` as 16-bit data, clipped to 0..65535), float32 [H, W] in [0, 1] for
    `F`; EXIF orientation applied, alpha dropped. `image_from_pil` is this scaled to uint8 RGB
    (as are the Inpainter's PIL images, which keep 16-bit and float depth). Errors as
    image_from_pil."""
    out = _transposed(im, path, what)
    with out:
        arr, full = _scaled_array(out, path, what)
    if full == 65535.0:
        arr = arr.astype(np.uint16)
    return np.ascontiguousarray(arr)


def binarize_mask(values: np.ndarray, full_scale: float) -> np.ndarray:
    """Mask values [H, W] or [H, W, C] in 0..full_scale -> bool [H, W], True = hole.

    The rules of the module docstring: values only in {0, 1} mean 1 = hole; otherwise a value is a
    hole from half of full_scale up; of several channels, those constant after thresholding are
    ignored and any remaining one marks a hole (all constant: their mean decides)."""
    values = np.asarray(values)
    if values.dtype == np.bool_:
        on = values
    else:
        vmax = values.max() if values.size else 0
        if vmax <= 1 and values.min() >= 0 and np.all((values == 0) | (values == 1)):
            on = values == 1
        else:
            on = values >= full_scale / 2.0
    if on.ndim == 2:
        return on
    informative = [c for c in range(on.shape[-1])
                   if on[..., c].any() and not on[..., c].all()]
    if informative:
        return np.any(on[..., informative], axis=-1)
    if values.dtype == np.bool_:
        return np.all(on, axis=-1)
    return np.mean(values.astype(np.float64), axis=-1) >= full_scale / 2.0


def _mask_values(values: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """The values a mask is read from: the alpha channel when the colour is constant and the alpha
    is not (strokes drawn only in alpha), else the colour; grey stored as RGB as one channel."""
    if alpha is not None and np.all(values == values.reshape(-1, *values.shape[2:])[0]) \
            and alpha.min() != alpha.max():
        values = alpha
    if values.ndim == 3 and np.all(values == values[..., :1]):
        values = values[..., 0]
    return values


def full_scale(dtype) -> float:
    """The value range of a mask array's dtype, whose half is the hole threshold: 1.0 for float and
    bool, the dtype's maximum for integers of up to 16 bits (255, 65535), 255 for wider integers
    (8-bit data in a wide integer array)."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_ or np.issubdtype(dtype, np.floating):
        return 1.0
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max) if dtype.itemsize <= 2 else 255.0
    raise TypeError(f"unsupported mask dtype {dtype}; pass bool, uint8, uint16 or float [0, 1]")


def mask_from_array(values, what: str = "mask") -> np.ndarray:
    """A mask (or sketch) array -> bool [H, W], True = hole, by the same rule as a file
    (`read_mask`, module docstring): values [H, W] or [H, W, C] (C = 1, 2 grey + alpha, 3 RGB,
    4 RGBA) over the dtype's range (`full_scale`)."""
    values = np.asarray(values)
    scale = full_scale(values.dtype)
    if np.issubdtype(values.dtype, np.floating):
        bad = ~np.isfinite(values)
        if bad.any():
            pos = np.argwhere(bad)[0]
            where = f"row {pos[0]}, column {pos[1]}" + (f", channel {pos[2]}" if len(pos) > 2 else "")
            raise ValueError(f"{what}: {int(bad.sum())} NaN or Inf value{'s' if bad.sum() > 1 else ''} "
                             f"(first at {where}); a {what} must be finite (1 = hole, 0 = known): "
                             f"replace them, e.g. np.nan_to_num({what})")
    if values.ndim == 3 and values.shape[-1] == 1:
        values = values[..., 0]
    alpha = None
    if values.ndim == 3 and values.shape[-1] in (2, 4):
        values, alpha = values[..., :-1], values[..., -1]
        if values.shape[-1] == 1:
            values = values[..., 0]
    if values.ndim not in (2, 3):
        raise ValueError(f"{what}: expected an HxW or HxWxC array, got shape {values.shape}")
    return binarize_mask(_mask_values(values, alpha), scale)


def _distinct_values(values: np.ndarray) -> int:
    flat = values.reshape(-1, values.shape[-1]) if values.ndim == 3 else values.reshape(-1, 1)
    if flat.shape[0] > 1_000_000:  # enough to tell 2 from more on any real mask
        flat = flat[:: flat.shape[0] // 1_000_000 + 1]
    return len(np.unique(flat, axis=0))


def _mask_arrays(im, path: str, what: str) -> tuple[np.ndarray, np.ndarray | None, float]:
    """A decoded mask image -> (values [H, W] or [H, W, C], alpha [H, W] or None, full scale)."""
    if im.mode in ("LA", "RGBA", "PA") or (im.mode == "P" and "transparency" in im.info):
        arr = np.asarray(im.convert("LA" if im.mode == "LA" else "RGBA"))
        values, alpha = arr[..., :-1], arr[..., -1]
        if values.shape[-1] == 1:
            values = values[..., 0]
        return values, alpha, 255.0
    values, full = _scaled_array(im, path, what)
    return values, None, full


def mask_from_pil(im, what: str = "mask", path: str = "") -> np.ndarray:
    """A PIL image used as a mask (or sketch) -> bool [H, W], True = hole: read_mask's rule and
    conversions (EXIF orientation, the mode's value range, alpha only where the colour is constant),
    without its warnings. `im` is decoded if it is not yet, not closed; errors as image_from_pil."""
    out = _transposed(im, path, what)
    with out:
        values, alpha, full = _mask_arrays(out, path, what)
    return binarize_mask(_mask_values(values, alpha), full)


def read_mask(path, what: str = "mask") -> np.ndarray:
    """Read a mask (or sketch) file as float32 [H, W] in {0, 1}, 1 = hole (rules: module docstring).

    Warns (UserWarning naming the file) when the file has more than two distinct values (it was
    thresholded at 50%) or when the hole covers more than 90% of it."""
    path = os.fspath(path)
    im = _open(path, what)
    with im:
        values, alpha, full = _mask_arrays(im, path, what)
    values = _mask_values(values, alpha)
    hole = binarize_mask(values, full)
    n_distinct = _distinct_values(values)
    if n_distinct > 2:
        warnings.warn(f"{what} {path} has {n_distinct} distinct values (not a two-level mask, e.g. "
                      f"JPEG or anti-aliased): pixels at >= 50% of the range are holes", stacklevel=2)
    ratio = float(hole.mean()) if hole.size else 0.0
    if ratio > MASK_COVERAGE_WARNING:
        warnings.warn(f"{what} {path} marks {ratio:.0%} of the image as hole (1 = hole, white = "
                      f"hole); check that the mask is not inverted", stacklevel=2)
    return hole.astype(np.float32)


def write_image(path, image: np.ndarray) -> None:
    """Write uint8 [H, W, 3] (or [H, W]) or float [0, 1] pixels; the format follows the extension
    (one of OUTPUT_EXTENSIONS). The file appears complete or not at all (written to a temporary
    file in the same folder, then renamed)."""
    from PIL import Image
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in OUTPUT_EXTENSIONS:
        raise ValueError(f"cannot write {path}: unknown image extension {ext or '(none)'!r}; use "
                         f"one of {', '.join(OUTPUT_EXTENSIONS)}")
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        f = arr.astype(np.float32)
        if not np.all(np.isfinite(f)):
            raise ValueError(f"cannot write {path}: the image holds NaN or Inf values")
        arr = np.round(np.clip(f, 0.0, 1.0) * 255.0).astype(np.uint8)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fmt = Image.registered_extensions()[ext]
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=ext, dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            kw = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
            Image.fromarray(arr).save(fh, format=fmt, **kw)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def list_images(folder, recursive: bool = False) -> list[str]:
    """Image files in `folder` as paths relative to it, sorted (rules: module docstring).

    recursive=False: the folder's own files; recursive=True: also every real sub-directory's,
    never through a symbolic link to a directory, skipping directories whose name starts with '.'.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"{folder} is not a directory")
    out = []
    if not recursive:
        with os.scandir(folder) as it:
            for e in it:
                if not e.name.startswith(".") and has_image_extension(e.name) and e.is_file():
                    out.append(e.name)
        return sorted(out)
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in files:
            if not f.startswith(".") and has_image_extension(f):
                full = os.path.join(root, f)
                if os.path.isfile(full):  # a dangling link is not an image
                    out.append(os.path.relpath(full, folder))
    return sorted(out)


def stems(names: Iterable[str]) -> dict[str, list[str]]:
    """Group file names by name without extension: {'a': ['a.jpg', 'a.png'], ...}."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(os.path.splitext(n)[0], []).append(n)
    return groups


__all__ = ("IMAGE_EXTENSIONS", "OUTPUT_EXTENSIONS", "MASK_COVERAGE_WARNING", "has_image_extension",
           "image_size", "read_image", "image_from_pil", "pixels_from_pil", "read_mask",
           "mask_from_pil", "binarize_mask", "mask_from_array", "full_scale", "write_image",
           "list_images", "stems")
