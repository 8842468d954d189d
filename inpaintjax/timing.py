"""The timer the JAX benchmarks (`inpaintjax.bench`) and their PyTorch counterparts
(`inpaintjax.benchmarks_torch`) share, so both sides measure alike. Imports no JAX."""

from __future__ import annotations

import statistics
import time
from typing import Callable

# the clock and the sleep `timed` uses (module attributes, so a test can fake them)
clock = time.perf_counter
sleep = time.sleep


def timed(fn: Callable[[], object], repeats: int,
          pause: float = 0.0) -> tuple[float, list[float]]:
    """(warm-up seconds, [seconds of each of `repeats` timed calls]) of `fn()`, which must block
    until its result is ready. `pause` seconds of sleep (not timed) precede each timed call: a
    step right after another one, or right after another framework's process, can run slower
    (on a 2-core Xeon, a JAX step right after a PyTorch process ran 10-20% slower than one
    right after a JAX process)."""
    t0 = clock()
    fn()
    warm = clock() - t0
    times = []
    for _ in range(repeats):
        if pause > 0:
            sleep(pause)
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return warm, times


def summary(warm: float, times: list[float]) -> dict:
    """The record fields of a `timed` result: warm-up, median / min / max seconds, repeats (with
    no timed call, the warm-up run after compilation is the measurement)."""
    if not times:
        times = [warm]
    return {"warmup_s": round(warm, 4), "median_s": round(statistics.median(times), 4),
            "min_s": round(min(times), 4), "max_s": round(max(times), 4),
            "repeats": len(times)}
