"""The command line and the timing every PyTorch benchmark script shares.

Each inpaintjax/benchmarks_torch/torch_<family>.py builds a zero-argument step function per case; `run_cli` parses
the common flags (--case, --batch, --size, --repeats, --pause, plus the script's own), runs the step once to
warm up (oneDNN's primitive cache), times `repeats` more runs, and prints one JSON record that
`python -m inpaintjax.bench --torch` reads.
"""

from __future__ import annotations

import argparse
import json
import resource
from typing import Callable, Mapping

import torch

from inpaintjax import timing


def time_step(fn: Callable[[], object], repeats: int, pause: float = 0.0) -> dict:
    """Warm-up time and median/min/max of `repeats` timed calls of `fn`, in seconds, `pause`
    seconds of sleep before each (the JAX side's timer, `inpaintjax.timing`)."""
    return timing.summary(*timing.timed(fn, repeats, pause))


def gram(f: torch.Tensor) -> torch.Tensor:
    """Gram matrices of NCHW features, normalised by C x H x W (the style losses')."""
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def parameter_count(*modules) -> int:
    """Trainable parameters of the modules (a builder's record: the same network as the JAX side's)."""
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


def run_cli(description: str, cases: Mapping[str, Callable[[argparse.Namespace], Callable]],
            add_arguments: Callable[[argparse.ArgumentParser], None] = lambda p: None,
            repeats: int = 3, record_args: tuple[str, ...] = (), argv=None) -> dict:
    """Parse the flags, build `cases[--case](args)`, time it, print and return the JSON record
    (framework, versions, threads, case, batch, size, `record_args`, the step function's own
    `record` attribute when it has one, timings, peak RSS)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--case", choices=sorted(cases), required=True)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--pause", type=float, default=0.0,
                   help="seconds of sleep (not timed) before each timed step")
    add_arguments(p)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    record = {"framework": "torch", "torch": torch.__version__,
              "threads": torch.get_num_threads(), "case": args.case, "batch": args.batch,
              "size": args.size}
    record.update({k: getattr(args, k) for k in record_args})
    step = cases[args.case](args)
    record.update(getattr(step, "record", {}))   # what the builder reports (e.g. parameter counts)
    record.update(time_step(step, args.repeats, args.pause))
    if args.pause:
        record["pause_s"] = args.pause
    record["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(record))
    return record
