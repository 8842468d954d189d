"""Shift-Net: the generator, the shift, the guidance loss, the converter and the family.

Truth: the parameter counts computed from the released architecture (54,944,771 / 56,190,467 /
55,600,131 / 2,766,529), golden outputs and gradients of the original generators
(Zhaoyi-Yan/Shift-Net_pytorch at a353431, produced by tests/fixtures/shiftnet_make_golden.py and,
for patch_soft_shift and the face model, tests/fixtures/shiftnet_variants_make_golden.py), and
NumPy re-derivations of the shift and the loss terms.
"""

import importlib.util
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaintjax.convert import shiftnet as convert
from inpaintjax.models.shiftnet import PatchDiscriminator, ShiftNetGenerator, hard_shift

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(HERE, "fixtures", "shiftnet_golden.npz")
VARIANTS_GOLDEN = os.path.join(HERE, "fixtures", "shiftnet_variants_golden.npz")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


recipe = _load("shiftnet_weights", os.path.join(HERE, "fixtures", "shiftnet_weights.py"))
face_recipe = _load("shiftnet_face_weights", os.path.join(HERE, "fixtures", "shiftnet_face_weights.py"))
variants_inputs = _load("shiftnet_variants_make_golden",
                        os.path.join(HERE, "fixtures", "shiftnet_variants_make_golden.py"))


