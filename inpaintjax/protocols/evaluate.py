"""Score another method's outputs with a protocol (`inpaintjax evaluate --protocol NAME`), and write
a protocol's frozen masks and masked inputs for another tool to fill (`--write-inputs DIR`).

Folders pair by relative path without the extension (`inpaintjax.perceptual.folders.pair_files`):
--truth (the originals), --output (the method's results), --mask (white = hole, or as `mask_polarity`
says). The evaluation streams: images are read `batch_size` pairs at a time and every running quantity has a size fixed by
the protocol, not by the number of images: per group and metric a count, mean and sum of squared
deviations of the finite values (float64, merged chunk by chunk) and counts of +inf, -inf and NaN
values (`RunningMoments`: the mean and std are NumPy's over the whole stream whatever the chunks,
e.g. a mean PSNR of inf where an output equals its truth), and per group the FID statistics (a
2048-d mean and scatter matrix). The exceptions are inherent to the metric: P-IDS/U-IDS fit an SVM on every pool3
vector (8 KB an image) and the Inception Score needs every logit vector (4 KB an image); they are kept
only when the protocol asks for them. A set-level value that cannot be computed (too few images in a
group, or an FID whose matrix square root pytorch-fid's rule refuses) is NaN, and the report says why
under `not_computed`; the rest of the report is kept.

Each chunk runs on a mesh over the devices of this process (`jax.local_devices()` unless `devices`
is given): the batch is split over them and the weights are replicated; the chunk is padded to a multiple
of the device count and the padding dropped, so 1 or 8 devices give the same numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np

from inpaintjax.perceptual.inception import LOGITS_DIM, POOL3_DIM
from inpaintjax.protocols import measures
from inpaintjax.protocols.definitions import DERIVED, DERIVED_NEEDS, Protocol, get_protocol

TOTAL = "total"


class RunningMoments:
    """Moments of a stream of values, as NumPy gives them on the whole stream at once: `mean` is
    `np.mean` and `std` NumPy's population std (`np.std`, ddof 0, as LaMa's evaluator reports it).

    The finite values keep a count, mean and sum of squared deviations (Chan et al.'s merge, float64);
    +inf, -inf and NaN are counted apart (a PSNR is +inf where an output equals its truth), so the
    result does not depend on how the stream is cut into chunks or in which order parts are merged:
    the mean is +inf (-inf) when +inf (-inf) values are present without NaN or the other infinity,
    NaN when a NaN or both infinities are, and the std is NaN whenever any value is not finite."""

    #: length of `to_array()`: n, finite mean, finite m2, count of +inf, of -inf, of NaN
    SIZE = 6

    def __init__(self):
        self.finite_n, self.finite_mean, self.finite_m2 = 0, 0.0, 0.0
        self.pos_inf, self.neg_inf, self.nan = 0, 0, 0

    @property
    def n(self) -> int:
        """How many values, finite or not."""
        return self.finite_n + self.pos_inf + self.neg_inf + self.nan

    def _fold(self, nb: int, mb: float, m2b: float) -> None:
        """Chan et al.'s merge of the finite part with another (count, mean, m2)."""
        if nb == 0:
            return
        if self.finite_n == 0:
            self.finite_n, self.finite_mean, self.finite_m2 = nb, mb, m2b
            return
        n = self.finite_n + nb
        delta = mb - self.finite_mean
        self.finite_mean = self.finite_mean + delta * nb / n
        self.finite_m2 = self.finite_m2 + m2b + delta * delta * self.finite_n * nb / n
        self.finite_n = n

    def update(self, values) -> None:
        v = np.asarray(values, np.float64).reshape(-1)
        if not len(v):
            return
        finite = np.isfinite(v)
        self.nan += int(np.isnan(v).sum())
        self.pos_inf += int((v == np.inf).sum())
        self.neg_inf += int((v == -np.inf).sum())
        f = v[finite]
        if len(f):
            mb = float(f.mean())
            self._fold(len(f), mb, float(np.sum((f - mb) ** 2)))

    def merge(self, other: "RunningMoments") -> "RunningMoments":
        """Fold in the moments of another part of the stream (another process's share)."""
        self._fold(other.finite_n, other.finite_mean, other.finite_m2)
        self.pos_inf += other.pos_inf
        self.neg_inf += other.neg_inf
        self.nan += other.nan
        return self

    def to_array(self) -> np.ndarray:
        """[n, finite mean, finite m2, +inf count, -inf count, NaN count] (float64; counts are exact
        below 2**53)."""
        return np.asarray([self.n, self.finite_mean, self.finite_m2, self.pos_inf, self.neg_inf, self.nan],
                          np.float64)

    @classmethod
    def from_array(cls, a) -> "RunningMoments":
        """The inverse of `to_array` (also of an older checkpoint's 3 values: n, mean, m2)."""
        m = cls()
        a = np.asarray(a, np.float64).reshape(-1)
        if len(a) == 3:
            a = np.concatenate([a, np.zeros(3)])
        if len(a) != cls.SIZE:
            raise ValueError(f"RunningMoments.from_array: expected {cls.SIZE} values, got {len(a)}")
        m.pos_inf, m.neg_inf, m.nan = int(a[3]), int(a[4]), int(a[5])
        m.finite_n = int(a[0]) - m.pos_inf - m.neg_inf - m.nan
        m.finite_mean, m.finite_m2 = float(a[1]), float(a[2])
        return m

    @property
    def mean(self) -> float:
        if self.n == 0 or self.nan or (self.pos_inf and self.neg_inf):
            return float("nan")
        if self.pos_inf:
            return float("inf")
        if self.neg_inf:
            return float("-inf")
        return self.finite_mean

    @property
    def m2(self) -> float:
        """Sum of squared deviations from the mean: NaN when any value is not finite."""
        return float("nan") if self.pos_inf or self.neg_inf or self.nan else self.finite_m2

    @property
    def std(self) -> float:
        if self.n == 0 or self.pos_inf or self.neg_inf or self.nan:
            return float("nan")
        return math.sqrt(max(self.finite_m2, 0.0) / self.n)


CLI_OPTIONS = {"inception": "--inception FILE", "lpips": "--lpips-backbone FILE", "skip": "--skip"}


def _require_weights(metrics, inception_path, lpips_backbone, options=CLI_OPTIONS) -> None:
    """Refuse metrics whose weight file is not named; the message names `options` (the caller's way
    of naming the files: the CLI's options by default)."""
    need_inc = [m.name for m in metrics if m.measure in measures.SET_MEASURES]
    if need_inc and not inception_path:
        from inpaintjax.perceptual import inception as inc
        raise ValueError(f"{', '.join(need_inc)} need{'s' if len(need_inc) == 1 else ''} the FID Inception weights: {options['inception']}; {inc.WHERE} "
                         f"(or leave them out with {options['skip']} {','.join(need_inc)})")
    need_lp = [m for m in metrics if m.measure == "lpips"]
    if need_lp and not lpips_backbone:
        from inpaintjax.perceptual import lpips as lp
        net = need_lp[0].options.get("net", "alex")
        raise ValueError(f"{need_lp[0].name} (LPIPS-{net}) needs {options['lpips']}; {lp._backbone_where(net)} "
                         f"(or leave it out with {options['skip']} {need_lp[0].name})")


def _make_mesh(devices):
    import jax
    from jax.sharding import Mesh
    devs = list(jax.local_devices() if devices is None else devices)
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
    turns the state into {metric: {group: {'mean', 'std'?}}} (see the module docstring).

    The state is a set of arrays (`state()` / `load_state()`), saved as a checkpoint between chunks and
    merged across processes (`merge()`) in process order, so a split or resumed run adds up to the
    same state as one pass (up to float64 rounding of the merged moments and scatter matrices)."""

    def __init__(self, metrics, proto: Protocol, mesh, chunk: int, inception_path, lpips_backbone, lpips_lin,
                 fid_method: str):
        self.metrics, self.proto, self.chunk, self.fid_method = metrics, proto, chunk, fid_method
        self.universe = list(proto.binning.group_names()) + [TOTAL]  # every group a mask can fall in
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
        self.valued = [m.name for m in metrics if m.measure in measures.PER_IMAGE or m.measure == "lpips"]
        self.want_fid = any(m.measure == "fid" for m in metrics)
        self.keep_features = any(m.measure in ("pids", "uids", "is") for m in metrics)
        self.counts: Dict[str, int] = {}
        self.moments: Dict[str, Dict[str, RunningMoments]] = {}
        self.fid_stats: Dict[str, list] = {}
        self.members: list = []  # each image's groups, only where P-IDS/U-IDS/IS need every feature anyway
        self.pool3: tuple = ([], [])
        self.logits: list = []
        self.sizes: set = set()
        self.not_computed: Dict[str, Dict[str, str]] = {}  # set-level values left NaN: metric -> group -> why

    def add(self, batch) -> None:
        """batch: [(truth uint8 [H, W, 3], output uint8, mask float32 [H, W], groups)] of one size."""
        import jax.numpy as jnp
        from inpaintjax.perceptual.fid import FeatureStats
        k, chunk = len(batch), self.chunk
        truth, out = np.stack([b[0] for b in batch]), np.stack([b[1] for b in batch])
        mask = np.stack([b[2] for b in batch])[..., None]
        self.sizes.add(truth.shape[1:3])
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

    # -- the state as arrays: checkpoints and the merge across processes ---------------------------
    def state(self) -> Dict[str, np.ndarray]:
        """Every running quantity as arrays: `counts` [G] over `universe`, `moments` [metric, G, 6]
        (`RunningMoments.to_array`), the FID statistics of each group that has any
        (`fid/<g>/<side>/{count,mean,scatter}`), the kept feature rows and each row's groups ([N, G]
        bool), and the image sizes seen."""
        u = self.universe
        st = {"counts": np.asarray([self.counts.get(g, 0) for g in u], np.int64),
              "moments": np.asarray([[self.moments.get(n, {}).get(g, RunningMoments()).to_array() for g in u]
                                     for n in self.valued], np.float64).reshape(len(self.valued), len(u),
                                                                                RunningMoments.SIZE),
              "sizes": np.asarray(sorted(self.sizes), np.int64).reshape(-1, 2)}
        for g, pair in self.fid_stats.items():
            for side, fs in zip(("truth", "output"), pair):
                for k, v in fs.to_arrays().items():
                    st[f"fid/{u.index(g)}/{side}/{k}"] = v
        if self.keep_features:
            st["members"] = np.asarray([[g in gs for g in u] for gs in self.members], bool).reshape(-1, len(u))
            dim = lambda parts, d: np.concatenate(parts) if parts else np.zeros((0, d), np.float32)
            st["pool3_truth"], st["pool3_output"] = dim(self.pool3[0], POOL3_DIM), dim(self.pool3[1], POOL3_DIM)
            st["logits"] = dim(self.logits, LOGITS_DIM)
        return st

    def merge(self, st: Mapping[str, np.ndarray]) -> None:
        """Fold in a state (`state()`'s arrays) of another share of the images, after this one's."""
        from inpaintjax.perceptual.fid import FeatureStats
        u = self.universe
        for g, c in zip(u, st["counts"]):
            if c:
                self.counts[g] = self.counts.get(g, 0) + int(c)
        for name, per_group in zip(self.valued, st["moments"]):
            for g, a in zip(u, per_group):
                if a[0] > 0:
                    self.moments.setdefault(name, {}).setdefault(g, RunningMoments()).merge(RunningMoments.from_array(a))
        self.sizes.update(tuple(int(x) for x in hw) for hw in st["sizes"])
        for i, g in enumerate(u):
            if f"fid/{i}/truth/count" not in st:
                continue
            got = [FeatureStats.from_arrays(*(st[f"fid/{i}/{side}/{k}"] for k in ("count", "mean", "scatter")))
                   for side in ("truth", "output")]
            if g not in self.fid_stats:
                self.fid_stats[g] = got
            else:
                self.fid_stats[g][0].merge(got[0])
                self.fid_stats[g][1].merge(got[1])
        if self.keep_features and len(st["members"]):
            self.members.extend(tuple(g for g, on in zip(u, row) if on) for row in st["members"])
            self.pool3[0].append(np.asarray(st["pool3_truth"], np.float32))
            self.pool3[1].append(np.asarray(st["pool3_output"], np.float32))
            self.logits.append(np.asarray(st["logits"], np.float32))

    def gather_processes(self) -> None:
        """Replace this process's state by every process's, merged in process order (a no-op in a
        single-process run); every process ends with the whole state."""
        import jax
        if jax.process_count() == 1:
            return
        from inpaintjax.perceptual.fid import allgather_exact, allgather_rows
        mine = self.state()
        every = {k: allgather_exact(mine[k]) for k in ("counts", "moments")}
        sizes = allgather_rows(mine["sizes"])
        shares = [{"counts": every["counts"][p], "moments": every["moments"][p], "sizes": np.zeros((0, 2), np.int64)}
                  for p in range(jax.process_count())]
        shares[0]["sizes"] = sizes
        for i in range(len(self.universe)):  # FID statistics group by group: 2 x 32 MB each, not all at once
            key = f"fid/{i}/truth/count"
            counts = allgather_exact(np.asarray([mine.get(key, 0), mine.get(f"fid/{i}/output/count", 0)], np.int64))
            if not counts.any():
                continue
            for side in ("truth", "output"):
                zero = {"count": np.asarray(0, np.int64), "mean": np.zeros(POOL3_DIM),
                        "scatter": np.zeros((POOL3_DIM, POOL3_DIM))}
                for k in ("count", "mean", "scatter"):
                    got = allgather_exact(mine.get(f"fid/{i}/{side}/{k}", zero[k]))
                    for p, share in enumerate(shares):
                        share[f"fid/{i}/{side}/{k}"] = got[p]
        if self.keep_features:
            rows = {k: allgather_rows(mine[k]) for k in ("members", "pool3_truth", "pool3_output", "logits")}
            shares[0].update(rows)  # rows arrive in process order: one share holds them all
            for share in shares[1:]:
                share["members"] = np.zeros((0, len(self.universe)), bool)
        self.counts, self.moments, self.fid_stats, self.sizes = {}, {}, {}, set()
        self.members, self.pool3, self.logits = [], ([], []), []
        for share in shares:
            self.merge(share)

    def _set_value(self, m, g: str) -> tuple:
        """({'mean', 'std'?}, why it is NaN or None) of set measure `m` over group `g`."""
        from inpaintjax.perceptual import fid as fid_lib
        nan, count = float("nan"), self.counts[g]
        sel = [i for i, gs in enumerate(self.members) if g in gs]
        if m.measure == "fid":
            if count < 2:
                return {"mean": nan}, f"{count} image(s); FID needs at least 2"
            st = self.fid_stats[g]
            cov = (lambda s: s.scatter / s.count) if m.options.get("covariance", "unbiased") == "biased" \
                else (lambda s: s.sigma)
            try:
                return {"mean": fid_lib.frechet_distance(st[0].mu, cov(st[0]), st[1].mu, cov(st[1]),
                                                         self.fid_method)}, None
            except ValueError as e:  # pytorch-fid's rule refuses the square root: say so, keep the rest
                return {"mean": nan}, str(e)
        if m.measure in ("pids", "uids"):
            if count < 2:
                return {"mean": nan}, f"{count} image(s); {m.measure} needs at least 2"
            from inpaintjax.perceptual.ids import inception_discriminative_scores
            pids, uids = inception_discriminative_scores(np.concatenate(self.pool3[0])[sel],
                                                         np.concatenate(self.pool3[1])[sel])
            return {"mean": pids if m.measure == "pids" else uids}, None
        splits = int(m.options.get("splits", 10))  # "is"
        if count < splits:
            return {"mean": nan, "std": nan}, f"{count} image(s); IS in {splits} splits needs at least {splits}"
        mean, std = fid_lib.inception_score(np.concatenate(self.logits)[sel], splits)
        return {"mean": mean, "std": std}, None

    def results(self, order: Sequence[str]) -> Dict[str, Dict[str, dict]]:
        out: Dict[str, Dict[str, dict]] = {}
        self.not_computed = {}
        for m in self.metrics:
            res = out.setdefault(m.name, {})
            why = {}
            for g in sorted(order, key=lambda x: x != TOTAL):  # the total first: a bin may share its value
                if m.measure in measures.SET_MEASURES:
                    # a bin holding every image is the total: share its set-level value, do not refit
                    if g != TOTAL and self.counts[g] == self.counts[TOTAL] and TOTAL in res:
                        res[g] = dict(res[TOTAL])
                        if TOTAL in why:
                            why[g] = why[TOTAL]
                        continue
                    value, reason = self._set_value(m, g)
                    if reason is not None:
                        why[g] = reason
                else:
                    mo = self.moments[m.name][g]
                    value = {"mean": mo.mean, "std": mo.std}
                res[g] = {k: v * m.scale for k, v in value.items()}
            out[m.name] = {g: res[g] for g in order}
            if why:
                self.not_computed[m.name] = {g: why[g] for g in order if g in why}
        return out


def _read_pair(proto: Protocol, tpath: str, opath: str, mpath: Optional[str], allow_other_size: bool,
               mask_polarity: str = "white_hole"):
    from inpaintjax.image_io import read_image
    from inpaintjax.masks.folders import read_polarity_mask
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
    m = read_polarity_mask(mpath, mask_polarity)
    if m.shape != t.shape[:2]:
        raise ValueError(f"mask {mpath} is {m.shape[1]}x{m.shape[0]} but {tpath} is {t.shape[1]}x{t.shape[0]}")
    return t, o, m, (TOTAL,) + proto.binning.groups_of(m)


def process_share(n: int, index: Optional[int] = None, count: Optional[int] = None) -> slice:
    """The contiguous share of n items that process `index` of `count` (default: this JAX process)
    evaluates: shares differ in length by at most one and, in process order, cover 0..n-1."""
    import jax
    index = jax.process_index() if index is None else int(index)
    count = jax.process_count() if count is None else int(count)
    return slice(index * n // count, (index + 1) * n // count)


def _fingerprint(proto: Protocol, pairs, share: slice, metrics, settings: dict) -> str:
    """What a checkpoint's state depends on: the protocol, the chosen metrics and settings, the process
    split, and every file of this process's share (path, size and modification time)."""
    import hashlib
    h = hashlib.sha256()
    h.update(repr(dataclasses.asdict(proto)).encode())
    h.update(json.dumps({"metrics": [m.name for m in metrics], "share": [share.start, share.stop, len(pairs)],
                         **settings}, sort_keys=True, default=str).encode())
    for pair in pairs[share]:
        for path in pair:
            if path is not None:
                st = os.stat(path)
                h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def checkpoint_path(path: str) -> str:
    """This process's checkpoint file: `path` itself in a single-process run, `path` with
    `.process<i>of<n>` before the extension otherwise (each process saves its own share)."""
    import jax
    if jax.process_count() == 1:
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}.process{jax.process_index()}of{jax.process_count()}{ext or '.npz'}"


