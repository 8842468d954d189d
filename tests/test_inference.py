"""Inpainter and the `inpaintjax` CLI, on the small TF-written DeepFill v2 checkpoint in
tests/fixtures (cnum 4: fast, untrained). Truth: known pixels must come back bit-identical; the
documented padding (numpy reflect at the bottom/right, then crop); the documented errors."""

import os
import re
import warnings

import jax
import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage import data

from inpaintjax import Inpainter
from inpaintjax.cli import main as cli_main

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
CKPT = os.path.join(FIXTURES, "deepfill_v2_tf")


@pytest.fixture(scope="module")
def inpainter():
    return Inpainter.load(CKPT)


def _image_and_mask(h=45, w=61):
    img = data.astronaut()[100:100 + h, 200:200 + w].copy()
    mask = np.zeros((h, w), np.uint8)
    mask[10:30, 15:40] = 255
    return img, mask


def test_known_pixels_are_preserved_exactly_and_odd_sizes_work(inpainter):
    img, mask = _image_and_mask()
    out = inpainter.inpaint(img, mask)
    assert out.shape == img.shape and out.dtype == np.uint8
    known = mask == 0
    np.testing.assert_array_equal(out[known], img[known])
    assert (out[~known] != img[~known]).mean() > 0.5
    # float masks: a hole from 0.5 up (0.7 is a hole, 0.3 is not)
    np.testing.assert_array_equal(inpainter.inpaint(img, (mask > 0).astype(np.float32) * 0.7), out)
    with pytest.warns(UserWarning, match="no hole pixels"):
        np.testing.assert_array_equal(inpainter.inpaint(img, (mask > 0).astype(np.float32) * 0.3), img)
    # float input in [0, 1], a batch of two sharing one mask -> float32, known pixels bit-identical
    batch = np.stack([img, img[::-1]]).astype(np.float32) / 255.0
    res = inpainter.inpaint(batch, mask, return_extras=True)
    assert set(res) == {"output", "stage1", "flow"}
    assert res["output"].shape == (2, 45, 61, 3) and res["output"].dtype == np.float32
    np.testing.assert_array_equal(res["output"][:, known], batch[:, known])
    np.testing.assert_allclose(res["output"][0], out.astype(np.float32) / 255.0, atol=1 / 255 + 1e-6)


def test_weights_are_put_on_the_device_once(inpainter):
    # the converters return NumPy arrays; a jitted call given NumPy weights copies them over on
    # every call (a 132 MB tree: 21 ms per call on the CPU, a PCIe transfer on a GPU)
    leaves = jax.tree.leaves(inpainter.variables)
    assert leaves and all(isinstance(x, jax.Array) for x in leaves), {type(x) for x in leaves}
    assert {d for x in leaves for d in x.devices()} == {jax.devices()[0]}


def test_a_batch_of_masks_is_one_mask_per_image(inpainter):
    # 8 images of 8x8 with masks [8, 8, 8]: 8 masks (image i has row i as its hole), not one
    # 8x8 mask with 8 channels (which would make every row a hole of every image)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    masks = np.zeros((8, 8, 8), np.uint8)
    masks[np.arange(8), np.arange(8)] = 255
    out = inpainter.inpaint(imgs, masks)
    assert out.shape == imgs.shape
    for i in range(8):
        known = masks[i] == 0
        np.testing.assert_array_equal(out[i][known], imgs[i][known])
        assert (out[i, i] != imgs[i, i]).any()
    # one 8x8 image: the same array is an HxWxC mask (any channel non-zero = hole: the diagonal)
    single = inpainter.inpaint(imgs[0], masks)
    known = ~np.eye(8, dtype=bool)
    np.testing.assert_array_equal(single[known], imgs[0][known])
    assert (single[~known] != imgs[0][~known]).any()


