"""JAX's persistent compilation cache for inpaintjax's entry points (train.py, eval.py, the
`inpaintjax` command and its page), so that a program compiled once is loaded, not compiled again,
in the next process: a PatchMatch fill's first call in a new process takes seconds instead of the
~30-45 s of CPU its six level programs take to compile, a training run's restart skips most of its
compile.

The cache lives in `$INPAINTJAX_COMPILATION_CACHE` (default `~/.cache/inpaintjax/jax-compilation`),
holds at most `MAX_BYTES` (JAX evicts the least recently used programs beyond it) and keys each
program by its HLO, the XLA flags and the jaxlib version, so a changed set-up compiles afresh. A
`JAX_COMPILATION_CACHE_DIR` the user set is used as it is; `INPAINTJAX_COMPILATION_CACHE=off` turns
the cache off. Library imports never turn it on: a notebook calls `enable()` itself. The benchmark
does not use it (it times compilation).
"""

from __future__ import annotations

import logging
import os
from typing import Optional

log = logging.getLogger(__name__)

MAX_BYTES = 4 << 30
OFF = ("0", "off", "no", "false", "none")


def default_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".cache", "inpaintjax", "jax-compilation")


def enable() -> Optional[str]:
    """Turn the persistent compilation cache on for this process (see the module docstring); returns
    its folder, or None when it is off. Idempotent; call before the first compilation."""
    import jax
    setting = os.environ.get("INPAINTJAX_COMPILATION_CACHE", "")
    if setting.strip().lower() in OFF and setting:
        return None
    if jax.config.jax_compilation_cache_dir:  # JAX_COMPILATION_CACHE_DIR, or an earlier call
        return jax.config.jax_compilation_cache_dir
    path = setting or default_dir()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:  # a read-only home: run without the cache rather than fail
        log.warning("compilation cache off: cannot create %s (%s); set INPAINTJAX_COMPILATION_CACHE=DIR", path, e)
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return path
