"""Warm start: a fresh run whose named state subtrees are copied from another run's checkpoint.

    config.init_from = 'OTHER_WORKDIR[:STEP]'       # the newest readable checkpoint, or STEP
    config.init_from_paths = 'g_params,ema'         # or 'dst=src,...'; '' = family.warm_start_paths

Chained phases use it: a fine-tune from a pre-trained run, a second model trained on a frozen first
(EdgeConnect's edge model). The other run is read with its own saved config and family; every copied
subtree must match this run's in structure, shapes and dtypes, else the error names the path. An
EMA of copied parameters that was not copied itself restarts as a copy of them (`restart_emas`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax

from inpaintjax import checkpoints as ckpt_lib
from inpaintjax import config as config_lib
from inpaintjax.families import get as get_family


def parse_init_from(spec: str) -> tuple[str, int | None]:
    """'WORKDIR[:STEP]' -> (absolute workdir, step or None)."""
    path, step = spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isdigit() and head:
        path, step = head, int(tail)
    return os.path.abspath(path), step


def parse_init_from_paths(text: str, default: tuple[str, ...]) -> list[tuple[str, str]]:
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


def _overlap(a: str, b: str) -> bool:
    """Whether dotted paths a and b name the same subtree or one holds the other."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def restart_emas(state: Any, ema_paths, pairs: list[tuple[str, str]]) -> tuple[Any, list[str]]:
    """(state, the restarted EMA paths): each EMA of `ema_paths` ((EMA path, parameter path)) whose
    parameters the warm start copied, and which it did not copy itself, becomes a copy of those
    parameters. Otherwise it would average the copied network with this run's random
    initialisation (and a phase that freezes the network would keep the random one for good)."""
    restarted = []
    for ema_path, params_path in ema_paths:
        if _subtree(state, ema_path.split(".")[0], "this run's state") is None:
            continue  # EMA off
        copied = [dst for dst, _ in pairs]
        if any(_overlap(ema_path, d) for d in copied) or not any(_overlap(params_path, d) for d in copied):
            continue
        params = _subtree(state, params_path, "this run's state")
        state = _replace_subtree(state, ema_path, jax.tree.map(lambda x: x.copy(), params))
        restarted.append(ema_path)
    return state, restarted


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


def apply_init_from(state: Any, family, config, sharding) -> tuple[Any, str]:
    """(state with config.init_from's subtrees copied in, a one-line description for the log)."""
    source, origin = restore_other_run(config.init_from, sharding)
    pairs = parse_init_from_paths(config.get("init_from_paths", ""), family.warm_start_paths)
    state = warm_start(state, source, pairs, origin)
    state, restarted = restart_emas(state, family.ema_paths, pairs)
    copied = ", ".join(d if d == s else f"{d} <- {s}" for d, s in pairs)
    note = f"; the EMA ({', '.join(restarted)}) restarts from the copied parameters" if restarted else ""
    return state, f"init_from: copied {copied} from {origin}{note}"
