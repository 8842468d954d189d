"""Start-up shared by train.py and eval.py: `jax.distributed.initialize` from flags, the
environment, or a cluster JAX detects by itself; and a quiet console."""

from __future__ import annotations

import logging
import os

from absl import flags

flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 (multi-host)")
flags.DEFINE_integer("num_processes", None, "number of processes (multi-host)")
flags.DEFINE_integer("process_id", None, "this process's index in [0, num_processes)")
flags.DEFINE_bool("distributed", False, "call jax.distributed.initialize() with the cluster's own "
                  "settings (SLURM, Cloud TPU, Kubernetes, ...)")
flags.DEFINE_integer("num_cpu_devices", None, "CPU only: devices per process (testing many devices "
                     "without accelerators)")



def quiet_library_logging(FLAGS) -> None:
    """Unless --verbosity was given: the console shows inpaintjax's own lines and everybody's
    warnings, not the INFO lines orbax and jax write for every checkpoint operation."""
    if FLAGS["verbosity"].present:
        return
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's notes on opening a directory
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("inpaintjax").setLevel(logging.INFO)


def initialize_from_flags(FLAGS) -> None:
    """Initialise jax.distributed when flags or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
    JAX_PROCESS_ID ask for it; a single process otherwise. Must run before any JAX computation."""
    initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id, FLAGS.distributed,
               FLAGS.num_cpu_devices)


def initialize(address: str | None = None, num: int | None = None, pid: int | None = None,
               auto: bool = False, num_cpu_devices: int | None = None) -> None:
    """`initialize_from_flags` without absl: the arguments, else JAX_COORDINATOR_ADDRESS /
    JAX_NUM_PROCESSES / JAX_PROCESS_ID (the CLI's multi-process evaluation), else `auto` asks
    jax.distributed.initialize() to find the cluster's settings; a single process otherwise."""
    import jax
    if num_cpu_devices:
        jax.config.update("jax_num_cpu_devices", int(num_cpu_devices))
    address = address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    num = num if num is not None else os.environ.get("JAX_NUM_PROCESSES")
    pid = pid if pid is not None else os.environ.get("JAX_PROCESS_ID")
    if address:
        if num is None or pid is None:
            raise ValueError("multi-host: with a coordinator address also give --num_processes and "
                             "--process_id (or JAX_NUM_PROCESSES and JAX_PROCESS_ID)")
        kwargs = {}
        if address.split(":")[0] in ("127.0.0.1", "localhost"):
            kwargs["coordinator_bind_address"] = address  # stay on loopback for local runs
        jax.distributed.initialize(coordinator_address=address, num_processes=int(num),
                                   process_id=int(pid), **kwargs)
    elif auto:
        jax.distributed.initialize()
