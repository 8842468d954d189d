"""Layer math against NumPy re-derivations (float64) and hand-worked cases.

References here are written from the published rules (JiahuiYu/generative_inpainting
`inpaint_ops.py::gen_conv`/`gen_deconv`, NVIDIA/partialconv `models/partialconv2d.py`, PyTorch's
`torch.nn.utils.spectral_norm` as knazeri/edge-connect `src/networks.py` uses it, and TF1's and
PyTorch's documented behaviour of each op named below), never from the layers' own code: a loop
convolution with TF's 'SAME' rule or PyTorch's symmetric padding, NVIDIA's partial-convolution
rule with its all-ones mask kernel, TF1 align-corners indices worked out by hand, np.pad's
reflection, the InstanceNorm / BatchNorm formulas, PyTorch's ConvTranspose2d scatter definition,
and np.linalg.svd for spectral normalisation.
"""

import itertools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaintjax.layers import (
    BatchNorm,
    GatedConv,
    GatedUpConv,
    InstanceNorm,
    PartialConv,
    PlainConv,
    SNConv,
    align_corners_indices,
    bake_spectral_norm,
    leaky_relu,
    reflect_pad,
    resize_nearest_align_corners,
    torch_conv_transpose_padding,
    torch_pad,
)

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------- NumPy references

