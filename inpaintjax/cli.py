"""`inpaintjax` console command.

  inpaintjax inpaint --weights W --image a.png --mask m.png [--sketch s.png] --out o.png
  inpaintjax inpaint --weights W --image photos/ --mask masks/ --out results/   (folder mode)
  inpaintjax serve --weights W [--host 127.0.0.1] [--port 8765]   (sketch-and-fill page)

W is a train.py workdir or official weights of any family (format and family detected; --family
settles files that more than one family could read). In folder
mode every image in --image is paired with the file of the same base name (any image extension)
in --mask (or one mask file for all images), and likewise --sketch; results are written as
PNG under --out with the same base names.

Nothing is lost: before any inference the run is planned and refused (exit 2, one message) when an
output would replace one of its inputs (allowed with --overwrite) or another output of the same
run (x.png and x.jpg in one folder), when --out has no known image extension, is an existing folder
for a single image, or cannot be written. In folder mode a file that cannot be used (undecodable,
too large for --max-pixels, NaN pixels, a mask of another size) is skipped with a message; the run
goes on and exits 1 at the end, listing the skipped files. Exit 0 when every image was written.
Each output line reports the hole ratio of its mask.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Optional, Sequence

import numpy as np

from inpaintjax.image_io import IMAGE_EXTENSIONS, OUTPUT_EXTENSIONS, list_images, stems


def _partner(folder_or_file: Optional[str], stem: str, what: str) -> Optional[str]:
    if folder_or_file is None:
        return None
    if not os.path.isdir(folder_or_file):
        return folder_or_file  # one file shared by every image
    for f in list_images(folder_or_file):
        if os.path.splitext(f)[0] == stem:
            return os.path.join(folder_or_file, f)
    raise FileNotFoundError(f"no {what} for image {stem!r} in {folder_or_file} (expected a file "
                            f"named {stem}.png or another image extension)")


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _check_writable(path: str, what: str) -> None:
    """Refuse, before any inference, an output path that cannot be written: its folder cannot be
    created or written to (checked by creating and removing a probe file)."""
    import tempfile
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ValueError(f"{what} {path} cannot be written ({e.strerror or e}); choose another "
                         f"path") from None


def _check_output_file(path: str) -> None:
    ext = os.path.splitext(path)[1].lower()
    if os.path.isdir(path):
        raise ValueError(f"--out {path} is an existing folder but --image is one file; name the "
                         f"output file, e.g. {os.path.join(path, 'result.png')}")
    if ext not in OUTPUT_EXTENSIONS:
        raise ValueError(f"--out {path}: unknown image extension {ext or '(none)'!r}; use one of "
                         f"{', '.join(OUTPUT_EXTENSIONS)}")


def _plan(args) -> tuple[list[tuple[str, str, Optional[str], str]], bool]:
    """Every (image, mask, sketch, output) of the run, checked before any work: a missing partner,
    an output that would replace an input (unless --overwrite) or another output of the run, an
    unknown output extension, an existing folder named as a file, or an unwritable path.
    Returns (jobs, folder_mode)."""
    if os.path.isdir(args.image):
        names = list_images(args.image)
        if not names:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {args.image}")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise NotADirectoryError(f"--out {args.out} must be a directory in folder mode")
        clashes = {s: n for s, n in stems(names).items() if len(n) > 1}
        if clashes:
            listed = "; ".join(" and ".join(n) for n in clashes.values())
            raise ValueError(f"{args.image} holds images with the same name and different "
                             f"extensions ({listed}): their results would both be written as "
                             f"<name>.png in {args.out}; rename or move one of each")
        jobs = []
        for name in names:
            stem = os.path.splitext(name)[0]
            jobs.append((os.path.join(args.image, name), _partner(args.mask, stem, "mask"),
                         _partner(args.sketch, stem, "sketch"),
                         os.path.join(args.out, stem + ".png")))
        folder_mode = True
    else:
        if os.path.isdir(args.mask):
            raise IsADirectoryError(f"--mask {args.mask} is a directory but --image is one file")
        _check_output_file(args.out)
        jobs = [(args.image, args.mask, args.sketch, args.out)]
        folder_mode = False
    inputs = [p for job in jobs for p in job[:3] if p is not None]
    replaced = sorted({out for *_, out in jobs if any(_same_file(out, p) for p in inputs)})
    if replaced and not args.overwrite:
        shown = ", ".join(replaced[:5]) + (f" and {len(replaced) - 5} more" if len(replaced) > 5 else "")
        raise ValueError(f"--out would replace input file(s) {shown}; choose another --out, or "
                         f"pass --overwrite to replace them")
    _check_writable(jobs[0][3], "--out")
    return jobs, folder_mode


def _hole_ratio(mask: np.ndarray) -> float:
    return float(np.mean(mask > 0.5)) if mask.size else 0.0


def _cmd_inpaint(args) -> int:
    from inpaintjax.image_io import image_size, read_image, read_mask, write_image
    from inpaintjax.inference import Inpainter
    if not os.path.exists(args.image):
        raise FileNotFoundError(f"--image not found: {args.image}")
    if not os.path.exists(args.mask):
        raise FileNotFoundError(f"--mask not found: {args.mask}")
    if args.sketch is not None and not os.path.exists(args.sketch):
        raise FileNotFoundError(f"--sketch not found: {args.sketch}")
    if not os.path.exists(args.weights) and not os.path.exists(args.weights + ".index"):
        raise FileNotFoundError(f"--weights not found: {args.weights} (a train.py workdir or "
                                f"official weights of a family)")
    if args.max_pixels is not None and args.max_pixels < 1:
        raise ValueError(f"--max-pixels must be >= 1, got {args.max_pixels}")
    jobs, folder_mode = _plan(args)
    kw = {} if args.max_pixels is None else {"max_pixels": args.max_pixels}
    inpainter = Inpainter.load(args.weights, family=args.family, **kw)

    def one(image_path, mask_path, sketch_path, dest):
        w, h = image_size(image_path)
        inpainter.check_size(h, w, image_path)  # before decoding anything
        mask = read_mask(mask_path, "mask")
        out = inpainter.inpaint(read_image(image_path),
                                mask, None if sketch_path is None else read_mask(sketch_path, "sketch"))
        write_image(dest, out)
        return _hole_ratio(mask)

    if not folder_mode:
        ratio = one(*jobs[0])
        print(f"wrote {args.out} (hole {ratio:.1%} of the image)")
        return 0
    t0 = time.time()
    skipped = []
    for i, job in enumerate(jobs):
        try:
            ratio = one(*job)
        except (ValueError, OSError) as e:  # an unreadable / too large / mismatched file: go on
            skipped.append((job[0], str(e)))
            print(f"[{i + 1}/{len(jobs)}] skipped {job[0]}: {e}", file=sys.stderr)
            continue
        print(f"[{i + 1}/{len(jobs)}] {job[3]} (hole {ratio:.1%} of the image)")
    done = len(jobs) - len(skipped)
    print(f"inpainted {done} of {len(jobs)} images in {time.time() - t0:.1f} s -> {args.out}")
    if skipped:
        print(f"inpaintjax inpaint: {len(skipped)} image(s) skipped:", file=sys.stderr)
        for path, why in skipped:
            print(f"  {path}: {why}", file=sys.stderr)
        return 1
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
                   help="mask file (a hole where a pixel is at least half of the value range, e.g. "
                        ">= 128 of 255; a 0/1 file: 1 = hole), or a folder of masks named like "
                        "the images")
    q.add_argument("--sketch", default=None,
                   help="optional sketch for guided models (a stroke where a pixel is at least "
                        "half of the value range, as masks); file or folder")
    q.add_argument("--out", required=True,
                   help=f"output file ({', '.join(OUTPUT_EXTENSIONS)}), or folder in folder mode")
    q.add_argument("--overwrite", action="store_true",
                   help="allow outputs to replace input files (refused otherwise)")
    q.add_argument("--max-pixels", type=int, default=None,
                   help="largest image (width x height, after padding) to inpaint; larger ones are "
                        "refused before any work (default: the Inpainter's, see inpaintjax.inference)")
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