def test_float64_image_keeps_its_dtype_and_exact_known_pixels(inpainter):
    img, mask = _image_and_mask()
    f64 = img.astype(np.float64) / 255.0          # not representable in float32
    assert (f64.astype(np.float32) != f64).any()
    res = inpainter.inpaint(f64, mask, return_extras=True)
    assert res["output"].dtype == np.float64 and res["stage1"].dtype == np.float32
    known = mask == 0
    np.testing.assert_array_equal(res["output"][known], f64[known])
    np.testing.assert_allclose(res["output"], inpainter.inpaint(img, mask) / 255.0, atol=1 / 255 + 1e-6)


def test_padding_is_reflection_at_bottom_right_then_crop(inpainter):
    img, mask = _image_and_mask()
    out = inpainter.inpaint(img, mask)
    # the documented rule, done by hand with numpy: 45x61 -> 48x64 by reflection
    pad = ((0, 3), (0, 3), (0, 0))
    big = inpainter.inpaint(np.pad(img, pad, mode="reflect"), np.pad(mask, pad[:2], mode="reflect"))
    np.testing.assert_array_equal(out, big[:45, :61])


def test_inpainter_errors(inpainter, tmp_path):
    img, mask = _image_and_mask()
    with pytest.raises(ValueError, match=r"mask size 61x40 \(WxH\) differs from the image size 61x45"):
        inpainter.inpaint(img, mask[:40])
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    with pytest.raises(ValueError, match=r"cannot read image .*notes\.png"):
        inpainter.inpaint(str(bad), mask)
    with pytest.raises(FileNotFoundError, match=r"mask file not found: .*absent\.png"):
        inpainter.inpaint(img, str(tmp_path / "absent.png"))
    with pytest.raises(ValueError, match="not trained with sketch guidance"):
        inpainter.inpaint(img, mask, sketch=mask)
    with pytest.raises(ValueError, match=r"float images must be in \[0, 1\]"):
        inpainter.inpaint(img.astype(np.float32), mask)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        same = inpainter.inpaint(img, np.zeros_like(mask))
    assert any("no hole pixels" in str(w.message) for w in caught)
    np.testing.assert_array_equal(same, img)
    # weights: missing path, a checkpoint of another family, a release dir not yet renamed
    with pytest.raises(FileNotFoundError, match=r"weights not found: .*no_such_weights"):
        Inpainter.load(str(tmp_path / "no_such_weights"))
    with pytest.raises(ValueError, match=r"unrecognised weights .*other_family_tf \(holding "
                       r"checkpoint, .*no family's official format matches \(.*deepfill_v2: tf1-checkpoint"):
        Inpainter.load(os.path.join(FIXTURES, "other_family_tf"))
    with pytest.raises(ValueError, match="no family's official format matches"):
        Inpainter.load(os.path.join(FIXTURES, "other_family_tf"), family="deepfill_v2")
    # weights of another family than the one named: said, with the family to name instead
    with pytest.raises(ValueError, match=r"deepfill_v1_tf holds deepfill_v1 weights, not deepfill_v2's: "
                                         r"pass family='deepfill_v1'"):
        Inpainter.load(os.path.join(FIXTURES, "deepfill_v1_tf"), family="deepfill_v2")
    with pytest.raises(KeyError, match="unknown family 'deepfil_v2'. Did you mean 'deepfill_v2'"):
        Inpainter.load(os.path.join(FIXTURES, "other_family_tf"), family="deepfil_v2")


