"""Score another method's outputs with a protocol (`inpaintjax evaluate --protocol NAME`), and write
a protocol's frozen masks and masked inputs for another tool to fill (`--write-inputs DIR`).

Folders pair by relative path without the extension (`inpaintjax.perceptual.folders.pair_files`):
--truth (the originals), --output (the method's results), --mask (1 / white = hole). The evaluation
streams: images are read `batch_size` pairs at a time and every running quantity has a size fixed by
the protocol, not by the number of images: per group and metric a count, mean and sum of squared
deviations (float64, merged chunk by chunk), and per group the FID statistics (a 2048-d mean and
scatter matrix). The exceptions are inherent to the metric: P-IDS/U-IDS fit an SVM on every pool3
vector (8 KB an image) and the Inception Score needs every logit vector (4 KB an image); they are kept
only when the protocol asks for them.

Each chunk runs on a mesh over the devices of this process (`jax.devices()` unless `devices` is
given): the batch is split over them and the weights are replicated; the chunk is padded to a multiple
of the device count and the padding dropped, so 1 or 8 devices give the same numbers.
"""

from __future__ import annotations

import json
import math
import os
from typing import Dict, Optional, Sequence, Union

import numpy as np

from inpaintjax.protocols import measures
from inpaintjax.protocols.definitions import DERIVED, DERIVED_NEEDS, Protocol, get_protocol

TOTAL = "total"


class RunningMoments:
    """Count, mean and sum of squared deviations of a stream of values (Chan et al.'s merge, float64);
    `std` is NumPy's population std (ddof 0), as LaMa's evaluator reports it."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, values) -> None:
        v = np.asarray(values, np.float64).reshape(-1)
        if not len(v):
            return
        nb, mb = len(v), float(v.mean())
        m2b = float(np.sum((v - mb) ** 2)) if np.all(np.isfinite(v)) else float("nan")
        n = self.n + nb
        delta = mb - self.mean
        if self.n == 0:
            self.mean, self.m2 = mb, m2b
        else:
            self.mean = self.mean + delta * nb / n
            self.m2 = self.m2 + m2b + delta * delta * self.n * nb / n
        self.n = n

    @property
    def std(self) -> float:
        return math.sqrt(max(self.m2, 0.0) / self.n) if self.n else float("nan")


def _require_weights(metrics, inception_path, lpips_backbone) -> None:
    need_inc = [m.name for m in metrics if m.measure in measures.SET_MEASURES]
    if need_inc and not inception_path:
        from inpaintjax.perceptual import inception as inc
        raise ValueError(f"{', '.join(need_inc)} need the FID Inception weights: --inception FILE; {inc.WHERE} "
                         f"(or leave them out with --skip {','.join(need_inc)})")
    need_lp = [m for m in metrics if m.measure == "lpips"]
    if need_lp and not lpips_backbone:
        from inpaintjax.perceptual import lpips as lp
        net = need_lp[0].options.get("net", "alex")
        raise ValueError(f"{need_lp[0].name} (LPIPS-{net}) needs --lpips-backbone FILE; {lp._backbone_where(net)} "
                         f"(or leave it out with --skip {need_lp[0].name})")


def _make_mesh(devices):
    import jax
    from jax.sharding import Mesh
    devs = list(jax.devices() if devices is None else devices)
    return Mesh(np.array(devs), ("data",))


def _per_image_fn(metrics, mesh):
    """jitted f(truth, output, mask) -> {metric name: [B]} for the protocol's per-image measures."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec as P
    chosen = [m for m in metrics if m.measure in measures.PER_IMAGE]
    if not chosen:
        return None

    def f(truth, output, mask):
        grey = None
        out = {}
        for m in chosen:
            a, b = truth, output
            if m.colour == "grey":
                if grey is None:
                    grey = (measures.to_grey(truth), measures.to_grey(output))
                a, b = grey
            out[m.name] = measures.per_image(m.measure, m.options, a, b, mask)
        return out

    data = NamedSharding(mesh, P("data"))
    jf = jax.jit(f, in_shardings=(data, data, data), out_shardings=data)
    return lambda t, o, m: jf(*(jax.device_put(x, data) for x in (t, o, m)))


def _chosen_metrics(proto: Protocol, skip: Sequence[str], mask_dir, batch_size: int) -> list:
    """The protocol's metrics less `skip`, after refusing a request that cannot run."""
    names = [m.name for m in proto.metrics]
    bad = [s for s in skip if s not in names]
    if bad:
        raise ValueError(f"--skip {','.join(bad)}: protocol {proto.name!r} has no such metric; it has {', '.join(names)}")
    metrics = [m for m in proto.metrics if m.name not in skip]
    if not metrics:
        raise ValueError(f"--skip leaves no metric of protocol {proto.name!r} to compute")
    if proto.needs_mask and not mask_dir:
        raise ValueError(f"protocol {proto.name!r} needs the masks (it groups by hole area or measures the hole): "
                         f"--mask DIR")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    return metrics


