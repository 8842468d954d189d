"""XLA:CPU convolution back-end selection, applied when `inpaintjax` is imported.

jaxlib 0.10's CPU compiler hands convolutions (and dots and reductions) to YNNPACK by default.
On this project's measurements (2-core AVX-512 CPU, DeepFill v2 layer shapes, `benchmarks/` and
README "Benchmarks") YNNPACK's convolutions are slower than XLA's own Eigen ones: forward 10-25%,
and a kernel (weight) gradient up to 6x (0.93 s against 0.15 s for a 4x256x256x48 3x3 layer),
and its reductions are slow too (the window sum of an up-sampling's gradient ran at ~30 MB/s).
With YNNPACK's fusions off, XLA's own convolution gradients are the fastest formulation measured,
so the training step needs no custom kernel gradient at all.

The option is read once, when the CPU client is created, so it has to be in `XLA_FLAGS` before
JAX's first computation. Importing `inpaintjax` therefore appends
`--xla_cpu_experimental_ynn_fusion_type=` (no YNNPACK fusion types) to `XLA_FLAGS` when

* the environment variable INPAINTJAX_XLA_CPU is not `default` (`tuned` is the default), and
* `XLA_FLAGS` does not already set that option (your own setting always wins), and
* no JAX backend is running yet.

It only concerns CPU compilations: GPU and TPU programs are untouched. If JAX was already running
(e.g. a notebook ran a JAX computation before `import inpaintjax`), the option cannot take effect:
a warning says so, and the convolutions fall back to inpaintjax's own CPU kernel gradient (see
`inpaintjax.layers.conv`), which is fast under YNNPACK too.
"""

from __future__ import annotations

import os
import sys
import warnings

OPTION = "xla_cpu_experimental_ynn_fusion_type"
MODES = ("tuned", "default")

# What `configure()` found: 'tuned' (we set the option), 'user' (XLA_FLAGS already had it),
# 'off' (INPAINTJAX_XLA_CPU=default), 'too_late' (a backend was running before the import).
state: str = "unconfigured"


def _backends_running() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - a future jax moved it; assume the worst
        return True
    return bool(xla_bridge.backends_are_initialized())


def _mode() -> str:
    mode = os.environ.get("INPAINTJAX_XLA_CPU", "tuned").strip().lower() or "tuned"
    if mode not in MODES:
        raise ValueError(f"environment variable INPAINTJAX_XLA_CPU={mode!r} is not one of "
                         f"{MODES}: 'tuned' turns XLA:CPU's YNNPACK fusions off (faster "
                         "convolutions here), 'default' leaves XLA's defaults")
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
    """Put the option into XLA_FLAGS if we may and still can (see the module docstring)."""
    global state
    if state != "unconfigured":
        return state
    flags = os.environ.get("XLA_FLAGS", "")
    if _mode() == "default":
        state = "off"
    elif _user_value(flags) is not None:
        state = "user"
    elif _backends_running():
        state = "too_late"
        warnings.warn(
            "inpaintjax was imported after JAX had started its CPU backend, so it could not turn "
            "off XLA:CPU's YNNPACK fusions (slower convolutions here; inpaintjax's own kernel "
            "gradient is used instead). For full CPU speed import inpaintjax before running any "
            f"JAX computation, or set XLA_FLAGS=--{OPTION}= yourself; silence this with "
            "INPAINTJAX_XLA_CPU=default.", RuntimeWarning, stacklevel=3)
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
