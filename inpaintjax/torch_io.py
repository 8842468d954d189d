"""Reading PyTorch files (weights of official releases, loss and evaluation networks) with torch's
weights-only loader: tensors and containers only, no code in the file runs. torch is optional for
the core install and imported only here, when a file is read.

The errors name the file and the type of torch's exception, never torch's own text: it runs to
many lines for a damaged file and suggests `weights_only=False`, which would run whatever code a
file holds."""

from __future__ import annotations

from typing import Any, Type

INSTALL = "pip install 'inpaintjax[torch]'"


def load_torch_file(path: str, error: Type[Exception] = ValueError, expected: str = "") -> Any:
    """The object saved in `path` (a state dict, or the dict a training script saved around it).

    `error` is the exception type raised (the caller's own), `expected` what the file should be
    and where to get it, appended to the message."""
    tail = f"; expected {expected}" if expected else ""
    try:
        import torch
    except ImportError as e:
        raise error(f"reading {path} needs PyTorch: {INSTALL}{tail}") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad or foreign file; chained for a traceback
        raise error(f"{path}: not a readable PyTorch file ({type(e).__name__} from torch's weights-only "
                    f"loader: a damaged or cut-short download, or a file holding more than tensors)"
                    f"{tail}") from e
