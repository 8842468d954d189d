"""`inpaintjax serve --weights W`: a local sketch-and-fill page for any trained model.

Open an image, paint the hole with a brush of chosen size, draw sketch strokes inside it (guided
models), press Fill, see the result beside the input, undo strokes, download the PNG.

The page is one HTML document with a few hundred lines of plain JavaScript (canvas painting),
served by the standard library's `http.server`: no extra dependency, no asset or analytics
requests to the network, nothing to build. The server binds 127.0.0.1 unless `--host` says
otherwise. Uploads are checked before decoding: byte size (`--max-bytes`), that Pillow recognises
an image format, and pixel count (`--max-pixels`, read from the header before the pixels are
decoded); each failure is a 4xx answer whose message the page shows. Uploaded images and results
live in one temporary folder that is removed when the server stops; the oldest files are dropped
beyond `KEEP_FILES`.

HTTP interface (used by the page):
  GET  /                  the page
  GET  /api/info          {"family", "guided", "max_bytes", "max_pixels"}
  POST /api/upload        body = the image file -> {"id", "width", "height"} | {"error"}
  GET  /api/image/<id>    the uploaded image as RGB PNG
  POST /api/fill          {"id", "mask": PNG data URL, "sketch": PNG data URL | null}
                          (any pixel with alpha > 0 is a hole / a stroke) -> {"result": URL}
  GET  /api/result/<id>   the inpainted PNG
"""

from __future__ import annotations

import base64
import collections
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

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_BYTES = 10 * 1024 * 1024      # upload size limit
MAX_PIXELS = 2048 * 2048          # width x height limit (CPU inference time grows with it)
KEEP_FILES = 64                   # uploads + results kept in the temporary folder
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
_ID = re.compile(r"^[0-9a-f]{32}$")


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
    try:
        im.load()
        return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UploadError(f"{name} could not be decoded ({e}); is the file complete?") from None


def decode_drawing(data_url: Optional[str], hw: tuple[int, int], what: str) -> Optional[np.ndarray]:
    """A canvas PNG data URL -> bool [H, W] (alpha > 0), or None for null. Checked against the
    image size."""
    from PIL import Image, UnidentifiedImageError

    if data_url is None:
        return None
    prefix = "data:image/png;base64,"
    if not isinstance(data_url, str) or not data_url.startswith(prefix):
        raise UploadError(f"{what}: expected a PNG data URL from the page's canvas")
    try:
        im = Image.open(io.BytesIO(base64.b64decode(data_url[len(prefix):], validate=True)))
        im.load()
    except (ValueError, UnidentifiedImageError, OSError):
        raise UploadError(f"{what}: the PNG data could not be decoded") from None
    if im.size != (hw[1], hw[0]):
        raise UploadError(f"{what} is {im.size[0]}x{im.size[1]} but the image is {hw[1]}x{hw[0]}")
    return np.asarray(im.convert("RGBA"))[..., 3] > 0


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

    def info(self) -> dict:
        return {"family": self.inpainter.family.name, "guided": self.guided,
                "max_bytes": self.max_bytes, "max_pixels": self.max_pixels}

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
        image = np.asarray(Image.open(self.path(str(request.get("id", "")))).convert("RGB"))
        hw = image.shape[:2]
        mask = decode_drawing(request.get("mask"), hw, "mask")
        if mask is None or not mask.any():
            raise UploadError("paint the hole first: the mask is empty")
        sketch = decode_drawing(request.get("sketch"), hw, "sketch")
        if sketch is not None and (not self.guided or not sketch.any()):
            sketch = None  # strokes mean nothing to an unguided model
        with self._model_lock:
            out = self.inpainter.inpaint(image, mask, sketch)
        key = self._store(np.asarray(out, np.uint8))
        return {"result": f"/api/result/{key}"}

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
                    self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
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
          max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS, family: Optional[str] = None) -> None:
    """Load `weights` (a workdir or official weights) and serve the page until interrupted."""
    from inpaintjax.inference import Inpainter
    inpainter = Inpainter.load(weights, family=family)
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


PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>inpaintjax: sketch and fill</title>
<style>
 body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
 header { display: flex; gap: 14px; align-items: center; flex-wrap: wrap; margin-bottom: 10px; }
 button { font: inherit; padding: 4px 12px; }
 #error { color: #b00020; font-weight: 600; min-height: 1.2em; }
 #status { color: #555; min-height: 1.2em; }
 .panels { display: flex; gap: 16px; flex-wrap: wrap; }
 .panel h3 { margin: 4px 0; font-size: 14px; }
 .stack { position: relative; border: 1px solid #bbb; background: #eee; }
 .stack canvas { position: absolute; left: 0; top: 0; image-rendering: pixelated; }
 #maskLayer { opacity: 0.6; }
 #paint { cursor: crosshair; touch-action: none; }
 #result { border: 1px solid #bbb; image-rendering: pixelated; background: #eee; }
 .hidden { display: none !important; }
</style></head>
<body>
<header>
 <label>Image <input type="file" id="file" accept="image/*"></label>
 <label>Brush <input type="range" id="brush" min="2" max="96" value="24"> <span id="brushValue">24</span> px</label>
 <span id="tools">
  <label><input type="radio" name="tool" id="toolHole" value="hole" checked> hole</label>
  <label id="sketchLabel"><input type="radio" name="tool" id="toolSketch" value="sketch"> sketch</label>
 </span>
 <button id="undo" disabled>Undo</button>
 <button id="clear" disabled>Clear</button>
 <button id="fill" disabled>Fill</button>
 <a id="download" class="hidden" download="inpainted.png">Download PNG</a>
</header>
<div id="error" role="alert"></div>
<div id="status">Open an image, paint the hole, press Fill.</div>
<div class="panels">
 <div class="panel"><h3>Input: paint the hole (magenta)<span id="sketchHint"> and sketch strokes (white) inside it</span></h3>
  <div class="stack" id="stack">
   <canvas id="base"></canvas><canvas id="maskLayer"></canvas><canvas id="sketchLayer"></canvas><canvas id="paint"></canvas>
  </div></div>
 <div class="panel"><h3>Result</h3><img id="result" alt="the inpainted image appears here"></div>
</div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let info = null, imageId = null, W = 0, H = 0, zoom = 1, undoStack = [], drawing = null;
const base = $("base"), maskC = $("maskLayer"), sketchC = $("sketchLayer"), paint = $("paint");
const DISPLAY = 512;  // the longer side on screen, in CSS pixels

function setError(msg) { $("error").textContent = msg || ""; }
function setStatus(msg) { $("status").textContent = msg || ""; }
function tool() { return $("toolSketch").checked ? "sketch" : "hole"; }
function refreshButtons() {
  $("undo").disabled = undoStack.length === 0;
  $("clear").disabled = imageId === null;
  $("fill").disabled = imageId === null;
}

async function loadInfo() {
  info = await (await fetch("/api/info")).json();
  if (!info.guided) { $("sketchLabel").classList.add("hidden"); $("sketchHint").classList.add("hidden"); }
  setStatus(`Model: ${info.family}${info.guided ? " (guided: sketch strokes inside the hole steer it)" : ""}. ` +
            `Limits: ${(info.max_bytes / 1e6).toFixed(1)} MB, ${(info.max_pixels / 1e6).toFixed(2)} megapixels.`);
}

$("brush").addEventListener("input", () => { $("brushValue").textContent = $("brush").value; });

$("file").addEventListener("change", async () => {
  const f = $("file").files[0];
  if (!f) return;
  setError(""); setStatus(`Uploading ${f.name} ...`);
  let answer;
  try {
    const r = await fetch("/api/upload", { method: "POST", body: f,
      headers: { "X-Filename": encodeURIComponent(f.name).slice(0, 100) } });
    answer = await r.json();
  } catch (e) { setError(`Upload failed: ${e}`); setStatus(""); return; }
  if (answer.error) { setError(answer.error); setStatus(""); return; }
  const img = new Image();
  img.onload = () => {
    imageId = answer.id; W = answer.width; H = answer.height;
    zoom = DISPLAY / Math.max(W, H);
    for (const c of [base, maskC, sketchC, paint]) {
      c.width = W; c.height = H; c.style.width = (W * zoom) + "px"; c.style.height = (H * zoom) + "px";
    }
    $("stack").style.width = (W * zoom) + "px"; $("stack").style.height = (H * zoom) + "px";
    base.getContext("2d").drawImage(img, 0, 0);
    undoStack = [];
    $("result").removeAttribute("src"); $("result").style.width = ""; $("download").classList.add("hidden");
    refreshButtons();
    setStatus(`${f.name}: ${W}x${H}. Paint the hole, then press Fill.`);
  };
  img.src = `/api/image/${answer.id}`;
});

function snapshot() {
  undoStack.push({ mask: maskC.getContext("2d").getImageData(0, 0, W, H),
                   sketch: sketchC.getContext("2d").getImageData(0, 0, W, H) });
  if (undoStack.length > 50) undoStack.shift();
  refreshButtons();
}
function toImage(e) {
  const r = paint.getBoundingClientRect();
  return [(e.clientX - r.left) * W / r.width, (e.clientY - r.top) * H / r.height];
}
function stroke(from, to) {
  const sketch = drawing.tool === "sketch";
  const ctx = (sketch ? sketchC : maskC).getContext("2d");
  ctx.strokeStyle = sketch ? "#ffffff" : "#ff00a0";
  ctx.lineWidth = sketch ? Math.max(1, Math.round(3 / zoom)) : Number($("brush").value) / zoom;
  ctx.lineCap = "round"; ctx.lineJoin = "round";
  ctx.beginPath(); ctx.moveTo(from[0], from[1]); ctx.lineTo(to[0], to[1]); ctx.stroke();
}
paint.addEventListener("pointerdown", (e) => {
  if (imageId === null) return;
  paint.setPointerCapture(e.pointerId);
  snapshot();
  drawing = { tool: tool(), last: toImage(e) };
  stroke(drawing.last, drawing.last);
});
paint.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const p = toImage(e); stroke(drawing.last, p); drawing.last = p;
});
for (const ev of ["pointerup", "pointercancel"]) paint.addEventListener(ev, () => { drawing = null; });

