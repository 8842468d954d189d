"""Random-access image sources: the built-in sample photographs, image folders, TFDS datasets.

A source is a sequence: `len(source)` images, `source[i]` -> (image uint8 [H, W, 3] RGB, paired
mask float32 [H, W] with 1 = hole, or None). Sizes differ from image to image; cropping, flipping
and masks are the pipeline's job (pipeline.py). Nothing here needs TensorFlow or the network.
"""

from __future__ import annotations

import logging
import os
import zlib
from typing import Sequence

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

from inpaintjax.image_io import IMAGE_EXTENSIONS, image_size, list_images, read_image, read_mask

#: scikit-image's bundled colour photographs (no download). The stereo pair's right view is left
#: out: it shows the same scene as the left view shifted by the disparity, so it would leak the
#: held-out strip into training.
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry",
                 "retina", "rocket", "stereo_motorcycle")
#: fraction of every sample photo's width (its right-most columns) that is held out for evaluation
SAMPLE_HOLDOUT = 0.25


def _load_sample_photo(name: str) -> np.ndarray:
    import skimage.data
    img = getattr(skimage.data, name)()
    if name == "stereo_motorcycle":
        img = img[0]  # the left view
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def resize_shorter_side(img: np.ndarray, size: int) -> np.ndarray:
    """Resize (bilinear, aspect kept) so the shorter side is `size` px; uint8 [H, W, 3]."""
    h, w = img.shape[:2]
    if min(h, w) == size:
        return img
    scale = size / min(h, w)
    nh, nw = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    return np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))


def sample_split_column(width: int) -> int:
    """First column of a sample photo's held-out strip (columns [0, c) train, [c, width) held out)."""
    return int(round(width * (1.0 - SAMPLE_HOLDOUT)))


class SampleSource:
    """The built-in sample set: scikit-image's colour photographs, split by region.

    Held out are whole regions, not whole photos: the right-most quarter of every photo (columns
    from `sample_split_column(W)` on) is the 'eval' split, the rest the 'train' split, so the two
    never share a pixel while both see every kind of picture. Item i is photo i's part.
    """

    def __init__(self, split: str = "train", resize_shorter: int = 0):
        if split not in ("train", "eval"):
            raise ValueError(f"sample split must be 'train' or 'eval', got {split!r}")
        self.split = split
        self.names = SAMPLE_PHOTOS
        self._images = []
        for name in self.names:
            img = _load_sample_photo(name)
            if resize_shorter:  # the whole photo, before splitting: both splits share one scale
                img = resize_shorter_side(img, resize_shorter)
            c = sample_split_column(img.shape[1])
            part = img[:, :c] if split == "train" else img[:, c:]
            self._images.append(np.ascontiguousarray(part))

    def __len__(self):
        return len(self._images)

    def __getitem__(self, i):
        return self._images[i], None

    def describe(self) -> str:
        return (f"built-in sample set ({self.split}): {len(self)} scikit-image photos "
                f"({', '.join(self.names)}), {'left 75%' if self.split == 'train' else 'right 25%'} "
                f"of each photo")


def decode_image(path: str) -> np.ndarray:
    """Fully decode an image file to uint8 [H, W, 3] RGB (image_io.read_image: 16-bit scaled,
    EXIF orientation applied, Pillow's pixel limit enforced)."""
    return read_image(path)


def held_out(relpath: str, percent: float) -> bool:
    """Whether a folder file belongs to the held-out split: a stable hash of its relative path."""
    return (zlib.crc32(relpath.replace(os.sep, "/").encode()) % 10000) < percent * 100


