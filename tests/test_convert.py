"""The pure-Python TF checkpoint reader and the DeepFill v2 converter, against checkpoints written
by TensorFlow itself (files committed; the scripts that wrote them are beside them).

Reader: tests/fixtures/deepfill_v2_tf (tests/fixtures/make_tf_checkpoint.py), every official name
and shape with values from a seeded formula recomputed here, plus Adam slots, `lr` and an int64
`global_step`.
Converter: tests/fixtures/deepfill_v2_golden, the checkpoint of the authors' own graph with weights
that carry signal (its make_golden.py); the outputs of that graph are matched in
tests/test_deepfill_v2.py. Truth here: the official names, the BGR->RGB identity
    converted(rgb) == reverse_channels(original(reverse_channels(rgb)))
on weights for which the colour order and the input image visibly matter."""

import importlib.util
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaintjax.convert.deepfill import from_tf_checkpoint
from inpaintjax.convert.tf_checkpoint import (CheckpointError, TFCheckpointReader,
                                              _snappy_decompress)
from inpaintjax.models.deepfill import DeepFillV2Generator
from inpaintjax.models.discriminators import SNPatchGAN

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
CKPT = os.path.join(FIXTURES, "deepfill_v2_tf")
GOLDEN = os.path.join(FIXTURES, "deepfill_v2_golden")

_spec = importlib.util.spec_from_file_location("make_tf_checkpoint",
                                               os.path.join(FIXTURES, "make_tf_checkpoint.py"))
MAKER = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(MAKER)  # defines the layer tables and values; imports TF only in main()


def _expected_variables():
    out = {}
    for path, k, cin, cout in MAKER.generator_layers(4):
        out[f"inpaint_net/{path}/kernel"] = (k, k, cin, cout)
        out[f"inpaint_net/{path}/bias"] = (cout,)
    for path, k, cin, cout in MAKER.discriminator_layers(2):
        out[f"discriminator/sn_patch_gan/{path}/kernel"] = (k, k, cin, cout)
        out[f"discriminator/sn_patch_gan/{path}/bias"] = (cout,)
        out[f"discriminator/sn_patch_gan/{path}/kernel_sn/u"] = (1, cout)
    out["inpaint_net/conv1/kernel/Adam"] = out["inpaint_net/conv1/kernel/Adam_1"] = (5, 5, 5, 4)
    out["lr"] = ()
    out["global_step"] = ()
    return out


# ---------------------------------------------------------------------------------------------
# Reader

def test_reader_returns_exactly_what_tensorflow_wrote():
    r = TFCheckpointReader(CKPT)
    expected = _expected_variables()
    assert r.shapes() == expected
    for name, shape in expected.items():
        value = r.get(name)
        if name == "global_step":
            assert value.dtype == np.int64 and int(value) == 4000
            continue
        assert value.dtype == np.float32 and value.shape == shape
        np.testing.assert_array_equal(value, MAKER.fixture_values(name, shape))
    # the prefix form and the .index path form name the same checkpoint
    assert TFCheckpointReader(os.path.join(CKPT, "snap-4000")).prefix == r.prefix
    assert TFCheckpointReader(os.path.join(CKPT, "snap-4000.index")).prefix == r.prefix


def test_reader_finds_a_moved_checkpoint_directory(tmp_path):
    moved = tmp_path / "release"
    shutil.copytree(CKPT, moved)
    # as a Saver writes it on the author's machine: an absolute path that no longer exists
    (moved / "checkpoint").write_text('model_checkpoint_path: "/home/someone/logs/snap-4000"\n')
    r = TFCheckpointReader(str(moved))
    assert r.prefix == str(moved / "snap-4000")
    assert int(r.get("global_step")) == 4000


