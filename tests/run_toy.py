"""Subprocess driver for the parallel / checkpoint tests: train the toy family, dump the parameters.

    python tests/run_toy.py WORKDIR OUT.npz [key=value ...] [--cpu_devices N]
        [--coordinator 127.0.0.1:PORT --num_processes P --process_id I]

OUT.npz holds this process's copy of every parameter leaf (key = its tree path) and the per-log
metrics are in WORKDIR/metrics.jsonl (written by process 0).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("workdir")
    p.add_argument("out")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--cpu_devices", type=int, default=0)
    p.add_argument("--coordinator", default="")
    p.add_argument("--num_processes", type=int, default=1)
    p.add_argument("--process_id", type=int, default=0)
    a = p.parse_args()
    import jax
    if a.cpu_devices:
        jax.config.update("jax_num_cpu_devices", a.cpu_devices)
    if a.coordinator:
        jax.distributed.initialize(coordinator_address=a.coordinator, num_processes=a.num_processes,
                                   process_id=a.process_id, coordinator_bind_address=a.coordinator)
    import numpy as np

    import toy_family
    from inpaintjax.config import apply_overrides
    from inpaintjax.training import sharding, train

    config = apply_overrides(toy_family.toy_config(), a.overrides)
    result = train(config, a.workdir)
    params = sharding.fetch(result["state"].params)
    flat = {jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_flatten_with_path(params)[0]}
    np.savez(a.out, **flat)
    print(f"devices={jax.device_count()} processes={jax.process_count()} step={result['step']}", flush=True)


if __name__ == "__main__":
    main()
