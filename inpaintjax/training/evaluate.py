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

When config.eval names the weight files, every table also holds LPIPS (per image, so per bucket)
and FID, KID, IS, P-IDS / U-IDS (per set of masks: overall, and per bucket with enough masks) for the
model and each classical fill (`inpaintjax.training.eval_perceptual`).
"""

from __future__ import annotations

import json
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
    # a set built from other settings is not this config's set: never reuse it silently
    with open(os.path.join(mask_dir, masks_lib.MANIFEST)) as f:
        manifest = json.load(f)
    wanted = {"mask_generator": (mask_generators(config), "generator"),
              "per_bucket": (int(config.eval.per_bucket), "per_bucket"),
              "seed": (int(config.eval.seed), "seed")}
    differ = [f"config.eval.{key}={value!r} (the set's: {manifest.get(field)!r})"
              for key, (value, field) in wanted.items() if manifest.get(field) != value]
    if differ:
        raise ValueError(f"the eval mask set in {mask_dir} was built from other settings: "
                         f"{'; '.join(differ)}. Use another --mask_dir (or delete that folder) for "
                         f"a set of these settings, or set them back to evaluate on that set")
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


MODEL = "model"  # the model's key among the methods fed to the perceptual metrics


def _gather(rows: dict) -> dict:
    """{name: array [n, ...]} of every JAX process, concatenated in process order (the identity in
    one process); each process may hold a different n."""
    if jax.process_count() == 1:
        return rows
    from inpaintjax.perceptual.fid import allgather_rows
    return {k: allgather_rows(np.asarray(v)) for k, v in rows.items()}


def score_batches(config, family, variables, images, masks, buckets, pair, keep=(),
                  progress: bool = True, perceptual=None):
    """Run the model and the classical fills over every mask of the frozen set, in batches of
    config.eval.batch_size (the last one padded: one compilation). Returns (the model's
    BucketedMetrics, {fill name: BucketedMetrics}, {mask index: output [H,W,3]} for the indices
    in `keep` only: the outputs of other masks are dropped as soon as they are scored).

    `perceptual` (an `eval_perceptual.PerceptualEval`, started) receives every batch's outputs; its
    per-image LPIPS joins the other per-image metrics as 'lpips'. With several JAX processes, process
    p scores batches p, p + P, ... and the per-image values are gathered (every process returns the
    whole tables)."""
    spec = family.batch_spec()
    n_mask, keep = len(masks), set(int(i) for i in keep)
    score = jax.jit(metrics_lib.compute_metrics)
    names = baselines_lib.selected(config.eval.baselines)
    if "telea" in config.eval.baselines and "telea" not in names:
        log.warning("evaluation: no Telea rows (%s)", baselines_lib.OPENCV_MISSING)
    bs = int(config.eval.batch_size)
    starts = list(range(0, n_mask, bs))[jax.process_index()::jax.process_count()]
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc=f"eval {n_mask} masks x {len(images)} images", unit="batch",
                      file=sys.stderr, dynamic_ncols=True)
    # per-image values (a few floats a mask), added to the bucket tables in mask order at the end
    values = {n: [] for n in [MODEL] + names}
    index, kept = [], {}
    for s in starts:
        idx = np.arange(s, min(s + bs, n_mask))
        full = np.concatenate([idx, np.repeat(idx[-1:], bs - len(idx))])
        image, mask = images[pair[full]], masks[full]
        inputs = family.inference_inputs(data_lib.eval_batch(config, spec, image, mask, first=s))
        pred, m = predict(family, variables, inputs)
        per_image = {MODEL: {k: np.asarray(v)[:len(idx)] for k, v in m.items()}}
        fills = {n: baselines_lib.fill(n, image, mask) for n in names}
        for n, filled in fills.items():
            fm = jax.device_get(score(filled, image, mask))
            per_image[n] = {k: np.asarray(v)[:len(idx)] for k, v in fm.items()}
        if perceptual is not None:
            lpips = perceptual.add(idx, image, {MODEL: pred, **fills})
            for n, d in lpips.items():
                per_image[n]["lpips"] = d
        for n, v in per_image.items():
            values[n].append(v)
        index.append(idx)
        wanted = [(j, int(i)) for j, i in enumerate(idx) if int(i) in keep]
        if wanted:
            pred = np.asarray(pred)
            kept.update({i: pred[j].copy() for j, i in wanted})
    if not index:
        raise ValueError(f"process {jax.process_index()} has no evaluation batch: {n_mask} masks in "
                         f"batches of {bs} for {jax.process_count()} processes; lower config.eval.batch_size")
    order_rows = _gather({"index": np.concatenate(index) if index else np.zeros(0, np.int64)})["index"]
    order = np.argsort(order_rows, kind="stable")
    tables = {}
    for n, batches in values.items():
        cols = _gather({k: np.concatenate([b[k] for b in batches]) for k in batches[0]})
        tables[n] = metrics_lib.BucketedMetrics()
        tables[n].add({k: v[order] for k, v in cols.items()}, buckets[order_rows[order]])
    if jax.process_count() > 1:  # the samples' outputs, wherever they were computed
        ids = np.asarray(sorted(kept), np.int64)
        got = _gather({"i": ids, "x": np.stack([kept[i] for i in ids]) if len(ids) else
                       np.zeros((0,) + images.shape[1:], np.float32)})
        kept = {int(i): x for i, x in zip(got["i"], got["x"])}
    return tables[MODEL], {n: tables[n] for n in names}, kept


def _with_set_metrics(summary: dict, values: dict, reasons: dict, columns) -> dict:
    """The summary with the set-level metrics' columns (None where not computed) and each row's
    reasons under 'not_computed'."""
    out = {}
    for g, row in summary.items():
        row = dict(row)
        for c in columns:
            if c not in row:
                row[c] = values.get(g, {}).get(c)
        why = reasons.get(g, {})
        if why:
            row["not_computed"] = dict(why)
        out[g] = row
    return out


def write_tables(ev: str, label: str, title: str, model, classical: dict, sizes: str,
                 perceptual: tuple = ({}, {}, ())) -> None:
    """metrics.* and baseline_<name>.* (JSON, CSV, Markdown, plot) and comparison.md in `ev`.
    `perceptual`: (values, reasons, columns) of the set-level metrics from
    `PerceptualEval.results()` (keyed by method: MODEL or a fill's name) and the perceptual columns
    of the tables, in order."""
    from inpaintjax import metrics_report
    values, reasons, columns = perceptual
    os.makedirs(ev, exist_ok=True)
    files = [(MODEL, model, "metrics", title)] + [
        (n, acc, f"baseline_{n}", f"{baselines_lib.DESCRIPTIONS[n]}: {sizes}")
        for n, acc in classical.items()]
    summaries = {}
    for key, acc, name, caption in files:
        summary = _with_set_metrics(acc.summary(), values.get(key, {}), reasons.get(key, {}), columns)
        summaries[key] = summary
        names = list(acc.metric_names or ()) + [c for c in columns if c not in (acc.metric_names or ())]
        metrics_report.write_json(summary, os.path.join(ev, f"{name}.json"))
        metrics_report.csv_text(summary, names, os.path.join(ev, f"{name}.csv"))
        metrics_report.markdown_text(summary, names, os.path.join(ev, f"{name}.md"))
        # a family's own metrics (EdgeConnect mode 1: edge precision / recall) are plotted whole
        shown = [k for k in ("l1_hole", "psnr_hole", "ssim", "psnr", "lpips") if k in names]
        metrics_report.plot_png(summary, shown or names, os.path.join(ev, f"{name}.png"), caption)
    shown = COMPARISON_METRICS + tuple(c for c in columns if not c.endswith("_std"))
    table = comparison_markdown({label: summaries[MODEL],
                                 **{n: summaries[n] for n in classical}}, shown)
    notes = metrics_report.not_computed_notes({label: summaries[MODEL],
                                               **{n: summaries[n] for n in classical}})
    with open(os.path.join(ev, "comparison.md"), "w") as f:
        f.write(f"{title}; rows per bucket: the model, then the classical fills\n\n{table}{notes}")


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


def local_mesh():
    """A 1-D mesh ('data') over this process's devices: the Inception and LPIPS batches of the
    evaluation are split over them."""
    from jax.sharding import Mesh
    return Mesh(np.array(jax.local_devices()), ("data",))


def evaluate(config, family, variables, out_dir: str, mask_dir: str = "",
             progress: bool = True, mesh=None) -> dict:
    """Evaluate `family` with `variables` on the held-out images of `config.data` and the frozen
    mask set (`mask_dir`, default `<out_dir>/eval_masks`). Returns the model's summary
    {bucket: {metric: mean, 'count': n}, ..., 'all': {...}} and writes the files listed above.

    The perceptual metrics config.eval.perceptual_metrics enables (their weight files named by
    config.eval.inception_weights / lpips_backbone / lpips_lin; read first, so a wrong file stops
    the evaluation before any work) add columns: LPIPS per image (bucket means), FID, KID, IS,
    P-IDS and U-IDS per set of masks (`eval_perceptual`). Their batches are split over the devices
    of `mesh` (default: this process's devices). In a multi-process run every process calls this
    function: each scores its share of the batches, the tables are combined, process 0 writes them."""
    from inpaintjax.training import eval_perceptual
    from inpaintjax.training.loop import mark_configuration_error
    try:  # the settings, weight files, masks and images: an error here stops before any work
        size = int(config.eval.image_size)
        if int(config.eval.batch_size) < 1:
            raise ValueError(f"config.eval.batch_size must be >= 1, got {config.eval.batch_size}")
        if size % family.size_multiple:
            raise ValueError(f"config.eval.image_size={size} must be a multiple of "
                             f"{family.size_multiple} for {family.name}")
        perceptual = eval_perceptual.from_config(config, mesh if mesh is not None else local_mesh())
        baselines = baselines_lib.selected(config.eval.baselines)
        mask_dir = mask_dir or os.path.join(out_dir, "eval_masks")
        if jax.process_index() == 0:
            masks, buckets = frozen_masks(config, mask_dir)  # built by one process only
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            multihost_utils.sync_global_devices("inpaintjax eval masks")
        if jax.process_index() != 0:
            masks, buckets = frozen_masks(config, mask_dir)
        images = data_lib.eval_images(config).astype(np.float32) / 255.0
    except (ValueError, KeyError, FileNotFoundError, NotADirectoryError) as e:
        mark_configuration_error(e)
        raise
    progress = progress and jax.process_index() == 0
    n_img, n_mask = len(images), len(masks)
    pair = np.arange(n_mask) % n_img
    rows = sample_rows(buckets, pair, int(config.eval.get("num_samples", 6)), n_img)
    columns: tuple = ()
    if perceptual is not None:
        methods = [MODEL] + baselines
        perceptual.start(images, pair, buckets, methods, int(config.eval.batch_size))
        columns = tuple(perceptual.columns())
    model, classical, outputs = score_batches(config, family, variables, images, masks, buckets,
                                              pair, rows, progress, perceptual)
    values, reasons = perceptual.results() if perceptual is not None else ({}, {})
    summary = _with_set_metrics(model.summary(), values.get(MODEL, {}), reasons.get(MODEL, {}), columns)
    if jax.process_index() != 0:
        return summary
    label = family.evaluation_label()
    write_tables(os.path.join(out_dir, "eval"), label,
                 f"{label}: {n_mask} masks x {n_img} held-out images, {size}x{size}", model,
                 classical, f"{n_mask} masks x {n_img} images", (values, reasons, columns))
    write_samples(os.path.join(out_dir, "samples.png"), config.family, images, masks, pair, rows,
                  outputs, size)
    return summary
