"""PatchMatch speed: inpaintjax.patchmatch beside PyPatchMatch (PyPI), 512x512, patch radius 3.

    python benchmarks/patchmatch_bench.py [--batch 4] [--repeats 3]
        [--reference-python /path/to/venv/bin/python]   # a Python with PyPatchMatch installed

Image: scikit-image's astronaut (512x512). Holes: a 128x128 and a 256x256 square in the centre.
For each hole: ours on one image (first call, compiling included, then the best of --repeats warm
calls), ours on a batch of --batch copies (images per second), and PyPatchMatch on the same image
(best of --repeats), run by --reference-python (default: this Python, if it can import
`patchmatch`) in a child process so the two need not share an environment. Times are wall clock
and process CPU time. Prints one table; --json writes the rows.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

SIZE = 512
HOLES = (128, 256)
RADIUS = 3


def inputs(hole: int):
    from skimage import data
    image = data.astronaut()[:SIZE, :SIZE].copy()
    mask = np.zeros((SIZE, SIZE), bool)
    a = (SIZE - hole) // 2
    mask[a:a + hole, a:a + hole] = True
    image[mask] = 0
    return image, mask


def timed(fn, repeats: int):
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        best_wall = min(best_wall, time.perf_counter() - w)
        best_cpu = min(best_cpu, time.process_time() - c)
    return best_wall, best_cpu


def reference_rows(repeats: int) -> list:
    """PyPatchMatch's times (run inside a Python that has it)."""
    from importlib import metadata
    from patchmatch import patch_match
    rows = []
    for hole in HOLES:
        image, mask = inputs(hole)
        wall, cpu = timed(lambda: patch_match.inpaint(image, mask.astype(np.uint8),
                                                      patch_size=RADIUS), repeats)
        rows.append({"method": f"PyPatchMatch {metadata.version('PyPatchMatch')}", "hole": hole,
                     "batch": 1, "wall_s": wall, "cpu_s": cpu})
    return rows


def _show(r: dict) -> None:
    ips = r.get("images_per_s", r["batch"] / r["wall_s"])
    print(f"{r['method']:40s} {r['hole']:>4d}^2 {r['batch']:>5d} {r['wall_s']:8.2f} "
          f"{r['cpu_s']:8.2f} {ips:7.2f}", flush=True)


def our_rows(batch: int, repeats: int) -> list:
    from inpaintjax import xla_cpu
    xla_cpu.configure()
    import jax
    from inpaintjax import patchmatch
    rows = []
    for hole in HOLES:
        image, mask = inputs(hole)
        w, c = time.perf_counter(), time.process_time()
        patchmatch.inpaint_uint8(image[None], mask[None], radius=RADIUS)
        rows.append({"method": "inpaintjax (first call, compiling)", "hole": hole, "batch": 1,
                     "wall_s": time.perf_counter() - w, "cpu_s": time.process_time() - c})
        _show(rows[-1])
        wall, cpu = timed(lambda: patchmatch.inpaint_uint8(image[None], mask[None],
                                                           radius=RADIUS), repeats)
        rows.append({"method": "inpaintjax", "hole": hole, "batch": 1, "wall_s": wall,
                     "cpu_s": cpu})
        _show(rows[-1])
        if batch > 1:
            imgs, masks = np.repeat(image[None], batch, 0), np.repeat(mask[None], batch, 0)
            patchmatch.inpaint_uint8(imgs, masks, radius=RADIUS)  # compile
            wall, cpu = timed(lambda: patchmatch.inpaint_uint8(imgs, masks, radius=RADIUS),
                              repeats)
            rows.append({"method": "inpaintjax", "hole": hole, "batch": batch, "wall_s": wall,
                         "cpu_s": cpu, "images_per_s": batch / wall})
            _show(rows[-1])
    for r in rows:
        r["device"] = str(jax.devices()[0].device_kind)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--reference-python", default=sys.executable)
    p.add_argument("--reference-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument("--json", default="")
    args = p.parse_args()
    if args.reference_only:
        print(json.dumps(reference_rows(args.repeats)))
        return
    rows = []
    print(f"{'method':40s} {'hole':>8s} {'batch':>5s} {'wall s':>8s} {'cpu s':>8s} {'img/s':>7s}")
    if not args.skip_reference:
        r = subprocess.run([args.reference_python, os.path.abspath(__file__), "--reference-only",
                            "--repeats", str(args.repeats)], capture_output=True, text=True)
        if r.returncode == 0:
            rows += json.loads(r.stdout.strip().splitlines()[-1])
            for row in rows:
                _show(row)
        else:
            print(f"PyPatchMatch not run ({args.reference_python}: "
                  f"{r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}); "
                  f"pass --reference-python with a Python that has PyPatchMatch", file=sys.stderr)
    rows += our_rows(args.batch, args.repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