def tf_same_pads(n, k, s, d):
    """TF 'SAME': out = ceil(n/s); total = max((out-1)*s + (k-1)*d + 1 - n, 0); before = total//2."""
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    return (total // 2, total - total // 2)


def np_conv(x, w, b=None, stride=1, dilation=1, pads=((0, 0), (0, 0))):
    """Loop cross-correlation, NHWC x [B,H,W,C], HWIO w [kh,kw,C,F], zero padding `pads`."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    kh, kw, _, f = w.shape
    ho = (xp.shape[1] - (kh - 1) * dilation - 1) // stride + 1
    wo = (xp.shape[2] - (kw - 1) * dilation - 1) // stride + 1
    y = np.zeros((x.shape[0], ho, wo, f))
    for i in range(ho):
        for j in range(wo):
            for a in range(kh):
                for c in range(kw):
                    y[:, i, j, :] += xp[:, i * stride + a * dilation, j * stride + c * dilation, :] @ w[a, c]
    if b is not None:
        y += np.asarray(b, np.float64)
    return y


def np_elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_partial_conv(x, hole, w, b, stride, dilation, pads, multi_channel, eps=1e-8):
    """NVIDIA PartialConv2d (return_mask=True), mask 1 = valid internally, ones mask-kernel
    [k,k,C,F] (multi-channel) or [k,k,1,1]; returns (out, new hole mask)."""
    kh, kw, c, f = w.shape
    valid = 1.0 - np.asarray(hole, np.float64)
    raw = np_conv(np.asarray(x, np.float64) * valid, w, b, stride, dilation, pads)
    if multi_channel:
        ones = np.ones((kh, kw, c, f))
        winsize = c * kh * kw
    else:
        ones = np.ones((kh, kw, 1, 1))
        winsize = kh * kw
    sum_m = np_conv(valid, ones, None, stride, dilation, pads)
    ratio = winsize / (sum_m + eps)
    new_m = np.clip(sum_m, 0, 1)
    ratio = ratio * new_m
    if b is not None:
        out = ((raw - b) * ratio + b) * new_m
    else:
        out = raw * ratio
    return out, 1.0 - new_m


def random_params(shape_tree):
    return jax.tree_util.tree_map(
        lambda s: jnp.asarray(RNG.normal(size=s.shape) * 0.5, jnp.float32), shape_tree)


# ----------------------------------------------------------------------------- GatedConv

@pytest.mark.parametrize("k,s,d", [(3, 1, 1), (3, 2, 1), (3, 1, 2), (3, 2, 2), (5, 1, 1), (5, 2, 1)])
def test_gated_conv_matches_tf_same_numpy(k, s, d):
    # H even, W odd: both parities of TF's asymmetric stride-2 padding in one input.
    x = RNG.normal(size=(2, 8, 7, 3)).astype(np.float32)
    layer = GatedConv(4, kernel_size=k, strides=s, dilation=d)
    shapes = jax.eval_shape(layer.init, jax.random.key(0), x)["params"]
    assert shapes["conv"]["kernel"].shape == (k, k, 3, 8) and shapes["conv"]["bias"].shape == (8,)
    params = random_params(shapes)
    y = np.asarray(layer.apply({"params": params}, x))
    pads = (tf_same_pads(8, k, s, d), tf_same_pads(7, k, s, d))
    raw = np_conv(x, params["conv"]["kernel"], params["conv"]["bias"], s, d, pads)
    ref = np_elu(raw[..., :4]) * np_sigmoid(raw[..., 4:])
    assert y.shape == (2, math.ceil(8 / s), math.ceil(7 / s), 4)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


def test_gated_conv_activation_none_and_relu():
    x = RNG.normal(size=(1, 7, 8, 5)).astype(np.float32)
    plain = PlainConv(3, kernel_size=3, strides=2)
    params = random_params(jax.eval_shape(plain.init, jax.random.key(0), x)["params"])
    assert params["conv"]["kernel"].shape == (3, 3, 5, 3)  # no gate: features outputs only
    pads = (tf_same_pads(7, 3, 2, 1), tf_same_pads(8, 3, 2, 1))
    ref = np_conv(x, params["conv"]["kernel"], params["conv"]["bias"], 2, 1, pads)
    np.testing.assert_allclose(np.asarray(plain.apply({"params": params}, x)), ref, rtol=1e-4, atol=1e-5)

    relu = GatedConv(2, kernel_size=3, dilation=2, activation=nn.relu)  # pmconv6
    params = random_params(jax.eval_shape(relu.init, jax.random.key(0), x)["params"])
    pads = (tf_same_pads(7, 3, 1, 2), tf_same_pads(8, 3, 1, 2))
    raw = np_conv(x, params["conv"]["kernel"], params["conv"]["bias"], 1, 2, pads)
    ref = np.maximum(raw[..., :2], 0) * np_sigmoid(raw[..., 2:])
    np.testing.assert_allclose(np.asarray(relu.apply({"params": params}, x)), ref, rtol=1e-4, atol=1e-5)


def test_gated_up_conv_matches_numpy():
    x = RNG.normal(size=(2, 3, 4, 3)).astype(np.float32)
    layer = GatedUpConv(2)
    shapes = jax.eval_shape(layer.init, jax.random.key(0), x)["params"]
    params = random_params(shapes)
    kernel, bias = params["conv"]["conv"]["kernel"], params["conv"]["conv"]["bias"]
    # Nearest x2 up-sampling by hand: up[i, j] = x[i // 2, j // 2].
    up = np.zeros((2, 6, 8, 3))
    for i in range(6):
        for j in range(8):
            up[:, i, j] = x[:, i // 2, j // 2]
    raw = np_conv(up, kernel, bias, 1, 1, ((1, 1), (1, 1)))
    ref = np_elu(raw[..., :2]) * np_sigmoid(raw[..., 2:])
    y = np.asarray(layer.apply({"params": params}, x))
    assert y.shape == (2, 6, 8, 2)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["elu", "relu"])
def test_gated_activation_gradient_matches_numpy(name):
    """The fused backward pass against the hand-derived gradient of act(f) * sigmoid(g):
    d/df = ct * sigmoid(g) * act'(f), d/dg = ct * act(f) * sigmoid(g) * (1 - sigmoid(g))."""
    from inpaintjax.layers.gated import gated_activation

    y = RNG.normal(size=(2, 5, 4, 6)).astype(np.float32) * 2
    y[0, 0, 0, :3] = 0.0  # the kink of relu / elu: both use the f > 0 branch's complement
    ct = RNG.normal(size=(2, 5, 4, 3)).astype(np.float32)
    act = nn.elu if name == "elu" else nn.relu
    out, vjp = jax.vjp(lambda v: gated_activation(v, act), jnp.asarray(y))
    f, g = y[..., :3].astype(np.float64), y[..., 3:].astype(np.float64)
    sig = 1 / (1 + np.exp(-g))
    a = np_elu(f) if name == "elu" else np.maximum(f, 0)
    da = np.where(f > 0, 1.0, np.exp(np.minimum(f, 0)) if name == "elu" else 0.0)
    np.testing.assert_allclose(np.asarray(out), a * sig, rtol=1e-5, atol=1e-6)
    expected = np.concatenate([ct * sig * da, ct * a * sig * (1 - sig)], axis=-1)
    np.testing.assert_allclose(np.asarray(vjp(jnp.asarray(ct))[0]), expected, rtol=1e-5, atol=1e-6)


def test_gated_conv_allows_forward_mode_differentiation_in_native_mode():
    """set_conv_impl('native') promises jax.jvp through the layers: the gated activation's fused
    gradient is a custom_vjp (no forward mode), so native mode uses the plain formula. The
    directional derivative of sum(GatedConv(x) * R) along a tangent of the parameters equals the
    default (fused) gradient's inner product with it."""
    from forward_mode import assert_native_jvp_is_the_gradient
    layer = GatedConv(4, 3)
    x = jnp.asarray(RNG.normal(size=(2, 8, 8, 3)).astype(np.float32))
    r = jnp.asarray(RNG.normal(size=(2, 8, 8, 4)).astype(np.float32))
    assert_native_jvp_is_the_gradient(lambda v: jnp.sum(layer.apply(v, x) * r),
                                      layer.init(jax.random.key(0), x), RNG)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_upsample2x_conv_equals_conv_of_upsampled_input(k):
    """The four-phase formulation against a NumPy convolution of the hand-up-sampled input, and
    its gradients against autodiff of the plain formulation (up-sample, then convolve)."""
    from jax import lax

    from inpaintjax.layers.gated import upsample2x_conv

    x = RNG.normal(size=(2, 3, 4, 5)).astype(np.float32)
    w = RNG.normal(size=(k, k, 5, 6)).astype(np.float32)
    up = x.repeat(2, axis=1).repeat(2, axis=2)
    p = (k - 1) // 2
    ref = np_conv(up, w, np.zeros(6, np.float32), 1, 1, ((p, p), (p, p)))
    dn = ("NHWC", "HWIO", "NHWC")
    y = upsample2x_conv(jnp.asarray(x), jnp.asarray(w), (1, 1), "SAME", dimension_numbers=dn)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-5, atol=1e-5)

    def plain(x, w):
        u = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        return lax.conv_general_dilated(u, w, (1, 1), "SAME", dimension_numbers=dn)

    ct = jnp.asarray(RNG.normal(size=ref.shape).astype(np.float32))
    got = jax.vjp(lambda x, w: upsample2x_conv(x, w, (1, 1), ((p, p), (p, p)),
                                               dimension_numbers=dn), x, w)[1](ct)
    want = jax.vjp(plain, x, w)[1](ct)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="stride 1"):
        upsample2x_conv(jnp.asarray(x), jnp.asarray(w), (2, 2), "SAME", dimension_numbers=dn)


