"""Evaluation on a frozen mask set: metrics per hole-area bucket and overall, and samples.png.

For every mask of the frozen set (`inpaintjax.masks.build_eval_mask_set`, built once and reused),
mask i is paired with held-out image i mod N (`inpaintjax.data.eval_images`). Outputs under
`<out_dir>`: eval/metrics.json, eval/metrics.csv, eval/metrics.md (Markdown table), eval/metrics.png
(plot per bucket); the same four for a flat fill (every hole pixel = the mean colour of the image's
known pixels) under eval/flat_fill.* as the floor a model must beat; and samples.png (rows
input | mask | output | truth | flat fill for held-out images, enlarged by an integer factor to at
least SAMPLES_MIN_SIDE pixels a tile).
"""

from __future__ import annotations

import logging
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from inpaintjax import data as data_lib
from inpaintjax import masks as masks_lib
from inpaintjax import metrics as metrics_lib
from inpaintjax.training import logs as logs_lib

log = logging.getLogger(__name__)

SAMPLES_MIN_SIDE = 192


def mask_generators(config) -> list[str]:
    names = config.eval.mask_generator
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    return list(names)


def frozen_masks(config, mask_dir: str):
    """(masks float32 [M, S, S, 1], buckets int [M]) of the frozen set in `mask_dir`, building it
    there first if it does not exist (S = config.eval.image_size)."""
    size = int(config.eval.image_size)
    if not os.path.isfile(os.path.join(mask_dir, masks_lib.MANIFEST)):
        log.info("building the frozen eval mask set in %s", mask_dir)
        masks_lib.build_eval_mask_set(mask_dir, mask_generators(config), (size, size),
                                      int(config.eval.per_bucket), int(config.eval.seed))
    masks, buckets = masks_lib.load_eval_mask_set(mask_dir, stacked=True)
    if masks.shape[1:3] != (size, size):
        raise ValueError(f"the eval mask set in {mask_dir} is {masks.shape[1]}x{masks.shape[2]} but "
                         f"config.eval.image_size is {size}: use another --mask_dir or delete it")
    return masks, buckets


def flat_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Every hole pixel set to the mean colour of the image's known pixels. [B,H,W,3], [B,H,W,1]."""
    known = 1.0 - mask
    mean = (image * known).sum(axis=(1, 2), keepdims=True) / np.maximum(known.sum(axis=(1, 2), keepdims=True), 1)
    return image * known + mean * mask


def evaluate(config, family, variables, out_dir: str, mask_dir: str = "",
             progress: bool = True) -> dict:
    """Evaluate `family` with `variables` on the held-out images of `config.data` and the frozen
    mask set (`mask_dir`, default `<out_dir>/eval_masks`). Returns the model's summary
    {bucket: {metric: mean, 'count': n}, ..., 'all': {...}} and writes the files listed above."""
    size = int(config.eval.image_size)
    if size % family.size_multiple:
        raise ValueError(f"config.eval.image_size={size} must be a multiple of {family.size_multiple} "
                         f"for {family.name}")
    mask_dir = mask_dir or os.path.join(out_dir, "eval_masks")
    masks, buckets = frozen_masks(config, mask_dir)
    images = data_lib.eval_images(config).astype(np.float32) / 255.0
    spec = family.batch_spec()
    n_img, n_mask = len(images), len(masks)
    pair = np.arange(n_mask) % n_img

    @jax.jit
    def run(inputs):
        out = family.inpaint(variables, inputs)
        return jnp.clip(out["output"], 0.0, 1.0), family.evaluation_metrics(inputs, out)

    score = jax.jit(metrics_lib.compute_metrics)
    model = metrics_lib.BucketedMetrics()
    floor = metrics_lib.BucketedMetrics()
    bs = int(config.eval.batch_size)
    starts = range(0, n_mask, bs)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc=f"eval {n_mask} masks x {n_img} images", unit="batch",
                      file=sys.stderr, dynamic_ncols=True)
    outputs = {}
    for s in starts:
        idx = np.arange(s, min(s + bs, n_mask))
        pad = bs - len(idx)  # fixed batch shape: one compilation
        full = np.concatenate([idx, np.repeat(idx[-1:], pad)])
        image, mask = images[pair[full]], masks[full]
        inputs = family.inference_inputs(data_lib.eval_batch(config, spec, image, mask, first=s))
        pred, m = run(inputs)
        m = {k: np.asarray(v)[:len(idx)] for k, v in m.items()}
        model.add(m, buckets[idx])
        base = flat_fill(image, mask)
        fm = jax.device_get(score(base, image, mask))
        floor.add({k: np.asarray(v)[:len(idx)] for k, v in fm.items()}, buckets[idx])
        pred = np.asarray(pred)
        for j, i in enumerate(idx):
            outputs[int(i)] = pred[j]

    ev = os.path.join(out_dir, "eval")
    os.makedirs(ev, exist_ok=True)
    title = f"{config.family}: {n_mask} masks x {n_img} held-out images, {size}x{size}"
    for acc, name in ((model, "metrics"), (floor, "flat_fill")):
        acc.to_json(os.path.join(ev, f"{name}.json"))
        acc.to_csv(os.path.join(ev, f"{name}.csv"))
        acc.to_markdown(os.path.join(ev, f"{name}.md"))
        acc.plot_png(os.path.join(ev, f"{name}.png"), ["l1_hole", "psnr_hole", "ssim", "psnr"],
                     title if name == "metrics" else "flat fill (mean colour of the known pixels)")

    # samples.png: different images, masks from the middle buckets where holes are clearly visible
    rows = []
    want = int(config.eval.get("num_samples", 6))
    order = [i for b in (2, 3, 1, 4, 0, 5) for i in np.flatnonzero(buckets == b)]
    used = set()
    for i in order:
        if len(rows) >= min(want, n_img):
            break
        if pair[i] in used:
            continue
        used.add(pair[i])
        rows.append(i)
    rows = sorted(rows, key=lambda i: pair[i])
    shown, shown_masks = images[pair[rows]], masks[rows]
    grid = logs_lib.image_grid(shown, shown_masks, np.stack([outputs[i] for i in rows]),
                               extras={"flat_fill": flat_fill(shown, shown_masks)})
    # small evaluation crops (the demo's 64 px) are enlarged by whole pixels so they can be seen
    scale = max(1, SAMPLES_MIN_SIDE // size)
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    logs_lib.save_png(grid, os.path.join(out_dir, "samples.png"))
    return model.summary()
