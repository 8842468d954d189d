"""The test session's shared set-up.

- Eight simulated CPU devices. `--xla_force_host_platform_device_count=8` joins XLA_FLAGS before
  JAX is imported (here, at the top of the first module pytest loads), in the controller and in
  every xdist worker, so any test can compare a mesh over `jax.devices()[:1]` with one over
  `jax.devices()[:8]` in its own process. `train()` builds its mesh with
  `inpaintjax.training.sharding.make_mesh()`, over all devices; the autouse fixture
  `_train_on_one_device` points it at one device for every test (the test configs' global batches
  of 2 are not multiples of 8), and a test that asks for the `train_devices` fixture chooses.
- One persistent JAX compilation cache per session. The controller makes a fresh directory before
  the workers start; the workers and the child processes inherit it through
  `JAX_COMPILATION_CACHE_DIR` (`child_env`), and it is removed when the session ends. It is fresh
  per session, so no result depends on an earlier run's programs; a user's own
  `JAX_COMPILATION_CACHE_DIR` is left alone. Every program is cached, not only those over JAX's
  1 s compile-time threshold: the many small ones add up.
- The `test` extra's packages (torch, OpenCV, h5py, selenium, nbclient) must be installed: the
  session stops at once, naming them, instead of skipping the tests that need them.
- `child_env`: the environment of a child process (train.py, eval.py, a worker script): this
  checkout first on PYTHONPATH, the session's cache, and exactly the XLA_FLAGS the child asks for
  (one CPU device unless told otherwise).
"""
import os
import shutil
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICES = 8
DEVICE_FLAG = f"--xla_force_host_platform_device_count={DEVICES}"
_OWNED = "INPAINTJAX_TEST_SESSION_DIR"
_USER_XLA_FLAGS = "INPAINTJAX_TEST_USER_XLA_FLAGS"

if "jax" in sys.modules:  # too late for XLA_FLAGS: say so instead of failing obscurely later
    raise RuntimeError("tests/conftest.py must be imported before JAX (it sets XLA_FLAGS)")
os.environ.setdefault(_USER_XLA_FLAGS, os.environ.get("XLA_FLAGS", ""))
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + DEVICE_FLAG).strip()


# what the `test` extra installs (setup.cfg): its absence fails the session instead of skipping
# every golden, converter, Telea or notebook test
TEST_EXTRA = {"torch": "torch", "cv2": "opencv-python-headless", "h5py": "h5py",
              "selenium": "selenium", "nbclient": "nbclient", "nbformat": "nbformat",
              "ipykernel": "ipykernel", "torchfile": "torchfile", "sklearn": "scikit-learn"}


def pytest_configure(config):
    import importlib.util
    missing = [pip for module, pip in TEST_EXTRA.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise pytest.UsageError(f"the test extra is not installed (missing: {', '.join(missing)}): "
                                f"pip install -e '.[test]' (or make test, which does)")
    if hasattr(config, "workerinput"):
        return  # an xdist worker: it inherited the controller's environment
    session_dir = tempfile.mkdtemp(prefix="inpaintjax-test-session-")
    os.environ[_OWNED] = session_dir
    # the XLA:CPU choice of child processes goes to a record of this session, never the user's
    # ~/.cache (xla_cpu.calibration_path)
    os.environ.setdefault("INPAINTJAX_CALIBRATION", os.path.join(session_dir, "xla_cpu.json"))
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):  # a user's own cache is left alone
        os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(session_dir, "jax-cache")
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def pytest_unconfigure(config):
    if hasattr(config, "workerinput"):
        return
    session_dir = os.environ.pop(_OWNED, None)
    if session_dir:
        shutil.rmtree(session_dir, ignore_errors=True)
