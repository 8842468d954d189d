"""XLA:CPU convolution back-end selection for inpaintjax's entry points, without a manual step.

jaxlib 0.10's CPU compiler hands convolutions (and dots and reductions) to YNNPACK by default.
Whether that is fast depends on the CPU. On a 2-core AVX-512 Xeon, YNNPACK's convolutions were
slower than XLA's own Eigen ones (forward 10-25%, a kernel gradient up to 6x) and turning its
fusions off made the DeepFill v2 training step 1.24-1.45x faster; on a 2-core Zen 3 AMD EPYC
(AVX2, no AVX-512), 1.02-1.12x faster (docs/performance.md has both sets of figures, and an
older EPYC measurement that had favoured jaxlib's defaults).

So the choice is made per machine, and only by the programs inpaintjax ships: `import inpaintjax`
changes nothing (a library must not rewrite a notebook's JAX set-up behind its back). `train.py`,
`eval.py`, the `inpaintjax` command, the accelerator check and the benchmark's children call
`configure()` before JAX starts. With INPAINTJAX_XLA_CPU unset or `auto`, it applies the set-up
recorded for this CPU (`calibration_path()`: $INPAINTJAX_CALIBRATION, default
~/.cache/inpaintjax/xla_cpu.json, keyed by `cpu_key()`). A CPU without a record gets
`rule_mode()`'s choice, at no cost: YNNPACK fusions off on x86 CPUs with AVX2 or AVX-512 (the two
measured kinds above), jaxlib's defaults on any other CPU; the choice is recorded, so later runs
reuse it, and one line on stderr says what was chosen and why (a rule's record written by an
older rule is replaced, and said).

    python -m inpaintjax.bench --calibrate      # times both set-ups, records the faster one

replaces that choice by a measurement on this machine (3-7 minutes; run it on an idle machine).
INPAINTJAX_XLA_CPU=tuned (YNNPACK fusions off) or `default` forces a set-up (nothing is read or
recorded); an XLA_FLAGS setting of the option always wins. In your own program or notebook, call
`inpaintjax.xla_cpu.configure()` before the first JAX computation to get the same choice.

"Tuned" appends `--xla_cpu_experimental_ynn_fusion_type=` (no YNNPACK fusion types) to XLA_FLAGS,
which XLA reads once, when the CPU client is created. It only concerns CPU compilations. Under
YNNPACK, `inpaintjax.layers.conv` uses its own kernel gradient, which is fast there too.
"""

from __future__ import annotations

import os
import sys
import warnings

OPTION = "xla_cpu_experimental_ynn_fusion_type"
MODES = ("auto", "tuned", "default")

# What `configure()` found: 'tuned' (we set the option), 'user' (XLA_FLAGS already had it),
# 'off' (jaxlib's defaults: forced, recorded as faster, or the rule's choice for this CPU),
# 'too_late' (tuned was wanted but a backend was already running), 'unconfigured'.
state: str = "unconfigured"


def cpu_info() -> tuple[str, frozenset]:
    """(model name, instruction-set flags) of this machine's CPU from /proc/cpuinfo; elsewhere
    (no /proc) the platform's processor name and no flags."""
    model, flags = "unknown CPU", ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown CPU":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = value
    except OSError:
        import platform
        model = platform.processor() or platform.machine()
    return model, frozenset(flags.split())


def cpu_key() -> str:
    """This machine's CPU as calibration records name it: model, AVX-512 or not, core count."""
    model, flags = cpu_info()
    avx512 = "avx512f" in flags
    return f"{model} | {'avx512' if avx512 else 'no-avx512'} | {os.cpu_count()} cpus"


