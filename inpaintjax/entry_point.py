"""What every absl entry point (train.py, eval.py) does around its `main`: before absl parses the
command line, a misspelt `--config.KEY` is one line on stderr and exit status 2; inside `main`,
before JAX starts, this CPU's XLA:CPU set-up, quiet library logging and the multi-host start-up
from the distributed flags (`inpaintjax.distributed`)."""

from __future__ import annotations

import sys
from typing import Callable

from absl import app

from inpaintjax import config as config_lib
from inpaintjax import compile_cache, xla_cpu
from inpaintjax.distributed import initialize_from_flags, quiet_library_logging


def start(flag_values, script: str) -> None:
    """The first lines of a `main`: XLA:CPU set-up (before JAX starts), logging, multi-host (flags
    that do not fit together: the message on stderr prefixed with `script`, exit status 2)."""
    xla_cpu.configure()  # before JAX starts: this CPU's calibrated XLA:CPU set-up
    compile_cache.enable()  # programs compiled by an earlier run are loaded, not compiled again
    quiet_library_logging(flag_values)
    try:
        initialize_from_flags(flag_values)
    except ValueError as e:
        print(f"{script}: error: {e}", file=sys.stderr)
        sys.exit(2)


def run(main: Callable, script: str) -> None:
    """`app.run(main)` after checking the `--config.KEY` overrides of `sys.argv` (a bad one: the
    message on stderr prefixed with `script`, exit status 2)."""
    try:
        config_lib.check_override_flags(sys.argv)
    except (config_lib.ConfigKeyError, FileNotFoundError, ValueError) as e:
        print(f"{script}: {e}", file=sys.stderr)
        sys.exit(2)
    app.run(main)
