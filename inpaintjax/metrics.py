"""Image-quality metrics for inpainting (JAX, batched, jittable) and per-bucket aggregation (host
NumPy); the per-bucket tables are written by `inpaintjax.metrics_report`.

Conventions (all metrics):
- Inputs are float images [B, H, W, C] in [0, 1] (data range 1); uint8 images are divided by 255.
  Values are not clipped: pass composited outputs clipped to [0, 1] as the evaluation would save them.
- `mask` is the hole mask [B, H, W, 1] (or [B, H, W]), 1 = hole, 0 = known; values > 0.5 count as hole.
- Every function returns one value per image, shape [B].
- `l1` is the mean absolute error in [0, 1] units, averaged over pixels and channels. Papers that print
  "l1 (%)" (PConv) report 100 * l1; some codebases report it in [0, 255] units (255 * l1) - say which
  one when you compare numbers.
- `l2` is the mean squared error (MSE) in [0, 1] units; `psnr` = 10 log10(1 / l2) dB (data range 1),
  +inf for identical images.
- `ssim` is Wang et al.'s SSIM with an 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, population
  (not sample) covariance, averaged over channels: the same number as
  `skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=-1)`, i.e. the mean of the SSIM map over the
  pixels at least 5 px from the border (`dm_pix.ssim`'s 'valid' map).
- The `*_hole` variants average over hole pixels only: l1/l2 are masked means, psnr comes from the
  masked MSE, and ssim is the full-size SSIM map (statistics filtered with mirror padding, the map
  skimage returns with `full=True`) averaged over hole pixels and channels. An image with an empty
  hole gets NaN for the hole metrics (ignored by `BucketedMetrics`).
Images must be at least 11x11 for SSIM.
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Sequence

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

from inpaintjax.masks import BUCKETS, bucket_name

__all__ = [
    "METRICS",
    "BucketedMetrics",
    "compute_metrics",
    "l1",
    "l2",
    "psnr",
    "ssim",
    "ssim_map",
]

METRICS = ("l1", "l2", "psnr", "ssim", "l1_hole", "l2_hole", "psnr_hole", "ssim_hole")

_SSIM_SIZE = 11
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = _SSIM_SIZE // 2


def _gaussian_taps() -> np.ndarray:
    x = np.arange(_SSIM_SIZE, dtype=np.float64) - _SSIM_RADIUS
    g = np.exp(-0.5 * (x / _SSIM_SIGMA) ** 2)
    return (g / g.sum()).astype(np.float32)


_TAPS = _gaussian_taps()


def _as_images(x, name: str) -> jnp.ndarray:
    x = jnp.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name} must be images [B, H, W, C], got shape {x.shape}")
    if x.dtype == jnp.uint8:
        return x.astype(jnp.float32) / 255.0
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must be float in [0, 1] or uint8, got dtype {x.dtype}")
    return x.astype(jnp.float32)


def _pair(pred, target):
    pred = _as_images(pred, "pred")
    target = _as_images(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} must have the same shape")
    return pred, target


def _as_mask(mask, shape) -> jnp.ndarray:
    m = jnp.asarray(mask)
    if m.ndim == 3:
        m = m[..., None]
    b, h, w = shape[:3]
    if m.ndim != 4 or m.shape[-1] != 1 or m.shape[:3] != (b, h, w):
        raise ValueError(f"mask must be [B, H, W, 1] or [B, H, W] matching images {shape}, got {jnp.shape(mask)}")
    return (m > 0.5).astype(jnp.float32)


def _masked_mean(values: jnp.ndarray, hole: jnp.ndarray) -> jnp.ndarray:
    # values [B,H,W,C], hole [B,H,W,1] -> [B]; NaN where the hole is empty.
    c = values.shape[-1]
    num = jnp.sum(values * hole, axis=(1, 2, 3))
    den = jnp.sum(hole, axis=(1, 2, 3)) * c
    return jnp.where(den > 0, num / jnp.maximum(den, 1.0), jnp.nan)


def _mean(values: jnp.ndarray) -> jnp.ndarray:
    return jnp.mean(values, axis=(1, 2, 3))


def l1(pred, target, mask=None) -> jnp.ndarray:
    """Mean absolute error [B] in [0, 1] units; over hole pixels only when `mask` is given."""
    pred, target = _pair(pred, target)
    err = jnp.abs(pred - target)
    return _mean(err) if mask is None else _masked_mean(err, _as_mask(mask, pred.shape))


def l2(pred, target, mask=None) -> jnp.ndarray:
    """Mean squared error [B] in [0, 1] units; over hole pixels only when `mask` is given."""
    pred, target = _pair(pred, target)
    err = jnp.square(pred - target)
    return _mean(err) if mask is None else _masked_mean(err, _as_mask(mask, pred.shape))


def _psnr_from_mse(mse):
    return -10.0 * jnp.log10(mse)


def psnr(pred, target, mask=None) -> jnp.ndarray:
    """PSNR [B] in dB for data range 1 (`dm_pix.psnr`); from the hole-only MSE when `mask` is given."""
    pred, target = _pair(pred, target)
    if mask is None:
        return pix.psnr(pred, target)
    return _psnr_from_mse(l2(pred, target, mask))


def _check_ssim_size(shape):
    if shape[1] < _SSIM_SIZE or shape[2] < _SSIM_SIZE:
        raise ValueError(f"SSIM needs images of at least {_SSIM_SIZE}x{_SSIM_SIZE}, got {shape[1]}x{shape[2]}")


def _same_gaussian_filter(z: jnp.ndarray) -> jnp.ndarray:
    # Separable 11-tap Gaussian over H and W with half-sample mirror padding (scipy.ndimage's
    # 'reflect' = numpy's 'symmetric'), so the output keeps the input size like skimage's filter.
    r = _SSIM_RADIUS
    zp = jnp.pad(z, ((0, 0), (r, r), (r, r), (0, 0)), mode="symmetric")
    h, w = z.shape[1], z.shape[2]
    rows = sum(float(_TAPS[k]) * zp[:, k : k + h, :, :] for k in range(_SSIM_SIZE))
    return sum(float(_TAPS[k]) * rows[:, :, k : k + w, :] for k in range(_SSIM_SIZE))


def ssim_map(pred, target) -> jnp.ndarray:
    """Full-size SSIM map [B, H, W, C] (11x11 Gaussian, sigma 1.5, mirror-padded statistics; equal to
    skimage's `full=True` map with the settings in the module docstring)."""
    pred, target = _pair(pred, target)
    _check_ssim_size(pred.shape)
    return pix.ssim(
        pred,
        target,
        max_val=1.0,
        filter_size=_SSIM_SIZE,
        filter_sigma=_SSIM_SIGMA,
        return_map=True,
        filter_fn=_same_gaussian_filter,
    )


def ssim(pred, target, mask=None) -> jnp.ndarray:
    """SSIM [B]. Without `mask`: `dm_pix.ssim` (mean of the valid-region map, equal to skimage's mean
    SSIM). With `mask`: the full-size map averaged over hole pixels and channels."""
    pred, target = _pair(pred, target)
    _check_ssim_size(pred.shape)
    if mask is None:
        return pix.ssim(pred, target, max_val=1.0, filter_size=_SSIM_SIZE, filter_sigma=_SSIM_SIGMA)
    return _masked_mean(ssim_map(pred, target), _as_mask(mask, pred.shape))


def compute_metrics(pred, target, mask) -> Dict[str, jnp.ndarray]:
    """All of `METRICS` for a batch: dict name -> [B] (whole image and hole-only). Jittable.

    pred, target: [B, H, W, C] in [0, 1]; mask: [B, H, W, 1] (or [B, H, W]), 1 = hole.
    """
    pred, target = _pair(pred, target)
    _check_ssim_size(pred.shape)
    hole = _as_mask(mask, pred.shape)
    diff = pred - target
    abs_err, sq_err = jnp.abs(diff), jnp.square(diff)
    smap = ssim_map(pred, target)
    r = _SSIM_RADIUS
    l2_all = _mean(sq_err)
    l2_hole = _masked_mean(sq_err, hole)
    return {
        "l1": _mean(abs_err),
        "l2": l2_all,
        "psnr": _psnr_from_mse(l2_all),
        # The valid-region mean of the full map is exactly dm_pix's/skimage's mean SSIM.
        "ssim": _mean(smap[:, r:-r, r:-r, :]),
        "l1_hole": _masked_mean(abs_err, hole),
        "l2_hole": l2_hole,
        "psnr_hole": _psnr_from_mse(l2_hole),
        "ssim_hole": _masked_mean(smap, hole),
    }


# ----------------------------------------------------------------------------------------------
# Aggregation by hole-area bucket (host side)
# ----------------------------------------------------------------------------------------------

_ALL = "all"


class BucketedMetrics:
    """Accumulates per-image metrics and reports their means per PConv hole-area bucket and overall.

    `add(per_image_metrics, buckets)`: a dict name -> [B] values (NumPy or JAX; e.g. from
    `compute_metrics`) and the bucket index [B] of each image (`inpaintjax.masks.bucket_of` of its hole
    ratio; -1 = outside every bucket: such images count only in 'all'). NaN values (empty holes) are
    left out of that metric's mean.

    `summary()` -> {'1-10%': {metric: mean or None, 'count': n}, ..., '50-60%': {...}, 'all': {...}}:
    every bucket appears, in order, with None means when it holds no image.
    """

    def __init__(self, metric_names: Optional[Sequence[str]] = None):
        self.metric_names = None if metric_names is None else tuple(metric_names)
        groups = len(BUCKETS) + 1  # last row = all images
        self._count = np.zeros(groups, np.int64)
        self._sums: Dict[str, np.ndarray] = {}
        self._ns: Dict[str, np.ndarray] = {}
        if self.metric_names is not None:
            self._init_names(self.metric_names)

    def _init_names(self, names):
        self.metric_names = tuple(names)
        groups = len(BUCKETS) + 1
        self._sums = {n: np.zeros(groups, np.float64) for n in names}
        self._ns = {n: np.zeros(groups, np.int64) for n in names}

    def add(self, per_image_metrics: Mapping[str, Iterable[float]], buckets) -> None:
        """Add one batch: per_image_metrics name -> [B], buckets int [B] (-1 = no bucket)."""
        values = {k: np.asarray(jax.device_get(v), np.float64).reshape(-1) for k, v in per_image_metrics.items()}
        if self.metric_names is None:
            self._init_names(list(values))
        if set(values) != set(self.metric_names):
            raise ValueError(
                f"metrics {sorted(values)} differ from the accumulator's {sorted(self.metric_names)}"
            )
        b = np.asarray(jax.device_get(buckets), np.int64).reshape(-1)
        for k, v in values.items():
            if v.shape != b.shape:
                raise ValueError(f"metric {k!r} has {v.shape[0]} values but buckets has {b.shape[0]}")
        if np.any((b < -1) | (b >= len(BUCKETS))):
            raise ValueError(f"bucket indices must be in [-1, {len(BUCKETS)}), got {sorted(set(b.tolist()))}")
        all_row = len(BUCKETS)
        inside = b >= 0
        np.add.at(self._count, b[inside], 1)
        self._count[all_row] += b.size
        for k, v in values.items():
            ok = ~np.isnan(v)
            sel = ok & inside
            np.add.at(self._sums[k], b[sel], v[sel])
            np.add.at(self._ns[k], b[sel], 1)
            self._sums[k][all_row] += v[ok].sum()
            self._ns[k][all_row] += int(ok.sum())

    def _row(self, g: int) -> dict:
        row = {}
        for k in self.metric_names or ():
            n = self._ns[k][g]
            row[k] = float(self._sums[k][g] / n) if n > 0 else None
        row["count"] = int(self._count[g])
        return row

    def summary(self) -> Dict[str, dict]:
        """{bucket_name: {metric: mean or None, 'count': n}, ..., 'all': {...}} (buckets in order)."""
        out = {bucket_name(i): self._row(i) for i in range(len(BUCKETS))}
        out[_ALL] = self._row(len(BUCKETS))
        return out

    def to_json(self, path: str) -> dict:
        """Write the summary as JSON (metrics_report.write_json); returns what was written."""
        from inpaintjax import metrics_report
        return metrics_report.write_json(self.summary(), path)

    def to_csv(self, path: Optional[str] = None) -> str:
        """The summary as CSV (metrics_report.csv_text), written to `path` if given."""
        from inpaintjax import metrics_report
        return metrics_report.csv_text(self.summary(), self.metric_names or (), path)

    def to_markdown(self, path: Optional[str] = None, digits: Optional[Mapping[str, int]] = None) -> str:
        """The summary as a Markdown table (metrics_report.markdown_text), written to `path` if given."""
        from inpaintjax import metrics_report
        return metrics_report.markdown_text(self.summary(), self.metric_names or (), path, digits)

    def plot_png(self, path: str, metrics: Optional[Sequence[str]] = None, title: Optional[str] = None) -> None:
        """Plot the summary (metrics_report.plot_png): one panel per metric."""
        from inpaintjax import metrics_report
        metrics_report.plot_png(self.summary(), list(metrics or self.metric_names or ()), path, title)


# ----------------------------------------------------------------------------------------------
# Edge precision / recall (EdgeConnect's edge model; knazeri/edge-connect src/metrics.py EdgeAccuracy)
# ----------------------------------------------------------------------------------------------

def edge_precision_recall(pred, target, mask=None, threshold: float = 0.5):
    """Per-image edge precision and recall, each [B]. Jittable.

    pred: predicted edge probabilities, target: ground-truth edges, both [B, H, W, 1] (or [B, H, W])
    in [0, 1]; with `mask` (1 = hole) both are multiplied by it first, as the original scores the
    edge model on the hole only. Pixels above `threshold` count as edges; true positives are pixels
    that are edges in both; precision = TP / (predicted + 1e-8), recall = TP / (true + 1e-8), and an
    image with no edge in either map scores 1 and 1 (EdgeAccuracy's rules, applied per image where
    the original pools a whole batch).
    """
    pred = jnp.asarray(pred, jnp.float32)
    target = jnp.asarray(target, jnp.float32)
    if pred.shape != target.shape:
        raise ValueError(f"edge_precision_recall: pred {pred.shape} and target {target.shape} differ")
    if mask is not None:
        m = jnp.asarray(mask, jnp.float32).reshape(pred.shape)
        pred, target = pred * m, target * m
    axes = tuple(range(1, pred.ndim))
    labels = target > threshold
    selected_map = pred > threshold
    relevant = jnp.sum(labels, axes).astype(jnp.float32)
    selected = jnp.sum(selected_map, axes).astype(jnp.float32)
    tp = jnp.sum(labels & selected_map, axes).astype(jnp.float32)
    empty = (relevant == 0) & (selected == 0)
    precision = jnp.where(empty, 1.0, tp / (selected + 1e-8))
    recall = jnp.where(empty, 1.0, tp / (relevant + 1e-8))
    return precision, recall
