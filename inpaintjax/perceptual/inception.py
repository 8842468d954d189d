"""Inception-v3 as FID uses it: the 2015-12-05 TensorFlow graph in the layout pytorch-fid ports it.

References: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium" (NeurIPS 2017, bioinf-jku/TTUR) define FID on pool3 of this graph; mseitzer/pytorch-fid
(`src/pytorch_fid/inception.py`) ports it to torchvision's Inception3 with three changes that this
module keeps: the average pools of Mixed_5b..Mixed_7b ignore padded zeros (TF's pooling,
`count_include_pad=False`), Mixed_7c pools its pool branch with a 3x3 max-pool (as the TF graph
does), and the classifier has 1008 outputs. Weights: `pt_inception-2015-12-05-6726825d.pth`
(https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth;
torch-fidelity's `weights-inception-2015-12-05-6726825d.pth` is the same file), read with torch's
weights-only loader. 23,850,960 parameters (convolutions, batch-norm scale/shift, fc).

Layout: NHWC. `features(params, x)` takes the network input (already resized and normalised to
[-1, 1]) and returns pool3 [B, 2048] and the unbiased logits pool3 @ fc.weight.T [B, 1008] (what the
Inception Score uses). `preprocess(images, mode)` turns images in [0, 1] into that input with one of
the resize conventions in use:

- `pytorch` (pytorch-fid, LaMa; the default): bilinear with half-pixel centres and no antialiasing
  (`F.interpolate(..., mode="bilinear", align_corners=False)`) on [0, 1] values, then 2x - 1.
- `tf1` (TTUR's TF graph, clean-fid's `legacy_tensorflow`, torch-fidelity, StyleGAN2-ADA and MAT):
  TF1's `resize_bilinear` (source = destination * in / out, no half-pixel offset) on [0, 255] values,
  then (x - 128) / 128.
- `clean` (clean-fid's default): PIL's bicubic resize on float32 values in [0, 255] (antialiased when
  shrinking), clipped to [0, 255], then (x - 128) / 128.

Batch norm (eps 0.001) is folded into each convolution when the weights are loaded; the forward pass
is convolutions, ReLUs and pools only.
"""

from __future__ import annotations

import functools
import math
from typing import Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from inpaintjax.perceptual.torch_files import WeightFileError, load_state_dict, require

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth")
WHERE = (f"download {WEIGHTS_URL} (pytorch-fid's port of the 2015-12-05 TF graph; torch-fidelity's "
         f"weights-inception-2015-12-05-6726825d.pth is the same file) and name its path")
PARAM_COUNT = 23_850_960
INPUT_SIZE = 299
POOL3_DIM = 2048
LOGITS_DIM = 1008
BN_EPS = 1e-3
RESIZE_MODES = ("pytorch", "tf1", "clean")


# ------------------------------------------------------------------------------------------ layers
def _a(p, cin, pool_features):
    return [(f"{p}.branch1x1", cin, 64, 1, 1, 1, 0, 0), (f"{p}.branch5x5_1", cin, 48, 1, 1, 1, 0, 0),
            (f"{p}.branch5x5_2", 48, 64, 5, 5, 1, 2, 2), (f"{p}.branch3x3dbl_1", cin, 64, 1, 1, 1, 0, 0),
            (f"{p}.branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1), (f"{p}.branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1),
            (f"{p}.branch_pool", cin, pool_features, 1, 1, 1, 0, 0)]


def _b(p, cin):
    return [(f"{p}.branch3x3", cin, 384, 3, 3, 2, 0, 0), (f"{p}.branch3x3dbl_1", cin, 64, 1, 1, 1, 0, 0),
            (f"{p}.branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1), (f"{p}.branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0)]


