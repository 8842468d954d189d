"""VGG-16 and VGG-19 feature extractors for perceptual and style losses (Simonyan & Zisserman, 2015).

The losses that use them: Partial Convolutions (Liu et al., ECCV 2018) takes pool1, pool2, pool3 of
VGG-16 (naoto0804/pytorch-inpainting-with-partial-conv `net.py::VGG16FeatureExtractor`); EdgeConnect
takes relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (perceptual) and relu2_2, relu3_4, relu4_4,
relu5_2 (style) of VGG-19 (knazeri/edge-connect `src/loss.py`).

Input: NHWC RGB, ImageNet-normalised as torchvision expects, (x - mean) / std with
mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) on [0, 1] images (`imagenet_normalise`).
A family whose loss feeds another range (EdgeConnect: [0, 1] without normalisation) converts
before the call. Layers: 3x3 convolutions with padding 1 and ReLU, 2x2 stride-2 max-pooling
after each block, named as the paper's table: conv{b}_{i}, relu{b}_{i}, pool{b}.

Variables: params {'input': {'scale', 'offset'} [3], 'conv{b}_{i}': {'kernel' HWIO, 'bias'}}.
The input affine is applied before conv1_1 (identity for torchvision weights); it lets Keras'
weights, trained on BGR 0-255 images minus the Caffe means, run exactly on the same normalised
RGB input (`load_keras_h5` sets it and swaps conv1_1's input channels).

Weights come only from files the user names (nothing downloads):
  torchvision: https://download.pytorch.org/models/vgg16-397923af.pth (vgg19-dcbb9e9d.pth)
  Keras:       https://storage.googleapis.com/tensorflow/keras-applications/vgg16/
               vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 (vgg19/vgg19_..._notop.h5)
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from inpaintjax.layers.conv import Conv
from inpaintjax.torch_io import load_torch_file

#: convolutions per block
BLOCKS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
#: output channels per block (the published networks)
WIDTHS = (64, 128, 256, 512, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Keras' 'caffe' preprocessing: BGR order, 0-255, these means subtracted (B, G, R)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

WEIGHT_URLS = {
    16: ("https://download.pytorch.org/models/vgg16-397923af.pth",
         "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
         "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    19: ("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
         "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
         "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
}


class VGGWeightsError(ValueError):
    """A VGG weight file is missing, unreadable, or not the network asked for."""


def _check_depth(depth: int) -> None:
    if depth not in BLOCKS:
        raise ValueError(f"VGG depth must be 16 or 19, got {depth!r}")


def conv_names(depth: int) -> list[str]:
    """The convolutions of VGG-`depth` in order: conv1_1, conv1_2, conv2_1, ..."""
    _check_depth(depth)
    return [f"conv{b + 1}_{i + 1}" for b, n in enumerate(BLOCKS[depth]) for i in range(n)]


def layer_names(depth: int) -> list[str]:
    """Every named activation of VGG-`depth` in order (conv, relu per convolution, pool per block)."""
    names = []
    for b, n in enumerate(BLOCKS[depth]):
        for i in range(n):
            names += [f"conv{b + 1}_{i + 1}", f"relu{b + 1}_{i + 1}"]
        names.append(f"pool{b + 1}")
    return names


def imagenet_normalise(x01: jax.Array) -> jax.Array:
    """[..., 3] RGB in [0, 1] -> torchvision's ImageNet-normalised input."""
    return (x01 - jnp.asarray(IMAGENET_MEAN, x01.dtype)) / jnp.asarray(IMAGENET_STD, x01.dtype)