# ----------------------------------------------------------------------------- PartialConv

def _hole_mask(b, h, w, c):
    """Random holes plus a 6x6 hole block, so some windows (k=3, dilation 1 or 2) see no valid pixel."""
    m = (RNG.random((b, h, w, c)) < 0.3).astype(np.float32)
    m[:, 1:7, 1:7, :] = 1.0
    return m


PCONV_CASES = list(itertools.product([1, 2], [1, 2], ["SAME", 1], [True, False]))


@pytest.mark.parametrize("multi_channel", [False, True])
def test_partial_conv_matches_nvidia_rule(multi_channel):
    h, w, c, f, k = 9, 8, 3, 4, 3
    x = RNG.normal(size=(2, h, w, c)).astype(np.float32)
    hole = _hole_mask(2, h, w, c if multi_channel else 1)
    no_valid_windows = 0
    for s, d, padding, use_bias in PCONV_CASES:
        layer = PartialConv(f, kernel_size=k, strides=s, dilation=d, padding=padding,
                            use_bias=use_bias, multi_channel=multi_channel)
        shapes = jax.eval_shape(layer.init, jax.random.key(0), x, hole)["params"]
        assert shapes["conv"]["kernel"].shape == (k, k, c, f)
        assert ("bias" in shapes["conv"]) == use_bias
        params = random_params(shapes)
        y, new_hole = layer.apply({"params": params}, x, hole)
        if padding == "SAME":
            pads = (tf_same_pads(h, k, s, d), tf_same_pads(w, k, s, d))
        else:
            pads = ((padding, padding), (padding, padding))
        ref, ref_hole = np_partial_conv(x, hole, params["conv"]["kernel"],
                                        params["conv"].get("bias"), s, d, pads, multi_channel)
        case = f"s={s} d={d} padding={padding} bias={use_bias}"
        assert y.shape == ref.shape, case
        assert new_hole.shape == ref_hole.shape[:3] + ((f,) if multi_channel else (1,)), case
        np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-4, atol=2e-4, err_msg=case)
        np.testing.assert_array_equal(np.asarray(new_hole), np.broadcast_to(ref_hole, new_hole.shape),
                                      err_msg=case)
        # Windows without a valid pixel: output exactly 0 and the new mask says hole.
        empty = ref_hole[..., 0] == 1
        no_valid_windows += int(empty.sum())
        assert np.all(np.asarray(y)[empty] == 0), case
    assert no_valid_windows > 0


