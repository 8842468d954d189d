"""Evaluation on a frozen mask set: metrics per hole-area bucket and overall, beside the classical
fills on the same images and masks, and samples.png.

For every mask of the frozen set (`inpaintjax.masks.build_eval_mask_set`, built once and reused),
mask i is paired with held-out image i mod N (`inpaintjax.data.eval_images`). Outputs under
`<out_dir>/eval`: metrics.{json,csv,md,png} for the model; baseline_<name>.{json,csv,md,png} for
each classical fill of `inpaintjax.baselines` (mean colour, biharmonic, Telea when OpenCV is
installed, PatchMatch), the floor and the yardsticks a learned model is read against; comparison.md, one
Markdown table of every method per bucket. `<out_dir>/samples.png`: labelled columns input (hole
tinted and outlined) | output | a classical fill | truth for held-out images, enlarged by whole
pixels to at least SAMPLES_MIN_SIDE pixels a tile.
"""

from __future__ import annotations

import logging
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from inpaintjax import baselines as baselines_lib
from inpaintjax import data as data_lib
from inpaintjax import masks as masks_lib
from inpaintjax import metrics as metrics_lib
from inpaintjax.training import pictures

log = logging.getLogger(__name__)

SAMPLES_MIN_SIDE = 256
# metrics of the combined table, and the classical fill shown in samples.png (first available)
COMPARISON_METRICS = ("l1_hole", "l2_hole", "psnr_hole", "ssim_hole", "psnr", "ssim")
SAMPLES_BASELINES = ("telea", "biharmonic", "mean")


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


def comparison_markdown(results: dict, metrics=COMPARISON_METRICS) -> str:
    """One Markdown table, methods side by side within each bucket: `results` maps a method name
    to its BucketedMetrics summary ({bucket: {metric: mean or None, 'count': n}})."""
    lines = ["| bucket | method | count | " + " | ".join(metrics) + " |",
             "|---|---|---:|" + "---:|" * len(metrics)]
    buckets = list(next(iter(results.values())))
    for b in buckets:
        for name, summary in results.items():
            row = summary[b]
            cells = []
            for k in metrics:
                v = row.get(k)
                ok = v is not None and np.isfinite(v)
                cells.append(f"{v:.{2 if k.startswith('psnr') else 4}f}" if ok else "-")
            lines.append(f"| {b} | {name} | {row['count']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _predict(family, variables, inputs):
    out = family.inpaint(variables, inputs)
    return jnp.clip(out["output"], 0.0, 1.0), family.evaluation_metrics(inputs, out)


#: (family, variables, inputs) -> (output [B,H,W,3] in [0,1], the family's per-example metrics).
#: The weights are an argument, not constants of the program: one compilation per family and
#: batch shape, whatever weights are evaluated.
predict = jax.jit(_predict, static_argnums=0)


def sample_rows(buckets: np.ndarray, pair: np.ndarray, want: int, num_images: int) -> list[int]:
    """Mask indices shown in samples.png: `want` different images (at most `num_images`), masks
    from the middle hole-area buckets first (holes clearly visible), ordered by image."""
    rows, used = [], set()
    order = [i for b in (2, 3, 1, 4, 0, 5) for i in np.flatnonzero(buckets == b)]
    for i in order:
        if len(rows) >= min(want, num_images):
            break
        if pair[i] in used:
            continue
        used.add(pair[i])
        rows.append(int(i))
    return sorted(rows, key=lambda i: pair[i])


def score_batches(config, family, variables, images, masks, buckets, pair, keep=(),
                  progress: bool = True):
    """Run the model and the classical fills over every mask of the frozen set, in batches of
    config.eval.batch_size (the last one padded: one compilation). Returns (the model's
    BucketedMetrics, {fill name: BucketedMetrics}, {mask index: output [H,W,3]} for the indices
    in `keep` only: the outputs of other masks are dropped as soon as they are scored)."""
    spec = family.batch_spec()
    n_mask, keep = len(masks), set(int(i) for i in keep)
    score = jax.jit(metrics_lib.compute_metrics)
    model = metrics_lib.BucketedMetrics()
    names = baselines_lib.selected(config.eval.baselines)
    if "telea" in config.eval.baselines and "telea" not in names:
        log.warning("evaluation: no Telea rows (%s)", baselines_lib.OPENCV_MISSING)
    classical = {n: metrics_lib.BucketedMetrics() for n in names}
    bs = int(config.eval.batch_size)
    starts = range(0, n_mask, bs)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc=f"eval {n_mask} masks x {len(images)} images", unit="batch",
                      file=sys.stderr, dynamic_ncols=True)
    kept = {}
    for s in starts:
        idx = np.arange(s, min(s + bs, n_mask))
        full = np.concatenate([idx, np.repeat(idx[-1:], bs - len(idx))])
        image, mask = images[pair[full]], masks[full]
        inputs = family.inference_inputs(data_lib.eval_batch(config, spec, image, mask, first=s))
        pred, m = predict(family, variables, inputs)
        model.add({k: np.asarray(v)[:len(idx)] for k, v in m.items()}, buckets[idx])
        for n, acc in classical.items():
            fm = jax.device_get(score(baselines_lib.fill(n, image, mask), image, mask))
            acc.add({k: np.asarray(v)[:len(idx)] for k, v in fm.items()}, buckets[idx])
        wanted = [(j, int(i)) for j, i in enumerate(idx) if int(i) in keep]
        if wanted:
            pred = np.asarray(pred)
            kept.update({i: pred[j].copy() for j, i in wanted})
    return model, classical, kept


