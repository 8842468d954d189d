"""inpaintjax.layers.conv: the CPU backward pass equals autodiff of lax.conv_general_dilated and a
NumPy loop derivation; fallbacks, switches and the per-platform selection."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export, lax

from inpaintjax.layers import conv as C
from inpaintjax.layers.gated import GatedConv

DN = ("NHWC", "HWIO", "NHWC")


@pytest.fixture(autouse=True, params=["xla-kernel-grad", "patch-kernel-grad"])
def kernel_grad_path(request, monkeypatch):
    """Every test runs with both CPU gradient plans: XLA's own kernel gradient (what
    `import inpaintjax` arranges, YNNPACK's convolutions off: only strided input gradients are
    custom) and the patches kernel gradient (the fallback when YNNPACK's convolutions are on).
    Test sizes are tiny: take the custom path whatever the FLOPs."""
    monkeypatch.setattr(C.xla_cpu, "ynn_convolutions_off",
                        lambda: request.param == "xla-kernel-grad")
    monkeypatch.setenv("INPAINTJAX_CONV_MIN_FLOPS", "0")
    monkeypatch.delenv("INPAINTJAX_CONV", raising=False)
    monkeypatch.delenv("INPAINTJAX_CONV_CHUNK", raising=False)
    C.set_conv_impl(None)
    yield request.param
    C.set_conv_impl(None)


def _rand(rng, shape, dtype=jnp.float32):
    return jnp.asarray(rng.standard_normal(shape), dtype)


def _grads(fn, x, w, strides, padding, dilation, ct):
    def f(x, w):
        return fn(x, w, strides, padding, rhs_dilation=dilation, dimension_numbers=DN)
    y, vjp = jax.vjp(f, x, w)
    return y, vjp(ct)


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30))


CASES = list(itertools.product(
    [(3, 3), (5, 5), (2, 3)],                               # kernel
    [(1, 1), (2, 2), (3, 2)],                               # strides
    [(1, 1), (2, 2)],                                       # dilation
    ["SAME", ((1, 2), (0, 3))],                             # padding
)) + [((1, 1), (2, 2), (1, 1), "VALID"), ((3, 3), (1, 2), (1, 3), "VALID"),
      ((5, 5), (2, 2), (1, 1), "VALID"), ((1, 1), (3, 3), (1, 1), "SAME")]


def test_gradients_match_autodiff_across_kernels_strides_dilations_paddings():
    rng = np.random.default_rng(0)
    for kernel, strides, dilation, padding in CASES:
        x = _rand(rng, (2, 9, 10, 3))
        w = _rand(rng, (*kernel, 3, 4))
        y_ref = lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
                                         dimension_numbers=DN)
        ct = _rand(rng, y_ref.shape)

        @jax.jit  # one small program per case compiles faster than op-by-op execution
        def both(x, w, ct):
            return (_grads(lax.conv_general_dilated, x, w, strides, padding, dilation, ct),
                    _grads(C.conv_general_dilated, x, w, strides, padding, dilation, ct))

        (y_ref, ref), (y, got) = both(x, w, ct)
        case = (kernel, strides, dilation, padding)
        np.testing.assert_array_equal(y, y_ref, err_msg=str(case))  # forward is lax's own
        assert _rel(got[0], ref[0]) < 1e-5, ("input grad", case)
        assert _rel(got[1], ref[1]) < 1e-5, ("kernel grad", case)


def _numpy_conv_grads(x, w, strides, pads, dilation, g):
    """dL/dx and dL/dw from the definition y[b,o0,o1,n] = sum xp[b,o0*s0+i*d0,o1*s1+j*d1,c] w[i,j,c,n]."""
    x, w, g = (np.asarray(a, np.float64) for a in (x, w, g))
    (s0, s1), (d0, d1), ((a0, b0), (a1, b1)) = strides, dilation, pads
    xp = np.pad(x, ((0, 0), (a0, b0), (a1, b1), (0, 0)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    kh, kw = w.shape[:2]
    for o0 in range(g.shape[1]):
        for o1 in range(g.shape[2]):
            for i in range(kh):
                for j in range(kw):
                    r, c = o0 * s0 + i * d0, o1 * s1 + j * d1
                    dw[i, j] += xp[:, r, c, :].T @ g[:, o0, o1, :]
                    dxp[:, r, c, :] += g[:, o0, o1, :] @ w[i, j].T
    return dxp[:, a0:a0 + x.shape[1], a1:a1 + x.shape[2]], dw


@pytest.mark.parametrize("strides,dilation,pads", [
    ((2, 2), (1, 1), ((1, 1), (1, 1))),
    ((1, 1), (2, 2), ((2, 2), (2, 2))),
    ((2, 1), (1, 2), ((0, 1), (2, 0))),
])
def test_gradients_match_numpy_loops(strides, dilation, pads):
    rng = np.random.default_rng(1)
    x, w = _rand(rng, (2, 7, 8, 3)), _rand(rng, (3, 3, 3, 5))
    y = lax.conv_general_dilated(x, w, strides, pads, rhs_dilation=dilation, dimension_numbers=DN)
    g = _rand(rng, y.shape)
    _, (dx, dw) = _grads(C.conv_general_dilated, x, w, strides, pads, dilation, g)
    ndx, ndw = _numpy_conv_grads(x, w, strides, pads, dilation, g)
    np.testing.assert_allclose(dx, ndx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, ndw, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk", ["7", "200", "1500"])
def test_chunked_kernel_gradient(monkeypatch, chunk):
    """Tiny chunks: one row of one image per step (7), several rows (200), several images (1500)."""
    monkeypatch.setenv("INPAINTJAX_CONV_CHUNK", chunk)
    rng = np.random.default_rng(2)
    x, w = _rand(rng, (4, 10, 6, 3)), _rand(rng, (3, 3, 3, 2))
    for strides, dilation in [((1, 1), (1, 1)), ((2, 2), (1, 1)), ((1, 1), (2, 2))]:
        y = lax.conv_general_dilated(x, w, strides, "SAME", rhs_dilation=dilation,
                                     dimension_numbers=DN)
        ct = _rand(rng, y.shape)
        _, ref = _grads(lax.conv_general_dilated, x, w, strides, "SAME", dilation, ct)
        _, got = _grads(C.conv_general_dilated, x, w, strides, "SAME", dilation, ct)
        assert _rel(got[1], ref[1]) < 1e-5
        assert _rel(got[0], ref[0]) < 1e-5


def test_chunk_plan_bounds_patch_memory():
    """The 512x512 case: chunks stay within the budget, so the patches never hold k*k copies of
    an activation (which would be 4 * 512*512 * 9*48 * 4 B = 1.8 GB for one 48-channel layer)."""
    x = jax.ShapeDtypeStruct((4, 512, 512, 48), jnp.float32)
    g = jax.ShapeDtypeStruct((4, 512, 512, 48), jnp.float32)
    spec = C._Spec((1, 1), ((1, 1), (1, 1)), (1, 1), None, None, C.DEFAULT_CHUNK_ELEMENTS)
    jaxpr = jax.make_jaxpr(lambda x, g: C.kernel_grad(spec, x, g, (3, 3, 48, 48)))(x, g)
    # every intermediate inside the scan body is at most one chunk of patches
    scan = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
    assert len(scan) == 1
    body = scan[0].params["jaxpr"].jaxpr
    biggest = max(int(np.prod(v.aval.shape)) for e in body.eqns for v in e.outvars)
    assert biggest <= C.DEFAULT_CHUNK_ELEMENTS
    assert scan[0].params["length"] >= 4 * 512 * 512 * 9 * 48 // C.DEFAULT_CHUNK_ELEMENTS


def test_jit_vmap_and_flax_layer():
    rng = np.random.default_rng(3)
    x, w = _rand(rng, (3, 2, 9, 9, 4)), _rand(rng, (3, 3, 3, 4, 6))  # vmapped per-example kernels

    def loss(fn):
        def f(x, w):
            y = fn(x, w, (2, 2), "SAME", rhs_dilation=(1, 1), dimension_numbers=DN)
            return jnp.sum(jnp.sin(y))
        return jax.jit(jax.vmap(jax.grad(f, argnums=(0, 1))))

    ref = loss(lax.conv_general_dilated)(x, w)
    got = loss(C.conv_general_dilated)(x, w)
    for a, b in zip(got, ref):
        assert _rel(a, b) < 1e-5

    layer = GatedConv(8, 3, strides=2)
    xin = _rand(rng, (2, 16, 16, 5))
    params = layer.init(jax.random.key(0), xin)
    g_fast = jax.jit(jax.grad(lambda p: jnp.sum(layer.apply(p, xin) ** 2)))(params)
    C.set_conv_impl("native")
    g_native = jax.jit(jax.grad(lambda p: jnp.sum(layer.apply(p, xin) ** 2)))(params)
    for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_native)):
        assert _rel(a, b) < 1e-5


@pytest.mark.parametrize("cin,strides,dilation", [(3, (2, 2), (1, 1)), (16, (2, 2), (1, 1)),
                                                   (16, (1, 1), (2, 2)), (16, (3, 2), (1, 1))])
def test_second_order_gradient_penalty(cin, strides, dilation):
    """WGAN-GP style: the gradient (w.r.t. both kernels of a two-layer critic) of a norm of the
    input gradient equals autodiff of lax's, through the closed-form VJP of the input gradient
    (first layer: native input gradient for 3 channels, the phases for 16; then a stride-1 layer,
    so the input gradient's cotangent g itself depends on the kernels)."""
    rng = np.random.default_rng(4)
    x = _rand(rng, (2, 12, 12, cin))
    w1, w2 = _rand(rng, (3, 3, cin, 16)) * 0.3, _rand(rng, (3, 3, 16, 4)) * 0.3

    def penalty(fn):
        def critic(x, w1, w2):
            y = jnp.tanh(fn(x, w1, strides, "SAME", rhs_dilation=dilation, dimension_numbers=DN))
            y = fn(y, w2, (1, 1), "SAME", rhs_dilation=(1, 1), dimension_numbers=DN)
            return jnp.sum(jnp.tanh(y))

        def gp(w1, w2):
            gx = jax.grad(critic)(x, w1, w2)
            return jnp.sum((jnp.sqrt(jnp.sum(gx ** 2, axis=(1, 2, 3))) - 1.0) ** 2)
        return jax.jit(jax.value_and_grad(gp, argnums=(0, 1)))(w1, w2)

    (v_ref, g_ref), (v, g) = penalty(lax.conv_general_dilated), penalty(C.conv_general_dilated)
    np.testing.assert_allclose(v, v_ref, rtol=1e-5)
    assert _rel(g[0], g_ref[0]) < 1e-4 and _rel(g[1], g_ref[1]) < 1e-4


def test_bfloat16_gradients():
    """bf16 inputs: gradients come back in bf16 and agree with float32 autodiff on the same
    (bf16-rounded) values to bf16 resolution (the custom path accumulates in float32)."""
    rng = np.random.default_rng(5)
    x, w = _rand(rng, (2, 12, 12, 8), jnp.bfloat16), _rand(rng, (3, 3, 8, 16), jnp.bfloat16)
    for strides, dilation in [((1, 1), (2, 2)), ((2, 2), (1, 1))]:
        y = lax.conv_general_dilated(x, w, strides, "SAME", rhs_dilation=dilation,
                                     dimension_numbers=DN)
        ct = _rand(rng, y.shape, jnp.bfloat16)
        _, ref = _grads(lax.conv_general_dilated, x.astype(jnp.float32), w.astype(jnp.float32),
                        strides, "SAME", dilation, ct.astype(jnp.float32))
        _, got = jax.jit(lambda x, w, ct: _grads(C.conv_general_dilated, x, w, strides, "SAME",
                                                 dilation, ct))(x, w, ct)
        assert got[0].dtype == jnp.bfloat16 and got[1].dtype == jnp.bfloat16
        assert _rel(got[0], ref[0]) < 2e-2
        assert _rel(got[1], ref[1]) < 2e-2


def test_fallbacks_are_lax_unchanged():
    rng = np.random.default_rng(6)
    x, x_nchw = _rand(rng, (2, 8, 8, 4)), _rand(rng, (2, 4, 8, 8))
    calls = [  # (lhs, rhs, keyword arguments)
        (x, _rand(rng, (3, 3, 2, 4)), dict(feature_group_count=2)),                    # grouped
        (x, _rand(rng, (3, 3, 4, 4)), dict(lhs_dilation=(2, 2))),                      # transposed
        (x_nchw, _rand(rng, (4, 4, 3, 3)), dict(dimension_numbers=("NCHW", "OIHW", "NCHW"))),
    ]
    pads = ((1, 1), (1, 1))
    for lhs, rhs, kw in calls:
        kw = {"dimension_numbers": DN, **kw}
        jaxpr = str(jax.make_jaxpr(
            lambda a, b: C.conv_general_dilated(a, b, (1, 1), pads, **kw))(lhs, rhs))
        assert "custom_vjp" not in jaxpr
        np.testing.assert_array_equal(C.conv_general_dilated(lhs, rhs, (1, 1), pads, **kw),
                                      lax.conv_general_dilated(lhs, rhs, (1, 1), pads, **kw))


def test_switches(monkeypatch):
    rng = np.random.default_rng(7)
    # strided with 16 input channels: custom in both plans (the phase input gradient)
    x, w = _rand(rng, (1, 8, 8, 16)), _rand(rng, (3, 3, 16, 2))

    def jaxpr():
        return str(jax.make_jaxpr(lambda a, b: C.conv_general_dilated(
            a, b, (2, 2), "SAME", dimension_numbers=DN))(x, w))

    assert "custom_vjp" in jaxpr()
    monkeypatch.setenv("INPAINTJAX_CONV", "native")
    assert C.conv_impl() == "native" and "custom_vjp" not in jaxpr()
    C.set_conv_impl("auto")  # the Python switch wins over the environment
    assert "custom_vjp" in jaxpr()
    C.set_conv_impl(None)
    monkeypatch.setenv("INPAINTJAX_CONV", "fast")
    with pytest.raises(ValueError, match="INPAINTJAX_CONV"):
        C.conv_impl()
    with pytest.raises(ValueError, match="set_conv_impl"):
        C.set_conv_impl("cudnn")
    monkeypatch.setenv("INPAINTJAX_CONV", "auto")
    monkeypatch.setenv("INPAINTJAX_CONV_CHUNK", "0")
    with pytest.raises(ValueError, match="INPAINTJAX_CONV_CHUNK"):
        jaxpr()
    monkeypatch.setenv("INPAINTJAX_CONV_CHUNK", "4096")
    monkeypatch.setenv("INPAINTJAX_CONV_MIN_FLOPS", "1e12")  # everything here is below that
    assert "custom_vjp" not in jaxpr()


def test_accelerators_lower_to_the_native_gradient(kernel_grad_path):
    """Lowered for GPU or TPU (no device needed), the backward pass is autodiff's: three
    convolutions (forward, input gradient, kernel gradient), no gather. For CPU: the phase input
    gradient (stride 2: four sub-kernel convolutions) and, in the fallback plan, the gather
    kernel gradient."""
    x, w = jnp.ones((1, 8, 8, 16)), jnp.ones((3, 3, 16, 4))

    def loss(x, w):
        return jnp.sum(C.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=DN) ** 2)

    step = jax.jit(jax.grad(loss, argnums=(0, 1)))
    for platform in ("cuda", "rocm", "tpu"):
        text = export.export(step, platforms=[platform])(x, w).mlir_module()
        assert "gather" not in text and text.count("stablehlo.convolution") == 3, platform
    text = export.export(step, platforms=["cpu"])(x, w).mlir_module()
    if kernel_grad_path == "xla-kernel-grad":
        assert "gather" not in text and text.count("stablehlo.convolution") == 1 + 4 + 1
    else:
        assert "gather" in text and text.count("stablehlo.convolution") == 1 + 4


@pytest.mark.parametrize("shape", [(2, 5, 7, 3, 4), (1, 1, 1, 16, 2), (1, 4, 3, 20, 1)])
def test_transpose_conv_4x4_s2_p1_is_torchs_conv_transpose2d(shape):
    """The one-convolution form of PyTorch's ConvTranspose2d(4, stride 2, padding 1) gives
    PyTorch's output and, through autodiff, PyTorch autograd's input and weight gradients (odd and
    1x1 sizes, in/out channels below and above the strided-gradient threshold)."""
    import torch
    b, h, w, ci, co = shape
    rng = np.random.default_rng(7)
    x = rng.standard_normal((b, h, w, ci)).astype(np.float32)
    k = rng.standard_normal((4, 4, ci, co)).astype(np.float32)  # [t_h, t_w, in, out]
    ct = rng.standard_normal((b, 2 * h, 2 * w, co)).astype(np.float32)
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    kt = torch.tensor(k.transpose(2, 3, 0, 1), requires_grad=True)  # torch weight [in, out, kh, kw]
    yt = torch.nn.functional.conv_transpose2d(xt, kt, stride=2, padding=1)
    yt.backward(torch.tensor(ct.transpose(0, 3, 1, 2)))
    y, vjp = jax.vjp(C.transpose_conv_4x4_s2_p1, jnp.asarray(x), jnp.asarray(k))
    gx, gk = vjp(jnp.asarray(ct))
    assert y.shape == (b, 2 * h, 2 * w, co)
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(gk, kt.grad.numpy().transpose(2, 3, 0, 1), rtol=1e-5, atol=1e-4)
