"""Train an inpainting model.

    python train.py --config configs/deepfill_v2.py:places2 --workdir runs/x [--config.batch_size=32]

Rerunning in the same workdir resumes from its newest readable checkpoint. Many hosts: start the
same command on each with --coordinator_address HOST:PORT --num_processes N --process_id I (or the
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID environment variables, or
--distributed on a cluster JAX detects by itself: SLURM, Cloud TPU, ...).
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from inpaintjax import config as config_lib
from inpaintjax import xla_cpu
from inpaintjax.distributed import DISTRIBUTED_FLAGS, initialize_from_flags, quiet_library_logging  # noqa: F401

config_flags.DEFINE_config_file("config", None, "config file and variant, e.g. configs/deepfill_v2.py:demo",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "run directory (checkpoints, logs, config.json)")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    xla_cpu.configure()  # before JAX starts: this CPU's calibrated XLA:CPU set-up
    quiet_library_logging(FLAGS)
    initialize_from_flags(FLAGS)
    from inpaintjax.training import NonFiniteError, train
    try:
        result = train(FLAGS.config, FLAGS.workdir)
    except NonFiniteError as e:
        print(f"train.py: {e}", file=sys.stderr, flush=True)
        sys.exit(3)
    if result["preempted"]:
        sys.exit(0)


if __name__ == "__main__":
    try:
        config_lib.check_override_flags(sys.argv)
    except (config_lib.ConfigKeyError, FileNotFoundError, ValueError) as e:
        print(f"train.py: {e}", file=sys.stderr)
        sys.exit(2)
    app.run(main)
