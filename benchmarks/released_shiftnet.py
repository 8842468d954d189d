"""Shift-Net: the authors' released code against inpaintjax, on this CPU.

    python benchmarks/released_shiftnet.py --checkout PATH [--case train|infer] [--rounds 4]
                                           [--pause 2] [--out FILE]

PATH is a checkout of Zhaoyi-Yan/Shift-Net_pytorch (measured at commit a3534315), used unmodified:
this script imports its `options` and `models` and runs what its scripts run, with the released
defaults (`unet_shift_triple`, 4-channel input, `--gpu_ids=-1`). If torchvision is not installed, a
stand-in provides what the released code reads from it: `torchvision.models.vgg16` with
torchvision's layer layout and random weights (the weights do not change the time;
`pretrained=True` is ignored, nothing is downloaded).

- `--case train` (default): what its `train.py` runs per iteration, `model.set_input(data)` +
  `model.optimize_parameters()`: centre mask, batch 4 at 256x256, D with spectral norm, VGG-16
  style and content losses. inpaintjax side: `python -m inpaintjax.bench --family shiftnet
  --cases train --xla-cpu auto`.
- `--case infer`: batch 1 at 512x512 with the bench's hole (rows size/4..size/2, columns
  size/4..3*size/4, given as an offline mask), the generator loaded as its `test.py` loads it
  (`--which_epoch=latest`: a `latest_net_G.pth` written first from a freshly initialised
  generator). Timed:
  the generator's forward pass on the masked input under `torch.no_grad()` (the record's
  `median_s`, compared), and `model.set_input(data)` + `model.test()` as `test.py` runs it per
  image (`test_py_median_s`; its `forward` also runs the generator on the ground truth, for the
  guidance target, unless `--skip 1`). inpaintjax side: `--cases infer` (the family's jitted
  `inpaint`, generator and composite).

Each round runs two processes one after the other, alternating which goes first: inpaintjax's
bench and this script's `--released-child` (warm-up, then 3 timed calls, `--pause` seconds untimed
before each). Prints one JSON record per process and a summary: the medians over the rounds and the
per-round ratios (released seconds over inpaintjax seconds: above 1, inpaintjax is faster).
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


def _import_released(checkout: str) -> bool:
    """Puts the checkout first on sys.path (the torchvision stand-in in sys.modules where
    torchvision is missing); returns whether the stand-in is used."""
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        import torchvision  # noqa: F401
        stand_in = False
    except ImportError:
        sys.modules.update(torchvision_stand_in())
        stand_in = True
    sys.path.insert(0, checkout)
    return stand_in


def _released_model(options_class, flags: list[str]):
    """create_model(options_class().parse()) with `flags` as the command line, its printing
    silenced."""
    from models import create_model
    argv, sys.argv = sys.argv, ["released"] + flags
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the released code prints its options and nets
            return create_model(options_class().parse())
    finally:
        sys.argv = argv


def _timed(fn, pause: float, repeats: int) -> dict:
    """The record fields of `fn`'s warm-up and `repeats` timed calls, with inpaintjax's timer (the
    one the bench and its PyTorch counterparts use, so both sides measure alike)."""
    from inpaintjax import timing
    warm, times = timing.timed(fn, repeats, pause)
    return {**timing.summary(warm, times), "times_s": times}


def released_train(checkout: str, pause: float, repeats: int, workdir: str) -> dict:
    import torch
    stand_in = _import_released(checkout)
    from options.train_options import TrainOptions
    model = _released_model(TrainOptions, ["--gpu_ids=-1", "--batchSize=4",
                                           f"--checkpoints_dir={workdir}", "--name=bench"])
    image = torch.rand(4, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    data = {"A": image, "B": image, "M": torch.zeros(4, 3, 256, 256), "A_paths": ["x"] * 4}

    def step():
        model.set_input({k: (v.clone() if torch.is_tensor(v) else v) for k, v in data.items()})
        model.optimize_parameters()

    return {"kind": "train", "family": "shiftnet", "framework": "released", "batch": 4, "size": 256,
            **_timed(step, pause, repeats), "torch": torch.__version__, "torchvision_stand_in": stand_in,
            "parameters": {"generator": sum(p.numel() for p in model.netG.parameters()),
                           "discriminator": sum(p.numel() for p in model.netD.parameters())}}


def released_infer(checkout: str, pause: float, repeats: int, workdir: str, size: int = 512) -> dict:
    import torch
    stand_in = _import_released(checkout)
    from options.test_options import TestOptions
    from options.train_options import TrainOptions
    flags = ["--gpu_ids=-1", "--batchSize=1", f"--fineSize={size}", f"--loadSize={size}",
             f"--checkpoints_dir={workdir}", "--name=bench"]
    # test.py loads <checkpoints_dir>/<name>/latest_net_G.pth: write one from a fresh generator
    fresh = _released_model(TrainOptions, flags)
    os.makedirs(os.path.join(workdir, "bench"), exist_ok=True)
    torch.save(fresh.netG.state_dict(), os.path.join(workdir, "bench", "latest_net_G.pth"))
    del fresh
    model = _released_model(TestOptions, flags + ["--which_epoch=latest", "--offline_loading_mask=1"])
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mask = torch.zeros(1, 3, size, size)
    mask[:, :, size // 4: size // 2, size // 4: 3 * size // 4] = 1   # inpaintjax.bench's hole
    data = {"A": image, "B": image, "M": mask, "A_paths": ["x"]}

    def set_input():
        model.set_input({k: (v.clone() if torch.is_tensor(v) else v) for k, v in data.items()})

    def test_py():
        set_input()
        model.test()

    def generator():
        with torch.no_grad():
            model.netG(model.real_A)

    test_py_record = _timed(test_py, pause, repeats)
    set_input()
    return {"kind": "infer", "family": "shiftnet", "framework": "released", "batch": 1, "size": size,
            **_timed(generator, pause, repeats), "test_py_median_s": test_py_record["median_s"],
            "test_py_times_s": test_py_record["times_s"], "torch": torch.__version__,
            "torchvision_stand_in": stand_in,
            "parameters": {"generator": sum(p.numel() for p in model.netG.parameters())}}


RELEASED = {"train": released_train, "infer": released_infer}


def _run(cmd: list[str], kind: str) -> dict:
    """The last JSON record of `kind` that `cmd` prints."""
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("kind") == kind:
                return rec
    raise RuntimeError(f"no timing record in the output of {' '.join(cmd)}:\n{out}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkout", required=True, help="a checkout of Zhaoyi-Yan/Shift-Net_pytorch")
    p.add_argument("--case", choices=sorted(RELEASED), default="train",
                   help="train: the released train.py's iteration at 4x256x256; infer: batch 1 at "
                        "512x512, the generator's forward (and test.py's per-image call)")
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
        print(json.dumps(RELEASED[a.case](a.checkout, a.pause, 3, a.workdir)))
        return
    import tempfile
    workdir = tempfile.mkdtemp(prefix="released_shiftnet_")  # the released code writes opt.txt
    cmds = {"inpaintjax": [sys.executable, "-m", "inpaintjax.bench", "--family", "shiftnet",
                           "--cases", a.case, "--xla-cpu", "auto", "--pause", str(a.pause)],
            "released": [sys.executable, os.path.abspath(__file__), "--checkout", a.checkout,
                         "--case", a.case, "--pause", str(a.pause), "--released-child",
                         "--workdir", workdir]}
    records = {"inpaintjax": [], "released": []}
    for r in range(a.rounds):
        for name in (("inpaintjax", "released") if r % 2 == 0 else ("released", "inpaintjax")):
            rec = dict(_run(cmds[name], a.case), round=r, side=name)
            records[name].append(rec)
            print(json.dumps(rec), flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(rec) + "\n")
    medians = {name: [r["median_s"] for r in recs] for name, recs in records.items()}
    ratios = [rel / jax for rel, jax in zip(medians["released"], medians["inpaintjax"], strict=True)]
    summary = {"kind": "released_shiftnet_summary", "case": a.case, "rounds": a.rounds, "pause_s": a.pause,
               "inpaintjax_median_s": statistics.median(medians["inpaintjax"]),
               "released_median_s": statistics.median(medians["released"]),
               "per_round": [round(x, 3) for x in ratios], "speedup": statistics.median(ratios)}
    if a.case == "infer":  # the released test.py's per-image call, beside the generator alone
        summary["released_test_py_median_s"] = statistics.median(
            r["test_py_median_s"] for r in records["released"])
    print(json.dumps(summary))
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