def n_params(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def nhwc(a):
    return np.ascontiguousarray(np.asarray(a).transpose(0, 2, 3, 1))


@pytest.mark.parametrize("shift,count", [("hard", 54_944_771), ("res", 56_190_467), ("soft", 54_944_771),
                                         ("flip", 55_600_131)])
def test_parameter_counts(shift, count):
    v = jax.eval_shape(lambda: ShiftNetGenerator(shift=shift).init(
        jax.random.key(0), jnp.zeros((1, 256, 256, 4)), jnp.zeros((1, 256, 256, 1))))
    assert n_params(v["params"]) == count
    p = v["params"]
    # no norm on the outermost and innermost down layers or the outermost up layer
    assert "down_norm_1" not in p and "down_norm_8" not in p and "up_norm_1" not in p
    assert p["up_3"]["kernel"].shape == ((4, 4, 512, 128) if shift == "res" else (4, 4, 768, 128))
    assert p["down_3"]["kernel"].shape == ((6, 6, 128, 256) if shift == "flip" else (4, 4, 128, 256))
    if shift != "hard":
        return
    d = jax.eval_shape(lambda: PatchDiscriminator().init(jax.random.key(0), jnp.zeros((1, 120, 120, 3))))
    assert n_params(d["params"]) == 2_766_529


# ----------------------------------------------------------------------------- golden outputs

@pytest.fixture(scope="module")
def golden():
    return dict(np.load(GOLDEN))


def _golden_variables(golden, shift):
    sd = recipe.state_dict(int(golden["num_downs"]), int(golden["ngf"]), int(golden["seed"]), shift=shift)
    sums = recipe.checksums(sd)
    # the rebuilt weights are the ones the original code ran with
    assert list(sums) == list(golden[f"{shift}/checksum_names"])
    np.testing.assert_allclose(np.array(list(sums.values())), golden[f"{shift}/checksums"], rtol=1e-12)
    variables, info = convert.from_state_dict(sd)
    assert info == {"num_downs": int(golden["num_downs"]), "ngf": int(golden["ngf"]), "in_channels": 4,
                    "out_channels": 3, "shift": shift}
    return sd, variables


def _golden_inputs(golden):
    image, hole = nhwc(golden["image"]), nhwc(golden["mask"])
    return np.concatenate([image * (1 - hole), 1 - hole], -1), image, hole


@pytest.mark.parametrize("shift", ["hard", "res"])
def test_golden_forward_matches_original(golden, shift):
    """Both rows in one batch, holes of different sizes (16 and 15 positions at 1/8 scale)."""
    _, variables = _golden_variables(golden, shift)
    x, _, hole = _golden_inputs(golden)
    assert hole[0, ::8, ::8].sum() != hole[1, ::8, ::8].sum()
    net = ShiftNetGenerator(num_downs=int(golden["num_downs"]), ngf=int(golden["ngf"]), shift=shift)
    out, feats = jax.jit(net.apply)(variables, x, hole)
    ref = nhwc(golden[f"{shift}/out"])
    np.testing.assert_allclose(np.asarray(out), ref, atol=1e-4, rtol=1e-4)
    assert np.abs(ref[0] - ref[1]).max() > 0.3 and ref.std() > 0.1   # the weights carry signal
    np.testing.assert_allclose(np.asarray(feats["decoder"]), nhwc(golden[f"{shift}/former"]), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(feats["encoder"]), nhwc(golden[f"{shift}/latter"]), atol=1e-4, rtol=1e-4)
    # the shift's third part, through our hard_shift on the golden halves
    shifted, _ = hard_shift(nhwc(golden[f"{shift}/former"]), nhwc(golden[f"{shift}/latter"]), hole[:, ::8, ::8])
    np.testing.assert_allclose(np.asarray(shifted), nhwc(golden[f"{shift}/shifted"]), atol=1e-6)
    assert np.abs(nhwc(golden[f"{shift}/shifted"])).max() > 0.1
    # the ground truth's own pass (levels 1..3 only) gives InnerCos' target
    image = nhwc(golden["image"])
    target = jax.jit(lambda v, a, m: net.apply(v, a, m, target_only=True))(
        variables, np.concatenate([image, 1 - hole], -1), hole)
    np.testing.assert_allclose(np.asarray(target), nhwc(golden[f"{shift}/target"]), atol=1e-4, rtol=1e-4)


def _to_torch_grad(key, ours):
    """Our gradient of a kernel/bias -> the original's parameter layout."""
    g = np.asarray(ours)
    if g.ndim == 4:
        return g.transpose(3, 2, 0, 1)   # conv kernel [kh, kw, in, out] -> [out, in, kh, kw]
    return g


def test_guidance_loss_and_gradients_match_innercos(golden, shift="hard"):
    """d/dparams of sum(out * R) + InnerCos' guidance loss, as the original's backward (the shift's
    custom backward and InnerCos' injected gradient) computes it, one row at a time."""
    from inpaintjax.families.shiftnet import guidance_loss
    _, variables = _golden_variables(golden, shift)
    x, image, hole = _golden_inputs(golden)
    net = ShiftNetGenerator(num_downs=int(golden["num_downs"]), ngf=int(golden["ngf"]), shift=shift)
    R = nhwc(golden["R"])

    @jax.jit
    def loss_and_grads(params, xi, gi, hi, ri):
        target = jax.lax.stop_gradient(net.apply({"params": params}, gi, hi, target_only=True))

        def f(p):
            out, feats = net.apply({"params": p}, xi, hi)
            g = guidance_loss(feats["decoder"], target, hi[:, ::8, ::8])
            return jnp.sum(out * ri) + g, g
        return jax.grad(f, has_aux=True)(params)

    n = int(golden["num_downs"])
    names = {prefix: name for name, prefix, _ in convert._layers(n, shift)}
    for b in range(2):
        gt_in = np.concatenate([image[b:b + 1], 1 - hole[b:b + 1]], -1)
        grads, g = loss_and_grads(variables["params"], x[b:b + 1], gt_in, hole[b:b + 1], R[b:b + 1])
        np.testing.assert_allclose(float(g), float(golden[f"{shift}/guidance"][b]), rtol=1e-4)
        assert float(g) > 1e-3
        checked = 0
        for key in golden:
            if not key.startswith(f"{shift}/grad/"):
                continue
            tkey = key[len(f"{shift}/grad/"):]
            prefix, leaf = tkey.rsplit(".", 1)
            ours = grads[names[prefix]]["bias" if leaf == "bias" else ("kernel" if "kernel" in grads[names[prefix]] else "scale")]
            ref = golden[key][b]
            layer, k = names[prefix].rsplit("_", 1)
            if leaf == "bias" and layer in ("down", "up") and (2 <= int(k) < n or (layer == "up" and int(k) >= 2)):
                # a bias right before an InstanceNorm: its exact gradient is 0, both sides hold rounding noise
                assert np.abs(np.asarray(ours)).max() < 1e-3 and np.abs(ref).max() < 1e-3, tkey
                continue
            scale = max(1.0, float(np.abs(ref).max()))
            np.testing.assert_allclose(_to_torch_grad(tkey, ours), ref, rtol=1e-4, atol=1e-4 * scale, err_msg=tkey)
            assert np.abs(ref).max() > 1e-2, tkey
            checked += 1
        assert checked == 6


def test_hard_shift_matches_numpy_and_scatters_gradients():
    rng = np.random.default_rng(0)
    b, h, w, c = 2, 4, 5, 6
    former = rng.standard_normal((b, h, w, c)).astype(np.float32)
    latter = rng.standard_normal((b, h, w, c)).astype(np.float32)
    hole = np.zeros((b, h, w, 1), np.float32)
    hole[0, 1:3, 1:4] = 1          # 6 hole positions
    hole[1, 0, 0] = 1              # 1 hole position
    shifted, index = hard_shift(former, latter, hole)
    F, E, M = former.reshape(b, -1, c), latter.reshape(b, -1, c), hole.reshape(b, -1) > 0
    want = np.zeros_like(F)
    for i in range(b):
        known = np.flatnonzero(~M[i])
        for p in np.flatnonzero(M[i]):
            cos = [F[i, p] @ E[i, j] / np.sqrt((F[i, p] @ F[i, p]) * (E[i, j] @ E[i, j])) for j in known]
            j = known[int(np.argmax(cos))]
            assert int(index[i, p]) == j
            want[i, p] = E[i, j]
    np.testing.assert_allclose(np.asarray(shifted).reshape(b, -1, c), want, rtol=1e-6)
    # the gradient of the copy lands on the chosen encoder positions (times triple_weight), none on F
    cot = rng.standard_normal(shifted.shape).astype(np.float32)
    gf, ge = jax.grad(lambda f, e: jnp.sum(hard_shift(f, e, hole, triple_weight=2.0)[0] * cot), argnums=(0, 1))(
        former, latter)
    assert np.abs(np.asarray(gf)).max() == 0
    ge_want = np.zeros_like(E)
    for i in range(b):
        for p in np.flatnonzero(M[i]):
            ge_want[i, int(index[i, p])] += 2.0 * cot.reshape(b, -1, c)[i, p]
    np.testing.assert_allclose(np.asarray(ge).reshape(b, -1, c), ge_want, rtol=1e-6)
    # a zero encoder vector at a known position gives NaN cosines, which the argmax picks (as the
    # original); a zero decoder vector picks the first known position; no known position: zeros
    e0 = latter.copy()
    e0[0, 3, 4] = 0
    _, idx = hard_shift(former, e0, hole)
    assert set(np.asarray(idx)[0][M[0]]) == {3 * w + 4}
    f0 = former.copy()
    f0[0, 1, 1] = 0
    _, idx = hard_shift(f0, latter, hole)
    assert int(idx[0, 1 * w + 1]) == 0
    s_all, _ = hard_shift(former, latter, np.ones_like(hole))
    assert np.abs(np.asarray(s_all)).max() == 0


def test_hard_shift_scores_the_hole_rows_a_block_at_a_time_like_the_dense_matrix():
    """Only the hole's rows are scored, SHIFT_ROW_BLOCK at a time: in one batch a hole of 288
    positions (two blocks, the second partly full), one of 12 and none; every hole position's index
    is the argmax of its row of the dense cosine matrix (NumPy), known positions 0. The same with
    blocks of 7 rows (42 loop steps, the last one clamped to the end) and inside jit."""
    from inpaintjax.models.shiftnet import SHIFT_ROW_BLOCK, _hole_argmax
    rng = np.random.default_rng(1)
    b, h, w, c = 3, 20, 20, 8
    assert h * w > SHIFT_ROW_BLOCK
    former = rng.standard_normal((b, h, w, c)).astype(np.float32)
    latter = rng.standard_normal((b, h, w, c)).astype(np.float32)
    hole = np.zeros((b, h, w, 1), np.float32)
    hole[0, 2:18, 1:19] = 1
    hole[1, 5:8, 5:9] = 1
    F, E, M = former.reshape(b, -1, c), latter.reshape(b, -1, c), hole.reshape(b, -1) > 0
    want = np.zeros((b, h * w), np.int64)
    for i in range(b):
        cos = (F[i] @ E[i].T) / np.sqrt((F[i] ** 2).sum(-1)[:, None] * (E[i] ** 2).sum(-1)[None, :])
        cos[:, M[i]] = -np.inf
        want[i, M[i]] = np.argmax(cos[M[i]], -1)
    assert M.sum(1).tolist() == [288, 12, 0]
    _, index = hard_shift(former, latter, hole)
    np.testing.assert_array_equal(np.asarray(index), want)
    small = jax.jit(lambda f, e, m: _hole_argmax(f, e, m, block=7))(F, E, M)
    np.testing.assert_array_equal(np.asarray(small), want)


# ----------------------------------------------------------------------------- variants: soft, flip

@pytest.fixture(scope="module")
def vgolden():
    return dict(np.load(VARIANTS_GOLDEN))


def _variant_case(vg, v):
    """(net, variables, state dict, image, hole, R) of golden variant v (soft | soft_fuse | flip),
    NHWC, rebuilt from the recipes the original ran with (checked by checksums)."""
    seed = int(vg["seed"])
    if v == "flip":
        ngf = int(vg["flip/ngf"])
        sd = face_recipe.state_dict(ngf, seed)
        image, hole = variants_inputs.images(256, seed + 3), variants_inputs.flip_masks()
        R = np.random.default_rng(seed + 4).standard_normal((2, 3, 256, 256)).astype(np.float32)
        for name, a in (("image", image), ("mask", hole), ("R", R)):
            np.testing.assert_allclose(np.sum(a, dtype=np.float64), vg[f"flip/{name}_sum"], rtol=1e-12)
        net = ShiftNetGenerator(num_downs=8, ngf=ngf, shift="flip")
        variables, info = convert.from_state_dict(sd)      # the face layout, detected
    else:
        n, ngf = int(vg["soft/num_downs"]), int(vg["soft/ngf"])
        sd = recipe.state_dict(n, ngf, seed)
        image, hole, R = vg[f"{v}/image"], vg[f"{v}/mask"], vg[f"{v}/R"]
        net = ShiftNetGenerator(num_downs=n, ngf=ngf, shift="soft", fuse=v == "soft_fuse")
        variables, info = convert.from_state_dict(sd, shift="soft")   # same keys as 'hard'
    assert info["shift"] == net.shift and info["num_downs"] == net.num_downs
    sums = recipe.checksums(sd)
    assert list(sums) == list(vg[f"{v}/checksum_names"])
    np.testing.assert_allclose(np.array(list(sums.values())), vg[f"{v}/checksums"], rtol=1e-12)
    return net, variables, sd, nhwc(image), nhwc(hole), nhwc(R)


def _is_bias_before_norm(name, leaf, n):
    layer, k = name.rsplit("_", 1)
    return leaf == "bias" and layer in ("down", "up") and (2 <= int(k) < n or (layer == "up" and int(k) >= 2))


@pytest.mark.parametrize("v", ["soft", "soft_fuse", "flip"])
def test_variant_golden_matches_original(vgolden, v):
    """patch_soft_shift (fuse 0 and 1) and the face model's flipped matching against the released
    code: both rows in one batch (different holes), the output, the shift's input halves, the
    flipped pass's encoder half, the shifted part, the guidance loss and (soft, flip) parameter
    gradients of sum(output * R) + guidance (the shift's backward and InnerCos' injected gradient)."""
    from inpaintjax.families.shiftnet import guidance_loss
    from inpaintjax.models.shiftnet import flip_shift, soft_shift
    net, variables, _, image, hole, R = _variant_case(vgolden, v)
    n = net.num_downs
    x = np.concatenate([image * (1 - hole), 1 - hole], -1)
    gt = np.concatenate([image, 1 - hole], -1)
    small = hole[:, ::8, ::8]
    assert small[0].sum() != small[1].sum()

    def f(p, target):
        out, feats = net.apply({"params": p}, x, hole)
        g = jnp.stack([guidance_loss(feats["decoder"][b:b + 1], target[b:b + 1], small[b:b + 1])
                       for b in range(2)])
        return jnp.sum(out * R) + jnp.sum(g), (out, feats, g)

    @jax.jit
    def run(params):
        target = jax.lax.stop_gradient(net.apply({"params": params}, gt, hole, target_only=True))
        if v == "soft_fuse":   # fuse only changes the scores: forward here, gradients for 'soft'
            return None, f(params, target)[1]
        return jax.grad(f, has_aux=True)(params, target)

    grads, (out, feats, g) = run(variables["params"])
    ref = nhwc(vgolden[f"{v}/out"])
    got = np.asarray(out)[:, ::4, ::4] if v == "flip" else np.asarray(out)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    assert np.abs(ref[0] - ref[1]).max() > 0.3 and ref.std() > 0.1   # another image moves the output
    halves = {"decoder": "former", "encoder": "latter", **({"flip_encoder": "flip_feat"} if v == "flip" else {})}
    for ours, theirs in halves.items():
        np.testing.assert_allclose(np.asarray(feats[ours]), nhwc(vgolden[f"{v}/{theirs}"]), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(g), vgolden[f"{v}/guidance"], rtol=1e-4)
    # the shift alone on the golden halves
    former, latter = nhwc(vgolden[f"{v}/former"]), nhwc(vgolden[f"{v}/latter"])
    want = nhwc(vgolden[f"{v}/shifted"])
    if v == "flip":
        shifted = flip_shift(former, latter, nhwc(vgolden["flip/flip_feat"]), small)
        hard, _ = hard_shift(former, latter, small)
        assert np.abs(np.asarray(hard) - want).max() > 1.0          # the flipped matching matters
        np.testing.assert_allclose(np.asarray(shifted), want, atol=1e-4, rtol=1e-5)
    else:
        shifted = soft_shift(former, latter, small, fuse=v == "soft_fuse")
        np.testing.assert_allclose(np.asarray(shifted), want, atol=1e-5, rtol=1e-4)
        other = "soft" if v == "soft_fuse" else "soft_fuse"
        assert np.abs(want - nhwc(vgolden[f"{other}/shifted"])).max() > 0.1   # fuse matters
    assert np.abs(want).max() > 0.1
    if grads is None:
        return
    # parameter gradients, summed over the two rows (each ran as its own batch there)
    names = {prefix: name for name, prefix, _ in convert._layers(n, net.shift)}
    kinds = {prefix: kind for _, prefix, kind in convert._layers(n, net.shift)}
    checked = 0
    for key in vgolden:
        if not key.startswith(f"{v}/grad/"):
            continue
        prefix, leaf = key[len(f"{v}/grad/"):].rsplit(".", 1)
        p = grads[names[prefix]]
        ours = np.asarray(p["bias"] if leaf == "bias" else (p["kernel"] if "kernel" in p else p["scale"]))
        ref = vgolden[key].sum(0)
        if _is_bias_before_norm(names[prefix], leaf, n):
            assert np.abs(ours).max() < 1e-3 and np.abs(ref).max() < 1e-3, key   # exactly 0 but rounding
            continue
        scale = max(1.0, float(np.abs(ref).max()))
        if ours.ndim == 4:   # [kh, kw, in, out] -> conv [out, in, kh, kw] / transposed conv [in, out, kh, kw]
            ours = ours.transpose((3, 2, 0, 1) if kinds[prefix] == "conv" else (2, 3, 0, 1))
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * scale, err_msg=key)
        assert np.abs(ref).max() > 1e-2, key
        checked += 1
    assert checked == 6


