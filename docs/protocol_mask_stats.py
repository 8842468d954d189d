"""Prints the table of docs/masks-and-evaluation.md, "Measured against the original code": hole-area
statistics of the protocols' mask generators as drawn by the authors' code (from
tests/fixtures/protocol_mask_stats.json, made by tests/fixtures/make_protocol_mask_stats.py) beside
the same statistics of inpaintjax's generators.

    python docs/protocol_mask_stats.py [--n 1000] [--seed 7]

Mask i of a generator is `make_mask(name, np.random.default_rng([seed, i]), S, S)` at the
generator's own size S (LaMa's kind and the brush area come from `lama_mask(..., return_info=True)`
and `brush_box_mask(..., return_parts=True)` on the same stream).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from inpaintjax import masks

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "tests", "fixtures", "protocol_mask_stats.json")


def draw(name: str, size: int, n: int, seed: int):
    """(hole ratios [n], parts [n]): parts = 1 for LaMa box masks (0 strokes), or the brush strokes'
    own hole ratio for CoModGAN/MAT."""
    ratios, parts = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        if name.startswith("lama_"):
            _, variant, ref = name.split("_")
            mask, info = masks.lama_mask(variant, rng, size, size, ref=int(ref), return_info=True)
            parts.append(float(info["kind"] == "box"))
        else:
            base = "comodgan_512" if name.startswith("comodgan_512") else name
            ref, n_half, n_full, n_brush = masks.BRUSH_BOX_CONFIGS[base]
            suffix = name[len("comodgan_512_"):] if name.startswith("comodgan_512_") else None
            hole_range = masks.COMODGAN_HOLE_RANGES[suffix] if suffix else (0.0, 1.0)
            mask, brush = masks.brush_box_mask(rng, size, size, ref=ref, half_box_tries=n_half,
                                               box_tries=n_full, brush_tries=n_brush,
                                               hole_range=hole_range, return_parts=True)
            parts.append(masks.hole_ratio(brush))
        ratios.append(masks.hole_ratio(mask))
    return np.array(ratios), np.array(parts)


def row(values):
    q05, q50, q95 = np.quantile(values, [0.05, 0.5, 0.95])
    return f"{values.mean():.3f} | {values.std(ddof=1):.3f} | {q05:.3f} / {q50:.3f} / {q95:.3f}"


def ref_row(summary):
    q = summary["quantiles"]  # 0.05, 0.10, ..., 0.95
    return f"{summary['mean']:.3f} | {summary['std']:.3f} | {q[0]:.3f} / {q[9]:.3f} / {q[18]:.3f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args(argv)
    with open(FIXTURE) as f:
        ref = json.load(f)
    print("| generator | code | n | hole mean | std | 5% / 50% / 95% | mix |")
    print("|---|---|---|---|---|---|---|")
    for name, r in ref["generators"].items():
        ratios, parts = draw(name, r["size"], a.n, a.seed)
        if name.startswith("lama_"):
            mix_ref, mix = f"boxes {r['box_fraction']:.3f}", f"boxes {parts.mean():.3f}"
        else:
            mix_ref, mix = f"brush {r['brush_ratio']['mean']:.3f}", f"brush {parts.mean():.3f}"
        print(f"| `{name}` | original | {r['n']} | {ref_row(r['hole_ratio'])} | {mix_ref} |")
        print(f"| | inpaintjax | {a.n} | {row(ratios)} | {mix} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
