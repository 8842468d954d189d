"""The configuration every run shares, whatever its family (ml_collections ConfigDict), and how a
run's config is loaded from a config file plus command-line overrides.

A family's config file (configs/<family>.py) starts from `base_config()` and fills `family`,
`model`, `loss`, `optim` and changes only what differs. Every knob of the model, the data and
the training lives in the config. What else shapes the compiled program (the XLA:CPU set-up of
`inpaintjax.xla_cpu`, the INPAINTJAX_CONV* settings of `inpaintjax.layers.conv`) comes from the
environment and is recorded with every start of a run (`starts.jsonl`, the first log line).

Loading (the same rules as `train.py --config FILE:ARG --config.KEY=VALUE`):

    config = load_config("configs/deepfill_v2.py:demo", ["batch_size=4", "data.image_size=64"])

A key that does not exist is a `ConfigKeyError` naming the nearest valid key.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import importlib.util
import json
import os
import sys
from typing import Any, Iterable, Mapping, Sequence

import ml_collections


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.family = ""            # registry name, e.g. 'deepfill_v2'
    c.seed = 0               # the one root seed: parameters, masks, noise, data order

    c.data = ml_collections.ConfigDict()
    c.data.source = "samples"    # 'samples' (scikit-image photos, offline) | 'folder' | 'tfds'
    c.data.name = ""             # TFDS dataset name when source == 'tfds' (e.g. 'places365_small')
    c.data.data_dir = ""         # TFDS data_dir, or the image folder when source == 'folder'
    c.data.mask_dir = ""         # optional folder of paired masks (same relative names as images)
    c.data.eval_dir = ""         # folder source: held-out image folder ('' = hold out by file hash)
    c.data.holdout_percent = 2   # folder source without eval_dir: % of files held out (by name hash)
    c.data.train_split = "train"
    c.data.eval_split = "validation"
    c.data.image_size = 256      # square training crops
    c.data.resize_shorter = 0    # > 0: first resize each image (each whole sample photo) so its
                                 # shorter side is this many px (aspect kept); 0 = native size
    c.data.crop = "random"       # 'random' (up-scale if smaller, random crop) | 'resize'
    c.data.flip = False          # random horizontal flips (the originals use none)
    c.data.image_key = "image"   # TFDS feature holding the image
    c.data.min_image_side = 32   # folder images with a smaller side are skipped (and counted)
    c.data.num_workers = 2       # grain read threads per host (batches prepared ahead in parallel)
    c.data.prefetch = 4          # batches prepared ahead of the training step

    c.mask = ml_collections.ConfigDict()
    c.mask.generator = "deepfill_v2_training"   # a name in inpaintjax.masks.MASK_GENERATORS
    c.mask.per_batch = True      # one mask shared by the whole batch, as the DeepFill originals

    c.batch_size = 16            # global batch (all devices of all hosts)
    c.num_steps = 100_000
    c.log_every = 100
    c.image_every = 1000
    c.checkpoint_every = 1000
    c.keep_checkpoints = 3
    c.compute_dtype = "float32"  # 'float32' | 'bfloat16' (parameters stay float32)
    c.remat = False              # rematerialise generator blocks (512x512 training on small
                                 # memory): DeepFill v1/v2, PConv, EdgeConnect; glcic and
                                 # shiftnet refuse it
    c.ema_decay = 0.0            # > 0: EMA of the generator's parameters, used by evaluation and inference
    c.init_from = ""             # 'WORKDIR[:STEP]': a fresh run starts from another run's state
    c.init_from_paths = ""       # '' = the family's warm_start_paths; else 'a,b' or 'dst=src,...'

    c.eval = ml_collections.ConfigDict()
    # comma-separated names: strokes reach the small buckets, box + strokes the large ones (the
    # demo's published numbers are on this set; masks.DEFAULT_EVAL_GENERATORS adds the union, which
    # fills the 50-60% bucket in far fewer draws)
    c.eval.mask_generator = "deepfill_v2_strokes,deepfill_v2_training"
    c.eval.per_bucket = 50       # frozen mask set: masks per hole-ratio bucket
    c.eval.image_size = 256
    c.eval.num_images = 300
    c.eval.seed = 1234
    c.eval.batch_size = 8
    c.eval.num_samples = 6       # rows of runs/<x>/samples.png
    c.eval.baselines = "mean,biharmonic,telea,patchmatch"  # classical rows of the tables
    # the field's learned metrics (docs/evaluation-metrics.md, "In eval.py"): those whose weight
    # file is named below are computed for the model and every classical row; the others are
    # skipped with one log line. Nothing downloads.
    c.eval.perceptual_metrics = "fid,kid,is,lpips,pids,uids"  # '' = none
    c.eval.inception_weights = ""  # pt_inception-2015-12-05-6726825d.pth (pytorch-fid): fid,kid,is,pids,uids
    c.eval.inception_resize = "pytorch"  # to 299 px: 'pytorch' | 'tf1' | 'clean'
    c.eval.lpips_net = "alex"      # 'alex' | 'vgg' | 'squeeze'
    c.eval.lpips_backbone = ""     # torchvision's alexnet-owt-7be5be79.pth (vgg16-397923af.pth, ...): lpips
    c.eval.lpips_lin = ""          # LPIPS v0.1 linear layers (alex.pth ...); '' = the installed lpips package's
    c.eval.fid_method = "sqrtm"    # 'sqrtm' (pytorch-fid's, SciPy on the host) | 'eigh' (JAX, any device)
    c.eval.perceptual_min_bucket = 50  # FID/KID/IS/IDS of a hole-area bucket need this many masks

    c.model = ml_collections.ConfigDict()
    c.loss = ml_collections.ConfigDict()
    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 1e-4
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.schedule = "constant"   # 'constant' | 'cosine' | 'linear' (families/common.py)
    c.optim.warmup_steps = 0
    c.optim.final_lr_ratio = 0.0
    return c


def parse_variant(arg: str, variants: Sequence[str], default: str,
                  file: str) -> tuple[str, list[str]]:
    """`'demo,guided,num_steps=100'` -> ('demo', ['guided', 'num_steps=100']): the variant (checked
    against `variants`) and its comma-separated modifiers, as a config file's `get_config(arg)` gets
    them. `file` names the config file in the error."""
    tokens = [t.strip() for t in (arg or default).split(",") if t.strip()] or [default]
    variant, mods = tokens[0], tokens[1:]
    if variant not in variants:
        close = difflib.get_close_matches(variant, variants, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{file}: unknown variant {variant!r}.{hint} Choose one of "
                         f"{', '.join(variants)}.")
    return variant, mods


def apply_modifiers(config: ml_collections.ConfigDict, mods: Iterable[str], arg: str, file: str,
                    flags: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
    """Apply a variant's modifiers in order: a named flag (`flags[name](config)`, e.g. 'guided')
    or `key=value`, typed like `--config.KEY=VALUE` (an unknown key names the nearest)."""
    flags = dict(flags or {})
    for mod in mods:
        if mod in flags:
            flags[mod](config)
        elif "=" in mod:
            apply_overrides(config, [mod])
        else:
            allowed = " or ".join([repr(f) for f in flags] + ["key=value"])
            raise ValueError(f"{file}: unknown modifier {mod!r} in {arg!r}; use {allowed}")
    return config


def sample_photo_run(config: ml_collections.ConfigDict, preset: str) -> ml_collections.ConfigDict:
    """The settings every family's `demo` and `test` variants share: the built-in sample photos,
    random crops, and a small run. preset 'demo': 64x64 crops, batch 4, 2000 steps, evaluation on 8
    held-out crops x 4 masks per bucket. preset 'test': 32x32, batch 2, 4 steps, a log line every
    step and a checkpoint every 2, 4 held-out crops x 1 mask per bucket. A variant changes what
    differs afterwards."""
    c = config
    c.data.source = "samples"
    c.data.crop = "random"
    if preset == "demo":
        c.data.image_size = c.eval.image_size = 64
        c.eval.num_images, c.eval.per_bucket, c.eval.batch_size = 8, 4, 8
        c.batch_size, c.num_steps = 4, 2000
        c.log_every, c.image_every, c.checkpoint_every = 100, 500, 500
    elif preset == "test":
        c.data.image_size = c.eval.image_size = 32
        c.eval.num_images, c.eval.per_bucket, c.eval.batch_size = 4, 1, 2
        # the mean-colour row only: PatchMatch's compile, the biharmonic and Telea fills and
        # their plots are most of a 32 px evaluation's time (the classical rows have tests of their own)
        c.eval.baselines = "mean"
        c.batch_size, c.num_steps = 2, 4
        c.log_every, c.image_every, c.checkpoint_every, c.keep_checkpoints = 1, 2, 2, 2
    else:
        raise ValueError(f"sample_photo_run: preset is 'demo' or 'test', got {preset!r}")
    return c


class ConfigKeyError(KeyError):
    """An override names a key the config does not have; the message names the nearest valid key."""

    def __str__(self):  # KeyError quotes its message; show it as written
        return str(self.args[0])


def flat_keys(config: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every dotted key path of a (nested) ConfigDict, leaves and sub-dicts alike."""
    out = []
    for k, v in config.items():
        path = f"{prefix}{k}"
        out.append(path)
        if isinstance(v, (ml_collections.ConfigDict, dict)):
            out.extend(flat_keys(v, path + "."))
    return out


