"""Train an inpainting model.

    python train.py --config configs/deepfill_v2.py:places2 --workdir runs/x [--config.batch_size=32]

Rerunning in the same workdir resumes from its newest readable checkpoint. Many hosts: start the
same command on each with --coordinator_address HOST:PORT --num_processes N --process_id I (or the
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID environment variables, or
--distributed on a cluster JAX detects by itself: SLURM, Cloud TPU, ...).

Exit status: 0 finished (or saved and stopped on SIGTERM); 2 the run cannot start as configured, or
another run holds the workdir (one line, no traceback); 3 a non-finite loss or gradient; 4 a
checkpoint could not be written.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from inpaintjax import entry_point

config_flags.DEFINE_config_file("config", None, "config file and variant, e.g. configs/deepfill_v2.py:demo",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "run directory (checkpoints, logs, config.json)")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    entry_point.start(FLAGS, "train.py")
    from inpaintjax.training import (CheckpointSaveError, NonFiniteError, WorkdirLockedError,
                                     configuration_error, train)
    try:
        result = train(FLAGS.config, FLAGS.workdir)
    except NonFiniteError as e:
        print(f"train.py: {e}", file=sys.stderr, flush=True)
        sys.exit(3)
    except CheckpointSaveError as e:
        print(f"train.py: error: {e}", file=sys.stderr, flush=True)
        sys.exit(4)
    except Exception as e:
        if not (configuration_error(e) or isinstance(e, WorkdirLockedError)):
            raise
        # nothing ran: the message alone (a KeyError's str() adds quotes around it)
        text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"train.py: error: {text}", file=sys.stderr, flush=True)
        sys.exit(2)
    if result["preempted"]:
        sys.exit(0)


if __name__ == "__main__":
    entry_point.run(main, "train.py")
