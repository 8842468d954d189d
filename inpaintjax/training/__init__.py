"""The generic training system: loop (train), sharding, checkpoints, logging, eval."""

from inpaintjax.training.checkpoint import (Checkpointer, CheckpointSaveError,  # noqa: F401
                                            WorkdirLockedError, load_for_inference)
from inpaintjax.training.loop import NonFiniteError, configuration_error, train  # noqa: F401