def test_flip_shift_dense_rows_and_edge_cases():
    """flip_shift on a NumPy re-derivation of the released forward (rank-matched mirrored rows, the
    broadcast sums, position 0 dropped), one batch holding holes of different sizes."""
    from inpaintjax.models.shiftnet import flip_shift
    rng = np.random.default_rng(3)
    b, h, w, c = 2, 4, 5, 3
    F = rng.standard_normal((b, h, w, c)).astype(np.float32)
    E = rng.standard_normal((b, h, w, c)).astype(np.float32)
    Ef = rng.standard_normal((b, h, w, c)).astype(np.float32)
    hole = np.zeros((b, h, w, 1), np.float32)
    hole[0, 0:2, 0:2] = 1                       # includes flat position 0
    hole[1, 1:4, 3] = 1
    got = np.asarray(flip_shift(F, E, Ef, hole))
    want = np.zeros((b, h * w, c), np.float32)
    for i in range(b):
        m = hole[i, ..., 0].reshape(-1) > 0
        mf = hole[i, :, ::-1, 0].reshape(-1) > 0
        f, e, ef = F[i].reshape(-1, c), E[i].reshape(-1, c), Ef[i].reshape(-1, c)
        cos = lambda u, v: u @ v / np.sqrt((u @ u) * (v @ v))
        P, Q, K, Kf = np.flatnonzero(m), np.flatnonzero(mf), np.flatnonzero(~m), np.flatnonzero(~mf)
        a = [K[int(np.argmax([cos(f[p], e[j]) for j in K]))] for p in P]
        bb = [Kf[int(np.argmax([cos(f[q], ef[j]) for j in Kf]))] for q in Q]
        ori = [max(cos(f[p], e[j]) for j in K) >= max(cos(f[q], ef[j]) for j in Kf) for p, q in zip(P, Q)]
        for p, o in zip(P, ori):
            if p != 0:
                want[i, p] = e[sorted(set(a))].sum(0) if o else ef[sorted(set(bb))].sum(0)
    np.testing.assert_allclose(got.reshape(b, -1, c), want, rtol=1e-5, atol=1e-6)
    assert np.abs(got[0, 0, 0]).max() == 0 and np.abs(got[0, 0, 1]).max() > 0