class FolderSource:
    """Every image under `folder` (recursive, image_io.IMAGE_EXTENSIONS; symbolic links to
    directories are not followed, see image_io.list_images), optionally with paired masks.

    Files that cannot be opened as images, or whose smaller side is below `min_side`, are skipped
    and counted (`self.skipped`, logged). With `mask_dir`, image `a/b.jpg` pairs with the mask
    `mask_dir/a/b.<any image extension>` (read by image_io.read_mask: >= 50% of the range is a
    hole); images without a mask are skipped and counted. `holdout` = (percent, want_held_out)
    keeps only files in (or out of) the held-out split chosen by `held_out`. A folder with no usable image raises ValueError naming it.

    Decoding is checked from the header at start-up (fast even for large folders); a file that
    still fails to decode later is replaced by the next usable image and logged.
    """

    def __init__(self, folder: str, mask_dir: str = "", min_side: int = 32,
                 holdout: tuple[float, bool] | None = None, resize_shorter: int = 0):
        self.resize_shorter = int(resize_shorter)
        if not folder:
            raise ValueError("config.data.data_dir must name the image folder when data.source == 'folder'")
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"image folder {folder!r} does not exist")
        if mask_dir and not os.path.isdir(mask_dir):
            raise FileNotFoundError(f"mask folder {mask_dir!r} does not exist")
        self.folder, self.mask_dir, self.min_side = folder, mask_dir, min_side
        masks = {}
        if mask_dir:
            for rel in list_images(mask_dir, recursive=True):
                masks.setdefault(os.path.splitext(rel)[0], rel)
        self.skipped = {"undecodable": 0, "tiny": 0, "no_mask": 0}
        self.files: list[str] = []
        self.mask_files: list[str | None] = []
        candidates = list_images(folder, recursive=True)
        if holdout is not None:
            percent, want = holdout
            candidates = [r for r in candidates if held_out(r, percent) == want]
        for rel in candidates:
            path = os.path.join(folder, rel)
            try:
                w, h = image_size(path)
            except ValueError as e:  # undecodable header, or above Pillow's pixel limit
                self.skipped["undecodable"] += 1
                log.warning("skipping %s", e)
                continue
            if min(w, h) < min_side:
                self.skipped["tiny"] += 1
                log.warning("skipping %s: %dx%d is smaller than min_image_side=%d", path, w, h, min_side)
                continue
            mask_rel = None
            if mask_dir:
                mask_rel = masks.get(os.path.splitext(rel)[0])
                if mask_rel is None:
                    self.skipped["no_mask"] += 1
                    log.warning("skipping %s: no paired mask under %s", path, mask_dir)
                    continue
            self.files.append(rel)
            self.mask_files.append(mask_rel)
        if not self.files:
            raise ValueError(
                f"no usable image in folder {folder!r}: looked for {', '.join(IMAGE_EXTENSIONS)} "
                f"files (recursively) at least {min_side} px on a side; found {len(candidates)} "
                f"candidate(s), skipped {self.skipped}")
        log.info("%s", self.describe())

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        for attempt in range(len(self.files)):
            j = (i + attempt) % len(self.files)
            path = os.path.join(self.folder, self.files[j])
            try:
                image = decode_image(path)
            except Exception as e:
                log.warning("image %s failed to decode (%s); using the next one", path, e)
                continue
            if self.resize_shorter:
                image = resize_shorter_side(image, self.resize_shorter)
            mask = None
            if self.mask_files[j] is not None:
                mask = read_mask(os.path.join(self.mask_dir, self.mask_files[j]))
                if mask.shape != image.shape[:2]:
                    mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(
                        (image.shape[1], image.shape[0]), Image.NEAREST)) > 127
                    mask = mask.astype(np.float32)
            return image, mask
        raise ValueError(f"no image in folder {self.folder!r} could be decoded")

    def describe(self) -> str:
        s = self.skipped
        return (f"image folder {self.folder}: {len(self)} usable images; skipped {s['undecodable']} "
                f"undecodable, {s['tiny']} smaller than {self.min_side} px"
                + (f", {s['no_mask']} without a paired mask in {self.mask_dir}" if self.mask_dir else ""))


