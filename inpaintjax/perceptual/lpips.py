"""LPIPS v0.1 (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
CVPR 2018; richzhang/PerceptualSimilarity, pip `lpips` 0.1.4) with its AlexNet, VGG-16 and
SqueezeNet-1.1 backbones.

LPIPS(x0, x1) = sum over tapped layers l of mean_{h,w} sum_c w_{l,c} (f0_l - f1_l)^2, where f_l are the
backbone's ReLU activations of each image normalised to unit length over channels (f / (|f| + 1e-10)),
and the backbone sees (x - shift) / scale with x in [-1, 1] and the package's constants
shift (-0.030, -0.088, -0.188), scale (0.458, 0.448, 0.450). Taps (torchvision `features` indices):
alex relu1..relu5 (64, 192, 384, 256, 256 channels); vgg relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
(the project's VGG-16, `inpaintjax.models.vgg`); squeeze the first ReLU and fires 4, 7, 9, 10, 11, 12
(64, 128, 256, 384, 384, 512, 512). LaMa reports LPIPS-VGG, MAT LPIPS-Alex.

Weights come from files the user names:
- backbones: torchvision state dicts `alexnet-owt-7be5be79.pth`, `vgg16-397923af.pth`,
  `squeezenet1_1-b8a52dc0.pth` (https://download.pytorch.org/models/<file>);
- linear layers: the `lpips` package's `weights/v0.1/{alex,vgg,squeeze}.pth` (found in an installed
  `lpips`, or a path), keys `lin{i}.model.1.weight` [1, C, 1, 1].
Inputs of `distance` are images [B, H, W, 3] in [0, 1] (as `lpips.LPIPS(...)(a, b, normalize=True)`),
each side at least `MIN_SIZE[net]` pixels (alex 31, vgg 16, squeeze 17): below it the last tapped
layer has no pixel left (PyTorch's layers, which the `lpips` package runs, raise there), and
`distance` refuses the size (`check_size`).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from typing import Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from inpaintjax.models import vgg as vgg_lib
from inpaintjax.perceptual.torch_files import WeightFileError, load_state_dict, require

NETS = ("alex", "vgg", "squeeze")
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512),
            "squeeze": (64, 128, 256, 384, 384, 512, 512)}
BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth",
                  "squeeze": "squeezenet1_1-b8a52dc0.pth"}
EPS = 1e-10
#: the smallest image side whose last tapped layer keeps a pixel: AlexNet's 11/4 convolution and two
#: 3/2 pools (n -> (n - 7) // 4 + 1 -> 3 -> 1), VGG-16's four 2/2 pools before relu5_3, SqueezeNet's
#: 3/2 convolution and three ceil-mode 3/2 pools (n -> (n - 3) // 2 + 1 = 8 -> 4 -> 2 -> 1)
MIN_SIZE = {"alex": 31, "vgg": 16, "squeeze": 17}

#: AlexNet `features` convolutions: index -> (in, out, kernel, stride, pad)
ALEX_CONVS = {0: (3, 64, 11, 4, 2), 3: (64, 192, 5, 1, 2), 6: (192, 384, 3, 1, 1), 8: (384, 256, 3, 1, 1),
              10: (256, 256, 3, 1, 1)}
#: SqueezeNet-1.1 `features` fire modules: index -> (in, squeeze, expand1x1, expand3x3)
SQUEEZE_FIRES = {3: (64, 16, 64, 64), 4: (128, 16, 64, 64), 6: (128, 32, 128, 128), 7: (256, 32, 128, 128),
                 9: (256, 48, 192, 192), 10: (384, 48, 192, 192), 11: (384, 64, 256, 256), 12: (512, 64, 256, 256)}


def _backbone_where(net: str) -> str:
    return (f"download https://download.pytorch.org/models/{BACKBONE_FILES[net]} (torchvision's "
            f"{ {'alex': 'AlexNet', 'vgg': 'VGG-16', 'squeeze': 'SqueezeNet 1.1'}[net]}) and name its path")


def _lin_where(net: str) -> str:
    return (f"pip install lpips (its lpips/weights/v0.1/{net}.pth is found automatically) or name the file; "
            f"source: https://github.com/richzhang/PerceptualSimilarity/tree/master/lpips/weights/v0.1")


def _check_net(net: str) -> None:
    if net not in NETS:
        raise ValueError(f"LPIPS backbone {net!r} is not one of {', '.join(NETS)}")


def check_size(net: str, height: int, width: int, what: str = "") -> None:
    """Refuse an image smaller than LPIPS-`net` can measure (`MIN_SIZE`), naming `what` (e.g. the
    file), its size and the minimum."""
    _check_net(net)
    n = MIN_SIZE[net]
    if height < n or width < n:
        raise ValueError(f"{what + ': ' if what else ''}{width}x{height} pixels is too small for LPIPS-{net}, "
                         f"which needs images of at least {n}x{n} (below that its last layer has no pixel "
                         f"left); score larger images, or leave lpips out")


def backbone_shapes(net: str) -> dict[str, tuple]:
    """torchvision state-dict keys of the backbone's used layers -> shapes (OIHW)."""
    _check_net(net)
    out = {}
    if net == "alex":
        for i, (cin, cout, k, _, _) in ALEX_CONVS.items():
            out[f"features.{i}.weight"], out[f"features.{i}.bias"] = (cout, cin, k, k), (cout,)
    elif net == "squeeze":
        out["features.0.weight"], out["features.0.bias"] = (64, 3, 3, 3), (64,)
        for i, (cin, s, e1, e3) in SQUEEZE_FIRES.items():
            for name, shape in ((f"squeeze", (s, cin, 1, 1)), ("expand1x1", (e1, s, 1, 1)), ("expand3x3", (e3, s, 3, 3))):
                out[f"features.{i}.{name}.weight"], out[f"features.{i}.{name}.bias"] = shape, (shape[0],)
    else:
        cin = 3
        for name, idx in zip(vgg_lib.conv_names(16), vgg_lib._torch_indices(16)):
            b = int(name[4]) - 1
            out[f"features.{idx}.weight"] = (vgg_lib.WIDTHS[b], cin, 3, 3)
            out[f"features.{idx}.bias"] = (vgg_lib.WIDTHS[b],)
            cin = vgg_lib.WIDTHS[b]
    return out