def test_guided_inpainter_uses_the_sketch_inside_the_hole_only():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "cfg", os.path.join(os.path.dirname(FIXTURES), "..", "configs", "deepfill_v2.py"))
    cfg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cfg)
    from inpaintjax.families import get as get_family
    fam = get_family("deepfill_v2")(cfg.get_config("test,guided"))
    z = np.zeros((1, 32, 32, 3), np.float32)
    abstract = jax.eval_shape(fam.generator.init, jax.random.key(3), z, z[..., :1], z[..., :1])
    rng = np.random.default_rng(3)
    # Glorot-uniform kernels x 2.5: keeps signals alive through the 17 gated layers
    params = jax.tree.map(lambda p: rng.uniform(-1, 1, p.shape).astype(np.float32) * (
        2.5 * np.sqrt(6.0 / (np.prod(p.shape[:3]) + np.prod(p.shape[:2]) * p.shape[3]))
        if p.ndim == 4 else 0.05), abstract)
    inp = Inpainter(fam, params)
    img = data.chelsea()[:30, :30]
    mask = np.zeros((30, 30), bool)
    mask[8:22, 8:22] = True
    sketch = np.zeros((30, 30), np.uint8)
    sketch[15, 5:25] = 1  # crosses the hole border: the outside part must be ignored
    plain = inp.inpaint(img, mask)
    guided = inp.inpaint(img, mask, sketch=sketch)
    np.testing.assert_array_equal(guided[~mask], img[~mask])
    assert (guided[mask] != plain[mask]).any()
    outside_only = sketch.copy()
    outside_only[8:22, 8:22] = 0
    np.testing.assert_array_equal(inp.inpaint(img, mask, sketch=outside_only), plain)


def test_cli_single_image_and_folder_mode(tmp_path, capsys):
    img, mask = _image_and_mask()
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(mask).save(tmp_path / "m.png")
    out = tmp_path / "o.png"
    assert cli_main(["inpaint", "--weights", CKPT, "--image", str(tmp_path / "a.png"),
                     "--mask", str(tmp_path / "m.png"), "--out", str(out)]) == 0
    result = np.asarray(Image.open(out))
    np.testing.assert_array_equal(result[mask == 0], img[mask == 0])

    (tmp_path / "imgs").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(img).save(tmp_path / "imgs" / "one.png")
    Image.fromarray(img[::-1].copy()).save(tmp_path / "imgs" / "two.jpg", quality=95)
    Image.fromarray(mask).save(tmp_path / "masks" / "one.png")
    Image.fromarray(mask[::-1].copy()).save(tmp_path / "masks" / "two.png")
    assert cli_main(["inpaint", "--weights", CKPT, "--image", str(tmp_path / "imgs"),
                     "--mask", str(tmp_path / "masks"), "--out", str(tmp_path / "res")]) == 0
    assert sorted(os.listdir(tmp_path / "res")) == ["one.png", "two.png"]
    two_in = np.asarray(Image.open(tmp_path / "imgs" / "two.jpg"))
    two_out = np.asarray(Image.open(tmp_path / "res" / "two.png"))
    np.testing.assert_array_equal(two_out[mask[::-1] == 0], two_in[mask[::-1] == 0])

    # a missing mask in folder mode, and a missing weights path: exit status 2 and a message
    os.remove(tmp_path / "masks" / "two.png")
    assert cli_main(["inpaint", "--weights", CKPT, "--image", str(tmp_path / "imgs"),
                     "--mask", str(tmp_path / "masks"), "--out", str(tmp_path / "res2")]) == 2
    assert "no mask for image 'two'" in capsys.readouterr().err
    assert cli_main(["inpaint", "--weights", str(tmp_path / "nope"), "--image", str(tmp_path / "a.png"),
                     "--mask", str(tmp_path / "m.png"), "--out", str(out)]) == 2
    assert "--weights not found" in capsys.readouterr().err


