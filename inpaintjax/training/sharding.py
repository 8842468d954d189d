"""Data parallelism over every device of every host: one mesh, axis 'data'.

The batch is sharded along its first dimension over 'data'; the train state is replicated. With
several processes (jax.distributed), each process supplies only the batch rows its own devices
hold (`process_rows`) and `global_batch` assembles the global array without moving data.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P


def make_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh over all devices of all processes, axis 'data' (Auto axis type: the families'
    code needs no sharding annotations; XLA inserts the gradient all-reduce)."""
    n = jax.device_count()
    return jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def batch_sharding(mesh, axis: int = 0) -> NamedSharding:
    """Sharded on 'data' along the batch axis `axis` (1 for [k, B, ...] stacks of k batches)."""
    return NamedSharding(mesh, P(*([None] * axis), "data"))


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch_size(global_batch: int, mesh) -> int:
    """Per-device batch; `global_batch` must be a positive multiple of the device count."""
    n = mesh.devices.size
    if global_batch <= 0 or global_batch % n:
        raise ValueError(
            f"config.batch_size={global_batch} (the global batch) must be a positive multiple of the "
            f"device count {n} ({jax.process_count()} process(es) x {jax.local_device_count()} local "
            f"devices); e.g. --config.batch_size={max(n, (global_batch // n) * n or n)}")
    return global_batch // n


def process_rows(global_batch: int, mesh) -> np.ndarray:
    """Sorted global batch rows held by this process's devices (what this host must load)."""
    sharding = batch_sharding(mesh)
    rows = set()
    for index in sharding.addressable_devices_indices_map((global_batch,)).values():
        rows.update(range(*index[0].indices(global_batch)))
    return np.array(sorted(rows), dtype=np.int64)


def global_batch(local: Mapping[str, np.ndarray], mesh, global_size: int,
                 axis: int = 0) -> dict[str, jax.Array]:
    """Assemble each process's rows (in `process_rows` order, along the batch axis `axis`) into
    global arrays sharded on 'data'."""
    sharding = batch_sharding(mesh, axis)

    def assemble(v):
        v = np.asarray(v)
        shape = v.shape[:axis] + (global_size,) + v.shape[axis + 1:]
        return jax.make_array_from_process_local_data(sharding, v, shape)

    return {k: assemble(v) for k, v in local.items()}


def fetch(tree: Any) -> Any:
    """Replicated device arrays -> numpy on this host (reads the local replica; no collective)."""
    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))
        return np.asarray(x)
    return jax.tree.map(get, tree)
