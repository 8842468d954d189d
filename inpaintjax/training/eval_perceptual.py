"""FID, KID, IS, LPIPS and P-IDS / U-IDS in the training evaluation (`eval.py`, `evaluate()`).

`from_config(config, mesh)` reads the weight files the config names (config.eval.inception_weights,
config.eval.lpips_backbone, config.eval.lpips_lin) before any evaluation work, and returns None when
no metric of config.eval.perceptual_metrics has its weights named (one log line says which metrics
were skipped and which key enables them). A named file that is missing or is not the network asked for
is a `WeightFileError` naming the key, the path and where to get the right file.

`PerceptualEval` then follows the evaluation batch by batch:
- `start(images)`: the Inception features of the held-out images, once (each mask's truth is held-out
  image `pair[i]`, so the "real" set of mask i is that image's features);
- `add(idx, buckets, truths, outputs)`: the outputs of every method (the model, each classical fill)
  for masks `idx` go through the Inception network and LPIPS in one jitted call, the batch split over
  the devices of the mesh; returns the per-image LPIPS of each method (averaged per bucket by the
  caller, like L1 or PSNR) and folds the pool3 features into float64 running statistics per bucket and
  overall (`fid.FeatureStats`). KID, P-IDS / U-IDS keep the pool3 rows and IS the logit rows (8 KB and
  4 KB a mask) when asked for: features are kept, never images;
- `results()`: {method: {group: {metric: value or None}}} and the reason of each value that was not
  computed. The set-level metrics (FID, KID, IS, P-IDS, U-IDS) compare the outputs of the masks of a
  group with the truths of the same masks: over all masks, and per hole-area bucket when the bucket
  holds at least config.eval.perceptual_min_bucket masks (a 2048-d covariance from a few dozen images is
  mostly noise).

Several JAX processes: each process feeds the masks it evaluated; `results()` merges the running
statistics of every process (`fid.allgather_stats`) and gathers the kept rows
(`fid.allgather_exact`, 64-bit values bit for bit), so every process must call it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import jax
import numpy as np

from inpaintjax import metrics as metrics_lib
from inpaintjax.perceptual import fid as fid_lib
from inpaintjax.perceptual import inception as inc
from inpaintjax.perceptual import lpips as lp
from inpaintjax.perceptual.torch_files import WeightFileError

log = logging.getLogger(__name__)

METRICS = ("fid", "kid", "is", "lpips", "pids", "uids")
INCEPTION_METRICS = ("fid", "kid", "is", "pids", "uids")
#: columns of the tables, in order (the stds follow their metric)
COLUMNS = ("fid", "kid", "kid_std", "is", "is_std", "lpips", "pids", "uids")
#: the fewest masks each set-level metric is defined on (IS: 10 splits)
MIN_IMAGES = {"fid": 2, "kid": 2, "is": 10, "pids": 2, "uids": 2}
ALL = "all"


def requested(config) -> list[str]:
    """config.eval.perceptual_metrics as a list (a comma-separated string or a sequence); an unknown
    name is a ValueError naming the valid ones."""
    names = config.eval.get("perceptual_metrics", ",".join(METRICS))
    if isinstance(names, str):
        names = names.split(",")
    names = [str(n).strip().lower() for n in names if str(n).strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"config.eval.perceptual_metrics={','.join(names)!r}: unknown {unknown}; "
                         f"choose from {','.join(METRICS)} ('' = none)")
    return list(dict.fromkeys(names))


def _load(key: str, path: str, loader):
    try:
        return loader()
    except WeightFileError as e:
        raise WeightFileError(f"config.eval.{key}={path!r}: {e}") from e


@dataclass
class Settings:
    """What `from_config` read: the enabled metrics and the networks' parameters."""
    metrics: tuple
    resize: str
    min_bucket: int
    fid_method: str = "sqrtm"
    inception: Optional[dict] = None
    lpips: Optional[dict] = None
    lpips_net: str = "alex"
    skipped: dict = field(default_factory=dict)


