"""Renders docs/masks.png: one 256x256 example of every registered mask generator
(`inpaintjax.masks.MASK_GENERATORS`) except the evaluation protocols' fixed-size sets, and of the
'+'-union the default evaluation set also draws from, each titled with its name and hole area
(white = hole); with --protocol, docs/protocol_masks.png: the protocols' sets (names ending in
_256 or _512, optionally _h0.._h4), each at its own size.

    python docs/make_mask_figure.py [--out docs/masks.png] [--seed 0] [--size 256]
    python docs/make_mask_figure.py --protocol [--out docs/protocol_masks.png] [--seed 0]

Each panel is `make_mask(name, np.random.default_rng([seed, i]), size, size)` for the i-th name,
so a panel can be re-drawn on its own. The pixels depend only on the seed and the NumPy and
Pillow versions (see docs/masks-and-evaluation.md).
"""

from __future__ import annotations

import argparse
import os
import re

import numpy as np

from inpaintjax import masks

EXTRA = ("deepfill_v2_training+deepfill_v2_strokes",)
_PROTOCOL_NAME = re.compile(r"_(256|512)(_h[0-4])?$")


def protocol_names() -> list[str]:
    """The evaluation protocols' mask sets: registered names ending in _256 / _512 (+ _h0.._h4)."""
    return [n for n in masks.MASK_GENERATORS if _PROTOCOL_NAME.search(n)]


def render(out: str, seed: int = 0, size: int = 256, protocol: bool = False) -> list[tuple[str, float]]:
    """Draw the figure into `out` (PNG); returns [(generator name, hole ratio)] in panel order.
    `protocol`: the protocols' sets, each at its own size (`size` is ignored)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if protocol:
        names = protocol_names()
    else:
        names = [n for n in masks.MASK_GENERATORS if n not in protocol_names()] + list(EXTRA)
    cols = 4
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(2.6 * cols, 3.1 * rows))
    FigureCanvasAgg(fig)
    drawn = []
    for i, name in enumerate(names):
        side = int(_PROTOCOL_NAME.search(name).group(1)) if protocol else size
        m = masks.make_mask(name, np.random.default_rng([seed, i]), side, side)
        ratio = masks.hole_ratio(m)
        b = masks.bucket_of(ratio)
        where = masks.bucket_name(b) if b >= 0 else "no bucket"
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(m, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        label = name.replace("+", "\n+ ")
        at = f", {side}x{side}" if protocol else ""
        ax.set_title(f"{label}{at}\nhole {100 * ratio:.1f}% ({where})", fontsize=7.5)
        ax.set_xticks([])
        ax.set_yticks([])
        drawn.append((name, ratio))
    what = "evaluation protocols' mask sets, each at its own size" if protocol else f"mask generators, {size}x{size}"
    fig.suptitle(f"inpaintjax {what}, seed {seed} (white = hole)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return drawn


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--out", default=None, help="default: docs/masks.png, or docs/protocol_masks.png with --protocol")
    p.add_argument("--protocol", action="store_true", help="the protocols' mask sets at their own sizes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256)
    a = p.parse_args(argv)
    if a.out is None:
        a.out = os.path.join(here, "protocol_masks.png" if a.protocol else "masks.png")
    for name, ratio in render(a.out, a.seed, a.size, a.protocol):
        print(f"{name:45s} hole {100 * ratio:5.1f}%")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
