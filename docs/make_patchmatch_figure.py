"""Renders docs/patchmatch.png: the four cases of tests/fixtures/patchmatch_pypatchmatch.npz
(64x64 crops of scikit-image's astronaut and chelsea, a rectangular and a free-form hole), as
input (hole marked) | PyPatchMatch 2.2.0 (its seed 0, stored in the fixture) | inpaintjax
PatchMatch (seed 0) | truth, enlarged 4x by whole pixels.

    python docs/make_patchmatch_figure.py [--out docs/patchmatch.png]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from inpaintjax import patchmatch
from inpaintjax.training import logs

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests",
                       "fixtures", "patchmatch_pypatchmatch.npz")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "patchmatch.png"))
    args = p.parse_args()
    g = np.load(FIXTURE)
    images = g["images"].astype(np.float32) / 255.0
    masks = g["holes"][..., None].astype(np.float32)
    ours = patchmatch.inpaint(np.where(masks > 0.5, 0.0, images), masks, seed=0)
    scale = 4
    grid = logs.labelled_grid(
        [("input (hole marked)", np.stack([logs.mark_hole(i, m, scale) for i, m in zip(images, masks)])),
         ("PyPatchMatch 2.2.0", g["outputs"].astype(np.float32) / 255.0),
         ("inpaintjax patchmatch", ours),
         ("truth", images)], scale=scale)
    logs.save_png(grid, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
