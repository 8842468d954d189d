"""Reading PyTorch state-dict files for the evaluation networks (FID Inception, LPIPS backbones).

torch is optional for the core install: it is imported only when a `.pth` file is read, through its
weights-only loader (tensors and containers only; no code in the file runs).
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np


class WeightFileError(ValueError):
    """A weight file is missing, unreadable, or not the network asked for."""


def load_state_dict(path: str, what: str, where: str) -> dict[str, np.ndarray]:
    """The tensors of the PyTorch state dict in `path` as float/int NumPy arrays, keyed as saved.

    `what` names the network for messages ("the FID Inception-v3") and `where` says where the user
    gets the file. A checkpoint that wraps the dict under "state_dict" is unwrapped.
    """
    if not path or not os.path.isfile(path):
        raise WeightFileError(f"{what} weight file {path!r} not found; {where}")
    try:
        import torch
    except ImportError as e:
        raise WeightFileError(
            f"reading {path} ({what}) needs PyTorch: pip install 'inpaintjax[torch]'") from e
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad or foreign file
        # torch's own message is left out: it can run to many lines and suggest weights_only=False,
        # which would run the code a file holds; the exception stays chained for a traceback
        raise WeightFileError(f"{path}: not a readable PyTorch state dict ({type(e).__name__} from torch's "
                              f"weights-only loader: a damaged or cut-short download, or a file holding more "
                              f"than tensors); expected {what}: {where}") from e
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
