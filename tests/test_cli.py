"""The `inpaintjax inpaint` command never loses a file: refusals before any work, skipped files in
folder mode, the hole ratio in its output (small TF-written DeepFill v2 checkpoint in fixtures)."""

import os
import re

import numpy as np
import pytest
from PIL import Image
from skimage import data

from inpaintjax import Inpainter
from inpaintjax.cli import main as cli_main

CKPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "deepfill_v2_tf")


def _image_and_mask(h=45, w=61):
    img = data.astronaut()[100:100 + h, 200:200 + w].copy()
    mask = np.zeros((h, w), np.uint8)
    mask[10:30, 15:40] = 255                   # 20 x 25 = 500 of 2745 pixels: 18.2%
    return img, mask


@pytest.fixture
def files(tmp_path):
    img, mask = _image_and_mask()
    Image.fromarray(img).save(tmp_path / "x.png")
    Image.fromarray(mask).save(tmp_path / "m.png")
    return tmp_path


def _run(*args, weights=CKPT):
    return cli_main(["inpaint", "--weights", str(weights), *map(str, args)])


def _snapshot(folder):
    return {p: open(os.path.join(folder, p), "rb").read() for p in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, p))}


def test_refusals_happen_before_any_work_and_touch_nothing(files, capsys, tmp_path):
    # weights that cannot load: a refusal must come first, so it is the message seen
    no_weights = tmp_path / "empty_weights"
    no_weights.mkdir()
    before = _snapshot(files)
    cases = [
        (("--image", files / "x.png", "--mask", files / "m.png", "--out", files / "x.png"),
         r"would replace input file\(s\) .*x\.png.*--overwrite"),
        (("--image", files / "x.png", "--mask", files / "m.png", "--out", files / "m.png"),
         r"would replace input file\(s\) .*m\.png"),
        (("--image", files / "x.png", "--mask", files / "m.png", "--out", files / "result"),
         r"--out .*result: unknown image extension '\(none\)'"),
        (("--image", files / "x.png", "--mask", files / "m.png", "--out", no_weights),
         r"is an existing folder but --image is one file"),
        (("--image", files / "x.png", "--mask", files / "m.png", "--out", files / "m.png" / "o.png"),
         r"--out .*o\.png cannot be written"),
    ]
    for args, message in cases:
        assert _run(*args, weights=no_weights) == 2, args
        err = capsys.readouterr().err
        assert re.search(message, err), (args, err)
    assert _snapshot(files) == before


def test_folder_mode_never_replaces_inputs_or_its_own_outputs(tmp_path, capsys):
    img, mask = _image_and_mask()
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    Image.fromarray(img).save(photos / "a.png")
    Image.fromarray(mask).save(masks / "a.png")
    before = _snapshot(photos), _snapshot(masks)
    for out in (photos, masks):                # --out equal to the image folder or the masks
        assert _run("--image", photos, "--mask", masks, "--out", out,
                    weights=tmp_path / "masks") == 2
        assert "would replace input file(s)" in capsys.readouterr().err
    Image.fromarray(img).save(photos / "b.png")
    Image.fromarray(img).save(photos / "b.jpg")   # both would be written as b.png
    Image.fromarray(mask).save(masks / "b.png")
    assert _run("--image", photos, "--mask", masks, "--out", tmp_path / "res") == 2
    assert "b.jpg and b.png" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()
    os.remove(photos / "b.jpg")
    assert (_snapshot(photos) | {"b.png": None}).keys() == (before[0] | {"b.png": None}).keys()


def test_folder_mode_skips_a_corrupt_file_and_exits_non_zero(tmp_path, capsys):
    img, mask = _image_and_mask()
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(img).save(photos / "good.png")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.fromarray(mask).save(tmp_path / "m.png")
    out = photos / "results"                     # --out inside the image folder is fine
    assert _run("--image", photos, "--mask", tmp_path / "m.png", "--out", out) == 1
    captured = capsys.readouterr()
    assert os.listdir(out) == ["good.png"]
    assert "results/good.png (hole 18.2% of the image)" in captured.out
    assert "1 image(s) skipped" in captured.err and "broken.png" in captured.err.split("skipped:")[1]
    result = np.asarray(Image.open(out / "good.png"))
    np.testing.assert_array_equal(result[mask == 0], img[mask == 0])