# ----------------------------------------------------------------------------- converter

def test_converter_reads_legacy_and_zip_files(tmp_path, golden):
    import torch
    from inpaintjax.families import base
    sd, variables = _golden_variables(golden, "hard")
    tensors = {k: torch.from_numpy(v) for k, v in sd.items()}
    legacy, zipped = str(tmp_path / "face_center_mask.pth"), str(tmp_path / "30_net_G.pth")
    torch.save(tensors, legacy, _use_new_zipfile_serialization=False)
    torch.save(tensors, zipped)
    with open(legacy, "rb") as f:
        assert f.read(2) != b"PK"  # really the legacy format
    for path in (legacy, zipped):
        assert convert.detect(path)
        got, info = convert.from_torch(path)
        assert info["shift"] == "hard" and info["num_downs"] == 6
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(variables)):
            np.testing.assert_array_equal(a, b)
        # Inpainter / command line detection picks this family
        found = base.detect_weights(path)
        assert [(cls.name, fmt.name) for cls, fmt in found] == [("shiftnet", "torch-state-dict")]
        config, v = found[0][1].load(path)
        assert (config.family, config.model.num_downs, config.model.ngf, config.model.shift) == ("shiftnet", 6, 8, "hard")
    # DataParallel prefix, round trip, the res variant detected from its keys
    got, _ = convert.from_state_dict({"module." + k: v for k, v in sd.items()})
    back = convert.to_state_dict(got, 6)
    assert list(back) and set(back) == set(sd)
    for k in sd:
        np.testing.assert_array_equal(back[k], sd[k], err_msg=k)
    res_sd = recipe.state_dict(6, 8, 1, shift="res")
    assert convert.describe(res_sd)["shift"] == "res"
    # clear errors
    with pytest.raises(convert.ShiftNetCheckpointError, match=r"missing\.pth.*not found"):
        convert.from_torch(str(tmp_path / "missing.pth"))
    # the face model (face_flip_random.pth's layout): legacy file, detected, loaded, round trip
    face_sd = face_recipe.state_dict(4, 5)
    face = str(tmp_path / "face_flip_random.pth")
    torch.save({k: torch.from_numpy(v) for k, v in face_sd.items()}, face, _use_new_zipfile_serialization=False)
    assert convert.detect(face)
    got, info = convert.from_torch(face)
    assert info == {"num_downs": 8, "ngf": 4, "in_channels": 4, "out_channels": 3, "shift": "flip"}
    assert got["params"]["down_3"]["kernel"].shape == (6, 6, 8, 16)
    np.testing.assert_array_equal(got["params"]["up_3"]["kernel"], face_sd["d6_dc.weight"].transpose(2, 3, 0, 1))
    back = convert.to_state_dict(got, 8, "flip")
    assert list(back) == list(face_sd)
    for k in face_sd:
        np.testing.assert_array_equal(back[k], face_sd[k], err_msg=k)
    config, _ = base.detect_weights(face)[0][1].load(face)
    assert (config.model.shift, config.model.num_downs, config.model.ngf) == ("flip", 8, 4)
    # patch_soft files carry the 'hard' keys: named, not detected; mismatched requests fail clearly
    assert convert.from_state_dict(sd, shift="soft")[1]["shift"] == "soft"
    with pytest.raises(convert.ShiftNetCheckpointError, match=r"keys are those of shift='res'.*shift='soft'"):
        convert.describe(res_sd, shift="soft")
    with pytest.raises(convert.ShiftNetCheckpointError, match=r"face model.*not shift='hard'"):
        convert.describe(face_sd, shift="hard")
    with pytest.raises(convert.ShiftNetCheckpointError, match=r"shift='hard'.*cannot be loaded as shift='flip'"):
        convert.describe(sd, shift="flip")
    bad_face = dict(face_sd, **{"e3_c.weight": np.zeros((16, 8, 4, 4), np.float32)})
    with pytest.raises(convert.ShiftNetCheckpointError, match="e3_c.weight must be 6x6"):
        convert.describe(bad_face)
    plain = {k: v for k, v in sd.items() if ".model.3.model.7." not in k}
    with pytest.raises(convert.ShiftNetCheckpointError, match="plain pix2pix"):
        convert.from_state_dict(plain)
    extra = dict(sd, **{"model.model.9.weight": np.zeros(3, np.float32)})
    with pytest.raises(convert.ShiftNetCheckpointError, match=r"unexpected keys \['model.model.9.weight'\]"):
        convert.from_state_dict(extra)
    other = str(tmp_path / "other.pth")
    torch.save({"enc_1.conv.input_conv.weight": torch.zeros(2, 2)}, other)
    assert not convert.detect(other)


