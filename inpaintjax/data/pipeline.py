"""Training batches as a pure function of (seed, step, row), and the held-out evaluation images.

Batch k of a run is fixed by the config alone: global row r of batch k is example
`order(seed, epoch)[(k * B + r) % N]` (a seeded permutation per epoch), cropped, flipped and masked
with generators seeded by (seed, k, r). So the iterator's whole state is the next step number: a
resumed run sees exactly the batches an uninterrupted one would have, whatever the number of hosts.
Each process prepares only the rows that its own devices hold (`rows`): over an epoch the hosts read
disjoint shares of the dataset and no host reads the rest.

Batches (numpy, this process's rows): image float32 [b, S, S, 3] RGB in [0, 1]; mask float32
[b, S, S, 1] (1 = hole); guide float32 [b, S, S, 1] in {0, 1} when config.data.guide == 'edges'.
"""

from __future__ import annotations

import functools
import logging
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from inpaintjax import masks as masks_lib
from inpaintjax.data import sources

log = logging.getLogger(__name__)

# Distinct stream tags so the data order, crops and masks never share random numbers.
_ORDER, _CROP, _MASK, _EVAL = 0x0DE7, 0xC7E9, 0x3A5C, 0xE7A1


def canny_edges(image: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Edge guide of an RGB image (float [H, W, 3] in [0, 1] or uint8): scikit-image's Canny on
    the luminance. Returns float32 [H, W, 1] in {0, 1}."""
    from skimage.color import rgb2gray
    from skimage.feature import canny
    img = np.asarray(image)
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    return canny(rgb2gray(img), sigma=sigma).astype(np.float32)[..., None]


def _resize(img: np.ndarray, h: int, w: int, nearest: bool = False) -> np.ndarray:
    if img.shape[0] == h and img.shape[1] == w:
        return img
    if img.dtype != np.uint8:  # masks: float {0,1}
        out = Image.fromarray((img > 0.5).astype(np.uint8) * 255).resize((w, h), Image.NEAREST)
        return (np.asarray(out) > 127).astype(np.float32)
    return np.asarray(Image.fromarray(img).resize((w, h), Image.NEAREST if nearest else Image.BILINEAR))


def random_crop(image: np.ndarray, mask: np.ndarray | None, size: int, rng: np.random.Generator,
                mode: str = "random", flip: bool = False):
    """DeepFill's training crop: 'random' up-scales an image smaller than `size` on a side (keeping
    the aspect, ceil) and then cuts a uniformly random size x size window; 'resize' squeezes the
    whole image to size x size. `flip` adds a random horizontal flip. A paired mask follows."""
    h, w = image.shape[:2]
    if mode == "resize":
        image = _resize(image, size, size)
        mask = None if mask is None else _resize(mask, size, size)
    elif mode == "random":
        if h < size or w < size:
            scale = size / min(h, w)
            nh, nw = max(size, int(np.ceil(h * scale))), max(size, int(np.ceil(w * scale)))
            image = _resize(image, nh, nw)
            mask = None if mask is None else _resize(mask, nh, nw)
            h, w = nh, nw
        top = int(rng.integers(0, h - size + 1))
        left = int(rng.integers(0, w - size + 1))
        image = image[top:top + size, left:left + size]
        mask = None if mask is None else mask[top:top + size, left:left + size]
    else:
        raise ValueError(f"config.data.crop must be 'random' or 'resize', got {mode!r}")
    if flip and rng.random() < 0.5:
        image = image[:, ::-1]
        mask = None if mask is None else mask[:, ::-1]
    return image, mask


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Evaluation view: resize the shorter side to `size` (if it differs) and cut the centre."""
    h, w = image.shape[:2]
    if min(h, w) != size:
        scale = size / min(h, w)
        h, w = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
        image = _resize(image, h, w)
    top, left = (h - size) // 2, (w - size) // 2
    return image[top:top + size, left:left + size]


