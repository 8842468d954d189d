"""Reading PyTorch state-dict files for the evaluation networks (FID Inception, LPIPS backbones),
through `inpaintjax.torch_io` (torch's weights-only loader; torch imported only then)."""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from inpaintjax.torch_io import load_torch_file


class WeightFileError(ValueError):
    """A weight file is missing, unreadable, or not the network asked for."""


def load_state_dict(path: str, what: str, where: str) -> dict[str, np.ndarray]:
    """The tensors of the PyTorch state dict in `path` as float/int NumPy arrays, keyed as saved.

    `what` names the network for messages ("the FID Inception-v3") and `where` says where the user
    gets the file. A checkpoint that wraps the dict under "state_dict" is unwrapped.
    """
    if not path or not os.path.isfile(path):
        raise WeightFileError(f"{what} weight file {path!r} not found; {where}")
    sd = load_torch_file(path, WeightFileError, f"{what}: {where}")
    if isinstance(sd, Mapping) and isinstance(sd.get("state_dict"), Mapping):
        sd = sd["state_dict"]
    if not isinstance(sd, Mapping):
        raise WeightFileError(f"{path}: holds a {type(sd).__name__}, not a state dict; expected {what}: {where}")
    out = {}
    for k, v in sd.items():
        if hasattr(v, "detach"):
            out[str(k)] = v.detach().cpu().numpy()
    return out


def require(sd: Mapping[str, np.ndarray], shapes: Mapping[str, tuple], path: str, what: str,
            where: str) -> None:
    """Every key of `shapes` present in `sd` with that shape, or one error naming the first few
    missing or mismatched keys and the fix."""
    missing = [k for k in shapes if k not in sd]
    wrong = [f"{k} {tuple(sd[k].shape)} (needs {tuple(shapes[k])})" for k in shapes
             if k in sd and tuple(sd[k].shape) != tuple(shapes[k])]
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s), e.g. {', '.join(missing[:3])}")
        if wrong:
            parts.append(f"wrong shapes: {'; '.join(wrong[:3])}")
        raise WeightFileError(f"{path}: not {what} ({'; '.join(parts)}); {where}")
