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

Starting points, in order: the newest readable checkpoint of `workdir` (resume, exact; the config
may change only what schedules the work, and the logs keep each step once: resume.py); else, with
`config.init_from = 'OTHER_WORKDIR[:STEP]'`, a fresh state whose named subtrees are copied from
that run (warm_start.py); else a fresh state.

`train` runs in three parts: `plan_run` checks the configuration before any file is written,
`open_run` locks the workdir, restores or initialises the state and writes the run's record,
`run_steps` is the loop.
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
from inpaintjax.data.pipeline import check_crop
from inpaintjax.families import Metric, common
from inpaintjax.families import get as get_family
from inpaintjax.training import checkpoint as ckpt_lib
from inpaintjax.training import logs as logs_lib
from inpaintjax.training import pictures
from inpaintjax.training import resume as resume_lib
from inpaintjax.training import sharding as shard_lib
from inpaintjax.training import warm_start as warm_start_lib

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


def mark_configuration_error(e: BaseException) -> None:
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
    log, and the non-finite guard's record of the first bad step (numbered from 1, as logged)."""
    zeros = lambda dtype: {k: jnp.zeros((), dtype) for k in names}  # noqa: E731
    return {"totals": zeros(jnp.float32), "counts": zeros(jnp.float32),
            "bad_step": jnp.full((), -1, jnp.int32), "bad_terms": zeros(jnp.bool_),
            "bad_values": zeros(jnp.float32)}


def _materialised_all(flags: list[jax.Array]) -> jax.Array:
    """jnp.all of scalar booleans, computed once in the compiled program. The guard's predicate
    selects every leaf of the state; written as a chain of ands, XLA fuses a copy of the chain
    (and of the metric arithmetic it reads) into each leaf's select: DeepFill v2's guarded step
    (`test` preset) held 3,150 is-finite instructions for its 15 metrics and an optimised program
    of 37,910 lines instead of 25,834 (docs/performance.md, "The guarded step"). A sort is not
    fused into its consumers: the selects read its result."""
    ints = jnp.stack([f.astype(jnp.int32) for f in flags])
    return jax.lax.sort(ints)[0] == 1


def make_train_step(family, step_root: jax.Array, state, batch, frozen):
    """(step_fn, metric names): step_fn (state, carry, batch, frozen) -> (state, carry) is one
    guarded update and its metrics. `state`, `batch` and `frozen` (arrays or
    `jax.ShapeDtypeStruct`s) are what step_fn will be called with: the family's step is traced
    once for them, to learn its metric names, and step_fn reuses that trace (a call of the same
    jitted function on the same shapes), so it is not traced again when step_fn is."""
    family_step = jax.jit(family.train_step)

    def update(state, batch, frozen):  # the same call, with the same argument types, both times
        return family_step(state, batch, jax.random.fold_in(step_root, state.step), frozen)

    names = sorted(jax.eval_shape(update, state, batch, frozen)[1])

    def step_fn(state, carry, batch, frozen):
        step = state.step
        new_state, raw = update(state, batch, frozen)
        metrics = {k: as_metric(raw[k]) for k in names}
        finite = {k: jnp.logical_or(m.count <= 0, jnp.all(jnp.isfinite(m.total)))
                  for k, m in metrics.items()}
        ok = _materialised_all(list(finite.values()))
        # a non-finite update is never applied: keep the previous state
        state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, state)
        first_bad = jnp.logical_and(carry["bad_step"] < 0, jnp.logical_not(ok))
        carry = {
            "totals": {k: carry["totals"][k] + jnp.where(ok & (m.count > 0), m.total, 0.0)
                       for k, m in metrics.items()},
            "counts": {k: carry["counts"][k] + jnp.where(ok, m.count, 0.0) for k, m in metrics.items()},
            # the step's number as the log and the checkpoints count it: 1 for the first update
            "bad_step": jnp.where(first_bad, step.astype(jnp.int32) + 1, carry["bad_step"]),
            "bad_terms": {k: jnp.where(first_bad, jnp.logical_not(finite[k]), carry["bad_terms"][k])
                          for k in names},
            "bad_values": {k: jnp.where(first_bad, metrics[k].total, carry["bad_values"][k])
                           for k in names},
        }
        return state, carry

    return step_fn, names


def metric_means(carry_host: dict) -> dict[str, float]:
    """Logged values: total / count of each metric computed since the last log (others omitted)."""
    return {k: float(carry_host["totals"][k]) / float(c)
            for k, c in sorted(carry_host["counts"].items()) if float(c) > 0}


def raise_if_non_finite(carry_host: dict, workdir: str, ckpt: ckpt_lib.Checkpointer) -> None:
    """Raise NonFiniteError when the step guard recorded a non-finite metric since the last log
    (after the pending checkpoint saves finished, naming the last good checkpoint)."""
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


