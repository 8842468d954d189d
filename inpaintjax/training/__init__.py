"""The generic training system: loop (train_and_evaluate), sharding, checkpoints, logging, eval."""

from inpaintjax.training.checkpoint import Checkpointer, load_for_inference  # noqa: F401
from inpaintjax.training.loop import NonFiniteError, train_and_evaluate  # noqa: F401