def _c(p, cin, c7):
    return [(f"{p}.branch1x1", cin, 192, 1, 1, 1, 0, 0), (f"{p}.branch7x7_1", cin, c7, 1, 1, 1, 0, 0),
            (f"{p}.branch7x7_2", c7, c7, 1, 7, 1, 0, 3), (f"{p}.branch7x7_3", c7, 192, 7, 1, 1, 3, 0),
            (f"{p}.branch7x7dbl_1", cin, c7, 1, 1, 1, 0, 0), (f"{p}.branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0),
            (f"{p}.branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3), (f"{p}.branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0),
            (f"{p}.branch7x7dbl_5", c7, 192, 1, 7, 1, 0, 3), (f"{p}.branch_pool", cin, 192, 1, 1, 1, 0, 0)]


def _d(p, cin):
    return [(f"{p}.branch3x3_1", cin, 192, 1, 1, 1, 0, 0), (f"{p}.branch3x3_2", 192, 320, 3, 3, 2, 0, 0),
            (f"{p}.branch7x7x3_1", cin, 192, 1, 1, 1, 0, 0), (f"{p}.branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3),
            (f"{p}.branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0), (f"{p}.branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0)]


def _e(p, cin):
    return [(f"{p}.branch1x1", cin, 320, 1, 1, 1, 0, 0), (f"{p}.branch3x3_1", cin, 384, 1, 1, 1, 0, 0),
            (f"{p}.branch3x3_2a", 384, 384, 1, 3, 1, 0, 1), (f"{p}.branch3x3_2b", 384, 384, 3, 1, 1, 1, 0),
            (f"{p}.branch3x3dbl_1", cin, 448, 1, 1, 1, 0, 0), (f"{p}.branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1),
            (f"{p}.branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1), (f"{p}.branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0),
            (f"{p}.branch_pool", cin, 192, 1, 1, 1, 0, 0)]


#: every BasicConv2d (conv without bias + batch norm + ReLU) in torchvision's names:
#: (name, in, out, kh, kw, stride, pad_h, pad_w)
CONVS = ([("Conv2d_1a_3x3", 3, 32, 3, 3, 2, 0, 0), ("Conv2d_2a_3x3", 32, 32, 3, 3, 1, 0, 0),
          ("Conv2d_2b_3x3", 32, 64, 3, 3, 1, 1, 1), ("Conv2d_3b_1x1", 64, 80, 1, 1, 1, 0, 0),
          ("Conv2d_4a_3x3", 80, 192, 3, 3, 1, 0, 0)]
         + _a("Mixed_5b", 192, 32) + _a("Mixed_5c", 256, 64) + _a("Mixed_5d", 288, 64)
         + _b("Mixed_6a", 288)
         + _c("Mixed_6b", 768, 128) + _c("Mixed_6c", 768, 160) + _c("Mixed_6d", 768, 160)
         + _c("Mixed_6e", 768, 192)
         + _d("Mixed_7a", 768) + _e("Mixed_7b", 1280) + _e("Mixed_7c", 2048))
CONV_TABLE = {c[0]: c for c in CONVS}


def state_dict_shapes() -> dict[str, tuple]:
    """Every trainable tensor of the state dict (torchvision names, OIHW) -> its shape."""
    out = {}
    for name, cin, cout, kh, kw, *_ in CONVS:
        out[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        out[f"{name}.bn.weight"] = (cout,)
        out[f"{name}.bn.bias"] = (cout,)
    out["fc.weight"] = (LOGITS_DIM, POOL3_DIM)
    out["fc.bias"] = (LOGITS_DIM,)
    return out


def buffer_shapes() -> dict[str, tuple]:
    """The batch-norm running statistics of the state dict -> their shapes."""
    out = {}
    for name, _, cout, *_ in CONVS:
        out[f"{name}.bn.running_mean"] = (cout,)
        out[f"{name}.bn.running_var"] = (cout,)
    return out


# ------------------------------------------------------------------------------------------ weights
def from_state_dict(sd: Mapping[str, np.ndarray], path: str = "<state dict>") -> dict:
    """pytorch-fid's state dict (NumPy arrays, torchvision names) -> this module's params:
    {conv name: {'kernel' HWIO, 'bias'}} with batch norm folded in, plus 'fc': {'kernel' [2048, 1008],
    'bias'}. Checks every key and shape and the parameter count (23,850,960); the int64
    `num_batches_tracked` entries are ignored."""
    shapes = state_dict_shapes()
    require(sd, {**shapes, **buffer_shapes()}, path, "the FID Inception-v3 (2015-12-05 graph)", WHERE)
    count = sum(int(np.prod(s)) for s in shapes.values())
    if count != PARAM_COUNT:  # the layer table itself is wrong
        raise AssertionError(f"FID Inception layer table gives {count} parameters, not {PARAM_COUNT}")
    params = {}
    for name, *_ in CONVS:
        w = np.asarray(sd[f"{name}.conv.weight"], np.float64)
        gamma = np.asarray(sd[f"{name}.bn.weight"], np.float64)
        beta = np.asarray(sd[f"{name}.bn.bias"], np.float64)
        mean = np.asarray(sd[f"{name}.bn.running_mean"], np.float64)
        var = np.asarray(sd[f"{name}.bn.running_var"], np.float64)
        scale = gamma / np.sqrt(var + BN_EPS)
        params[name] = {"kernel": np.transpose(w * scale[:, None, None, None], (2, 3, 1, 0)).astype(np.float32),
                        "bias": (beta - mean * scale).astype(np.float32)}
    params["fc"] = {"kernel": np.ascontiguousarray(np.asarray(sd["fc.weight"], np.float32).T),
                    "bias": np.asarray(sd["fc.bias"], np.float32)}
    return params


def load_weights(path: str) -> dict:
    """`pt_inception-2015-12-05-6726825d.pth` (pytorch-fid) -> params for `features`."""
    return from_state_dict(load_state_dict(path, "the FID Inception-v3 (2015-12-05 graph)", WHERE), path)


def random_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
    """A state dict of pytorch-fid's layout with random weights that carry signal (tests and golden
    outputs; drawn with NumPy so that any process regenerates it from the seed): He-normal
    convolutions, batch-norm scale in [0.6, 1.4], shift, running mean and variance away from 0/1."""
    rng = np.random.default_rng(seed)
    sd = {}
    for name, cin, cout, kh, kw, *_ in CONVS:
        fan_in = cin * kh * kw
        sd[f"{name}.conv.weight"] = (rng.standard_normal((cout, cin, kh, kw)) * math.sqrt(2.0 / fan_in)).astype(np.float32)
        sd[f"{name}.bn.weight"] = rng.uniform(0.6, 1.4, cout).astype(np.float32)
        sd[f"{name}.bn.bias"] = rng.normal(0.0, 0.1, cout).astype(np.float32)
        sd[f"{name}.bn.running_mean"] = rng.normal(0.0, 0.1, cout).astype(np.float32)
        sd[f"{name}.bn.running_var"] = rng.uniform(0.5, 1.5, cout).astype(np.float32)
        sd[f"{name}.bn.num_batches_tracked"] = np.asarray(0, np.int64)
    sd["fc.weight"] = (rng.standard_normal((LOGITS_DIM, POOL3_DIM)) * 0.05).astype(np.float32)
    sd["fc.bias"] = rng.normal(0.0, 0.1, LOGITS_DIM).astype(np.float32)
    return sd


# ------------------------------------------------------------------------------------------ forward
def _conv(params, name, x):
    _, _, _, _, _, stride, ph, pw = CONV_TABLE[name]
    p = params[name]
    y = jax.lax.conv_general_dilated(x, p["kernel"].astype(x.dtype), (stride, stride), ((ph, ph), (pw, pw)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jax.nn.relu(y + p["bias"].astype(x.dtype))


def _max_pool(x, size, stride, pad=0):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, size, size, 1), (1, stride, stride, 1),
                                 ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def _avg_pool_3x3(x, count_include_pad: bool):
    pad = ((0, 0), (1, 1), (1, 1), (0, 0))
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), pad)
    if count_include_pad:
        return total / 9.0
    ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), pad)
    return total / count


def features(params, x: jax.Array, *, count_include_pad: bool = False,
             mixed_7c_pool: str = "max") -> dict[str, jax.Array]:
    """The network on its input x [B, H, W, 3] (normalised to [-1, 1], 299x299 for FID; any size of
    at least 75x75 runs) -> {'pool3': [B, 2048], 'logits_unbiased': [B, 1008]} in float32.

    `count_include_pad` and `mixed_7c_pool` exist to show that the FID choices matter (torchvision's
    Inception-v3 uses count_include_pad=True and an average pool in Mixed_7c); keep the defaults."""
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"Inception expects NHWC RGB [B, H, W, 3], got shape {x.shape}")
    if min(x.shape[1:3]) < 75:
        raise ValueError(f"Inception needs inputs of at least 75x75, got {x.shape[1]}x{x.shape[2]}")
    c = functools.partial(_conv, params)
    pool = functools.partial(_avg_pool_3x3, count_include_pad=count_include_pad)
    x = x.astype(jnp.float32)
    x = c("Conv2d_1a_3x3", x)
    x = c("Conv2d_2a_3x3", x)
    x = c("Conv2d_2b_3x3", x)
    x = _max_pool(x, 3, 2)
    x = c("Conv2d_3b_1x1", x)
    x = c("Conv2d_4a_3x3", x)
    x = _max_pool(x, 3, 2)
    for m in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        b5 = c(f"{m}.branch5x5_2", c(f"{m}.branch5x5_1", x))
        b3 = c(f"{m}.branch3x3dbl_3", c(f"{m}.branch3x3dbl_2", c(f"{m}.branch3x3dbl_1", x)))
        x = jnp.concatenate([c(f"{m}.branch1x1", x), b5, b3, c(f"{m}.branch_pool", pool(x))], -1)
    m = "Mixed_6a"
    b3 = c(f"{m}.branch3x3", x)
    bd = c(f"{m}.branch3x3dbl_3", c(f"{m}.branch3x3dbl_2", c(f"{m}.branch3x3dbl_1", x)))
    x = jnp.concatenate([b3, bd, _max_pool(x, 3, 2)], -1)
    for m in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        b7 = c(f"{m}.branch7x7_3", c(f"{m}.branch7x7_2", c(f"{m}.branch7x7_1", x)))
        bd = x
        for i in range(1, 6):
            bd = c(f"{m}.branch7x7dbl_{i}", bd)
        x = jnp.concatenate([c(f"{m}.branch1x1", x), b7, bd, c(f"{m}.branch_pool", pool(x))], -1)
    m = "Mixed_7a"
    b3 = c(f"{m}.branch3x3_2", c(f"{m}.branch3x3_1", x))
    b7 = x
    for i in range(1, 5):
        b7 = c(f"{m}.branch7x7x3_{i}", b7)
    x = jnp.concatenate([b3, b7, _max_pool(x, 3, 2)], -1)
    for m in ("Mixed_7b", "Mixed_7c"):
        t = c(f"{m}.branch3x3_1", x)
        b3 = jnp.concatenate([c(f"{m}.branch3x3_2a", t), c(f"{m}.branch3x3_2b", t)], -1)
        t = c(f"{m}.branch3x3dbl_2", c(f"{m}.branch3x3dbl_1", x))
        bd = jnp.concatenate([c(f"{m}.branch3x3dbl_3a", t), c(f"{m}.branch3x3dbl_3b", t)], -1)
        if m == "Mixed_7c" and mixed_7c_pool == "max":
            pooled = _max_pool(x, 3, 1, 1)
        else:
            pooled = pool(x)
        x = jnp.concatenate([c(f"{m}.branch1x1", x), b3, bd, c(f"{m}.branch_pool", pooled)], -1)
    pool3 = jnp.mean(x, axis=(1, 2))
    logits = jnp.dot(pool3, params["fc"]["kernel"], precision=jax.lax.Precision.HIGHEST)
    return {"pool3": pool3, "logits_unbiased": logits}


