"""The generic training loop: any family, any number of devices and hosts.

    train_and_evaluate(config, workdir)

One mesh over all devices (axis 'data'); the batch is sharded, the state replicated; the step is
`jax.jit`-ed with the state donated. The loop touches the host only at log, image and checkpoint
steps. A non-finite metric (any loss term or gradient norm the family reports) is caught inside the
jitted step: the update is not applied, the first bad step and the bad terms are recorded, and the
loop raises `NonFiniteError` at the next log or checkpoint step without saving, so the newest
checkpoint is the last good state.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inpaintjax import config as config_lib
from inpaintjax import data as data_lib
from inpaintjax.families import get as get_family
from inpaintjax.training import checkpoint as ckpt_lib
from inpaintjax.training import logs as logs_lib
from inpaintjax.training import sharding as shard_lib

log = logging.getLogger(__name__)


class NonFiniteError(FloatingPointError):
    """Training produced a NaN/Inf loss term or gradient norm (`step`, `terms`)."""

    def __init__(self, message: str, step: int, terms: list[str]):
        super().__init__(message)
        self.step, self.terms = step, terms


def _zero_carry(names: list[str]) -> dict:
    """Device-side accumulators: metric sums over finite steps since the last log, and the guard."""
    return {"sums": {k: jnp.zeros((), jnp.float32) for k in names},
            "count": jnp.zeros((), jnp.int32),
            "bad_step": jnp.full((), -1, jnp.int32),
            "bad_terms": {k: jnp.zeros((), jnp.bool_) for k in names},
            "bad_values": {k: jnp.zeros((), jnp.float32) for k in names}}


def make_train_step(family, step_root: jax.Array, names: list[str]):
    """(state, carry, batch) -> (state, carry): one guarded update plus metric accumulation."""

    def step_fn(state, carry, batch):
        step = state.step
        new_state, metrics = family.train_step(state, batch, jax.random.fold_in(step_root, step))
        metrics = {k: jnp.asarray(metrics[k], jnp.float32) for k in names}
        finite = {k: jnp.all(jnp.isfinite(v)) for k, v in metrics.items()}
        ok = jnp.all(jnp.stack(list(finite.values())))
        # a non-finite update is never applied: keep the previous state
        state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, state)
        first_bad = jnp.logical_and(carry["bad_step"] < 0, jnp.logical_not(ok))
        carry = {
            "sums": {k: carry["sums"][k] + jnp.where(ok, jnp.mean(metrics[k]), 0.0) for k in names},
            "count": carry["count"] + ok.astype(jnp.int32),
            "bad_step": jnp.where(first_bad, step.astype(jnp.int32), carry["bad_step"]),
            "bad_terms": {k: jnp.where(first_bad, jnp.logical_not(finite[k]), carry["bad_terms"][k])
                          for k in names},
            "bad_values": {k: jnp.where(first_bad, jnp.mean(metrics[k]), carry["bad_values"][k])
                           for k in names},
        }
        return state, carry

    return step_fn


def _check_guard(carry_host: dict, workdir: str, ckpt: ckpt_lib.Checkpointer) -> None:
    bad = int(carry_host["bad_step"])
    if bad < 0:
        return
    terms = [k for k, v in carry_host["bad_terms"].items() if bool(v)]
    values = ", ".join(f"{k}={float(carry_host['bad_values'][k])}" for k in terms)
    ckpt.wait()
    steps = ckpt.steps()
    kept = (f"the last good checkpoint (step {steps[-1]}) in {ckpt.directory} is kept"
            if steps else "no checkpoint had been written yet")
    raise NonFiniteError(
        f"non-finite {' and '.join(terms)} at step {bad} ({values}); the update was not applied, "
        f"training stopped and {kept}. Lower the learning rate or check the data, then rerun in "
        f"{workdir} to resume from that checkpoint.", bad, terms)


def _replicate(tree: Any, sharding) -> Any:
    """Host arrays identical on every process -> replicated global arrays (multi-host safe)."""
    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])
    return jax.tree.map(put, tree)


class _Preempted:
    """SIGTERM (preemption) notice: set by the handler, read by the loop without a host sync."""

    def __init__(self):
        self.flag = False
        self._old = None

    def __enter__(self):
        if jax.process_count() == 1:
            try:
                self._old = signal.signal(signal.SIGTERM, self._handle)
            except ValueError:  # not the main thread: no handler
                self._old = None
        return self

    def _handle(self, signum, frame):
        self.flag = True

    def reached(self, step: int) -> bool:
        if jax.process_count() > 1:
            # every process must agree on the step: jax.distributed's preemption sync point
            from jax.experimental import multihost_utils
            try:
                return bool(multihost_utils.reached_preemption_sync_point(step))
            except RuntimeError:
                return False
        return self.flag

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
        return False


def _lr_of(config) -> float | None:
    for key in ("lr", "learning_rate"):
        if key in config.optim:
            return float(config.optim[key])
    return None


def train_and_evaluate(config, workdir: str) -> dict:
    """Train `config.family` on `config.data` for `config.num_steps` steps in `workdir`.

    Resumes from the newest readable checkpoint in `workdir/checkpoints` when there is one.
    Writes `workdir/config.json`, TensorBoard events in `workdir/tb`, `workdir/metrics.jsonl`.
    Returns {'step', 'metrics' (the last logged means), 'preempted', 'state' (the final train
    state, replicated)}. Raises NonFiniteError (see the module docstring).
    """
    workdir = os.path.abspath(workdir)
    is_main = jax.process_index() == 0
    family = get_family(config.family)(config)
    mesh = shard_lib.make_mesh()
    global_size = int(config.batch_size)
    per_device = shard_lib.check_batch_size(global_size, mesh)
    rows = shard_lib.process_rows(global_size, mesh)
    repl = shard_lib.replicated(mesh)
    num_steps = int(config.num_steps)
    os.makedirs(workdir, exist_ok=True)
    if is_main:
        config_lib.save_config(config, os.path.join(workdir, ckpt_lib.CONFIG_FILE))
    logger = logs_lib.RunLogger(workdir, num_steps, enabled=is_main)
    logger.text(f"inpaintjax: family {config.family}; {jax.device_count()} device(s) on "
                f"{jax.process_count()} process(es) ({jax.devices()[0].platform}); global batch "
                f"{global_size} = {per_device} per device x {jax.device_count()} devices; "
                f"this process loads rows {rows[0]}..{rows[-1]}; workdir {workdir}")

    source = data_lib.make_source(config.data, "train")
    logger.text(f"data: {data_lib.sources.describe(source)}; masks: {config.mask.generator}"
                f"{' (one per batch)' if config.mask.per_batch else ''}")
    data = data_lib.TrainBatches(config, source, rows)

    root = jax.random.key(int(config.seed))
    init_key, step_root = jax.random.split(root)
    ckpt = ckpt_lib.Checkpointer(workdir, config.keep_checkpoints)
    abstract = ckpt_lib.abstract_state(family, config, repl)
    found = ckpt.restore(abstract)
    if found is not None:
        start, state, meta = found
        if int(meta.get("seed", config.seed)) != int(config.seed):
            raise ValueError(f"checkpoint {start} in {ckpt.directory} was trained with seed "
                             f"{meta['seed']}, the config says {config.seed}: use another workdir")
        start = int(meta.get("next_batch", start))
        logger.text(f"resumed from checkpoint {start} in {ckpt.directory}")
    else:
        size = int(config.data.image_size)
        example = {"image": np.zeros((1, size, size, 3), np.float32),
                   "mask": np.zeros((1, size, size, 1), np.float32)}
        if config.data.guide:
            example["guide"] = np.zeros((1, size, size, 1), np.float32)
        state = jax.jit(family.init_state, out_shardings=repl)(init_key, example)
        start = 0

    batch_shapes = {"image": jax.ShapeDtypeStruct((global_size,) + abstract_batch_hw(config, 3), jnp.float32),
                    "mask": jax.ShapeDtypeStruct((global_size,) + abstract_batch_hw(config, 1), jnp.float32)}
    if config.data.guide:
        batch_shapes["guide"] = jax.ShapeDtypeStruct((global_size,) + abstract_batch_hw(config, 1), jnp.float32)
    _, metric_shapes = jax.eval_shape(family.train_step, abstract, batch_shapes, step_root)
    names = sorted(metric_shapes)
    train_step = jax.jit(make_train_step(family, step_root, names), donate_argnums=(0, 1),
                         out_shardings=(repl, repl))
    zero_carry = jax.jit(lambda: _zero_carry(names), out_shardings=repl)
    carry = zero_carry()

    preview = _replicate(data_lib.preview_batch(config, 4), repl) if int(config.image_every) > 0 else None
    inpaint = jax.jit(lambda st, b: family.inpaint(family.inference_variables(st), b["image"],
                                                   b["mask"], b.get("guide")))
    lr = _lr_of(config)

    log_every, image_every = int(config.log_every), int(config.image_every)
    ckpt_every = int(config.checkpoint_every)
    last_metrics: dict[str, float] = {}
    last_time, last_step = time.perf_counter(), start
    step = start
    preempted = False
    batches = data.iterate(start, num_steps)
    try:
        with _Preempted() as notice:
            for step in range(start + 1, num_steps + 1):
                batch = shard_lib.global_batch(next(batches), mesh, global_size)
                state, carry = train_step(state, carry, batch)
                preempted = notice.reached(step)
                if step % log_every == 0 or step == num_steps or preempted:
                    host = shard_lib.fetch(carry)
                    _check_guard(host, workdir, ckpt)
                    now = time.perf_counter()
                    rate = (step - last_step) / max(now - last_time, 1e-9)
                    last_time, last_step = now, step
                    count = max(int(host["count"]), 1)
                    last_metrics = {k: float(host["sums"][k]) / count for k in names}
                    if lr is not None and not any(k == "lr" or k.endswith("/lr") for k in names):
                        last_metrics["lr"] = lr
                    logger.scalars(step, last_metrics, rate)
                    carry = zero_carry()
                if image_every > 0 and (step % image_every == 0 or step == num_steps):
                    out = shard_lib.fetch(inpaint(state, preview))
                    host_preview = shard_lib.fetch(preview)
                    extras = {k: v for k, v in out.items() if k != "output" and np.ndim(v) == 4}
                    logger.image(step, "preview/" + "_".join(logs_lib.grid_columns(extras)),
                                 logs_lib.image_grid(host_preview["image"], host_preview["mask"],
                                                     out["output"], extras))
                if step % ckpt_every == 0 or step == num_steps or preempted:
                    _check_guard(shard_lib.fetch(carry), workdir, ckpt)
                    ckpt.save(step, state, {"step": step, "seed": int(config.seed),
                                            "next_batch": step, "family": config.family})
                if preempted:
                    logger.text(f"SIGTERM: saved checkpoint {step}; exiting (rerun to resume)")
                    break
        ckpt.wait()
    finally:
        ckpt.close()
        logger.close()
    return {"step": step, "metrics": last_metrics, "preempted": preempted, "state": state}


def abstract_batch_hw(config, channels: int) -> tuple[int, int, int]:
    size = int(config.data.image_size)
    return (size, size, channels)