def where_to_get(depth: int) -> str:
    torch_url, keras_url = WEIGHT_URLS[depth]
    return (f"torchvision's VGG-{depth} state dict ({torch_url}) or Keras' VGG-{depth} 'notop' h5 "
            f"({keras_url}); download one and name its path")


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 stride-2 max-pooling without padding (an odd last row or column is dropped), as the
    maximum over a reshape: the same values as `nn.max_pool(x, (2, 2), (2, 2), 'VALID')`, but its
    gradient is elementwise (to the maximum of each window) where autodiff of the windowed max
    gives XLA:CPU a select-and-scatter it expands into index arrays and scatters (its four
    4x120x120x64 index arrays alone took 74 ms of thread time in Shift-Net's training step,
    measured with `jax.profiler`; the step's wall time moved within its noise). On a tie the window's
    gradient is shared equally between the tied values (select-and-scatter gives it to one); after
    a ReLU the only ties with a gradient to share are exact equal positive values."""
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return jnp.max(x.reshape(n, h // 2, 2, w // 2, 2, c), axis=(2, 4))


class VGG(nn.Module):
    """VGG-16/19 convolutional trunk returning the named activations in `outputs`.

    Call: `feats = VGG(depth=16, outputs=('pool1', 'pool2', 'pool3')).apply(variables, x)`,
    x [B, H, W, 3] ImageNet-normalised RGB; returns {name: [B, h, w, C]} in the order asked.
    Only the layers up to the deepest requested one are built. `widths` shrinks the channel
    counts (tests use a tiny random VGG); real weights need the published `WIDTHS`.
    """

    depth: int = 16
    outputs: Sequence[str] = ("pool1", "pool2", "pool3")
    widths: Sequence[int] = WIDTHS
    dtype: Optional[jnp.dtype] = None

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        all_names = layer_names(self.depth)
        unknown = [o for o in self.outputs if o not in all_names]
        if unknown:
            raise ValueError(f"VGG-{self.depth} has no layer(s) {unknown}; names are {all_names}")
        if not self.outputs:
            raise ValueError("VGG: `outputs` is empty; name the layers the loss needs")
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"VGG expects NHWC RGB [B, H, W, 3], got shape {x.shape}")
        last = max(all_names.index(o) for o in self.outputs)
        wanted = set(self.outputs)
        found = {}
        scale = self.param("input_scale", nn.initializers.ones, (3,), jnp.float32)
        offset = self.param("input_offset", nn.initializers.zeros, (3,), jnp.float32)
        dtype = self.dtype or x.dtype
        h = (x * scale.astype(x.dtype) + offset.astype(x.dtype)).astype(dtype)
        k = 0
        for b, n in enumerate(BLOCKS[self.depth]):
            for i in range(n):
                name = f"conv{b + 1}_{i + 1}"
                h = Conv(self.widths[b], (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                         kernel_init=nn.initializers.variance_scaling(2.0, "fan_in", "normal"),
                         name=name)(h)
                for nm in (name, f"relu{b + 1}_{i + 1}"):
                    if nm.startswith("relu"):
                        h = nn.relu(h)
                    if nm in wanted:
                        found[nm] = h
                    if k == last:
                        return {o: found[o] for o in self.outputs}
                    k += 1
            h = max_pool_2x2(h)
            if f"pool{b + 1}" in wanted:
                found[f"pool{b + 1}"] = h
            if k == last:
                return {o: found[o] for o in self.outputs}
            k += 1
        return {o: found[o] for o in self.outputs}


def random_variables(depth: int = 16, seed: int = 0, widths: Sequence[int] = WIDTHS) -> dict:
    """He-normal random VGG variables as numpy (tests and demos; not a perceptual network).
    Drawn with numpy (no compilation), identity input affine, zero biases."""
    _check_depth(depth)
    rng = np.random.default_rng(seed)
    params = {"input_scale": np.ones(3, np.float32), "input_offset": np.zeros(3, np.float32)}
    for name, (ks, bs) in _expected_shapes(depth, tuple(widths)).items():
        fan_in = ks[0] * ks[1] * ks[2]
        params[name] = {"kernel": (rng.standard_normal(ks) * np.sqrt(2.0 / fan_in)).astype(np.float32),
                        "bias": np.zeros(bs, np.float32)}
    return {"params": params}


def _expected_shapes(depth: int, widths: Sequence[int]) -> dict[str, tuple[tuple, tuple]]:
    """name -> (HWIO kernel shape, bias shape)."""
    out, cin = {}, 3
    for b, n in enumerate(BLOCKS[depth]):
        for i in range(n):
            out[f"conv{b + 1}_{i + 1}"] = ((3, 3, cin, widths[b]), (widths[b],))
            cin = widths[b]
    return out


def _assemble(path: str, depth: int, widths, convs: dict, scale, offset) -> dict:
    expected = _expected_shapes(depth, widths)
    published = _expected_shapes(depth, WIDTHS)
    params = {"input_scale": np.asarray(scale, np.float32), "input_offset": np.asarray(offset, np.float32)}
    for name, (ks, bs) in expected.items():
        kernel, bias = convs[name]
        if tuple(kernel.shape) != ks or tuple(bias.shape) != bs:
            if tuple(widths) != tuple(WIDTHS) and all(
                    (tuple(convs[n][0].shape), tuple(convs[n][1].shape)) == shapes
                    for n, shapes in published.items()):
                raise VGGWeightsError(
                    f"{path} is VGG-{depth} with its published widths {tuple(WIDTHS)}, but the "
                    f"config asks for widths {tuple(widths)} (config.loss.vgg_widths, e.g. of a "
                    f"test preset): set config.loss.vgg_widths={tuple(WIDTHS)} to use this file")
            raise VGGWeightsError(
                f"{path}: {name} has kernel {tuple(kernel.shape)} / bias {tuple(bias.shape)} (as HWIO), "
                f"VGG-{depth} needs {ks} / {bs}; is this VGG-{depth}? Get {where_to_get(depth)}")
        params[name] = {"kernel": np.asarray(kernel, np.float32), "bias": np.asarray(bias, np.float32)}
    return {"params": params}


def load_torchvision(path: str, depth: int = 16, widths: Sequence[int] = WIDTHS) -> dict:
    """torchvision `vgg16()`/`vgg19()` state dict (`features.N.weight|bias`, OIHW) -> numpy variables.

    Read with torch's weights-only loader (no code runs from the file). A whole-model state dict
    (with `classifier.*`) or the bare `features` part (keys `N.weight`) both load.
    """
    _check_depth(depth)
    _exists(path, depth)
    sd = load_torch_file(path, VGGWeightsError, f"{where_to_get(depth)} (or Keras' h5: {WEIGHT_URLS[depth][1]})")
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise VGGWeightsError(f"{path}: holds a {type(sd).__name__}, not a state dict; expected {where_to_get(depth)}")
    prefix = "features." if any(str(k).startswith("features.") for k in sd) else ""
    indices = sorted({int(k[len(prefix):].split(".")[0]) for k in sd
                      if str(k).startswith(prefix) and str(k).endswith(".weight")
                      and k[len(prefix):].split(".")[0].isdigit()})
    want = _torch_indices(depth)
    if indices != want:
        other = 19 if depth == 16 else 16
        got = f"VGG-{other}" if indices == _torch_indices(other) else f"conv indices {indices}"
        raise VGGWeightsError(
            f"{path}: holds {got}, not torchvision's VGG-{depth} (conv indices {want}); get {where_to_get(depth)}")
    convs = {}
    for name, i in zip(conv_names(depth), want):
        w = sd[f"{prefix}{i}.weight"].detach().cpu().numpy()
        b = sd[f"{prefix}{i}.bias"].detach().cpu().numpy()
        convs[name] = (np.transpose(w, (2, 3, 1, 0)), b)
    return _assemble(path, depth, widths, convs, np.ones(3), np.zeros(3))


def _torch_indices(depth: int) -> list[int]:
    """torchvision's `features` numbering: each conv is followed by its ReLU, each block by a pool."""
    out, idx = [], 0
    for n in BLOCKS[depth]:
        for _ in range(n):
            out.append(idx)
            idx += 2
        idx += 1
    return out


def load_keras_h5(path: str, depth: int = 16, widths: Sequence[int] = WIDTHS) -> dict:
    """Keras `vgg16`/`vgg19` h5 weights (layers `block{b}_conv{i}`, kernels HWIO) -> numpy variables.

    Keras' VGG was trained on BGR images in 0-255 with the Caffe means subtracted. The returned
    variables take the same ImageNet-normalised RGB as torchvision's: conv1_1's input channels are
    reversed to RGB and the input affine maps x_norm to 255 * (x_norm * std + mean) - caffe_mean,
    exactly Keras' `preprocess_input(mode='caffe')` of the [0, 1] image. Read with h5py (data only).
    """
    _check_depth(depth)
    _exists(path, depth)
    try:
        import h5py
    except ImportError as e:
        raise VGGWeightsError(f"reading {path} needs h5py: pip install h5py") from e
    try:
        f = h5py.File(path, "r")
    except Exception as e:
        raise VGGWeightsError(f"{path}: not a readable HDF5 file ({e}); expected {where_to_get(depth)}") from e
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        convs = {}
        for b, n in enumerate(BLOCKS[depth]):
            for i in range(n):
                keras_name = f"block{b + 1}_conv{i + 1}"
                if keras_name not in root:
                    other = 19 if depth == 16 else 16
                    hint = f" (it looks like VGG-{other})" if depth == 16 and "block3_conv4" in root else ""
                    raise VGGWeightsError(
                        f"{path}: no layer {keras_name!r}, so not Keras' VGG-{depth} h5{hint}; "
                        f"get {where_to_get(depth)}")
                g = root[keras_name]
                names = [w.decode() if isinstance(w, bytes) else str(w) for w in g.attrs.get("weight_names", [])]
                if len(names) != 2:
                    raise VGGWeightsError(
                        f"{path}: layer {keras_name} lists weights {names}, expected [kernel, bias] "
                        f"(Keras 2 h5 layout); get {where_to_get(depth)}")
                convs[f"conv{b + 1}_{i + 1}"] = (np.asarray(g[names[0]]), np.asarray(g[names[1]]))
        if depth == 16 and "block3_conv4" in root:
            raise VGGWeightsError(f"{path}: holds Keras' VGG-19 (block3_conv4), not VGG-16; get {where_to_get(16)}")
    k, bias = convs["conv1_1"]
    convs["conv1_1"] = (k[:, :, ::-1, :], bias)  # BGR -> RGB input channels
    mean, std = np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD)
    caffe_rgb = np.asarray(CAFFE_MEAN_BGR)[::-1]
    return _assemble(path, depth, widths, convs, 255.0 * std, 255.0 * mean - caffe_rgb)


def _exists(path: str, depth: int) -> None:
    if not path or not os.path.isfile(path):
        raise VGGWeightsError(f"VGG-{depth} weight file {path!r} not found; get {where_to_get(depth)}")


def load_weights(path: str, depth: int = 16, widths: Sequence[int] = WIDTHS) -> dict:
    """Either format, told apart by the file's first bytes (HDF5 signature -> Keras h5)."""
    _check_depth(depth)
    _exists(path, depth)
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == b"\x89HDF\r\n\x1a\n":
        return load_keras_h5(path, depth, widths)
    return load_torchvision(path, depth, widths)


def feature_fn(depth: int, outputs: Sequence[str], widths: Sequence[int] = WIDTHS,
               dtype: Optional[jnp.dtype] = None):
    """`f(variables, x) -> {name: features}` for a frozen VGG (gradients flow to x only)."""
    model = VGG(depth=depth, outputs=tuple(outputs), widths=tuple(widths), dtype=dtype)

    def f(variables: Any, x: jax.Array) -> dict[str, jax.Array]:
        return model.apply(jax.lax.stop_gradient(variables), x)

    return f