# ------------------------------------------------------------------------------------------ resize
def _pytorch_bilinear(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] weights of F.interpolate(bilinear, align_corners=False, antialias=False)."""
    w = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for i in range(n_out):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        frac = src - i0
        w[i, i0] += 1.0 - frac
        w[i, i1] += frac
    return w


def _tf1_bilinear(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] weights of TF1's resize_bilinear (align_corners=False, no half-pixel centres);
    the source coordinates in float32, as TF computes them."""
    w = np.zeros((n_out, n_in))
    scale = np.float32(n_in / n_out)
    for i in range(n_out):
        src = np.float32(i) * scale
        i0 = min(int(np.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        frac = float(src - np.float32(i0))
        w[i, i0] += 1.0 - frac
        w[i, i1] += frac
    return w


def _bicubic(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


def _pil_bicubic(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] weights of PIL's BICUBIC resample (a = -0.5, support widened when shrinking,
    taps normalised to sum 1), as Pillow's `precompute_coeffs` computes them."""
    w = np.zeros((n_out, n_in))
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    for i in range(n_out):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        taps = np.array([_bicubic((x - center + 0.5) / filterscale) for x in range(lo, hi)])
        total = taps.sum()
        w[i, lo:hi] = taps / total if total != 0 else taps
    return w


@functools.lru_cache(maxsize=32)
def resize_matrix(mode: str, n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] float64 interpolation weights of one axis for a resize `mode`."""
    if mode == "pytorch":
        return _pytorch_bilinear(n_in, n_out)
    if mode == "tf1":
        return _tf1_bilinear(n_in, n_out)
    if mode == "clean":
        return _pil_bicubic(n_in, n_out)
    raise ValueError(f"resize mode {mode!r} is not one of {', '.join(RESIZE_MODES)}")


def resize(x: jax.Array, mode: str, size: int = INPUT_SIZE) -> jax.Array:
    """Resize [B, H, W, C] float images to size x size with one of `RESIZE_MODES` (values keep their
    range; 'clean' does not clip here, `preprocess` does). Rows first, then columns; PIL's order
    (columns, then rows, float32 in between) differs by float rounding only."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r} is not one of {', '.join(RESIZE_MODES)}")
    _, h, w, _ = x.shape
    hi = jax.lax.Precision.HIGHEST
    if (h, w) != (size, size) or mode == "clean":
        if w != size:
            mw = jnp.asarray(resize_matrix(mode, w, size), jnp.float32)
            x = jnp.einsum("bhwc,ow->bhoc", x, mw, precision=hi)
        if h != size:
            mh = jnp.asarray(resize_matrix(mode, h, size), jnp.float32)
            x = jnp.einsum("bhwc,oh->bowc", x, mh, precision=hi)
    return x


def preprocess(images: jax.Array, mode: str = "pytorch", size: int = INPUT_SIZE) -> jax.Array:
    """Images [B, H, W, 3] (float in [0, 1], or uint8) -> the network input [B, size, size, 3] of
    the convention `mode` (see the module docstring)."""
    if images.dtype == jnp.uint8:
        x = images.astype(jnp.float32) / 255.0
    else:
        x = images.astype(jnp.float32)
    if mode == "pytorch":
        return 2.0 * resize(x, mode, size) - 1.0
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r} is not one of {', '.join(RESIZE_MODES)}")
    x = resize(x * 255.0, mode, size)
    if mode == "clean":
        x = jnp.clip(x, 0.0, 255.0)
    return (x - 128.0) / 128.0


