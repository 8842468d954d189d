"""Accelerator check: every family's training step, inference and evaluation pass on this machine's
devices, in one process, written as one JSON record.

    python -m inpaintjax.accelerator_check --out record.json          # a GPU or TPU, < 5 minutes
    python -m inpaintjax.accelerator_check --toy --out record.json    # tiny sizes, CPU, seconds

For each registered family (`inpaintjax.families.names()`, so families added later are included):

  train     the jitted, state-donating `train_step`, batch 16 at 256x256 (one step consumes the
            family's `batches_per_step` batches), in float32 and in bfloat16 compute
  infer     the jitted `inpaint`, batch 1 at 512x512, 2048x2048 and 4096x4096 (float32)
  evaluate  the evaluation pass `evaluate.py` runs per batch (`inpaint`, then the family's
            per-image metrics: PSNR, SSIM, L1, ...), batch 16 at 256x256, in images per second.
            The feature networks of `inpaintjax.perceptual` (FID's Inception, LPIPS), which eval.py
            runs only when their weight files are named, are not part of this pass.

With several devices, every train and evaluate case and the smallest inference size run again with
data parallelism over all of them (one mesh axis 'data', the batch split along it, the state
replicated, as `train.py` does), at the same batch per device: `items` then counts the global batch.

Each case records compile seconds (lower + compile), the warm-up run's seconds, the timed runs'
seconds (median, min, total), items (images) processed in the timed runs = batch x batches per step
x runs, items per second = items / total, and the devices' memory: `peak_bytes_in_use` and
`bytes_in_use` from `device.memory_stats()` (the largest over the devices used; None where the
backend has none, as on CPU). JAX cannot reset the peak, so it is the process's peak so far: cases
run from small to large within a family, and the case that raised it is the first that reports it.
A case that fails (e.g. out of memory at 4096x4096) records its error and the check goes on; cases
that would start after `--max-minutes` are recorded as skipped.

Configurations: full size uses each family's `default_config()` (the released model's settings);
`--toy` uses the family's `test` variant of `configs/<family>.py` from the source checkout (tiny
networks) at 2 images of 32x32, inference at 32 and 64. A frozen loss network's values do not
change the time: a `loss.vgg_weights` naming no file is set to 'random'. `--set FAMILY:key=value`
overrides any config key of one family (e.g. real VGG weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]

FULL = {"train_batch": 16, "train_size": 256, "infer_sizes": (512, 2048, 4096), "eval_batch": 16,
        "eval_size": 256, "runs": 3, "dtypes": ("float32", "bfloat16")}
TOY = {"train_batch": 2, "train_size": 32, "infer_sizes": (32, 64), "eval_batch": 2,
       "eval_size": 32, "runs": 2, "dtypes": ("float32", "bfloat16")}


def family_config(name: str, toy: bool, dtype: str, overrides=(), spec: str = ""):
    """The config a case runs: `spec` ('file.py[:variant]') if given, else the family's
    `configs/<name>.py:test` variant (toy) or its `default_config()`; then `dtype` compute, no
    rematerialisation, a random stand-in for a frozen loss network without a weight file, and
    `overrides` ('key=value')."""
    from inpaintjax.config import apply_overrides, load_config_file
    from inpaintjax.families import base

    if spec:
        config = load_config_file(spec)
    elif toy:
        path = _REPO / "configs" / f"{name}.py"
        if not path.is_file():
            raise FileNotFoundError(
                f"--toy needs the family's tiny configuration {path}:test (a source checkout with "
                f"configs/{name}.py defining a 'test' variant); without --toy the check uses "
                f"{name}'s default_config()")
        config = load_config_file(f"{path}:test")
    else:
        config = base.get(name).default_config()
    config.compute_dtype = dtype
    if "remat" in config:
        config.remat = False
    vgg = config.get("loss", {}).get("vgg_weights", None)
    if vgg is not None and vgg != "random" and not os.path.isfile(str(vgg)):
        config.loss.vgg_weights = "random"
    return apply_overrides(config, list(overrides))


def _host_batch(family, batch: int, size: int, stacked: int = 0, seed: int = 0) -> dict:
    """Numpy batch of the family's spec: random images, a centred box hole (mask 1 = hole);
    `stacked` > 0 stacks that many batches [k, B, ...]."""
    import numpy as np

    from inpaintjax.data import fields

    spec = family.batch_spec()

    def one(s):
        rng = np.random.default_rng(s)
        mask = np.zeros((batch, size, size, 1), np.float32)
        mask[:, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1.0
        images = rng.random((batch, size, size, 3), dtype=np.float32)
        return fields.compute_batch(spec, images, mask,
                                    [np.random.default_rng([s, i]) for i in range(batch)])

    if not stacked:
        return one(seed)
    parts = [one(seed + j) for j in range(stacked)]
    return {k: np.stack([p[k] for p in parts]) for k in parts[0]}


def memory(devices) -> dict:
    """{'peak_bytes_in_use', 'bytes_in_use'}: the largest over `devices`, None without stats."""
    peaks, used = [], []
    for d in devices:
        try:
            stats = d.memory_stats()
        except Exception:  # backends without the call raise (CPU returns None)
            stats = None
        if stats:
            if "peak_bytes_in_use" in stats:
                peaks.append(int(stats["peak_bytes_in_use"]))
            if "bytes_in_use" in stats:
                used.append(int(stats["bytes_in_use"]))
    return {"peak_bytes_in_use": max(peaks) if peaks else None,
            "bytes_in_use": max(used) if used else None}


def _time_runs(fn, runs: int) -> tuple[float, list[float]]:
    """(warm-up seconds, [seconds of each timed run]); fn() must block until its result is ready."""
    t0 = time.perf_counter()
    fn()
    warm = time.perf_counter() - t0
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return warm, times


def _summary(warm: float, times: list[float], items_per_run: int) -> dict:
    total = sum(times)
    return {"warmup_s": round(warm, 6), "median_s": round(statistics.median(times), 6),
            "min_s": round(min(times), 6), "total_s": round(total, 6), "runs": len(times),
            "items": items_per_run * len(times),
            "items_per_s": round(items_per_run * len(times) / total, 4) if total > 0 else None}


def _mesh(devices):
    import jax
    import numpy as np
    from jax.sharding import Mesh
    return Mesh(np.array(devices), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def train_case(family, devices, batch_per_device: int, size: int, runs: int) -> dict:
    """Time `train_step` on `devices` (data parallel when several) at batch_per_device x devices."""
    import jax
    import numpy as np

    from inpaintjax.training.sharding import batch_sharding, replicated

    mesh, n, k = _mesh(devices), len(devices), family.batches_per_step
    batch = batch_per_device * n
    host = _host_batch(family, batch, size, stacked=k if k > 1 else 0)
    repl = replicated(mesh)
    first = {key: v[0] for key, v in host.items()} if k > 1 else host
    state = jax.jit(family.init_state, out_shardings=repl)(jax.random.key(0), first)
    data = jax.device_put(host, batch_sharding(mesh, axis=1 if k > 1 else 0))
    frozen = jax.device_put(jax.tree.map(np.asarray, family.load_frozen()), repl)
    rng = jax.device_put(jax.random.key(1), repl)
    step = jax.jit(family.train_step, donate_argnums=0, out_shardings=repl)
    t0 = time.perf_counter()
    compiled = step.lower(state, data, rng, frozen).compile()
    compile_s = time.perf_counter() - t0
    holder = [state, None]

    def run():
        holder[:] = compiled(holder[0], data, rng, frozen)
        jax.block_until_ready(holder)

    warm, times = _time_runs(run, runs)
    flat = jax.tree_util.tree_flatten_with_path(jax.device_get(holder[1]))[0]
    bad = [jax.tree_util.keystr(path) for path, v in flat if not np.all(np.isfinite(v))]
    if bad:
        raise FloatingPointError(f"non-finite training metrics {bad}")
    return {"batch": batch, "batches_per_step": k, "size": size, "compile_s": round(compile_s, 3),
            **_summary(warm, times, batch * k)}


def _inference_setup(family, devices, batch_per_device: int, size: int):
    import jax
    import numpy as np

    from inpaintjax.training.sharding import batch_sharding, replicated

    mesh, n = _mesh(devices), len(devices)
    batch = batch_per_device * n
    # parameters do not depend on the image size: initialise on a small batch
    small = _host_batch(family, 1, max(family.size_multiple, 64))
    state = jax.jit(family.init_state)(jax.random.key(0), small)
    variables = jax.device_put(family.inference_variables(state), replicated(mesh))
    del state
    host = _host_batch(family, batch, size)
    inputs = jax.device_put({k: np.asarray(v) for k, v in family.inference_inputs(host).items()},
                            batch_sharding(mesh))
    return batch, variables, inputs


def infer_case(family, devices, batch_per_device: int, size: int, runs: int) -> dict:
    """Time the jitted `inpaint` at batch_per_device x devices images of size x size."""
    import jax
    import numpy as np

    batch, variables, inputs = _inference_setup(family, devices, batch_per_device, size)
    fn = jax.jit(lambda v, x: family.inpaint(v, x)["output"])
    t0 = time.perf_counter()
    compiled = fn.lower(variables, inputs).compile()
    compile_s = time.perf_counter() - t0
    last = []

    def run():
        last[:] = [jax.block_until_ready(compiled(variables, inputs))]

    warm, times = _time_runs(run, runs)
    if not np.all(np.isfinite(np.asarray(last[0]))):
        raise FloatingPointError("non-finite inpainting output")
    return {"batch": batch, "size": size, "compile_s": round(compile_s, 3),
            **_summary(warm, times, batch)}


def evaluate_case(family, devices, batch_per_device: int, size: int, runs: int) -> dict:
    """Time the evaluation pass (inpaint, then the family's per-image metrics) in images/s."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    batch, variables, inputs = _inference_setup(family, devices, batch_per_device, size)

    def evaluation(v, x):
        out = family.inpaint(v, x)
        return jnp.clip(out["output"], 0.0, 1.0), family.evaluation_metrics(x, out)

    fn = jax.jit(evaluation)
    t0 = time.perf_counter()
    compiled = fn.lower(variables, inputs).compile()
    compile_s = time.perf_counter() - t0
    last = []

    def run():
        last[:] = [jax.block_until_ready(compiled(variables, inputs))]

    warm, times = _time_runs(run, runs)
    per_image = {k: np.asarray(v) for k, v in last[0][1].items()}
    if any(v.shape != (batch,) for v in per_image.values()):
        raise ValueError(f"evaluation_metrics returned shapes "
                         f"{ {k: v.shape for k, v in per_image.items()} }, expected ({batch},)")
    return {"batch": batch, "size": size, "compile_s": round(compile_s, 3),
            "metrics": sorted(per_image), **_summary(warm, times, batch)}


def _cases(sizes: dict) -> list[tuple[str, str, int]]:
    """(kind, dtype, size) in run order: small to large, so the peak memory grows with them."""
    out = [("train", dt, sizes["train_size"]) for dt in sizes["dtypes"]]
    out.append(("evaluate", "float32", sizes["eval_size"]))
    out += [("infer", "float32", s) for s in sorted(sizes["infer_sizes"])]
    return out


def check_family(name: str, sizes: dict, devices, toy: bool, overrides, deadline: float,
                 log, spec: str = "") -> dict:
    """Every case of one family: {'label', 'cases': [...]} (a case's failure is recorded in it)."""
    from inpaintjax.families import base

    cls = base.get(name)
    rec = {"cases": []}
    plans = [(kind, dtype, size, [devices[0]]) for kind, dtype, size in _cases(sizes)]
    if len(devices) > 1:
        smallest = min(sizes["infer_sizes"])
        plans += [(kind, dtype, size, list(devices))
                  for kind, dtype, size in _cases(sizes)
                  if kind != "infer" or size == smallest]
    families = {}
    for kind, dtype, size, devs in plans:
        case = {"kind": kind, "dtype": dtype, "size": size, "devices": len(devs),
                "data_parallel": len(devs) > 1}
        if time.monotonic() > deadline:
            case["skipped"] = "the --max-minutes budget was spent"
            rec["cases"].append(case)
            continue
        try:
            if dtype not in families:
                config = family_config(name, toy, dtype, overrides, spec)
                families[dtype] = cls(config)
                rec.setdefault("label", families[dtype].evaluation_label())
            family = families[dtype]
            if kind == "train":
                case.update(train_case(family, devs, sizes["train_batch"], size, sizes["runs"]))
            elif kind == "evaluate":
                case.update(evaluate_case(family, devs, sizes["eval_batch"], size, sizes["runs"]))
            else:
                runs = sizes["runs"] if size <= 1024 else 1
                case.update(infer_case(family, devs, 1, size, runs))
        except Exception as e:  # one case's failure (e.g. out of memory) must not end the check
            case["error"] = f"{type(e).__name__}: {e}"[:2000]
            log(traceback.format_exc())
        case.update(memory(devs))
        rec["cases"].append(case)
        log(json.dumps({"family": name, **case}))
    return rec


def run_check(toy: bool = False, families=None, overrides=(), max_minutes: float = 4.5,
              sizes: dict | None = None, log=None, configs=None) -> dict:
    """The whole check; returns the record (see the module docstring). `overrides`:
    'FAMILY:key=value' strings; `configs`: {family: 'file.py[:variant]'} replacing the default
    configuration of those families."""
    import jax

    from inpaintjax.families import base

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    sizes = dict(sizes or (TOY if toy else FULL))
    names = list(families) if families else base.names()
    per_family: dict[str, list[str]] = {}
    for item in overrides:
        fam, sep, kv = item.partition(":")
        if not sep or fam not in base.names():
            raise ValueError(f"--set {item!r}: expected FAMILY:key=value with FAMILY one of "
                             f"{', '.join(base.names())}")
        per_family.setdefault(fam, []).append(kv)
    devices = jax.devices()
    t_start = time.monotonic()
    deadline = t_start + 60.0 * max_minutes
    record = {
        "kind": "accelerator_check", "toy": toy, "sizes": {k: list(v) if isinstance(v, tuple) else v
                                                           for k, v in sizes.items()},
        "backend": jax.default_backend(), "devices": [str(d) for d in devices],
        "device_kind": devices[0].device_kind, "device_count": len(devices),
        "jax": jax.__version__, "platform": platform.platform(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "evaluation_note": "'evaluate' times the evaluation pass (inpaint + the family's per-image "
                           "metrics); the feature networks (FID's Inception, LPIPS) are not in it",
        "families": {}}
    if jax.default_backend() == "cpu":
        from inpaintjax import xla_cpu
        record["ynn_convolutions_off"] = xla_cpu.ynn_convolutions_off()
    configs = dict(configs or {})
    for name in names:
        record["families"][name] = check_family(name, sizes, devices, toy,
                                                per_family.get(name, ()), deadline, log,
                                                configs.get(name, ""))
    record["wall_s"] = round(time.monotonic() - t_start, 2)
    cases = [c for f in record["families"].values() for c in f["cases"]]
    record["failed_cases"] = sum("error" in c for c in cases)
    record["skipped_cases"] = sum("skipped" in c for c in cases)
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m inpaintjax.accelerator_check",
                                description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="the JSON record to write")
    p.add_argument("--toy", action="store_true",
                   help="tiny sizes and each family's configs/<family>.py:test variant (CPU, CI)")
    p.add_argument("--families", default="", help="comma list (default: every registered family)")
    p.add_argument("--set", action="append", default=[], metavar="FAMILY:KEY=VALUE",
                   help="override one family's config key (repeatable)")
    p.add_argument("--config", action="append", default=[], metavar="FAMILY=FILE.py[:VARIANT]",
                   help="one family's configuration file instead of its default (repeatable)")
    p.add_argument("--max-minutes", type=float, default=4.5,
                   help="cases that would start later are recorded as skipped")
    p.add_argument("--runs", type=int, default=None, help="timed runs per case (after a warm-up)")
    p.add_argument("--dtypes", default="", help="compute dtypes of the train cases, comma list "
                   "(default float32,bfloat16)")
    p.add_argument("--infer-sizes", default="", help="inference sizes, comma list "
                   "(default 512,2048,4096; --toy 32,64)")
    a = p.parse_args(argv)
    from inpaintjax.config import load_config_file
    from inpaintjax.families import base
    configs = {}
    for item in a.config:
        fam, sep, spec = item.partition("=")
        if not sep or not spec:
            p.error(f"--config {item!r}: expected FAMILY=FILE.py[:VARIANT], e.g. "
                    "pconv=configs/pconv.py:demo")
        load_config_file(spec)  # fails early on a bad file; registers a family defined beside it
        base.get(fam)
        configs[fam] = spec
    families = [f.strip() for f in a.families.split(",") if f.strip()] or None
    for f in families or ():
        base.get(f)  # a misspelt name fails here, naming the known ones
    sizes = dict(TOY if a.toy else FULL)
    if a.runs is not None:
        if a.runs < 1:
            p.error(f"--runs must be at least 1, got {a.runs}")
        sizes["runs"] = a.runs
    if a.dtypes:
        dtypes = tuple(d.strip() for d in a.dtypes.split(",") if d.strip())
        bad = [d for d in dtypes if d not in ("float32", "bfloat16")]
        if bad or not dtypes:
            p.error(f"--dtypes {a.dtypes!r}: each must be float32 or bfloat16")
        sizes["dtypes"] = dtypes
    if a.infer_sizes:
        try:
            sizes["infer_sizes"] = tuple(int(x) for x in a.infer_sizes.split(","))
        except ValueError:
            p.error(f"--infer-sizes {a.infer_sizes!r}: expected a comma list of integers")
        if min(sizes["infer_sizes"]) < 1:
            p.error(f"--infer-sizes {a.infer_sizes!r}: sizes must be positive")
    record = run_check(a.toy, families, a.set, a.max_minutes, sizes, configs=configs)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(record, f, indent=1)
    print(f"accelerator check: {record['device_count']} x {record['device_kind']} "
          f"({record['backend']}), {len(record['families'])} families, "
          f"{record['failed_cases']} failed and {record['skipped_cases']} skipped cases, "
          f"{record['wall_s']} s; record in {a.out}")
    return 1 if record["failed_cases"] else 0


if __name__ == "__main__":
    from inpaintjax import xla_cpu
    xla_cpu.configure()  # before JAX starts: on CPU, this machine's XLA:CPU set-up
    sys.exit(main())