def settings_from_config(config) -> Settings:
    """The metrics to compute and their networks, read from the files config.eval names. Errors
    (unknown metric, resize mode or LPIPS net; a named file missing or not the right network) come
    here, before any evaluation work."""
    ev = config.eval
    names = requested(config)
    resize = str(ev.get("inception_resize", "pytorch"))
    if resize not in inc.RESIZE_MODES:
        raise ValueError(f"config.eval.inception_resize={resize!r} is not one of {', '.join(inc.RESIZE_MODES)}")
    net = str(ev.get("lpips_net", "alex"))
    if net not in lp.NETS:
        raise ValueError(f"config.eval.lpips_net={net!r} is not one of {', '.join(lp.NETS)}")
    fid_method = str(ev.get("fid_method", "sqrtm"))
    if fid_method not in ("sqrtm", "eigh"):
        raise ValueError(f"config.eval.fid_method={fid_method!r} is not 'sqrtm' or 'eigh'")
    min_bucket = int(ev.get("perceptual_min_bucket", 50))
    if min_bucket < 2:
        raise ValueError(f"config.eval.perceptual_min_bucket={min_bucket} must be at least 2")
    enabled, skipped = [], {}
    inception_params = lpips_params = None
    inc_path = str(ev.get("inception_weights", "") or "")
    wanted = [m for m in names if m in INCEPTION_METRICS]
    if wanted and inc_path:
        inception_params = _load("inception_weights", inc_path, lambda: inc.load_weights(inc_path))
        enabled += wanted
    elif wanted:
        skipped.update({m: "config.eval.inception_weights" for m in wanted})
    if "lpips" in names:
        backbone = str(ev.get("lpips_backbone", "") or "")
        lin = str(ev.get("lpips_lin", "") or "")
        if backbone:
            size = int(ev.image_size)
            if size < lp.MIN_SIZE[net]:
                raise ValueError(f"config.eval.image_size={size} is below the {lp.MIN_SIZE[net]} pixels a "
                                 f"side that LPIPS-{net} needs; raise config.eval.image_size or leave lpips "
                                 f"out of config.eval.perceptual_metrics")
            params = {"backbone": _load("lpips_backbone", backbone, lambda: lp.load_backbone(net, backbone))}
            if not lin and lp.default_lin_path(net) is None:
                raise WeightFileError(f"config.eval.lpips_lin='' and no installed lpips package holds the "
                                      f"LPIPS v0.1 linear layers for {net}: {lp._lin_where(net)} "
                                      f"(config.eval.lpips_lin=PATH)")
            params["lin"] = _load("lpips_lin", lin or lp.default_lin_path(net),
                                  lambda: lp.load_lin(net, lin or None))
            lpips_params = params
            enabled.append("lpips")
        else:
            skipped["lpips"] = "config.eval.lpips_backbone"
    if not names:
        skipped.update({m: "config.eval.perceptual_metrics" for m in METRICS})
    order = [m for m in METRICS if m in enabled]
    return Settings(tuple(order), resize, min_bucket, fid_method, inception_params, lpips_params, net,
                    skipped)


def log_skipped(settings: Settings) -> None:
    """One log line naming the metrics not computed and the key that enables each."""
    if not settings.skipped:
        return
    by_key: dict[str, list] = {}
    for m, key in settings.skipped.items():
        by_key.setdefault(key, []).append(m)
    log.info("evaluation: not computed (no weight file named, or none asked for): %s; see "
             "docs/evaluation-metrics.md",
             "; ".join(f"{','.join(ms)} (set {key})" for key, ms in by_key.items()))


def from_config(config, mesh) -> Optional["PerceptualEval"]:
    """A `PerceptualEval` over `mesh` for the metrics config.eval enables, or None (logged) when none."""
    settings = settings_from_config(config)
    log_skipped(settings)
    if not settings.metrics:
        return None
    return PerceptualEval(settings, mesh)


def _pad_rows(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) == n:
        return x
    return np.concatenate([x, np.zeros((n - len(x),) + x.shape[1:], x.dtype)])


