"""Shift-Net generator weights of Zhaoyi-Yan/Shift-Net_pytorch -> Flax variables.

    variables, info = from_torch('face_center_mask.pth')   # {'params'} for ShiftNetGenerator
    net = ShiftNetGenerator(num_downs=info['num_downs'], ngf=info['ngf'], shift=info['shift'])

The released generators (`face_center_mask.pth`, `paris_random_mask_20_30.pth`, ...) are bare
state dicts (`net.module.cpu().state_dict()`), most saved by PyTorch 1.1-1.4 in the legacy
(non-zip) format; newer saves are zip archives. Both are read with torch's weights-only loader
(no code from the file runs). A dict saved from `nn.DataParallel` (keys `module.*`) loads too.

Layout (`models/modules/shift_unet.py`, pix2pix nesting): block 1 is `model.model.{0 conv,
3 transposed conv}`; block k+1 is entry 1 of block 1's Sequential and entry 3 of every other
block's, so block k's prefix is `model.model.` + `1.model.` + `3.model.` * (k - 2); blocks 2..n-1
hold `{1 conv, 2 InstanceNorm, 5 transposed conv, 6 IN}`, the shift block (k = 3) `{1, 2, 7, 8}`
(`res_unet_shift_triple` adds `6.res_net.{0,3}`), the innermost `{1 conv, 3 transposed conv,
4 IN}`. Conv weights are [out, in, kh, kw] (-> kernel [kh, kw, in, out]); transposed conv weights
[in, out, kh, kw] (-> [kh, kw, in, out], the scatter form `SpectralConv` uses); InstanceNorm
`weight`/`bias` -> `scale`/`bias`. Depth, width, input channels and variant come from the keys.

`face_unet_shift_triple` files (`face_flip_random.pth`: the face model with flipped-image
matching, `shift='flip'`) hold the same 8-level network written out flat: `e{k}_c` -> `down_k`
(`e3_c` is 6x6), `e{k}_norm` -> `down_norm_k`, `d{j}_dc` -> `up_{9-j}`, `d{j}_norm` -> `up_norm_{9-j}`.

`patch_soft_unet_shift_triple` files have exactly the keys of `unet_shift_triple` (the soft shift
has no parameters), so the keys cannot tell them apart: pass `shift='soft'` to `from_torch` /
`from_state_dict` (and give the family the model's `fuse`, which the file does not record either).
Without `shift`, such keys load as 'hard' with a logged warning that says so.

Every converted parameter's shape is checked against the generator the keys describe (depth,
width, input channels, variant), so a file that does not fit fails here, naming the key.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections import OrderedDict
from typing import Any, Mapping, Optional

import numpy as np

from inpaintjax.torch_io import load_torch_file

log = logging.getLogger(__name__)

SHIFTS = ("hard", "res", "soft", "flip")   # as inpaintjax.models.shiftnet.SHIFTS; detect() imports no JAX
_MARKER = b"model.model.1.model.3.model."
_FACE_MARKER = b"e3_c.weight"


class ShiftNetCheckpointError(ValueError):
    """The file is not a Shift-Net generator state dict this converter reads."""


def block_prefix(k: int) -> str:
    """State-dict prefix of U-Net block k (1 = outermost)."""
    p = "model.model."
    for j in range(1, k):
        p += ("1." if j == 1 else "3.") + "model."
    return p


def _np(v) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


FACE_LEVELS = 8   # FaceUnetGenerator is written out for 8 levels (256x256 inputs)


def _face_layers():
    """[(our module name, state-dict prefix, kind)] of the flat face generator."""
    out = []
    for k in range(1, FACE_LEVELS + 1):
        out.append((f"down_{k}", f"e{k}_c", "conv"))
        if 2 <= k < FACE_LEVELS:
            out.append((f"down_norm_{k}", f"e{k}_norm", "norm"))
    for j in range(1, FACE_LEVELS + 1):
        out.append((f"up_{FACE_LEVELS + 1 - j}", f"d{j}_dc", "convT"))
        if j < FACE_LEVELS:
            out.append((f"up_norm_{FACE_LEVELS + 1 - j}", f"d{j}_norm", "norm"))
    return out


def _layers(num_downs: int, shift: str):
    """[(our module name, state-dict prefix, kind)] kind in conv | convT | norm."""
    if shift == "flip":
        return _face_layers()
    out = [("down_1", block_prefix(1) + "0", "conv"), ("up_1", block_prefix(1) + "3", "convT")]
    for k in range(2, num_downs + 1):
        p = block_prefix(k)
        out.append((f"down_{k}", p + "1", "conv"))
        if k == num_downs:
            out += [(f"up_{k}", p + "3", "convT"), (f"up_norm_{k}", p + "4", "norm")]
        elif k == 3:
            out.append((f"down_norm_{k}", p + "2", "norm"))
            if shift == "res":
                out += [("res_conv_1", p + "6.res_net.0", "conv"), ("res_conv_2", p + "6.res_net.3", "conv")]
            out += [(f"up_{k}", p + "7", "convT"), (f"up_norm_{k}", p + "8", "norm")]
        else:
            out += [(f"down_norm_{k}", p + "2", "norm"), (f"up_{k}", p + "5", "convT"),
                    (f"up_norm_{k}", p + "6", "norm")]
    return out


def _is_face(keys) -> bool:
    return any(k.startswith("e1_c.") for k in keys) and any(k.startswith("d8_dc.") for k in keys)


def describe(sd: Mapping[str, Any], where: str = "state dict", shift: Optional[str] = None) -> dict:
    """{'num_downs', 'ngf', 'in_channels', 'out_channels', 'shift'} of a generator state dict.
    `shift` None detects the variant from the keys ('hard', 'res' or 'flip'); 'soft' (whose files
    have the 'hard' keys) must be named."""
    keys = set(sd)
    if shift is not None and shift not in SHIFTS:
        raise ShiftNetCheckpointError(f"{where}: shift must be one of {SHIFTS} or None (detect), got {shift!r}")
    if _is_face(keys):
        if shift not in (None, "flip"):
            raise ShiftNetCheckpointError(
                f"{where}: keys e1_c ... d8_dc are the face model (`face_unet_shift_triple`, "
                f"shift='flip'), not shift={shift!r}")
        w0 = _np(sd["e1_c.weight"])
        if "e3_c.weight" not in keys or _np(sd["e3_c.weight"]).shape[-1] != 6:
            raise ShiftNetCheckpointError(f"{where}: a face generator's e3_c.weight must be 6x6, got "
                                          f"{None if 'e3_c.weight' not in keys else _np(sd['e3_c.weight']).shape}")
        return {"num_downs": FACE_LEVELS, "ngf": int(w0.shape[0]), "in_channels": int(w0.shape[1]),
                "out_channels": int(_np(sd["d8_dc.weight"]).shape[1]), "shift": "flip"}
    first = block_prefix(1) + "0.weight"
    if first not in keys:
        raise ShiftNetCheckpointError(
            f"{where}: no {first} (keys like {sorted(keys)[:3]}); expected a Shift-Net generator state dict "
            f"of Zhaoyi-Yan/Shift-Net_pytorch (e.g. face_center_mask.pth)")
    n = 1
    while block_prefix(n + 1) + "1.weight" in keys:
        n += 1
    p3 = block_prefix(3)
    if n < 5 or p3 + "7.weight" not in keys:
        raise ShiftNetCheckpointError(
            f"{where}: a {n}-level U-Net without the shift block's up-convolution {p3}7.weight; this looks "
            f"like a plain pix2pix `unet_256`, not Shift-Net's `unet_shift_triple`")
    w0 = _np(sd[first])
    out_channels = int(_np(sd[block_prefix(1) + "3.weight"]).shape[1])
    found = "res" if p3 + "6.res_net.0.weight" in keys else "hard"
    if shift is None:
        shift = found
    elif (shift == "res") != (found == "res") or shift == "flip":
        raise ShiftNetCheckpointError(
            f"{where}: its keys are those of shift={found!r} "
            f"({'with' if found == 'res' else 'without'} {p3}6.res_net.*), which cannot be loaded as "
            f"shift={shift!r}" + ("; 'soft' files have the 'hard' keys" if shift == "soft" else ""))
    return {"num_downs": n, "ngf": int(w0.shape[0]), "in_channels": int(w0.shape[1]),
            "out_channels": out_channels, "shift": shift}


def _strip(sd: Mapping[str, Any]) -> dict:
    keys = list(sd)
    if keys and all(str(k).startswith("module.") for k in keys):
        return {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def _torch_shape(shape, kind: str, leaf: str) -> tuple:
    """A parameter's shape in the state dict's layout: conv kernels [kh, kw, in, out] are stored
    [out, in, kh, kw], transposed convolutions' [in, out, kh, kw]; vectors as they are."""
    shape = tuple(int(d) for d in shape)
    if leaf != "kernel" or len(shape) != 4:
        return shape
    kh, kw, i, o = shape
    return (o, i, kh, kw) if kind == "conv" else (i, o, kh, kw)


