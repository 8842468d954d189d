"""Evaluate a folder of inpainted images against a folder of ground truth with the field's metrics
(`inpaintjax evaluate`, the way people run `python -m pytorch_fid DIR1 DIR2`).

Files are paired by their path relative to each folder without the extension (`a/b.png` with
`a/b.jpg`); a file without its pair (in either direction, the mask folder's too) is an error that
names it. Each pair must have one size. The optional mask folder pairs the same way and adds the
hole-only classical metrics; a mask pixel is bright from half of its value range up
(`inpaintjax.image_io.read_mask`), and `mask_polarity` says whether bright is hole ('white_hole',
the default) or known ('black_hole', or a source name such as 'mat': `inpaintjax.masks.folders`).
The hole-only metrics are means over the images whose mask has a hole (`hole_count` in the report);
a mask without hole is left out of them with a warning naming it.

Metrics (names for `metrics=`): l1, l2, psnr, ssim (inpaintjax.metrics, means over images; with masks
also l1_hole ... ssim_hole), fid, kid, is (inpaintjax.perceptual.fid; IS of the outputs, 10 splits in
file order), lpips (mean over pairs; images of at least `lpips.MIN_SIZE[net]` pixels a side), pids, uids
(inpaintjax.perceptual.ids). FID keeps only float64 running sums (memory flat in the number of images);
KID, P-IDS and U-IDS need every pool3 vector (8 KB an image), IS every logit vector (4 KB an image),
kept only when asked for.

Images are read in chunks of `batch_size` pairs; each chunk (truth and output stacked) runs through the
jitted Inception with the batch split over the largest number of local devices that divides it, and
the last chunk is padded (the padding is dropped), so one program serves the whole run. A chunk
ends early where the image size changes.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from typing import Optional, Sequence

import numpy as np

from inpaintjax.image_io import list_images

CLASSICAL = ("l1", "l2", "psnr", "ssim")
INCEPTION_METRICS = ("fid", "kid", "is", "pids", "uids")
ALL_METRICS = CLASSICAL + INCEPTION_METRICS + ("lpips",)


def parse_metrics(text: str) -> list[str]:
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown or not names:
        raise ValueError(f"--metrics {text!r}: unknown {unknown or 'empty list'}; choose from {','.join(ALL_METRICS)}")
    return list(dict.fromkeys(names))


def _by_stem(folder: str, what: str) -> dict[str, str]:
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"--{what} {folder} is not a directory")
    out: dict[str, str] = {}
    for rel in list_images(folder, recursive=True):
        stem = os.path.splitext(rel)[0]
        if stem in out:
            raise ValueError(f"--{what} {folder} holds {out[stem]} and {rel}: two files for one image; "
                             f"remove one")
        out[stem] = rel
    if not out:
        raise FileNotFoundError(f"--{what} {folder} holds no images")
    return out


def pair_files(truth_dir: str, output_dir: str, mask_dir: Optional[str] = None) -> list[tuple]:
    """[(truth path, output path, mask path or None)] sorted by relative path; every file of each
    folder, the mask folder's included, must have its pair (an error names the first unpaired ones)."""
    truth, outputs = _by_stem(truth_dir, "truth"), _by_stem(output_dir, "output")
    masks = _by_stem(mask_dir, "mask") if mask_dir else None
    for a, b, an, bn in ((truth, outputs, truth_dir, output_dir), (outputs, truth, output_dir, truth_dir)) + \
            (((truth, masks, truth_dir, mask_dir), (masks, truth, mask_dir, truth_dir)) if masks is not None else ()):
        lonely = sorted(set(a) - set(b))
        if lonely:
            shown = ", ".join(os.path.join(an, a[s]) for s in lonely[:5])
            more = f" and {len(lonely) - 5} more" if len(lonely) > 5 else ""
            raise FileNotFoundError(f"{shown}{more}: no file with the same relative path (any image "
                                    f"extension) in {bn}; every image needs its pair")
    return [(os.path.join(truth_dir, truth[s]), os.path.join(output_dir, outputs[s]),
             os.path.join(mask_dir, masks[s]) if masks is not None else None) for s in sorted(truth)]


def _device_count(batch: int) -> int:
    import jax
    n = jax.local_device_count()
    return max(d for d in range(1, n + 1) if batch % d == 0)