$("undo").addEventListener("click", () => {
  const s = undoStack.pop();
  if (s) { maskC.getContext("2d").putImageData(s.mask, 0, 0); sketchC.getContext("2d").putImageData(s.sketch, 0, 0); }
  refreshButtons();
});
$("clear").addEventListener("click", () => {
  snapshot();
  maskC.getContext("2d").clearRect(0, 0, W, H); sketchC.getContext("2d").clearRect(0, 0, W, H);
});

function hasPixels(c) {
  const a = c.getContext("2d").getImageData(0, 0, W, H).data;
  for (let i = 3; i < a.length; i += 4) if (a[i] > 0) return true;
  return false;
}
$("fill").addEventListener("click", async () => {
  setError("");
  if (!hasPixels(maskC)) { setError("Paint the hole first: the mask is empty."); return; }
  $("fill").disabled = true; setStatus("Filling ...");
  const body = { id: imageId, mask: maskC.toDataURL("image/png"),
                 sketch: info.guided && hasPixels(sketchC) ? sketchC.toDataURL("image/png") : null };
  try {
    const r = await fetch("/api/fill", { method: "POST", headers: { "Content-Type": "application/json" },
                                         body: JSON.stringify(body) });
    const answer = await r.json();
    if (answer.error) { setError(answer.error); setStatus(""); return; }
    const res = $("result");
    res.onload = () => setStatus("Done. Keep painting and fill again, undo strokes, or download the PNG.");
    res.style.width = (W * zoom) + "px"; res.src = answer.result;
    const a = $("download"); a.href = answer.result; a.classList.remove("hidden");
  } catch (e) { setError(`Fill failed: ${e}`); setStatus(""); }
  finally { refreshButtons(); }
});
loadInfo();
</script>
</body></html>
"""