# -- the loop -----------------------------------------------------------------------------------

#: schedule keys and their least value (image_every 0 = no previews); all are whole numbers
INTERVALS = (("num_steps", 1), ("log_every", 1), ("checkpoint_every", 1), ("keep_checkpoints", 1),
             ("image_every", 0))


def check_intervals(config) -> None:
    """Raise ValueError naming the first schedule key (INTERVALS) below its least value."""
    for key, least in INTERVALS:
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            meaning = "a whole number, at least 1" if least else "a whole number, 0 (off) or more"
            raise ValueError(f"config.{key}={value!r}: must be {meaning}")


@dataclasses.dataclass
class RunPlan:
    """Everything about a run that is checked before any file is written."""
    family: Any
    spec: dict
    per_step: int            # batches per step (family.batches_per_step)
    mesh: Any
    global_size: int
    per_device: int
    rows: Any                # the global batch rows this process loads
    frozen_host: Any         # the family's frozen networks, on the host
    source: Any              # the training data source
    config_changes: dict     # the allowed config changes of a resume ({} for a fresh run)


def plan_run(config, workdir: str) -> RunPlan:
    """Check the configuration (and, for a workdir with checkpoints, that the config may resume
    it); raises a configuration error (see `configuration_error`) before anything is written."""
    try:
        check_intervals(config)
        family = get_family(config.family)(config)
        spec = family.batch_spec()
        fields_lib.check_spec(spec, f"{config.family}.batch_spec()")
        mesh = shard_lib.make_mesh()
        global_size = int(config.batch_size)
        per_device = shard_lib.check_batch_size(global_size, mesh)
        rows = shard_lib.process_rows(global_size, mesh)
        check_mask_generator(config.mask.generator, "config.mask.generator")
        check_crop(config.data.crop)
        from inpaintjax.training.evaluate import mask_generators  # the eval.py that follows reads them
        for name in mask_generators(config):
            check_mask_generator(name, "config.eval.mask_generator")
        if os.path.exists(workdir) and not os.path.isdir(workdir):
            raise NotADirectoryError(f"--workdir {workdir!r} is a file, not a run directory; name a "
                                     f"new or existing directory")
        changes = resume_lib.check_resume_config(workdir, config) if _has_checkpoints(workdir) else {}
        frozen_host = family.load_frozen()  # a missing weight file stops here
        source = data_lib.make_source(config.data, "train")
    except (ValueError, KeyError, FileNotFoundError, NotADirectoryError) as e:
        mark_configuration_error(e)
        raise
    return RunPlan(family, spec, int(family.batches_per_step), mesh, global_size, per_device, rows,
                   frozen_host, source, changes)


def _has_checkpoints(workdir: str) -> bool:
    directory = ckpt_lib.checkpoint_dir(workdir)
    if not os.path.isdir(directory):
        return False
    ckpt = ckpt_lib.Checkpointer(workdir, read_only=True)
    try:
        return bool(ckpt.steps())
    finally:
        ckpt.close()


def initial_state(family, config, ckpt, repl, init_key) -> tuple[Any, int, list[str]]:
    """(state, first step, messages for the log): resumed from the workdir, warm-started from
    another run (warm_start.py), or fresh."""
    size = int(config.data.image_size)
    example = fields_lib.example_batch(family.batch_spec(), 1, size, size)
    # one jitted initialisation, traced once: for the shapes a restore needs, then (on a fresh
    # start) called on the same example
    init = jax.jit(family.init_state, out_shardings=repl)
    found = ckpt.restore(ckpt_lib.with_sharding(jax.eval_shape(init, init_key, example), repl))
    if found is not None:
        start, state, meta = found
        if int(meta.get("seed", config.seed)) != int(config.seed):
            raise ValueError(f"checkpoint {start} in {ckpt.directory} was trained with seed "
                             f"{meta['seed']}, the config says {config.seed}: use another workdir")
        if int(start) > int(config.num_steps):
            raise ValueError(f"config.num_steps={config.num_steps} is below checkpoint {start} in "
                             f"{ckpt.directory}: nothing would train. Set num_steps above {start} "
                             f"to train on, or use another workdir")
        done = "; num_steps reached, nothing to train" if int(start) == int(config.num_steps) else ""
        return state, int(start), [f"resumed from checkpoint {start} in {ckpt.directory}{done}"]
    state = init(init_key, example)
    if config.get("init_from", ""):
        state, message = warm_start_lib.apply_init_from(state, family, config, repl)
        return state, 0, [message]
    return state, 0, []