def unknown_key_error(key: str, config: Mapping[str, Any], flag: str = "") -> ConfigKeyError:
    """The error for an unknown dotted `key`, naming the closest valid key (by spelling)."""
    keys = flat_keys(config)
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.0)
    # A misspelt last part is the usual case: compare it among its siblings too.
    parent, _, leaf = key.rpartition(".")
    siblings = [k for k in keys if k.rpartition(".")[0] == parent]
    near = difflib.get_close_matches(key, siblings, n=1, cutoff=0.6) or close
    hint = f" Did you mean '{flag}{near[0]}'?" if near else ""
    return ConfigKeyError(f"unknown config key '{flag}{key}'.{hint} "
                          f"(valid keys {f'under {parent!r}' if parent else 'at the top level'}: "
                          f"{', '.join(sorted(k.rpartition('.')[2] for k in siblings)) or 'none'})")


def _parse_value(text: str, old: Any, key: str) -> Any:
    """`text` (a command-line value) converted to the type of the field's current value `old`."""
    if isinstance(old, bool):
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"config key {key!r} is a bool; got {text!r} (use true or false)")
    if isinstance(old, int):
        try:
            return int(text.replace("_", ""))
        except ValueError:
            raise ValueError(f"config key {key!r} is an int; got {text!r}") from None
    if isinstance(old, float):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"config key {key!r} is a float; got {text!r}") from None
    if isinstance(old, str) or old is None:
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"config key {key!r} holds a {type(old).__name__}; {text!r} is not a "
                         f"Python literal of that kind") from None


