"""Per-channel sums as matrix-vector products (inpaintjax.layers.reductions) and the layers built
on them (BatchNorm, InstanceNorm, Conv's bias): sums and gradients against float64 NumPy and
PyTorch, the CPU program free of XLA's reductions over the batch, 8 devices like one."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from inpaintjax.layers import BatchNorm, InstanceNorm
from inpaintjax.layers.conv import Conv
from inpaintjax.layers.reductions import broadcast_leading, leading_sum
from inpaintjax.models.vgg import max_pool_2x2

RNG = np.random.default_rng(7)


@pytest.fixture(autouse=True)
def _matrix_vector_path_at_every_size(monkeypatch):
    """These tests check the matrix-vector sums on small arrays: no size threshold here
    (test_small_arrays_keep_xlas_reduction checks the threshold itself)."""
    from inpaintjax.layers import reductions
    monkeypatch.setattr(reductions, "MIN_ELEMENTS", 0)


@pytest.mark.parametrize("shape,keep", [
    ((4, 64, 64, 32), 0), ((3, 10, 7, 5), 0), ((3, 10, 7, 5), 1),
    ((2, 13, 1, 3), 0),     # 26 rows: one group of 2, then 13 (odd: its largest divisor)
    ((2, 131, 1, 3), 1),    # 131 rows per image: a prime above GROUP_ROWS (XLA's reduction)
    ((1, 255, 255, 2), 0),  # odd image sides: groups of 85, 85, 9
    ((5, 3), 0), ((1, 4, 4, 2), 1)])
def test_leading_sum_is_the_float64_sum(shape, keep):
    x = (RNG.normal(size=shape) * 3 + 2).astype(np.float32)
    got = np.asarray(jax.jit(lambda x: leading_sum(x, keep))(x))
    exact = x.astype(np.float64).sum(axis=tuple(range(keep, x.ndim - 1)))
    assert got.shape == exact.shape and got.dtype == np.float32
    scale = np.abs(x.astype(np.float64)).sum(axis=tuple(range(keep, x.ndim - 1)))
    assert np.all(np.abs(got - exact) <= 1e-6 * scale + 1e-6), np.max(np.abs(got - exact) / scale)


def test_bfloat16_sums_accumulate_in_float32():
    # 4096 values of 1 + 2^-8 (exact in bfloat16): a bfloat16 running sum stalls at 512 (its
    # spacing there exceeds each addend), a float32 accumulation reaches 4112
    x = jnp.full((1, 64, 64, 1), 1 + 2.0 ** -8, jnp.bfloat16)
    got = leading_sum(x)
    assert got.dtype == jnp.bfloat16 and float(got[0]) == pytest.approx(4112, rel=2 ** -8)


def test_gradients_are_each_others_transposes():
    shape = (3, 6, 5, 4)
    x = RNG.normal(size=shape).astype(np.float32)
    for keep, lead in ((0, ()), (1, (3,))):
        ct = RNG.normal(size=lead + (4,)).astype(np.float32)
        _, vjp = jax.vjp(lambda x: leading_sum(x, keep), x)
        expand = ct.reshape(lead + (1,) * (3 - keep) + (4,))
        np.testing.assert_allclose(np.asarray(vjp(ct)[0]), np.broadcast_to(expand, shape), rtol=0)
        y, vjp = jax.vjp(lambda v: broadcast_leading(v, shape, keep), ct)
        np.testing.assert_array_equal(np.asarray(y), np.broadcast_to(expand, shape))
        np.testing.assert_allclose(np.asarray(vjp(x)[0]), x.sum(axis=tuple(range(keep, 3))),
                                   rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="does not match"):
        broadcast_leading(jnp.zeros(3), shape)
    with pytest.raises(ValueError, match="rank >= 3"):
        leading_sum(jnp.zeros((4, 5)), keep=1)


def _batch_norm_grads_float64(x, w, scale):
    """d/dx, d/dscale, d/dbias of sum(w * BatchNorm(x)) in training mode (biased variance, eps
    1e-5), derived by hand: dx = scale / sd * (w - mean(w) - xhat * mean(w * xhat))."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    axes = (0, 1, 2)
    sd = np.sqrt(x.var(axis=axes) + 1e-5)
    xhat = (x - x.mean(axis=axes)) / sd
    dx = scale / sd * (w - w.mean(axis=axes) - xhat * (w * xhat).mean(axis=axes))
    return dx, (w * xhat).sum(axis=axes), w.sum(axis=axes)


