"""Benchmarks: `python -m inpaintjax.bench [--reduced] [--torch] [--family deepfill_v2] ...`.

Prints one JSON record per case (and appends them to --out if given):
  peak_matmul   the run's measured float32 matmul FLOP/s (a large jnp.dot, under both XLA:CPU
                set-ups; the faster one): the "hardware peak" every other record is also
                expressed against (`fraction_of_peak`)
  stack         eight 3x3 convolutions forward + backward (64 channels, dilations 1-8, 4x256x256)
  infer         the family's jitted `inpaint` at 256x256 and 512x512, batch 1 and 8 (latency)
  train         the family's jitted, state-donating `train_step` at 256x256 (images/s; for
                DeepFill v2 one step = a discriminator and a generator update, for DeepFill v1
                five critic updates and a generator update, on six batches)
  train512      (with --train512) the same at 512x512, e.g. with and without --remat for memory
  memory        the family's jitted `inpaint`, batch 1, at --memory-sizes (default 256, 512, 1024,
                2048): peak RSS of the child and seconds per megapixel (no FLOP count: a second
                compile would double the memory peak)
  patchmatch    (opt in: --cases patchmatch) `inpaintjax.patchmatch` filling scikit-image's
                astronaut, patch radius 3: 512x512 with a centred 128x128 and 256x256 hole (batch
                1), and a batch of 8 256x256 crops with a 64x64 hole (throughput); with
                --pypatchmatch PYTHON, PyPatchMatch (PyPI) on the same images in that Python, in
                alternating order; wall and CPU seconds of each (see `_patchmatch_cases`)
Side by side (--torch), each case runs `--rounds` times on each side, alternating which framework
goes first, with `--pause` seconds of sleep before every timed step (a step right after another,
or right after the other framework's process, can run slower); a `speedup` record
per set-up then gives PyTorch's median over JAX's, per round and over the rounds. `--xla-cpu auto`
times what the entry points choose on this machine.
Each record: median / min / max seconds of `--repeats` timed runs after one warm-up run,
compile_s (lower + compile), flops (XLA's cost analysis of the same computation lowered with the
native convolution: the fast CPU gradient runs in loops whose FLOPs the analysis does not count),
achieved FLOP/s and its fraction of the measured matmul peak, and peak_rss_mb: the peak resident
memory of the child process that ran only that case (getrusage ru_maxrss; it includes the ~0.3 GB
of the Python + JAX runtime; the CPU client exposes no device memory statistics).

`--calibrate` records, for this CPU, which XLA:CPU set-up runs the DeepFill v2 training step
faster (see `inpaintjax.xla_cpu`); the entry points then use it.

Every case runs in its own child process (clean memory peak, clean compile caches, the conv
switch applied through INPAINTJAX_CONV and the XLA:CPU set-up through INPAINTJAX_XLA_CPU, see
`inpaintjax.xla_cpu`; each record names both). `--torch` also runs the PyTorch equivalent of each
stack/train/infer case (`inpaintjax.benchmarks_torch`, shipped with the package) in the same run,
when torch is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

from inpaintjax import benchmarks_torch
from inpaintjax.timing import summary, timed

#: the PyTorch module's arguments for a reduced (--reduced) run of its family
_TORCH_REDUCED = {"torch_deepfill": ["--cnum", "8", "--d-cnum", "8"],
                  "torch_deepfill_v1": ["--cnum", "8", "--d-cnum", "8"],
                  "torch_pconv": ["--levels", "6", "--width", "8"],
                  "torch_edgeconnect": ["--residual-blocks", "1"],
                  "torch_glcic": ["--width", "8", "--d-width", "8", "--local-size", "32"],
                  "torch_shiftnet": ["--num-downs", "6", "--ngf", "8", "--ndf", "8",
                                     "--vgg-widths", "4,8,8"]}


# ---------------------------------------------------------------------------------------------
# child side: one case per process
# ---------------------------------------------------------------------------------------------
def _flops_native(fn, *args, case: dict | None = None, compiled=None) -> float | None:
    """FLOPs of fn(*args) by XLA's cost analysis of the optimised program (after CSE: e.g. the
    two identical generator forwards of a DeepFill v2 step count once) with the native
    convolution. Reuses `compiled` when it already is the native program, or the parent's
    number from the native run of the same case (`case['known_flops']`)."""
    import jax
    from inpaintjax.layers import conv

    if case is not None and case.get("known_flops"):
        return float(case["known_flops"])
    if compiled is None or conv.conv_impl() != "native":
        conv.set_conv_impl("native")
        try:
            compiled = jax.jit(fn).lower(*args).compile()
        finally:
            conv.set_conv_impl(None)
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    flops = (cost or {}).get("flops")
    return float(flops) if flops else None


#: what every case of a family sets: a frozen loss network's values do not change the time
BENCH_OVERRIDES = {name: ["loss.vgg_weights=random"] for name in ("pconv", "edgeconnect", "shiftnet")}
#: what --reduced shrinks, per family (the PyTorch side's sizes: _TORCH_REDUCED)
REDUCED_OVERRIDES = {
    "deepfill_v2": ["model.cnum=8", "model.d_cnum=8"],
    "deepfill_v1": ["model.cnum=8", "model.d_cnum=8"],
    "pconv": ["model.levels=6", "model.width=8"],
    "edgeconnect": ["model.residual_blocks=1"],
    "glcic": ["model.width=8", "model.d_width=8", "model.local_size=32"],
    "shiftnet": ["model.num_downs=6", "model.ngf=8", "model.ndf=8", "data.image_size=64",
                 "loss.vgg_widths=(4,8,8,8,8)"],
}


def _family(name: str, dtype: str, remat: bool, reduced: bool, overrides=()):
    from inpaintjax.config import apply_overrides
    from inpaintjax.families import base

    cls = base.get(name)
    config = cls.default_config()
    config.compute_dtype = dtype
    config.remat = remat
    if reduced and name not in REDUCED_OVERRIDES:
        raise ValueError(f"--reduced: no reduced sizes for family {name!r} (bench.REDUCED_OVERRIDES has "
                         f"{', '.join(REDUCED_OVERRIDES)})")
    apply_overrides(config, BENCH_OVERRIDES.get(name, []) + (REDUCED_OVERRIDES[name] if reduced else [])
                    + list(overrides))
    return cls(config), config


def _initial_state(family, batch):
    """The family's initial state (key 0), initialised by one jitted program: op by op, a family's
    initialisation takes 16-20 s of small compilations on a 2-core CPU, jitted 2-7 s."""
    import jax
    return jax.jit(family.init_state)(jax.random.key(0), batch)


def _batch(family, batch: int, size: int, stacked: int = 0):
    """A batch of the family's spec: random images, a box hole; `stacked` > 0 stacks that many
    batches (a family taking several batches per step)."""
    import jax.numpy as jnp
    import numpy as np

    from inpaintjax.data import fields

    spec = family.batch_spec()

    def one(seed):
        rng = np.random.default_rng(seed)
        mask = np.zeros((batch, size, size, 1), np.float32)
        mask[:, size // 4: size // 2, size // 4: 3 * size // 4] = 1.0
        images = rng.random((batch, size, size, 3), np.float32)
        return fields.compute_batch(spec, images, mask, [np.random.default_rng([seed, i])
                                                         for i in range(batch)])

    if not stacked:
        return {k: jnp.asarray(v) for k, v in one(0).items()}
    parts = [one(j) for j in range(stacked)]
    return {k: jnp.asarray(np.stack([p[k] for p in parts])) for k in spec}


def _timed(fn, case: dict) -> tuple[float, list[float]]:
    """`inpaintjax.timing.timed` with the case's repeats and pause (`--pause`)."""
    return timed(fn, case["repeats"], case.get("pause_s", 0.0))