def _check_shapes(params: dict, info: dict, where: str) -> None:
    """Every converted parameter against the shape `ShiftNetGenerator` gives it for `info` (found
    with jax.eval_shape: no computation); the error names the state-dict key and both shapes in
    the file's layout."""
    import jax
    import jax.numpy as jnp

    from inpaintjax.models.shiftnet import ShiftNetGenerator
    n, shift = info["num_downs"], info["shift"]
    net = ShiftNetGenerator(num_downs=n, ngf=info["ngf"], out_channels=info["out_channels"], shift=shift)
    size = 2 ** n
    want = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, size, size, info["in_channels"])),
                                           jnp.zeros((1, size, size, 1))))["params"]
    for name, prefix, kind in _layers(n, shift):
        for leaf in (("scale", "bias") if kind == "norm" else ("kernel", "bias")):
            got, exp = params[name][leaf].shape, want[name][leaf].shape
            if tuple(got) != tuple(exp):
                key = f"{prefix}.{'bias' if leaf == 'bias' else 'weight'}"
                raise ShiftNetCheckpointError(
                    f"{where}: {key} has shape {_torch_shape(got, kind, leaf)}, expected "
                    f"{_torch_shape(exp, kind, leaf)} in a {n}-level shift={shift!r} Shift-Net "
                    f"generator of width ngf={info['ngf']} with {info['in_channels']} input channels "
                    f"(read from its first layer); the file's layers do not form that network "
                    f"(Zhaoyi-Yan/Shift-Net_pytorch, models/modules/shift_unet.py)")


