"""The generic training loop: any family, any number of devices and hosts.

    train(config, workdir)

One mesh over all devices (axis 'data'); the batch is sharded, the state replicated; the step is
`jax.jit`-ed with the state donated. The family's frozen networks (`load_frozen`) are replicated
once and passed to every step as an argument. The loop touches the host only at log, image and
checkpoint steps.

A non-finite metric (any loss term or gradient norm the family reports, where computed) is caught
inside the jitted step: the update is not applied, the first bad step and the bad terms are
recorded, and the loop raises `NonFiniteError` at the next log or checkpoint step without saving,
so the newest checkpoint is the last good state.

Starting points, in order: the newest readable checkpoint of `workdir` (resume, exact); else, with
`config.init_from = 'OTHER_WORKDIR[:STEP]'`, a fresh state whose named subtrees are copied from
that run (chained phases: a fine-tune, a second model trained on a frozen first); else a fresh state.
"""

from __future__ import annotations

import dataclasses
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
from inpaintjax import masks as masks_lib
from inpaintjax.data import fields as fields_lib
from inpaintjax.families import Metric
from inpaintjax.families import get as get_family
from inpaintjax.training import checkpoint as ckpt_lib
from inpaintjax.training import logs as logs_lib
from inpaintjax.training import sharding as shard_lib

log = logging.getLogger(__name__)


def check_mask_generator(name, key: str) -> None:
    """Raise ValueError naming `key` when `name` is not a mask generator name (see masks.resolve)."""
    try:
        masks_lib.resolve(name)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{key}={name!r}: {e}") from None


def configuration_error(e: BaseException) -> bool:
    """Whether `train` raised `e` because the run cannot start as configured (batch size, data
    folder, frozen weights, init_from, seed): raised before the workdir is touched, or with the
    workdir this run created removed again. Entry points print such errors in one line."""
    return bool(getattr(e, "inpaintjax_configuration_error", False))


def _mark_configuration_error(e: BaseException) -> None:
    e.inpaintjax_configuration_error = True


class NonFiniteError(FloatingPointError):
    """Training produced a NaN/Inf loss term or gradient norm (`step`, `terms`)."""

    def __init__(self, message: str, step: int, terms: list[str]):
        super().__init__(message)
        self.step, self.terms = step, terms


def as_metric(value) -> Metric:
    """A family's metric value as (total, count): plain scalars count once."""
    if isinstance(value, Metric):
        return Metric(jnp.asarray(value.total, jnp.float32), jnp.asarray(value.count, jnp.float32))
    return Metric(jnp.mean(jnp.asarray(value, jnp.float32)), jnp.ones((), jnp.float32))


def zero_carry(names: list[str]) -> dict:
    """Device-side accumulators: metric totals and counts over the applied steps since the last
    log, and the non-finite guard's record of the first bad step."""
    zeros = lambda dtype: {k: jnp.zeros((), dtype) for k in names}  # noqa: E731
    return {"totals": zeros(jnp.float32), "counts": zeros(jnp.float32),
            "bad_step": jnp.full((), -1, jnp.int32), "bad_terms": zeros(jnp.bool_),
            "bad_values": zeros(jnp.float32)}


def make_train_step(family, step_root: jax.Array, names: list[str]):
    """(state, carry, batch, frozen) -> (state, carry): one guarded update and its metrics."""

    def step_fn(state, carry, batch, frozen):
        step = state.step
        new_state, raw = family.train_step(state, batch, jax.random.fold_in(step_root, step), frozen)
        metrics = {k: as_metric(raw[k]) for k in names}
        finite = {k: jnp.logical_or(m.count <= 0, jnp.all(jnp.isfinite(m.total)))
                  for k, m in metrics.items()}
        ok = jnp.all(jnp.stack(list(finite.values())))
        # a non-finite update is never applied: keep the previous state
        state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, state)
        first_bad = jnp.logical_and(carry["bad_step"] < 0, jnp.logical_not(ok))
        carry = {
            "totals": {k: carry["totals"][k] + jnp.where(ok & (m.count > 0), m.total, 0.0)
                       for k, m in metrics.items()},
            "counts": {k: carry["counts"][k] + jnp.where(ok, m.count, 0.0) for k, m in metrics.items()},
            "bad_step": jnp.where(first_bad, step.astype(jnp.int32), carry["bad_step"]),
            "bad_terms": {k: jnp.where(first_bad, jnp.logical_not(finite[k]), carry["bad_terms"][k])
                          for k in names},
            "bad_values": {k: jnp.where(first_bad, metrics[k].total, carry["bad_values"][k])
                           for k in names},
        }
        return state, carry

    return step_fn


