"""Official EdgeConnect checkpoints (knazeri/edge-connect, PyTorch) -> inpaintjax (Flax) variables.

    w = from_torch('checkpoints/places2')
    edges = EdgeGenerator().apply(w['edge_generator'], g1_input)           # == PyTorch eval()
    image = InpaintGenerator().apply(w['inpaint_generator'], g2_input)

The folder holds any of `EdgeModel_gen.pth`, `InpaintingModel_gen.pth` ({'iteration', 'generator'})
and `EdgeModel_dis.pth`, `InpaintingModel_dis.pth` ({'discriminator'}), as written by the
original's `BaseModel.save` (src/models.py); a state dict saved from `nn.DataParallel` (keys with a
`module.` prefix) is accepted too. Files are read with torch's weights-only loader (no pickled
code runs), so torch is needed for this module only (`pip install inpaintjax[torch]`).

Mapping (src/networks.py module paths): `encoder.1` -> `encoder_1`, `middle.3.conv_block.5` ->
`middle_3/conv_block_5`, `decoder.0` -> `decoder_0`, discriminator `conv1.0` -> `conv1`. Conv2d
weights [out, in, kh, kw] become kernels [kh, kw, in, out]; ConvTranspose2d weights
[in, out, kh, kw] become [kh, kw, in, out] (the scatter-form kernel of
`inpaintjax.models.edgeconnect.SpectralConv`). Spectral-norm layers store `weight_orig`,
`weight_u`, `weight_v`: by default `weight_orig` becomes the kernel and u, v go to `batch_stats`,
so the SN model divides by sigma = u . (W v) exactly as PyTorch's `spectral_norm` does in eval mode,
and training continues the stored power iteration. `bake=True` instead returns plain kernels
weight_orig / sigma (no `batch_stats`) for the networks built with `spectral_norm=False`.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict

import numpy as np

from inpaintjax.torch_io import load_torch_file

FILES = {
    "edge_generator": ("EdgeModel_gen.pth", "generator"),
    "inpaint_generator": ("InpaintingModel_gen.pth", "generator"),
    "edge_discriminator": ("EdgeModel_dis.pth", "discriminator"),
    "inpaint_discriminator": ("InpaintingModel_dis.pth", "discriminator"),
}


def _module_path(key: str, path: str) -> tuple[str, ...]:
    """'encoder.1' -> ('encoder_1',), 'middle.3.conv_block.5' -> ('middle_3', 'conv_block_5'), 'conv1.0' -> ('conv1',)."""
    parts = key.split(".")
    m = re.fullmatch(r"conv([1-5])\.0", key)
    if m:
        return (f"conv{m.group(1)}",)
    if len(parts) == 2 and parts[0] in ("encoder", "decoder"):
        return (f"{parts[0]}_{parts[1]}",)
    if len(parts) == 4 and parts[0] == "middle" and parts[2] == "conv_block":
        return (f"middle_{parts[1]}", f"conv_block_{parts[3]}")
    raise ValueError(f"{path}: unexpected layer {key!r} in the state dict (not an EdgeConnect "
                     "EdgeGenerator / InpaintGenerator / Discriminator from knazeri/edge-connect)")


def _set(tree: dict, path: tuple[str, ...], value) -> None:
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def _sigma(kernel: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.float32:
    # PyTorch eval mode: sigma = u . (W v), W = weight viewed as [out, -1] (dim 1 first for
    # ConvTranspose2d), in float32 as PyTorch computes it.
    w = np.transpose(kernel, (3, 2, 0, 1)).reshape(kernel.shape[-1], -1)
    return np.float32(np.dot(u.astype(np.float32), w @ v.astype(np.float32)))


def convert_state_dict(state_dict: Dict[str, Any], path: str = "<state dict>", bake: bool = False) -> dict:
    """One network's PyTorch state dict (tensors or arrays; optional `module.` prefix) -> Flax variables.

    Returns {'params': ...} plus {'batch_stats': {layer: {'u', 'v'}}} for spectral-norm layers
    unless `bake` (see the module docstring). `path` names the source in error messages.
    """
    sd = {}
    for k, v in state_dict.items():
        if k.startswith("module."):
            k = k[len("module."):]
        sd[k] = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, np.float32)
    layers: Dict[str, Dict[str, np.ndarray]] = {}
    for k, v in sd.items():
        layer, _, name = k.rpartition(".")
        if name not in ("weight", "weight_orig", "weight_u", "weight_v", "bias"):
            raise ValueError(f"{path}: unexpected entry {k!r} (EdgeConnect layers hold weight, "
                             "weight_orig/weight_u/weight_v (spectral norm) and bias)")
        layers.setdefault(layer, {})[name] = v
    # The original Discriminator registers its first block twice (`self.conv1 = self.features`),
    # so its state dicts hold `features.0.*` as a copy of `conv1.0.*`.
    alias = layers.pop("features.0", None)
    if alias is not None:
        first = layers.setdefault("conv1.0", alias)
        if set(first) != set(alias) or any(not np.array_equal(first[n], alias[n]) for n in alias):
            raise ValueError(f"{path}: features.0.* differs from conv1.0.* (in the original they are one "
                             "module registered under two names)")
    params: dict = {}
    stats: dict = {}
    for layer, entries in layers.items():
        mpath = _module_path(layer, path)
        transposed = layer in ("decoder.0", "decoder.3")
        weight = entries.get("weight_orig", entries.get("weight"))
        if weight is None or weight.ndim != 4:
            raise ValueError(f"{path}: layer {layer!r} has no 4-D weight/weight_orig")
        kernel = np.transpose(weight, (2, 3, 0, 1) if transposed else (2, 3, 1, 0))
        if "weight_orig" in entries:
            if "weight_u" not in entries or "weight_v" not in entries:
                raise ValueError(f"{path}: spectral-norm layer {layer!r} lacks weight_u / weight_v")
            u, v = entries["weight_u"], entries["weight_v"]
            out = kernel.shape[-1]
            if u.shape != (out,) or v.shape != (kernel.size // out,):
                raise ValueError(f"{path}: {layer}.weight_u/weight_v have shapes {u.shape}/{v.shape}, "
                                 f"expected ({out},)/({kernel.size // out},)")
            if bake:
                kernel = kernel / _sigma(kernel, u, v)
            else:
                _set(stats, mpath, {"u": u, "v": v})
        _set(params, mpath + ("kernel",), np.ascontiguousarray(kernel, np.float32))
        if "bias" in entries:
            _set(params, mpath + ("bias",), entries["bias"])
    out = {"params": params}
    if stats:
        out["batch_stats"] = stats
    return out


def _check_layers(variables: dict, name: str, path: str) -> None:
    """Every layer src/networks.py gives network `name` is present (the residual-block count is the
    file's own: middle.0 .. middle.N-1, N >= 1), with its bias where the original has one."""
    params = variables["params"]
    if name.endswith("discriminator"):
        need = [((f"conv{i}",), f"conv{i}.0", False) for i in range(1, 6)]
    else:
        blocks = sorted(int(k[len("middle_"):]) for k in params if k.startswith("middle_"))
        # residual convolutions have a bias where they have no spectral norm: G2's, not G1's
        middle_bias = name == "inpaint_generator"
        need = [((f"encoder_{i}",), f"encoder.{i}", True) for i in (1, 4, 7)]
        need += [((f"middle_{i}", f"conv_block_{j}"), f"middle.{i}.conv_block.{j}", middle_bias)
                 for i in range(max(blocks, default=0) + 1) for j in (1, 5)]
        need += [((f"decoder_{i}",), f"decoder.{i}", True) for i in (0, 3, 7)]
    for mpath, torch_name, bias in need:
        layer = params
        for p in mpath:
            layer = layer.get(p, {}) if isinstance(layer, dict) else {}
        if "kernel" not in layer:
            raise ValueError(f"{path}: missing {torch_name}.weight (weight_orig under spectral norm); "
                             f"knazeri/edge-connect's {name.replace('_', ' ')} has that layer")
        if bias and "bias" not in layer:
            raise ValueError(f"{path}: missing {torch_name}.bias; knazeri/edge-connect's "
                             f"{name.replace('_', ' ')} has it")


def load_pth(path: str) -> dict:
    """The state dict inside one official .pth file ('generator' or 'discriminator' entry, or a bare
    state dict), read with torch's weights-only loader."""
    data = load_torch_file(path, ValueError, "an EdgeConnect checkpoint ({'iteration', 'generator'} "
                           "or {'discriminator'}) as knazeri/edge-connect saves it")
    if isinstance(data, dict):
        for key in ("generator", "discriminator"):
            if key in data and isinstance(data[key], dict):
                return data[key]
        if data and all(hasattr(v, "shape") for v in data.values()):
            return data
    raise ValueError(f"{path}: expected {{'generator': state_dict}} or {{'discriminator': state_dict}} as "
                     "saved by knazeri/edge-connect (src/models.py BaseModel.save)")


def from_torch(folder: str, bake: bool = False) -> Dict[str, dict]:
    """Read an official EdgeConnect checkpoint folder into Flax variables.

    Returns a dict with a subset of the keys 'edge_generator' (for EdgeGenerator),
    'inpaint_generator' (InpaintGenerator), 'edge_discriminator' (EdgeConnectDiscriminator on
    2 channels), 'inpaint_discriminator' (on 3 channels): one per file present. Raises
    FileNotFoundError when the folder holds none of the four files, ValueError when a file is not
    such a checkpoint or lacks a layer (or bias) of its network.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: not a directory; pass the EdgeConnect checkpoint folder "
                                f"holding {', '.join(f for f, _ in FILES.values())}")
    out = {}
    for name, (fname, _) in FILES.items():
        path = os.path.join(folder, fname)
        if os.path.exists(path):
            out[name] = convert_state_dict(load_pth(path), path, bake=bake)
            _check_layers(out[name], name, path)
    if not out:
        raise FileNotFoundError(f"{folder}: none of {', '.join(f for f, _ in FILES.values())} found "
                                "(official EdgeConnect checkpoints: knazeri/edge-connect README, "
                                "scripts/download_model.sh)")
    return out


def is_checkpoint_folder(path: str) -> bool:
    """True when `path` is a directory with at least one of the four official file names."""
    return os.path.isdir(path) and any(os.path.exists(os.path.join(path, f)) for f, _ in FILES.values())


def read_sigma(folder: str) -> float | None:
    """The Canny sigma (`SIGMA`) of the folder's `config.yml`, which the original copies beside
    its checkpoints; None when the file or the key is absent."""
    path = os.path.join(folder, "config.yml")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            found = re.match(r"\s*SIGMA\s*:\s*(-?[0-9.]+)", line)
            if found:
                return float(found.group(1))
    return None
