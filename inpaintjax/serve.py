"""`inpaintjax serve --weights W`: a local sketch-and-fill page for any trained model.

Open an image, paint the hole with a brush of chosen size, draw sketch strokes inside it (guided
models), choose what fills it (the loaded model, or a classical method for comparison: PatchMatch,
Telea, biharmonic, the mean colour; `inpaintjax.baselines`), press Fill, see the result beside the
input, undo strokes, download the PNG.

The page is one HTML document with a few hundred lines of plain JavaScript (canvas painting),
served by the standard library's `http.server`: no extra dependency, no asset or analytics
requests to the network, nothing to build. The server binds 127.0.0.1 unless `--host` says
otherwise. Uploads are checked before decoding: byte size (`--max-bytes`), that Pillow recognises
an image format, and pixel count (`--max-pixels`, read from the header before the pixels are
decoded); each failure is a 4xx answer whose message the page shows. An accepted upload is decoded
by the library's rules (`image_io.image_from_pil`), so the page gets the array `inpaintjax inpaint`
reads from the same file: EXIF orientation applied, 16-bit images scaled to 8 bits (not clipped).
Uploaded images and results live in one temporary folder that is removed when the server stops;
the oldest files are dropped beyond `KEEP_FILES`.

HTTP interface (used by the page):
  GET  /                  the page
  GET  /api/info          {"family", "guided", "max_bytes", "max_pixels",
                           "methods": [{"name", "label"}, ...] ("model" first, then the
                           classical fills that can run here)}
  POST /api/upload        body = the image file -> {"id", "width", "height"} | {"error"}
  GET  /api/image/<id>    the uploaded image as RGB PNG
  POST /api/fill          {"id", "mask": PNG data URL, "sketch": PNG data URL | null,
                           "method": "model" (default) | "patchmatch" | "telea" | "biharmonic" |
                           "mean", "seed": int (PatchMatch's random stream, default 0)}
                          (read by the mask-file rule, `image_io.mask_from_pil`: on the page's
                          canvases every painted pixel is a hole / a stroke; sketches only steer a
                          guided model) -> {"result": URL, "method"}
  GET  /api/result/<id>   the inpainted PNG
"""

from __future__ import annotations

import base64
import collections
import functools
import importlib.resources
import io
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

import numpy as np

from inpaintjax import image_io

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_BYTES = 10_000_000           # upload size limit (10 MB, as the messages and the page count)
MAX_PIXELS = 2048 * 2048          # width x height limit (CPU inference time grows with it)
KEEP_FILES = 64                   # uploads + results kept in the temporary folder
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
_ID = re.compile(r"^[0-9a-f]{32}$")


@functools.lru_cache(maxsize=1)
def _page() -> bytes:
    """The sketch-and-fill page (HTML + JS), package data `inpaintjax/static/serve.html`."""
    return importlib.resources.files("inpaintjax").joinpath("static/serve.html").read_bytes()


class UploadError(ValueError):
    """A rejected upload or request; `status` is the HTTP status sent with the message."""

    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = int(status)