def rule_mode(flags=None) -> tuple[str, str]:
    """('tuned' | 'default', why) for a CPU without a calibration record, from its instruction-set
    flags (default: this CPU's). The rule is the committed measurements (docs/performance.md):
    on both x86 kinds measured, a 2-core AVX-512 Xeon and a 2-core Zen 3 EPYC with AVX2 only,
    the full-size DeepFill v2 training step ran faster with YNNPACK fusions off. A CPU without
    AVX2 (an older x86, an Arm CPU) is of neither kind and keeps jaxlib's defaults;
    `python -m inpaintjax.bench --calibrate` measures any CPU instead."""
    flags = cpu_info()[1] if flags is None else frozenset(flags)
    if "avx512f" in flags:
        return "tuned", ("AVX-512 CPU: on the AVX-512 Xeon measured, the DeepFill v2 training step "
                         "was 1.24-1.45x faster with YNNPACK fusions off")
    if "avx2" in flags:
        return "tuned", ("AVX2 CPU: on the Zen 3 EPYC (AVX2, no AVX-512) measured, the DeepFill v2 "
                         "training step was 1.02-1.12x faster with YNNPACK fusions off")
    return "default", ("a CPU of neither measured kind (no AVX2): jaxlib's defaults, unmeasured "
                       "here")


def calibration_path() -> str:
    return os.environ.get("INPAINTJAX_CALIBRATION") or os.path.join(
        os.path.expanduser("~"), ".cache", "inpaintjax", "xla_cpu.json")


def read_calibration(path: str | None = None) -> dict:
    import json
    path = path or calibration_path()
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        warnings.warn(f"ignoring the unreadable XLA:CPU calibration file {path} ({e}); rerun "
                      "python -m inpaintjax.bench --calibrate", RuntimeWarning, stacklevel=2)
        return {}
    return data if isinstance(data, dict) else {}


def _write_record(rec: dict, path: str | None, key: str | None) -> dict:
    """Store `rec` under this CPU's key (atomically: a concurrent reader sees the old or the new
    file, and concurrent writers do not share a temporary file)."""
    import json
    path = path or calibration_path()
    data = read_calibration(path)
    data[key or cpu_key()] = rec
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return rec


def record_calibration(times: dict, path: str | None = None, key: str | None = None) -> dict:
    """Record {'tuned': [seconds...], 'default': [seconds...]} (interleaved runs of one workload)
    for this CPU; the set-up with the lower median wins. Returns the record written."""
    import statistics
    import time as _time
    medians = {m: statistics.median(v) for m, v in times.items() if v}
    if set(medians) != {"tuned", "default"}:
        raise ValueError(f"calibration needs times of both 'tuned' and 'default', got {sorted(times)}")
    winner = min(medians, key=medians.get)
    rec = {"winner": winner, "source": "calibrate", "median_s": medians, "times_s": times,
           "speedup_of_winner": medians["tuned" if winner == "default" else "default"] / medians[winner],
           "date": _time.strftime("%Y-%m-%d %H:%M:%S"), "load_avg_1m": round(os.getloadavg()[0], 2)}
    return _write_record(rec, path, key)


def record_rule(winner: str, why: str, path: str | None = None, key: str | None = None) -> dict:
    """Record the rule's choice for this CPU (no timings: `is_measured()` is False for it)."""
    import time as _time
    if winner not in ("tuned", "default"):
        raise ValueError(f"winner must be 'tuned' or 'default', got {winner!r}")
    return _write_record({"winner": winner, "source": "rule", "why": why,
                          "date": _time.strftime("%Y-%m-%d %H:%M:%S")}, path, key)


def is_measured(rec) -> bool:
    """True for a record `--calibrate` measured, False for the rule's (or no record)."""
    return isinstance(rec, dict) and rec.get("source", "calibrate") != "rule"


def calibrated_mode() -> str | None:
    """'tuned' or 'default' as recorded for this CPU, or None without a record."""
    rec = read_calibration().get(cpu_key())
    winner = rec.get("winner") if isinstance(rec, dict) else None
    return winner if winner in ("tuned", "default") else None


def recorded_or_rule_mode() -> str:
    """The set-up `configure()` applies in 'auto' mode: a measured record's winner; else the
    rule's choice, recorded for the next run and announced in one line on stderr unless the
    record already holds it. A rule's record is not a measurement: when the rule has changed
    since it was written (a newer inpaintjax, new measurements), the new rule replaces it."""
    rec = read_calibration().get(cpu_key())
    rec = rec if isinstance(rec, dict) else {}
    if is_measured(rec) and rec.get("winner") in ("tuned", "default"):
        return rec["winner"]
    winner, why = rule_mode()
    if rec.get("winner") == winner:
        return winner
    return choose_and_record(winner, why, replaced=rec.get("winner"))