def metric_means(carry_host: dict) -> dict[str, float]:
    """Logged values: total / count of each metric computed since the last log (others omitted)."""
    return {k: float(carry_host["totals"][k]) / float(c)
            for k, c in sorted(carry_host["counts"].items()) if float(c) > 0}


def check_guard(carry_host: dict, workdir: str, ckpt: ckpt_lib.Checkpointer) -> None:
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


def replicate(tree: Any, sharding) -> Any:
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


# -- starting from another run -----------------------------------------------------------------

def parse_init_from(spec: str) -> tuple[str, int | None]:
    """'WORKDIR[:STEP]' -> (absolute workdir, step or None)."""
    path, step = spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isdigit() and head:
        path, step = head, int(tail)
    return os.path.abspath(path), step


def parse_paths(text: str, default: tuple[str, ...]) -> list[tuple[str, str]]:
    """'a,b' or 'dst=src,...' (or '' for `default`) -> [(destination path, source path)]."""
    items = [t.strip() for t in text.split(",") if t.strip()] if text else list(default)
    if not items:
        raise ValueError("config.init_from is set but no state paths are named: set "
                         "config.init_from_paths (e.g. 'g_params') or use a family with "
                         "warm_start_paths")
    pairs = []
    for item in items:
        dst, _, src = item.partition("=")
        pairs.append((dst.strip(), (src or dst).strip()))
    return pairs


def _subtree(tree: Any, path: str, what: str) -> Any:
    node = tree
    for part in path.split("."):
        if dataclasses.is_dataclass(node) and part in {f.name for f in dataclasses.fields(node)}:
            node = getattr(node, part)
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            keys = ([f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node)
                    else sorted(node) if isinstance(node, dict) else [])
            raise KeyError(f"init_from: {what} has no {path!r} (at {part!r}; there: "
                           f"{', '.join(map(str, keys)) or 'a leaf'})")
    return node