def test_converter_checks_every_layer_shape(tmp_path, golden):
    """A wrongly shaped inner layer is the converter's error, naming the file, the key and both
    shapes in the file's (PyTorch) layout, not flax's ScopeParamShapeError at the first inpaint.
    Hand-worked for the golden 6-level, ngf 8 network: widths 8, 16, 32, 64, 64, 64; the shift
    block's up-convolution takes [decoder, encoder, shifted] = 3 x 32 channels to 16."""
    import torch
    sd, _ = _golden_variables(golden, "hard")
    p3, p4 = convert.block_prefix(3), convert.block_prefix(4)
    cases = [(p3 + "7.weight", (64, 16, 4, 4), "(96, 16, 4, 4)"),       # no room for the shifted third
             (p4 + "1.weight", (64, 32, 3, 3), "(64, 32, 4, 4)"),       # level 4's down conv 3x3
             (p4 + "1.bias", (65,), "(64,)"),
             (p4 + "2.weight", (32,), "(64,)"),                         # level 4's InstanceNorm
             (convert.block_prefix(6) + "3.weight", (64, 32, 4, 4), "(64, 64, 4, 4)")]
    for key, shape, want in cases:
        bad = dict(sd, **{key: np.zeros(shape, np.float32)})
        path = tmp_path / "bad_layer.pth"
        torch.save({k: torch.from_numpy(v) for k, v in bad.items()}, path)
        got = "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")
        with pytest.raises(convert.ShiftNetCheckpointError,
                           match=re.escape(f"{path}: {key} has shape {got}, expected {want}")):
            convert.from_torch(str(path))