def _hwio(w) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(np.asarray(w, np.float32), (2, 3, 1, 0)))


def backbone_from_state_dict(net: str, sd: Mapping[str, np.ndarray], path: str = "<state dict>") -> dict:
    """A torchvision state dict of `net` (whole model or bare `features`) -> backbone params."""
    _check_net(net)
    if not any(k.startswith("features.") for k in sd):
        sd = {f"features.{k}": v for k, v in sd.items()}
    shapes = backbone_shapes(net)
    require(sd, shapes, path, f"torchvision's {net} backbone", _backbone_where(net))
    if net == "vgg":
        convs = {name: (_hwio(sd[f"features.{i}.weight"]), np.asarray(sd[f"features.{i}.bias"], np.float32))
                 for name, i in zip(vgg_lib.conv_names(16), vgg_lib._torch_indices(16))}
        return vgg_lib._assemble(path, 16, vgg_lib.WIDTHS, convs, np.ones(3), np.zeros(3))["params"]
    return {k[len("features."):]: (_hwio(v) if v.ndim == 4 else np.asarray(v, np.float32))
            for k, v in sd.items() if k in shapes}


def load_backbone(net: str, path: str) -> dict:
    """Backbone params from torchvision's state-dict file for `net`."""
    _check_net(net)
    return backbone_from_state_dict(net, load_state_dict(path, f"torchvision's {net} backbone", _backbone_where(net)), path)


def default_lin_path(net: str) -> Optional[str]:
    """lpips/weights/v0.1/<net>.pth of an installed `lpips` package, or None."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "weights", "v0.1", f"{net}.pth")
    return path if os.path.isfile(path) else None


def lin_from_state_dict(net: str, sd: Mapping[str, np.ndarray], path: str = "<state dict>") -> list:
    """The package's linear layers -> [C_l] weight vectors (the 1x1 convolutions, no bias)."""
    _check_net(net)
    shapes = {f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate(CHANNELS[net])}
    require(sd, shapes, path, f"LPIPS v0.1 linear layers for {net}", _lin_where(net))
    return [np.asarray(sd[k], np.float32).reshape(-1) for k in shapes]


def load_lin(net: str, path: Optional[str] = None) -> list:
    """Linear layers from `path`, or from the installed `lpips` package when path is None."""
    _check_net(net)
    if path is None:
        path = default_lin_path(net)
        if path is None:
            raise WeightFileError(f"no LPIPS linear layers for {net}: {_lin_where(net)} (--lpips-lin)")
    return lin_from_state_dict(net, load_state_dict(path, f"LPIPS v0.1 linear layers for {net}", _lin_where(net)), path)


def load(net: str, backbone_path: str, lin_path: Optional[str] = None) -> dict:
    """Params for `distance`: {'backbone': ..., 'lin': [C_l vectors]}."""
    return {"backbone": load_backbone(net, backbone_path), "lin": load_lin(net, lin_path)}