class _Scorer:
    """The running state of one evaluation: `add(batch)` folds a chunk of image pairs in, `results()`
    turns the state into {metric: {group: {'mean', 'std'?}}} (see the module docstring)."""

    def __init__(self, metrics, proto: Protocol, mesh, chunk: int, inception_path, lpips_backbone, lpips_lin,
                 fid_method: str):
        self.metrics, self.proto, self.chunk, self.fid_method = metrics, proto, chunk, fid_method
        self.per_image = _per_image_fn(metrics, mesh)
        self.extractor = None
        if any(m.measure in measures.SET_MEASURES for m in metrics):
            from inpaintjax.perceptual import inception as inc
            self.extractor = inc.make_extractor(inc.load_weights(inception_path), proto.inception_resize, mesh=mesh)
        self.lpips_fns = {}
        for m in metrics:
            net = m.options.get("net", "alex")
            if m.measure == "lpips" and net not in self.lpips_fns:
                from inpaintjax.perceptual import lpips as lp
                self.lpips_fns[net] = lp.make_distance(lp.load(net, lpips_backbone, lpips_lin), net, mesh=mesh)
        self.want_fid = any(m.measure == "fid" for m in metrics)
        self.keep_features = any(m.measure in ("pids", "uids", "is") for m in metrics)
        self.counts: Dict[str, int] = {}
        self.moments: Dict[str, Dict[str, RunningMoments]] = {}
        self.fid_stats: Dict[str, list] = {}
        self.members: list = []  # each image's groups, only where P-IDS/U-IDS/IS need every feature anyway
        self.pool3: tuple = ([], [])
        self.logits: list = []

    def add(self, batch) -> None:
        """batch: [(truth uint8 [H, W, 3], output uint8, mask float32 [H, W], groups)] of one size."""
        import jax.numpy as jnp
        from inpaintjax.perceptual.fid import FeatureStats
        k, chunk = len(batch), self.chunk
        truth, out = np.stack([b[0] for b in batch]), np.stack([b[1] for b in batch])
        mask = np.stack([b[2] for b in batch])[..., None]
        if chunk > k:  # one program for every chunk; the padded rows are dropped below
            z = lambda a: np.concatenate([a, np.zeros((chunk - k,) + a.shape[1:], a.dtype)])
            truth, out, mask = z(truth), z(out), z(mask)
        groups = [b[3] for b in batch]
        rows = {g: [i for i, gs in enumerate(groups) if g in gs] for g in set(x for gs in groups for x in gs)}
        for g, sel in rows.items():
            self.counts[g] = self.counts.get(g, 0) + len(sel)
        if self.keep_features:
            self.members.extend(groups)
        values = {}
        if self.per_image is not None:
            got = self.per_image(jnp.asarray(truth, jnp.float32) / 255.0, jnp.asarray(out, jnp.float32) / 255.0,
                                 jnp.asarray(mask))
            values.update({name: np.asarray(v, np.float64)[:k] for name, v in got.items()})
        for m in self.metrics:
            if m.measure == "lpips":
                d = self.lpips_fns[m.options.get("net", "alex")](truth.astype(np.float32) / 255.0,
                                                                 out.astype(np.float32) / 255.0)
                values[m.name] = np.asarray(d, np.float64)[:k]
        for name, v in values.items():
            for g, sel in rows.items():
                self.moments.setdefault(name, {}).setdefault(g, RunningMoments()).update(v[sel])
        if self.extractor is not None:
            feats = self.extractor(np.concatenate([truth, out]))
            p3 = np.asarray(feats["pool3"], np.float64)
            pt, po = p3[:k], p3[chunk:chunk + k]
            if self.want_fid:
                for g, sel in rows.items():
                    st = self.fid_stats.setdefault(g, [FeatureStats(pt.shape[1]), FeatureStats(pt.shape[1])])
                    st[0].update(pt[sel])
                    st[1].update(po[sel])
            if self.keep_features:
                self.pool3[0].append(pt.astype(np.float32))
                self.pool3[1].append(po.astype(np.float32))
                self.logits.append(np.asarray(feats["logits_unbiased"], np.float32)[chunk:chunk + k])

    def _set_value(self, m, g: str) -> dict:
        from inpaintjax.perceptual import fid as fid_lib
        nan, count = float("nan"), self.counts[g]
        sel = [i for i, gs in enumerate(self.members) if g in gs]
        if m.measure == "fid":
            if count < 2:
                return {"mean": nan}
            st = self.fid_stats[g]
            cov = (lambda s: s.sigma) if m.options.get("covariance", "unbiased") == "unbiased" \
                else (lambda s: s.scatter / s.count)
            return {"mean": fid_lib.frechet_distance(st[0].mu, cov(st[0]), st[1].mu, cov(st[1]), self.fid_method)}
        if m.measure in ("pids", "uids"):
            if count < 2:
                return {"mean": nan}
            from inpaintjax.perceptual.ids import inception_discriminative_scores
            pids, uids = inception_discriminative_scores(np.concatenate(self.pool3[0])[sel],
                                                         np.concatenate(self.pool3[1])[sel])
            return {"mean": pids if m.measure == "pids" else uids}
        splits = int(m.options.get("splits", 10))  # "is"
        if count < splits:
            return {"mean": nan, "std": nan}
        mean, std = fid_lib.inception_score(np.concatenate(self.logits)[sel], splits)
        return {"mean": mean, "std": std}

    def results(self, order: Sequence[str]) -> Dict[str, Dict[str, dict]]:
        out: Dict[str, Dict[str, dict]] = {}
        for m in self.metrics:
            res = out.setdefault(m.name, {})
            for g in sorted(order, key=lambda x: x != TOTAL):  # the total first: a bin may share its value
                if m.measure in measures.SET_MEASURES:
                    # a bin holding every image is the total: share its set-level value, do not refit
                    if g != TOTAL and self.counts[g] == self.counts[TOTAL] and TOTAL in res:
                        res[g] = dict(res[TOTAL])
                        continue
                    value = self._set_value(m, g)
                else:
                    mo = self.moments[m.name][g]
                    value = {"mean": mo.mean, "std": mo.std}
                res[g] = {k: v * m.scale for k, v in value.items()}
            out[m.name] = {g: res[g] for g in order}
        return out