def _save_checkpoint(path: str, scorer: _Scorer, done: int, fingerprint: str) -> None:
    """The scorer's state after `done` pairs of this process's share, written to a temporary file and
    renamed over `path`: a kill during the write leaves the previous checkpoint whole."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        np.savez(fh, done=np.asarray(done, np.int64), fingerprint=np.asarray(fingerprint), **scorer.state())
    os.replace(tmp, path)


def _load_checkpoint(path: str, scorer: _Scorer, fingerprint: str) -> int:
    """Restore the state saved in `path` (if any) and return how many pairs it covers (0 without one).
    A checkpoint of another evaluation (other files, protocol, metrics or settings) is refused."""
    if not os.path.isfile(path):
        return 0
    try:
        with np.load(path) as f:
            st = {k: f[k] for k in f.files}
    except Exception as e:
        raise ValueError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e}); delete it to start "
                         f"the evaluation afresh") from e
    if str(st.pop("fingerprint")) != fingerprint:
        raise ValueError(f"checkpoint {path} belongs to another evaluation (other files, protocol, metrics, "
                         f"weights or process count): delete it, or pass another checkpoint path")
    done = int(st.pop("done"))
    scorer.merge(st)
    return done


def evaluate_protocol(protocol: Union[str, Protocol], truth_dir: str, output_dir: str,
                      mask_dir: Optional[str] = None, *, inception_path: Optional[str] = None,
                      lpips_backbone: Optional[str] = None, lpips_lin: Optional[str] = None,
                      batch_size: int = 16, devices: Optional[Sequence] = None, skip: Sequence[str] = (),
                      allow_other_size: bool = False, fid_method: str = "sqrtm", progress: bool = False,
                      mask_polarity: str = "white_hole", checkpoint: Optional[str] = None,
                      checkpoint_every: int = 1000) -> dict:
    """Every metric of `protocol` over the paired folders, per group and in total -> a report dict:
    {'protocol', 'title', 'sources', 'count', 'groups', 'group_counts', 'results': {metric: {group:
    {'mean', 'std'?}}}, 'not_computed': {metric: {group: why it is NaN}}, 'derived', 'published',
    'image_size', 'comparable', 'skipped', ...}. Values carry the metric's scale (x100 where the paper
    prints percents). See the module docstring.

    `mask_polarity`: 'white_hole' (default), 'black_hole' or a source name ('nvidia', 'mat', ...:
    `inpaintjax.masks.MASK_SOURCE_POLARITY`). `checkpoint`: a file where the running state is saved
    every `checkpoint_every` images; a run given the same file resumes after the last saved chunk and
    deletes the file when it finishes. With several JAX processes each scores its share
    (`process_share`) and every process returns the whole report."""
    import jax
    from inpaintjax.masks.folders import resolve_polarity
    from inpaintjax.perceptual.folders import _Progress, pair_files

    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    metrics = _chosen_metrics(proto, skip, mask_dir, batch_size)
    mask_polarity = resolve_polarity(mask_polarity)
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1 image, got {checkpoint_every}")
    _require_weights(metrics, inception_path, lpips_backbone)
    pairs = pair_files(truth_dir, output_dir, mask_dir)
    share = process_share(len(pairs))
    mine = pairs[share]
    mesh = _make_mesh(devices)
    ndev = mesh.devices.size
    chunk = -(-max(1, min(batch_size, len(mine))) // ndev) * ndev  # a multiple of the device count
    scorer = _Scorer(metrics, proto, mesh, chunk, inception_path, lpips_backbone, lpips_lin, fid_method)
    done, fingerprint, state_file = 0, "", None
    if checkpoint:
        state_file = checkpoint_path(checkpoint)
        fingerprint = _fingerprint(proto, pairs, share, metrics, dict(
            skip=sorted(skip), fid_method=fid_method, allow_other_size=allow_other_size, polarity=mask_polarity,
            inception=inception_path, lpips=[lpips_backbone, lpips_lin]))
        done = _load_checkpoint(state_file, scorer, fingerprint)
    bar = _Progress(len(mine)) if progress else None
    if bar is not None and done:
        bar.update(done)
    batch: list = []
    since_save = 0

    def flush():
        nonlocal done, since_save
        scorer.add(batch)
        done += len(batch)
        since_save += len(batch)
        if bar is not None:
            bar.update(len(batch))
        batch.clear()
        if state_file and since_save >= checkpoint_every and done < len(mine):
            _save_checkpoint(state_file, scorer, done, fingerprint)
            since_save = 0

    lpips_nets = sorted({m.options.get("net", "alex") for m in metrics if m.measure == "lpips"})
    for tpath, opath, mpath in mine[done:]:
        item = _read_pair(proto, tpath, opath, mpath, allow_other_size, mask_polarity)
        for net in lpips_nets:
            from inpaintjax.perceptual.lpips import check_size
            check_size(net, item[0].shape[0], item[0].shape[1], tpath)
        if batch and batch[0][0].shape != item[0].shape:  # a chunk holds one image size
            flush()
        batch.append(item)
        if len(batch) == chunk:
            flush()
    if batch:
        flush()
    scorer.gather_processes()

    order = [g for g in proto.binning.group_names() if g in scorer.counts] + [TOTAL]
    results = scorer.results(order)
    if state_file and os.path.isfile(state_file):
        os.remove(state_file)
    derived = {d: DERIVED[d]({k: v[TOTAL] for k, v in results.items()}) for d in proto.derived
               if all(need in results for need in DERIVED_NEEDS[d])}
    size_ok = scorer.sizes == {(proto.image_size, proto.image_size)}
    return {
        "protocol": proto.name, "title": proto.title, "sources": list(proto.sources), "count": len(pairs),
        "groups": order, "group_counts": {g: scorer.counts[g] for g in order}, "results": results,
        "not_computed": scorer.not_computed, "derived": derived,
        "metrics": {m.name: {"measure": m.measure, "options": dict(m.options), "colour": m.colour, "scale": m.scale,
                             "higher_is_better": m.higher_is_better, "description": m.description}
                    for m in metrics},
        "skipped": list(skip), "image_size": proto.image_size, "layout": proto.layout,
        "image_sizes": sorted(f"{w}x{h}" for h, w in scorer.sizes), "comparable": size_ok and not skip,
        "published": [dict(method=p.method, dataset=p.dataset, masks=p.masks, values=dict(p.values), source=p.source,
                           note=p.note) for p in proto.published],
        "truth": truth_dir, "output": output_dir, "mask": mask_dir, "mask_polarity": mask_polarity,
        "inception": inception_path if scorer.extractor else None,
        "inception_resize": proto.inception_resize if scorer.extractor else None, "devices": int(ndev),
        "processes": jax.process_count(),
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


def _sync(tag: str) -> None:
    import jax
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(tag)


def _mask_source(proto: Protocol, mask_set: Optional[str], mask_folder: Optional[str], polarity: str, seed: int,
                 size: int):
    """(description for the manifest, i -> (mask float32 [size, size] 1 = hole, mask file or None))."""
    from inpaintjax.image_io import list_images
    from inpaintjax.masks.folders import load_mask, resolve_polarity
    from inpaintjax.masks.generators import make_mask, resolve
    if mask_folder is not None:
        if mask_set is not None:
            raise ValueError("name a mask generator (--mask-set) or a mask folder (--mask-folder), not both")
        polarity = resolve_polarity(polarity)
        if not os.path.isdir(mask_folder):
            raise NotADirectoryError(f"mask folder {mask_folder} is not a directory")
        files = sorted(list_images(mask_folder, recursive=True))
        if not files:
            raise FileNotFoundError(f"mask folder {mask_folder} holds no images")
        order = np.random.default_rng([seed]).permutation(len(files))

        def folder_mask(i):
            rel = files[int(order[i % len(files)])]
            return load_mask(os.path.join(mask_folder, rel), size, polarity), rel
        return {"mask_folder": os.path.abspath(mask_folder), "mask_polarity": polarity, "masks": len(files),
                "order": "numpy.random.default_rng([seed]).permutation(masks), image i takes order[i % masks]"}, \
            folder_mask
    if mask_set is None:
        if not proto.mask_sets:
            raise ValueError(f"protocol {proto.name!r} has no mask set of its own ({proto.masks_note}); "
                             f"name a generator with --mask-set NAME or a folder of masks with --mask-folder DIR")
        mask_set = proto.mask_sets[0]
    resolve(mask_set)  # an unknown generator name fails here, before any file is written
    return {"mask_set": mask_set, "rng": "numpy.random.default_rng([seed, index])"}, \
        lambda i: (make_mask(mask_set, np.random.default_rng([seed, i]), size, size), None)


def _image_source(images):
    """(description, [name], i -> uint8 [H, W, 3], [file of each name] or None) of a folder of
    photographs, a TFDS split named 'tfds:NAME:SPLIT' (array_record, read without TensorFlow from
    TFDS_DATA_DIR or ~/tensorflow_datasets), or a data source."""
    from inpaintjax.image_io import list_images, read_image
    if isinstance(images, str) and images.startswith("tfds:"):
        from inpaintjax.data.sources import TfdsSource
        parts = images.split(":")
        if len(parts) != 3 or not all(parts[1:]):
            raise ValueError(f"{images!r}: name a TFDS split as tfds:NAME:SPLIT, e.g. tfds:places365_small:validation")
        images = TfdsSource(parts[1], parts[2])
    if isinstance(images, (str, os.PathLike)):
        folder = os.fspath(images)
        if not os.path.isdir(folder):
            raise NotADirectoryError(f"--truth {folder} is not a directory")
        rels = sorted(list_images(folder, recursive=True))
        if not rels:
            raise FileNotFoundError(f"--truth {folder} holds no images")
        return os.path.abspath(folder), rels, lambda i: read_image(os.path.join(folder, rels[i]), "image"), \
            [os.path.join(folder, r) for r in rels]
    from inpaintjax.data.sources import describe
    names = [f"{i:06d}" for i in range(len(images))]
    return describe(images), names, lambda i: images[i][0], None


def _check_outputs(names, files, mask_folder, out_dir: str) -> None:
    """Refuse, before anything is written, names that would be written to one file (x.png and x.jpg
    both become <out_dir>/truth/x.png) and files that would replace an input (a photograph or mask
    file inside out_dir)."""
    from inpaintjax.image_io import list_images, stems
    clashes = [n for n in stems(names).values() if len(n) > 1]
    if clashes:
        listed = "; ".join(" and ".join(n) for n in clashes[:5]) + (f"; and {len(clashes) - 5} more"
                                                                      if len(clashes) > 5 else "")
        raise ValueError(f"--truth holds images with the same name and different extensions ({listed}): their "
                         f"inputs would all be written as <name>.png in {out_dir}; rename or move one of each "
                         f"(nothing was written)")
    inputs = list(files or [])
    if mask_folder is not None:
        inputs += [os.path.join(mask_folder, f) for f in list_images(mask_folder, recursive=True)]
    real = {os.path.realpath(p) for p in inputs}
    hit = [p for n in names for sub in ("truth", "masks", "masked")
           for p in [os.path.join(out_dir, sub, os.path.splitext(n)[0] + ".png")] if os.path.realpath(p) in real]
    if hit:
        shown = ", ".join(hit[:5]) + (f" and {len(hit) - 5} more" if len(hit) > 5 else "")
        raise ValueError(f"--write-inputs {out_dir} would replace input file(s) {shown}; choose a folder outside "
                         f"the photographs and masks (nothing was written)")


def write_inputs(protocol: Union[str, Protocol], images, out_dir: str, mask_set: Optional[str] = None,
                 seed: int = 0, *, mask_folder: Optional[str] = None, mask_polarity: str = "white_hole",
                 num_images: Optional[int] = None) -> dict:
    """Write a protocol's test inputs for another tool (or for `run_protocol`): for image i of `images`
    (a folder of photographs, sorted by relative path; or a TFDS split 'tfds:NAME:SPLIT' or a data
    source such as `inpaintjax.data.sources.TfdsSource`, named 000000, 000001, ...; the first
    `num_images` only),
    out_dir/truth/<name>.png (prepared to the protocol's size), out_dir/masks/<name>.png (255 = hole)
    and out_dir/masked/<name>.png (the truth with the hole set to 0), plus manifest.json.

    Masks come from a generator, `make_mask(mask_set, np.random.default_rng([seed, i]), S, S)` (default:
    the protocol's first mask set), or from a folder of mask files (`mask_folder`, read with
    `mask_polarity`, e.g. 'nvidia' for NVIDIA's Irregular Mask Dataset: white = hole), shuffled by `seed`
    and resized to S with nearest neighbour. The same arguments give the same files on any machine. A
    folder already holding this request's manifest is returned as it is (nothing is written); one
    holding another request's is refused, and so, before anything is written, are two images that would
be written under one name (`x.png` and `x.jpg`) and an output that would replace an input file. With
several JAX processes each writes its share."""
    import jax
    from inpaintjax.image_io import write_image

    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    size = proto.preparation.size if proto.preparation else proto.image_size
    masks_desc, mask_of = _mask_source(proto, mask_set, mask_folder, mask_polarity, seed, size)
    source_desc, names, image_of, files = _image_source(images)
    if num_images is not None:
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}")
        names = names[:num_images]
    _check_outputs(names, files, mask_folder, out_dir)
    request = {"protocol": proto.name, **masks_desc, "seed": seed, "size": size, "images_from": source_desc,
               "count": len(names)}
    manifest_file = os.path.join(out_dir, "manifest.json")
    if os.path.isfile(manifest_file):
        with open(manifest_file) as fh:
            old = json.load(fh)
        if {k: old.get(k) for k in request} == request:
            return old
        diff = {k: (old.get(k), v) for k, v in request.items() if old.get(k) != v}
        raise ValueError(f"{out_dir} already holds the inputs of another request ({diff}: saved, asked); "
                         f"choose another folder (nothing was written)")
    share = process_share(len(names))
    entries = []
    for i in range(share.start, share.stop):
        stem = os.path.splitext(names[i])[0]
        image = prepare_image(image_of(i), size)
        mask, mask_file = mask_of(i)
        hole = mask > 0.5
        write_image(os.path.join(out_dir, "truth", stem + ".png"), image)
        write_image(os.path.join(out_dir, "masks", stem + ".png"), (hole * 255).astype(np.uint8))
        write_image(os.path.join(out_dir, "masked", stem + ".png"), np.where(hole[..., None], 0, image).astype(np.uint8))
        entry = {"file": stem + ".png", "source": names[i], "index": i, "hole_ratio": float(hole.mean())}
        if mask_file is not None:
            entry["mask_file"] = mask_file
        entries.append(entry)
    if jax.process_count() > 1:  # each process's entries, then process 0 writes the one manifest
        with open(os.path.join(out_dir, f"manifest.process{jax.process_index()}.json"), "w") as fh:
            json.dump(entries, fh)
        _sync("inpaintjax write_inputs entries")
    if jax.process_index() == 0:
        if jax.process_count() > 1:
            entries = []
            for p in range(jax.process_count()):
                part = os.path.join(out_dir, f"manifest.process{p}.json")
                with open(part) as fh:
                    entries += json.load(fh)
                os.remove(part)
        manifest = {**request, "numpy": np.__version__, "images": entries}
        tmp = manifest_file + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.write("\n")
        os.replace(tmp, manifest_file)  # written last: its presence means every file is there
    _sync("inpaintjax write_inputs manifest")
    with open(manifest_file) as fh:
        return json.load(fh)
