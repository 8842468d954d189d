"""Checkpoints of a training run, as both training (writing) and inference (reading) use them.

A run's workdir holds `config.json` (CONFIG_FILE: the config it started with) and an orbax
CheckpointManager directory `checkpoints/` (async, keep-N, atomic). Each checkpoint holds the whole
train state (every network's parameters and optimiser state, the spectral-norm statistics, the
step) and a small JSON record: the step, the root seed (the RNG: per-step keys are
fold_in(root, step)) and the data iterator's state (the next batch index: the pipeline is a pure
function of the step). Restoring takes the newest checkpoint that reads back whole; a newest one
that is incomplete or corrupt is skipped with a warning for the previous one.

Integrity: orbax checksums only its chunk indexes, not the array bytes, so the JSON record also
holds a CRC-32C of every array of the state, computed at save time; a restored state whose arrays
do not match (a flipped bit on disk) counts as corrupt like a truncated one. A save that cannot be
written raises CheckpointSaveError at that save (one line naming the directory and the cause). The
digests are computed on the host before the asynchronous write starts (in 16 MiB pieces, so no
second copy of a large array is made), so a save costs one pass over the state's bytes in the
training thread.

`load_for_inference(workdir)` is what prediction needs: the saved config, the family built from
it and the inference variables of a checkpoint. The workdir lock of a running training job lives
with the training loop (inpaintjax.training.checkpoint.WorkdirLock).
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import google_crc32c
import jax
import numpy as np
import orbax.checkpoint as ocp

from inpaintjax import config as config_lib

log = logging.getLogger(__name__)

CONFIG_FILE = config_lib.CONFIG_FILE
DIGESTS_KEY = "array_crc32c"


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written (read-only or full disk, removed directory, ...)."""


class CorruptCheckpointError(ValueError):
    """A checkpoint read back with arrays that differ from those saved."""


def _host_array(x) -> np.ndarray:
    if isinstance(x, jax.Array):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        # a replicated array: this process's copy is the whole array
        x = x.addressable_data(0) if not x.is_fully_addressable else x
    return np.ascontiguousarray(np.asarray(x))


#: bytes hashed at a time: the CRC never needs a second copy of a whole large array
_CRC_CHUNK = 1 << 24


def _crc32c(a: np.ndarray) -> int:
    flat = a.reshape(-1).view(np.uint8)
    crc = 0
    for start in range(0, flat.size, _CRC_CHUNK):
        crc = google_crc32c.extend(crc, flat[start:start + _CRC_CHUNK].tobytes())
    return crc


