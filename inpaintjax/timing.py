"""The timer the JAX benchmarks (`inpaintjax.bench`) and their PyTorch counterparts
(`inpaintjax.benchmarks_torch`) share, so both sides measure alike. Imports no JAX."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """(warm-up seconds, [seconds of each of `repeats` timed calls]) of `fn()`, which must block
    until its result is ready."""
    t0 = time.perf_counter()
    fn()
    warm = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return warm, times


def summary(warm: float, times: list[float]) -> dict:
    """The record fields of a `timed` result: warm-up, median / min / max seconds, repeats (with
    no timed call, the warm-up run after compilation is the measurement)."""
    if not times:
        times = [warm]
    return {"warmup_s": round(warm, 4), "median_s": round(statistics.median(times), 4),
            "min_s": round(min(times), 4), "max_s": round(max(times), 4),
            "repeats": len(times)}