class _Rows:
    """One method's per-mask features: running statistics per group, and rows where needed."""

    def __init__(self, keep_pool3: bool, keep_logits: bool):
        # one running statistic per bucket, the last for masks outside every bucket; the overall
        # one is their merge (each mask updates one 2048 x 2048 matrix, not two)
        self.stats = [fid_lib.FeatureStats(inc.POOL3_DIM) for _ in range(len(metrics_lib.BUCKETS) + 1)]
        self.keep_pool3, self.keep_logits = keep_pool3, keep_logits
        self.index: list = []
        self.pool3: list = []
        self.logits: list = []

    def add(self, idx, buckets, pool3, logits) -> None:
        buckets = np.where(buckets < 0, len(metrics_lib.BUCKETS), buckets)
        for g in np.unique(buckets):
            self.stats[int(g)].update(pool3[buckets == g])
        self.index.append(np.asarray(idx, np.int64))
        if self.keep_pool3:
            self.pool3.append(np.asarray(pool3, np.float32))
        if self.keep_logits:
            self.logits.append(np.asarray(logits, np.float32))

    def gathered(self):
        """(mask indices, pool3 rows, logit rows) of every process, in mask order; the merged
        statistics of each bucket, then of all masks."""
        idx = fid_lib.allgather_rows(np.concatenate(self.index) if self.index else np.zeros(0, np.int64))
        order = np.argsort(idx, kind="stable")
        p3 = lg = None
        if self.keep_pool3:
            p3 = fid_lib.allgather_rows(np.concatenate(self.pool3) if self.pool3 else np.zeros((0, inc.POOL3_DIM), np.float32))[order]
        if self.keep_logits:
            lg = fid_lib.allgather_rows(np.concatenate(self.logits) if self.logits else np.zeros((0, inc.LOGITS_DIM), np.float32))[order]
        stats = [fid_lib.allgather_stats(s) for s in self.stats]
        overall = fid_lib.FeatureStats(inc.POOL3_DIM)
        for s in stats:
            overall.merge(s)
        return idx[order], p3, lg, stats[:-1] + [overall]


