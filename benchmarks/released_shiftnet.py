"""Shift-Net's training step: the authors' released code against inpaintjax, on this CPU.

    python benchmarks/released_shiftnet.py --checkout PATH [--rounds 4] [--pause 2] [--out FILE]

PATH is a checkout of Zhaoyi-Yan/Shift-Net_pytorch (measured at commit a3534315), used unmodified:
this script imports its `options` and `models` and runs what its `train.py` runs per iteration,
`model.set_input(data)` + `model.optimize_parameters()`, with the released defaults
(`unet_shift_triple`, centre mask, batch 4 at 256x256, D with spectral norm, VGG-16 style and
content losses, `--gpu_ids=-1`). If torchvision is not installed, a stand-in provides what the
released code reads from it: `torchvision.models.vgg16` with torchvision's layer layout and random
weights (the weights do not change the time; `pretrained=True` is ignored, nothing is downloaded).

Each round runs two processes one after the other, alternating which goes first: inpaintjax's
`python -m inpaintjax.bench --family shiftnet --cases train --xla-cpu auto` and this script's
`--released-child` (warm-up, then 3 timed steps, `--pause` seconds untimed before each). Prints one
JSON record per process and a summary: the medians over the rounds and the per-round ratios
(released seconds over inpaintjax seconds: above 1, inpaintjax is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
import types


def torchvision_stand_in() -> dict:
    """A minimal `torchvision` for sys.modules: models.vgg16 (torchvision's layer layout, random
    weights) and an empty transforms module, by module name."""
    import torch.nn as nn

    def vgg16(pretrained=False, **_):
        layers, c = [], 3
        for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
                c = v
        net = nn.Module()
        net.features = nn.Sequential(*layers)
        return net

    tv = types.ModuleType("torchvision")
    tv.models = types.ModuleType("torchvision.models")
    tv.models.vgg16 = vgg16
    tv.transforms = types.ModuleType("torchvision.transforms")
    return {"torchvision": tv, "torchvision.models": tv.models,
            "torchvision.transforms": tv.transforms}


def released_child(checkout: str, pause: float, repeats: int, workdir: str) -> dict:
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        import torchvision  # noqa: F401
        stand_in = False
    except ImportError:
        sys.modules.update(torchvision_stand_in())
        stand_in = True
    sys.path.insert(0, checkout)
    from models import create_model
    from options.train_options import TrainOptions
    argv, sys.argv = sys.argv, ["train.py", "--gpu_ids=-1", "--batchSize=4",
                                f"--checkpoints_dir={workdir}", "--name=bench"]
    with contextlib.redirect_stdout(io.StringIO()):  # the released code prints its options and nets
        model = create_model(TrainOptions().parse())
    sys.argv = argv
    image = torch.rand(4, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    data = {"A": image, "B": image, "M": torch.zeros(4, 3, 256, 256), "A_paths": ["x"] * 4}

    def step():
        model.set_input({k: (v.clone() if torch.is_tensor(v) else v) for k, v in data.items()})
        model.optimize_parameters()

    step()
    times = []
    for _ in range(repeats):
        time.sleep(pause)
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"kind": "train", "family": "shiftnet", "framework": "released", "batch": 4, "size": 256,
            "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "times_s": times,
            "torch": torch.__version__, "torchvision_stand_in": stand_in,
            "parameters": {"generator": sum(p.numel() for p in model.netG.parameters()),
                           "discriminator": sum(p.numel() for p in model.netD.parameters())}}


def _run(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("kind") == "train":
                return rec
    raise RuntimeError(f"no timing record in the output of {' '.join(cmd)}:\n{out}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkout", required=True, help="a checkout of Zhaoyi-Yan/Shift-Net_pytorch")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--pause", type=float, default=2.0)
    p.add_argument("--out", help="append the JSON records to this file")
    p.add_argument("--released-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if not os.path.isfile(os.path.join(a.checkout, "models", "shift_net", "shiftnet_model.py")):
        p.error(f"--checkout {a.checkout!r} is not a Shift-Net_pytorch checkout "
                "(no models/shift_net/shiftnet_model.py): git clone "
                "https://github.com/Zhaoyi-Yan/Shift-Net_pytorch")
    if a.released_child:
        print(json.dumps(released_child(a.checkout, a.pause, 3, a.workdir)))
        return
    import tempfile
    workdir = tempfile.mkdtemp(prefix="released_shiftnet_")  # the released code writes opt.txt
    cmds = {"inpaintjax": [sys.executable, "-m", "inpaintjax.bench", "--family", "shiftnet",
                           "--cases", "train", "--xla-cpu", "auto", "--pause", str(a.pause)],
            "released": [sys.executable, os.path.abspath(__file__), "--checkout", a.checkout,
                         "--pause", str(a.pause), "--released-child", "--workdir", workdir]}
    medians = {"inpaintjax": [], "released": []}
    for r in range(a.rounds):
        for name in (("inpaintjax", "released") if r % 2 == 0 else ("released", "inpaintjax")):
            rec = dict(_run(cmds[name]), round=r, side=name)
            medians[name].append(rec["median_s"])
            print(json.dumps(rec), flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(rec) + "\n")
    ratios = [rel / jax for rel, jax in zip(medians["released"], medians["inpaintjax"], strict=True)]
    summary = {"kind": "released_shiftnet_summary", "rounds": a.rounds, "pause_s": a.pause,
               "inpaintjax_median_s": statistics.median(medians["inpaintjax"]),
               "released_median_s": statistics.median(medians["released"]),
               "per_round": [round(x, 3) for x in ratios], "speedup": statistics.median(ratios)}
    print(json.dumps(summary))
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
