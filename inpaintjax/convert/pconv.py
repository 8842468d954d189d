"""PConv U-Net checkpoints of naoto0804/pytorch-inpainting-with-partial-conv -> Flax variables.

    variables = from_torch('1000000.pth')           # {'params', 'batch_stats'} for PConvUNet
    net = PConvUNet(levels=levels_of(variables))
    output, out_mask = net.apply(variables, image_normalised, hole)

File format (`util/io.py::save_ckpt`): `torch.save({'n_iter': int, 'model': state_dict,
'optimizer': ...})`; a bare state dict, or one saved from `nn.DataParallel` (keys `module.*`),
loads too. It is read with torch's weights-only loader (no code from the file runs). Keys
(`net.py`): `{enc,dec}_{i}.conv.input_conv.weight` [out, in, k, k], `dec_1.conv.input_conv.bias`,
`{enc,dec}_{i}.bn.{weight,bias,running_mean,running_var,num_batches_tracked}`, and
`*.conv.mask_conv.weight`, the all-ones window counter (checked, not kept).

Window scaling: that implementation computes (conv(X*M) - b) / sum(M) + b, NVIDIA's layer (ours)
(conv(X*M) - b) * window / sum(M) + b with window = in_channels * k * k, so each kernel is divided
by its window size on the way in (and multiplied on the way out, `to_state_dict`).
"""

from __future__ import annotations

import os
import re
import zipfile
from collections import OrderedDict
from typing import Any, Mapping

import numpy as np

from inpaintjax.models.pconv import encoder_kernels, encoder_widths
from inpaintjax.torch_io import load_torch_file

_KEY = re.compile(r"^(enc|dec)_(\d+)\.(conv\.input_conv\.weight|conv\.input_conv\.bias|"
                  r"conv\.mask_conv\.weight|bn\.weight|bn\.bias|bn\.running_mean|bn\.running_var|"
                  r"bn\.num_batches_tracked)$")
_MARKER = b"enc_1.conv.input_conv.weight"
MIN_LEVELS = 4  # PConvUNet's least depth: enc_1 .. enc_3 have their own kernels and widths


class PConvCheckpointError(ValueError):
    """The file is not a PConv U-Net checkpoint in the reimplementation's format."""