class TfdsSource:
    """A TFDS dataset split read through its array_record data source (no TensorFlow).

    `image_key` names the image feature. The dataset must already be prepared in `data_dir` in
    the array_record format (`tfds build NAME --file_format=array_record`; a few datasets need
    TensorFlow to prepare, never to read).
    """

    def __init__(self, name: str, split: str, data_dir: str = "", image_key: str = "image",
                 resize_shorter: int = 0):
        self.resize_shorter = int(resize_shorter)
        import tensorflow_datasets as tfds
        if not name:
            raise ValueError("config.data.name must name the TFDS dataset when data.source == 'tfds'")
        where = (f"cannot open TFDS dataset {name!r} split {split!r} in data_dir "
                 f"{data_dir or '(default ~/tensorflow_datasets)'!r}")
        fix = (f"Prepare it first: `tfds build {name} --file_format=array_record --data_dir=DIR` "
               f"(datasets built as tfrecord must be rebuilt; some datasets need TensorFlow installed "
               f"to prepare)")
        try:
            prepared = tfds.builder(name, data_dir=data_dir or None).is_prepared()
        except Exception as e:  # not a registered dataset name (or its module cannot be imported)
            raise ValueError(f"{where}: {_first_line(e)}. {fix}.") from e
        if not prepared:
            raise ValueError(f"{where}: it is not prepared there. {fix}.")
        try:
            self._src = tfds.data_source(name, split=split, data_dir=data_dir or None, download=False)
        except Exception as e:  # prepared in another file format, or a split it does not have
            raise ValueError(f"{where} as an array_record data source: {_first_line(e)}. {fix}.") from e
        self.name, self.split, self.image_key = name, split, image_key

    def __len__(self):
        return len(self._src)

    def __getitem__(self, i):
        ex = self._src[int(i)]
        if self.image_key not in ex:
            raise KeyError(f"TFDS dataset {self.name!r} has no feature {self.image_key!r}; "
                           f"features: {sorted(ex)}")
        img = np.asarray(ex[self.image_key])
        if img.ndim == 2:
            img = img[..., None]
        if img.shape[-1] == 1:
            img = np.repeat(img, 3, axis=-1)
        img = np.ascontiguousarray(img[..., :3]).astype(np.uint8)
        if self.resize_shorter:
            img = resize_shorter_side(img, self.resize_shorter)
        return img, None

    def describe(self) -> str:
        return f"TFDS {self.name}[{self.split}] (array_record): {len(self)} examples"


def make_source(data_config, split: str):
    """The source for `split` in {'train', 'eval'} chosen by `config.data`."""
    d = data_config
    rs = int(d.get("resize_shorter", 0))
    if d.source == "samples":
        return SampleSource(split, rs)
    if d.source == "folder":
        if split == "eval" and d.get("eval_dir", ""):
            return FolderSource(d.eval_dir, "", d.get("min_image_side", 32), None, rs)
        holdout = None
        if not d.get("eval_dir", "") and d.get("holdout_percent", 0) > 0:
            holdout = (float(d.holdout_percent), split == "eval")
        return FolderSource(d.data_dir, d.mask_dir if split == "train" else "",
                            d.get("min_image_side", 32), holdout, rs)
    if d.source == "tfds":
        return TfdsSource(d.name, d.train_split if split == "train" else d.eval_split,
                          d.data_dir, d.get("image_key", "image"), rs)
    raise ValueError(f"config.data.source must be 'samples', 'folder' or 'tfds', got {d.source!r}")


def describe(source) -> str:
    return source.describe() if hasattr(source, "describe") else f"{type(source).__name__}: {len(source)}"


__all__: Sequence[str] = ("SampleSource", "FolderSource", "TfdsSource", "make_source", "decode_image",
                          "SAMPLE_PHOTOS", "SAMPLE_HOLDOUT", "sample_split_column", "held_out")


def _first_line(e: BaseException) -> str:
    """`Type: message` of an exception from another library, its first line only (TFDS's messages
    run over several lines of advice that may not apply)."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": .")