def _replace_subtree(tree: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    if dataclasses.is_dataclass(tree):
        child = getattr(tree, head)
        return tree.replace(**{head: _replace_subtree(child, rest, value) if rest else value})
    out = dict(tree)
    out[head] = _replace_subtree(tree[head], rest, value) if rest else value
    return type(tree)(out) if not isinstance(tree, dict) else out


def warm_start(state: Any, source: Any, pairs: list[tuple[str, str]], origin: str) -> Any:
    """`state` with each destination subtree replaced by the source run's subtree (same tree
    structure, shapes and dtypes, else an error naming the path)."""
    for dst, src in pairs:
        old = _subtree(state, dst, "this run's state")
        new = _subtree(source, src, f"the state of {origin}")
        if jax.tree.structure(old) != jax.tree.structure(new):
            raise ValueError(f"init_from: {src!r} of {origin} and {dst!r} of this run differ in "
                             f"structure (another model size or family?)")
        for (kp, a), b in zip(jax.tree_util.tree_flatten_with_path(old)[0], jax.tree.leaves(new)):
            if a.shape != b.shape or a.dtype != b.dtype:
                raise ValueError(f"init_from: {dst}{jax.tree_util.keystr(kp)} is {a.shape} {a.dtype} "
                                 f"here but {b.shape} {b.dtype} in {origin}")
        state = _replace_subtree(state, dst, jax.tree.map(lambda a, b: b.astype(a.dtype), old, new))
    return state


def restore_other_run(spec: str, sharding) -> tuple[Any, str]:
    """(state, description) of the checkpoint named by 'WORKDIR[:STEP]', read with that run's own
    saved config and family."""
    workdir, step = parse_init_from(spec)
    path = os.path.join(workdir, ckpt_lib.CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config.init_from={spec!r}: {path} not found (not a train.py workdir)")
    other_config = config_lib.read_saved_config(path)
    other = get_family(other_config.family)(other_config)
    ckpt = ckpt_lib.Checkpointer(workdir, read_only=True)
    try:
        found = ckpt.restore(ckpt_lib.abstract_state(other, other_config, sharding), step)
    finally:
        ckpt.close()
    if found is None:
        raise FileNotFoundError(f"config.init_from={spec!r}: no readable checkpoint in "
                                f"{ckpt_lib.checkpoint_dir(workdir)}")
    got, state, _ = found
    return state, f"{workdir} step {got} ({other_config.family})"


# -- the loop -----------------------------------------------------------------------------------

def initial_state(family, config, ckpt, repl, init_key, logger) -> tuple[Any, int]:
    """(state, first step): resumed from the workdir, warm-started from another run, or fresh."""
    abstract = ckpt_lib.abstract_state(family, config, repl)
    found = ckpt.restore(abstract)
    if found is not None:
        start, state, meta = found
        if int(meta.get("seed", config.seed)) != int(config.seed):
            raise ValueError(f"checkpoint {start} in {ckpt.directory} was trained with seed "
                             f"{meta['seed']}, the config says {config.seed}: use another workdir")
        logger.text(f"resumed from checkpoint {start} in {ckpt.directory}")
        return state, int(start)
    size = int(config.data.image_size)
    example = fields_lib.example_batch(family.batch_spec(), 1, size, size)
    state = jax.jit(family.init_state, out_shardings=repl)(init_key, example)
    if config.get("init_from", ""):
        source, origin = restore_other_run(config.init_from, repl)
        pairs = parse_paths(config.get("init_from_paths", ""), family.warm_start_paths)
        state = warm_start(state, source, pairs, origin)
        logger.text(f"init_from: copied {', '.join(d if d == s else f'{d} <- {s}' for d, s in pairs)} "
                    f"from {origin}")
    return state, 0


def train(config, workdir: str) -> dict:
    """Train `config.family` on `config.data` for `config.num_steps` steps in `workdir`.

    Resumes from the newest readable checkpoint in `workdir/checkpoints` when there is one.
    Writes `workdir/config.json`, TensorBoard events in `workdir/tb`, `workdir/metrics.jsonl`.
    Returns {'step', 'metrics' (the last logged means), 'preempted', 'state' (the final train
    state, replicated)}. Raises NonFiniteError (see the module docstring).
    """
    workdir = os.path.abspath(workdir)
    is_main = jax.process_index() == 0
    try:  # everything that can be wrong with the configuration, before any file is written
        family = get_family(config.family)(config)
        spec = family.batch_spec()
        fields_lib.check_spec(spec, f"{config.family}.batch_spec()")
        per_step = int(family.batches_per_step)
        mesh = shard_lib.make_mesh()
        global_size = int(config.batch_size)
        per_device = shard_lib.check_batch_size(global_size, mesh)
        rows = shard_lib.process_rows(global_size, mesh)
        num_steps = int(config.num_steps)
        check_mask_generator(config.mask.generator, "config.mask.generator")
        frozen_host = family.load_frozen()  # a missing weight file stops here
        source = data_lib.make_source(config.data, "train")
    except (ValueError, KeyError, FileNotFoundError, NotADirectoryError) as e:
        _mark_configuration_error(e)
        raise
    repl = shard_lib.replicated(mesh)
    created = not os.path.exists(workdir)
    os.makedirs(workdir, exist_ok=True)
    lock = ckpt_lib.WorkdirLock(workdir) if is_main else None
    took_over = lock.acquire() if lock is not None else None  # WorkdirLockedError: nothing written
    ckpt = logger = None
    try:
        if is_main:
            config_lib.save_config(config, os.path.join(workdir, ckpt_lib.CONFIG_FILE))
        logger = logs_lib.RunLogger(workdir, num_steps, enabled=is_main)
        if took_over:
            logger.text(took_over)
        logger.text(f"inpaintjax: family {config.family}; {jax.device_count()} device(s) on "
                    f"{jax.process_count()} process(es) ({jax.devices()[0].platform}); global batch "
                    f"{global_size} = {per_device} per device x {jax.device_count()} devices"
                    f"{f', {per_step} batches per step' if per_step > 1 else ''}; this process loads "
                    f"rows {rows[0]}..{rows[-1]}; workdir {workdir}")
        logger.text(f"data: {data_lib.describe(source)}; batch {', '.join(sorted(spec))}; masks: "
                    f"{config.mask.generator}{' (one per batch)' if config.mask.per_batch else ''}")
        data = data_lib.TrainBatches(config, source, rows, spec, per_step)

        root = jax.random.key(int(config.seed))
        init_key, step_root = jax.random.split(root)
        ckpt = ckpt_lib.Checkpointer(workdir, config.keep_checkpoints)
        if is_main:
            ckpt.check_writable()
        frozen = replicate(frozen_host, repl)
        try:
            state, start = initial_state(family, config, ckpt, repl, init_key, logger)
        except (ValueError, KeyError, FileNotFoundError) as e:  # init_from / seed mismatch
            _mark_configuration_error(e)
            raise
    except BaseException:
        if ckpt is not None:
            ckpt.close()
        if logger is not None:
            logger.close()
        if lock is not None:
            lock.release()
        if created and is_main:  # leave no half-made workdir behind
            import shutil
            shutil.rmtree(workdir, ignore_errors=True)
        raise

    size = int(config.data.image_size)
    leading = (per_step,) if per_step > 1 else ()
    batch_shapes = fields_lib.abstract_batch(spec, global_size, size, size, leading)
    _, metric_shapes = jax.eval_shape(family.train_step, state, batch_shapes, step_root, frozen)
    names = sorted(metric_shapes)
    train_step = jax.jit(make_train_step(family, step_root, names), donate_argnums=(0, 1),
                         out_shardings=(repl, repl))
    new_carry = jax.jit(lambda: zero_carry(names), out_shardings=repl)
    carry = new_carry()

    image_every = int(config.image_every)
    preview = None
    if image_every > 0:
        host_preview = data_lib.preview_batch(config, spec, 4)
        preview = replicate(family.inference_inputs(host_preview), repl)
    inpaint = jax.jit(lambda st, inputs: family.inpaint(family.inference_variables(st), inputs))

    log_every, ckpt_every = int(config.log_every), int(config.checkpoint_every)
    batch_axis = len(leading)
    last_metrics: dict[str, float] = {}
    last_time, last_step = time.perf_counter(), start
    step = start
    preempted = False
    batches = data.iterate(start, num_steps)
    try:
        with _Preempted() as notice:
            for step in range(start + 1, num_steps + 1):
                batch = shard_lib.global_batch(next(batches), mesh, global_size, batch_axis)
                state, carry = train_step(state, carry, batch, frozen)
                preempted = notice.reached(step)
                if step % log_every == 0 or step == num_steps or preempted:
                    host = shard_lib.fetch(carry)
                    check_guard(host, workdir, ckpt)
                    now = time.perf_counter()
                    rate = (step - last_step) / max(now - last_time, 1e-9)
                    last_time, last_step = now, step
                    last_metrics = metric_means(host)
                    logger.scalars(step, last_metrics, rate)
                    carry = new_carry()
                if preview is not None and (step % image_every == 0 or step == num_steps):
                    out = shard_lib.fetch(inpaint(state, preview))
                    extras = {k: v for k, v in out.items() if k != "output" and np.ndim(v) == 4}
                    logger.image(step, "preview/" + "_".join(logs_lib.grid_columns(extras)),
                                 logs_lib.image_grid(host_preview["image"], host_preview["mask"],
                                                     out["output"], extras))
                if step % ckpt_every == 0 or step == num_steps or preempted:
                    check_guard(shard_lib.fetch(carry), workdir, ckpt)
                    ckpt.save(step, state, {"step": step, "seed": int(config.seed),
                                            "family": config.family})
                if preempted:
                    logger.text(f"SIGTERM: saved checkpoint {step}; exiting (rerun to resume)")
                    break
        ckpt.wait()
    finally:
        ckpt.close()
        logger.close()
        if lock is not None:
            lock.release()
    return {"step": step, "metrics": last_metrics, "preempted": preempted, "state": state}