def test_partial_conv_single_channel_mask_broadcasts_in_multi_channel_mode():
    x = RNG.normal(size=(1, 6, 6, 3)).astype(np.float32)
    hole = _hole_mask(1, 6, 6, 1)
    layer = PartialConv(2, kernel_size=3, multi_channel=True)
    params = random_params(jax.eval_shape(layer.init, jax.random.key(0), x, hole)["params"])
    y, new_hole = layer.apply({"params": params}, x, hole)
    ref, ref_hole = np_partial_conv(x, np.repeat(hole, 3, axis=-1), params["conv"]["kernel"],
                                    params["conv"]["bias"], 1, 1, ((1, 1), (1, 1)), True)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-4, atol=2e-4)
    np.testing.assert_array_equal(np.asarray(new_hole), ref_hole)


def test_partial_conv_hand_worked_constant_input():
    # All-ones input, all-ones 3x3 kernel, bias 0: a window with n >= 1 valid pixels gives raw = n,
    # re-weighted by 9/n -> exactly 9; a window with none gives 0 and stays a hole. With no mask,
    # zero-padded border windows are re-weighted the same way (partial-convolution padding).
    x = np.ones((1, 4, 4, 1), np.float32)
    hole = np.zeros((1, 4, 4, 1), np.float32)
    hole[0, :2, :2, 0] = 1.0  # window centred on (0, 0) sees only (0..1, 0..1): all holes
    params = {"conv": {"kernel": jnp.ones((3, 3, 1, 1)), "bias": jnp.zeros((1,))}}
    layer = PartialConv(1, kernel_size=3, padding=1)
    y, new_hole = layer.apply({"params": params}, x, hole)
    expected = np.full((4, 4), 9.0)
    expected[0, 0] = 0.0
    np.testing.assert_allclose(np.asarray(y)[0, :, :, 0], expected, rtol=1e-6)
    expected_hole = np.zeros((4, 4))
    expected_hole[0, 0] = 1.0
    np.testing.assert_array_equal(np.asarray(new_hole)[0, :, :, 0], expected_hole)
    y_nomask, hole_nomask = layer.apply({"params": params}, x)
    np.testing.assert_allclose(np.asarray(y_nomask), 9.0, rtol=1e-6)
    assert not np.any(np.asarray(hole_nomask))


def test_partial_conv_gradients_and_bad_mask():
    x = RNG.normal(size=(1, 5, 5, 2)).astype(np.float32)
    hole = _hole_mask(1, 5, 5, 1)
    layer = PartialConv(3, kernel_size=3, strides=2)
    variables = layer.init(jax.random.key(0), x, hole)

    # d out / d x at a hole pixel is 0 (X*M); the mask path carries no gradient into the ratio.
    gx = jax.grad(lambda xx: jnp.sum(layer.apply(variables, xx, hole)[0]))(jnp.asarray(x))
    assert np.all(np.asarray(gx)[hole[..., 0] == 1] == 0)
    gm = jax.grad(lambda m: jnp.sum(layer.apply(variables, x, m)[1]))(jnp.asarray(hole))
    assert np.all(np.asarray(gm) == 0)

    with pytest.raises(ValueError, match="multi_channel=True"):
        layer.apply(variables, x, np.zeros((1, 5, 5, 2), np.float32))
    with pytest.raises(ValueError, match="padding"):
        PartialConv(3, padding="REFLECT").init(jax.random.key(0), x, hole)