class PerceptualEval:
    """Streams the evaluation's outputs through the Inception network and LPIPS (see the module
    docstring). `mesh`: a 1-D mesh whose devices share each batch."""

    def __init__(self, settings: Settings, mesh):
        self.settings = settings
        self.metrics = settings.metrics
        self.mesh = mesh
        self.devices = int(mesh.devices.size)
        self.want_inception = any(m in INCEPTION_METRICS for m in self.metrics)
        self.extract = (inc.make_extractor(settings.inception, settings.resize, inc.INPUT_SIZE, mesh=mesh)
                        if self.want_inception else None)
        self.distance = (lp.make_distance(settings.lpips, settings.lpips_net, mesh=mesh)
                         if "lpips" in self.metrics else None)
        self.keep_pool3 = any(m in self.metrics for m in ("kid", "pids", "uids"))
        self.keep_logits = "is" in self.metrics
        self.truth_pool3: Optional[np.ndarray] = None
        self.pair: Optional[np.ndarray] = None
        self.buckets: Optional[np.ndarray] = None
        self.rows: dict[str, _Rows] = {}
        self.chunk = 0

    def _chunk_for(self, n: int) -> int:
        return -(-n // self.devices) * self.devices

    def _features(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """pool3 [n, 2048] and logits [n, 1008] (float32) of images [n, H, W, 3] in [0, 1], in
        calls of `self.chunk` images (the last padded)."""
        p3, lg = [], []
        for s in range(0, len(images), self.chunk):
            part = images[s:s + self.chunk]
            out = self.extract(_pad_rows(np.asarray(part, np.float32), self.chunk))
            p3.append(np.asarray(out["pool3"])[:len(part)])
            lg.append(np.asarray(out["logits_unbiased"])[:len(part)])
        return np.concatenate(p3), np.concatenate(lg)

    def start(self, images: np.ndarray, pair: np.ndarray, buckets: np.ndarray, methods, batch: int) -> None:
        """The truth features of the held-out images [N, S, S, 3] (float in [0, 1]); mask i pairs
        with image pair[i] and lies in bucket buckets[i]; `methods` are the rows of the tables and
        `batch` the masks per `add` call."""
        self.pair, self.buckets = np.asarray(pair), np.asarray(buckets)
        self.chunk = self._chunk_for(len(list(methods)) * int(batch))
        if self.want_inception:
            self.truth_pool3 = self._features(images)[0]
        self.rows = {m: _Rows(self.keep_pool3, self.keep_logits) for m in methods}

    def add(self, idx: np.ndarray, truths: np.ndarray, outputs: dict) -> dict:
        """Fold in the outputs {method: [B, S, S, 3] in [0, 1]} of masks `idx` (the first len(idx)
        rows of each; the rest is padding) whose truths are `truths` [B, S, S, 3]. Returns
        {method: per-mask LPIPS [len(idx)]} (empty without LPIPS)."""
        idx = np.asarray(idx)
        k, names = len(idx), list(outputs)
        b = len(truths)
        stacked = np.concatenate([np.asarray(outputs[m], np.float32) for m in names])
        lpips = {}
        if self.distance is not None:
            x0 = _pad_rows(np.tile(np.asarray(truths, np.float32), (len(names), 1, 1, 1)), self.chunk)
            d = np.asarray(self.distance(x0, _pad_rows(stacked, self.chunk)), np.float64)
            lpips = {m: d[j * b:j * b + k] for j, m in enumerate(names)}
        if self.want_inception:
            p3, lg = self._features(stacked)
            for j, m in enumerate(names):
                self.rows[m].add(idx, self.buckets[idx], p3[j * b:j * b + k], lg[j * b:j * b + k])
        return lpips

    def results(self) -> tuple[dict, dict]:
        """({method: {group: {column: value or None}}}, {method: {group: {metric: why not computed}}})
        for the set-level metrics (groups: every bucket name, then 'all'). Every process must call it."""
        values: dict = {}
        reasons: dict = {}
        if not self.want_inception:
            return values, reasons
        groups = [metrics_lib.bucket_name(g) for g in range(len(metrics_lib.BUCKETS))] + [ALL]
        set_metrics = [m for m in self.metrics if m in INCEPTION_METRICS]
        real_stats_of: dict = {}  # group -> the truths' statistics (the same masks for every method)
        for method, rows in self.rows.items():
            idx, p3, lg, stats = rows.gathered()
            bucket_of = self.buckets[idx]
            real = self.truth_pool3[self.pair[idx]]
            values[method], reasons[method] = {}, {}
            for g, name in enumerate(groups):
                sel = np.ones(len(idx), bool) if name == ALL else bucket_of == g
                n = int(sel.sum())
                vals, why = {}, {}
                for m in set_metrics:
                    if name != ALL and n < self.settings.min_bucket:
                        why[m] = (f"{n} masks < config.eval.perceptual_min_bucket="
                                  f"{self.settings.min_bucket}")
                    elif n < MIN_IMAGES[m]:
                        why[m] = f"{n} masks; {m} needs at least {MIN_IMAGES[m]}"
                if "fid" in set_metrics and "fid" not in why:
                    key = (name, idx[sel].tobytes())
                    if key not in real_stats_of:
                        real_stats_of[key] = fid_lib.FeatureStats(inc.POOL3_DIM).update(real[sel])
                    real_stats = real_stats_of[key]
                    try:  # stats[g]: the outputs' running statistics of group g (last: all)
                        vals["fid"] = fid_lib.frechet_distance(real_stats.mu, real_stats.sigma,
                                                               stats[g].mu, stats[g].sigma,
                                                               self.settings.fid_method)
                    except ValueError as e:
                        why["fid"] = str(e)
                if "kid" in set_metrics and "kid" not in why:
                    vals["kid"], vals["kid_std"] = fid_lib.kernel_inception_distance(real[sel], p3[sel])
                if "is" in set_metrics and "is" not in why:
                    vals["is"], vals["is_std"] = fid_lib.inception_score(lg[sel])
                ids = [m for m in ("pids", "uids") if m in set_metrics and m not in why]
                if ids:
                    from inpaintjax.perceptual.ids import inception_discriminative_scores
                    pids, uids = inception_discriminative_scores(real[sel], p3[sel])
                    vals.update({m: v for m, v in (("pids", pids), ("uids", uids)) if m in ids})
                values[method][name] = vals
                reasons[method][name] = why
        return values, reasons

    def columns(self) -> list[str]:
        """The table columns these metrics fill, in order."""
        on = set(self.metrics)
        return [c for c in COLUMNS if c in on or (c == "kid_std" and "kid" in on) or (c == "is_std" and "is" in on)]
