"""Hole-area buckets: PConv's evaluation protocol groups masks by the fraction of the image they
cover, (0.01, 0.1], (0.1, 0.2], ..., (0.5, 0.6] (Liu et al., ECCV 2018, Table 1)."""

from __future__ import annotations

from typing import Tuple, Union

import numpy as np

# Left-open, right-closed intervals of the hole-to-image area ratio, as in PConv.
BUCKETS: Tuple[Tuple[float, float], ...] = (
    (0.01, 0.1),
    (0.1, 0.2),
    (0.2, 0.3),
    (0.3, 0.4),
    (0.4, 0.5),
    (0.5, 0.6),
)


def hole_ratio(mask) -> Union[float, np.ndarray]:
    """Fraction of hole pixels (> 0.5 counts as hole). [H, W] or [H, W, 1] -> float;
    [B, H, W, 1] -> float64 [B]."""
    m = np.asarray(mask)
    if m.ndim == 2 or (m.ndim == 3 and m.shape[-1] == 1):
        return float(np.count_nonzero(m > 0.5)) / float(m.shape[0] * m.shape[1])
    if m.ndim == 4 and m.shape[-1] == 1:
        return np.count_nonzero(m > 0.5, axis=(1, 2, 3)) / float(m.shape[1] * m.shape[2])
    raise ValueError(f"hole_ratio expects [H, W], [H, W, 1] or [B, H, W, 1], got shape {m.shape}")


def bucket_of(ratio):
    """Index of the PConv bucket (lo, hi] holding `ratio`, or -1 when it is in none of them
    (ratio <= 0.01 or > 0.6). Scalars give an int, arrays an int64 array. 0.1 -> 0, 0.6 -> 5."""
    r = np.asarray(ratio, dtype=np.float64)
    out = np.full(r.shape, -1, np.int64)
    for i, (lo, hi) in enumerate(BUCKETS):
        out[(r > lo) & (r <= hi)] = i
    return int(out) if out.ndim == 0 else out


def bucket_name(i: int) -> str:
    """Printable name of bucket i: 0 -> '1-10%', 1 -> '10-20%', ..., 5 -> '50-60%'."""
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= int(i) < len(BUCKETS):
        raise ValueError(f"bucket index must be an int in [0, {len(BUCKETS)}), got {i!r}")
    lo, hi = BUCKETS[int(i)]
    return f"{round(lo * 100)}-{round(hi * 100)}%"