def test_batch_norm_gradients_at_256_channels_are_float64s():
    """BatchNorm's gradients (training mode) against the float64 derivation, at a layer size of
    GLCIC's (the input gradient cancels: w - mean(w) - xhat * mean(w * xhat))."""
    x = (RNG.normal(size=(4, 32, 32, 256)) * 3 + 1).astype(np.float32)
    w = RNG.normal(size=x.shape).astype(np.float32)
    scale = RNG.uniform(0.5, 2.0, size=256).astype(np.float32)
    params = {"scale": scale, "bias": np.zeros(256, np.float32)}
    stats = {"mean": np.zeros(256, np.float32), "var": np.ones(256, np.float32)}

    def loss(x, params):
        y, _ = BatchNorm(use_running_average=False).apply(
            {"params": params, "batch_stats": stats}, x, mutable=["batch_stats"])
        return jnp.sum(y * w)
    gx, gp = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, params)
    dx, dscale, dbias = _batch_norm_grads_float64(x, w, scale)
    assert np.max(np.abs(np.asarray(gx) - dx)) <= 1e-4 * np.max(np.abs(dx))
    np.testing.assert_allclose(np.asarray(gp["scale"]), dscale, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(np.asarray(gp["bias"]), dbias, rtol=1e-4, atol=1e-2)


def test_affine_instance_norm_and_its_gradients_are_pytorchs():
    import torch
    x = (RNG.normal(size=(2, 6, 5, 3)) * 2 + 1).astype(np.float32)
    w = RNG.normal(size=x.shape).astype(np.float32)
    params = {"scale": np.array([1.5, -0.5, 2.0], np.float32), "bias": np.array([0.1, 0.2, -0.3], np.float32)}
    layer = InstanceNorm(use_scale=True, use_bias=True)
    assert jax.tree.map(np.shape, layer.init(jax.random.key(0), x)) == {"params": {"bias": (3,), "scale": (3,)}}
    y, vjp = jax.vjp(lambda x, p: layer.apply({"params": p}, x), x, params)
    gx, gp = vjp(w)
    norm = torch.nn.InstanceNorm2d(3, affine=True).double()
    with torch.no_grad():
        norm.weight.copy_(torch.from_numpy(params["scale"].astype(np.float64)))
        norm.bias.copy_(torch.from_numpy(params["bias"].astype(np.float64)))
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float64)).requires_grad_()
    yt = norm(xt)
    (yt * torch.from_numpy(w.transpose(0, 3, 1, 2).astype(np.float64))).sum().backward()
    np.testing.assert_allclose(np.asarray(y), yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(gp["scale"]), norm.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(gp["bias"]), norm.bias.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs", [
    {"padding": "SAME", "strides": 2}, {"padding": [(1, 2), (0, 1)], "kernel_dilation": 2},
    {"padding": 1, "feature_group_count": 2}, {"padding": "VALID", "use_bias": False}])
def test_conv_is_flax_conv(kwargs):
    """Conv: flax.linen.Conv's parameters (names, shapes, initial values), outputs and gradients."""
    x = RNG.normal(size=(2, 9, 9, 6)).astype(np.float32)
    theirs, ours = nn.Conv(8, (3, 3), **kwargs), Conv(8, 3, **kwargs)
    variables = theirs.init(jax.random.key(1), x)
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(ours.init(jax.random.key(1), x)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert jax.tree.structure(variables) == jax.tree.structure(ours.init(jax.random.key(1), x))
    w = RNG.normal(size=theirs.apply(variables, x).shape).astype(np.float32)
    (y0, g0), (y1, g1) = (jax.value_and_grad(lambda v, m=m: jnp.sum(m.apply(v, x) * w))(variables)
                          for m in (theirs, ours))
    np.testing.assert_allclose(float(y1), float(y0), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g0), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="not taken here"):
        Conv(8, 3, padding="CIRCULAR").init(jax.random.key(0), x)


def _block(variables, x):
    """conv (with bias) -> ReLU -> BatchNorm (training) -> ReLU -> InstanceNorm -> ReLU, weighted
    sum (the ReLUs keep the gradients of the bias and of BatchNorm's parameters from cancelling
    to rounding noise in the normalisation that follows)."""
    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            y = nn.relu(Conv(16, 3, padding=1)(x))
            y = nn.relu(BatchNorm(use_running_average=False)(y))
            return nn.relu(InstanceNorm(use_scale=True, use_bias=True)(y))
    if variables is None:
        return Block().init(jax.random.key(0), x)
    y, _ = Block().apply(variables, x, mutable=["batch_stats"])
    return jnp.sum(y * jnp.cos(jnp.arange(y.size, dtype=jnp.float32).reshape(y.shape)))


def test_cpu_training_program_has_no_reduction_over_the_batch():
    """The gradient of conv -> BatchNorm -> InstanceNorm on CPU: every sum over the batch's or an
    image's positions is a dot (before: XLA's reduce, split into a reduce-window)."""
    x = RNG.normal(size=(4, 32, 32, 8)).astype(np.float32)
    variables = _block(None, x)
    hlo = jax.jit(jax.grad(_block)).lower(variables, x).compile().as_text()
    # XLA's reductions over the positions (dimensions 0,1,2: a batch; 1,2: each image), or their
    # tree-rewritten form (a reduce-window), were there before
    over_positions = [line.strip() for line in hlo.splitlines()
                      if re.search(r"\breduce(-window)?\(", line) and
                      ("reduce-window" in line or re.search(r"dimensions=\{(0,)?1,2\}", line))]
    assert not over_positions, over_positions[:3]
    assert " dot(" in hlo


