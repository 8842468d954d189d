"""GLCIC completion-network weights -> Flax variables of `inpaintjax.models.glcic.CompletionNetwork`.

Two formats, told apart by their first bytes (`detect_format`):

* The released Torch7 files of satoshiiizuka/siggraph2017_inpainting (`completionnet_places2.t7`,
  `completionnet_places2_freeform.t7`, `completionnet_celeba.t7`; CC BY-NC-SA 4.0, so they are
  never shipped here: the user names the file). Each holds the table {model = nn.Sequential of 50
  modules (16 x [convolution, SpatialBatchNormalization, ReLU], convolution, Sigmoid), mean = the
  RGB mean pixel}. Read by `inpaintjax.convert.torch7` (no Lua). Layer shapes, strides, padding,
  dilation and BatchNorm eps are read from the modules' fields and checked against the layer
  table; convolutions may be stored as SpatialConvolution or SpatialDilatedConvolution (the
  release uses the latter for its four undilated middle layers).
* The PyTorch conversion of those files people use: an `nn.Sequential` state dict (keys
  `0.weight` ... `48.bias`, BatchNorm at 1, 4, ..., 46), saved alone (the mean is then the
  Places2 model's, `PLACES2_MEAN`, with a logged warning) or as {'model': state_dict, 'mean':
  [3 floats]}. Read with torch's weights-only loader (needs PyTorch).

Both give (`GLCICWeights`): variables {'params': {'conv{i}': {'kernel', 'bias'}, 'bn{i}': {'scale',
'bias'}}, 'batch_stats': {'bn{i}': {'mean', 'var'}}}, the width c, the BatchNorm eps and the mean.
Kernels: convolution (out, in, kH, kW) -> (kH, kW, in, out); transposed convolution (in, out,
kH, kW) -> (kH, kW, in, out) (see `TorchFullConv`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import zipfile
from typing import Any, Mapping

import numpy as np

from inpaintjax.convert import torch7
from inpaintjax.models.glcic import LAYERS
from inpaintjax.torch_io import load_torch_file

log = logging.getLogger(__name__)

#: the mean pixel of completionnet_places2.t7 as printed to 4 digits by the PyTorch conversions
#: (liruilong940607/inpainting.siggraph2017.tf `src/convertor.ipynb`); the .t7 files carry their own
PLACES2_MEAN = (0.4560, 0.4472, 0.4155)
NUM_MODULES = 3 * (len(LAYERS) - 1) + 2
_CONV_CLASSES = {"c": ("nn.SpatialConvolution", "nn.SpatialDilatedConvolution",
                       "cudnn.SpatialConvolution", "nn.SpatialConvolutionMM"),
                 "t": ("nn.SpatialFullConvolution", "cudnn.SpatialFullConvolution")}
_BN_CLASSES = ("nn.SpatialBatchNormalization", "cudnn.SpatialBatchNormalization")
_SD_MARKER = b"48.weight"


def _default_mean(where: str) -> tuple[float, float, float]:
    log.warning("%s records no mean pixel; using the Places2 model's %s (subtracted from the image, "
                "and what the hole holds). For another model's (e.g. the CelebA one) save the file as "
                "{'model': state_dict, 'mean': [r, g, b]}, or set config.model.mean on a config "
                "built for these weights (docs/glcic.md, 'Settings of converted weights')",
                where, PLACES2_MEAN)
    return PLACES2_MEAN


class GLCICWeightsError(ValueError):
    """The file is not a GLCIC completion network in a format this module reads."""


@dataclasses.dataclass
class GLCICWeights:
    variables: dict
    width: int
    bn_eps: float
    mean: tuple[float, float, float]


def _f32(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, np.float32)


def _expected(i: int, width: int) -> tuple[str, int, int, int, int]:
    """(kind, k, stride, dilation, out channels) of conv{i} for width c."""
    kind, k, s, d, mult = LAYERS[i - 1]
    return kind, k, s, d, 3 if i == len(LAYERS) else int(width * mult)


def _kernel(kind: str, w: np.ndarray, cin: int, cout: int, k: int, where: str) -> np.ndarray:
    shape = (cin, cout, k, k) if kind == "t" else (cout, cin, k, k)
    if w.size != int(np.prod(shape)):
        raise GLCICWeightsError(f"{where}: weight of shape {w.shape}, expected {shape}")
    w = w.reshape(shape)  # old Torch stored SpatialConvolution(MM) weights as 2-D
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0) if kind == "c" else w.transpose(2, 3, 0, 1))


def _vector(v, n: int, width: int, where: str) -> np.ndarray:
    """A per-channel vector of n values (any stored shape holding n values, e.g. Torch's [n])."""
    v = _f32(v)
    if v.size != n:
        raise GLCICWeightsError(f"{where} has {v.size} values, expected {n} (one per output channel "
                                f"of the layer at width c = {width}, read from conv1): the file's "
                                "layers do not form the released completion network's layer table")
    return v.reshape(n)


def _assemble(convs: list, bns: list, width: int, where: str) -> dict:
    """convs: [(weight as stored, bias)] x 17, bns: [(scale, bias, mean, var)] x 16 -> variables."""
    params, stats = {}, {}
    cin = 4
    for i, (w, b) in enumerate(convs, start=1):
        kind, k, _, _, cout = _expected(i, width)
        params[f"conv{i}"] = {"kernel": _kernel(kind, _f32(w), cin, cout, k, f"{where} conv{i}"),
                              "bias": _vector(b, cout, width, f"{where} conv{i}: bias")}
        cin = cout
        if i <= len(bns):
            scale, bias, mean, var = (_vector(v, cout, width, f"{where} bn{i}: {name}") for v, name in
                                      zip(bns[i - 1], ("weight", "bias", "running_mean", "running_var")))
            params[f"bn{i}"] = {"scale": scale, "bias": bias}
            stats[f"bn{i}"] = {"mean": mean, "var": var}
    return {"params": params, "batch_stats": stats}


# -- Torch7 ---------------------------------------------------------------------------------------
def _module_list(seq: Any, where: str) -> list:
    if not isinstance(seq, torch7.TorchObject) or seq.typename != "nn.Sequential":
        got = seq.typename if isinstance(seq, torch7.TorchObject) else type(seq).__name__
        raise GLCICWeightsError(f"{where}: 'model' is {got}, expected the completion network's "
                                "nn.Sequential")
    mods = seq.get("modules")
    if not isinstance(mods, dict) or sorted(mods) != list(range(1, len(mods) + 1)):
        raise GLCICWeightsError(f"{where}: nn.Sequential without a modules list")
    mods = [mods[j] for j in range(1, len(mods) + 1)]
    if len(mods) != NUM_MODULES:
        raise GLCICWeightsError(f"{where}: the nn.Sequential has {len(mods)} modules, the "
                                f"completion network {NUM_MODULES}")
    return mods


def _field(m, name: str, where: str):
    v = m.get(name)
    if v is None:
        raise GLCICWeightsError(f"{where}: {m.typename} has no field {name!r}")
    return v


def from_t7_object(obj: Any, where: str = "<t7>") -> GLCICWeights:
    """The object `torch7.load` read from a completionnet_*.t7 file -> GLCICWeights."""
    if not isinstance(obj, dict) or "model" not in obj:
        raise GLCICWeightsError(f"{where}: expected the table {{model = nn.Sequential, mean = ...}} "
                                f"of satoshiiizuka/siggraph2017_inpainting, got "
                                f"{sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__}")
    mods = _module_list(obj["model"], where)
    width = int(_field(mods[0], "nOutputPlane", f"{where} module 0"))
    convs, bns, eps = [], [], set()
    for i in range(1, len(LAYERS) + 1):
        j = 3 * (i - 1)
        m, at = mods[j], f"{where} module {j} (conv{i})"
        kind, k, s, d, cout = _expected(i, width)
        if not isinstance(m, torch7.TorchObject) or m.typename not in _CONV_CLASSES[kind]:
            raise GLCICWeightsError(f"{at}: {getattr(m, 'typename', type(m).__name__)}, expected "
                                    f"{' or '.join(_CONV_CLASSES[kind])}")
        pad = 1 if kind == "t" else d * (k - 1) // 2
        found = {"nOutputPlane": _field(m, "nOutputPlane", at), "kW": _field(m, "kW", at),
                 "kH": _field(m, "kH", at), "dW": _field(m, "dW", at), "dH": _field(m, "dH", at),
                 "padW": m.get("padW", 0), "padH": m.get("padH", m.get("padW", 0)),
                 "dilationW": m.get("dilationW", 1), "dilationH": m.get("dilationH", 1)}
        want = {"nOutputPlane": cout, "kW": k, "kH": k, "dW": s, "dH": s, "padW": pad,
                "padH": pad, "dilationW": d, "dilationH": d}
        if kind == "t":
            found.update(adjW=m.get("adjW", 0), adjH=m.get("adjH", 0))
            want.update(adjW=0, adjH=0)
        bad = {f: (found[f], want[f]) for f in want if int(found[f]) != want[f]}
        if bad:
            raise GLCICWeightsError(f"{at}: {', '.join(f'{f}={a} (expected {b})' for f, (a, b) in bad.items())}")
        convs.append((_field(m, "weight", at), _field(m, "bias", at)))
        if i == len(LAYERS):
            break
        bn, at = mods[j + 1], f"{where} module {j + 1} (bn{i})"
        if not isinstance(bn, torch7.TorchObject) or bn.typename not in _BN_CLASSES:
            raise GLCICWeightsError(f"{at}: {getattr(bn, 'typename', type(bn).__name__)}, expected "
                                    "nn.SpatialBatchNormalization")
        e = float(bn.get("eps", 1e-5))
        eps.add(e)
        mean = _field(bn, "running_mean", at)
        if bn.get("running_var") is not None:
            var = np.asarray(bn.get("running_var"), np.float64)
        elif bn.get("running_std") is not None:
            # nn before 2016 kept the inverse standard deviation 1 / sqrt(var + eps)
            var = 1.0 / np.square(np.asarray(bn.get("running_std"), np.float64)) - e
        else:
            raise GLCICWeightsError(f"{at}: neither running_var nor running_std")
        scale = bn.get("weight") if bn.get("weight") is not None else np.ones(cout, np.float32)
        bias = bn.get("bias") if bn.get("bias") is not None else np.zeros(cout, np.float32)
        bns.append((scale, bias, mean, var))
        relu = mods[j + 2]
        if getattr(relu, "typename", None) not in ("nn.ReLU", "cudnn.ReLU"):
            raise GLCICWeightsError(f"{where} module {j + 2}: {getattr(relu, 'typename', relu)}, "
                                    "expected nn.ReLU")
    last = mods[-1]
    if getattr(last, "typename", None) not in ("nn.Sigmoid", "cudnn.Sigmoid"):
        raise GLCICWeightsError(f"{where} module {NUM_MODULES - 1}: "
                                f"{getattr(last, 'typename', last)}, expected nn.Sigmoid")
    if len(eps) > 1:
        raise GLCICWeightsError(f"{where}: BatchNorm eps differs between layers ({sorted(eps)}); "
                                "the network takes one")
    raw_mean = obj.get("mean")
    if raw_mean is None:
        mean = _default_mean(where)
    else:
        vals = list(raw_mean.values()) if isinstance(raw_mean, dict) else list(np.ravel(raw_mean))
        if len(vals) != 3:
            raise GLCICWeightsError(f"{where}: 'mean' has {len(vals)} values, expected 3 (RGB)")
        mean = tuple(float(v) for v in vals)
    return GLCICWeights(_assemble(convs, bns, width, where), width, eps.pop() if eps else 1e-5,
                        mean)


def from_t7(path: str) -> GLCICWeights:
    """A released completionnet_*.t7 file -> GLCICWeights."""
    if not os.path.isfile(path):
        raise GLCICWeightsError(f"GLCIC weights {path!r} not found; the released files "
                                "completionnet_places2.t7 etc. come from satoshiiizuka/"
                                "siggraph2017_inpainting (download_model.sh)")
    return from_t7_object(torch7.load(path), path)


# -- PyTorch ---------------------------------------------------------------------------------------
def from_state_dict(sd: Mapping[str, Any], mean=None, where: str = "state dict") -> GLCICWeights:
    """An `nn.Sequential` state dict (`0.weight` ... `48.bias`) -> GLCICWeights; `mean` defaults
    to PLACES2_MEAN (with a logged warning that says so)."""
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    expected = set()
    for i in range(1, len(LAYERS) + 1):
        j = 3 * (i - 1)
        expected |= {f"{j}.weight", f"{j}.bias"}
        if i < len(LAYERS):
            expected |= {f"{j + 1}.{n}" for n in ("weight", "bias", "running_mean", "running_var")}
    optional = {f"{3 * (i - 1) + 1}.num_batches_tracked" for i in range(1, len(LAYERS))}
    missing, unknown = sorted(expected - set(sd)), sorted(set(sd) - expected - optional)
    if missing or unknown:
        raise GLCICWeightsError(f"{where}: not the GLCIC completion network's nn.Sequential state "
                                f"dict (missing {missing[:4]}, unexpected {unknown[:4]})")
    width = int(_f32(sd["0.weight"]).shape[0])
    convs = [(sd[f"{3 * (i - 1)}.weight"], sd[f"{3 * (i - 1)}.bias"]) for i in range(1, len(LAYERS) + 1)]
    bns = [tuple(sd[f"{3 * (i - 1) + 1}.{n}"] for n in ("weight", "bias", "running_mean", "running_var"))
           for i in range(1, len(LAYERS))]
    mean = _default_mean(where) if mean is None else tuple(float(v) for v in np.ravel(_f32(mean)))
    if len(mean) != 3:
        raise GLCICWeightsError(f"{where}: 'mean' has {len(mean)} values, expected 3 (RGB)")
    # PyTorch's BatchNorm2d default; the conversions do not carry the eps
    return GLCICWeights(_assemble(convs, bns, width, where), width, 1e-5, mean)


def from_torch(path: str) -> GLCICWeights:
    """A .pth file holding the state dict, or {'model': state_dict, 'mean': [3 floats]}."""
    obj = load_torch_file(path, GLCICWeightsError, "the completion network's state dict (0.weight ... "
                          "48.bias), alone or as {'model': state_dict, 'mean': [3 floats]}")
    if not isinstance(obj, Mapping):
        raise GLCICWeightsError(f"{path}: holds a {type(obj).__name__}, expected a state dict")
    if "model" in obj and isinstance(obj["model"], Mapping):
        return from_state_dict(obj["model"], obj.get("mean"), where=path)
    return from_state_dict(obj, where=path)


# -- detection --------------------------------------------------------------------------------------
def detect_format(path: str) -> str | None:
    """'t7', 'torch' or None, from the file's first bytes (cheap)."""
    if not os.path.isfile(path):
        return None
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                pkl = [n for n in z.namelist() if n.endswith("data.pkl")]
                return "torch" if pkl and _SD_MARKER in z.read(pkl[0]) else None
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except (OSError, zipfile.BadZipFile):
        return None
    if torch7.looks_like_torch7(path) and b"nn.Sequential" in head:
        return "t7"
    if head[:2] == b"\x80\x02" and _SD_MARKER in head:  # PyTorch's legacy (pre-zip) format
        return "torch"
    return None


def load(path: str) -> GLCICWeights:
    """Either format, detected from the file."""
    fmt = detect_format(path)
    if fmt == "t7":
        return from_t7(path)
    if fmt == "torch":
        return from_torch(path)
    raise GLCICWeightsError(f"{path}: neither a completionnet_*.t7 file nor a PyTorch state dict "
                            "of the GLCIC completion network")
