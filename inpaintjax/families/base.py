"""The contract between a model family and the generic code (training loop, checkpoints, data,
evaluation, inference, command line). Nothing outside `inpaintjax/families/` names a family.

A family is everything specific to one published system: its networks, losses, optimisers, the
batch it trains on, the frozen networks its losses need, the official weight formats it reads and
how it turns an image and a hole mask into an inpainted image. It declares:

- `batch_spec()`: the batch keys and what the pipeline computes for each (`inpaintjax.data.fields`);
  every batch has `image` (float32 [B,H,W,3] RGB in [0, 1]) and `mask` (float32 [B,H,W,1],
  1 = hole). Each family converts to its own network range inside.
- `batches_per_step`: how many fresh batches one training step consumes (k > 1: every field arrives
  stacked [k, B, ...]; e.g. five critic updates and one generator update per step).
- `load_frozen()`: host-side, once per run, networks that come from files the user names and are
  never trained or checkpointed (VGG features for perceptual losses); passed to `train_step` as an
  argument, so they are neither constants of the compiled program nor part of the train state.
- `init_state` / `train_step`: jittable, pure. `train_step` returns metrics: a scalar counts once,
  a `Metric(total, count)` is a sum over `count` values (0 = not computed this step); the loop logs
  sum(total) / sum(count) over the steps since the last log and treats a non-finite computed
  metric as a failure.
- `warm_start_paths`: the state subtrees `config.init_from` copies from another run by default;
  `ema_paths`: where the state keeps an EMA of which parameters (restarted from copied ones).
- `inference_variables`, `inference_inputs` (host side), `inpaint` (jittable), `predict` (host
  side, what `Inpainter` runs around the jitted `inpaint`), and
  `evaluation_metrics` (jittable, per image).
- `weight_formats`: the official checkpoint formats it reads (`Inpainter.load` and the command line
  detect them) and `default_config()`, the released model's settings.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Mapping, NamedTuple

import jax
import ml_collections
import numpy as np

Batch = Mapping[str, jax.Array]


class Metric(NamedTuple):
    """A metric reported as a sum over `count` values of this step (count 0: not computed)."""

    total: jax.Array
    count: jax.Array


Metrics = dict[str, Any]  # name -> scalar or Metric


class FrozenWeightsError(FileNotFoundError):
    """A frozen network's weight file is missing or unreadable; the message says where to get it."""


@dataclasses.dataclass(frozen=True)
class WeightFormat:
    """An official (non-workdir) weight format a family reads.

    `detect(path)` is cheap (names and headers only) and True only for this family's files;
    `load(path)` returns (the family's config for those weights, its inference variables)."""

    name: str
    detect: Callable[[str], bool]
    load: Callable[[str], tuple[ml_collections.ConfigDict, Any]]


#: the `inference_inputs` batch key of a user's guide drawing ([B,H,W,1] float32, 1 = stroke), given
#: only to a family whose `guided` is true (the Inpainter's `sketch` argument)
GUIDE_KEY = "sketch"