def test_reader_errors_name_the_path_and_the_expected_files(tmp_path):
    with pytest.raises(CheckpointError, match=r"no TF checkpoint at .*nothere.*\.index"):
        TFCheckpointReader(str(tmp_path / "nothere"))
    with pytest.raises(CheckpointError, match=r"no `checkpoint` file.*checkpoint\.txt"):
        TFCheckpointReader(str(tmp_path))
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "snap-1"\n')
    with pytest.raises(CheckpointError, match=r"snap-1\.index does not exist"):
        TFCheckpointReader(str(tmp_path))
    (tmp_path / "snap-1.index").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="bad table magic"):
        TFCheckpointReader(str(tmp_path))
    # index present, data shard missing
    d = tmp_path / "nodata"
    d.mkdir()
    shutil.copy(os.path.join(CKPT, "snap-4000.index"), d / "snap-4000.index")
    r = TFCheckpointReader(str(d))
    with pytest.raises(CheckpointError, match=r"snap-4000\.data-00000-of-00001 is missing"):
        r.get("inpaint_net/conv1/kernel")


def test_snappy_block_hand_worked():
    # length 10; literal "abc" (tag (3-1)<<2); copy-1 of 6 bytes at offset 3 (tag (6-4)<<2 | 1,
    # offset byte 3) -> "abcabc" (overlapping copy); literal "d"
    block = bytes([10, 0x08]) + b"abc" + bytes([0x09, 0x03, 0x00]) + b"d"
    assert _snappy_decompress(block) == b"abcabcabcd"


# ---------------------------------------------------------------------------------------------
# Converter

def _raw_generator_params(reader):
    """The checkpoint's arrays in the flax tree, untouched (BGR), by the official checkpoints' naming rule."""
    params = {}
    for name in reader.keys():
        parts = name.split("/")
        if parts[0] != "inpaint_net" or parts[-1] not in ("kernel", "bias") or "Adam" in name:
            continue
        if len(parts) == 4:   # inpaint_net/<x>_upsample/<x>_upsample_conv/<leaf>
            assert parts[2] == parts[1] + "_conv"
            node = params.setdefault(parts[1], {}).setdefault("conv", {}).setdefault("conv", {})
        else:
            node = params.setdefault(parts[1], {}).setdefault("conv", {})
        node[parts[-1]] = jnp.asarray(reader.get(name))
    return params


def test_converted_generator_is_the_original_on_swapped_channels():
    w = from_tf_checkpoint(GOLDEN)
    assert (w.cnum, w.guided, w.d_cnum, w.step) == (12, False, 8, None)
    assert w.prefix == os.path.join(GOLDEN, "golden")
    raw = _raw_generator_params(TFCheckpointReader(GOLDEN))
    conv = w.generator["params"]
    # the permutations really happened, on exactly the image channels
    for layer in ("conv1", "xconv1", "pmconv1"):
        k, r = conv[layer]["conv"]["kernel"], raw[layer]["conv"]["kernel"]
        np.testing.assert_array_equal(k[:, :, 0:3], r[:, :, 2::-1])
        np.testing.assert_array_equal(k[:, :, 3:], r[:, :, 3:])
    for layer in ("conv17", "allconv17"):
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(conv[layer]["conv"][leaf], raw[layer]["conv"][leaf][..., ::-1])
    np.testing.assert_array_equal(conv["conv5"]["conv"]["kernel"], raw["conv5"]["conv"]["kernel"])
    np.testing.assert_array_equal(conv["allconv13_upsample"]["conv"]["conv"]["kernel"],
                                  raw["allconv13_upsample"]["conv"]["conv"]["kernel"])

    g = DeepFillV2Generator(cnum=w.cnum)
    rgb = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
    mask = jnp.zeros((1, 32, 32, 1)).at[:, 6:22, 10:26].set(1.0)
    f = jax.jit(lambda p, x: g.apply({"params": p}, x, mask))
    s1_rgb, s2_rgb = f(conv, rgb)
    s1_bgr, s2_bgr = f(raw, rgb[..., ::-1])
    s1_other, s2_other = f(conv, rgb[::-1])
    # the identity is not vacuous: colour order and the image itself matter to both stages
    for a, b in ((s1_rgb, s1_rgb[..., ::-1]), (s2_rgb, s2_rgb[..., ::-1]), (s1_rgb, s1_other),
                 (s2_rgb, s2_other)):
        assert float(jnp.abs(a - b).max()) > 0.05
    np.testing.assert_allclose(np.asarray(s1_rgb), np.asarray(s1_bgr[..., ::-1]), atol=2e-6)
    np.testing.assert_allclose(np.asarray(s2_rgb), np.asarray(s2_bgr[..., ::-1]), atol=2e-6)


