"""Integrity and clean failures: TF checksums (files made or copied by the test)."""

import os
import shutil

import numpy as np
import pytest

from inpaintjax.convert import tf_checkpoint
from inpaintjax.convert.tf_checkpoint import CheckpointError, TFCheckpointReader

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
TF_CKPT = os.path.join(FIXTURES, "deepfill_v2_tf")    # written by TensorFlow (make_tf_checkpoint.py)


def test_crc32c_check_value_and_tensorflow_checksums():
    # the CRC-32C check value of "123456789" (RFC 3720 B.4), then TF's mask by hand:
    # rotate 0xE3069283 right by 15 bits = 0x2507C60D, plus 0xA282EAD8 = 0xC78AB0E5
    assert tf_checkpoint.masked_crc32c(b"123456789") == 0xC78AB0E5
    r = TFCheckpointReader(TF_CKPT)
    assert all(e["crc32c"] is not None for e in r._entries.values())   # TF recorded every one
    r.verify()                                                          # and all of them match


def test_bit_flipped_tf_checkpoint_names_the_tensor_and_the_file(tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(TF_CKPT, ckpt)
    r = TFCheckpointReader(str(ckpt))
    name = "inpaint_net/conv1/kernel"
    e = r._entries[name]
    data = ckpt / "snap-4000.data-00000-of-00001"
    buf = bytearray(data.read_bytes())
    buf[e["offset"] + e["size"] // 2] ^= 0x10                           # one bit of one weight
    data.write_bytes(bytes(buf))
    r = TFCheckpointReader(str(ckpt))
    with pytest.raises(CheckpointError, match=r"tensor 'inpaint_net/conv1/kernel' in .*snap-4000"
                                              r"\.data-00000-of-00001 is corrupt: its crc32c"):
        r.get(name)
    assert np.isfinite(r.get("inpaint_net/conv1/bias")).all()          # the others still read
    with pytest.raises(CheckpointError, match="conv1/kernel"):
        r.verify()
    from inpaintjax.convert.deepfill import from_tf_checkpoint
    with pytest.raises(CheckpointError, match="is corrupt"):
        from_tf_checkpoint(str(ckpt), version=2)


# ------------------------------------------------------------------------------------------------
# Training: workdir lock, checkpoint digests, failed saves, configuration errors (toy family)
# ------------------------------------------------------------------------------------------------

import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toy_family  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# a second process that takes a workdir's lock as train.py does, says so, and holds it
HOLDER = """
import sys, time
from inpaintjax.training.checkpoint import WorkdirLock
WorkdirLock(sys.argv[1]).acquire()
print("holding", flush=True)
time.sleep(3600)
"""


def _lock_holder(workdir):
    import json
    path = os.path.join(workdir, "lock")
    if not os.path.exists(path):
        return {}
    text = open(path).read().strip()
    return json.loads(text) if text else {}


def test_second_run_on_a_workdir_stops_at_once_naming_the_holder(tmp_path, child_env):
    from inpaintjax.training import WorkdirLockedError, train
    from inpaintjax.training.checkpoint import WorkdirLock
    workdir = tmp_path / "run"
    workdir.mkdir()
    first = subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=child_env(), cwd=ROOT)
    try:
        assert first.stdout.readline().strip() == "holding", first.stdout.read()[-3000:]
        assert _lock_holder(workdir)["pid"] == first.pid
        # the second run stops before it writes or trains anything (train.py: one line, exit 2)
        c = _toy(num_steps=100000, checkpoint_every=5)
        with pytest.raises(WorkdirLockedError) as info:
            train(c, str(workdir))
        assert (f"is in use by another run: pid {first.pid} on host {socket.gethostname()}"
                in str(info.value))
        assert sorted(os.listdir(workdir)) == ["lock"]
        assert first.poll() is None                         # the holder runs on, untouched
    finally:
        first.kill()                                        # SIGKILL: no chance to release
        first.wait()
    assert _lock_holder(workdir)["pid"] == first.pid        # a stale lock stays behind
    lock = WorkdirLock(str(workdir))
    message = lock.acquire()
    try:
        assert f"took over the workdir lock of pid {first.pid} on host {socket.gethostname()}" in message
        assert _lock_holder(workdir)["pid"] == os.getpid()
        # a lock is exclusive within one process too (flock: per open file)
        with pytest.raises(WorkdirLockedError, match=f"pid {os.getpid()}"):
            WorkdirLock(str(workdir)).acquire()
    finally:
        lock.release()
    assert _lock_holder(workdir) == {}                      # released cleanly: nothing to take over
    assert WorkdirLock(str(workdir)).acquire() is None


def _toy(**kw):
    c = toy_family.toy_config()
    c.image_every = 0
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def test_bit_flipped_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    import logging

    import jax
    import orbax.checkpoint as ocp

    from inpaintjax.training import train
    from inpaintjax.training.checkpoint import Checkpointer, abstract_state
    c = _toy(num_steps=4, checkpoint_every=2)
    workdir = str(tmp_path)
    final = train(c, workdir)["state"]
    abstract = abstract_state(toy_family.ToyFamily(c), c)

    def orbax_alone(root):
        manager = ocp.CheckpointManager(os.path.join(root, "checkpoints"), options=ocp.
                                        CheckpointManagerOptions(read_only=True, create=False))
        try:
            return manager.restore(4, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract)))["state"]
        finally:
            manager.close()

    # Silent corruption, made deterministic: checkpoint 4's arrays rewritten by orbax itself with
    # one bit of one weight flipped, its record (with the digests taken at save time) left as it
    # was. (A flip in the stored bytes does not serve: orbax compresses the arrays, so whether a
    # flipped byte raises or decodes to a changed value depends on the layout of the day.)
    saved = orbax_alone(workdir)
    leaves, treedef = jax.tree.flatten(saved.params)
    bits = np.array(leaves[0]).view(np.uint32).copy()
    bits.flat[bits.size // 2] ^= np.uint32(1 << 20)                     # one mantissa bit
    flipped = saved.replace(params=jax.tree.unflatten(treedef, [bits.view(np.float32)] + leaves[1:]))
    other = str(tmp_path / "rewritten")
    writer = ocp.CheckpointManager(os.path.join(other, "checkpoints"))
    writer.save(4, args=ocp.args.Composite(state=ocp.args.StandardSave(flipped)))
    writer.wait_until_finished()
    writer.close()
    state_dir = os.path.join(workdir, "checkpoints", "4", "state")
    shutil.rmtree(state_dir)
    shutil.copytree(os.path.join(other, "checkpoints", "4", "state"), state_dir)
    silent = orbax_alone(workdir)                                        # orbax: no word
    changed = [not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
               zip(jax.tree.leaves(final.params), jax.tree.leaves(silent.params), strict=True)]
    assert changed == [True] + [False] * (len(changed) - 1)
    ckpt = Checkpointer(workdir, read_only=True)
    with caplog.at_level(logging.WARNING):
        step, state, meta = ckpt.restore(abstract)
    ckpt.close()
    assert step == 2 and meta["step"] == 2
    assert any("checkpoint 4" in r.getMessage() and "differ from what was saved" in r.getMessage()
               for r in caplog.records)
    # asked for by number (eval.py --step 4, init_from=WORKDIR:4): a ValueError that names it and
    # the alternatives, which the entry points print as one line (exit 2), not a traceback
    from inpaintjax.training import load_for_inference
    with pytest.raises(ValueError, match=r"checkpoint 4 in .* cannot be read .*available: \[2\]"):
        load_for_inference(workdir, 4)


def _unwritable_dir():
    """A directory no one can create files in, not even root (sysfs)."""
    import tempfile
    for d in ("/sys/fs", "/sys/kernel", "/proc/self"):
        try:
            with tempfile.TemporaryFile(dir=d):
                pass
        except OSError:
            return d
    pytest.skip("no unwritable directory on this machine")


def test_failed_save_stops_the_run_at_that_save_with_one_line(tmp_path):
    import jax.numpy as jnp

    from inpaintjax.training.checkpoint import Checkpointer, CheckpointSaveError
    workdir = tmp_path / "w"
    ckpt = Checkpointer(str(workdir))
    state = {"w": jnp.arange(4.0)}
    ckpt.save(1, state, {"step": 1})
    ckpt.wait()
    os.rename(workdir / "checkpoints", workdir / "saved")
    os.symlink(_unwritable_dir(), workdir / "checkpoints")  # checkpoints/ becomes read-only
    t0 = time.time()
    with pytest.raises(CheckpointSaveError, match=r"cannot write checkpoint 2 to .*checkpoints: "
                                                  r"Permission denied; the run stops here"):
        ckpt.save(2, state, {"step": 2})
    ckpt.close()
    assert time.time() - t0 < 10
    # the whole run stops before training, with that one-line error (train.py: exit 4)
    from inpaintjax.training import train
    run = tmp_path / "run"
    run.mkdir()
    os.symlink(_unwritable_dir(), run / "checkpoints")
    with pytest.raises(CheckpointSaveError, match="cannot write checkpoints") as info:
        train(_toy(num_steps=4, checkpoint_every=2), str(run))
    assert "\n" not in str(info.value)
    assert not (run / "metrics.jsonl").exists() or (run / "metrics.jsonl").read_text() == ""  # no step ran


@pytest.mark.parametrize("overrides,message", [
    ({"batch_size": 0}, "config.batch_size=0 (the global batch) must be a positive multiple"),
    ({"data.source": "folder", "data.data_dir": "{empty}"}, "no usable image in folder"),
    # eval.py reads it after training: a misspelt generator stops the run before it starts
    ({"eval.mask_generator": "deepfill_v2_strokes,bogus_gen"}, "config.eval.mask_generator='bogus_gen'"),
])
def test_configuration_errors_are_one_line_and_leave_no_workdir(tmp_path, overrides, message):
    from inpaintjax.training import configuration_error, train
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    c = _toy()
    for key, value in overrides.items():
        node, *path = key.split(".")
        target = c[node] if path else c
        target[path[-1] if path else node] = value.format(empty=empty) if isinstance(value, str) else value
    workdir = tmp_path / "run"
    with pytest.raises(Exception) as info:
        train(c, str(workdir))
    assert configuration_error(info.value)       # train.py prints it alone, one line, exit 2
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not workdir.exists()


def test_a_workdir_that_is_a_file_is_a_configuration_error_and_the_file_is_kept(tmp_path):
    from inpaintjax.training import configuration_error, train
    path = tmp_path / "notes.txt"
    path.write_text("not a run")
    with pytest.raises(NotADirectoryError, match="is a file, not a run directory") as info:
        train(_toy(), str(path))
    assert configuration_error(info.value) and "\n" not in str(info.value)
    assert path.read_text() == "not a run"


@pytest.mark.slow
def test_deepfill_v2_inference_memory_at_2048_is_linear_and_bounded():
    """XLA's own buffer plan of the jitted DeepFill v2 inpaint (compiled, not run): at 2048 x 2048
    the whole-matrix attention alone would need 17 GB per score copy; blocked, the program's
    temporary memory stays under 4 GiB and grows with the pixel count, not its square."""
    import jax
    import jax.numpy as jnp

    from inpaintjax.data import fields
    from inpaintjax.families import get
    cls = get("deepfill_v2")
    fam = cls(cls.default_config())
    small = {k: jnp.asarray(v) for k, v in fields.example_batch(fam.batch_spec(), 1, 64, 64).items()}
    variables = jax.eval_shape(fam.inference_variables,
                               jax.eval_shape(fam.init_state, jax.random.key(0), small))

    def temp(size):
        inputs = {"image": jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32),
                  "mask": jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32)}
        fn = jax.jit(lambda v, i: fam.inpaint(v, i)["output"])
        return fn.lower(variables, inputs).compile().memory_analysis().temp_size_in_bytes

    t1024, t2048 = temp(1024), temp(2048)
    assert t2048 < 4 * 2 ** 30
    assert t2048 < 4.5 * t1024          # 4x the pixels: about 4x the memory (quadratic: 16x)
