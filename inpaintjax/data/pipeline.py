"""Training batches as a pure function of (seed, batch index, row), and the held-out evaluation images.

Batch k of a run is fixed by the config alone: global row r of batch k is example
`order(seed, epoch)[(k * B + r) % N]` (a seeded permutation per epoch), cropped, flipped and masked
with generators seeded by (seed, k, r). A training step that consumes several batches (the family's
`batches_per_step` = n) takes batches s*n .. s*n+n-1 at step s. So the iterator's whole state is the
next step number: a resumed run sees exactly the batches an uninterrupted one would have, whatever
the number of hosts. Each process prepares only the rows that its own devices hold (`rows`): over
an epoch the hosts read disjoint shares of the dataset and no host reads the rest.

What a batch holds is the family's batch spec (`inpaintjax.data.fields`): after the crop, the flip
(image and mask together) and the mask draw, every field is computed from the example's image and
mask with its own seeded stream.
"""

from __future__ import annotations

import functools
import logging
from typing import Iterator, Mapping, Sequence

import numpy as np
from PIL import Image

from inpaintjax import masks as masks_lib
from inpaintjax.data import fields as fields_lib
from inpaintjax.data import sources

log = logging.getLogger(__name__)

# Distinct stream tags so the data order, crops, masks and fields never share random numbers.
_ORDER, _CROP, _MASK, _EVAL, _FIELD = 0x0DE7, 0xC7E9, 0x3A5C, 0xE7A1, 0xF1E7


def _resize(img: np.ndarray, h: int, w: int, nearest: bool = False) -> np.ndarray:
    if img.shape[0] == h and img.shape[1] == w:
        return img
    if img.dtype != np.uint8:  # masks: float {0,1}
        out = Image.fromarray((img > 0.5).astype(np.uint8) * 255).resize((w, h), Image.NEAREST)
        return (np.asarray(out) > 127).astype(np.float32)
    return np.asarray(Image.fromarray(img).resize((w, h), Image.NEAREST if nearest else Image.BILINEAR))


CROP_MODES = ("random", "resize")


def check_crop(mode: str) -> None:
    """config.data.crop is one of CROP_MODES (checked when a run is planned, before its workdir)."""
    if mode not in CROP_MODES:
        raise ValueError(f"config.data.crop must be 'random' or 'resize', got {mode!r}")


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
        check_crop(mode)
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

    `spec`: the family's batch spec; `rows`: the global batch rows this process prepares (its
    devices' shares), sorted; `batches_per_step`: batches one training step consumes (stacked on a
    leading axis when > 1).
    """

    def __init__(self, config, source, rows: Sequence[int], spec: Mapping[str, fields_lib.Field],
                 batches_per_step: int = 1):
        fields_lib.check_spec(spec)
        self.config = config
        self.source = source
        self.spec = dict(spec)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.global_batch = int(config.batch_size)
        self.size = int(config.data.image_size)
        self.seed = int(config.seed)
        self.n = len(source)
        self.per_step = int(batches_per_step)
        if self.per_step < 1:
            raise ValueError(f"batches_per_step must be >= 1, got {self.per_step}")

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
        """Batch k (this process's rows): every field of the spec, stacked on the batch axis."""
        c = self.config
        rows = []
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
            rows.append(fields_lib.compute_example(
                self.spec, img, np.asarray(hole, np.float32)[..., None],
                np.random.default_rng([self.seed, _FIELD, k, int(r)])))
        return {key: np.stack([row[key] for row in rows]) for key in self.spec}

    def step_batch(self, step: int) -> dict[str, np.ndarray]:
        """What training step `step` (0-based) consumes: batch `step`, or batches
        step*n .. step*n+n-1 stacked [n, b, ...] when the family takes n > 1 per step."""
        if self.per_step == 1:
            return self.batch(step)
        parts = [self.batch(step * self.per_step + j) for j in range(self.per_step)]
        return {key: np.stack([p[key] for p in parts]) for key in self.spec}

    def iterate(self, start: int, stop: int) -> Iterator[dict[str, np.ndarray]]:
        """The inputs of steps start, start+1, ..., stop-1, prepared ahead by grain's threads."""
        import grain
        threads = max(int(self.config.data.get("num_workers", 0)), 0)
        prefetch = max(int(self.config.data.get("prefetch", 2)), 1)
        if threads == 0 or stop - start <= 1:
            return (self.step_batch(k) for k in range(start, stop))
        ds = grain.MapDataset.range(start, stop).map(self.step_batch)
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


def eval_batch(config, spec: Mapping[str, fields_lib.Field], images: np.ndarray,
               holes: np.ndarray, first: int = 0, indices=None) -> dict[str, np.ndarray]:
    """The spec's fields for held-out images (uint8 or float [B, S, S, 3]) and masks [B, S, S, 1],
    computed on the ground truth with streams seeded by (config.eval.seed, first + i), or by
    (config.eval.seed, indices[i]) when the rows' indices are given."""
    imgs = np.asarray(images)
    imgs = imgs.astype(np.float32) / 255.0 if imgs.dtype == np.uint8 else imgs.astype(np.float32)
    ids = range(first, first + len(imgs)) if indices is None else [int(i) for i in indices]
    rngs = [np.random.default_rng([int(config.eval.seed), _FIELD, i]) for i in ids]
    return fields_lib.compute_batch(spec, imgs, np.asarray(holes, np.float32), rngs)


def preview_batch(config, spec: Mapping[str, fields_lib.Field], num: int = 4) -> dict[str, np.ndarray]:
    """A fixed held-out batch (the spec's fields, masks from the training generator) for the image
    grids logged during training, at config.data.image_size."""
    size = int(config.data.image_size)
    sub = config.copy_and_resolve_references()
    with sub.unlocked():
        sub.eval.image_size = size
    try:
        images = eval_images(sub, num)
    except (ValueError, FileNotFoundError) as e:  # e.g. a small folder with no held-out file
        log.warning("no held-out images for the training previews (%s); using training images", e)
        images = eval_images(sub, num, sources.make_source(config.data, "train"))
    holes = [masks_lib.make_mask(config.mask.generator, np.random.default_rng([int(config.eval.seed), _MASK, j]),
                                 size, size) for j in range(len(images))]
    return eval_batch(config, spec, images, np.stack(holes).astype(np.float32)[..., None])
