"""`inpaintjax serve`'s method selector over HTTP: /api/info offers the loaded model and the
classical fills, /api/fill takes the method (and PatchMatch's seed). The server runs in a thread of
this process on a free port; the model is a stand-in that paints its hole one colour, so the test
can tell whose fill came back."""

import base64
import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image
from skimage import data

from inpaintjax import baselines, serve


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