def random_state_dicts(net: str, seed: int = 0) -> tuple[dict, dict]:
    """(torchvision backbone state dict, lpips linear-layer state dict) with seeded random weights
    (He-normal convolutions, small random biases, non-negative linear weights) for tests and
    golden outputs; NumPy only."""
    _check_net(net)
    rng = np.random.default_rng(seed)
    sd = {}
    for k, shape in backbone_shapes(net).items():
        if len(shape) == 4:
            sd[k] = (rng.standard_normal(shape) * math.sqrt(2.0 / np.prod(shape[1:]))).astype(np.float32)
        else:
            sd[k] = rng.normal(0.0, 0.05, shape).astype(np.float32)
    lin = {f"lin{i}.model.1.weight": rng.uniform(0.0, 1.0, (1, c, 1, 1)).astype(np.float32)
           for i, c in enumerate(CHANNELS[net])}
    return sd, lin


# ------------------------------------------------------------------------------------------ forward
def _conv(x, p, stride=1, pad=0):
    y = jax.lax.conv_general_dilated(x, p["weight"], (stride, stride), ((pad, pad), (pad, pad)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + p["bias"]


def _max_pool(x, ceil_mode=False):
    """3x3 stride-2 max-pool; ceil_mode pads the bottom/right as PyTorch's does (only windows that
    start inside the input)."""
    pads = []
    for n in x.shape[1:3]:
        if ceil_mode:
            out = -(-(n - 3) // 2) + 1
            if (out - 1) * 2 >= n:
                out -= 1
            pads.append((0, max(0, (out - 1) * 2 + 3 - n)))
        else:
            pads.append((0, 0))
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), ((0, 0), *pads, (0, 0)))


def _p(params, key):
    return {"weight": params[f"{key}.weight"], "bias": params[f"{key}.bias"]}


def _alex(params, x):
    taps = []
    for i, (_, _, k, s, pad) in ALEX_CONVS.items():
        if i in (3, 6):
            x = _max_pool(x)
        x = jax.nn.relu(_conv(x, _p(params, str(i)), s, pad))
        taps.append(x)
    return taps


def _fire(params, i, x):
    s = jax.nn.relu(_conv(x, _p(params, f"{i}.squeeze")))
    return jnp.concatenate([jax.nn.relu(_conv(s, _p(params, f"{i}.expand1x1"))),
                            jax.nn.relu(_conv(s, _p(params, f"{i}.expand3x3"), 1, 1))], -1)


def _squeeze(params, x):
    x = jax.nn.relu(_conv(x, _p(params, "0"), 2, 0))
    taps = [x]
    for group in ((3, 4), (6, 7), (9,), (10,), (11,), (12,)):
        if group[0] in (3, 6, 9):
            x = _max_pool(x, ceil_mode=True)
        for i in group:
            x = _fire(params, i, x)
        taps.append(x)
    return taps


_VGG_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")


def _vgg(params, x):
    out = vgg_lib.VGG(depth=16, outputs=_VGG_TAPS).apply({"params": params}, x)
    return [out[k] for k in _VGG_TAPS]


_BACKBONES = {"alex": _alex, "vgg": _vgg, "squeeze": _squeeze}


def _unit(f):
    return f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + EPS)


def distance(params, x0, x1, net: str = "alex", per_layer: bool = False):
    """LPIPS between images x0, x1 [B, H, W, 3] in [0, 1] -> [B] (and the [L, B] per-layer terms
    with per_layer=True). Jittable (net static). Images smaller than `MIN_SIZE[net]` are refused."""
    check_size(net, x0.shape[1], x0.shape[2])
    shift = jnp.asarray(SHIFT, jnp.float32)
    scale = jnp.asarray(SCALE, jnp.float32)
    prep = lambda x: ((2.0 * x.astype(jnp.float32) - 1.0) - shift) / scale
    b = x0.shape[0]
    feats = _BACKBONES[net](params["backbone"], jnp.concatenate([prep(x0), prep(x1)]))
    terms = []
    for f, w in zip(feats, params["lin"]):
        d = jnp.square(_unit(f[:b]) - _unit(f[b:]))
        terms.append(jnp.mean(jnp.einsum("bhwc,c->bhw", d, w, precision=jax.lax.Precision.HIGHEST), axis=(1, 2)))
    terms = jnp.stack(terms)
    total = jnp.sum(terms, axis=0)
    return (total, terms) if per_layer else total


def make_distance(params, net: str, mesh: Optional[jax.sharding.Mesh] = None):
    """A jitted `f(x0, x1) -> [B]` with params bound; with `mesh`, the batch is split over its devices."""
    _check_net(net)
    fn = functools.partial(distance, net=net)
    if mesh is None:
        dev = jax.device_put(params)
        jf = jax.jit(fn)
        return lambda a, b: jf(dev, a, b)
    from jax.sharding import NamedSharding, PartitionSpec as P
    rep, data = NamedSharding(mesh, P()), NamedSharding(mesh, P(mesh.axis_names[0]))
    dev = jax.device_put(params, rep)
    jf = jax.jit(fn, in_shardings=(rep, data, data), out_shardings=data)
    return lambda a, b: jf(dev, jax.device_put(a, data), jax.device_put(b, data))
