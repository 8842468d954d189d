"""Subprocess driver for the parallel / checkpoint tests: train a family, dump its train state.

    python tests/run_toy.py WORKDIR OUT.npz [key=value ...] [--config FILE.py:ARG]
        [--dump params|state] [--pause_at K] [--cpu_devices N] [--mesh_devices N]
        [--coordinator 127.0.0.1:PORT --num_processes P --process_id I] [--sigterm_at K] [--evaluate]

Without --config it trains the toy family (tests/toy_family.py); with it, that config (e.g.
configs/deepfill_v2.py:test). OUT.npz holds this process's copy of every leaf (key = its tree
path) of the parameters (`state.params`, --dump params) or of the whole train state (--dump state:
every network, optimiser state, spectral-norm vectors, the step). The per-log metrics are in
WORKDIR/metrics.jsonl (written by process 0).

--pause_at K: once steps 1..K have been dispatched (and step K's checkpoint, if it is one, handed
to the checkpointer), the process writes WORKDIR/paused.K and blocks for ever instead of starting
step K+1, so a test can kill it at a known step. Needs config.data.num_workers=0 (batches prepared
on demand: the loop asks for step K+1's batch only after step K).

--sigterm_at K: when the loop asks for the batch of step K+1, the process sends itself SIGTERM (a
preemption notice) and goes on: the loop must stop at a step every process agrees on.

--evaluate: then evaluate the trained state (`inpaintjax.training.evaluate`, every process
scoring its share of the batches) into WORKDIR/eval, and print the overall row as one JSON line
`eval {...}`.

--mesh_devices N: train on a mesh over the first N devices (the test session's set-up: 8 simulated
CPU devices, training on one), so that its programs are those of the tests' own train() calls.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _pause_at(step: int, workdir: str) -> None:
    from inpaintjax.data import pipeline
    original = pipeline.TrainBatches.step_batch

    def step_batch(self, k):
        if k == step:  # the batch of step K+1 (0-based index K): everything before is done
            with open(os.path.join(workdir, f"paused.{step}"), "w") as f:
                f.write(str(os.getpid()))
            while True:
                time.sleep(3600)
        return original(self, k)

    pipeline.TrainBatches.step_batch = step_batch


def _sigterm_at(step: int) -> None:
    import signal
    from inpaintjax.data import pipeline
    original = pipeline.TrainBatches.step_batch

    def step_batch(self, k):
        if k == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, k)

    pipeline.TrainBatches.step_batch = step_batch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("workdir")
    p.add_argument("out")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--config", default="")
    p.add_argument("--dump", choices=("params", "state"), default="params")
    p.add_argument("--pause_at", type=int, default=-1)
    p.add_argument("--cpu_devices", type=int, default=0)
    p.add_argument("--mesh_devices", type=int, default=0)
    p.add_argument("--coordinator", default="")
    p.add_argument("--num_processes", type=int, default=1)
    p.add_argument("--process_id", type=int, default=0)
    p.add_argument("--evaluate", action="store_true")
    p.add_argument("--sigterm_at", type=int, default=-1)
    a = p.parse_intermixed_args()
    import jax
    if a.cpu_devices:
        jax.config.update("jax_num_cpu_devices", a.cpu_devices)
    if a.coordinator:
        jax.distributed.initialize(coordinator_address=a.coordinator, num_processes=a.num_processes,
                                   process_id=a.process_id, coordinator_bind_address=a.coordinator)
    import numpy as np

    import toy_family
    from inpaintjax.config import apply_overrides, load_config_file
    from inpaintjax.training import sharding, train

    if a.mesh_devices:  # train on the first N devices only, as the test session's train() does
        sharding.make_mesh = lambda: jax.make_mesh(
            (a.mesh_devices,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
            devices=jax.devices()[:a.mesh_devices])
    base = load_config_file(a.config) if a.config else toy_family.toy_config()
    config = apply_overrides(base, a.overrides)
    if a.pause_at >= 0:
        if int(config.data.get("num_workers", 0)) != 0:
            raise SystemExit("--pause_at needs data.num_workers=0")
        os.makedirs(a.workdir, exist_ok=True)
        _pause_at(a.pause_at, a.workdir)
    if a.sigterm_at >= 0:
        _sigterm_at(a.sigterm_at)
    result = train(config, a.workdir)
    tree = result["state"].params if a.dump == "params" else result["state"]
    tree = sharding.fetch(tree)
    flat = {jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
    np.savez(a.out, **flat)
    print(f"devices={jax.device_count()} processes={jax.process_count()} step={result['step']}", flush=True)
    if a.evaluate:
        import json

        from inpaintjax.families import get as get_family
        from inpaintjax.training.evaluate import evaluate
        family = get_family(config.family)(config)
        summary = evaluate(config, family, family.inference_variables(result["state"]), a.workdir,
                           progress=False)
        print("eval " + json.dumps(summary["all"]), flush=True)


if __name__ == "__main__":
    main()
