"""Contextual attention (generative_inpainting `inpaint_ops.py::contextual_attention`) against a loop-by-loop NumPy re-derivation and hand-worked cases."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaintjax.layers import attention as att
from inpaintjax.layers import ops
from inpaintjax.layers.attention import (ContextualAttention, compute_color, contextual_attention,
                                         flow_to_image, make_color_wheel)


# ------------------------------------------------------------------------------------------------
# Independent NumPy re-derivation, written from the published algorithm step by step (float64, explicit loops).
# ------------------------------------------------------------------------------------------------

def _tf_same(n_in, k, s):
    """TF 'SAME': n_out = ceil(n_in / s), padding before = total // 2."""
    n_out = -(-n_in // s)
    total = max((n_out - 1) * s + k - n_in, 0)
    return n_out, total // 2


def _np_patch(x, y0, x0, k):
    """k x k patch of x [H, W, C] with top-left (y0, x0), zeros outside."""
    out = np.zeros((k, k, x.shape[2]))
    for a in range(k):
        for c in range(k):
            r, cc = y0 + a, x0 + c
            if 0 <= r < x.shape[0] and 0 <= cc < x.shape[1]:
                out[a, c] = x[r, cc]
    return out


def _np_fuse_flat(s, k):
    """Conv of the matrix s with eye(k), 'SAME' zero padding, written as explicit index loops."""
    n_p, n_q = s.shape
    before = (k - 1) // 2
    out = np.zeros_like(s)
    for p in range(n_p):
        for q in range(n_q):
            for i in range(k):
                pp, qq = p + i - before, q + i - before
                if 0 <= pp < n_p and 0 <= qq < n_q:
                    out[p, q] += s[pp, qq]
    return out


def np_contextual_attention(f, b, mask, ksize=3, stride=1, rate=2, fuse_k=3, scale=10.0, fuse=True):
    """One sample: f, b [H, W, C], mask [H, W, 1] -> (y [H, W, C], A [h*w, L], offsets [h, w, 2])."""
    f, b, mask = (np.asarray(x, np.float64) for x in (f, b, mask))
    H, W, C = f.shape
    h, w = H // rate, W // rate

    # step 2: align-corners nearest: index round(i * (in - 1) / (out - 1)), round half up.
    iy = [int(np.floor(i * (H - 1) / (h - 1) + 0.5)) for i in range(h)]
    ix = [int(np.floor(i * (W - 1) / (w - 1) + 0.5)) for i in range(w)]
    fd, bd, md = f[iy][:, ix], b[iy][:, ix], mask[iy][:, ix]

    # step 1: raw 2r x 2r patches of b at stride r*s, 'SAME'.
    kr, sr = 2 * rate, rate * stride
    nh, pt = _tf_same(H, kr, sr)
    nw, pl = _tf_same(W, kr, sr)
    raw = [_np_patch(b, qy * sr - pt, qx * sr - pl, kr) for qy in range(nh) for qx in range(nw)]

    # steps 3-5: matching patches, validity, normalisation.
    nbh, pbt = _tf_same(h, ksize, stride)
    nbw, pbl = _tf_same(w, ksize, stride)
    assert (nbh, nbw) == (nh, nw)
    n_cand = nbh * nbw
    wn, mm = [], np.zeros(n_cand)
    for qy in range(nbh):
        for qx in range(nbw):
            patch = _np_patch(bd, qy * stride - pbt, qx * stride - pbl, ksize)
            wn.append(patch / max(np.sqrt(np.sum(patch ** 2)), 1e-4))
            mpatch = _np_patch(md, qy * stride - pbt, qx * stride - pbl, ksize)
            mm[qy * nbw + qx] = float(np.mean(mpatch) == 0.0)

    # step 6: correlation of fd ('SAME', stride 1) with every normalised patch.
    pad1 = (ksize - 1) // 2
    S = np.zeros((h * w, n_cand))
    for py in range(h):
        for px in range(w):
            fp = _np_patch(fd, py - pad1, px - pad1, ksize)
            for q in range(n_cand):
                S[py * w + px, q] = np.sum(fp * wn[q])

    # step 7: fuse on flattened row-major indices, then on column-major ones.
    if fuse:
        S = _np_fuse_flat(S, fuse_k)
        T = np.zeros_like(S)  # T[px*h+py, qx*h+qy] = S[py*w+px, qy*w+qx]
        for py in range(h):
            for px in range(w):
                for qy in range(h):
                    for qx in range(w):
                        T[px * h + py, qx * h + qy] = S[py * w + px, qy * w + qx]
        T = _np_fuse_flat(T, fuse_k)
        for py in range(h):
            for px in range(w):
                for qy in range(h):
                    for qx in range(w):
                        S[py * w + px, qy * w + qx] = T[px * h + py, qx * h + qy]

    # step 8: masked softmax.
    S = S * mm
    A = np.zeros_like(S)
    for p in range(h * w):
        e = np.exp(scale * S[p] - np.max(scale * S[p]))
        A[p] = e / e.sum() * mm

    # step 9: offsets.
    offsets = np.zeros((h, w, 2), np.int64)
    for py in range(h):
        for px in range(w):
            q = int(np.argmax(A[py * w + px]))
            offsets[py, px] = ((q // nbw) * stride - py, (q % nbw) * stride - px)

    # step 10: scatter form of the transposed-conv paste, then / 4.
    _, ot = _tf_same(H, kr, rate)
    _, ol = _tf_same(W, kr, rate)
    y = np.zeros((H, W, C))
    for py in range(h):
        for px in range(w):
            blend = sum(A[py * w + px, q] * raw[q] for q in range(n_cand))
            for a in range(kr):
                for c in range(kr):
                    r, cc = py * rate + a - ot, px * rate + c - ol
                    if 0 <= r < H and 0 <= cc < W:
                        y[r, cc] += blend[a, c]
    return y / 4.0, A, offsets


def _random_inputs(seed, B, H, W, C):
    rng = np.random.default_rng(seed)
    # Small feature magnitudes keep scale*score moderate, so float32 vs float64 stays ~1e-6.
    f = 0.1 * rng.standard_normal((B, H, W, C)).astype(np.float32)
    b = 0.1 * rng.standard_normal((B, H, W, C)).astype(np.float32)
    mask = np.zeros((B, H, W, 1), np.float32)
    mask[0, :H // 3, :W // 3] = 1.0                      # a different hole per sample
    mask[1, H - H // 3 - 1:, W - W // 3 - 1:] = 1.0
    return f, b, mask


@pytest.mark.parametrize("H,W,fuse,stride", [(8, 12, True, 1), (12, 12, False, 1), (12, 8, False, 2)])
def test_matches_numpy_rederivation(H, W, fuse, stride):
    f, b, mask = _random_inputs(H * 100 + W + stride, 2, H, W, 4)
    out = contextual_attention(jnp.asarray(f), jnp.asarray(b), jnp.asarray(mask), fuse=fuse,
                               stride=stride)
    for i in range(2):
        y_ref, a_ref, off_ref = np_contextual_attention(f[i], b[i], mask[i], fuse=fuse, stride=stride)
        np.testing.assert_allclose(np.asarray(out.y[i]), y_ref, rtol=1e-4, atol=1e-5)
        attn = np.asarray(out.attention[i]).reshape(a_ref.shape)
        np.testing.assert_allclose(attn, a_ref, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(out.offsets[i]), off_ref)
    # The per-sample masks differ, so the samples' validity patterns must differ too.
    assert not np.array_equal(np.asarray(out.attention[0]) > 0, np.asarray(out.attention[1]) > 0)


def test_layer_shared_mask_broadcast_and_module():
    f, b, mask = _random_inputs(7, 2, 8, 8, 3)
    layer = ContextualAttention()
    y_bcast = layer(jnp.asarray(f), jnp.asarray(b), jnp.asarray(mask[:1]))
    for i in range(2):
        y_ref, _, _ = np_contextual_attention(f[i], b[i], mask[0])
        np.testing.assert_allclose(np.asarray(y_bcast[i]), y_ref, rtol=1e-4, atol=1e-5)
    assert layer.init(jax.random.PRNGKey(0), f, b, mask) == {}  # no parameters


def test_masked_candidates_get_zero_attention():
    H = W = 16
    f, b, mask = _random_inputs(3, 2, H, W, 4)
    mask[:] = 0.0
    mask[0, 4:10, 6:12] = 1.0   # down-sampled rows/cols 2..4 / 3..5 (align-corners picks 4,6,8,...)
    mask[1, 0:3, 0:3] = 1.0
    attn = np.asarray(contextual_attention(jnp.asarray(f), jnp.asarray(b), jnp.asarray(mask)).attention)
    # With f = 0 every score is 0, so the softmax is uniform over all L candidates, valid or not:
    # invalid ones get score 0 (not -inf) before it, so each valid weight is exactly 1 / L.
    flat = np.asarray(contextual_attention(jnp.zeros_like(f), jnp.asarray(b), jnp.asarray(mask)).attention)
    h = w = 8
    idx = [int(np.floor(i * 15 / 7 + 0.5)) for i in range(8)]   # 0,2,4,6,9,11,13,15
    for i in range(2):
        md = mask[i][idx][:, idx, 0]
        for qy in range(h):
            for qx in range(w):
                win = md[max(qy - 1, 0):qy + 2, max(qx - 1, 0):qx + 2]
                weights = attn[i, :, :, qy * w + qx]
                if win.any():
                    assert np.all(weights == 0.0), (i, qy, qx)
                else:
                    assert np.all(weights > 0.0), (i, qy, qx)
                np.testing.assert_allclose(flat[i, :, :, qy * w + qx], 0.0 if win.any() else 1.0 / (h * w),
                                           rtol=1e-6)


def test_hole_copies_its_exact_duplicate():
    # 2x2-constant blocks make the align-corners down-sampling exact (index i//2 == block i).
    h = w = 12
    C = 4
    rng = np.random.default_rng(0)
    z = rng.standard_normal((h, w, C)).astype(np.float32)
    z[6:12, 6:12] = z[0:6, 0:6]                  # duplicate block region, shift (+6, +6)
    img = np.repeat(np.repeat(z, 2, 0), 2, 1)[None]  # [1, 24, 24, C]
    mask = np.zeros((1, 24, 24, 1), np.float32)
    mask[0, 2:10, 2:10] = 1.0                    # down-sampled hole rows/cols 1..4
    out = contextual_attention(jnp.asarray(img), jnp.asarray(img), jnp.asarray(mask),
                               softmax_scale=50.0)
    offsets = np.asarray(out.offsets[0])
    for py in (2, 3):
        for px in (2, 3):
            assert tuple(offsets[py, px]) == (6, 6), (py, px, offsets[py, px])
            assert np.asarray(out.attention[0, py, px]).max() > 0.999
    # Full-res pixels 5..6 are covered only by foreground positions 2..3, all pasting the copy.
    y = np.asarray(out.y[0])
    np.testing.assert_allclose(y[5:7, 5:7], img[0, 17:19, 17:19], rtol=1e-3, atol=1e-3)


def test_align_corners_index_rule_used_by_attention():
    # The functions the layer calls (shared with inpaintjax.layers.ops).
    assert att.resize_nearest_align_corners is ops.resize_nearest_align_corners
    idx = ops.align_corners_indices(64, 32)
    expected = list(range(0, 31, 2)) + list(range(33, 64, 2))
    assert idx.tolist() == expected
    x = jnp.arange(64 * 64, dtype=jnp.float32).reshape(1, 64, 64, 1)
    down = np.asarray(att.resize_nearest_align_corners(x, (32, 32)))[0, ..., 0]
    np.testing.assert_array_equal(down, np.arange(64 * 64).reshape(64, 64)[expected][:, expected])
    # ...and the layer's matching really sees those pixels: with rate 2 on a 64 x 64 map whose
    # rows 1, 3, ..., 31 and 32, 34, ..., 62 (never picked) are huge, nothing changes.
    rng = np.random.default_rng(5)
    f = 0.1 * rng.standard_normal((1, 64, 64, 2)).astype(np.float32)
    skipped = sorted(set(range(64)) - set(expected))
    g = f.copy()
    g[:, skipped] = 100.0
    g[:, :, skipped] = 100.0
    a_f = contextual_attention(jnp.asarray(f), jnp.asarray(f)).attention
    a_g = contextual_attention(jnp.asarray(g), jnp.asarray(g)).attention
    np.testing.assert_array_equal(np.asarray(a_f), np.asarray(a_g))


def test_bilinear_align_corners_flow_upsampling():
    x = jnp.asarray(np.array([0.0, 3.0], np.float32).reshape(1, 1, 2, 1) * np.ones((1, 2, 1, 1)))
    y = np.asarray(att._resize_bilinear_align_corners(x, 4, 4))[0, :, :, 0]
    np.testing.assert_allclose(y, np.tile([0.0, 1.0, 2.0, 3.0], (4, 1)), atol=1e-6)


def test_jit_grad_finite_and_bfloat16():
    f, b, mask = _random_inputs(11, 2, 16, 16, 4)
    b[:, 8:14, 0:6] = 0.0  # all-zero background patches: norm clamped at 1e-4, gradient must stay finite
    layer = ContextualAttention()
    proj = jnp.asarray(np.random.default_rng(1).standard_normal(f.shape).astype(np.float32))

    @jax.jit
    def loss(f, b):
        y, flow = layer(f, b, jnp.asarray(mask), return_flow=True)
        return jnp.sum(y * proj) + 0.0 * jnp.sum(flow)

    gf, gb = jax.grad(loss, argnums=(0, 1))(jnp.asarray(f), jnp.asarray(b))
    for g in (gf, gb):
        assert np.all(np.isfinite(np.asarray(g))) and float(jnp.abs(g).max()) > 0
    y32, flow = layer(jnp.asarray(f), jnp.asarray(b), jnp.asarray(mask), return_flow=True)
    assert flow.shape == (2, 16, 16, 3) and flow.dtype == jnp.float32
    assert float(flow.min()) >= 0.0 and float(flow.max()) <= 1.0
    # align-corners up-sampling 8 -> 16 keeps the low-resolution flow image at the corners (both
    # modes) and, for 'nearest', reads the rows/cols of the align-corners index rule.
    low = np.asarray(flow_to_image(contextual_attention(jnp.asarray(f), jnp.asarray(b),
                                                       jnp.asarray(mask)).offsets))
    np.testing.assert_allclose(np.asarray(flow)[:, ::15, ::15], low[:, ::7, ::7], atol=1e-6)
    _, flow_nn = ContextualAttention(flow_resize="nearest")(jnp.asarray(f), jnp.asarray(b),
                                                           jnp.asarray(mask), return_flow=True)
    up = [int(np.floor(i * 7 / 15 + 0.5)) for i in range(16)]
    np.testing.assert_array_equal(np.asarray(flow_nn), low[:, up][:, :, up])
    y16 = jax.jit(layer)(jnp.asarray(f, jnp.bfloat16), jnp.asarray(b, jnp.bfloat16), jnp.asarray(mask))
    assert y16.dtype == jnp.bfloat16
    # measured: 2.0e-3 (|y| <= 0.27; rounding the inputs to bfloat16 alone moves y by 1.6e-3)
    np.testing.assert_allclose(np.asarray(y16, np.float32), np.asarray(y32), rtol=0, atol=3e-3)


def test_color_wheel_and_flow_colours():
    wheel = make_color_wheel()
    assert wheel.shape == (55, 3)
    np.testing.assert_array_equal(wheel[0], [255, 0, 0])
    np.testing.assert_array_equal(wheel[15], [255, 255, 0])   # start of yellow -> green
    np.testing.assert_array_equal(wheel[21], [0, 255, 0])     # start of green -> cyan
    np.testing.assert_array_equal(wheel[25], [0, 255, 255])   # start of cyan -> blue
    np.testing.assert_array_equal(wheel[36], [0, 0, 255])     # start of blue -> magenta
    np.testing.assert_array_equal(wheel[49], [255, 0, 255])   # start of magenta -> red
    u = jnp.array([0.0, 1.0, 0.5, 0.0, 0.0, 2.0])
    v = jnp.array([0.0, 0.0, 0.0, 1.0, -1.0, 0.0])
    got = np.asarray(compute_color(u, v)) * 255.0
    expected = [
        [255, 255, 255],               # zero flow: white
        [255, 0, 0],                   # +u at full radius: atan2(-0, -1) = -pi -> wheel[0], red
        [255, 127, 127],               # half radius: 255 - 0.5 * (255 - col), floored
        [255, 229, 0],                 # +v: fk = 14.5 -> midway wheel[13] (G 221) / wheel[14] (G 238)
        [88, 0, 255],                  # -v: fk = 41.5 -> midway wheel[40] (R 78) / wheel[41] (R 98)
        [191, 0, 0],                   # radius 2 > 1: wheel colour darkened by 0.75
    ]
    np.testing.assert_allclose(got, expected, atol=1e-3)
    # flow_to_image: channel 0 (dy) drives u; the running max radius normalises each sample.
    offsets = jnp.zeros((2, 2, 2, 2), jnp.int32)
    offsets = offsets.at[0, 0, 0].set(jnp.array([4, 0])).at[1, 0, 0].set(jnp.array([2, 0]))
    img = np.asarray(flow_to_image(offsets)) * 255.0
    np.testing.assert_allclose(img[0, 0, 0], [255, 0, 0], atol=1e-3)     # full radius in sample 0
    np.testing.assert_allclose(img[0, 1, 1], [255, 255, 255], atol=1e-3)  # zero offset
    # sample 1 is normalised by max(4, 2) = 4, not by its own 2: radius 0.5 -> floor(127.5) on G, B.
    np.testing.assert_allclose(img[1, 0, 0], [255, 127, 127], atol=1e-3)


def test_bad_inputs_are_named():
    f = jnp.zeros((1, 8, 8, 2))
    with pytest.raises(ValueError, match="mask must be"):
        contextual_attention(f, f, jnp.zeros((1, 4, 4, 1)))
    with pytest.raises(ValueError, match="divisible by rate"):
        contextual_attention(jnp.zeros((1, 9, 8, 2)), jnp.zeros((1, 9, 8, 2)))
    with pytest.raises(ValueError, match="same shape"):
        contextual_attention(f, jnp.zeros((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="fuse=True needs stride=1"):
        contextual_attention(f, f, stride=2)
    with pytest.raises(ValueError, match="flow_resize"):
        ContextualAttention(flow_resize="cubic")(f, f, return_flow=True)


@pytest.mark.parametrize("case", ["fuse", "nofuse"])
def test_matches_tensorflow_fixture(case):
    """Against TF's own kernels (tests/fixtures/make_contextual_attention_fixture.py, TF 2.21)."""
    import os
    data = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "contextual_attention_tf.npz"))
    g = {k[len(case) + 1:]: data[k] for k in data.files if k.startswith(case + "_")}
    y, flow = ContextualAttention(fuse=(case == "fuse"))(
        jnp.asarray(g["f"]), jnp.asarray(g["b"]), jnp.asarray(g["mask"]), return_flow=True)
    np.testing.assert_allclose(np.asarray(y), g["y"], rtol=1e-4, atol=1e-6)
    offsets = contextual_attention(jnp.asarray(g["f"]), jnp.asarray(g["b"]), jnp.asarray(g["mask"]),
                                   fuse=(case == "fuse")).offsets
    np.testing.assert_array_equal(np.asarray(offsets), g["offsets"])
    # The fixture's colours come from float64 NumPy like GI's; where the exact colour value is an
    # integer number of 8-bit levels, float64 rounding there sometimes floors one level lower.
    np.testing.assert_allclose(np.asarray(flow), g["flow"], atol=1.0 / 255 + 1e-6)
    expected_rows = list(range(0, 31, 2)) + list(range(33, 64, 2))
    assert data["resize_64_32"].tolist() == expected_rows
    # Gradients of sum(y * proj) w.r.t. f and b, as TF's autodiff gives them.
    proj = jnp.cos(1.0 + jnp.arange(g["y"].size, dtype=jnp.float32)).reshape(g["y"].shape)
    loss = lambda f, b: jnp.sum(contextual_attention(f, b, jnp.asarray(g["mask"]),
                                                     fuse=(case == "fuse")).y * proj)
    grad_f, grad_b = jax.grad(loss, argnums=(0, 1))(jnp.asarray(g["f"]), jnp.asarray(g["b"]))
    for got, want in ((grad_f, g["grad_f"]), (grad_b, g["grad_b"])):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-3, atol=1e-5 * np.abs(want).max())


# ------------------------------------------------------------------------------------------------
# Blocked (memory-bounded) score matrix against the whole-matrix formulation: a frozen copy of the
# layer's direct form (one [h*w, L] score matrix per sample, the fuse as shifted adds on it).
# ------------------------------------------------------------------------------------------------

def _reference_one(b, f_d, b_d, m_d, ksize=3, stride=1, rate=2, fuse_k=3, scale=10.0, fuse=True):
    height, width, channels = b.shape
    h, w = f_d.shape[:2]
    raw = att._extract_patches(b, 2 * rate, rate * stride)
    nbh, nbw = raw.shape[:2]
    raw = raw.reshape(nbh * nbw, -1)
    patches = att._extract_patches(b_d, ksize, stride).reshape(nbh * nbw, -1)
    mm = (jnp.mean(att._extract_patches(m_d, ksize, stride).reshape(nbh * nbw, -1), axis=1)
          == 0.0).astype(jnp.float32)
    sq = jnp.sum(jnp.square(patches), axis=1, keepdims=True)
    norm = jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)
    normed = patches / jnp.maximum(norm, 1e-4)
    scores = att._extract_patches(f_d, ksize, 1).reshape(h * w, -1) @ normed.T
    if fuse:
        scores = att._diagonal_fuse(scores, fuse_k)
        scores = scores.reshape(h, w, h, w).transpose(1, 0, 3, 2).reshape(h * w, h * w)
        scores = att._diagonal_fuse(scores, fuse_k)
        scores = scores.reshape(w, h, w, h).transpose(1, 0, 3, 2).reshape(h * w, h * w)
    scores = scores * mm
    attention = jax.nn.softmax(scores * scale, axis=-1) * mm
    best = jnp.argmax(attention, axis=-1)
    py, px = jnp.divmod(jnp.arange(h * w), w)
    offsets = jnp.stack([(best // nbw) * stride - py, (best % nbw) * stride - px], -1)
    blocks = (attention @ raw).reshape(h, w, 2 * rate, 2 * rate, channels)
    return att._overlap_add(blocks, rate, height, width) / 4.0, attention, offsets.reshape(h, w, 2)


def _reference(f, b, mask, rate=2, **kw):
    size = (f.shape[1] // rate, f.shape[2] // rate)
    down = [ops.resize_nearest_align_corners(x, size) for x in (f, b, mask)]
    return jax.vmap(lambda *a: _reference_one(*a, rate=rate, **kw))(b, *down)


@pytest.mark.parametrize("H,W,fuse,stride,fuse_k,block", [
    (16, 24, True, 1, 3, 7),      # h != w (the column-major order matters), 96 not a multiple of 7
    (14, 10, True, 1, 3, 1),      # one query per block, odd down-sampled sides
    (16, 16, True, 1, 5, 10),     # a wider fuse: halo of 2 + 2 rows
    (16, 24, False, 2, 3, 5),     # no fuse, stride 2 (fewer candidates than queries)
])
def test_blocked_scores_match_whole_matrix_values_and_gradients(H, W, fuse, stride, fuse_k, block):
    f, b, mask = _random_inputs(H * 31 + W + block, 2, H, W, 3)
    f, b, mask = jnp.asarray(f), jnp.asarray(b), jnp.asarray(mask)
    kw = dict(fuse=fuse, stride=stride, fuse_k=fuse_k)
    out = contextual_attention(f, b, mask, query_block=block, **kw)
    reference = jax.jit(functools.partial(_reference, **kw))
    y_ref, a_ref, off_ref = reference(f, b, mask)
    np.testing.assert_allclose(np.asarray(out.y), np.asarray(y_ref), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out.attention).reshape(a_ref.shape), np.asarray(a_ref),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(out.offsets), np.asarray(off_ref))
    assert float(jnp.abs(out.y).max()) > 1e-3
    proj = jnp.asarray(np.random.default_rng(block).standard_normal(f.shape).astype(np.float32))
    blocked = jax.jit(jax.grad(lambda f, b: jnp.sum(contextual_attention(
        f, b, mask, query_block=block, return_attention=False, **kw).y * proj), argnums=(0, 1)))
    whole = jax.jit(jax.grad(lambda f, b: jnp.sum(reference(f, b, mask)[0] * proj), argnums=(0, 1)))
    for got, want in zip(blocked(f, b), whole(f, b)):
        want = np.asarray(want)
        assert np.abs(want).max() > 1e-3
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_blocked_path_is_chosen_automatically_above_the_budget(monkeypatch):
    f, b, mask = (jnp.asarray(x) for x in _random_inputs(3, 2, 16, 16, 2))
    whole = contextual_attention(f, b, mask)
    monkeypatch.setattr(att, "BLOCK_SCORES", 200)   # 64 x 64 = 4096 scores: blocks of 3 queries
    assert att._query_block(64, 64, 0) == 3
    contextual_attention.clear_cache()
    try:
        small = contextual_attention(f, b, mask)
    finally:
        contextual_attention.clear_cache()
    np.testing.assert_allclose(np.asarray(small.y), np.asarray(whole.y), rtol=1e-5, atol=1e-6)
    assert att._query_block(64, 64, 0) == 3 and att._query_block(10, 10, 0) == 10


def _temp_bytes(fn, *args):
    return jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


def test_blocked_memory_is_far_below_the_score_matrix():
    # 128 x 128 features at rate 2: 4096 x 4096 scores = 64 MiB per float32 copy (one sample).
    f, b, mask = (jnp.asarray(x[:1]) for x in _random_inputs(5, 2, 128, 128, 4))
    matrix = 4096 * 4096 * 4

    def value(block):
        return lambda f, b: contextual_attention(f, b, mask, query_block=block,
                                                 return_attention=False).y

    def grad(block):
        return jax.grad(lambda f, b: jnp.sum(value(block)(f, b)), argnums=(0, 1))

    whole_v, blocked_v = _temp_bytes(value(0), f, b), _temp_bytes(value(128), f, b)
    whole_g, blocked_g = _temp_bytes(grad(0), f, b), _temp_bytes(grad(128), f, b)
    assert whole_v > matrix and whole_g > 2 * matrix          # today's form holds the matrix
    assert blocked_v < matrix / 4 and blocked_g < matrix / 2   # blocks of 128 + 2 rows