def _read_pair(proto: Protocol, tpath: str, opath: str, mpath: Optional[str], allow_other_size: bool):
    from inpaintjax.image_io import read_image, read_mask
    t, o = read_image(tpath, "truth image"), read_image(opath, "output image")
    if t.shape != o.shape:
        raise ValueError(f"{opath} is {o.shape[1]}x{o.shape[0]} but its ground truth {tpath} is "
                         f"{t.shape[1]}x{t.shape[0]}; evaluate outputs at the truth's size")
    if t.shape[:2] != (proto.image_size, proto.image_size) and not allow_other_size:
        raise ValueError(f"{tpath} is {t.shape[1]}x{t.shape[0]} but protocol {proto.name!r} evaluates "
                         f"{proto.image_size}x{proto.image_size} images (make them with --write-inputs, or "
                         f"pass --any-size to score them anyway: then not comparable with published numbers)")
    if mpath is None:
        return t, o, np.zeros(t.shape[:2], np.float32), (TOTAL,)
    m = read_mask(mpath)
    if m.shape != t.shape[:2]:
        raise ValueError(f"mask {mpath} is {m.shape[1]}x{m.shape[0]} but {tpath} is {t.shape[1]}x{t.shape[0]}")
    return t, o, m, (TOTAL,) + proto.binning.groups_of(m)


