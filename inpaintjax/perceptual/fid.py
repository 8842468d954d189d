"""FID, KID and Inception Score from Inception-v3 features, as the reference implementations compute them.

- FID (Heusel et al., NeurIPS 2017; the numbers of mseitzer/pytorch-fid `fid_score.py`): the Frechet
  distance between Gaussians fitted to pool3 features, ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)),
  with the unbiased (N - 1) covariance. `FeatureStats` accumulates the mean and covariance in float64
  from a stream of batches (Chan et al.'s pairwise update of the centred sums), so no list of all
  features is kept and partial statistics of several devices or hosts combine exactly (`merge`).
  `frechet_distance(method='sqrtm')` follows pytorch-fid: scipy.linalg.sqrtm of S1 S2; if it is not
  finite, 1e-6 I is added to both covariances and it is retried; a complex result whose diagonal has an
  imaginary part above 1e-3 is an error, otherwise its real part is used. `method='eigh'` computes
  tr(sqrt(S1 S2)) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1))) with symmetric eigendecompositions, which run on
  any JAX backend. Statistics are saved as .npz with pytorch-fid's `mu` and `sigma` keys.
- KID (Binkowski et al., ICLR 2018) as clean-fid's `kernel_distance` (GaParmar/clean-fid): the
  unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3, averaged over 100 subsets of
  min(N1, N2, 1000) samples drawn without replacement; the std over subsets as torch-fidelity reports it.
- Inception Score (Salimans et al., NeurIPS 2016): exp(E_x KL(p(y|x) || p(y))) with p(y|x) the softmax
  of pool3 @ fc.weight.T (the 1008 logits without the bias), in 10 splits in the given (file) order;
  mean and std over the splits (torch-fidelity's `isc_features_to_metric` with shuffle=False).
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

FID_EPS = 1e-6


class FeatureStats:
    """Running count, mean and centred scatter matrix (float64) of feature rows.

    `update(batch [B, D])` folds a batch in; `merge(other)` combines the statistics of another
    part of the data (another device or host) exactly; `mu` and `sigma` (unbiased covariance) are the
    pytorch-fid statistics. Rows are held back until FLUSH_ROWS of them have arrived (or the
    statistics are read), then folded in together: a D x D pass per batch would cost more than
    the batch's own features when batches are small (2048-d pool3 features: 32 MB per pass).
    Memory: D^2 doubles plus at most FLUSH_ROWS rows, whatever the number of rows."""

    FLUSH_ROWS = 1024

    def __init__(self, dim: int):
        self.dim = int(dim)
        self.count = 0              # rows seen, held back ones included
        self._mean = np.zeros(self.dim)
        self._scatter = None        # D x D, allocated by the first fold
        self._folded = 0            # rows in _mean and _scatter
        self._held: list[np.ndarray] = []

    def update(self, batch) -> "FeatureStats":
        x = np.asarray(batch, np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"FeatureStats({self.dim}): a batch must be [B, {self.dim}], got {x.shape}")
        if len(x) == 0:
            return self
        self._held.append(x.copy() if x is batch else x)  # the caller may reuse its buffer
        self.count += len(x)
        if self.count - self._folded >= self.FLUSH_ROWS:
            self._fold()
        return self

    def _fold(self) -> None:
        """Fold the held rows in: their own mean and scatter, combined with the running ones by
        Chan et al.'s pairwise rule (as `merge`)."""
        if not self._held:
            return
        x = np.concatenate(self._held) if len(self._held) > 1 else self._held[0]
        self._held = []
        mean = x.mean(0)
        centred = x - mean
        self._combine(len(x), mean, centred.T @ centred)

    def _combine(self, count: int, mean: np.ndarray, scatter: np.ndarray) -> None:
        n = self._folded + count
        if self._scatter is None:
            self._scatter = np.array(scatter, np.float64)  # a copy: the caller's may be shared
        else:
            delta = mean - self._mean
            self._scatter += scatter
            self._scatter += np.multiply.outer(delta * (self._folded * count / n), delta)
        self._mean = self._mean + (mean - self._mean) * (count / n)
        self._folded = n

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        if other.dim != self.dim:
            raise ValueError(f"cannot merge statistics of {other.dim}-d features into {self.dim}-d ones")
        if other.count == 0:
            return self
        self._fold()
        other._fold()
        self._combine(other._folded, other._mean, other._scatter)
        self.count = self._folded
        return self

    @property
    def mean(self) -> np.ndarray:
        self._fold()
        return self._mean

    @property
    def scatter(self) -> np.ndarray:
        self._fold()
        return self._scatter if self._scatter is not None else np.zeros((self.dim, self.dim))

    def to_arrays(self) -> dict:
        """count, mean, scatter as arrays (for gathering over hosts)."""
        return {"count": np.asarray(self.count, np.int64), "mean": self.mean, "scatter": self.scatter}

    @classmethod
    def from_arrays(cls, count, mean, scatter) -> "FeatureStats":
        s = cls(len(mean))
        if int(count):
            s._combine(int(count), np.asarray(mean, np.float64), np.asarray(scatter, np.float64))
            s.count = int(count)
        return s

    @property
    def mu(self) -> np.ndarray:
        return self.mean.copy()

    @property
    def sigma(self) -> np.ndarray:
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 feature rows, got {self.count}")
        return self.scatter / (self.count - 1)