def check_image(data: bytes, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
                name: str = "upload") -> np.ndarray:
    """Validate and decode an uploaded image file -> uint8 [H, W, 3] RGB. Raises UploadError with
    a message for a person: too large (bytes), not an image, too many pixels."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > max_bytes:
        raise UploadError(f"{name} is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} "
                          f"MB (start the server with a larger --max-bytes)",
                          HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    if not data:
        raise UploadError(f"{name} is empty: choose an image file")
    try:
        im = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError):
        raise UploadError(f"{name} is not an image file (accepted: {', '.join(FORMATS)})",
                          HTTPStatus.UNSUPPORTED_MEDIA_TYPE) from None
    if im.format not in FORMATS:
        raise UploadError(f"{name} is a {im.format} file; accepted: {', '.join(FORMATS)}",
                          HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
    w, h = im.size
    if w * h > max_pixels:
        raise UploadError(f"{name} is {w}x{h} = {w * h / 1e6:.2f} megapixels; the limit is "
                          f"{max_pixels / 1e6:.2f} (resize it, or start the server with a larger "
                          f"--max-pixels)", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    if min(w, h) < 8:
        raise UploadError(f"{name} is {w}x{h}: both sides must be at least 8 pixels")
    with im:
        try:
            im.load()
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise UploadError(f"{name} could not be decoded ({e}); is the file complete?") from None
        try:
            # the library's one decoding path, as `inpaintjax inpaint` reads the same file: EXIF
            # orientation applied, 16-bit and float images scaled to 8 bits, not clipped
            return image_io.image_from_pil(im, "image", name)
        except ValueError as e:  # a float image with NaN/Inf or outside [0, 1]; damaged EXIF
            raise UploadError(str(e)) from None


def decode_drawing(data_url: Optional[str], hw: tuple[int, int], what: str) -> Optional[np.ndarray]:
    """A canvas PNG data URL -> bool [H, W], True = hole / stroke, or None for null: read by the
    library's mask rule (`image_io.mask_from_pil`, as a mask file); on the page's canvases (one
    opaque colour on transparent black) that is every painted pixel, anti-aliased edges included.
    Checked against the image size (before the pixels are decoded)."""
    from PIL import Image, UnidentifiedImageError

    if data_url is None:
        return None
    prefix = "data:image/png;base64,"
    if not isinstance(data_url, str) or not data_url.startswith(prefix):
        raise UploadError(f"{what}: expected a PNG data URL from the page's canvas")
    try:
        im = Image.open(io.BytesIO(base64.b64decode(data_url[len(prefix):], validate=True)))
    except (ValueError, UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise UploadError(f"{what}: the PNG data could not be decoded") from None
    with im:
        if sorted(im.size) != sorted(hw):  # no pixel decoded for a drawing of another size
            raise UploadError(f"{what} is {im.size[0]}x{im.size[1]} but the image is "
                              f"{hw[1]}x{hw[0]}")
        try:
            drawn = image_io.mask_from_pil(im, what)
        except (ValueError, OSError):
            raise UploadError(f"{what}: the PNG data could not be decoded") from None
    if drawn.shape != tuple(hw):
        raise UploadError(f"{what} is {drawn.shape[1]}x{drawn.shape[0]} but the image is "
                          f"{hw[1]}x{hw[0]}")
    return drawn


MODEL_METHOD = "model"  # the fill request's method for the loaded model
CLASSICAL_METHODS = ("patchmatch", "telea", "biharmonic", "mean")  # as offered, in this order


def classical_fill(method: str, image: np.ndarray, mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """uint8 [H,W,3] image, bool [H,W] hole -> uint8 [H,W,3]: the hole filled by the classical
    method (`inpaintjax.baselines.fill`), the known pixels exactly the input's."""
    from inpaintjax import baselines
    images = image[None].astype(np.float32) / 255.0
    masks = mask[None, ..., None].astype(np.float32)
    out = baselines.fill(method, images, masks, seed=seed)[0]
    filled = np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.where(mask[..., None], filled, image)