def test_eight_devices_give_the_one_device_gradients():
    x = RNG.normal(size=(8, 16, 16, 8)).astype(np.float32)
    variables = _block(None, x)
    one = jax.jit(jax.grad(_block))(variables, x)
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    sharded = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
    eight = jax.jit(jax.grad(_block))(variables, sharded)
    # to rounding: 1e-6 of the largest gradient (BatchNorm's scale, whose gradient nearly cancels
    # through the InstanceNorm, differs in its fifth digit between the summation orders)
    atol = 1e-6 * max(float(np.max(np.abs(a))) for a in jax.tree.leaves(one))
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=atol)


def test_max_pool_2x2_values_and_gradient():
    x = RNG.normal(size=(2, 9, 7, 3)).astype(np.float32)   # odd sizes: the last row/column dropped
    ref = x[:, :8, :6].reshape(2, 4, 2, 3, 2, 3).max(axis=(2, 4))
    np.testing.assert_array_equal(np.asarray(max_pool_2x2(x)), ref)
    w = RNG.normal(size=ref.shape).astype(np.float32)
    g = np.asarray(jax.grad(lambda x: jnp.sum(max_pool_2x2(x) * w))(x))
    expected = np.zeros_like(x)   # each window's gradient to its maximum (no ties in normal data)
    for n, i, j, c in np.ndindex(ref.shape):
        win = x[n, 2 * i:2 * i + 2, 2 * j:2 * j + 2, c]
        a, b = np.unravel_index(np.argmax(win), (2, 2))
        expected[n, 2 * i + a, 2 * j + b, c] = w[n, i, j, c]
    np.testing.assert_array_equal(g, expected)


def test_accelerators_lower_to_plain_reductions():
    """Lowered for GPU or TPU (no device needed), the sums are reductions; for CPU, dot_generals
    and no reduction (the loss itself is two dots, so any reduce would be a sum's; the gradient is
    broadcasts, the value keeps the sums)."""
    from jax import export
    x = jnp.ones((2, 8, 8, 4))
    step = jax.jit(jax.value_and_grad(lambda x: leading_sum(x) @ jnp.arange(4.0)
                            + leading_sum(x, 1).ravel() @ jnp.arange(8.0)))
    for platform in ("cuda", "rocm", "tpu"):
        text = export.export(step, platforms=[platform])(x).mlir_module()
        assert "stablehlo.reduce" in text, platform
    text = export.export(step, platforms=["cpu"])(x).mlir_module()
    assert text.count("stablehlo.dot_general") > 2 and "stablehlo.reduce" not in text


def test_small_arrays_keep_xlas_reduction(monkeypatch):
    """Under MIN_ELEMENTS elements the CPU program sums with XLA's reduction (and autodiff's
    gradients), at and above it with dot_generals; both are the float64 sum to rounding."""
    from jax import export

    from inpaintjax.layers import reductions
    monkeypatch.setattr(reductions, "MIN_ELEMENTS", 1 << 16)
    for shape, dots in (((4, 4, 4, 1023), False), ((4, 4, 4, 1024), True)):
        x = (RNG.normal(size=shape) * 3 + 2).astype(np.float32)
        f = jax.jit(jax.value_and_grad(lambda x: leading_sum(x) @ jnp.arange(shape[-1], dtype=jnp.float32)))
        text = export.export(f, platforms=["cpu"])(x).mlir_module()
        over_positions = re.findall(r"stablehlo.reduce.*across dimensions = \[0, 1, 2\]", text)
        assert bool(over_positions) != dots, shape
        value, grad = f(x)
        exact = x.astype(np.float64).sum(axis=(0, 1, 2)) @ np.arange(shape[-1])
        assert float(value) == pytest.approx(exact, rel=1e-6)
        np.testing.assert_array_equal(np.asarray(grad), np.broadcast_to(np.arange(shape[-1], dtype=np.float32), shape))


def test_native_mode_allows_forward_mode_differentiation():
    """set_conv_impl('native'): plain sums and broadcasts, so jax.jvp goes through the block; its
    directional derivative is the default (custom_vjp) gradient's inner product with the tangent."""
    from forward_mode import assert_native_jvp_is_the_gradient
    x = RNG.normal(size=(2, 8, 8, 3)).astype(np.float32)
    assert_native_jvp_is_the_gradient(lambda v: _block(v, x), _block(None, x), RNG)