# ----------------------------------------------------------------------------- ops

def test_align_corners_indices_hand_worked():
    # 64 -> 32: i*63/31 = 2i + i/31, rounded: +0 for i <= 15, +1 for i >= 16.
    expected_64_32 = list(range(0, 31, 2)) + list(range(33, 64, 2))
    assert align_corners_indices(64, 32).tolist() == expected_64_32
    # 256 -> 64: i*255/63 = 4i + i/21, rounded: i/21 < 1/2 for i <= 10, in [1/2, 3/2) for 11..31,
    # in [3/2, 5/2) for 32..52, >= 5/2 for 53..63.
    expected_256_64 = ([4 * i for i in range(0, 11)] + [4 * i + 1 for i in range(11, 32)]
                       + [4 * i + 2 for i in range(32, 53)] + [4 * i + 3 for i in range(53, 64)])
    assert align_corners_indices(256, 64).tolist() == expected_256_64
    assert expected_256_64[-1] == 255
    assert align_corners_indices(4, 3).tolist() == [0, 2, 3]  # 0, 1.5 -> 2 (half up), 3
    assert align_corners_indices(5, 1).tolist() == [0]
    assert align_corners_indices(1, 4).tolist() == [0, 0, 0, 0]
    # A tie: 41 * 1/82 = 1/2 exactly, but TF's float32 scale is 0.0121951215 (< 1/82), so the
    # float32 product is 0.49999997 and roundf gives 0, not 1.
    assert align_corners_indices(2, 83)[40:43].tolist() == [0, 0, 1]
    # Exact 2x up-sampling reads floor(i / 2) (generative_inpainting `inpaint_ops.py::gen_deconv`:
    # its align-corners resize equals pixel repetition, which GatedUpConv uses).
    for n in (1, 2, 3, 32, 64, 127):
        assert align_corners_indices(n, 2 * n).tolist() == [i // 2 for i in range(2 * n)]


def test_resize_nearest_align_corners_gathers_rows_and_cols():
    h, w = 64, 7
    x = (np.arange(h)[:, None] * 100 + np.arange(w)[None, :]).astype(np.float32)
    x = np.stack([x, -x], axis=-1)[None]  # [1, 64, 7, 2]
    y = np.asarray(resize_nearest_align_corners(jnp.asarray(x), (32, 4)))
    rows = list(range(0, 31, 2)) + list(range(33, 64, 2))
    cols = [0, 2, 4, 6]  # 7 -> 4: i*6/3 = 2i exactly
    expected = np.array([[r * 100 + c for c in cols] for r in rows], np.float32)
    np.testing.assert_array_equal(y[0, :, :, 0], expected)
    np.testing.assert_array_equal(y[0, :, :, 1], -expected)


def test_reflect_pad_matches_numpy_and_torch_rule():
    x = RNG.normal(size=(2, 5, 6, 3)).astype(np.float32)
    for p in (1, 3, (2, 4)):
        ph, pw = (p, p) if isinstance(p, int) else p
        ref = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), mode="reflect")
        np.testing.assert_array_equal(np.asarray(reflect_pad(jnp.asarray(x), p)), ref)
    # Hand-worked: reflect excludes the edge pixel, [a b c] pad 2 -> [c b a b c b a].
    row = jnp.asarray(np.array([1.0, 2.0, 3.0]).reshape(1, 1, 3, 1))
    out = reflect_pad(jnp.concatenate([row] * 3, axis=1), (0, 2))
    assert np.asarray(out)[0, 0, :, 0].tolist() == [3, 2, 1, 2, 3, 2, 1]
    with pytest.raises(ValueError, match="smaller than the spatial size"):
        reflect_pad(jnp.asarray(x), 5)
    assert torch_pad(2) == ((2, 2), (2, 2)) and torch_pad((1, 3)) == ((1, 1), (3, 3))


