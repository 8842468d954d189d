"""The interface between a model family and the generic training / evaluation / inference code.

A family is everything that is specific to one published system: its networks, losses, optimisers
and how it turns (image, mask[, guide]) into an inpainted image. `inpaintjax.training` knows a
family only through this interface and never names a family.

Batches (what the data pipeline yields, per host, as numpy; globally sharded on `data` in jit):
  image  float32 [B, H, W, 3], RGB in [0, 1]
  mask   float32 [B, H, W, 1], 1 = hole, 0 = known
  guide  float32 [B, H, W, 1] in {0, 1} (only when the family's config asks for it: edges/sketch)
Each family converts to its own network range (DeepFill [-1, 1], EdgeConnect [0, 1], ...) inside.
"""

from __future__ import annotations

import abc
from typing import Any, Mapping

import jax

Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]


class Family(abc.ABC):
    """One published inpainting system. Constructed from the run's whole ml_collections config."""

    #: registry name, e.g. 'deepfill_v2'
    name: str = ""
    #: network inputs must have H and W divisible by this (Inpainter pads, then crops back)
    size_multiple: int = 1

    def __init__(self, config):
        self.config = config

    @abc.abstractmethod
    def init_state(self, rng: jax.Array, batch: Batch) -> Any:
        """A fresh train state (a pytree with an integer `step` field) for batches shaped like `batch`."""

    @abc.abstractmethod
    def train_step(self, state: Any, batch: Batch, rng: jax.Array) -> tuple[Any, Metrics]:
        """One training iteration (all networks). Pure and jit-able, no host callbacks.

        `rng` is already specific to this step (fold_in of the root key and the step). Metrics are
        scalars: every loss term by name (e.g. 'g/l1_stage1', 'd/hinge') and every gradient's
        global norm (e.g. 'g/grad_norm'); the loop treats any non-finite metric as a failure.
        """

    @abc.abstractmethod
    def inference_variables(self, state: Any) -> Any:
        """The generator variables needed by `inpaint` (no optimiser state, no discriminator)."""

    @abc.abstractmethod
    def inpaint(self, variables: Any, image: jax.Array, mask: jax.Array,
                guide: jax.Array | None = None) -> dict[str, jax.Array]:
        """Inpaint a batch. image [B,H,W,3] in [0,1], mask [B,H,W,1] (1 = hole), H, W multiples of
        `size_multiple`. Returns at least 'output': the composited result in [0, 1] (known pixels
        equal to the input); may add family extras for logging (e.g. 'stage1', 'flow'), all
        [B,H,W,3] in [0, 1]. Jit-able."""


_REGISTRY: dict[str, type[Family]] = {}


def register(cls: type[Family]) -> type[Family]:
    _REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type[Family]:
    """The family class registered under `name` (imports the built-in families on first use)."""
    from inpaintjax import families as _families  # noqa: F401  (registers the built-ins)
    if name not in _REGISTRY:
        raise KeyError(f"unknown family {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]
