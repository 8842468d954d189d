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
  `JAX_COMPILATION_CACHE_DIR` is left alone. JAX's own threshold applies: programs that took 1 s or
  more to compile are written (writing one costs about 0.25 s; caching every program, 4,400 writes
  per run, cost more than the reads saved: docs/performance.md, "The test suite").
- The `test` extra's packages (torch, OpenCV, h5py, selenium, nbclient) must be installed: the
  session stops at once, naming them, instead of skipping the tests that need them.
- XLA:CPU's backend optimisation level 0 and its older (non-MLIR) fusion emitters
  (`FAST_COMPILE_FLAGS`) in this process and every child, each unless XLA_FLAGS already sets it:
  most of the suite's time is compilation of programs that then run a few steps.
- The XLA:CPU set-up record (`INPAINTJAX_CALIBRATION`) of the child processes lives in the session
  folder, never in the user's ~/.cache.
- Tests marked `long` are collected first, so that no worker starts one while the other runs
  out of work.
- `--dist loadgroup` keeps each `xdist_group` on one worker (`pytest_collection_modifyitems`
  below restores the group suffix of the node ids, which pytest-xdist 3.8 cannot set under
  pytest 9.2).
- `child_env`: the environment of a child process (train.py, eval.py, a worker script): this
  checkout first on PYTHONPATH, the session's cache, and exactly the XLA_FLAGS the child asks for
  (one CPU device unless told otherwise) plus the fast-compile flags.
"""
import os
import shutil
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICES = 8
DEVICE_FLAG = f"--xla_force_host_platform_device_count={DEVICES}"
# The tests compile many small programs and run each a few times: XLA:CPU's backend optimisations
# and its MLIR fusion emitters cost more compile time than they save run time (docs/performance.md,
# "The test suite"). Each is added unless XLA_FLAGS already sets it.
FAST_COMPILE_FLAGS = {"xla_backend_optimization_level": "0", "xla_cpu_use_fusion_emitters": "false"}
_OWNED = "INPAINTJAX_TEST_SESSION_DIR"
_USER_XLA_FLAGS = "INPAINTJAX_TEST_USER_XLA_FLAGS"

if "jax" in sys.modules:  # too late for XLA_FLAGS: say so instead of failing obscurely later
    raise RuntimeError("tests/conftest.py must be imported before JAX (it sets XLA_FLAGS)")
os.environ.setdefault(_USER_XLA_FLAGS, os.environ.get("XLA_FLAGS", ""))
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + DEVICE_FLAG).strip()


def with_fast_compile(flags: str) -> str:
    """`flags` plus each of FAST_COMPILE_FLAGS that it does not set."""
    return " ".join([flags.strip()] + [f"--{k}={v}" for k, v in FAST_COMPILE_FLAGS.items()
                                       if k not in flags]).strip()


os.environ["XLA_FLAGS"] = with_fast_compile(os.environ["XLA_FLAGS"])


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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """`--dist loadgroup` in an xdist worker: give each test with an `xdist_group` mark its
    '@group' node-id suffix, by which the controller's scheduler keeps a group on one worker.
    pytest-xdist 3.8 writes the suffix to `item._nodeid`, which pytest 9.2's structured node ids
    no longer read: without this every group was split across the workers, and each worker
    compiled the shared programs again (pytest-xdist issue 1386)."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        if not any(item.iter_markers("xdist_group")):
            for name in shared_module_fixtures(item):
                item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}-{name}"))
    # the long tests first (a stable sort): pytest-xdist hands out the scopes in this order (after
    # those of several tests, which it orders by size), so the last ones handed out are short
    # and the two workers finish within seconds of each other
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # a pytest before structured node ids: xdist's own suffix works
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)


def shared_module_fixtures(item) -> list[str]:
    """The module-scoped fixtures, defined in the test's own module, that `item` uses: each is
    built once per process that runs one of its tests (a trained model, a filled batch, a
    converted checkpoint), so its tests share an xdist group unless they carry one already."""
    names = []
    for name in item.fixturenames:
        defs = item._fixtureinfo.name2fixturedefs.get(name)
        if defs and defs[-1].scope == "module" and getattr(
                defs[-1].func, "__module__", None) == item.module.__name__:
            names.append(name)
    return sorted(names)


def pytest_unconfigure(config):
    if hasattr(config, "workerinput"):
        return
    session_dir = os.environ.pop(_OWNED, None)
    if session_dir:
        shutil.rmtree(session_dir, ignore_errors=True)


def make_child_env(xla_flags: str = "") -> dict:
    """The environment of a child Python process: this checkout importable first, the session's
    compilation cache (inherited), the user's own XLA_FLAGS plus
    `xla_flags` (so one CPU device unless `xla_flags` forces more)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + os.path.join(ROOT, "tests") + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["XLA_FLAGS"] = with_fast_compile(os.environ.get(_USER_XLA_FLAGS, "") + " " + xla_flags)
    return env


@pytest.fixture
def child_env():
    """`child_env(xla_flags="")` -> the environment dict for a child process (make_child_env)."""
    return make_child_env


def mesh_over(n: int):
    """A 1-D 'data' mesh over the first `n` devices (what `sharding.make_mesh` builds over all)."""
    import jax
    return jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=jax.devices()[:n])


@pytest.fixture(autouse=True)
def _train_on_one_device(monkeypatch):
    from inpaintjax.training import sharding
    monkeypatch.setattr(sharding, "make_mesh", lambda: mesh_over(1))


@pytest.fixture
def train_devices(monkeypatch):
    """`train_devices(n)`: `train()` in this test builds its mesh over the first n devices."""
    from inpaintjax.training import sharding

    def use(n: int) -> None:
        monkeypatch.setattr(sharding, "make_mesh", lambda: mesh_over(n))
    return use


VGG19_TORCH_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)  # torchvision


@pytest.fixture(scope="session")
def tiny_vgg19(tmp_path_factory):
    """A random VGG-19 with EdgeConnect's test widths (4, 4, 8, 8, 8), written as a torchvision
    `vgg19().features` state dict: the file `loss.vgg_weights` names in EdgeConnect's test config."""
    import numpy as np
    import torch

    from inpaintjax.models import vgg
    v = vgg.random_variables(19, seed=0, widths=(4, 4, 8, 8, 8))["params"]
    sd = {}
    for name, i in zip(vgg.conv_names(19), VGG19_TORCH_INDICES, strict=True):
        sd[f"features.{i}.weight"] = torch.from_numpy(np.ascontiguousarray(v[name]["kernel"].transpose(3, 2, 0, 1)))
        sd[f"features.{i}.bias"] = torch.from_numpy(np.ascontiguousarray(v[name]["bias"]))
    path = str(tmp_path_factory.mktemp("vgg") / "vgg19.pth")
    torch.save(sd, path)
    return path
