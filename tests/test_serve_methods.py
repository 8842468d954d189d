"""`inpaintjax serve`'s method selector over HTTP: /api/info offers the loaded model and the
classical fills, /api/fill takes the method (and PatchMatch's seed). The server runs in a thread of
this process on a free port; the model is a stand-in that paints its hole one colour, so the test
can tell whose fill came back. Then the decoding of uploads and drawings: the library's rules
(`image_io`), checked against values worked out by hand and against what the CLI reads."""

import base64
import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage import data

from quadrants import quadrants

from inpaintjax import baselines, image_io, serve


class _Painter:
    """Stands in for an Inpainter: fills the hole with the value 7."""

    class family:
        name = "painter"

    guided = True

    def inpaint(self, image, mask, sketch=None):
        self.sketch = sketch
        return np.where(mask[..., None], np.uint8(7), image)


def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def site():
    painter = _Painter()
    app = serve.App(painter)
    server = serve.make_server(app, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = "http://%s:%d" % server.server_address[:2]
    try:
        yield url, app, painter
    finally:
        server.shutdown()
        server.server_close()
        app.close()


def _call(url, path, body=None, headers=None):
    """(status, JSON answer) of a GET (body None) or POST."""
    req = urllib.request.Request(url + path, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _fill(url, request):
    return _call(url, "/api/fill", json.dumps(request).encode(),
                 {"Content-Type": "application/json"})


def _result(url, answer):
    with urllib.request.urlopen(url + answer["result"], timeout=60) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))


def _uploaded(url):
    image = data.astronaut()[100:132:1, 180:220].copy()  # 32 x 40, textured
    status, up = _call(url, "/api/upload", _png(image), {"X-Filename": "crop.png"})
    assert status == 200, up
    hole = np.zeros(image.shape[:2], bool)
    hole[10:20, 14:26] = True
    drawn = np.zeros(image.shape[:2] + (4,), np.uint8)
    drawn[hole] = (255, 0, 160, 90)  # the page's magenta at any alpha > 0
    mask_url = "data:image/png;base64," + base64.b64encode(_png(drawn)).decode()
    return image, hole, up["id"], mask_url


def test_info_offers_the_model_then_the_classical_fills(site):
    url, _, _ = site
    status, info = _call(url, "/api/info")
    assert status == 200
    names = [m["name"] for m in info["methods"]]
    want = ["model", "patchmatch"] + (["telea"] if baselines.have_opencv() else []) + [
        "biharmonic", "mean"]
    assert names == want
    assert info["methods"][0]["label"] == "model: painter"
    assert "PatchMatch" in info["methods"][1]["label"]


def test_fill_takes_the_method(site):
    url, _, painter = site
    image, hole, key, mask_url = _uploaded(url)

    # the mean colour: a NumPy re-derivation of the baseline, rounded to 8 bits
    status, answer = _fill(url, {"id": key, "mask": mask_url, "method": "mean"})
    assert status == 200 and answer["method"] == "mean"
    out = _result(url, answer)
    want = np.round(image[~hole].astype(np.float64).mean(0)).astype(np.uint8)
    np.testing.assert_array_equal(out[hole], np.broadcast_to(want, out[hole].shape))
    np.testing.assert_array_equal(out[~hole], image[~hole])

    # the model (the default); a sketch reaches a guided model only when the model fills
    status, answer = _fill(url, {"id": key, "mask": mask_url, "sketch": mask_url})
    assert status == 200 and answer["method"] == "model"
    assert (_result(url, answer)[hole] == 7).all() and painter.sketch is not None

    # PatchMatch with a seed: the library's fill of the same image and hole, known pixels exact
    status, answer = _fill(url, {"id": key, "mask": mask_url, "method": "patchmatch", "seed": 3})
    assert status == 200 and answer["method"] == "patchmatch"
    out = _result(url, answer)
    direct = baselines.fill("patchmatch", image[None] / np.float32(255),
                            hole[None, ..., None].astype(np.float32), seed=3)[0]
    np.testing.assert_array_equal(out, np.round(direct * 255).astype(np.uint8))
    np.testing.assert_array_equal(out[~hole], image[~hole])
    assert np.abs(out[hole].astype(int) - want).mean() > 2  # not the flat mean fill

    # wrong method or seed: 400 with a message for a person
    status, answer = _fill(url, {"id": key, "mask": mask_url, "method": "photoshop"})
    assert status == 400 and "'photoshop' is not offered here" in answer["error"]
    assert "model, patchmatch" in answer["error"]
    status, answer = _fill(url, {"id": key, "mask": mask_url, "method": "patchmatch",
                                 "seed": "three"})
    assert status == 400 and "seed 'three'" in answer["error"]