def test_overwrite_hole_ratio_nan_and_max_pixels(files, capsys):
    img, mask = _image_and_mask()
    assert _run("--image", files / "x.png", "--mask", files / "m.png", "--out", files / "x.png",
                "--overwrite") == 0
    assert "(hole 18.2% of the image)" in capsys.readouterr().out
    out = np.asarray(Image.open(files / "x.png"))
    np.testing.assert_array_equal(out[mask == 0], img[mask == 0])
    assert (out[mask > 0] != img[mask > 0]).any()
    bad = np.full((45, 61), 0.5, np.float32)
    bad[3, 4] = np.nan
    Image.fromarray(bad, "F").save(files / "nan.tif")
    assert _run("--image", files / "nan.tif", "--mask", files / "m.png", "--out", files / "o.png") == 2
    assert "nan.tif holds NaN or Inf" in capsys.readouterr().err
    assert _run("--image", files / "x.png", "--mask", files / "m.png", "--out", files / "o.png",
                "--max-pixels", 3000) == 2
    err = capsys.readouterr().err
    assert "x.png: 61x45 (0.0 megapixels" in err and "limit of 3,000 pixels" in err  # 48 x 64 padded
    assert not (files / "o.png").exists()


def test_inpainter_limits_and_array_checks():
    inp = Inpainter.load(CKPT, max_pixels=48 * 64)
    img, mask = _image_and_mask()
    assert inp.inpaint(img, mask).shape == img.shape          # 45 x 61 pads to exactly 48 x 64
    with pytest.raises(ValueError, match=r"69x45 .* above the limit of 3,072 pixels"):
        inp.inpaint(np.zeros((45, 69, 3), np.uint8), np.ones((45, 69), np.uint8))
    with pytest.raises(ValueError, match="NaN or Inf"):
        inp.inpaint(np.full((45, 61, 3), np.nan, np.float32), mask)
    with pytest.raises(ValueError, match=r"mask size 12x10 \(WxH\) differs from the image size 61x45"):
        inp.inpaint(img, np.zeros((10, 12, 3), np.uint8))


def test_classical_method_needs_no_weights(files, capsys):
    from inpaintjax import baselines
    out = files / "o.png"
    assert cli_main(list(map(str, ["inpaint", "--method", "biharmonic", "--image", files / "x.png",
                                   "--mask", files / "m.png", "--out", out]))) == 0
    img, mask = _image_and_mask()
    want = baselines.fill("biharmonic", img[None] / 255.0, (mask > 0)[None, ..., None])[0]
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.round(want * 255).astype(np.uint8))
    assert "hole 18.2%" in capsys.readouterr().out
    # a model run still needs weights; a classical fill takes no sketch
    assert cli_main(list(map(str, ["inpaint", "--image", files / "x.png", "--mask",
                                   files / "m.png", "--out", files / "p.png"]))) == 2
    assert "--weights is required" in capsys.readouterr().err
    assert cli_main(list(map(str, ["inpaint", "--method", "mean", "--image", files / "x.png",
                                   "--mask", files / "m.png", "--sketch", files / "m.png",
                                   "--out", files / "p.png"]))) == 2
    assert "takes none" in capsys.readouterr().err
    assert not (files / "p.png").exists()


def test_a_mask_of_another_size_names_both_files(files, capsys):
    Image.fromarray(np.full((10, 12), 255, np.uint8)).save(files / "small.png")
    for method in (["--weights", CKPT], ["--method", "biharmonic"]):
        assert cli_main(list(map(str, ["inpaint", *method, "--image", files / "x.png", "--mask",
                                       files / "small.png", "--out", files / "p.png"]))) == 2
        err = capsys.readouterr().err
        assert f"mask {files / 'small.png'} is 12x10 (WxH) but the image {files / 'x.png'} is 61x45" in err
    assert not (files / "p.png").exists()


def test_set_changes_a_setting_of_the_loaded_model_and_names_bad_ones(files, capsys):
    """`--set KEY=VALUE` reaches `Inpainter.load(settings=...)` in `inpaint` and `serve`: a
    misspelt key names the nearest one, a key that would change the network's layers names the
    tensor, and a classical fill (no config) refuses it; nothing is written."""
    args = ("--image", files / "x.png", "--mask", files / "m.png", "--out", files / "p.png")
    cases = [
        (["--set", "modle.cnum=8"], r"unknown config key 'modle.cnum'. Did you mean 'model.cnum'"),
        (["--set", "compute_dtype=float32", "--set", "model.cnum=8"],
         r"compute_dtype=float32, model.cnum=8: changes the network of .*deepfill_v2_tf .*"
         r"would be float32\[32\], the weights hold float32\[16\]"),
    ]
    for extra, message in cases:
        assert _run(*extra, *args) == 2, extra
        err = capsys.readouterr().err
        assert re.search(message, err), (extra, err)
    assert cli_main(["serve", "--weights", CKPT, "--port", "0", "--set", "model.cnum=x"]) == 2
    assert "config key 'model.cnum' is an int; got 'x'" in capsys.readouterr().err
    assert cli_main(list(map(str, ["inpaint", "--method", "mean", "--set", "model.cnum=8", *args]))) == 2
    assert "--set model.cnum=8 configures a model (--weights); the classical fill --method mean" in \
        capsys.readouterr().err
    assert not (files / "p.png").exists()