class Family(abc.ABC):
    """One published inpainting system, built from the run's whole ml_collections config."""

    #: registry name, e.g. 'deepfill_v2'
    name: str = ""
    #: network inputs must have H and W divisible by this (Inpainter pads, then crops back)
    size_multiple: int = 1
    #: official weight formats this family reads
    weight_formats: tuple[WeightFormat, ...] = ()
    #: state subtrees (dotted paths) that `config.init_from` copies from another run by default
    warm_start_paths: tuple[str, ...] = ()
    #: (EMA subtree, the parameter subtree it averages), dotted paths into the state: after
    #: `init_from` copies the parameters, an EMA that was not copied itself restarts as a copy of
    #: them (the EMA starts as the run's initial parameters, and those are the copied ones)
    ema_paths: tuple[tuple[str, str], ...] = ()
    #: whether `inference_inputs` reads a user's guide drawing (batch[GUIDE_KEY], 1 = stroke, used
    #: inside the hole only); a family sets it per model (DeepFill v2: its sketch-guided models)
    guided: bool = False
    #: the decay of the EMA of the generator the family keeps (`common.ema_decay(config)`), 0 for
    #: none; the training loop warns when a run is too short for it
    ema_decay: float = 0.0

    def __init__(self, config):
        self.config = config

    @classmethod
    @abc.abstractmethod
    def default_config(cls) -> ml_collections.ConfigDict:
        """The released model's settings (used when only weights are at hand)."""

    @property
    def batches_per_step(self) -> int:
        return 1

    def batch_spec(self) -> dict:
        from inpaintjax.data import fields
        return fields.default_spec()

    def load_frozen(self) -> Any:
        """Frozen networks as a pytree of numpy arrays (host side); {} when the family has none."""
        return {}

    @abc.abstractmethod
    def init_state(self, rng: jax.Array, batch: Batch) -> Any:
        """A fresh train state (a pytree with an int32 `step`) for batches shaped like `batch`
        (one batch, not stacked). Jittable."""

    @abc.abstractmethod
    def train_step(self, state: Any, batch: Batch, rng: jax.Array,
                   frozen: Any) -> tuple[Any, Metrics]:
        """One training step (all networks; `batches_per_step` stacked batches). Pure, jittable,
        no host callbacks; increments `state.step` by one. `rng` is specific to this step."""

    @abc.abstractmethod
    def inference_variables(self, state: Any) -> Any:
        """The variables `inpaint` needs (the EMA parameters when config.ema_decay > 0)."""

    def inference_inputs(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Host-side pre-processing before `inpaint` (numpy). `batch` has 'image' [B,H,W,3]
        float32 in [0, 1] and 'mask' [B,H,W,1]; from the Inpainter, for a `guided` family, possibly
        the user's drawing under GUIDE_KEY [B,H,W,1];
        from evaluation and the training preview also the spec's fields computed on the ground
        truth. H and W are multiples of `size_multiple`."""
        return {"image": np.asarray(batch["image"], np.float32),
                "mask": np.asarray(batch["mask"], np.float32)}

    def predict(self, fn: Callable, variables: Any,
                batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Host side: what `Inpainter` runs for one batch (fields as `inference_inputs` takes
        them), with `fn` the jitted `inpaint`; returns its outputs as numpy arrays of the batch's
        size. A family whose released inference does more around the network (e.g. scales large
        images down, post-processes with OpenCV) overrides this."""
        return {k: np.asarray(v) for k, v in fn(variables, self.inference_inputs(batch)).items()}

    @abc.abstractmethod
    def inpaint(self, variables: Any, inputs: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """Inpaint a batch of `inference_inputs`. Jittable. Returns 'output' [B,H,W,3] in [0, 1],
        composited (known pixels equal to the input), plus family extras [B,H,W,C] in [0, 1]
        (e.g. 'stage1', 'flow', 'edges') for previews and `return_extras`."""

    def evaluation_label(self) -> str:
        """The model's name in evaluation tables and titles: the family's name, plus what a reader
        must know about how it was trained (PConv with random VGG loss networks says so)."""
        return self.name

    def evaluation_metrics(self, inputs: Mapping[str, jax.Array],
                           outputs: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """Per-image metrics ([B] each) of an `inpaint` result. Jittable."""
        import jax.numpy as jnp

        from inpaintjax import metrics
        return metrics.compute_metrics(jnp.clip(outputs["output"], 0.0, 1.0), inputs["image"],
                                       inputs["mask"])


_REGISTRY: dict[str, type[Family]] = {}


def register(cls: type[Family]) -> type[Family]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no registry name")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtins() -> None:
    from inpaintjax import families as _families  # noqa: F401  (registers the built-ins)


def names() -> list[str]:
    """Registered family names."""
    _load_builtins()
    return sorted(_REGISTRY)


def get(name: str) -> type[Family]:
    """The family class registered under `name`."""
    _load_builtins()
    if name not in _REGISTRY:
        import difflib
        near = difflib.get_close_matches(str(name), _REGISTRY, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise KeyError(f"unknown family {name!r}.{hint} Known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def detect_weights(path: str, family: str | None = None) -> list[tuple[type[Family], WeightFormat]]:
    """(family class, format) pairs whose format recognises `path` (only `family`'s if given)."""
    _load_builtins()
    classes = [get(family)] if family else [_REGISTRY[n] for n in sorted(_REGISTRY)]
    return [(cls, fmt) for cls in classes for fmt in cls.weight_formats if fmt.detect(path)]