class TrainBatches:
    """The training stream of one process: `batch(k)` is a pure function of (config, k, rows).

    `rows`: the global batch rows this process prepares (its devices' shares), sorted.
    """

    def __init__(self, config, source, rows: Sequence[int]):
        self.config = config
        self.source = source
        self.rows = np.asarray(rows, dtype=np.int64)
        self.global_batch = int(config.batch_size)
        self.size = int(config.data.image_size)
        self.seed = int(config.seed)
        self.n = len(source)
        if config.data.guide not in ("", "edges"):
            raise ValueError(f"config.data.guide must be '' or 'edges', got {config.data.guide!r}")

    @functools.lru_cache(maxsize=4)
    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, _ORDER, epoch]).permutation(self.n)

    def example_index(self, k: int, r: int) -> int:
        """Dataset index of global row r of batch k (every example once per epoch)."""
        p = k * self.global_batch + r
        return int(self._order(p // self.n)[p % self.n])

    def _mask(self, rng: np.random.Generator) -> np.ndarray:
        return masks_lib.make_mask(self.config.mask.generator, rng, self.size, self.size)

    def batch(self, k: int) -> dict[str, np.ndarray]:
        c = self.config
        images, holes, guides = [], [], []
        shared = None
        if c.mask.per_batch:
            shared = self._mask(np.random.default_rng([self.seed, _MASK, k]))
        for r in self.rows:
            image, paired = self.source[self.example_index(k, int(r))]
            rng = np.random.default_rng([self.seed, _CROP, k, int(r)])
            image, paired = random_crop(image, paired, self.size, rng, c.data.crop, c.data.flip)
            if paired is not None:
                hole = paired
            elif shared is not None:
                hole = shared
            else:
                hole = self._mask(np.random.default_rng([self.seed, _MASK, k, int(r)]))
            img = image.astype(np.float32) / 255.0
            images.append(img)
            holes.append(np.asarray(hole, np.float32))
            if c.data.guide == "edges":
                guides.append(canny_edges(img, c.data.get("edge_sigma", 2.0)))
        out = {"image": np.stack(images), "mask": np.stack(holes)[..., None]}
        if guides:
            out["guide"] = np.stack(guides)
        return out

    def iterate(self, start: int, stop: int) -> Iterator[dict[str, np.ndarray]]:
        """Batches start, start+1, ..., stop-1, prepared ahead by grain's reader threads."""
        import grain
        threads = max(int(self.config.data.get("num_workers", 0)), 0)
        prefetch = max(int(self.config.data.get("prefetch", 2)), 1)
        if threads == 0 or stop - start <= 1:
            return (self.batch(k) for k in range(start, stop))
        ds = grain.MapDataset.range(start, stop).map(self.batch)
        return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=threads,
                                                         prefetch_buffer_size=prefetch)))


def eval_images(config, num: int | None = None, source=None) -> np.ndarray:
    """The held-out images evaluation uses: uint8 [N, S, S, 3], S = config.eval.image_size,
    deterministic (config.eval.seed). The sample set gives N crops spread over the photos'
    held-out strips; a folder or TFDS split gives the centre crops of its first N images."""
    num = int(config.eval.num_images if num is None else num)
    size = int(config.eval.image_size)
    source = sources.make_source(config.data, "eval") if source is None else source
    out = []
    if config.data.source == "samples":
        for j in range(num):
            image, _ = source[j % len(source)]
            rng = np.random.default_rng([int(config.eval.seed), _EVAL, j])
            crop, _ = random_crop(image, None, size, rng, "random", False)
            out.append(crop)
    else:
        for j in range(min(num, len(source))):
            out.append(center_crop(source[j][0], size))
    return np.stack(out).astype(np.uint8)


def preview_batch(config, num: int = 4) -> dict[str, np.ndarray]:
    """A fixed held-out batch (image, mask from the training generator, guide) for the image grids
    logged during training: float32, the training batch layout, at config.data.image_size."""
    size = int(config.data.image_size)
    sub = config.copy_and_resolve_references()
    with sub.unlocked():
        sub.eval.image_size = size
    try:
        images = eval_images(sub, num)
    except (ValueError, FileNotFoundError) as e:  # e.g. a small folder with no held-out file
        log.warning("no held-out images for the training previews (%s); using training images", e)
        images = eval_images(sub, num, sources.make_source(config.data, "train"))
    images = images.astype(np.float32) / 255.0
    holes = [masks_lib.make_mask(config.mask.generator, np.random.default_rng([int(config.eval.seed), _MASK, j]),
                                 size, size) for j in range(len(images))]
    out = {"image": images, "mask": np.stack(holes).astype(np.float32)[..., None]}
    if config.data.guide == "edges":
        out["guide"] = np.stack([canny_edges(im, config.data.get("edge_sigma", 2.0)) for im in images])
    return out