def apply_overrides(config: ml_collections.ConfigDict, overrides: Iterable[str] | Mapping[str, Any],
                    flag: str = "") -> ml_collections.ConfigDict:
    """Set dotted keys in place: `["batch_size=8", "data.image_size=64"]` (strings are parsed to the
    field's type) or a mapping {"data.image_size": 64}. An unknown key raises `ConfigKeyError`."""
    items = overrides.items() if isinstance(overrides, Mapping) else (
        _split_override(o) for o in overrides)
    for key, value in items:
        node = config
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
                raise unknown_key_error(key, config, flag)
            if i < len(parts) - 1:
                node = node[part]
        old = node[parts[-1]]
        if isinstance(value, str):
            value = _parse_value(value, old, key)
        with config.unlocked() if hasattr(config, "unlocked") else contextlib.nullcontext():
            node[parts[-1]] = value
    return config


def _split_override(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key=value (e.g. batch_size=8)")
    key, value = text.split("=", 1)
    return key.strip(), value


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    """`get_config(arg)` of the config file in `spec` = 'path/to/file.py[:arg]' (arg optional)."""
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} does not exist (spec {spec!r}; "
                                f"expected e.g. configs/deepfill_v2.py:demo)")
    name = "_inpaintjax_config_" + os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise AttributeError(f"config file {path!r} has no get_config(arg) function")
    return module.get_config(arg) if arg else module.get_config()


def load_config(spec: str, overrides: Sequence[str] | Mapping[str, Any] = ()) -> ml_collections.ConfigDict:
    """Load `spec` ('file.py[:arg]') and apply `overrides` ('key=value' strings or a mapping)."""
    return apply_overrides(load_config_file(spec), overrides)


def check_override_flags(argv: Sequence[str], flag_name: str = "config") -> None:
    """Before absl parses `argv`: every `--config.KEY=...` must name an existing key of the config
    file given by `--config`; otherwise raise `ConfigKeyError` naming the nearest valid key.
    (ml_collections' own error is an AttributeError deep in flag parsing.)"""
    prefix = f"--{flag_name}."
    spec = None
    for i, a in enumerate(argv):
        if a.startswith(f"--{flag_name}="):
            spec = a.split("=", 1)[1]
        elif a == f"--{flag_name}" and i + 1 < len(argv):
            spec = argv[i + 1]
    if spec is None:
        return
    config = load_config_file(spec)
    keys = set(flat_keys(config))
    for a in argv:
        if a.startswith(prefix):
            key = a[len(prefix):].split("=", 1)[0]
            if key not in keys:
                raise unknown_key_error(key, config, flag=f"--{flag_name}.")


# the file in a training workdir that holds the config the run started with (train.py writes it;
# `Inpainter.load` recognises a workdir by it)
CONFIG_FILE = "config.json"


def save_config(config: ml_collections.ConfigDict, path: str) -> None:
    """Write the config as JSON (read back by `read_saved_config`) next to a readable .txt copy."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(config.to_json(indent=1, sort_keys=True))
        f.write("\n")
    os.replace(tmp, path)
    with open(os.path.splitext(path)[0] + ".txt", "w") as f:
        f.write(str(config))


def read_saved_config(path: str) -> ml_collections.ConfigDict:
    """The config written by `save_config` (tuples come back as lists)."""
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))