def test_from_workdir_reads_a_training_checkpoint(tmp_path):
    """A workdir as train.py leaves it (config.json + orbax checkpoint), with every weight zero:
    the generator's output is then tanh(0) = 0, i.e. mid-grey 0.5 -> 128 in every hole pixel."""
    import importlib.util
    import jax.numpy as jnp
    from inpaintjax import config as config_lib
    from inpaintjax.families import get as get_family
    from inpaintjax.training.checkpoint import CONFIG_FILE, Checkpointer
    spec = importlib.util.spec_from_file_location(
        "cfg", os.path.join(os.path.dirname(FIXTURES), "..", "configs", "deepfill_v2.py"))
    cfg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cfg)
    config = cfg.get_config("test")
    fam = get_family("deepfill_v2")(config)
    batch = {"image": jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32),
             "mask": jax.ShapeDtypeStruct((1, 32, 32, 1), jnp.float32)}
    abstract = jax.eval_shape(fam.init_state, jax.random.key(0), batch)
    state = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), abstract)
    config_lib.save_config(config, str(tmp_path / CONFIG_FILE))

    # an older checkpoint, told apart by its output layer's bias (0.5)
    def biased(path, leaf):
        last = "['allconv17']['conv']['bias']"
        return jnp.full(leaf.shape, 0.5, leaf.dtype) if jax.tree_util.keystr(path).endswith(last) else leaf
    older = jax.tree_util.tree_map_with_path(biased, state)
    assert sum(float(jnp.abs(a - b).sum()) for a, b in zip(jax.tree.leaves(older), jax.tree.leaves(state))) > 0
    ckpt = Checkpointer(str(tmp_path))
    ckpt.save(3, older, {"step": 3})
    ckpt.save(7, state, {"step": 7})
    ckpt.close()

    inp = Inpainter.load(str(tmp_path))  # the newest checkpoint: 7
    assert inp.family.name == "deepfill_v2" and not inp.guided
    img, mask = _image_and_mask(20, 27)
    out = inp.inpaint(img, mask)
    np.testing.assert_array_equal(out[mask == 0], img[mask == 0])
    assert (out[mask > 0] == 128).all()
    # a step by number (eval.py --weights WORKDIR --step 3), refused for official weights
    bias = Inpainter.load(str(tmp_path), step=3).variables["params"]["allconv17"]["conv"]["bias"]
    assert (np.asarray(bias) == 0.5).all()
    with pytest.raises(ValueError, match="step 3 names a checkpoint of a train.py workdir"):
        Inpainter.load(os.path.join(FIXTURES, "deepfill_v2_tf"), step=3)
    with pytest.raises(ValueError, match="holds a 'deepfill_v2' checkpoint, not 'pconv'"):
        Inpainter.from_workdir(str(tmp_path), family="pconv")
    # settings of the run's weights: one that leaves the network applies (the saved config is
    # untouched), one that changes it is refused naming the tensor
    edited = Inpainter.load(str(tmp_path), settings={"compute_dtype": "bfloat16"})
    assert edited.family.config.compute_dtype == "bfloat16" and inp.family.config.compute_dtype == "float32"
    assert config_lib.read_saved_config(str(tmp_path / CONFIG_FILE)).compute_dtype == "float32"
    cnum = int(config.model.cnum)
    with pytest.raises(ValueError, match=rf"model.guided=true: changes the network of {re.escape(str(tmp_path))} "
                                         rf"\(\['params'\]\['conv1'\]\['conv'\]\['kernel'\] would be "
                                         rf"float32\[5, 5, 6, {cnum}\], the weights hold float32\[5, 5, 5, {cnum}\]"):
        Inpainter.from_workdir(str(tmp_path), settings=["model.guided=true"])