def from_state_dict(sd: Mapping[str, Any], where: str = "state dict",
                    shift: Optional[str] = None) -> tuple[dict, dict]:
    """A generator state dict (tensors or numpy) -> ({'params': numpy tree}, describe(sd, shift=shift)).
    Every layer's shape is checked against the network that `describe` reads off the keys.
    Without `shift`, keys that could be either 'hard' or 'soft' load as 'hard' with a logged
    warning (pass shift='hard' or 'soft' to say which)."""
    sd = _strip(sd)
    info = describe(sd, where, shift)
    params, used = {}, set()
    for name, prefix, kind in _layers(info["num_downs"], info["shift"]):
        w_key, b_key = prefix + ".weight", prefix + ".bias"
        for key in (w_key, b_key):
            if key not in sd:
                raise ShiftNetCheckpointError(f"{where}: missing {key} (a {info['num_downs']}-level "
                                              f"{info['shift']} Shift-Net generator has it)")
        w, b = _np(sd[w_key]).astype(np.float32), _np(sd[b_key]).astype(np.float32)
        used |= {w_key, b_key}
        if kind == "norm":
            params[name] = {"scale": w, "bias": b}
            continue
        if w.ndim != 4:
            raise ShiftNetCheckpointError(f"{where}: {w_key} has shape {w.shape}, expected 4-D")
        kernel = np.transpose(w, (2, 3, 1, 0) if kind == "conv" else (2, 3, 0, 1))
        params[name] = {"kernel": np.ascontiguousarray(kernel), "bias": b}
    unknown = sorted(set(sd) - used)
    if unknown:
        raise ShiftNetCheckpointError(f"{where}: unexpected keys {unknown[:5]} for a "
                                      f"{info['num_downs']}-level {info['shift']} Shift-Net generator")
    _check_shapes(params, info, where)
    if shift is None and info["shift"] == "hard":
        log.warning("%s: loaded as Shift-Net's default generator, shift='hard' (unet_shift_triple). "
                    "A patch_soft_unet_shift_triple file has exactly these keys (its soft shift has "
                    "no parameters), so the file cannot tell; for a soft-shift model load it with "
                    "inpaintjax.convert.shiftnet.from_torch(path, shift='soft') and build the family "
                    "with model.shift='soft' and model.fuse as it was trained (docs/shiftnet.md, "
                    "'Weights'); from_torch(path, shift='hard') loads without this warning", where)
    return {"params": params}, info


