"""Frozen evaluation mask sets: seeded, per-bucket, written once as PNG files with a manifest, and
read back with validation. The same arguments give byte-identical files on any machine with the
same NumPy and Pillow versions (the manifest records both)."""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from inpaintjax.masks.buckets import BUCKETS, bucket_name, bucket_of, hole_ratio
from inpaintjax.masks.folders import load_mask  # noqa: F401  (re-exported: inpaintjax.masks.load_mask)
from inpaintjax.masks.generators import MASK_GENERATORS, check_size, resolve


MANIFEST = "manifest.json"
DEFAULT_EVAL_GENERATORS = (
    "deepfill_v2_strokes",
    "deepfill_v2_training",
    "deepfill_v2_training+deepfill_v2_strokes",
)


def build_eval_mask_set(
    out_dir: str,
    generator: Union[str, Sequence[str]] = DEFAULT_EVAL_GENERATORS,
    size: Tuple[int, int] = (256, 256),
    per_bucket: int = 100,
    seed: int = 0,
    max_attempts: Optional[int] = None,
) -> dict:
    """Sample a frozen, seeded evaluation mask set with `per_bucket` masks in each PConv bucket.

    Attempt k (k = 0, 1, ...) uses generator names[k % len(names)] with its own stream
    `np.random.default_rng([seed, k])`, so any mask can be re-made from the manifest alone
    (`make_mask(generator, np.random.default_rng([seed, attempt]), H, W)`). Masks whose bucket is full or
    that fall outside every bucket are discarded. After `max_attempts` (default 200 * 6 * per_bucket +
    1000) a RuntimeError names the unfilled buckets and suggests another generator.

    The default cycles through DeepFill v2's strokes-only masks (which reach the small buckets), its
    training masks (box + strokes, never below ~14% at 256) and the union of a training mask with
    another stroke mask (which reaches 50-60%): the training generator alone cannot fill (0.01, 0.1]
    and rarely reaches (0.5, 0.6]. Names may be '+'-unions (see `make_mask`).

    Writes `out_dir/b{bucket}_{index:04d}.png` (8-bit greyscale, 255 = hole, 0 = known) and
    `out_dir/manifest.json`; the same arguments give byte-identical files. Returns the manifest dict.
    """
    names = [generator] if isinstance(generator, str) else list(generator)
    if not names:
        raise ValueError("generator must be a name or a non-empty list of names")
    fns = [resolve(n) for n in names]
    h, w = check_size(*size)
    if isinstance(per_bucket, bool) or not isinstance(per_bucket, (int, np.integer)) or per_bucket < 1:
        raise ValueError(f"per_bucket must be a positive int, got {per_bucket!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    seed, per_bucket = int(seed), int(per_bucket)
    if max_attempts is None:
        max_attempts = 200 * len(BUCKETS) * per_bucket + 1000
    filled: List[List[dict]] = [[] for _ in BUCKETS]
    masks: Dict[Tuple[int, int], np.ndarray] = {}
    attempt = 0
    while any(len(f) < per_bucket for f in filled):
        if attempt >= max_attempts:
            missing = [f"{bucket_name(i)} ({len(f)}/{per_bucket})" for i, f in enumerate(filled) if len(f) < per_bucket]
            others = [n for n in MASK_GENERATORS if n not in names]
            raise RuntimeError(
                f"build_eval_mask_set: after {max_attempts} masks from {names} at {h}x{w}, buckets still "
                f"short: {', '.join(missing)}. This generator rarely or never reaches those hole areas; "
                f"mix in another generator (e.g. generator=['deepfill_v2_strokes', 'lama_thick']; "
                f"others: {', '.join(others)}) or raise max_attempts."
            )
        k = attempt % len(names)
        mask = fns[k](np.random.default_rng([seed, attempt]), h, w)
        ratio = hole_ratio(mask)
        b = bucket_of(ratio)
        if b >= 0 and len(filled[b]) < per_bucket:
            index = len(filled[b])
            entry = dict(
                file=f"b{b}_{index:04d}.png",
                bucket=b,
                bucket_name=bucket_name(b),
                ratio=ratio,
                generator=names[k],
                seed=seed,
                attempt=attempt,
                size=[h, w],
                index=index,
            )
            filled[b].append(entry)
            masks[(b, index)] = mask
        attempt += 1
    os.makedirs(out_dir, exist_ok=True)
    entries = [e for f in filled for e in f]
    for e in entries:
        img = Image.fromarray((masks[(e["bucket"], e["index"])] > 0.5).astype(np.uint8) * 255)
        img.save(os.path.join(out_dir, e["file"]), format="PNG")
    manifest = dict(
        format="inpaintjax-eval-masks/1",
        hole_value=255,
        size=[h, w],
        seed=seed,
        generator=names,
        per_bucket=per_bucket,
        buckets=[[lo, hi] for lo, hi in BUCKETS],
        attempts=attempt,
        numpy_version=np.__version__,
        pillow_version=Image.__version__,
        masks=entries,
    )
    with open(os.path.join(out_dir, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    return manifest


def load_eval_mask_set(mask_dir: str, stacked: bool = False):
    """Read a set written by `build_eval_mask_set`, validating it against its manifest.

    Returns a list of (mask float32 [H, W] in {0,1} with 1 = hole, bucket int) in manifest order, or
    with `stacked=True` a pair (masks float32 [N, H, W, 1], buckets int64 [N]). A missing manifest or
    mask file, a wrong size, or a hole ratio that disagrees with the manifest raises an error naming
    the file.
    """
    path = os.path.join(mask_dir, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no {MANIFEST} in {mask_dir!r}: build the set with inpaintjax.masks.build_eval_mask_set"
        )
    try:
        with open(path) as f:
            manifest = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    for key in ("size", "masks"):
        if key not in manifest:
            raise ValueError(f"{path}: missing key {key!r}; not an inpaintjax eval mask manifest")
    h, w = (int(v) for v in manifest["size"])
    out = []
    for j, e in enumerate(manifest["masks"]):
        for key in ("file", "bucket", "ratio"):
            if key not in e:
                raise ValueError(f"{path}: entry {j} lacks {key!r}")
        fpath = os.path.join(mask_dir, e["file"])
        if not os.path.isfile(fpath):
            raise FileNotFoundError(f"mask file {fpath!r} listed in {path} is missing")
        mask = load_mask(fpath)
        if mask.shape != (h, w):
            raise ValueError(f"{fpath}: size {mask.shape} differs from the manifest's {(h, w)}")
        ratio = hole_ratio(mask)
        if abs(ratio - float(e["ratio"])) > 0.5 / (h * w):
            raise ValueError(f"{fpath}: hole ratio {ratio:.6f} differs from the manifest's {e['ratio']:.6f}")
        b = int(e["bucket"])
        if bucket_of(ratio) != b:
            raise ValueError(f"{fpath}: hole ratio {ratio:.6f} is not in bucket {b} given by the manifest")
        out.append((mask, b))
    if stacked:
        if not out:
            return np.zeros((0, h, w, 1), np.float32), np.zeros((0,), np.int64)
        return np.stack([m for m, _ in out])[..., None], np.array([b for _, b in out], np.int64)
    return out