class App:
    """The server's state: the model, the limits and the temporary folder. Thread-safe (one
    inference at a time)."""

    def __init__(self, inpainter, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
                 workdir: Optional[str] = None):
        self.inpainter = inpainter
        self.max_bytes = int(max_bytes)
        self.max_pixels = int(max_pixels)
        self.dir = workdir or tempfile.mkdtemp(prefix="inpaintjax-serve-")
        self._files: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()

    @property
    def guided(self) -> bool:
        return bool(getattr(self.inpainter, "guided", False))

    def methods(self) -> list[dict]:
        """What can fill the hole: the loaded model, then the classical fills available here
        (Telea only with OpenCV installed)."""
        from inpaintjax import baselines
        out = [{"name": MODEL_METHOD, "label": f"model: {self.inpainter.family.name}"}]
        for name in CLASSICAL_METHODS:
            if name in baselines.available():
                out.append({"name": name, "label": baselines.DESCRIPTIONS[name]})
        return out

    def info(self) -> dict:
        return {"family": self.inpainter.family.name, "guided": self.guided,
                "max_bytes": self.max_bytes, "max_pixels": self.max_pixels,
                "methods": self.methods()}

    def _store(self, image: np.ndarray) -> str:
        from PIL import Image
        key = uuid.uuid4().hex
        path = os.path.join(self.dir, key + ".png")
        Image.fromarray(image).save(path)
        with self._lock:
            self._files[key] = path
            while len(self._files) > KEEP_FILES:
                _, old = self._files.popitem(last=False)
                if os.path.exists(old):
                    os.remove(old)
        return key

    def path(self, key: str) -> str:
        with self._lock:
            path = self._files.get(key) if _ID.match(key or "") else None
        if path is None or not os.path.exists(path):
            raise UploadError("unknown or expired image: open it again", HTTPStatus.NOT_FOUND)
        return path

    def upload(self, data: bytes, name: str = "upload") -> dict:
        image = check_image(data, self.max_bytes, self.max_pixels, name)
        return {"id": self._store(image), "height": int(image.shape[0]), "width": int(image.shape[1])}

    def fill(self, request: dict) -> dict:
        from PIL import Image
        if not isinstance(request, dict):
            raise UploadError("fill: expected a JSON object {id, mask, sketch}")
        # the upload as check_image decoded it, stored as an 8-bit RGB PNG by _store
        image = np.asarray(Image.open(self.path(str(request.get("id", "")))).convert("RGB"))
        hw = image.shape[:2]
        mask = decode_drawing(request.get("mask"), hw, "mask")
        if mask is None or not mask.any():
            raise UploadError("paint the hole first: the mask is empty")
        method = request.get("method", MODEL_METHOD)
        names = [m["name"] for m in self.methods()]
        if method not in names:
            raise UploadError(f"fill: method {method!r} is not offered here; choose one of "
                              f"{', '.join(names)}")
        seed = request.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 31:
            raise UploadError(f"fill: seed {seed!r} must be an integer in 0..2^31-1")
        sketch = decode_drawing(request.get("sketch"), hw, "sketch")
        if sketch is not None and (method != MODEL_METHOD or not self.guided or not sketch.any()):
            sketch = None  # strokes mean nothing to an unguided model or a classical fill
        with self._model_lock:
            if method == MODEL_METHOD:
                out = self.inpainter.inpaint(image, mask, sketch)
            else:
                out = classical_fill(method, image, mask, seed)
        key = self._store(np.asarray(out, np.uint8))
        return {"result": f"/api/result/{key}", "method": method}

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _handler(app: App):
    class Handler(BaseHTTPRequestHandler):
        server_version = "inpaintjax-serve"

        def log_message(self, fmt, *args):  # one quiet line per request on stderr
            sys.stderr.write("serve: " + (fmt % args) + "\n")

        def _send(self, status: int, body: bytes, ctype: str, extra: Optional[dict] = None):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, obj: dict, status: int = HTTPStatus.OK):
            self._send(status, json.dumps(obj).encode(), "application/json")

        def _body(self, limit: int) -> bytes:
            try:
                n = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                raise UploadError("bad Content-Length header") from None
            if n > limit:
                # read the body away before answering (a browser that is still sending when the
                # socket closes reports a network error instead of showing the message)
                self.close_connection = True
                left = min(n, 64 * limit)
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    left -= len(chunk)
                raise UploadError(f"the upload is {n / 1e6:.1f} MB; the limit is {app.max_bytes / 1e6:.1f} "
                                  f"MB (start the server with a larger --max-bytes)",
                                  HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return self.rfile.read(n)

        def do_GET(self):  # noqa: N802 (http.server's naming)
            try:
                route = self.path.split("?", 1)[0]
                if route == "/":
                    self._send(HTTPStatus.OK, _page(), "text/html; charset=utf-8")
                elif route == "/api/info":
                    self._json(app.info())
                elif route.startswith(("/api/image/", "/api/result/")):
                    key = route.rsplit("/", 1)[1]
                    with open(app.path(key), "rb") as f:
                        body = f.read()
                    self._send(HTTPStatus.OK, body, "image/png")
                else:
                    self._json({"error": f"no such page: {route}"}, HTTPStatus.NOT_FOUND)
            except UploadError as e:
                self._json({"error": str(e)}, e.status)

        def do_POST(self):  # noqa: N802
            try:
                if self.path == "/api/upload":
                    name = self.headers.get("X-Filename", "upload") or "upload"
                    self._json(app.upload(self._body(app.max_bytes), os.path.basename(name)[:100]))
                elif self.path == "/api/fill":
                    # two PNG data URLs of canvases at most as large as the image
                    raw = self._body(8 * app.max_pixels + 4096)
                    try:
                        request = json.loads(raw)
                    except ValueError:
                        raise UploadError("fill: the request is not JSON") from None
                    self._json(app.fill(request))
                else:
                    self._json({"error": f"no such endpoint: {self.path}"}, HTTPStatus.NOT_FOUND)
            except UploadError as e:
                self._json({"error": str(e)}, e.status)
            except Exception as e:  # the page shows it instead of a dropped connection
                self._json({"error": f"server error: {type(e).__name__}: {e}"},
                           HTTPStatus.INTERNAL_SERVER_ERROR)

    return Handler


def make_server(app: App, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """An HTTP server for `app` bound to host:port (port 0 = any free port)."""
    server = ThreadingHTTPServer((host, port), _handler(app))
    server.daemon_threads = True
    return server


def serve(weights: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS, family: Optional[str] = None,
          settings=()) -> None:
    """Load `weights` (a workdir or official weights; `settings`: config keys changed, as
    `Inpainter.load`) and serve the page until interrupted."""
    from inpaintjax.inference import Inpainter
    inpainter = Inpainter.load(weights, family=family, settings=settings)
    app = App(inpainter, max_bytes, max_pixels)
    server = make_server(app, host, port)
    h, p = server.server_address[:2]
    print(f"inpaintjax serve: {inpainter.family.name} from {weights}; open http://{h}:{p}/ "
          f"(Ctrl-C stops; files live in {app.dir})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.close()