def evaluate_protocol(protocol: Union[str, Protocol], truth_dir: str, output_dir: str,
                      mask_dir: Optional[str] = None, *, inception_path: Optional[str] = None,
                      lpips_backbone: Optional[str] = None, lpips_lin: Optional[str] = None,
                      batch_size: int = 16, devices: Optional[Sequence] = None, skip: Sequence[str] = (),
                      allow_other_size: bool = False, fid_method: str = "sqrtm", progress: bool = False) -> dict:
    """Every metric of `protocol` over the paired folders, per group and in total -> a report dict:
    {'protocol', 'title', 'sources', 'count', 'groups', 'group_counts', 'results': {metric: {group:
    {'mean', 'std'?}}}, 'derived', 'published', 'image_size', 'comparable', 'skipped', ...}. Values carry
    the metric's scale (x100 where the paper prints percents). See the module docstring."""
    from inpaintjax.perceptual.folders import _Progress, pair_files

    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    metrics = _chosen_metrics(proto, skip, mask_dir, batch_size)
    _require_weights(metrics, inception_path, lpips_backbone)
    pairs = pair_files(truth_dir, output_dir, mask_dir)
    mesh = _make_mesh(devices)
    ndev = mesh.devices.size
    chunk = -(-min(batch_size, len(pairs)) // ndev) * ndev  # a multiple of the device count
    scorer = _Scorer(metrics, proto, mesh, chunk, inception_path, lpips_backbone, lpips_lin, fid_method)
    bar = _Progress(len(pairs)) if progress else None
    sizes, batch = set(), []

    def flush():
        scorer.add(batch)
        if bar is not None:
            bar.update(len(batch))
        batch.clear()

    for tpath, opath, mpath in pairs:
        item = _read_pair(proto, tpath, opath, mpath, allow_other_size)
        sizes.add(item[0].shape[:2])
        if batch and batch[0][0].shape != item[0].shape:  # a chunk holds one image size
            flush()
        batch.append(item)
        if len(batch) == chunk:
            flush()
    if batch:
        flush()

    order = [g for g in proto.binning.group_names() if g in scorer.counts] + [TOTAL]
    results = scorer.results(order)
    derived = {d: DERIVED[d]({k: v[TOTAL] for k, v in results.items()}) for d in proto.derived
               if all(need in results for need in DERIVED_NEEDS[d])}
    size_ok = sizes == {(proto.image_size, proto.image_size)}
    return {
        "protocol": proto.name, "title": proto.title, "sources": list(proto.sources), "count": len(pairs),
        "groups": order, "group_counts": {g: scorer.counts[g] for g in order}, "results": results, "derived": derived,
        "metrics": {m.name: {"measure": m.measure, "options": dict(m.options), "colour": m.colour, "scale": m.scale,
                             "higher_is_better": m.higher_is_better, "description": m.description}
                    for m in metrics},
        "skipped": list(skip), "image_size": proto.image_size, "layout": proto.layout,
        "image_sizes": sorted(f"{w}x{h}" for h, w in sizes), "comparable": size_ok and not skip,
        "published": [dict(method=p.method, dataset=p.dataset, masks=p.masks, values=dict(p.values), source=p.source,
                           note=p.note) for p in proto.published],
        "truth": truth_dir, "output": output_dir, "mask": mask_dir,
        "inception": inception_path if scorer.extractor else None,
        "inception_resize": proto.inception_resize if scorer.extractor else None, "devices": int(ndev),
    }


def prepare_image(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, 3] -> [size, size, 3]: the short side resized to `size` with PIL's bicubic filter
    (only when it differs), then the centre square cropped."""
    from PIL import Image
    h, w = image.shape[:2]
    if min(h, w) != size:
        s = size / min(h, w)
        nw, nh = max(size, int(round(w * s))), max(size, int(round(h * s)))
        image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BICUBIC))
        h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(image[top:top + size, left:left + size])


def write_inputs(protocol: Union[str, Protocol], images_dir: str, out_dir: str, mask_set: Optional[str] = None,
                 seed: int = 0) -> dict:
    """Write a protocol's test inputs for another tool: for every image of `images_dir` (sorted by
    relative path, index i), out_dir/truth/<rel>.png (prepared to the protocol's size),
    out_dir/masks/<rel>.png (255 = hole; `make_mask(mask_set, np.random.default_rng([seed, i]), S, S)`)
    and out_dir/masked/<rel>.png (the truth with the hole set to 0), plus manifest.json. The same
    arguments give the same files on any machine (the masks are seeded per image)."""
    from inpaintjax.image_io import list_images, read_image, write_image
    from inpaintjax.masks.generators import make_mask, resolve

    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    if mask_set is None:
        if not proto.mask_sets:
            raise ValueError(f"protocol {proto.name!r} has no mask set of its own ({proto.masks_note}); "
                             f"name a generator with --mask-set NAME")
        mask_set = proto.mask_sets[0]
    resolve(mask_set)  # an unknown generator name fails here, before any file is written
    size = proto.preparation.size if proto.preparation else proto.image_size
    if not os.path.isdir(images_dir):
        raise NotADirectoryError(f"--truth {images_dir} is not a directory")
    rels = sorted(list_images(images_dir, recursive=True))
    if not rels:
        raise FileNotFoundError(f"--truth {images_dir} holds no images")
    entries = []
    for i, rel in enumerate(rels):
        stem = os.path.splitext(rel)[0]
        image = prepare_image(read_image(os.path.join(images_dir, rel), "image"), size)
        mask = make_mask(mask_set, np.random.default_rng([seed, i]), size, size)
        hole = mask > 0.5
        write_image(os.path.join(out_dir, "truth", stem + ".png"), image)
        write_image(os.path.join(out_dir, "masks", stem + ".png"), (hole * 255).astype(np.uint8))
        write_image(os.path.join(out_dir, "masked", stem + ".png"), np.where(hole[..., None], 0, image).astype(np.uint8))
        entries.append({"file": stem + ".png", "source": rel, "index": i, "hole_ratio": float(hole.mean())})
    manifest = {"protocol": proto.name, "mask_set": mask_set, "seed": seed, "size": size,
                "rng": "numpy.random.default_rng([seed, index])", "numpy": np.__version__, "images": entries}
    with open(os.path.join(out_dir, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
        fh.write("\n")
    return manifest