# -- uploads and drawings decoded by image_io's rules (as `inpaintjax inpaint` reads a file) --
def test_upload_of_a_16_bit_png_is_scaled_as_the_cli_reads_it(tmp_path):
    # a 16-bit grey ramp over the whole range: v * 255 / 65535, rounded, not clipped at 255
    v = np.linspace(0, 65535, 64 * 48).round().astype(np.uint16).reshape(48, 64)
    path = tmp_path / "deep.png"
    Image.fromarray(v).save(path)
    assert Image.open(path).mode.startswith("I;16")
    got = serve.check_image(path.read_bytes(), name="deep.png")
    want = np.floor(v.astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)
    assert got.shape == (48, 64, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.repeat(want[..., None], 3, -1))
    assert (got[..., 0] < 128).mean() == pytest.approx(0.5, abs=0.01)  # clipping: 0.4 % below
    np.testing.assert_array_equal(got, image_io.read_image(path))    # what the CLI reads


def test_upload_of_a_jpeg_with_exif_orientation_is_upright(tmp_path, site):
    stored = quadrants(40, 60)                   # stored 60 wide, 40 high
    exif = Image.Exif()
    exif[0x0112] = 6                              # viewers turn it 90 degrees clockwise
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    with Image.open(path) as im:                  # Pillow's own reading of the tag
        upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    want = np.rot90(stored, k=-1)                 # by hand: clockwise quarter turn
    assert upright.shape == want.shape == (60, 40, 3)
    got = serve.check_image(path.read_bytes(), name="phone.jpg")
    assert got.shape == (60, 40, 3)
    np.testing.assert_array_equal(got, upright)
    for y in (15, 45):                            # quadrant centres (JPEG blurs the edges)
        for x in (10, 30):
            assert np.abs(got[y, x].astype(int) - want[y, x].astype(int)).max() < 8, (y, x)
    np.testing.assert_array_equal(got, image_io.read_image(path))    # what the CLI reads
    # over HTTP: the page is told the upright size and gets the upright picture back
    url, _, _ = site
    status, up = _call(url, "/api/upload", path.read_bytes(), {"X-Filename": "phone.jpg"})
    assert status == 200 and (up["width"], up["height"]) == (40, 60)
    with urllib.request.urlopen(url + f"/api/image/{up['id']}", timeout=60) as r:
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(r.read()))), upright)


def test_drawings_follow_the_mask_file_rule(tmp_path):
    def url(array):
        return "data:image/png;base64," + base64.b64encode(_png(array)).decode()

    # the page's canvas: magenta strokes on transparent black, at any alpha (anti-aliased edges)
    # are holes; white sketch strokes likewise
    drawn = np.zeros((16, 24, 4), np.uint8)
    drawn[2:6, 3:20] = (255, 0, 160, 255)
    drawn[8, :] = [(255, 0, 160, a) for a in np.linspace(1, 254, 24).astype(np.uint8)]
    want = drawn[..., 3] > 0
    np.testing.assert_array_equal(serve.decode_drawing(url(drawn), (16, 24), "mask"), want)
    sketch = np.where(want[..., None], np.uint8(255), drawn * 0)
    sketch[..., 3] = drawn[..., 3]
    np.testing.assert_array_equal(serve.decode_drawing(url(sketch), (16, 24), "sketch"), want)

    # strokes only in alpha (black at every pixel): a hole from half of the range up, as a mask
    # file (docs/masks-and-evaluation.md); a faint stroke (alpha 40) is not a hole
    alpha_only = np.zeros((16, 24, 4), np.uint8)
    alpha_only[2:6, 3:20, 3] = 200
    alpha_only[10:14, 3:20, 3] = 40
    want = np.zeros((16, 24), bool)
    want[2:6, 3:20] = True
    got = serve.decode_drawing(url(alpha_only), (16, 24), "mask")
    np.testing.assert_array_equal(got, want)
    Image.fromarray(alpha_only).save(tmp_path / "drawn.png")
    with pytest.warns(UserWarning, match="3 distinct values"):  # the file reader also warns
        from_file = image_io.read_mask(tmp_path / "drawn.png")
    np.testing.assert_array_equal(got, from_file > 0)

    with pytest.raises(serve.UploadError, match="mask is 24x16 but the image is 16x24"):
        serve.decode_drawing(url(drawn), (24, 16), "mask")