@dataclasses.dataclass
class Run:
    """An open run: the workdir's lock, checkpointer and logger, and the starting state."""
    workdir: str
    lock: Any
    ckpt: Any
    logger: Any
    state: Any
    start: int
    frozen: Any
    step_root: Any
    repl: Any

    def close(self) -> None:
        """Finish pending checkpoint saves, close the logs, release the workdir."""
        try:
            if self.ckpt is not None:
                self.ckpt.close()
        finally:
            if self.logger is not None:
                self.logger.close()
            if self.lock is not None:
                self.lock.release()


def _record(config, plan: RunPlan, workdir: str, start: int, is_main: bool) -> list[str]:
    """Write the run's record for this start (config.json on a fresh start, never on a resume;
    starts.jsonl; logs after checkpoint `start` dropped) and return the log lines about it."""
    program = resume_lib.program_setup()
    lines = [resume_lib.describe_program(program)]
    if plan.config_changes and start:
        lines.append("resumed with config changes: " + "; ".join(
            f"{k}: {v[0]!r} -> {v[1]!r}" for k, v in plan.config_changes.items()))
    if is_main:
        if not start:  # a fresh start: this config is the run's record
            config_lib.save_config(config, os.path.join(workdir, ckpt_lib.CONFIG_FILE))
        resume_lib.record_start(workdir, start, plan.config_changes if start else {}, program)
        dropped = resume_lib.truncate_logs(workdir, start)
        if dropped:
            lines.append(f"dropped {dropped} log record(s) written after step {start} by the "
                         f"previous run (they are logged again)")
    return lines


def open_run(config, plan: RunPlan, workdir: str, num_steps: int) -> Run:
    """Create (or resume in) `workdir`: lock it, restore or initialise the state, write the run
    record and open the logs. On any error, close what was opened and remove a workdir this run
    created, so a failed start leaves nothing behind."""
    is_main = jax.process_index() == 0
    repl = shard_lib.replicated(plan.mesh)
    created = not os.path.exists(workdir)
    os.makedirs(workdir, exist_ok=True)
    lock = ckpt_lib.WorkdirLock(workdir) if is_main else None
    took_over = lock.acquire() if lock is not None else None  # WorkdirLockedError: nothing written
    run = Run(workdir, lock, None, None, None, 0, None, None, repl)
    try:
        init_key, run.step_root = jax.random.split(jax.random.key(int(config.seed)))
        run.ckpt = ckpt_lib.Checkpointer(workdir, config.keep_checkpoints)
        if is_main:
            run.ckpt.check_writable()
        run.frozen = replicate(plan.frozen_host, repl)
        try:
            run.state, run.start, messages = initial_state(plan.family, config, run.ckpt, repl, init_key)
        except (ValueError, KeyError, FileNotFoundError) as e:  # init_from / seed mismatch
            mark_configuration_error(e)
            raise
        program, *record = _record(config, plan, workdir, run.start, is_main)
        short_ema = common.ema_horizon_warning(plan.family.ema_decay, num_steps)
        messages = record + messages + ([short_ema] if short_ema else [])
        run.logger = logs_lib.RunLogger(workdir, num_steps, enabled=is_main)
        run.logger.text(
            f"inpaintjax: family {config.family}; {jax.device_count()} device(s) on "
            f"{jax.process_count()} process(es) ({jax.devices()[0].platform}); global batch "
            f"{plan.global_size} = {plan.per_device} per device x {jax.device_count()} devices"
            f"{f', {plan.per_step} batches per step' if plan.per_step > 1 else ''}; this process "
            f"loads rows {plan.rows[0]}..{plan.rows[-1]}; workdir {workdir}; {program}")
        if took_over:
            run.logger.text(took_over)
        run.logger.text(f"data: {data_lib.describe(plan.source)}; batch {', '.join(sorted(plan.spec))}; "
                        f"masks: {config.mask.generator}"
                        f"{' (one per batch)' if config.mask.per_batch else ''}")
        for message in messages:
            run.logger.text(message)
    except BaseException:
        run.close()
        if created and is_main:  # leave no half-made workdir behind
            import shutil
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    return run


class StepClock:
    """Steps per second between log steps, compile time excluded: timing starts when the first
    step of this process has finished (`started`), as clu's ReportProgress and big_vision's chrono
    do. `rate(step)` is None when no step has been timed since the last call."""

    def __init__(self, clock=time.perf_counter):
        self._clock = clock
        self._time: float | None = None
        self._step = 0

    def started(self, step: int) -> None:
        """The (compiling) step `step` has finished: time from here."""
        self._time, self._step = self._clock(), step

    def rate(self, step: int) -> float | None:
        now = self._clock()
        if self._time is None or step <= self._step:
            return None
        rate = (step - self._step) / max(now - self._time, 1e-9)
        self._time, self._step = now, step
        return rate