def allgather_exact(x: np.ndarray) -> np.ndarray:
    """Every JAX process's `x` (same shape and dtype everywhere), stacked along a new first axis,
    bit for bit: JAX's process_allgather carries 64-bit values as 32-bit ones unless jax_enable_x64
    is on, so 64-bit arrays travel as pairs of uint32 words and are viewed back."""
    from jax.experimental import multihost_utils
    x = np.asarray(x)
    if x.dtype.itemsize != 8:
        return np.asarray(multihost_utils.process_allgather(x))
    words = np.ascontiguousarray(x).reshape(-1).view(np.uint32)
    every = np.ascontiguousarray(multihost_utils.process_allgather(words))
    return every.view(x.dtype).reshape((len(every),) + x.shape)


def allgather_rows(x: np.ndarray) -> np.ndarray:
    """The rows of every JAX process's `x` [n_p, ...] (n_p may differ between processes, the rest of
    the shape and the dtype may not) concatenated in process order, bit for bit; the identity in a
    single-process run."""
    import jax
    x = np.asarray(x)
    if jax.process_count() == 1:
        return x
    counts = allgather_exact(np.asarray(len(x), np.int64))
    top = int(np.max(counts))
    padded = x if len(x) == top else np.concatenate([x, np.zeros((top - len(x),) + x.shape[1:], x.dtype)])
    every = allgather_exact(padded)
    return np.concatenate([every[i][:int(c)] for i, c in enumerate(counts)])


def allgather_stats(stats: FeatureStats) -> FeatureStats:
    """The statistics of every JAX process merged (each host fed its own share of the files), in
    float64 throughout; the identity in a single-process run."""
    import jax
    if jax.process_count() == 1:
        return stats
    arrays = {k: allgather_exact(v) for k, v in stats.to_arrays().items()}
    total = FeatureStats(stats.dim)
    for i in range(jax.process_count()):
        total.merge(FeatureStats.from_arrays(arrays["count"][i], arrays["mean"][i], arrays["scatter"][i]))
    return total


def save_stats(path: str, mu: np.ndarray, sigma: np.ndarray, count: Optional[int] = None) -> None:
    """pytorch-fid's statistics file: an .npz with `mu` [D] and `sigma` [D, D] (and `count`)."""
    extra = {} if count is None else {"count": np.asarray(count)}
    with open(path, "wb") as fh:
        np.savez(fh, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64), **extra)


def load_stats(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) from an .npz with pytorch-fid's keys."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"FID statistics file {path!r} not found (an .npz with 'mu' and 'sigma', "
                                f"as pytorch-fid --save-stats or inpaintjax evaluate writes)")
    try:
        with np.load(path) as f:
            if "mu" not in f or "sigma" not in f:
                raise ValueError(f"{path}: holds {sorted(f.files)}, not pytorch-fid's 'mu' and 'sigma'")
            mu, sigma = f["mu"].astype(np.float64), f["sigma"].astype(np.float64)
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz of FID statistics ({e})") from e
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise ValueError(f"{path}: mu {mu.shape} and sigma {sigma.shape} are not a [D] mean and [D, D] covariance")
    return mu, sigma