def test_converted_discriminator_is_the_original_on_swapped_channels():
    w = from_tf_checkpoint(GOLDEN)
    r = TFCheckpointReader(GOLDEN)
    d = SNPatchGAN(cnum=w.d_cnum)
    raw = {"params": {}, "batch_stats": {}}
    for i in range(1, 7):
        base = f"discriminator/sn_patch_gan/conv{i}"
        raw["params"][f"conv{i}"] = {"conv": {"kernel": jnp.asarray(r.get(base + "/kernel")),
                                              "bias": jnp.asarray(r.get(base + "/bias"))}}
        raw["batch_stats"][f"conv{i}"] = {"sn": {"conv/kernel/u": jnp.asarray(r.get(base + "/kernel_sn/u")),
                                                 "conv/kernel/sigma": jnp.ones(())}}
        # the official power-iteration vector is carried over
        np.testing.assert_array_equal(w.discriminator["batch_stats"][f"conv{i}"]["sn"]["conv/kernel/u"],
                                      r.get(base + "/kernel_sn/u"))
    x = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 4)).astype(np.float32)
    x_bgr = x.copy()
    x_bgr[..., :3] = x[..., 2::-1]
    f = jax.jit(d.apply)
    out = np.asarray(f(w.discriminator, jnp.asarray(x)))
    assert np.abs(out - np.asarray(f(w.discriminator, jnp.asarray(x_bgr)))).max() > 1e-3
    np.testing.assert_allclose(out, np.asarray(f(raw, jnp.asarray(x_bgr))), atol=1e-6)


def test_generator_only_conversion_reads_the_discriminator_width():
    """`discriminator=False` (what inference loads): the same generator, no discriminator, and
    d_cnum as the authors' scripts wrote it (the v2 golden records 8; the v1 golden script's
    D_CNUM is 8; the small v2 checkpoint's discriminator is 2 wide)."""
    v1 = os.path.join(FIXTURES, "deepfill_v1_golden")
    for path, d_cnum in ((GOLDEN, int(np.load(os.path.join(GOLDEN, "golden.npz"))["d_cnum"])),
                         (v1, 8), (CKPT, 2)):
        whole, lean = from_tf_checkpoint(path), from_tf_checkpoint(path, discriminator=False)
        assert lean.discriminator is None and whole.discriminator is not None
        assert lean.d_cnum == whole.d_cnum == d_cnum, path
        assert (lean.version, lean.cnum, lean.guided) == (whole.version, whole.cnum, whole.guided)
        jax.tree.map(np.testing.assert_array_equal, lean.generator, whole.generator)


def test_converter_refuses_other_checkpoints_clearly(tmp_path):
    with pytest.raises(CheckpointError, match=r"not a DeepFill checkpoint.*generator/encoder/conv1"):
        from_tf_checkpoint(os.path.join(FIXTURES, "other_family_tf"))
    with pytest.raises(CheckpointError, match="DeepFill v1 checkpoint"):
        from_tf_checkpoint(os.path.join(FIXTURES, "deepfill_v1_tf"), version=2)
    with pytest.raises(FileNotFoundError, match=r"missing_release.*checkpoint.*\.index"):
        from_tf_checkpoint(str(tmp_path / "missing_release"))
    with pytest.raises(ValueError, match="version must be 1, 2 or None"):
        from_tf_checkpoint(CKPT, version=3)