def test_load_detects_the_family_from_the_files_and_asks_when_two_could_read_them(tmp_path):
    """The registry: each family's WeightFormat.detect decides; two claimants need family=."""
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import toy_family  # noqa: F401  (registers 'toy')
    from inpaintjax.families import WeightFormat, get, register

    toy = get("toy")
    c = toy_family.toy_config()
    fam = toy(c)
    state = fam.init_state(jax.random.key(0), {"image": np.zeros((1, 8, 8, 3), np.float32),
                                               "mask": np.zeros((1, 8, 8, 1), np.float32)})
    weights = tmp_path / "model.toyweights"
    flat = {jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_flatten_with_path(state.params)[0]}
    with open(weights, "wb") as f:  # a file object: np.savez would add '.npz' to a name
        np.savez(f, **flat)

    def load(path):
        with np.load(path) as f:
            leaves = [f[jax.tree_util.keystr(k)] for k, _ in
                      jax.tree_util.tree_flatten_with_path(state.params)[0]]
        return c, jax.tree.unflatten(jax.tree.structure(state.params), leaves)

    fmt = WeightFormat("toy-npz", lambda p: str(p).endswith(".toyweights"), load)

    class Toy2(toy):
        name = "toy_twin"
        weight_formats = (fmt,)

    old = toy.weight_formats
    toy.weight_formats = (fmt,)
    try:
        inp = Inpainter.load(str(weights), family="toy")
        assert inp.family.name == "toy"
        img, mask = _image_and_mask(9, 11)
        out = inp.inpaint(img, mask)
        np.testing.assert_array_equal(out[mask == 0], img[mask == 0])
        register(Toy2)
        with pytest.raises(ValueError, match=r"could be weights of toy, toy_twin: pass family="):
            Inpainter.load(str(weights))
        assert Inpainter.load(str(weights), family="toy_twin").family.name == "toy_twin"
    finally:
        toy.weight_formats = old
        from inpaintjax.families import base
        base._REGISTRY.pop("toy_twin", None)


def test_grey_with_alpha_and_16_bit_images_are_accepted(inpainter):
    # a grey image with alpha (PIL "LA", HxWx2) is grey: the same output as the grey image alone;
    # a uint16 image is 16-bit data: v / 65535, the output uint16 with known pixels untouched
    img, mask = _image_and_mask()
    grey = img[..., 0]
    la = np.stack([grey, np.full_like(grey, 200)], -1)
    want = inpainter.inpaint(grey, mask)
    np.testing.assert_array_equal(inpainter.inpaint(la, mask), want)
    np.testing.assert_array_equal(inpainter.inpaint(Image.fromarray(la, "LA"), mask), want)
    u16 = img.astype(np.uint16) * 257                  # 8-bit values on the 16-bit scale
    out16 = inpainter.inpaint(u16, mask)
    assert out16.dtype == np.uint16 and out16.shape == img.shape
    known = mask == 0
    np.testing.assert_array_equal(out16[known], u16[known])
    ref = inpainter.inpaint(img.astype(np.float32) / 255.0, mask)
    np.testing.assert_allclose(out16[~known] / 65535.0, ref[~known], atol=1 / 65535 + 1e-6)


def test_bad_inputs_give_errors_that_name_the_value_and_the_fix(inpainter):
    img, mask = _image_and_mask()
    nan_mask = (mask > 0).astype(np.float32)
    nan_mask[3, 7] = np.nan
    with pytest.raises(ValueError, match=r"mask: 1 NaN or Inf value \(first at row 3, column 7\).*nan_to_num"):
        inpainter.inpaint(img, nan_mask)
    with pytest.raises(ValueError, match=r"image: a batch of images of different sizes \(61x45, 30x20, WxH\)"
                                         r".*one at a time"):
        inpainter.inpaint([img, img[:20, :30]], mask)
    with pytest.raises(ValueError, match=r"image: the batch is empty \(0 images\)"):
        inpainter.inpaint(np.zeros((0, 45, 61, 3), np.uint8), mask)
    with pytest.raises(ValueError, match=r"image: the batch is empty \(0 images\)"):
        inpainter.inpaint([], mask)
    with pytest.raises(ValueError, match=r"image: 0x45 has no pixels"):
        inpainter.inpaint(img[:, :0], mask[:, :0])
    with pytest.raises(TypeError, match=r"unsupported dtype int64.*astype\(np.uint8\)"):
        inpainter.inpaint(img.astype(np.int64), mask)
    with pytest.raises(ValueError, match=r"max_batch must be >= 1, got 0"):
        Inpainter(inpainter.family, inpainter.variables, max_batch=0)