def test_loading_without_naming_the_variant_warns_about_soft_files(tmp_path, golden, caplog):
    """patch_soft_unet_shift_triple files have the default model's keys: loading one of those
    keys without naming the variant says it is taken as 'hard' and how to load a soft model;
    naming the variant, or keys that tell it (res), load without the warning."""
    import logging

    import torch
    from inpaintjax.families import base
    sd, _ = _golden_variables(golden, "hard")
    path = str(tmp_path / "soft_or_hard.pth")
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, path)
    res = str(tmp_path / "res.pth")
    torch.save({k: torch.from_numpy(v) for k, v in recipe.state_dict(6, 8, 1, shift="res").items()}, res)
    logger = "inpaintjax.convert.shiftnet"
    for load in (lambda: convert.from_torch(path), lambda: base.detect_weights(path)[0][1].load(path)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=logger):
            load()
        assert path in caplog.text and "shift='hard'" in caplog.text, caplog.text
        assert "patch_soft_unet_shift_triple" in caplog.text and "shift='soft'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=logger):
        convert.from_torch(path, shift="hard")
        convert.from_torch(path, shift="soft")
        convert.from_torch(res)
    assert not caplog.text, caplog.text


# ----------------------------------------------------------------------------- the family

def _config(variant="test"):
    return _load("shiftnet_config", os.path.join(ROOT, "configs", "shiftnet.py")).get_config(variant)


def _family(config):
    from inpaintjax.families import base
    return base.get("shiftnet")(config)


def _batch(family, b=2, size=64, seed=0, generator=None):
    from inpaintjax.data import fields
    from inpaintjax.masks import make_mask
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.stack([np.sin(6 * xx + p) * 0.4 + 0.5 + 0.3 * yy for p in rng.uniform(0, 6, 3)], -1)
    image = np.broadcast_to(image, (b, size, size, 3)).astype(np.float32).copy()
    image = np.clip(image + rng.normal(0, 0.02, image.shape).astype(np.float32), 0, 1)
    name = generator or family.config.mask.generator
    holes = np.stack([make_mask(name, seed + i, size, size) for i in range(b)])[..., None]
    return fields.compute_batch(family.batch_spec(), image, holes, [np.random.default_rng(i) for i in range(b)])


def test_config_variants_and_frozen_vgg(tmp_path):
    from inpaintjax.families.base import FrozenWeightsError
    c, r, p = _config("center"), _config("random"), _config("paper")
    assert (c.model.num_downs, c.model.ngf, c.model.shift, c.model.in_channels) == (8, 64, "hard", 4)
    assert (c.loss.l1, c.loss.hole_l1, c.loss.gan, c.loss.style, c.loss.content, c.loss.guidance) == (100, 400, 0.2, 10, 1, 1)
    assert (c.optim.lr, c.optim.b1, c.optim.b2, c.batch_size) == (2e-4, 0.5, 0.999, 1)
    assert c.mask.generator == "shiftnet_center" and c.loss.hole_crop and c.data.resize_shorter == 350
    assert r.mask.generator == "shiftnet_island" and not r.loss.hole_crop
    assert (p.loss.hole_l1, p.loss.style, p.loss.content, p.loss.guidance_form) == (0, 0, 0, "paper")
    soft, face = _config("soft"), _config("face")
    assert (soft.model.shift, soft.model.fuse, soft.loss.hole_crop) == ("soft", False, True)
    assert _config("soft,model.fuse=True").model.fuse
    assert (face.model.shift, face.data.resize_shorter, face.loss.hole_crop, face.mask.generator) == (
        "flip", 256, False, "shiftnet_island")
    wrong = _config("test")
    wrong.model.fuse = True
    with pytest.raises(ValueError, match="model.fuse applies to model.shift='soft' only"):
        _family(wrong)
    wrong = _config("test,model.shift=soft")
    wrong.model.shift = "sotf"
    with pytest.raises(ValueError, match="model.shift must be one of"):
        _family(wrong)
    fam = _family(c)
    assert fam.size_multiple == 256 and fam.crop_size == 120 and "hole_box" in fam.batch_spec()
    assert "hole_box" not in _family(r).batch_spec()
    with pytest.raises(FrozenWeightsError, match=r"vgg_weights is empty.*vgg16-397923af\.pth"):
        fam.load_frozen()
    assert _family(p).load_frozen() == {}          # the paper's losses need no VGG
    assert "random VGG-16" in _family(_config("test")).evaluation_label()
    bad = _config("test")
    bad.loss.guidance_form = "papr"
    with pytest.raises(ValueError, match="guidance_form must be one of"):
        _family(bad)