def write_tables(ev: str, label: str, title: str, model, classical: dict, sizes: str) -> None:
    """metrics.* and baseline_<name>.* (JSON, CSV, Markdown, plot) and comparison.md in `ev`."""
    os.makedirs(ev, exist_ok=True)
    files = [(model, "metrics", title)] + [
        (acc, f"baseline_{n}", f"{baselines_lib.DESCRIPTIONS[n]}: {sizes}")
        for n, acc in classical.items()]
    for acc, name, caption in files:
        acc.to_json(os.path.join(ev, f"{name}.json"))
        acc.to_csv(os.path.join(ev, f"{name}.csv"))
        acc.to_markdown(os.path.join(ev, f"{name}.md"))
        # a family's own metrics (EdgeConnect mode 1: edge precision / recall) are plotted whole
        shown = [k for k in ("l1_hole", "psnr_hole", "ssim", "psnr") if k in (acc.metric_names or ())]
        acc.plot_png(os.path.join(ev, f"{name}.png"), shown or None, caption)
    table = comparison_markdown({label: model.summary(),
                                 **{n: acc.summary() for n, acc in classical.items()}})
    with open(os.path.join(ev, "comparison.md"), "w") as f:
        f.write(f"{title}; rows per bucket: the model, then the classical fills\n\n{table}")


def write_samples(path: str, family_name: str, images, masks, pair, rows, outputs: dict,
                  size: int) -> None:
    """samples.png: input (hole marked) | model output | a classical fill | truth, one row per
    mask index in `rows` (`outputs` holds the model's output of each)."""
    shown, shown_masks = images[pair[rows]], masks[rows]
    # small evaluation crops (the demo's 64 px) are enlarged by whole pixels so details show
    scale = max(1, -(-SAMPLES_MIN_SIDE // size))
    fill_name = next(n for n in SAMPLES_BASELINES if n in baselines_lib.available())  # cheap fills
    marked = np.stack([pictures.mark_hole(im, m, scale) for im, m in zip(shown, shown_masks)])
    grid = pictures.labelled_grid(
        [("input (hole marked)", marked),
         (f"{family_name} output", np.stack([outputs[i] for i in rows])),
         (f"{fill_name} fill (classical)", baselines_lib.fill(fill_name, shown, shown_masks)),
         ("truth", shown)], scale=scale)
    pictures.save_png(grid, path)


def evaluate(config, family, variables, out_dir: str, mask_dir: str = "",
             progress: bool = True) -> dict:
    """Evaluate `family` with `variables` on the held-out images of `config.data` and the frozen
    mask set (`mask_dir`, default `<out_dir>/eval_masks`). Returns the model's summary
    {bucket: {metric: mean, 'count': n}, ..., 'all': {...}} and writes the files listed above."""
    size = int(config.eval.image_size)
    if size % family.size_multiple:
        raise ValueError(f"config.eval.image_size={size} must be a multiple of {family.size_multiple} "
                         f"for {family.name}")
    masks, buckets = frozen_masks(config, mask_dir or os.path.join(out_dir, "eval_masks"))
    images = data_lib.eval_images(config).astype(np.float32) / 255.0
    n_img, n_mask = len(images), len(masks)
    pair = np.arange(n_mask) % n_img
    rows = sample_rows(buckets, pair, int(config.eval.get("num_samples", 6)), n_img)
    model, classical, outputs = score_batches(config, family, variables, images, masks, buckets,
                                              pair, rows, progress)
    label = family.evaluation_label()
    write_tables(os.path.join(out_dir, "eval"), label,
                 f"{label}: {n_mask} masks x {n_img} held-out images, {size}x{size}", model,
                 classical, f"{n_mask} masks x {n_img} images")
    write_samples(os.path.join(out_dir, "samples.png"), config.family, images, masks, pair, rows,
                  outputs, size)
    return model.summary()