def _np(v) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def _strip(sd: Mapping[str, Any]) -> dict[str, Any]:
    keys = list(sd)
    if keys and all(str(k).startswith("module.") for k in keys):
        return {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def levels_of_state_dict(sd: Mapping[str, Any], where: str = "state dict") -> int:
    encs = sorted({int(m.group(2)) for k in sd if (m := _KEY.match(k)) and m.group(1) == "enc"})
    if not encs or encs != list(range(1, len(encs) + 1)):
        raise PConvCheckpointError(
            f"{where}: no PConv U-Net layers enc_1 .. enc_N found (keys like {list(sd)[:3]}); "
            f"expected the 'model' state dict of naoto0804/pytorch-inpainting-with-partial-conv")
    return len(encs)


def _layer_shapes(sd: Mapping[str, Any], levels: int, where: str) -> dict[str, tuple]:
    """{layer name: [out, in, k, k]} of PConvUNet's `levels` levels at the width of the file's
    enc_1 (its output channels; the other widths scale with it), encoder then decoder."""
    first = tuple(np.shape(sd.get("enc_1.conv.input_conv.weight")))
    if len(first) != 4:
        raise PConvCheckpointError(f"{where}: enc_1.conv.input_conv.weight is missing or not "
                                   f"[out, in, k, k] (shape {first})")
    width, channels = first[:2]
    widths, kernels = encoder_widths(levels, width), encoder_kernels(levels)
    shapes = {}
    for i in range(levels):
        cin = channels if i == 0 else widths[i - 1]
        shapes[f"enc_{i + 1}"] = (widths[i], cin, kernels[i], kernels[i])
    skips, below = [channels] + widths, widths[-1]
    for i in range(levels, 0, -1):
        cout = channels if i == 1 else skips[i - 1]
        shapes[f"dec_{i}"] = (cout, below + skips[i - 1], 3, 3)
        below = cout
    return shapes


def from_state_dict(sd: Mapping[str, Any], where: str = "state dict") -> dict:
    """A PConvUNet state dict (tensors or numpy) -> {'params', 'batch_stats'} numpy variables."""
    sd = _strip(sd)
    levels = levels_of_state_dict(sd, where)
    unknown = [k for k in sd if not _KEY.match(k) or int(_KEY.match(k).group(2)) > levels]
    if unknown:
        raise PConvCheckpointError(f"{where}: unexpected keys {unknown[:5]} for a {levels}-level PConv U-Net")
    if levels < MIN_LEVELS:
        raise PConvCheckpointError(
            f"{where}: a {levels}-level PConv U-Net (enc_1 .. enc_{levels}); PConvUNet needs at least "
            f"{MIN_LEVELS} levels (the released 256x256 model has 7)")
    # net.py: BatchNorm in every layer but enc_1 and dec_1; a bias in dec_1 only. An entry the
    # network does not have would be read and then never used: refused, named
    extra = [k for k in sd if (k.startswith(("enc_1.bn.", "dec_1.bn.")) or (
        ".conv.input_conv.bias" in k and not k.startswith("dec_1.")))]
    if extra:
        raise PConvCheckpointError(
            f"{where}: {extra[:3]} are not in PConvUNet (no BatchNorm in enc_1 and dec_1, a bias in "
            f"dec_1 only, as net.py builds it); this is another network")
    shapes = _layer_shapes(sd, levels, where)
    params, stats = {}, {}
    for name, shape in shapes.items():
        wkey = f"{name}.conv.input_conv.weight"
        needed = [wkey] + ([f"{name}.conv.input_conv.bias"] if name == "dec_1" else [])
        if name not in ("enc_1", "dec_1"):
            needed += [f"{name}.bn.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
        for key in needed:
            if key not in sd:
                raise PConvCheckpointError(f"{where}: missing {key} (a {levels}-level U-Net has it)")
            got = tuple(np.shape(sd[key]))  # a torch.Size or a NumPy shape: no copy
            want = shape if key == wkey else shape[:1]
            if got != want:
                raise PConvCheckpointError(
                    f"{where}: {key} has shape {got}, a {levels}-level PConvUNet of width "
                    f"{shapes['enc_1'][0]} (enc_1's output channels) needs {want}")
        w = _np(sd[wkey]).astype(np.float32)
        cout, cin, kh, kw = w.shape
        mkey = f"{name}.conv.mask_conv.weight"
        if mkey in sd:
            mw = _np(sd[mkey])
            if mw.shape != w.shape or not np.all(mw == 1):
                raise PConvCheckpointError(
                    f"{where}: {mkey} is not the all-ones window counter of shape {w.shape}; "
                    f"this is not the reimplementation's PartialConv")
        conv = {"kernel": np.transpose(w, (2, 3, 1, 0)) / np.float32(cin * kh * kw)}
        bkey = f"{name}.conv.input_conv.bias"
        if bkey in sd:
            conv["bias"] = _np(sd[bkey]).astype(np.float32)
        params[name] = {"conv": {"conv": conv}}
        if f"{name}.bn.weight" in sd:
            params[name]["bn"] = {"scale": _np(sd[f"{name}.bn.weight"]).astype(np.float32),
                                  "bias": _np(sd[f"{name}.bn.bias"]).astype(np.float32)}
            stats[name] = {"bn": {"mean": _np(sd[f"{name}.bn.running_mean"]).astype(np.float32),
                                  "var": _np(sd[f"{name}.bn.running_var"]).astype(np.float32)}}
    return {"params": params, "batch_stats": stats}


def levels_of(variables: Mapping[str, Any]) -> int:
    """The U-Net depth (7 or 8 for the published layouts) of converted or trained variables."""
    return len([k for k in variables["params"] if str(k).startswith("enc_")])


def to_state_dict(variables: Mapping[str, Any], num_batches_tracked: int = 0) -> "OrderedDict[str, np.ndarray]":
    """Flax PConvUNet variables -> the reimplementation's state dict (numpy), the inverse of
    `from_state_dict` (with all-ones `mask_conv` weights restored)."""
    params, stats = variables["params"], variables.get("batch_stats", {})
    levels = levels_of(variables)
    sd = OrderedDict()
    names = [f"enc_{i}" for i in range(1, levels + 1)] + [f"dec_{i}" for i in range(levels, 0, -1)]
    for name in names:
        conv = params[name]["conv"]["conv"]
        k = np.asarray(conv["kernel"], np.float32)
        kh, kw, cin, _ = k.shape
        w = np.transpose(k, (3, 2, 0, 1)) * np.float32(cin * kh * kw)
        sd[f"{name}.conv.input_conv.weight"] = w
        if "bias" in conv:
            sd[f"{name}.conv.input_conv.bias"] = np.asarray(conv["bias"], np.float32)
        sd[f"{name}.conv.mask_conv.weight"] = np.ones_like(w)
        if "bn" in params[name]:
            sd[f"{name}.bn.weight"] = np.asarray(params[name]["bn"]["scale"], np.float32)
            sd[f"{name}.bn.bias"] = np.asarray(params[name]["bn"]["bias"], np.float32)
            sd[f"{name}.bn.running_mean"] = np.asarray(stats[name]["bn"]["mean"], np.float32)
            sd[f"{name}.bn.running_var"] = np.asarray(stats[name]["bn"]["var"], np.float32)
            sd[f"{name}.bn.num_batches_tracked"] = np.asarray(num_batches_tracked, np.int64)
    return sd


def read_checkpoint(path: str) -> tuple[dict, int | None]:
    """(state dict, n_iter or None) of a reimplementation checkpoint, read weights-only."""
    if not os.path.isfile(path):
        raise PConvCheckpointError(
            f"PConv checkpoint {path!r} not found; the released one is 1000000.pth from "
            f"https://github.com/naoto0804/pytorch-inpainting-with-partial-conv (README, releases)")
    obj = load_torch_file(path, PConvCheckpointError, "{'n_iter', 'model': state_dict} as naoto0804's "
                          "training script saves it (e.g. 1000000.pth)")
    if not isinstance(obj, Mapping):
        raise PConvCheckpointError(f"{path}: holds a {type(obj).__name__}, expected {{'n_iter', 'model': state_dict}}")
    n_iter = None
    if "model" in obj and isinstance(obj["model"], Mapping):
        n_iter = obj.get("n_iter")
        obj = obj["model"]
    return dict(obj), (int(n_iter) if n_iter is not None else None)


def from_torch(path: str) -> dict:
    """The reimplementation's checkpoint file (e.g. `1000000.pth`) -> {'params', 'batch_stats'}."""
    sd, _ = read_checkpoint(path)
    return from_state_dict(sd, where=path)


def detect(path: str) -> bool:
    """Cheap check that `path` is a PyTorch file holding a PConv U-Net (its first layer's key is in
    the pickle: the zip archive's data.pkl, or the head of a legacy-format file)."""
    if not os.path.isfile(path):
        return False
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                pkl = [n for n in z.namelist() if n.endswith("data.pkl")]
                return bool(pkl) and _MARKER in z.read(pkl[0])
        with open(path, "rb") as f:
            return _MARKER in f.read(1 << 20)
    except (OSError, zipfile.BadZipFile):
        return False