def test_loss_terms_match_numpy():
    from inpaintjax.families.shiftnet import gram, guidance_loss
    rng = np.random.default_rng(1)
    dec = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    tgt = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    m = np.zeros((2, 4, 4, 1), np.float32)
    m[:, 1:3, 1:3] = 1
    np.testing.assert_allclose(float(guidance_loss(dec, tgt, m)), np.mean((dec * m - tgt) ** 2), rtol=1e-6)
    np.testing.assert_allclose(float(guidance_loss(dec, tgt, m, "paper")), np.mean(((dec - tgt) * m) ** 2), rtol=1e-6)
    # InnerCos' injected gradient: 2 (dec * m - tgt) / N everywhere (known positions too)
    g = jax.grad(lambda d: guidance_loss(d, tgt, m))(dec)
    np.testing.assert_allclose(np.asarray(g), 2 * (dec * m - tgt) / dec.size, rtol=1e-5)
    assert np.abs(np.asarray(g)[m[..., 0] == 0]).max() > 0
    g = jax.grad(lambda d: guidance_loss(d, tgt, m, "paper"))(dec)
    np.testing.assert_allclose(np.asarray(g), 2 * m * (dec - tgt) * m / dec.size, rtol=1e-5)
    f = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    F = f.transpose(0, 3, 1, 2).reshape(2, 4, 15)
    np.testing.assert_allclose(np.asarray(gram(f)), F @ F.transpose(0, 2, 1) / (4 * 15), rtol=1e-5)


@pytest.fixture(scope="module")
def trained():
    """The `test` config (64x64, ngf 8, centre holes, hole crop, random VGG) at batch 8: six steps on
    one device (losses, the state after two and after six), and the jitted step, batch and frozen
    networks for other tests."""
    c = _config("test")
    c.batch_size = 8
    family = _family(c)
    frozen = jax.tree.map(jnp.asarray, family.load_frozen())
    host_batch = _batch(family, b=8)
    one = jax.devices()[0]
    batch = {k: jax.device_put(jnp.asarray(v), one) for k, v in host_batch.items()}
    step = jax.jit(family.train_step)
    # committed to the device like the batch and like every state the step returns: a first call
    # with an uncommitted state would compile the step a second time for the calls after it
    state = state0 = jax.device_put(jax.jit(family.init_state)(jax.random.key(0), batch), one)
    seen, metrics, states = [], [], []
    for i in range(6):
        state, m = step(state, batch, jax.random.key(i), frozen)
        seen.append(float(m["g/loss"]))
        metrics.append(m)
        states.append(state)
    return dict(family=family, frozen=frozen, host_batch=host_batch, step=step, state=state,
                state0=state0, state2=states[1], losses=seen, metrics=metrics)


def test_training_steps_lower_the_loss(trained):
    family, state, seen, m = trained["family"], trained["state"], trained["losses"], trained["metrics"][-1]
    assert all(np.isfinite(float(v)) for mm in trained["metrics"] for v in jax.tree.leaves(mm))
    assert int(state.step) == 6 and seen[-1] < 0.9 * seen[0] and all(np.diff(seen) < 0), seen
    assert {"g/l1", "g/hole_l1", "g/gan", "g/guidance", "g/style", "g/content", "d/loss"} <= set(m)
    assert float(m["g/guidance"]) > 0 and float(m["g/hole_l1"]) > 0
    inputs = family.inference_inputs({k: np.asarray(v) for k, v in trained["host_batch"].items()})
    out = np.asarray(jax.jit(family.inpaint)(family.inference_variables(state), inputs)["output"])
    known = np.broadcast_to(inputs["mask"], out.shape) == 0
    np.testing.assert_array_equal(out[known], inputs["image"][known])
    assert out.min() >= 0 and out.max() <= 1 and np.abs(out - inputs["image"]).max() > 0


