"""One persistent JAX compilation cache for the whole test session.

Many tests run `train.py`, `eval.py` or a worker script in a child process, and the two xdist
workers build the same small models: each of them would otherwise compile the same XLA programs
again. The controller process makes a fresh cache directory before the workers start; the workers
and every child process inherit it through `JAX_COMPILATION_CACHE_DIR`, and it is removed when the
session ends. It is fresh per session, so no result depends on an earlier run's programs, and a
user's own `JAX_COMPILATION_CACHE_DIR` is left alone.
"""
import os
import shutil
import tempfile

_OWNED = "INPAINTJAX_TEST_OWNS_COMPILATION_CACHE"


def pytest_configure(config):
    if hasattr(config, "workerinput") or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return  # an xdist worker (it inherited the controller's), or the user chose a cache
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="inpaintjax-test-jax-cache-")
    # every program, not only those that took over a second to compile: the many small ones add up
    # (a warm rerun of the DeepFill v2 train.py/eval.py test: 47 s with JAX's 1 s threshold, 38 s)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ[_OWNED] = "1"


def pytest_unconfigure(config):
    if hasattr(config, "workerinput") or not os.environ.pop(_OWNED, None):
        return
    shutil.rmtree(os.environ.pop("JAX_COMPILATION_CACHE_DIR"), ignore_errors=True)