def _compile(fn, *args):
    """(the compiled program of jax.jit(fn) for args, seconds spent lowering and compiling)."""
    import jax
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def _case_peak_matmul(case: dict) -> tuple[float, list, float, float | None]:
    """A float32 n x n matmul: (warm-up s, timed s, compile s, FLOPs)."""
    import jax
    import jax.numpy as jnp
    n = case["size"]
    x = jnp.asarray(jax.random.normal(jax.random.key(0), (n, n), jnp.float32))
    compiled, compile_s = _compile(lambda x: x @ x, x)
    warm, times = _timed(lambda: compiled(x).block_until_ready(), case)
    return warm, times, compile_s, 2.0 * n ** 3


def _case_stack(case: dict) -> tuple[float, list, float, float | None]:
    """Eight 3x3 convolutions (dilations 1-8), forward and backward."""
    import jax
    import jax.numpy as jnp

    from inpaintjax.layers.conv import conv_general_dilated

    chans, dil = [5, 64, 64, 64, 64, 64, 64, 64, 3], [1, 1, 2, 4, 8, 1, 1, 1]
    key = jax.random.key(0)
    ws = [jax.random.normal(jax.random.fold_in(key, i), (3, 3, chans[i], chans[i + 1]))
          * (2.0 / (9 * chans[i])) ** 0.5 for i in range(8)]
    b, s = case["batch"], case["size"]
    x = jax.random.normal(key, (b, s, s, 5)).astype(case["dtype"])

    def loss(ws, x):
        h = x
        for i, w in enumerate(ws):
            h = conv_general_dilated(h, w.astype(h.dtype), (1, 1), "SAME",
                                     rhs_dilation=(dil[i], dil[i]),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
            if i < 7:
                h = jax.nn.relu(h)
        return jnp.mean(h.astype(jnp.float32) ** 2)

    fn = jax.grad(loss)
    compiled, compile_s = _compile(fn, ws, x)
    warm, times = _timed(lambda: jax.block_until_ready(compiled(ws, x)), case)
    return warm, times, compile_s, _flops_native(fn, ws, x, case=case, compiled=compiled)


def _inference_args(family, state, batch):
    import jax.numpy as jnp
    import numpy as np
    variables = family.inference_variables(state)
    inputs = {k: jnp.asarray(v) for k, v in family.inference_inputs(
        {k: np.asarray(v) for k, v in batch.items()}).items()}
    return variables, inputs


def _case_memory(case: dict) -> tuple[float, list, float, float | None]:
    """The family's `inpaint`, batch 1 at case['size'] (no FLOP count: a second compile would
    double the memory peak being measured)."""
    import numpy as np
    family, _ = _family(case["family"], case["dtype"], case.get("remat", False),
                        case.get("reduced", False), case.get("overrides", ()))
    batch = _batch(family, case["batch"], case["size"])
    # parameters do not depend on the image size: initialise small (the discriminator's
    # initialisation at 2048 x 2048 would dominate the memory peak being measured)
    state = _initial_state(family, _batch(family, case["batch"], 64))
    variables, inputs = _inference_args(family, state, batch)
    del state, batch
    compiled, compile_s = _compile(lambda v, inputs: family.inpaint(v, inputs)["output"],
                                   variables, inputs)
    last = []

    def run():
        last[:] = [compiled(variables, inputs).block_until_ready()]

    warm, times = _timed(run, case)
    if not np.all(np.isfinite(np.asarray(last[0]))):
        raise SystemExit("inpaintjax.bench: non-finite inpainting output")
    return warm, times, compile_s, None


def _case_infer(case: dict) -> tuple[float, list, float, float | None]:
    """The family's jitted `inpaint` (latency)."""
    family, _ = _family(case["family"], case["dtype"], case.get("remat", False),
                        case.get("reduced", False), case.get("overrides", ()))
    batch = _batch(family, case["batch"], case["size"])
    state = _initial_state(family, batch)
    args = _inference_args(family, state, batch)
    del state

    def fn(v, inputs):
        return family.inpaint(v, inputs)["output"]

    compiled, compile_s = _compile(fn, *args)
    warm, times = _timed(lambda: compiled(*args).block_until_ready(), case)
    return warm, times, compile_s, _flops_native(fn, *args, case=case, compiled=compiled)


def _case_train(case: dict) -> tuple[float, list, float, float | None]:
    """The family's jitted, state-donating `train_step`; stops on a non-finite metric."""
    import jax
    import jax.numpy as jnp
    family, _ = _family(case["family"], case["dtype"], case.get("remat", False),
                        case.get("reduced", False), case.get("overrides", ()))
    batch = _batch(family, case["batch"], case["size"])
    state = _initial_state(family, batch)
    rng = jax.random.key(1)
    if family.batches_per_step > 1:
        batch = _batch(family, case["batch"], case["size"], stacked=family.batches_per_step)
    frozen = jax.tree.map(jnp.asarray, family.load_frozen())
    t0 = time.perf_counter()
    compiled = jax.jit(family.train_step, donate_argnums=0).lower(state, batch, rng,
                                                                   frozen).compile()
    compile_s = time.perf_counter() - t0
    flops = _flops_native(family.train_step, state, batch, rng, frozen, case=case,
                          compiled=compiled)
    holder = [state]

    def run():
        new_state, metrics = compiled(holder[0], batch, rng, frozen)
        holder[0] = new_state
        jax.block_until_ready(metrics)
        bad = [k for k, v in metrics.items()
               if not bool(jnp.all(jnp.isfinite(jnp.asarray(jax.tree.leaves(v)[0]))))]
        if bad:
            raise SystemExit(f"inpaintjax.bench: non-finite metrics {bad}")

    warm, times = _timed(run, case)
    return warm, times, compile_s, flops


# ---------------------------------------------------------------------------------------------
# PatchMatch (inpaintjax.patchmatch) beside PyPatchMatch
# ---------------------------------------------------------------------------------------------
def patchmatch_inputs(size: int, hole: int, batch: int):
    """uint8 images [batch,size,size,3] and bool holes [batch,size,size] of the PatchMatch cases:
    scikit-image's astronaut (its top-left 512x512; at size < 512, crops of it at `batch` offsets
    on a diagonal) with a centred hole x hole square, hole pixels zeroed."""
    import numpy as np
    from skimage import data
    photo = data.astronaut()
    side = min(512, photo.shape[0], photo.shape[1])
    offsets = np.linspace(0, side - size, batch).astype(int) if batch > 1 else [0]
    images = np.stack([photo[o:o + size, o:o + size] for o in offsets]).copy()
    holes = np.zeros(images.shape[:3], bool)
    a = (size - hole) // 2
    holes[:, a:a + hole, a:a + hole] = True
    images[holes] = 0
    return images, holes


def _process_seconds() -> float:
    # CPU seconds of this process, all its threads (XLA:CPU runs a fusion on several)
    return time.process_time()


def _case_patchmatch(case: dict) -> tuple[float, list, float, float | None]:
    """`inpaintjax.patchmatch.inpaint_uint8` on `patchmatch_inputs` (one call fills the batch).
    The first call compiles one program per searched pyramid level; compile_s is that call's
    time minus the median warm call's. CPU seconds go into the case (cpu_first_s, cpu_median_s)."""
    import numpy as np
    from inpaintjax import patchmatch
    images, holes = patchmatch_inputs(case["size"], case["hole"], case["batch"])
    cpu = []

    def run():
        c = _process_seconds()
        patchmatch.inpaint_uint8(images, holes, seed=0, radius=case["radius"])
        cpu.append(_process_seconds() - c)

    warm, times = _timed(run, case)
    med = sorted(times)[len(times) // 2] if times else warm
    case["cpu_first_s"] = round(cpu[0], 4)
    case["cpu_median_s"] = round(float(np.median(cpu[1:] or cpu)), 4)
    case["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return warm, times, max(0.0, warm - med), None


_CASES_PATCHMATCH = {"patchmatch": _case_patchmatch}

# PyPatchMatch's side, run by the Python named with --pypatchmatch (it needs numpy and
# PyPatchMatch only, not inpaintjax): reads the inputs from an .npz, prints one JSON line
_PYPATCHMATCH_SCRIPT = r"""
import json, os, sys, time
import numpy as np
from importlib import metadata
from patchmatch import patch_match
if not patch_match.patchmatch_available:
    raise SystemExit("PyPatchMatch's C++ library did not load")
data = np.load(sys.argv[1])
images, holes, radius, repeats = data["images"], data["holes"], int(data["radius"]), int(data["repeats"])
def run():
    for image, hole in zip(images, holes):
        patch_match.inpaint(image, hole.astype(np.uint8), patch_size=radius)
walls, cpus = [], []
for _ in range(1 + repeats):
    w, c = time.perf_counter(), time.process_time()
    run()
    walls.append(time.perf_counter() - w)
    cpus.append(time.process_time() - c)
timed = walls[1:] or walls
print(json.dumps({"framework": "PyPatchMatch " + metadata.version("PyPatchMatch"),
                  "warmup_s": round(walls[0], 4), "median_s": round(float(np.median(timed)), 4),
                  "min_s": round(min(timed), 4), "max_s": round(max(timed), 4),
                  "repeats": len(walls) - 1, "cpu_first_s": round(cpus[0], 4),
                  "cpu_median_s": round(float(np.median(cpus[1:] or cpus)), 4),
                  "load_avg_1m": round(os.getloadavg()[0], 2)}))
"""


def _patchmatch_cases(args, wanted, common) -> list[dict]:
    """The PatchMatch cases (--cases patchmatch): (size, hole, batch) = (512, 128, 1), (512, 256,
    1), (256, 64, 8); reduced: (64, 16, 1), (64, 32, 1), (32, 8, 2). Patch radius 3."""
    if "patchmatch" not in wanted:
        return []
    shapes = ([(64, 16, 1), (64, 32, 1), (32, 8, 2)] if args.reduced else
              [(512, 128, 1), (512, 256, 1), (256, 64, 8)])
    return [{"kind": "patchmatch", "size": s, "hole": h, "batch": b, "radius": 3,
             "repeats": common["repeats"], "reduced": common["reduced"]} for s, h, b in shapes]


def _pypatchmatch_child(case: dict, python: str, timeout: float) -> dict:
    """PyPatchMatch on the case's images in `python` (one image after another)."""
    import tempfile
    import numpy as np
    images, holes = patchmatch_inputs(case["size"], case["hole"], case["batch"])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "inputs.npz")
        np.savez(path, images=images, holes=holes, radius=case["radius"],
                 repeats=case["repeats"])
        try:
            proc = subprocess.run([python, "-c", _PYPATCHMATCH_SCRIPT, path], capture_output=True,
                                  text=True, timeout=timeout)
        except OSError as e:
            return {**case, "framework": "PyPatchMatch", "error": f"{python}: {e}"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {**case, "framework": "PyPatchMatch",
                "error": (proc.stderr or proc.stdout).strip()[-2000:]}
    return {**case, **json.loads(lines[-1])}


def pypatchmatch_missing(python: str) -> str:
    """'' when `python` can import PyPatchMatch, else one line saying why not."""
    try:
        proc = subprocess.run([python, "-c", "from patchmatch import patch_match; "
                               "assert patch_match.patchmatch_available"],
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{python}: {e}"
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["exit status %d" % proc.returncode])[-1]
        return f"{python}: {last}"
    return ""


def _run_patchmatch_case(args, case: dict, index: int, emit) -> bool:
    """One PatchMatch case: inpaintjax (under the first XLA:CPU set-up) and, with --pypatchmatch,
    PyPatchMatch, the first in even cases and the second in odd ones, so that a change in the
    shared machine's load does not always favour the same side."""
    mode = "tuned" if args.xla_cpu == "both" else args.xla_cpu
    runs = ["jax"] + (["pypatchmatch"] if args.pypatchmatch else [])
    if index % 2:
        runs.reverse()
    ok = True
    for side in runs:
        if side == "jax":
            rec = _child(case, "auto", args.timeout, mode)
            rec.setdefault("framework", "inpaintjax")
        else:
            rec = _pypatchmatch_child(case, args.pypatchmatch, args.timeout)
        if "error" not in rec and rec.get("median_s"):
            rec["images_per_s"] = round(rec["batch"] / rec["median_s"], 4)
        ok &= "error" not in rec
        emit(rec)
    return ok


_CASES = {"peak_matmul": _case_peak_matmul, "stack": _case_stack, "memory": _case_memory,
          "infer": _case_infer, "train": _case_train}


_CASES.update(_CASES_PATCHMATCH)


def _run_case(case: dict) -> dict:
    """Run one case (in this child process) and return its record: the case, the timings, the
    compile time, FLOPs, the peak RSS, JAX's version and backend, the XLA:CPU set-up."""
    import jax

    from inpaintjax import xla_cpu
    kind = case["kind"]
    if kind not in _CASES:
        raise SystemExit(f"inpaintjax.bench: unknown case kind {kind!r}")
    warm, times, compile_s, flops = _CASES[kind](case)
    rec = {k: v for k, v in case.items() if k != "known_flops"}
    rec["compile_s"] = round(compile_s, 3)
    rec["flops"] = flops
    rec.update(summary(warm, times))
    rec["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    rec["jax"] = jax.__version__
    rec["backend"] = jax.default_backend()
    rec["ynn_convolutions_off"] = xla_cpu.ynn_convolutions_off()
    return rec


# ---------------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------------
def _child(case: dict, conv: str, timeout: float, xla_cpu_mode: str = "tuned") -> dict:
    from inpaintjax import xla_cpu

    env = dict(os.environ, INPAINTJAX_CONV=conv, INPAINTJAX_XLA_CPU=xla_cpu_mode)
    # the child decides the XLA:CPU set-up from INPAINTJAX_XLA_CPU alone
    env["XLA_FLAGS"] = xla_cpu.without_option(env.get("XLA_FLAGS", ""))
    proc = subprocess.run([sys.executable, "-m", "inpaintjax.bench", "--child", json.dumps(case)],
                          capture_output=True, text=True, env=env, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {**case, "conv": conv, "xla_cpu": xla_cpu_mode,
                "error": (proc.stderr or proc.stdout).strip()[-2000:]}
    rec = json.loads(lines[-1])
    rec["conv"] = conv
    rec["xla_cpu"] = xla_cpu_mode
    if xla_cpu_mode == "auto":  # what the child's configure() chose
        rec["xla_cpu"] = "tuned" if rec.get("ynn_convolutions_off") else "default"
        rec["xla_cpu_choice"] = "auto"
    return rec


def _torch_module(case: dict) -> str:
    """The `inpaintjax.benchmarks_torch` module timing `case` in PyTorch."""
    if case["kind"] == "stack":
        return benchmarks_torch.STACK_MODULE
    return benchmarks_torch.MODULES[case.get("family", "deepfill_v2")]


def _torch_child(case: dict, timeout: float) -> dict:
    module = _torch_module(case)
    cmd = [sys.executable, "-m", f"inpaintjax.benchmarks_torch.{module}",
           "--case", case.get("torch_case", case["kind"]), "--batch", str(case["batch"]),
           "--size", str(case["size"]), "--repeats", str(case["repeats"]),
           "--pause", str(case.get("pause_s", 0.0))]
    if case.get("reduced"):
        cmd += _TORCH_REDUCED[module]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {**case, "framework": "torch", "error": (proc.stderr or proc.stdout).strip()[-2000:]}
    rec = json.loads(lines[-1])
    rec["kind"] = rec.pop("case")
    for key in ("family", "dtype", "reduced"):
        if key in case:
            rec[key] = case[key]
    return rec


def _cases(args) -> list[dict]:
    r = args.repeats if args.repeats is not None else (2 if args.reduced else 3)
    common = {"repeats": r, "dtype": args.dtype, "reduced": args.reduced}
    fam = {"family": args.family, "remat": args.remat}
    if args.reduced:
        sizes = {"stack": (1, 32), "infer": [(1, 64), (2, 64)], "train": (2, 64), "t512": (1, 128),
                 "i512": [(1, 128)]}
    else:
        sizes = {"stack": (4, 256), "infer": [(1, 256), (8, 256), (1, 512), (8, 512)],
                 "train": (args.train_batch, 256), "t512": (args.train_batch, 512), "i512": [(1, 512)]}
    wanted = args.cases.split(",")
    out = []
    if args.family == "edgeconnect":
        return _edgeconnect_cases(args, wanted, common, fam)
    if args.family == "glcic":
        return _glcic_cases(args, wanted, common, fam)
    if args.family == "shiftnet":
        return _shiftnet_cases(args, wanted, common, fam)
    if "stack" in wanted:
        b, s = sizes["stack"]
        out.append({"kind": "stack", "batch": b, "size": s, **common})
    if "infer" in wanted:
        for b, s in sizes["infer"]:
            out.append({"kind": "infer", "batch": b, "size": s, **common, **fam})
    if "infer512" in wanted:
        for b, s in sizes["i512"]:
            out.append({"kind": "infer", "batch": b, "size": s, **common, **fam})
    if "train" in wanted:
        b, s = sizes["train"]
        out.append({"kind": "train", "batch": b, "size": s, **common, **fam})
    if "train512" in wanted:
        b, s = sizes["t512"]
        out.append({"kind": "train", "batch": b, "size": s, **common, **fam})
    if "memory" in wanted:
        mem_sizes = [int(x) for x in args.memory_sizes.split(",")] if args.memory_sizes else (
            [64, 128] if args.reduced else [256, 512, 1024, 2048])
        for s in mem_sizes:
            # large sizes: the first run after compilation is the measurement (a 2048 x 2048
            # inpainting takes many minutes on a 2-core CPU)
            out.append({"kind": "memory", "batch": 1, "size": s, **common, **fam,
                        "repeats": common["repeats"] if s <= 512 else 0})
    out += _patchmatch_cases(args, wanted, common)
    return out


def _edgeconnect_cases(args, wanted, common, fam) -> list[dict]:
    """The edge model's (mode 1) and the inpainting model's (mode 2) training steps at 256 and
    the two-stage inference (mode 3) at 512, each with its PyTorch counterpart's case name."""
    small = args.reduced
    out = []
    if "train" in wanted:
        b, s = (2, 64) if small else (args.train_batch, 256)
        out.append({"kind": "train", "batch": b, "size": s, **common, **fam,
                    "overrides": ["model.mode=1"], "torch_case": "train_edge"})
        out.append({"kind": "train", "batch": b, "size": s, **common, **fam,
                    "overrides": ["model.mode=2"],  # a random VGG-19 (the time is the same)
                    "torch_case": "train_inpaint"})
    if "infer" in wanted:
        b, s = (1, 64) if small else (1, 512)
        out.append({"kind": "infer", "batch": b, "size": s, **common, **fam,
                    "overrides": ["model.mode=3"], "torch_case": "infer"})
    return out


def _glcic_cases(args, wanted, common, fam) -> list[dict]:
    """The joint phase's training step (one discriminator and one completion update, both
    discriminators) at 256 and the completion network's inference at 512; reduced: width 8,
    a 32 x 32 local crop at 64 x 64 (REDUCED_OVERRIDES; torch_glcic.py's flags in _TORCH_REDUCED)."""
    small = args.reduced
    out = []
    if "train" in wanted:
        b, s = (2, 64) if small else (args.train_batch, 256)
        out.append({"kind": "train", "batch": b, "size": s, **common, **fam, "overrides": ["phase=joint"]})
    if "infer" in wanted:
        b, s = (1, 64) if small else (1, 512)
        out.append({"kind": "infer", "batch": b, "size": s, **common, **fam})
    return out


def _shiftnet_cases(args, wanted, common, fam) -> list[dict]:
    """The released defaults' training step (D update, then G with L1, discounted hole L1, GAN,
    VGG-16 style and content, guidance; a random VGG-16 of the same shape) at 256 and the
    generator's inference at 512; reduced: a 6-level U-Net of width 8 and a tiny VGG at 64 x 64
    (REDUCED_OVERRIDES; torch_shiftnet.py's flags in _TORCH_REDUCED)."""
    small = args.reduced
    out = []
    if "train" in wanted:
        b, s = (2, 64) if small else (args.train_batch, 256)
        out.append({"kind": "train", "batch": b, "size": s, **common, **fam})
    if "infer" in wanted:
        b, s = (1, 64) if small else (1, 512)
        out.append({"kind": "infer", "batch": b, "size": s, **common, **fam})
    return out


def _finish(rec: dict, peak: float | None) -> dict:
    if "error" in rec:
        return rec
    med = rec.get("median_s")
    if rec.get("flops") and med:
        rec["achieved_flops_per_s"] = round(rec["flops"] / med)
        if peak:
            rec["fraction_of_peak"] = round(rec["flops"] / med / peak, 4)
    if rec.get("kind") in ("train", "stack") and med:
        rec["images_per_s"] = round(rec["batch"] / med, 4)
    if rec.get("kind") == "infer" and med:
        rec["latency_s"] = med
    if rec.get("kind") == "memory" and med:
        mp = rec["size"] ** 2 / 1e6
        rec["megapixels"] = round(mp, 4)
        rec["s_per_megapixel"] = round(med / mp, 3)
    return rec


CALIBRATION_CASE = {"kind": "train", "family": "deepfill_v2", "size": 128, "batch": 2,
                    "dtype": "float32"}
CALIBRATION_PAIRS = 2


def calibrate(if_missing: bool = False, repeats: int = 3, timeout: float = 1800.0) -> int:
    """Interleaved A/B of the XLA:CPU set-ups on CALIBRATION_CASE (the DeepFill v2 training step,
    full width, batch 2 at 128x128): CALIBRATION_PAIRS pairs of child processes, each timing
    `repeats` steps after a warm-up; the lower median of the children's medians wins."""
    from inpaintjax import xla_cpu
    key = xla_cpu.cpu_key()
    # a record of the rule's choice (inpaintjax.xla_cpu.rule_mode) is not a measurement
    if if_missing and xla_cpu.is_measured(xla_cpu.read_calibration().get(key)):
        rec = xla_cpu.read_calibration()[key]
        print(f"XLA:CPU calibration for {key}: {rec['winner']} (recorded {rec['date']}; "
              f"{xla_cpu.calibration_path()})")
        return 0
    times = {"default": [], "tuned": []}
    case = {**CALIBRATION_CASE, "repeats": repeats}
    for i in range(CALIBRATION_PAIRS):
        order = ("default", "tuned") if i % 2 == 0 else ("tuned", "default")
        for mode in order:
            rec = _child(case, "auto", timeout, mode)
            if "error" in rec:
                raise SystemExit(f"inpaintjax.bench --calibrate: the {mode} run failed: {rec['error']}")
            times[mode].append(rec["median_s"])
            print(f"calibrate {i + 1}/{CALIBRATION_PAIRS} {mode}: {rec['median_s']:.3f} s/step",
                  flush=True)
    rec = xla_cpu.record_calibration(times)
    print(f"XLA:CPU calibration for {key}: {rec['winner']} is {rec['speedup_of_winner']:.3f}x "
          f"faster (median s/step {rec['median_s']}); recorded in {xla_cpu.calibration_path()}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m inpaintjax.bench", description=__doc__.split("\n")[0])
    p.add_argument("--family", default="deepfill_v2")
    p.add_argument("--reduced", action="store_true", help="tiny sizes for CI (seconds)")
    p.add_argument("--torch", action="store_true",
                   help="also run the PyTorch equivalents (inpaintjax.benchmarks_torch)")
    p.add_argument("--native-conv", action="store_true",
                   help="XLA's own convolution gradients (INPAINTJAX_CONV=native)")
    p.add_argument("--conv", choices=["auto", "native", "both"], default=None,
                   help="which convolution gradients to time: inpaintjax's CPU ones (auto), "
                        "XLA's own (native); 'both' runs every JAX case twice")
    p.add_argument("--xla-cpu", choices=["tuned", "default", "both", "auto"], default="tuned",
                   help="XLA:CPU set-up (INPAINTJAX_XLA_CPU): YNNPACK fusions off (tuned) or "
                        "jaxlib's defaults; 'both' runs each; 'auto' what train.py chooses on "
                        "this machine (its calibration record, or the rule)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="compute dtype (parameters stay float32)")
    p.add_argument("--remat", action="store_true", help="rematerialise generator blocks")
    p.add_argument("--cases", default="peak,stack,infer,train",
                   help="comma list of peak, stack, infer, infer512 (batch 1 at 512 only), train, "
                        "train512, memory, patchmatch")
    p.add_argument("--memory-sizes", default="",
                   help="comma list of square sizes for the memory case (default 256,512,1024,2048)")
    p.add_argument("--train-batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=None, help="timed runs after warm-up")
    p.add_argument("--rounds", type=int, default=1,
                   help="run each case this many times on each side, alternating which side "
                        "goes first (with --torch: a speedup record per set-up after the rounds)")
    p.add_argument("--pause", type=float, default=0.0,
                   help="seconds of sleep (not timed) before each timed step, both sides")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per case")
    p.add_argument("--out", default="", help="also append the JSON records to this file")
    p.add_argument("--calibrate", action="store_true",
                   help="time the DeepFill v2 training step under both XLA:CPU set-ups "
                        "(interleaved) and record the faster one for this CPU, which train.py, "
                        "eval.py and the inpaintjax command then use (inpaintjax.xla_cpu)")
    p.add_argument("--if-missing", action="store_true",
                   help="with --calibrate: only when this CPU has no measured record yet")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    _add_patchmatch_arguments(p)
    return p


def _add_patchmatch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pypatchmatch", default="", metavar="PYTHON",
                   help="with --cases patchmatch: also time PyPatchMatch (pip install "
                        "PyPatchMatch) on the same images, run by this Python interpreter "
                        "(e.g. a venv's bin/python)")


def _setups(p: argparse.ArgumentParser, args) -> list[tuple[str, str]]:
    """The (XLA:CPU set-up, convolution) pairs each JAX case runs under; checks --torch."""
    if args.native_conv and args.conv not in (None, "native"):
        p.error("--native-conv contradicts --conv " + args.conv)
    if args.rounds < 1:
        p.error(f"--rounds {args.rounds}: give 1 or more")
    if args.pause < 0:
        p.error(f"--pause {args.pause}: give 0 or more seconds")
    conv = "native" if args.native_conv else (args.conv or "auto")
    convs = ["native", "auto"] if conv == "both" else [conv]
    modes = ["default", "tuned"] if args.xla_cpu == "both" else [args.xla_cpu]
    if args.torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            p.error("--torch needs PyTorch: pip install 'inpaintjax[bench]' (torch==2.13.0)")
    return [(m, c) for m in modes for c in convs]


def _run_all(args, setups, emit) -> bool:
    """The matmul peak, then every case under every set-up (and in PyTorch with --torch), each
    record passed to `emit`. True when every case ran."""
    emit({"kind": "machine", "platform": platform.platform(), "python": platform.python_version(),
          "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)})
    peak = None
    if "peak" in args.cases.split(","):
        # under both XLA:CPU set-ups: their matmul libraries differ (YNNPACK's or Eigen's), and
        # which is faster depends on the CPU (on a Zen 3 EPYC, 106 against 67 GFLOP/s)
        recs = [_child({"kind": "peak_matmul", "size": 512 if args.reduced else 4096,
                        "repeats": args.repeats or 3}, "auto", args.timeout, mode)
                for mode in ("default", "tuned")]
        rates = [r["flops"] / r["median_s"] for r in recs if "error" not in r]
        peak = max(rates) if rates else None
        for rec in recs:
            if "error" not in rec:
                rec["peak_flops_per_s"] = round(peak)
            emit(_finish(rec, peak))
    ok = True
    for index, case in enumerate(_cases(args)):
        if case["kind"] == "patchmatch":
            ok &= _run_patchmatch_case(args, case, index, emit)
        else:
            ok &= _run_rounds(args, case, setups, peak, emit)
    return ok


def _run_rounds(args, case: dict, setups, peak: float | None, emit) -> bool:
    """`args.rounds` rounds of one case: each JAX set-up in its own child, then PyTorch (with
    --torch); odd rounds run the same list in reverse, so each side goes first as often as last
    (a step that follows the other framework's process can run slower than one that follows its
    own). A round's records are emitted when the round ends, in the order they ran, each with
    its `round` and `position`; with --torch, one `speedup` record per JAX set-up follows the
    rounds. True when every run succeeded."""
    if args.pause:
        case = {**case, "pause_s": args.pause}
    runs = [("jax", mode, conv) for mode, conv in setups] + ([("torch", "", "")] if args.torch else [])
    ok, flops, medians, applied = True, None, {}, {}
    for rnd in range(args.rounds):
        recs = []
        for position, (side, mode, conv) in enumerate(runs if rnd % 2 == 0 else runs[::-1]):
            if side == "jax":
                rec = _child({**case, "known_flops": flops} if flops else case, conv,
                             args.timeout, mode)
                flops = flops or rec.get("flops")
            else:
                rec = _torch_child(case, args.timeout)
            rec.update({"round": rnd, "position": position})
            recs.append((side, mode, conv, rec))
        for side, mode, conv, rec in recs:
            if side == "torch" and flops:
                rec["flops"] = flops  # same computation: the JAX record's XLA count is PyTorch's too
            rec = _finish(rec, peak)
            ok &= "error" not in rec
            if "error" not in rec:
                medians.setdefault((side, mode, conv), []).append(rec["median_s"])
                applied[mode] = rec.get("xla_cpu")
            emit(rec)
    for mode, conv in setups if args.torch else []:
        mine, theirs = medians.get(("jax", mode, conv)), medians.get(("torch", "", ""))
        if mine and theirs and len(mine) == len(theirs):
            emit(_speedup(case, mode, conv, mine, theirs, applied.get(mode)))
    return ok


def _speedup(case: dict, mode: str, conv: str, jax_s: list, torch_s: list,
             applied: str | None = None) -> dict:
    """PyTorch's seconds over JAX's for one case and set-up: per round (each side's median step)
    and over the rounds (the medians of the per-round medians); above 1, JAX is faster. With
    `--xla-cpu auto`, `xla_cpu_applied` is the set-up the children chose."""
    import statistics
    jax_m, torch_m = statistics.median(jax_s), statistics.median(torch_s)
    chosen = {"xla_cpu_applied": applied} if mode == "auto" and applied else {}
    return {"kind": "speedup", "case": case["kind"],
            **{k: case[k] for k in ("family", "batch", "size", "dtype", "reduced") if k in case},
            "xla_cpu": mode, **chosen, "conv": conv, "rounds": len(jax_s),
            "pause_s": case.get("pause_s", 0.0),
            "jax_median_s": round(jax_m, 4), "torch_median_s": round(torch_m, 4),
            "speedup": round(torch_m / jax_m, 3),
            "per_round": [round(t / j, 3) for j, t in zip(jax_s, torch_s, strict=True)]}


def main(argv=None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if args.child:
        from inpaintjax import xla_cpu
        xla_cpu.configure()  # INPAINTJAX_XLA_CPU is set by the parent for each child
        print(json.dumps(_run_case(json.loads(args.child))), flush=True)
        return 0
    if args.calibrate:
        return calibrate(args.if_missing, args.repeats or 3, args.timeout)
    setups = _setups(p, args)
    if args.pypatchmatch:
        why = pypatchmatch_missing(args.pypatchmatch)
        if why:
            print(f"inpaintjax.bench: PyPatchMatch not available ({why}); the PatchMatch cases "
                  f"run inpaintjax alone", file=sys.stderr)
            args.pypatchmatch = ""
    out = open(args.out, "a") if args.out else None

    def emit(rec):
        line = json.dumps(rec)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    try:
        ok = _run_all(args, setups, emit)
    finally:
        if out:
            out.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