def test_hole_crop_is_each_rows_own(trained):
    """The discounted hole L1 of a step on rows whose holes lie in different places, re-derived
    with each row's crop cut by hand around its own hole (the box centred on the hole, clamped
    inside the image; a crop shared by the rows, e.g. row 0's, fails it) and the discount
    max(g^min(i, S-i), g^min(j, S-j)) written out."""
    from inpaintjax.data import fields
    family, config = trained["family"], trained["family"].config
    image = trained["host_batch"]["image"]
    b, size = image.shape[0], image.shape[1]
    holes = np.zeros((b, size, size, 1), np.float32)
    for i in range(b):  # 20x16 holes from the top-left to the bottom-right corner
        holes[i, 6 * i:6 * i + 20, 40 - 5 * i:56 - 5 * i] = 1
    batch = fields.compute_batch(family.batch_spec(), image, holes, [np.random.default_rng(i) for i in range(b)])
    one = jax.devices()[0]
    _, m = trained["step"](trained["state0"], {k: jax.device_put(jnp.asarray(v), one) for k, v in batch.items()},
                           jax.random.key(0), trained["frozen"])
    real = image * 2.0 - 1.0
    fake, _ = jax.jit(lambda p, x, h: family.generator.apply({"params": p}, x, h))(
        trained["state0"].g_params, family._net_input(jnp.asarray(real), jnp.asarray(holes)), holes)
    fake = np.asarray(fake, np.float64)
    crop = family.crop_size
    g = float(config.loss.discount_gamma)
    k = np.arange(crop)
    near = g ** np.minimum(k, crop - k)
    discount = np.maximum(near[:, None], near[None, :])[..., None]
    corners, terms = set(), []
    for i in range(b):
        rows, cols = np.flatnonzero(holes[i, ..., 0].any(1)), np.flatnonzero(holes[i, ..., 0].any(0))
        t = min(max(rows[0] + len(rows) // 2 - crop // 2, 0), size - crop)
        c = min(max(cols[0] + len(cols) // 2 - crop // 2, 0), size - crop)
        corners.add((t, c))
        terms.append(discount * np.abs(fake[i, t:t + crop, c:c + crop] - real[i, t:t + crop, c:c + crop]))
    assert len(corners) == b
    assert float(m["g/hole_l1"]) == pytest.approx(float(np.mean(terms)), rel=1e-5)


def test_eight_devices_equal_one_device(trained):
    devices = jax.devices()
    if len(devices) < 8:
        pytest.fail("needs 8 devices: tests/conftest.py sets XLA_FLAGS=--xla_force_host_platform_device_count=8")
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    family = trained["family"]
    mesh = Mesh(np.array(devices[:8]), ("data",))
    rep, shard = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    b = {k: jax.device_put(jnp.asarray(v), shard) for k, v in trained["host_batch"].items()}
    state = jax.device_put(trained["state0"], rep)
    fr = jax.device_put(trained["frozen"], rep)
    seen = []
    for i in range(2):
        state, m = trained["step"](state, b, jax.random.key(i), fr)
        seen.append(float(m["g/loss"]))
    np.testing.assert_allclose(seen, trained["losses"][:2], rtol=1e-5)
    one = [float(trained["metrics"][1][k]) for k in ("d/loss", "g/guidance", "g/grad_norm")]
    np.testing.assert_allclose([float(m[k]) for k in ("d/loss", "g/guidance", "g/grad_norm")], one, rtol=1e-4)

    # The state after the two steps. Adam moves nearly every parameter by about the learning rate
    # times the sign of its gradient, so where the exact gradient is 0 the sign of the rounding
    # noise (the order of the devices' reductions) picks the step: the biases feeding an
    # InstanceNorm (its mean subtraction cancels them), differing by up to 0.004 where they moved
    # 0.002, and a few kernel entries (5 of 514,181 here, by up to 7e-4). Those biases are left
    # out; the other parameters (and the spectral norm's u, v) agree in norm to 2e-3 of how far they
    # moved (measured 1.8e-4), and Adam's moments, which hold the gradients, to 1e-5 (measured
    # 5.5e-7). A per-device reduction would differ in all of them.
    n = family.num_downs

    def leaves(s):
        g = [(jax.tree_util.keystr(p), x) for p, x in jax.tree_util.tree_leaves_with_path(s.g_params)]
        d = [(jax.tree_util.keystr(p), x) for p, x in jax.tree_util.tree_leaves_with_path(s.d_vars)]
        keep = [x for p, x in g if not _is_bias_before_norm(p.split("'")[1], p.split("'")[3], n)]
        keep += [x for p, x in d if not re.fullmatch(r"\['params'\]\['conv_[123]'\]\['bias'\]", p)]
        return [np.asarray(x, np.float64) for x in keep]

    def norm(xs):
        return np.sqrt(sum(np.sum(np.square(x)) for x in xs))

    s0, s1, s8 = leaves(trained["state0"]), leaves(trained["state2"]), leaves(state)
    moved = norm([a - b for a, b in zip(s1, s0)])
    diff = norm([a - b for a, b in zip(s1, s8)])
    assert diff < 2e-3 * moved, (moved, diff)

    def moments(s):
        return [np.asarray(x, np.float64) for x in jax.tree.leaves((s.g_opt, s.d_opt)) if np.ndim(x) > 0]

    m1, m8 = moments(trained["state2"]), moments(state)
    assert norm([a - b for a, b in zip(m1, m8)]) < 1e-5 * norm(m1)


@pytest.mark.parametrize("variant", ["model.shift=soft,model.fuse=True", "model.shift=flip"])
def test_variant_trains_and_lowers_its_loss(variant):
    """patch_soft_shift (with fuse) and the face model's flipped matching through the family's
    training step: 32x32, a 5-level U-Net of 8-64 channels, whole-image losses without VGG, one
    batch holding two different holes; three steps lower the generator loss and inpaint keeps the
    known pixels."""
    c = _config(f"test,{variant},model.num_downs=5,loss.style=0.0,loss.content=0.0,loss.hole_crop=False")
    c.data.image_size = c.eval.image_size = 32
    family = _family(c)
    host = _batch(family, b=2, size=32, generator="shiftnet_island")
    assert host["mask"][0].sum() != host["mask"][1].sum()
    batch = {k: jnp.asarray(v) for k, v in host.items()}
    step = jax.jit(family.train_step)
    state = jax.jit(family.init_state)(jax.random.key(0), batch)
    seen = []
    for i in range(3):
        state, m = step(state, batch, jax.random.key(i), {})
        seen.append(float(m["g/loss"]))
    assert all(np.isfinite(float(v)) for v in jax.tree.leaves(m))
    assert all(np.diff(seen) < 0) and seen[-1] < 0.97 * seen[0] and float(m["g/guidance"]) > 0, seen
    out = np.asarray(jax.jit(family.inpaint)(family.inference_variables(state),
                                            family.inference_inputs(host))["output"])
    known = np.broadcast_to(host["mask"], out.shape) == 0
    np.testing.assert_array_equal(out[known], np.asarray(host["image"])[known])
