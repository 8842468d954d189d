"""`inpaintjax` console command.

  inpaintjax inpaint --weights W --image a.png --mask m.png [--sketch s.png] --out o.png
  inpaintjax inpaint --weights W --image photos/ --mask masks/ --out results/   (folder mode)
  inpaintjax serve --weights W [--host 127.0.0.1] [--port 8765]   (sketch-and-fill page)

W is a train.py workdir or official weights of any family (format and family detected; --family
settles files that more than one family could read). In folder
mode every image in --image is paired with the file of the same base name (any image extension)
in --mask (or one mask file for all images), and likewise --sketch; results are written as
PNG under --out with the same base names. Exit status 0 on success, 2 on bad input.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Optional, Sequence

from inpaintjax.inference import _IMAGE_EXTS


def _list_images(folder: str) -> list[str]:
    return sorted(f for f in os.listdir(folder)
                  if os.path.splitext(f)[1].lower() in _IMAGE_EXTS and not f.startswith("."))


def _partner(folder_or_file: Optional[str], stem: str, what: str) -> Optional[str]:
    if folder_or_file is None:
        return None
    if not os.path.isdir(folder_or_file):
        return folder_or_file  # one file shared by every image
    for f in _list_images(folder_or_file):
        if os.path.splitext(f)[0] == stem:
            return os.path.join(folder_or_file, f)
    raise FileNotFoundError(f"no {what} for image {stem!r} in {folder_or_file} (expected a file "
                            f"named {stem}.png or another image extension)")


def _cmd_inpaint(args) -> int:
    from inpaintjax.inference import Inpainter, read_image, write_image
    if not os.path.exists(args.image):
        raise FileNotFoundError(f"--image not found: {args.image}")
    if not os.path.exists(args.mask):
        raise FileNotFoundError(f"--mask not found: {args.mask}")
    if args.sketch is not None and not os.path.exists(args.sketch):
        raise FileNotFoundError(f"--sketch not found: {args.sketch}")
    if not os.path.exists(args.weights) and not os.path.exists(args.weights + ".index"):
        raise FileNotFoundError(f"--weights not found: {args.weights} (a train.py workdir or "
                                f"official weights of a family)")
    inpainter = Inpainter.load(args.weights, family=args.family)
    if os.path.isdir(args.image):
        names = _list_images(args.image)
        if not names:
            raise FileNotFoundError(f"no images ({', '.join(_IMAGE_EXTS)}) in {args.image}")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise NotADirectoryError(f"--out {args.out} must be a directory in folder mode")
        os.makedirs(args.out, exist_ok=True)
        t0 = time.time()
        for i, name in enumerate(names):
            stem = os.path.splitext(name)[0]
            mask = _partner(args.mask, stem, "mask")
            sketch = _partner(args.sketch, stem, "sketch")
            out = inpainter.inpaint(read_image(os.path.join(args.image, name)),
                                    read_image(mask, "mask"),
                                    None if sketch is None else read_image(sketch, "sketch"))
            dest = os.path.join(args.out, stem + ".png")
            write_image(dest, out)
            print(f"[{i + 1}/{len(names)}] {dest}")
        print(f"inpainted {len(names)} images in {time.time() - t0:.1f} s -> {args.out}")
        return 0
    if os.path.isdir(args.mask):
        raise IsADirectoryError(f"--mask {args.mask} is a directory but --image is one file")
    out = inpainter.inpaint(read_image(args.image), read_image(args.mask, "mask"),
                            None if args.sketch is None else read_image(args.sketch, "sketch"))
    write_image(args.out, out)
    print(f"wrote {args.out}")
    return 0


def _cmd_serve(args) -> int:
    from inpaintjax import serve
    if not os.path.exists(args.weights) and not os.path.exists(args.weights + ".index"):
        raise FileNotFoundError(f"--weights not found: {args.weights} (a train.py workdir or "
                                f"official weights of a family)")
    if args.max_bytes <= 0 or args.max_pixels <= 0:
        raise ValueError("--max-bytes and --max-pixels must be positive")
    serve.serve(args.weights, args.host, args.port, args.max_bytes, args.max_pixels, args.family)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inpaintjax", description="Deep image inpainting (JAX/Flax).")
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("inpaint", help="fill the holes of an image (or a folder of images)")
    q.add_argument("--weights", required=True,
                   help="a train.py workdir, or official weights of any family (format detected)")
    q.add_argument("--family", default=None,
                   help="the family of --weights, where the files cannot tell (e.g. deepfill_v2)")
    q.add_argument("--image", required=True, help="image file, or a folder of images")
    q.add_argument("--mask", required=True,
                   help="mask file (non-zero = hole), or a folder of masks named like the images")
    q.add_argument("--sketch", default=None,
                   help="optional sketch (non-zero = stroke) for guided models; file or folder")
    q.add_argument("--out", required=True, help="output file, or folder in folder mode")
    q.set_defaults(func=_cmd_inpaint)
    from inpaintjax import serve
    v = sub.add_parser("serve", help="a local page: open an image, paint the hole, fill, download")
    v.add_argument("--weights", required=True,
                   help="a train.py workdir, or official weights of any family (format detected)")
    v.add_argument("--family", default=None,
                   help="the family of --weights, where the files cannot tell (e.g. deepfill_v2)")
    v.add_argument("--host", default=serve.DEFAULT_HOST,
                   help="address to bind (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=int, default=serve.DEFAULT_PORT, help="port (0 = any free port)")
    v.add_argument("--max-bytes", type=int, default=serve.MAX_BYTES, help="upload size limit")
    v.add_argument("--max-pixels", type=int, default=serve.MAX_PIXELS,
                   help="upload width x height limit")
    v.set_defaults(func=_cmd_serve)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from inpaintjax import xla_cpu
    xla_cpu.configure()  # before JAX starts: this CPU's calibrated XLA:CPU set-up
    # orbax warns through absl that a workdir opened for reading is read-only: expected here
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        return args.func(args)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, ValueError, KeyError) as e:
        print(f"inpaintjax {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