def choose_and_record(winner: str, why: str, replaced: str | None = None) -> str:
    """Record the rule's choice for this CPU and announce it in one line on stderr (naming the
    rule record it replaces, if any). A record that cannot be written is said in the same line
    (the choice still applies to this process)."""
    path = calibration_path()
    try:
        record_rule(winner, why, path)
        where = f"recorded in {path}"
    except OSError as e:
        where = f"not recorded ({e})"
    name = "YNNPACK fusions off (tuned)" if winner == "tuned" else "jaxlib's defaults"
    was = f" (replacing the earlier rule's {replaced!r})" if replaced else ""
    print(f"inpaintjax: XLA:CPU set-up {name} for this CPU ({cpu_key()}), chosen by rule{was}: "
          f"{why}; {where}; to measure this machine instead: python -m inpaintjax.bench "
          "--calibrate", file=sys.stderr, flush=True)
    return winner


def _backends_running() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - a future jax moved it; assume the worst
        return True
    return bool(xla_bridge.backends_are_initialized())


def _mode() -> str:
    mode = os.environ.get("INPAINTJAX_XLA_CPU", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"environment variable INPAINTJAX_XLA_CPU={mode!r} is not one of "
                         f"{MODES}: 'auto' applies this CPU's record (python -m "
                         "inpaintjax.bench --calibrate) or, without one, the rule for its kind, "
                         "'tuned' turns XLA:CPU's YNNPACK fusions off, 'default' leaves jaxlib's "
                         "defaults")
    return mode


def _user_value(flags: str):
    """The value XLA_FLAGS gives the option, or None if it does not set it."""
    value = None
    for token in flags.split():
        name, _, rest = token.lstrip("-").partition("=")
        if name == OPTION:
            value = rest
    return value


def without_option(flags: str) -> str:
    """XLA_FLAGS with this module's option removed (for a child process that decides itself)."""
    return " ".join(t for t in flags.split() if t.lstrip("-").partition("=")[0] != OPTION)


def configure() -> str:
    """Apply the XLA:CPU set-up (see the module docstring) if we may and still can. Idempotent."""
    global state
    if state != "unconfigured":
        return state
    flags = os.environ.get("XLA_FLAGS", "")
    mode = _mode()
    if _user_value(flags) is not None:
        state = "user"
        return state
    if mode == "auto":
        mode = recorded_or_rule_mode()
    if mode == "default":
        state = "off"
    elif _backends_running():
        state = "too_late"
        warnings.warn(
            "inpaintjax.xla_cpu.configure() ran after JAX had started its CPU backend, so it could "
            "not turn off XLA:CPU's YNNPACK fusions (inpaintjax's own kernel gradient is used "
            "instead). Call it before running any JAX computation, or set "
            f"XLA_FLAGS=--{OPTION}= yourself.", RuntimeWarning, stacklevel=2)
    else:
        os.environ["XLA_FLAGS"] = (flags + f" --{OPTION}=").strip()
        state = "tuned"
    return state


def ynn_convolutions_off() -> bool:
    """True if this process's XLA:CPU compiles convolutions without YNNPACK (Eigen's, fast
    gradients); False if they go to YNNPACK (XLA's default) or we cannot tell."""
    if state == "tuned":
        return True
    if state != "user":
        return False
    value = _user_value(os.environ.get("XLA_FLAGS", "")) or ""
    items = [item.strip().lower() for item in value.split(",") if item.strip()]
    if items and all(item[0] in "+-" for item in items):  # edits of XLA's default list
        return "-individual_convolution" in items
    return "individual_convolution" not in items


def describe() -> dict:
    """What this module decided for the process's XLA:CPU programs, for a run's record:
    {'xla_cpu': state (see `state`), 'ynn_convolutions_off': bool, 'INPAINTJAX_XLA_CPU': the
    variable or None, 'calibrated': this CPU's recorded winner or None}."""
    return {"xla_cpu": state, "ynn_convolutions_off": ynn_convolutions_off(),
            "INPAINTJAX_XLA_CPU": os.environ.get("INPAINTJAX_XLA_CPU"),
            "calibrated": calibrated_mode()}