# -- PIL images by image_io's rules (stand-in family: records the network's input, no compile) ----
class _Grey:
    """Stands in for a family: fills every pixel with 0.5 and records the batch it was given."""
    name = "grey"
    size_multiple = 8
    guided = False

    def inpaint(self, variables, inputs):  # jitted by Inpainter, never called here
        raise AssertionError("predict is overridden")

    def predict(self, fn, variables, batch):
        self.batch = {k: np.array(v) for k, v in batch.items()}
        return {"output": np.full_like(batch["image"], 0.5)}


def _grey_inpainter():
    fam = _Grey()
    return Inpainter(fam, {"w": np.zeros(1, np.float32)}), fam


def test_pil_image_of_mode_I_is_16_bit_data_as_read_image_reads_it(tmp_path):
    # a 16-bit PNG opened by PIL as 32-bit integer grey ("I"): values 0..65535 are 16-bit data
    v = np.linspace(0, 65535, 20 * 28).round().astype(np.int32).reshape(20, 28)
    im = Image.fromarray(v)
    assert im.mode == "I"
    mask = np.zeros((20, 28), np.uint8)
    mask[5:12, 6:20] = 255
    inp, fam = _grey_inpainter()
    out = inp.inpaint(im, mask)
    # at the image's own depth: uint16, known pixels exactly the values, the hole the fill (0.5)
    assert out.shape == (20, 28, 3) and out.dtype == np.uint16
    want = np.repeat(v.astype(np.uint16)[..., None], 3, -1)
    known = mask == 0
    np.testing.assert_array_equal(out[known], want[known])
    assert (out[~known] == 32768).all()                     # round(0.5 * 65535)
    # what the network saw: v / 65535 (a clipping reader would give 1.0 from 255 up)
    net = fam.batch["image"][0, :20, :28]
    np.testing.assert_allclose(net, np.repeat(v[..., None], 3, -1) / 65535.0, rtol=0, atol=1e-7)
    # the same values in a file: read_image's 8-bit reading of them is this output's known part
    Image.fromarray(v.astype(np.uint16)).save(tmp_path / "deep.png")
    from_file = inp.inpaint(str(tmp_path / "deep.png"), mask)
    assert from_file.dtype == np.uint8
    np.testing.assert_array_equal(from_file[known], np.round(out[known] / 257.0).astype(np.uint8))
    # a mode-I mask is 16-bit data too: 20000 is below half of 65535 (not a hole), 40000 a hole
    m = np.zeros((20, 28), np.int32)
    m[:, 3] = 20000
    m[:, 9] = 40000
    inp.inpaint(im, Image.fromarray(m))
    hole = fam.batch["mask"][0, :20, :28, 0]
    want_hole = np.zeros((20, 28), np.float32)
    want_hole[:, 9] = 1
    np.testing.assert_array_equal(hole, want_hole)


def test_pil_image_with_exif_orientation_is_upright_as_from_its_file(tmp_path):
    stored = np.zeros((16, 24, 3), np.uint8)
    stored[:8, :12] = 255                       # a white top-left quadrant of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6                            # viewers turn it 90 degrees clockwise
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    mask = np.zeros((24, 16), np.uint8)         # drawn on the upright picture
    mask[2:6, 3:9] = 255
    inp, _ = _grey_inpainter()
    with Image.open(path) as im:
        out = inp.inpaint(im, mask)
        upright = np.asarray(ImageOps.exif_transpose(im))
    assert out.shape == (24, 16, 3) == upright.shape
    known = mask == 0
    np.testing.assert_array_equal(out[known], upright[known])
    np.testing.assert_array_equal(out, inp.inpaint(str(path), mask))
    assert out[4, 12].min() > 200 and out[20, 3].max() < 50  # the white corner is now top-right