def to_state_dict(variables: Mapping[str, Any], num_downs: int, shift: str = "hard") -> "OrderedDict[str, np.ndarray]":
    """Flax ShiftNetGenerator variables -> the original's state dict (numpy), inverse of
    `from_state_dict`."""
    params = variables["params"]
    sd = OrderedDict()
    for name, prefix, kind in _layers(num_downs, shift):
        p = params[name]
        if kind == "norm":
            sd[prefix + ".weight"] = np.asarray(p["scale"], np.float32)
        else:
            k = np.asarray(p["kernel"], np.float32)
            sd[prefix + ".weight"] = np.transpose(k, (3, 2, 0, 1) if kind == "conv" else (2, 3, 0, 1))
        sd[prefix + ".bias"] = np.asarray(p["bias"], np.float32)
    return sd


def read_state_dict(path: str) -> dict:
    """The state dict in `path` (legacy or zip torch.save format), read weights-only."""
    if not os.path.isfile(path):
        raise ShiftNetCheckpointError(
            f"Shift-Net weights {path!r} not found; the released generators (face_center_mask.pth, "
            f"paris_random_mask_20_30.pth) are linked from https://github.com/Zhaoyi-Yan/Shift-Net_pytorch "
            f"(README, download_models.sh)")
    obj = load_torch_file(path, ShiftNetCheckpointError, "a Shift-Net generator state dict as "
                          "Zhaoyi-Yan/Shift-Net_pytorch saves it (e.g. face_center_mask.pth)")
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ShiftNetCheckpointError(f"{path}: holds a {type(obj).__name__}, expected a generator state dict")
    return dict(obj)


def from_torch(path: str, shift: Optional[str] = None) -> tuple[dict, dict]:
    """A released generator file -> ({'params'}, {'num_downs', 'ngf', 'in_channels', 'out_channels',
    'shift'}); `shift` as in `describe` ('soft' for a patch_soft_unet_shift_triple file)."""
    return from_state_dict(read_state_dict(path), where=path, shift=shift)


def _pickle_head(path: str) -> bytes:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            pkl = [n for n in z.namelist() if n.endswith("data.pkl")]
            return z.read(pkl[0]) if pkl else b""
    with open(path, "rb") as f:
        return f.read(1 << 20)


def detect(path: str) -> bool:
    """Cheap check that `path` is a PyTorch file holding a Shift-Net generator (the shift block's
    key prefix, or the face model's `e3_c.weight` next to `d8_dc`, is in the pickle: the zip
    archive's data.pkl, or the head of a legacy-format file)."""
    if not os.path.isfile(path):
        return False
    try:
        head = _pickle_head(path)
    except (OSError, zipfile.BadZipFile):
        return False
    return _MARKER in head or (_FACE_MARKER in head and b"d8_dc." in head)
