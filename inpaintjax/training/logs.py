"""Run logging: TensorBoard event files (tensorboardX, no TensorFlow), metrics JSON lines and a
one-line progress report. The pictures it logs are composed in pictures.py.

Why not clu.metric_writers: clu's writers import TensorFlow, which this project keeps out of its
dependencies; tensorboardX writes the same event files without it."""

from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid
from typing import Mapping

import numpy as np

from inpaintjax.training.pictures import (HOLE_EDGE, HOLE_TINT, grid_columns,  # noqa: F401
                                          image_grid, labelled_grid, mark_hole, save_png)

log = logging.getLogger(__name__)


def _format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def progress_line(step: int, total: int, steps_per_sec: float | None,
                  metrics: Mapping[str, float], max_terms: int = 10) -> str:
    """'step 200/1000 (20%) | 3.21 steps/s | ETA 4m09s | loss/l1 0.1234 ...' (steps_per_sec None:
    not measured yet, e.g. at the first step, whose time is mostly compilation)."""
    known = steps_per_sec is not None and steps_per_sec > 0
    eta = (total - step) / steps_per_sec if known else float("inf")
    rate = f"{steps_per_sec:.3g}" if known else "-"
    terms = " ".join(f"{k} {v:.4g}" for k, v in list(metrics.items())[:max_terms])
    return (f"step {step}/{total} ({100.0 * step / max(total, 1):.0f}%) | {rate} steps/s | "
            f"ETA {_format_duration(eta)} | {terms}")


def _summary_writer_class():
    """tensorboardX's SummaryWriter without importing torch (tensorboardX imports it if installed,
    ~3 s, only to accept torch tensors; we pass numpy). `sys.modules[name] = None` makes that
    optional import fail; the entry is removed again so the rest of the program is unaffected."""
    import sys
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter
        return SummaryWriter
    sys.modules["torch"] = None
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


class RunLogger:
    """Writes TensorBoard events under `<workdir>/tb`, `<workdir>/metrics.jsonl` and progress
    lines. Only the writing process (process 0) creates files; others do nothing."""

    def __init__(self, workdir: str, total_steps: int, enabled: bool = True):
        self.enabled = enabled
        self.total = total_steps
        self.tb = None
        self.jsonl = None
        if enabled:
            SummaryWriter = _summary_writer_class()
            os.makedirs(workdir, exist_ok=True)
            # tensorboardX names the file by the second it was opened and the host: a run resumed
            # within that second would reopen (truncate) the previous run's file, so each writer's
            # name carries this process and a random tag as well
            self.tb = SummaryWriter(os.path.join(workdir, "tb"),
                                    filename_suffix=f".{os.getpid()}.{uuid.uuid4().hex[:8]}")
            self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")

    def scalars(self, step: int, metrics: Mapping[str, float], steps_per_sec: float | None) -> None:
        """Log the metric means of `step`; `steps_per_sec` None (nothing timed yet) is left out."""
        if not self.enabled:
            return
        for k, v in metrics.items():
            self.tb.add_scalar(k, v, step)
        rec = {"step": step, "time": time.time()}
        if steps_per_sec is not None:
            self.tb.add_scalar("steps_per_sec", steps_per_sec, step)
            rec["steps_per_sec"] = steps_per_sec
        rec.update({k: float(v) for k, v in metrics.items()})
        self.jsonl.write(json.dumps(rec) + "\n")
        self.jsonl.flush()
        self.tb.flush()
        print(progress_line(step, self.total, steps_per_sec, metrics), flush=True)

    def image(self, step: int, name: str, grid: np.ndarray) -> None:
        if self.enabled:
            self.tb.add_image(name, grid, step, dataformats="HWC")
            self.tb.flush()

    def text(self, message: str) -> None:
        if self.enabled:
            print(message, flush=True)

    def close(self) -> None:
        if self.enabled:
            self.tb.close()
            self.jsonl.close()