def test_instance_norm_matches_formula():
    x = (RNG.normal(size=(2, 5, 4, 3)) * 3 + 2).astype(np.float32)
    layer = InstanceNorm()
    variables = layer.init(jax.random.key(0), x)
    assert not jax.tree_util.tree_leaves(variables)  # no affine parameters
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(1, 2), keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=(1, 2), keepdims=True)
    ref = (x64 - mean) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(np.asarray(layer.apply(variables, x)), ref, rtol=1e-5, atol=1e-5)
    # eps matters for near-constant channels: PyTorch's 1e-5, not flax's 1e-6.
    flat = np.full((1, 4, 4, 1), 0.5, np.float32)
    flat[0, 0, 0, 0] = 0.5 + 1e-3
    f64 = flat.astype(np.float64)
    ref = (f64 - f64.mean()) / np.sqrt(f64.var() + 1e-5)
    np.testing.assert_allclose(np.asarray(layer.apply(variables, flat)), ref, rtol=1e-3, atol=1e-6)


def test_batch_norm_train_output_and_unbiased_running_variance():
    x = (RNG.normal(size=(3, 4, 4, 2)) * 2 + 1).astype(np.float32)
    layer = BatchNorm(use_running_average=False)
    variables = layer.init(jax.random.key(0), x)
    y, updates = layer.apply(variables, x, mutable=["batch_stats"])
    x64 = x.astype(np.float64)
    n = x.shape[0] * x.shape[1] * x.shape[2]
    mean = x64.mean(axis=(0, 1, 2))
    var_biased = ((x64 - mean) ** 2).sum(axis=(0, 1, 2)) / n
    var_unbiased = ((x64 - mean) ** 2).sum(axis=(0, 1, 2)) / (n - 1)
    # Training output: the biased batch variance, PyTorch eps 1e-5.
    np.testing.assert_allclose(np.asarray(y), (x64 - mean) / np.sqrt(var_biased + 1e-5), rtol=1e-5, atol=1e-5)
    # PyTorch momentum 0.1: running = 0.9 * running + 0.1 * batch, variance unbiased (sum / (N-1)).
    stats = updates["batch_stats"]
    np.testing.assert_allclose(np.asarray(stats["mean"]), 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(stats["var"]), 0.9 + 0.1 * var_unbiased, rtol=1e-5)
    # A second step starts from the stored statistics.
    x2 = (RNG.normal(size=(2, 3, 5, 2)) - 3).astype(np.float32)
    _, updates2 = layer.apply({**variables, **updates}, x2, mutable=["batch_stats"])
    x2_64 = x2.astype(np.float64)
    mean2 = x2_64.mean(axis=(0, 1, 2))
    var2 = ((x2_64 - mean2) ** 2).sum(axis=(0, 1, 2)) / (x2.size // 2 - 1)
    np.testing.assert_allclose(np.asarray(updates2["batch_stats"]["mean"]), 0.9 * 0.1 * mean + 0.1 * mean2, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(updates2["batch_stats"]["var"]),
                               0.9 * (0.9 + 0.1 * var_unbiased) + 0.1 * var2, rtol=1e-5)
    # Inference mode normalises with the stored statistics, then scale and bias.
    params = {"scale": np.array([2.0, 0.5], np.float32), "bias": np.array([0.1, -1.0], np.float32)}
    yi = BatchNorm(use_running_average=True).apply({"params": params, **updates}, x)
    ref = (x64 - np.asarray(stats["mean"])) / np.sqrt(np.asarray(stats["var"], np.float64) + 1e-5)
    np.testing.assert_allclose(np.asarray(yi), ref * params["scale"] + params["bias"], rtol=1e-5, atol=1e-5)
    # Initialising leaves the statistics at 0 and 1; one value per channel cannot train.
    np.testing.assert_array_equal(np.asarray(variables["batch_stats"]["var"]), 1.0)
    with pytest.raises(ValueError, match="more than one value per channel"):
        layer.apply(variables, x[:1, :1, :1], mutable=["batch_stats"])
    assert float(leaky_relu(jnp.asarray(-1.0))) == pytest.approx(-0.2)


def test_batch_norm_training_gradients_are_pytorchs():
    import torch
    x = (RNG.normal(size=(2, 5, 3, 4)) * 3 + 2).astype(np.float32)
    weights = RNG.normal(size=x.shape).astype(np.float32)
    scale = np.array([1.5, -0.5, 2.0, 0.25], np.float32)
    bias = np.array([0.1, 0.2, -0.3, 1.0], np.float32)

    def loss(x, params):
        y, _ = BatchNorm(use_running_average=False).apply(
            {"params": params, "batch_stats": {"mean": jnp.zeros(4), "var": jnp.ones(4)}}, x,
            mutable=["batch_stats"])
        return jnp.sum(y * weights)
    gx, gp = jax.grad(loss, argnums=(0, 1))(x, {"scale": scale, "bias": bias})
    bn = torch.nn.BatchNorm2d(4).double().train()
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(scale.astype(np.float64)))
        bn.bias.copy_(torch.from_numpy(bias.astype(np.float64)))
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float64)).requires_grad_()
    (bn(xt) * torch.from_numpy(weights.transpose(0, 3, 1, 2).astype(np.float64))).sum().backward()
    np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(gp["scale"]), bn.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(gp["bias"]), bn.bias.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("k,s,p", [(4, 2, 1), (3, 2, 1)])
