"""One persistent JAX compilation cache for the whole test session.

Many tests compile the same programs: train.py and eval.py subprocesses on the same `test`
configs, both pytest-xdist workers, a killed run and its resumption. The cache is set through
the environment before JAX is imported, so the xdist workers (started after `pytest_configure`)
and every subprocess inherit it; a program compiled once is loaded from disk everywhere else.

The directory is a fresh temporary one, removed at the end: a run of the suite never reads
programs compiled by an earlier run (or by another jaxlib). Set JAX_COMPILATION_CACHE_DIR yourself
to keep a cache across runs; it is then left in place.
"""

import os
import shutil
import tempfile

_OWNED = "INPAINTJAX_TEST_OWNS_JAX_CACHE"


def pytest_configure(config):
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:   # the controller (or a plain pytest run)
        os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="inpaintjax-jax-cache-")
        os.environ[_OWNED] = os.environ["JAX_COMPILATION_CACHE_DIR"]
    # every compile is cached: a train.py run makes dozens of sub-second ones
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    import jax   # after the environment is set; the updates cover a jax imported earlier
    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs",
                      float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


def pytest_unconfigure(config):
    owned = os.environ.get(_OWNED)
    if owned and not os.environ.get("PYTEST_XDIST_WORKER"):
        shutil.rmtree(owned, ignore_errors=True)
