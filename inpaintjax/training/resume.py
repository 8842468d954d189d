"""Resuming a run in its workdir: the config it may change, and logs that hold each step once.

A resumed run continues the saved one. It may change what only schedules the work (`num_steps`,
the log, image and checkpoint intervals, the number of checkpoints kept, the evaluation settings,
the data loader's threads), never what the model is or what data it sees (`family`, `model`,
`loss`, `optim`, `data` except its threads, `mask`, `seed`, `batch_size`, ...): such a change is
refused before anything is written, naming the keys. `config.json` keeps the config the run started
with. Every start of the run appends one line to `starts.jsonl`: {"step" (0 = a fresh start, k =
resumed from checkpoint k), "time", "config_changes": {key: [saved, new]} (the allowed changes of a
resume), "program": what changes the compiled program besides the config (the XLA:CPU set-up and
the convolution implementation, `program_setup()`)}.

Logs: a run killed after step n but last checkpointed at step k < n had logged steps k+1..n; the
resumed run logs them again. Before it starts, every record after step k is removed from
`metrics.jsonl` and from the TensorBoard event files under `tb/` (each file rewritten to a temporary
file and renamed over the old one, so a crash leaves the old file or the new one, never half of
one). After a resume from step k each step appears once.
"""

from __future__ import annotations

import json
import os
import struct
import time
from typing import Any, Mapping

from inpaintjax.checkpoints import CONFIG_FILE

STARTS_FILE = "starts.jsonl"
METRICS_FILE = "metrics.jsonl"
EVENTS_DIR = "tb"

#: keys a resumed run may change: they schedule the work, they do not change the model, the
#: optimisation or the data stream. A key ending in '.*' covers its whole subtree.
RESUMABLE_KEYS = ("num_steps", "log_every", "image_every", "checkpoint_every", "keep_checkpoints",
                  "eval.*", "data.num_workers", "data.prefetch", "init_from", "init_from_paths")


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def _resumable(key: str) -> bool:
    return any(key == k or (k.endswith(".*") and key.startswith(k[:-1])) for k in RESUMABLE_KEYS)


def config_changes(saved: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list]:
    """{dotted key: [saved value, new value]} for every leaf that differs (a key present on one
    side only is [value, None] or [None, value]). Both configs as nested dicts (JSON types)."""
    a, b = _flatten(saved), _flatten(json.loads(json.dumps(new)))
    missing = object()
    out = {}
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, missing), b.get(key, missing)
        if va != vb:
            out[key] = [None if va is missing else va, None if vb is missing else vb]
    return out


def check_resume_config(workdir: str, config) -> dict[str, list]:
    """The allowed changes of `config` against the config saved in `workdir` (empty when there is
    no saved config). Raises ValueError naming every key whose change the run cannot resume with."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        saved = json.load(f)
    changes = config_changes(saved, config.to_dict())
    refused = {k: v for k, v in changes.items() if not _resumable(k)}
    if refused:
        listed = "; ".join(f"{k}: {v[0]!r} -> {v[1]!r}" for k, v in refused.items())
        raise ValueError(
            f"cannot resume {workdir} with this config: {len(refused)} key(s) differ from the saved "
            f"{CONFIG_FILE} and change the model, the optimisation or the data ({listed}); "
            f"resuming may change only {', '.join(RESUMABLE_KEYS)}. Restore those values or use "
            f"another workdir (config.init_from='{workdir}' starts a new run from this one)")
    return changes


def program_setup() -> dict:
    """What decides the compiled program besides the config: the XLA:CPU set-up
    (`inpaintjax.xla_cpu.describe`) and the convolution implementation
    (`inpaintjax.layers.conv.describe`), with the JAX version."""
    import jax

    from inpaintjax import xla_cpu
    from inpaintjax.layers import conv
    return {"jax": jax.__version__, "platform": jax.devices()[0].platform, **xla_cpu.describe(),
            **conv.describe()}


def describe_program(setup: Mapping[str, Any]) -> str:
    """For the run log: "program: jax=0.10.2, platform=cpu, xla_cpu=tuned, ..., conv=auto, ..."."""
    return "program: " + ", ".join(f"{k}={v}" for k, v in setup.items())


def record_start(workdir: str, step: int, changes: Mapping[str, list], program: Mapping[str, Any]) -> None:
    """Append the start's line {"step", "time", "config_changes", "program"} to starts.jsonl."""
    rec = {"step": int(step), "time": time.time(), "config_changes": dict(changes),
           "program": dict(program)}
    with open(os.path.join(workdir, STARTS_FILE), "a") as f:
        f.write(json.dumps(rec) + "\n")


def _replace_file(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def truncate_metrics(path: str, last_step: int) -> int:
    """Drop the records of `path` (metrics JSON lines) logged after `last_step`; returns how many
    were dropped. A torn last line (the run was killed mid-write) is dropped too."""
    if not os.path.isfile(path):
        return 0
    kept, dropped = [], 0
    with open(path, "rb") as f:
        for line in f:
            try:
                rec = json.loads(line)
                keep = int(rec["step"]) <= last_step
            except (ValueError, KeyError, TypeError):
                keep = False
            if keep:
                kept.append(line if line.endswith(b"\n") else line + b"\n")
            else:
                dropped += 1
    if dropped:
        _replace_file(path, b"".join(kept))
    return dropped


def _records(data: bytes):
    """(start, end) byte ranges of the TFRecord records of an event file; stops at a torn tail."""
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        end = pos + 12 + length + 4
        if end > len(data):
            return
        yield pos, end
        pos = end


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def event_step(event: bytes) -> int:
    """The `step` (field 2, int64) of a serialised tensorboard Event proto; 0 when absent. Read
    from the protobuf wire format directly: importing tensorboardX's protos would import torch."""
    pos = 0
    while pos < len(event):
        tag, pos = _varint(event, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(event, pos)
            if field == 2:
                return value - (1 << 64) if value >= 1 << 63 else value
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(event, pos)
            pos += length
        else:
            raise ValueError(f"not an event record (wire type {wire})")
    return 0


def truncate_events(directory: str, last_step: int) -> int:
    """Drop the TensorBoard events of every event file under `directory` whose step is after
    `last_step` (records are copied byte for byte, their checksums unchanged); returns how many."""
    if not os.path.isdir(directory):
        return 0
    total = 0
    for root, _, files in os.walk(directory):
        for name in sorted(files):
            if "tfevents" not in name or name.endswith(".tmp"):
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                data = f.read()
            kept, dropped, end = [], 0, 0
            for start, end in _records(data):
                if event_step(data[start + 12:end - 4]) > last_step:
                    dropped += 1
                else:
                    kept.append(data[start:end])
            if dropped or end != len(data):
                _replace_file(path, b"".join(kept))
            total += dropped
    return total


def truncate_logs(workdir: str, last_step: int) -> int:
    """Remove what was logged after `last_step` from metrics.jsonl and the TensorBoard events of
    `workdir` (see the module docstring); returns the number of records removed."""
    return (truncate_metrics(os.path.join(workdir, METRICS_FILE), last_step)
            + truncate_events(os.path.join(workdir, EVENTS_DIR), last_step))