def make_extractor(params, mode: str = "pytorch", size: int = INPUT_SIZE, mesh: Optional[jax.sharding.Mesh] = None):
    """A jitted `f(images [B, H, W, 3]) -> {'pool3', 'logits_unbiased'}` with `params` bound.

    With `mesh` (one axis, named 'data'), the batch is split over the mesh's devices (B must be a
    multiple of their number) and the weights are replicated."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r} is not one of {', '.join(RESIZE_MODES)}")

    def f(p, images):
        return features(p, preprocess(images, mode, size))

    if mesh is None:
        jf = jax.jit(f)
        dev_params = jax.device_put(params)
        return lambda images: jf(dev_params, images)
    from jax.sharding import NamedSharding, PartitionSpec as P
    rep = NamedSharding(mesh, P())
    data = NamedSharding(mesh, P(mesh.axis_names[0]))
    jf = jax.jit(f, in_shardings=(rep, data), out_shardings=data)
    dev_params = jax.device_put(params, rep)

    def run(images):
        return jf(dev_params, jax.device_put(images, data))

    return run


__all__ = ["CONVS", "PARAM_COUNT", "RESIZE_MODES", "WEIGHTS_FILE", "WEIGHTS_URL", "WeightFileError",
           "features", "from_state_dict", "load_weights", "make_extractor", "preprocess",
           "random_state_dict", "resize", "resize_matrix", "state_dict_shapes"]