def array_digests(tree: Any) -> dict[str, str]:
    """{tree path: CRC-32C (hex) of the array's bytes} for every leaf of a replicated state."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        a = _host_array(leaf)
        out[jax.tree_util.keystr(path)] = f"{_crc32c(a):08x}/{a.dtype}{list(a.shape)}"
    return out


def check_digests(tree: Any, recorded: dict[str, str], where: str) -> None:
    """Raise CorruptCheckpointError naming the first arrays whose digest differs from `recorded`."""
    got = array_digests(tree)
    bad = sorted(k for k in set(got) | set(recorded) if got.get(k) != recorded.get(k))
    if bad:
        raise CorruptCheckpointError(
            f"{where}: {len(bad)} array(s) differ from what was saved ({', '.join(bad[:3])}"
            f"{' ...' if len(bad) > 3 else ''}): the files were damaged after the save")


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


class _ReadOnlyNotice(logging.Filter):
    """Drops orbax's warning "Given directory is read only=..." that every read-only manager logs:
    opening a run to read it is no problem to warn about (it read as a permission error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Given directory is read only")


class Checkpointer:
    """The run's checkpoint manager. `save` returns at once (the write continues in the background)."""

    def __init__(self, workdir: str, keep: int = 3, read_only: bool = False):
        self.directory = checkpoint_dir(workdir)
        self.read_only = read_only
        self._failed = False
        if read_only:  # orbax warns about any saving option given to a read-only manager
            options = ocp.CheckpointManagerOptions(
                max_to_keep=None, save_interval_steps=0, enable_async_checkpointing=False,
                create=False, read_only=True)
        else:
            options = ocp.CheckpointManagerOptions(max_to_keep=max(int(keep), 1),
                                                   enable_async_checkpointing=True)
        notice = _ReadOnlyNotice()
        logging.getLogger("absl").addFilter(notice)
        try:
            self.manager = ocp.CheckpointManager(self.directory, options=options)
        finally:
            logging.getLogger("absl").removeFilter(notice)

    def steps(self) -> list[int]:
        """Complete (finalised) checkpoint steps on disk, oldest first."""
        self.manager.reload()
        return sorted(self.manager.all_steps())

    def check_writable(self, step: int | None = None) -> None:
        """Raise CheckpointSaveError when no file can be created in the checkpoint directory."""
        try:
            os.makedirs(self.directory, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.directory):
                pass
        except OSError as e:
            self._failed = True
            what = f"checkpoint {step}" if step is not None else "checkpoints"
            raise CheckpointSaveError(
                f"cannot write {what} to {self.directory}: {e.strerror or e}; the run stops here "
                f"(make the directory writable and rerun to resume from the last checkpoint)") from None

    def save(self, step: int, state: Any, meta: dict, force: bool = True) -> None:
        """Start saving checkpoint `step` (with the arrays' digests in its record). Raises
        CheckpointSaveError when the directory cannot be written or an earlier background save
        failed."""
        self.check_writable(step)
        meta = {**meta, DIGESTS_KEY: array_digests(state)}
        try:
            self.manager.save(int(step), args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=force)
        except Exception as e:  # also an earlier asynchronous save's failure, surfacing here
            self._failed = True
            raise CheckpointSaveError(f"saving checkpoint {step} to {self.directory} failed: "
                                      f"{type(e).__name__}: {str(e).splitlines()[0][:300]}") from None

    def restore(self, abstract_state: Any, step: int | None = None):
        """(step, state, meta) of checkpoint `step`, or of the newest one that reads back whole
        (skipping broken ones with a warning); None when there is none. `abstract_state` gives the
        structure, shapes, dtypes and shardings (jax.ShapeDtypeStruct leaves)."""
        candidates = [step] if step is not None else self.steps()[::-1]
        if step is not None and step not in self.steps():
            raise FileNotFoundError(f"no complete checkpoint for step {step} in {self.directory}; "
                                    f"available: {self.steps()}")
        broken: list[int] = []
        for s in candidates:
            try:
                out = self.manager.restore(s, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
                if DIGESTS_KEY in out["meta"]:
                    check_digests(out["state"], out["meta"][DIGESTS_KEY],
                                  f"checkpoint {s} in {self.directory}")
            except Exception as e:  # a truncated or corrupt file raises from many layers
                if step is not None:  # asked for by number: say so (eval.py --step, init_from)
                    others = [t for t in self.steps() if t != s]
                    raise CorruptCheckpointError(
                        f"checkpoint {s} in {self.directory} cannot be read ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:300] if str(e) else ''}); name another step "
                        f"(available: {others}) or none for the newest readable one") from None
                log.warning("checkpoint %d in %s is incomplete or corrupt (%s: %s); trying the "
                            "previous one", s, self.directory, type(e).__name__, str(e)[:300])
                broken.append(s)
                continue
            if broken and not self.read_only:
                self._quarantine(broken)
            return s, out["state"], out["meta"]
        if broken and not self.read_only:
            self._quarantine(broken)
        return None

    def _quarantine(self, steps: list[int]) -> None:
        """Move unreadable checkpoints aside (`<step>.corrupt`, kept for inspection) so the resumed
        run can save those steps again."""
        if jax.process_index() == 0:
            for s in steps:
                src = os.path.join(self.directory, str(s))
                dst, n = src + ".corrupt", 1
                while os.path.exists(dst):
                    dst, n = f"{src}.corrupt{n}", n + 1
                os.rename(src, dst)
                log.warning("moved the unreadable checkpoint %s to %s", src, dst)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            multihost_utils.sync_global_devices("inpaintjax_checkpoint_quarantine")
        self.manager.reload()

    def wait(self) -> None:
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            self._failed = True
            raise CheckpointSaveError(f"saving a checkpoint to {self.directory} failed: "
                                      f"{type(e).__name__}: {str(e).splitlines()[0][:300]}") from None

    def close(self) -> None:
        """Finish pending saves and close; after a failed save, close without waiting again."""
        if self._failed:
            try:
                self.manager.close()
            except Exception:  # the failure was reported already
                pass
            return
        self.manager.wait_until_finished()
        self.manager.close()


def abstract_state(family, config, sharding=None) -> Any:
    """Shapes/dtypes (and shardings) of `family`'s train state, from its batch spec at
    config.data.image_size."""
    from inpaintjax.data import fields
    size = int(config.data.image_size)
    batch = fields.abstract_batch(family.batch_spec(), 1, size, size)
    return with_sharding(jax.eval_shape(family.init_state, jax.random.key(0), batch), sharding)


def with_sharding(shapes: Any, sharding=None) -> Any:
    """`shapes` (a tree of shaped values) as `jax.ShapeDtypeStruct`s placed by `sharding` (default:
    the first local device), the form a restore takes."""
    if sharding is None:
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def load_for_inference(workdir: str, step: int | None = None):
    """(config, family, variables) of a training run's checkpoint: the config saved in `workdir`,
    the family built from it, and `family.inference_variables` of checkpoint `step` (default: the
    newest one that reads back whole). Arrays live on the first local device."""
    from inpaintjax.families import get as get_family
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: {workdir!r} is not a training workdir "
                                f"(train.py writes {CONFIG_FILE} there)")
    config = config_lib.read_saved_config(path)
    family = get_family(config.family)(config)
    ckpt = Checkpointer(workdir, read_only=True)
    try:
        found = ckpt.restore(abstract_state(family, config), step)
    finally:
        ckpt.close()
    if found is None:
        raise FileNotFoundError(f"no readable checkpoint in {checkpoint_dir(workdir)}")
    _, state, _ = found
    return config, family, family.inference_variables(state)
