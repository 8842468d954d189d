"""The generic training system: loop (train), sharding, checkpoints, logging, eval."""

from inpaintjax.training.checkpoint import Checkpointer, load_for_inference  # noqa: F401
from inpaintjax.training.loop import NonFiniteError, train  # noqa: F401