def _check_pair(mu1, sigma1, mu2, sigma2):
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"FID statistics differ in shape: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    return mu1, sigma1, mu2, sigma2


def _trace_sqrt_product_sqrtm(sigma1, sigma2, eps: float) -> float:
    from scipy import linalg
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise ValueError(f"FID: sqrtm(S1 S2) has an imaginary component {m}; the covariances are "
                             f"too ill-conditioned (too few images for the feature dimension?)")
        covmean = covmean.real
    return float(np.trace(covmean))


def _trace_sqrt_product_eigh(sigma1, sigma2) -> float:
    import jax
    import jax.numpy as jnp
    with jax.enable_x64(True):
        s1, s2 = jnp.asarray(sigma1, jnp.float64), jnp.asarray(sigma2, jnp.float64)
        w, v = jnp.linalg.eigh(s1)
        root1 = (v * jnp.sqrt(jnp.clip(w, 0.0))) @ v.T
        m = root1 @ s2 @ root1
        ev = jnp.linalg.eigvalsh((m + m.T) / 2)
        return float(jnp.sum(jnp.sqrt(jnp.clip(ev, 0.0))))


def frechet_distance(mu1, sigma1, mu2, sigma2, method: str = "sqrtm", eps: float = FID_EPS) -> float:
    """The Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (FID when these are pool3
    statistics). `method`: 'sqrtm' (pytorch-fid's semantics, SciPy on the host) or 'eigh' (symmetric
    eigendecompositions in float64 on the default JAX device)."""
    mu1, sigma1, mu2, sigma2 = _check_pair(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    if method == "sqrtm":
        tr = _trace_sqrt_product_sqrtm(sigma1, sigma2, eps)
    elif method == "eigh":
        tr = _trace_sqrt_product_eigh(sigma1, sigma2)
    else:
        raise ValueError(f"frechet_distance: method {method!r} is not 'sqrtm' or 'eigh'")
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr)


def fid_from_features(feats1, feats2, method: str = "sqrtm") -> float:
    """FID between two feature arrays [N, D] (mean and unbiased covariance of each)."""
    a, b = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False), method)


def kernel_inception_distance(feats1, feats2, num_subsets: int = 100, max_subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """(KID, its std over subsets) between feature arrays [N1, D] and [N2, D]: clean-fid's estimator.

    Subsets are drawn with `np.random.default_rng(seed)`; when both sets have at most
    `max_subset_size` rows and the same size, every subset is a whole set and the value does not
    depend on the draws."""
    f1, f2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"KID: features must be [N1, D] and [N2, D], got {f1.shape} and {f2.shape}")
    d = f1.shape[1]
    m = min(len(f1), len(f2), max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 images in each set, got {len(f1)} and {len(f2)}")
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        x = f2[rng.choice(len(f2), m, replace=False)]
        y = f1[rng.choice(len(f1), m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        values[i] = ((a.sum() - np.trace(a)) / (m - 1) - b.sum() * 2 / m) / m
    return float(values.mean()), float(values.std())


def inception_score(logits_unbiased, splits: int = 10) -> tuple[float, float]:
    """(mean, std) of the Inception Score over `splits` consecutive splits of the logits [N, 1008]
    (pool3 @ fc.weight.T, no bias), in float64."""
    z = np.asarray(logits_unbiased, np.float64)
    if z.ndim != 2:
        raise ValueError(f"inception_score: logits must be [N, classes], got {z.shape}")
    n = len(z)
    if n < splits:
        raise ValueError(f"inception_score: {n} images cannot make {splits} splits")
    log_p = z - z.max(1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        q = p[lo:hi].mean(0, keepdims=True)
        kl = (p[lo:hi] * (log_p[lo:hi] - np.log(q))).sum(1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))
