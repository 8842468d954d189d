"""Markdown table from `python -m inpaintjax.bench --out FILE` records: python benchmarks/table.py FILE"""

from __future__ import annotations

import json
import sys


FAMILIES = {"deepfill_v2": "DeepFill v2", "deepfill_v1": "DeepFill v1", "pconv": "PConv",
            "edgeconnect": "EdgeConnect", "glcic": "GLCIC", "shiftnet": "Shift-Net"}


EDGECONNECT_MODELS = {"train_edge": " edge-model", "train_inpaint": " inpainting-model"}


def _label(r: dict) -> str:
    if r.get("framework") == "released":
        return "the authors' released code (benchmarks/released_shiftnet.py)"
    if r.get("framework") == "torch":
        return f"PyTorch {r.get('torch', '')}".strip()
    mode = r.get("xla_cpu", "default")  # records from before the XLA:CPU set-up existed
    conv = {("default", "native"): "JAX, jaxlib defaults (YNNPACK), XLA's gradients",
            ("default", "auto"): "JAX, jaxlib defaults, inpaintjax CPU gradients",
            ("tuned", "native"): "JAX, YNNPACK off, XLA's gradients",
            ("tuned", "auto"): "**inpaintjax** (YNNPACK off + strided input gradients)"}[
        (mode, r["conv"])]
    return conv + (f", {r['dtype']}" if r.get("dtype") not in (None, "float32") else "") + (
        ", remat" if r.get("remat") else "")


def main(path: str) -> None:
    recs = [json.loads(ln) for ln in open(path) if ln.strip()]
    peak = next((r.get("peak_flops_per_s") for r in recs if r.get("kind") == "peak_matmul"), None)
    machine = next((r for r in recs if r.get("kind") == "machine"), {})
    if peak:
        print(f"Measured float32 matmul peak: {peak / 1e9:.1f} GFLOP/s "
              f"({machine.get('cpus', '?')} CPUs, load {machine.get('load_avg_1m', '?')}).\n")
    print("| case | implementation | median s (min-max) | images/s | GFLOP | % of peak | "
          "compile s | peak RSS GB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in recs:
        # EdgeConnect's two training cases: the JAX record names the PyTorch case it sits beside
        kind = "train" if r.get("kind") in EDGECONNECT_MODELS else r.get("kind")
        if kind not in ("stack", "train", "infer") or "error" in r:
            continue
        name = FAMILIES.get(r.get("family", "deepfill_v2"), r.get("family"))
        model = EDGECONNECT_MODELS.get(r.get("torch_case") or r.get("kind"), "")
        case = {"stack": "8-conv stack fwd+bwd", "train": f"{name}{model} train step",
                "infer": f"{name} inpaint"}[kind]
        case += f", {r['batch']}x{r['size']}x{r['size']}"
        ips = r.get("images_per_s") or (r["batch"] / r["median_s"])
        frac = r.get("fraction_of_peak")
        if frac is None and peak and r.get("flops"):
            frac = r["flops"] / r["median_s"] / peak  # a record from a run without the peak case
        flops = f"{r['flops'] / 1e9:.0f}" if r.get("flops") else ""
        rss = f"{r['peak_rss_mb'] / 1024:.1f}" if r.get("peak_rss_mb") else ""
        print(f"| {case} | {_label(r)} | {r['median_s']:.2f} ({r['min_s']:.2f}-{r['max_s']:.2f}) "
              f"| {ips:.3g} | {flops} | "
              f"{'' if frac is None else f'{100 * frac:.0f}%'} | "
              f"{r.get('compile_s', '') if r.get('framework') is None else '-'} | {rss} |")


if __name__ == "__main__":
    main(sys.argv[1])