def _preview(family, config, spec, repl):
    """(host batch, replicated inference inputs, jitted inpaint) for the TensorBoard previews, or
    None when config.image_every is 0."""
    if int(config.image_every) <= 0:
        return None
    host = data_lib.preview_batch(config, spec, 4)
    inputs = replicate(family.inference_inputs(host), repl)
    inpaint = jax.jit(lambda st, x: family.inpaint(family.inference_variables(st), x))
    return host, inputs, inpaint


def _log_preview(logger, step: int, state, preview) -> None:
    host, inputs, inpaint = preview
    out = shard_lib.fetch(inpaint(state, inputs))
    extras = {k: v for k, v in out.items() if k != "output" and np.ndim(v) == 4}
    logger.image(step, "preview/" + "_".join(pictures.grid_columns(extras)),
                 pictures.image_grid(host["image"], host["mask"], out["output"], extras))


def run_steps(config, plan: RunPlan, run: Run, num_steps: int) -> dict:
    """Steps run.start+1 .. num_steps: log, preview and checkpoint at their intervals; returns
    train()'s result."""
    family, logger, ckpt, workdir = plan.family, run.logger, run.ckpt, run.workdir
    size = int(config.data.image_size)
    leading = (plan.per_step,) if plan.per_step > 1 else ()
    # placed as shard_lib.global_batch places the batches (the step's trace is keyed by it)
    placed = shard_lib.batch_sharding(plan.mesh, len(leading))
    batch_shapes = {k: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=placed) for k, x in
                    fields_lib.abstract_batch(plan.spec, plan.global_size, size, size, leading).items()}
    step_fn, names = make_train_step(family, run.step_root, run.state, batch_shapes, run.frozen)
    train_step = jax.jit(step_fn, donate_argnums=(0, 1),
                         out_shardings=(run.repl, run.repl))
    new_carry = jax.jit(lambda: zero_carry(names), out_shardings=run.repl)
    carry = new_carry()
    preview = _preview(family, config, plan.spec, run.repl)
    data = data_lib.TrainBatches(config, plan.source, plan.rows, plan.spec, plan.per_step)
    log_every, ckpt_every, image_every = (int(config.log_every), int(config.checkpoint_every),
                                          int(config.image_every))
    clock = StepClock()
    state, step, preempted, last_metrics = run.state, run.start, False, {}
    batches = data.iterate(run.start, num_steps)
    with _Preempted() as notice:
        for step in range(run.start + 1, num_steps + 1):
            batch = shard_lib.global_batch(next(batches), plan.mesh, plan.global_size, len(leading))
            state, carry = train_step(state, carry, batch, run.frozen)
            if step == run.start + 1:  # compiled and run once: time the steps after it
                jax.block_until_ready(carry)
                clock.started(step)
            preempted = notice.reached(step)
            if step % log_every == 0 or step == num_steps or preempted:
                host = shard_lib.fetch(carry)
                raise_if_non_finite(host, workdir, ckpt)
                last_metrics = metric_means(host)
                logger.scalars(step, last_metrics, clock.rate(step))
                carry = new_carry()
            if preview is not None and (step % image_every == 0 or step == num_steps):
                _log_preview(logger, step, state, preview)
            if step % ckpt_every == 0 or step == num_steps or preempted:
                raise_if_non_finite(shard_lib.fetch(carry), workdir, ckpt)
                ckpt.save(step, state, {"step": step, "seed": int(config.seed),
                                        "family": config.family})
            if preempted:
                logger.text(f"SIGTERM: saved checkpoint {step}; exiting (rerun to resume)")
                break
    ckpt.wait()
    return {"step": step, "metrics": last_metrics, "preempted": preempted, "state": state}


def train(config, workdir: str) -> dict:
    """Train `config.family` on `config.data` for `config.num_steps` steps in `workdir`.

    Resumes from the newest readable checkpoint in `workdir/checkpoints` when there is one (the
    config may change only what resume.RESUMABLE_KEYS lists). Writes `workdir/config.json` (on a
    fresh start), `workdir/starts.jsonl`, TensorBoard events in `workdir/tb`,
    `workdir/metrics.jsonl`. Returns {'step', 'metrics' (the last logged means), 'preempted',
    'state' (the final train state, replicated)}. Raises NonFiniteError (see the module
    docstring); a configuration error (`configuration_error`) before anything is written.
    """
    workdir = os.path.abspath(workdir)
    plan = plan_run(config, workdir)
    num_steps = int(config.num_steps)
    run = open_run(config, plan, workdir, num_steps)
    try:
        return run_steps(config, plan, run, num_steps)
    finally:
        run.close()