class _Progress:
    def __init__(self, total: int, stream=None):
        # sys.stderr looked up now, not when the module was imported (it may have been replaced since)
        self.total, self.stream, self.t0, self.done = total, stream or sys.stderr, time.time(), 0

    def update(self, n: int) -> None:
        self.done += n
        dt = max(time.time() - self.t0, 1e-9)
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} pairs, "
                          f"{2 * self.done / dt:.1f} images/s")
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def evaluate_folders(truth_dir: str, output_dir: str, metrics: Sequence[str], mask_dir: Optional[str] = None,
                     inception_path: Optional[str] = None, resize: str = "pytorch", lpips_net: str = "alex",
                     lpips_backbone: Optional[str] = None, lpips_lin: Optional[str] = None,
                     batch_size: int = 32, fid_method: str = "sqrtm", save_stats: Optional[str] = None,
                     progress: bool = True, mask_polarity: str = "white_hole") -> dict:
    """Every metric of `metrics` over the paired folders -> {'all': {metric: value}, 'count': N,
    'hole_count': images with a hole (with masks), ...}. See the module docstring; weight files are
    required only for the metrics that use them. `save_stats` (a folder for the FID statistics)
    needs an Inception metric among `metrics`."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh

    from inpaintjax import metrics as classical
    from inpaintjax.image_io import read_image
    from inpaintjax.masks.folders import read_polarity_mask, resolve_polarity
    from inpaintjax.perceptual import fid as fid_lib
    from inpaintjax.perceptual import inception as inc
    from inpaintjax.perceptual import lpips as lp

    metrics = list(metrics)
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(ALL_METRICS)}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    mask_polarity = resolve_polarity(mask_polarity)
    need_inception = any(m in INCEPTION_METRICS for m in metrics)
    if save_stats and not need_inception:
        raise ValueError(f"--save-stats {save_stats} writes the Inception statistics of fid, kid, is, pids or "
                         f"uids, and --metrics {','.join(metrics)} has none of them; add fid (with --inception "
                         f"FILE) or drop --save-stats")
    pairs = pair_files(truth_dir, output_dir, mask_dir)
    n = len(pairs)
    if need_inception and not inception_path:
        raise ValueError(f"{', '.join(m for m in metrics if m in INCEPTION_METRICS)} need the FID Inception "
                         f"weights: --inception FILE; {inc.WHERE}")
    if "lpips" in metrics and not lpips_backbone:
        raise ValueError(f"lpips needs --lpips-backbone FILE; {lp._backbone_where(lpips_net)}")
    if "is" in metrics and n < 10:
        raise ValueError(f"is (Inception Score, 10 splits) needs at least 10 images, the folders hold {n}")
    if ("kid" in metrics or "pids" in metrics or "uids" in metrics or "fid" in metrics) and n < 2:
        raise ValueError(f"fid/kid/pids/uids need at least 2 image pairs, the folders hold {n}")
    if resize not in inc.RESIZE_MODES:
        raise ValueError(f"--resize {resize!r} is not one of {', '.join(inc.RESIZE_MODES)}")

    chunk = min(batch_size, n)
    mesh = Mesh(np.array(jax.local_devices()[:_device_count(chunk)]), ("data",))
    extractor = inc.make_extractor(inc.load_weights(inception_path), resize, mesh=mesh) if need_inception else None
    lpips_fn = lp.make_distance(lp.load(lpips_net, lpips_backbone, lpips_lin), lpips_net, mesh=mesh) \
        if "lpips" in metrics else None
    want_classical = [m for m in metrics if m in CLASSICAL]
    classical_fn = jax.jit(classical.compute_metrics) if want_classical else None
    keep_pool3 = any(m in metrics for m in ("kid", "pids", "uids"))

    stats = [fid_lib.FeatureStats(inc.POOL3_DIM), fid_lib.FeatureStats(inc.POOL3_DIM)]
    pool3 = ([], [])
    logits = []
    sums: dict[str, float] = {}
    hole_images: list = []  # per image of the run: whether its mask has a hole
    lpips_sum = 0.0
    bar = _Progress(n) if progress else None

    def run(batch):
        nonlocal lpips_sum
        k = len(batch)
        truth = np.stack([b[0] for b in batch])
        out = np.stack([b[1] for b in batch])
        pad = chunk - k
        if pad:
            truth = np.concatenate([truth, np.zeros((pad,) + truth.shape[1:], np.uint8)])
            out = np.concatenate([out, np.zeros((pad,) + out.shape[1:], np.uint8)])
        if extractor is not None:
            # truth and outputs in one call: [truth chunk, output chunk]
            feats = extractor(np.concatenate([truth, out]))
            p3 = np.asarray(feats["pool3"])
            stats[0].update(p3[:k])
            stats[1].update(p3[chunk:chunk + k])
            if keep_pool3:
                pool3[0].append(p3[:k].astype(np.float32))
                pool3[1].append(p3[chunk:chunk + k].astype(np.float32))
            if "is" in metrics:
                logits.append(np.asarray(feats["logits_unbiased"])[chunk:chunk + k])
        if lpips_fn is not None:
            lpips_sum += float(np.asarray(lpips_fn(truth.astype(np.float32) / 255, out.astype(np.float32) / 255))[:k].sum())
        if classical_fn is not None:
            masks = np.stack([b[2] for b in batch]) if batch[0][2] is not None else np.zeros(truth.shape[:3] + (1,), np.float32)[:k]
            if masks.ndim == 3:
                masks = masks[..., None]
            vals = classical_fn(jnp.asarray(out[:k].astype(np.float32) / 255), jnp.asarray(truth[:k].astype(np.float32) / 255),
                                jnp.asarray(masks))
            for name in want_classical:
                sums[name] = sums.get(name, 0.0) + float(np.sum(np.asarray(vals[name], np.float64)))
            if mask_dir:  # the hole-only metrics over the images that have a hole (NaN for the others)
                has = np.asarray([bool(np.any(b[2] > 0.5)) for b in batch])
                for name in (f"{m}_hole" for m in want_classical):
                    sums[name] = sums.get(name, 0.0) + float(np.sum(np.asarray(vals[name], np.float64)[:k][has]))
        if bar is not None:
            bar.update(k)

    batch: list = []
    for tpath, opath, mpath in pairs:
        t, o = read_image(tpath, "truth image"), read_image(opath, "output image")
        if t.shape != o.shape:
            raise ValueError(f"{opath} is {o.shape[1]}x{o.shape[0]} but its ground truth {tpath} is "
                             f"{t.shape[1]}x{t.shape[0]}; evaluate outputs at the truth's size")
        if lpips_fn is not None:
            lp.check_size(lpips_net, t.shape[0], t.shape[1], tpath)
        m = None
        if mpath is not None:
            m = read_polarity_mask(mpath, mask_polarity)
            if m.shape != t.shape[:2]:
                raise ValueError(f"mask {mpath} is {m.shape[1]}x{m.shape[0]} but {tpath} is {t.shape[1]}x{t.shape[0]}")
            hole_images.append((mpath, bool(np.any(m > 0.5))))
        if batch and batch[0][0].shape != t.shape:
            run(batch)
            batch = []
        batch.append((t, o, m))
        if len(batch) == chunk:
            run(batch)
            batch = []
    if batch:
        run(batch)

    empty = [p for p, has in hole_images if not has]
    if empty:
        shown = ", ".join(empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
        warnings.warn(f"{len(empty)} of {n} masks have no hole ({shown}, read as {mask_polarity}): "
                      f"left out of the hole-only metrics", stacklevel=2)
    hole_count = n - len(empty)
    result: dict = {}
    for name, total in sums.items():
        images = hole_count if name.endswith("_hole") else n
        result[name] = total / images if images else float("nan")
    if "fid" in metrics:
        result["fid"] = fid_lib.frechet_distance(stats[0].mu, stats[0].sigma, stats[1].mu, stats[1].sigma, fid_method)
    if "kid" in metrics:
        result["kid"], result["kid_std"] = fid_lib.kernel_inception_distance(np.concatenate(pool3[0]), np.concatenate(pool3[1]))
    if "is" in metrics:
        result["is"], result["is_std"] = fid_lib.inception_score(np.concatenate(logits))
    if "lpips" in metrics:
        result["lpips"] = lpips_sum / n
    if "pids" in metrics or "uids" in metrics:
        from inpaintjax.perceptual.ids import inception_discriminative_scores
        pids, uids = inception_discriminative_scores(np.concatenate(pool3[0]), np.concatenate(pool3[1]))
        if "pids" in metrics:
            result["pids"] = pids
        if "uids" in metrics:
            result["uids"] = uids
    if save_stats:
        os.makedirs(save_stats, exist_ok=True)
        for tag, s in zip(("truth", "output"), stats):
            fid_lib.save_stats(os.path.join(save_stats, f"{tag}_stats.npz"), s.mu, s.sigma, s.count)
    ordered = {k: result[k] for k in list(ALL_METRICS) + ["kid_std", "is_std"] + [f"{m}_hole" for m in CLASSICAL]
               if k in result}
    holes = {"hole_count": hole_count, "mask_polarity": mask_polarity} if mask_dir else {}
    return {"all": ordered, "count": n, **holes, "truth": truth_dir, "output": output_dir, "mask": mask_dir,
            "resize": resize if need_inception else None, "inception": inception_path if need_inception else None,
            "lpips_net": lpips_net if "lpips" in metrics else None}


def format_table(report: dict) -> str:
    rows = [(k, v) for k, v in report["all"].items()]
    width = max(len(k) for k, _ in rows) if rows else 6
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  ------------"]
    for k, v in rows:
        lines.append(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) and math.isfinite(v) else f"{k:<{width}}  {v}")
    holes = f"; hole-only metrics over the {report['hole_count']} with a hole" if "hole_count" in report else ""
    lines.append(f"({report['count']} image pairs{holes})")
    return "\n".join(lines)


def write_report(path: str, report: dict) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    clean = {**report, "all": {k: (v if math.isfinite(v) else None) for k, v in report["all"].items()}}
    with open(path, "w") as fh:
        json.dump(clean, fh, indent=2)
        fh.write("\n")