def test_torch_conv_transpose_padding(k, s, p):
    cin, cout, h, w = 3, 2, 4, 5
    x = RNG.normal(size=(1, h, w, cin)).astype(np.float32)
    wt = RNG.normal(size=(cin, cout, k, k)).astype(np.float32)  # PyTorch ConvTranspose2d weight
    bias = RNG.normal(size=(cout,)).astype(np.float32)
    # PyTorch's definition: y[i*s - p + a, j*s - p + c, o] += x[i, j, ci] * W[ci, o, a, c].
    ho, wo = (h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k
    full = np.zeros((ho + 2 * p + k, wo + 2 * p + k, cout))
    for i in range(h):
        for j in range(w):
            for a in range(k):
                for c in range(k):
                    full[i * s + a, j * s + c] += x[0, i, j].astype(np.float64) @ wt[:, :, a, c]
    ref = full[p:p + ho, p:p + wo] + bias
    layer = nn.ConvTranspose(cout, (k, k), strides=(s, s), padding=torch_conv_transpose_padding(k, p),
                             transpose_kernel=True)
    params = {"kernel": jnp.asarray(wt.transpose(2, 3, 1, 0)), "bias": jnp.asarray(bias)}
    y = np.asarray(layer.apply({"params": params}, x))
    assert y.shape == (1, ho, wo, cout)
    np.testing.assert_allclose(y[0], ref, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- spectral norm

def _np_flax_sigma(kernel, u):
    """One power step from stored u, float64: v = l2n(u W^T), u' = l2n(v W), sigma = v W u'^T."""
    wm = np.asarray(kernel, np.float64).reshape(-1, kernel.shape[-1])
    u = np.asarray(u, np.float64)
    v = u @ wm.T
    v = v / np.sqrt((v ** 2).sum() + 1e-12)
    u2 = v @ wm
    u2 = u2 / np.sqrt((u2 ** 2).sum() + 1e-12)
    return float((v @ wm @ u2.T)[0, 0])


class _TwoSN(nn.Module):
    spectral_norm: bool = True

    @nn.compact
    def __call__(self, x, update_stats: bool, train: bool = False):
        x = SNConv(8, 3, strides=2, spectral_norm=self.spectral_norm, name="conv1")(x, update_stats)
        x = BatchNorm(use_running_average=not train, name="bn")(x)
        return SNConv(4, 3, padding=1, spectral_norm=self.spectral_norm, name="conv2")(
            nn.leaky_relu(x, 0.2), update_stats)


def test_snconv_variable_layout():
    x = np.zeros((1, 8, 8, 3), np.float32)
    v = jax.eval_shape(lambda: SNConv(5, 3, name="d").init(jax.random.key(0), x, update_stats=False))
    shapes = jax.tree_util.tree_map(lambda a: a.shape, v)
    assert shapes == {"params": {"conv": {"kernel": (3, 3, 3, 5), "bias": (5,)}},
                      "batch_stats": {"sn": {"conv/kernel/u": (1, 5), "conv/kernel/sigma": ()}}}
    plain = jax.eval_shape(lambda: SNConv(5, 3, spectral_norm=False).init(jax.random.key(0), x, False))
    assert jax.tree_util.tree_map(lambda a: a.shape, plain) == {"params": shapes["params"]}


def test_bake_spectral_norm_against_numpy_and_svd():
    x = RNG.normal(size=(2, 8, 8, 3)).astype(np.float32)
    model = _TwoSN()
    variables = model.init(jax.random.key(1), x, update_stats=False)

    # Fresh u: sigma is one power step from the stored random u, far from the top singular value.
    baked = bake_spectral_norm(variables)
    assert set(baked) == {"params", "batch_stats"}
    assert set(baked["batch_stats"]) == {"bn"}  # SN u/sigma removed, BatchNorm stats kept
    for name in ("conv1", "conv2"):
        kernel = np.asarray(variables["params"][name]["conv"]["kernel"])
        u = np.asarray(variables["batch_stats"][name]["sn"]["conv/kernel/u"])
        np.testing.assert_allclose(np.asarray(baked["params"][name]["conv"]["kernel"]),
                                   kernel / _np_flax_sigma(kernel, u), rtol=2e-5, atol=1e-7)
        np.testing.assert_array_equal(baked["params"][name]["conv"]["bias"],
                                      variables["params"][name]["conv"]["bias"])
    plain = _TwoSN(spectral_norm=False)
    np.testing.assert_allclose(np.asarray(plain.apply(baked, x, update_stats=False)),
                               np.asarray(model.apply(variables, x, update_stats=False)),
                               rtol=1e-5, atol=1e-6)

    # Many training steps: u converges, sigma -> largest singular value, baked spectral norm -> 1.
    @jax.jit
    def step(v):
        _, upd = model.apply(v, x, update_stats=True, train=True, mutable=["batch_stats"])
        return {"params": v["params"], "batch_stats": upd["batch_stats"]}

    for _ in range(60):
        variables = step(variables)
    baked = bake_spectral_norm(variables)
    for name in ("conv1", "conv2"):
        kernel = np.asarray(variables["params"][name]["conv"]["kernel"], np.float64)
        top = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
        stored_sigma = float(variables["batch_stats"][name]["sn"]["conv/kernel/sigma"])
        assert stored_sigma == pytest.approx(top, rel=1e-4)
        bk = np.asarray(baked["params"][name]["conv"]["kernel"], np.float64)
        assert np.linalg.svd(bk.reshape(-1, bk.shape[-1]), compute_uv=False)[0] == pytest.approx(1.0, rel=1e-4)
    np.testing.assert_allclose(np.asarray(plain.apply(baked, x, update_stats=False)),
                               np.asarray(model.apply(variables, x, update_stats=False)),
                               rtol=1e-5, atol=1e-6)
    # And the baked first layer against a NumPy 'SAME' stride-2 convolution with W / sigma_max.
    k1 = np.asarray(variables["params"]["conv1"]["conv"]["kernel"], np.float64)
    s1 = np.linalg.svd(k1.reshape(-1, 8), compute_uv=False)[0]
    ref = np_conv(x, k1 / s1, variables["params"]["conv1"]["conv"]["bias"], 2, 1,
                  (tf_same_pads(8, 3, 2, 1),) * 2)
    y1 = SNConv(8, 3, strides=2, spectral_norm=False).apply({"params": baked["params"]["conv1"]}, x, False)
    np.testing.assert_allclose(np.asarray(y1), ref, rtol=1e-3, atol=1e-4)


def test_bake_spectral_norm_errors():
    with pytest.raises(ValueError, match="no 'params'"):
        bake_spectral_norm({"batch_stats": {}})
    bad = {"params": {}, "batch_stats": {"sn": {"conv/kernel/u": np.ones((1, 2))}}}
    with pytest.raises(ValueError, match="params/conv/kernel"):
        bake_spectral_norm(bad)
