"""Renders docs/masks.png: one 256x256 example of every registered mask generator
(`inpaintjax.masks.MASK_GENERATORS`) and of the '+'-union the default evaluation set also draws
from, each titled with its name and hole area (white = hole).

    python docs/make_mask_figure.py [--out docs/masks.png] [--seed 0] [--size 256]

Each panel is `make_mask(name, np.random.default_rng([seed, i]), size, size)` for the i-th name,
so a panel can be re-drawn on its own. The pixels depend only on the seed and the NumPy and
Pillow versions (see docs/masks-and-evaluation.md).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from inpaintjax import masks

EXTRA = ("deepfill_v2_training+deepfill_v2_strokes",)


def render(out: str, seed: int = 0, size: int = 256) -> list[tuple[str, float]]:
    """Draw the figure into `out` (PNG); returns [(generator name, hole ratio)] in panel order."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(masks.MASK_GENERATORS) + list(EXTRA)
    cols = 4
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(2.6 * cols, 3.1 * rows))
    FigureCanvasAgg(fig)
    drawn = []
    for i, name in enumerate(names):
        m = masks.make_mask(name, np.random.default_rng([seed, i]), size, size)
        ratio = masks.hole_ratio(m)
        b = masks.bucket_of(ratio)
        where = masks.bucket_name(b) if b >= 0 else "no bucket"
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(m, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        label = name.replace("+", "\n+ ")
        ax.set_title(f"{label}\nhole {100 * ratio:.1f}% ({where})", fontsize=7.5)
        ax.set_xticks([])
        ax.set_yticks([])
        drawn.append((name, ratio))
    fig.suptitle(f"inpaintjax mask generators, {size}x{size}, seed {seed} (white = hole)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return drawn


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--out", default=os.path.join(here, "masks.png"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256)
    a = p.parse_args(argv)
    for name, ratio in render(a.out, a.seed, a.size):
        print(f"{name:45s} hole {100 * ratio:5.1f}%")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
