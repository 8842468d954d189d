"""Partial Convolutions: the U-Net, the converter, the losses and the family.

Truth: the published parameter counts (25,779,796 / 32,859,732), the golden outputs of the
original U-Net (naoto0804/pytorch-inpainting-with-partial-conv `net.py` at 8d64e7e, produced by
tests/fixtures/pconv_make_golden.py), and NumPy re-derivations of the loss terms.
"""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaintjax.convert import pconv as convert
from inpaintjax.models.pconv import PConvUNet

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "fixtures", "pconv_ni_golden.npz")


def _load_recipe():
    spec = importlib.util.spec_from_file_location("pconv_weights", os.path.join(HERE, "fixtures", "pconv_weights.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


recipe = _load_recipe()


def n_params(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


@pytest.mark.parametrize("levels,size,count", [(7, 256, 25_779_796), (8, 512, 32_859_732)])
def test_parameter_counts(levels, size, count):
    v = jax.eval_shape(lambda: PConvUNet(levels=levels).init(
        jax.random.key(0), jnp.zeros((1, size, size, 3)), jnp.zeros((1, size, size, 1))))
    assert n_params(v["params"]) == count
    # BatchNorm on every layer but enc_1 and dec_1; biases only on dec_1.
    assert "bn" not in v["params"]["enc_1"] and "bn" not in v["params"]["dec_1"]
    assert all("bn" in v["params"][f"{s}_{i}"] for s in ("enc", "dec") for i in range(2, levels + 1))
    assert "bias" in v["params"]["dec_1"]["conv"]["conv"]
    assert "bias" not in v["params"]["dec_2"]["conv"]["conv"]


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(GOLDEN))


@pytest.fixture(scope="module")
def golden_state_dict(golden):
    sd = recipe.ni_state_dict(int(golden["levels"]), int(golden["seed"]))
    sums = recipe.checksums(sd)
    # The rebuilt weights are the ones the original code ran with.
    assert list(sums) == list(golden["checksum_names"])
    np.testing.assert_allclose(np.array(list(sums.values())), golden["checksums"], rtol=1e-12)
    return sd


@pytest.fixture(scope="module")
def official_checkpoint(tmp_path_factory, golden_state_dict):
    """The state dict written in the reimplementation's `save_ckpt` format."""
    import torch
    path = str(tmp_path_factory.mktemp("ni") / "1000.pth")
    model = {k: torch.from_numpy(np.asarray(v)) for k, v in golden_state_dict.items()}
    torch.save({"n_iter": 1000, "model": model,
                "optimizer": {"state": {}, "param_groups": [{"lr": 2e-4, "params": [0, 1]}]}}, path)
    return path


def nhwc(a):
    return np.ascontiguousarray(np.asarray(a).transpose(0, 2, 3, 1))


def assert_close_per_sample(got, ref, what):
    """1e-4 relative to each sample's largest magnitude (partial convs amplify sparse windows)."""
    for i in range(ref.shape[0]):
        scale = max(1.0, float(np.abs(ref[i]).max()))
        np.testing.assert_allclose(got[i], ref[i], rtol=1e-4, atol=1e-4 * scale, err_msg=f"{what}, sample {i}")


def test_golden_eval_mode_matches_original(golden, official_checkpoint):
    assert convert.detect(official_checkpoint)
    variables = convert.from_torch(official_checkpoint)
    levels = convert.levels_of(variables)
    assert levels == int(golden["levels"])
    image, hole = nhwc(golden["image"]), 1.0 - nhwc(golden["valid"])
    out, out_mask = jax.jit(lambda v, x, m: PConvUNet(levels=levels).apply(v, x, m, train=False))(
        variables, image, hole)
    assert_close_per_sample(np.asarray(out), nhwc(golden["out_eval"]), "eval output")
    np.testing.assert_array_equal(np.asarray(out_mask), 1.0 - nhwc(golden["mask_eval"]))
    assert np.asarray(out_mask)[3].min() == 1.0 and np.asarray(out_mask)[:3].max() == 0.0


@pytest.mark.parametrize("freeze", [False, True])
def test_golden_train_mode_output_and_batch_statistics(golden, official_checkpoint, freeze):
    variables = convert.from_torch(official_checkpoint)
    levels = convert.levels_of(variables)
    image, hole = nhwc(golden["image"]), 1.0 - nhwc(golden["valid"])
    net = PConvUNet(levels=levels, freeze_encoder_bn=freeze)
    (out, _), updates = jax.jit(lambda v, x, m: net.apply(v, x, m, train=True, mutable=["batch_stats"]))(
        variables, image, hole)
    tag = "finetune" if freeze else "train"
    assert_close_per_sample(np.asarray(out), nhwc(golden[f"out_{tag}"]), f"{tag} output")
    for name, bn in updates["batch_stats"].items():
        for ours, theirs in (("mean", "running_mean"), ("var", "running_var")):
            ref = golden[f"{tag}_stats/{name}.bn.{theirs}"]
            np.testing.assert_allclose(np.asarray(bn["bn"][ours]), ref, rtol=1e-4, atol=1e-5,
                                       err_msg=f"{name} {ours}")
            if freeze and name.startswith("enc"):
                np.testing.assert_array_equal(np.asarray(bn["bn"][ours]),
                                              variables["batch_stats"][name]["bn"][ours])


def test_converter_round_trip_and_one_channel_mask(golden_state_dict):
    variables = convert.from_state_dict(golden_state_dict)
    back = convert.to_state_dict(variables, num_batches_tracked=7)
    assert list(back) == list(golden_state_dict)
    for k, v in golden_state_dict.items():
        np.testing.assert_allclose(back[k], v, rtol=1e-6, err_msg=k)
    # The window scaling: our kernel times in*k*k is the original's.
    w = golden_state_dict["dec_3.conv.input_conv.weight"]
    np.testing.assert_allclose(variables["params"]["dec_3"]["conv"]["conv"]["kernel"] * w[0].size,
                               w.transpose(2, 3, 1, 0), rtol=1e-6)
    # A one-channel hole equals its three-channel copy.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 32, 32, 3)).astype(np.float32)
    hole = (rng.uniform(size=(1, 32, 32, 1)) > 0.6).astype(np.float32)
    net = PConvUNet(levels=5)
    a, _ = jax.jit(net.apply)(variables, x, hole)
    b, _ = jax.jit(net.apply)(variables, x, np.repeat(hole, 3, axis=-1))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bad_inputs_and_files_are_named(tmp_path, golden_state_dict):
    variables = convert.from_state_dict(golden_state_dict)
    with pytest.raises(ValueError, match=r"multiples of 32, got 48x64"):
        PConvUNet(levels=5).apply(variables, np.zeros((1, 48, 64, 3)), np.zeros((1, 48, 64, 1)))
    with pytest.raises(convert.PConvCheckpointError, match=r"missing\.pth.*not found"):
        convert.from_torch(str(tmp_path / "missing.pth"))
    import torch
    other = tmp_path / "other.pth"
    torch.save({"n_iter": 1, "model": {"conv1.weight": torch.zeros(2, 2)}}, other)
    assert not convert.detect(str(other))
    with pytest.raises(convert.PConvCheckpointError, match=r"other\.pth: no PConv U-Net layers"):
        convert.from_torch(str(other))
    bad = dict(golden_state_dict)
    bad["enc_2.conv.mask_conv.weight"] = bad["enc_2.conv.mask_conv.weight"] * 2
    with pytest.raises(convert.PConvCheckpointError, match="enc_2.conv.mask_conv.weight is not the all-ones"):
        convert.from_state_dict(bad)



def test_checkpoint_layer_count_and_missing_entries_are_named(golden_state_dict):
    """A U-Net shallower than PConvUNet's 4 levels, or a layer without its BatchNorm entries or
    dec_1's bias, is refused on reading, naming the file and the entry (not a KeyError, nor a
    network error at the first inpainting)."""
    three = {k: v for k, v in golden_state_dict.items() if not k.startswith(("enc_4", "enc_5", "dec_4", "dec_5"))}
    with pytest.raises(convert.PConvCheckpointError, match=r"three\.pth: a 3-level PConv U-Net.*at least 4"):
        convert.from_state_dict(three, where="three.pth")
    for key in ("enc_2.bn.running_mean", "dec_3.bn.weight", "dec_1.conv.input_conv.bias"):
        bad = {k: v for k, v in golden_state_dict.items() if k != key}
        with pytest.raises(convert.PConvCheckpointError, match=rf"bad\.pth: missing {key.replace('.', r'[.]')}"):
            convert.from_state_dict(bad, where="bad.pth")


def test_checkpoint_entries_and_widths_pconvunet_does_not_have_are_named(golden_state_dict):
    """Entries the network does not have (BatchNorm on enc_1 or dec_1, a bias elsewhere than
    dec_1) would be read and never used, and a layer of another width fails only at the first
    inpainting: both are refused on reading, naming the entry and the shape the U-Net needs
    (net.py's widths: 64, 128, 256, then 512, scaled by enc_1's width; the fixture's is 8)."""
    sd = golden_state_dict
    width = sd["enc_1.conv.input_conv.weight"].shape[0]
    assert [sd[f"enc_{i}.conv.input_conv.weight"].shape[0] for i in range(1, 6)] == [
        width, 2 * width, 4 * width, 8 * width, 8 * width]
    for key, value in (("enc_1.bn.weight", np.ones(width, np.float32)),
                       ("enc_3.conv.input_conv.bias", np.zeros(4 * width, np.float32))):
        with pytest.raises(convert.PConvCheckpointError, match=rf"extra\.pth: \['{key}'\] are not in PConvUNet"):
            convert.from_state_dict({**sd, key: value}, where="extra.pth")
    # enc_3 at 3x the width instead of 4x: its kernel, BatchNorm and dec_4's input all disagree;
    # the first entry read is named with the shape needed
    wide = dict(sd)
    k = sd["enc_3.conv.input_conv.weight"]
    wide["enc_3.conv.input_conv.weight"] = np.zeros((3 * width,) + k.shape[1:], np.float32)
    with pytest.raises(convert.PConvCheckpointError,
                       match=rf"wide\.pth: enc_3\.conv\.input_conv\.weight has shape \({3 * width}, {2 * width}, 5, 5\), "
                             rf"a 5-level PConvUNet of width {width} .* needs \({4 * width}, {2 * width}, 5, 5\)"):
        convert.from_state_dict(wide, where="wide.pth")
    wrong_kernel = {**sd, "dec_2.conv.input_conv.weight": np.zeros((width, 3 * width, 5, 5), np.float32)}
    with pytest.raises(convert.PConvCheckpointError, match=rf"dec_2\.conv\.input_conv\.weight has shape .* needs \({width}, {3 * width}, 3, 3\)"):
        convert.from_state_dict(wrong_kernel)
    bn = {**sd, "dec_3.bn.running_var": np.ones(width, np.float32)}
    with pytest.raises(convert.PConvCheckpointError, match=rf"dec_3\.bn\.running_var has shape \({width},\).* needs \({2 * width},\)"):
        convert.from_state_dict(bn)


def test_family_names_a_mask_of_the_wrong_size():
    family = _family(_config("test"))
    batch = _batch()
    with pytest.raises(ValueError, match=r"mask must be \[2, 32, 32, 1\].*got \(2, 16, 16, 1\)"):
        family.inpaint(None, {"image": batch["image"], "mask": batch["mask"][:, :16, :16]})

@pytest.mark.slow
def test_full_size_forward_256():
    """The paper's 7-level U-Net at 256x256, once: 25,779,796 parameters initialised, a hole's
    contents never reach the output (partial convolutions renormalise over known pixels only),
    known pixels do, and the updated mask is all-known after the last layer."""
    size = 256
    net = PConvUNet(levels=7)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, size, size, 3)).astype(np.float32)
    hole = np.zeros((3, size, size, 1), np.float32)
    hole[:, 64:128, 64:128] = 1.0
    x[1] = np.where(hole[0] > 0, 10.0, x[0])        # other hole contents
    x[2] = np.where(hole[0] > 0, x[0], -x[0])       # other known pixels
    variables = jax.jit(net.init)(jax.random.key(0), x[:1], hole[:1])
    assert n_params(variables["params"]) == 25_779_796
    out, out_mask = jax.jit(lambda v, a, m: net.apply(v, a, m, train=False))(variables, x, hole)
    out = np.asarray(out)
    assert out.shape == (3, size, size, 3) and np.asarray(out_mask).shape == (3, size, size, 3)
    assert float(np.asarray(out_mask).max()) == 0.0
    np.testing.assert_allclose(out[1], out[0], rtol=0, atol=1e-5)
    inside = hole[0, ..., 0] > 0
    assert np.abs(out[2][inside] - out[0][inside]).mean() > 1e-3 * np.abs(out[0]).mean()


# ----------------------------------------------------------------------------- losses (NumPy truth)

def np_vgg_pools(params, x, widths_blocks=(2, 2, 3)):
    """Tiny VGG-16 trunk in float64 NumPy: 3x3 convs (zero pad 1) + ReLU, 2x2 max-pools; pool1..pool3."""
    h = np.asarray(x, np.float64) * params["input_scale"] + params["input_offset"]
    pools = []
    for b, n in enumerate(widths_blocks):
        for i in range(n):
            k = np.asarray(params[f"conv{b + 1}_{i + 1}"]["kernel"], np.float64)
            bias = np.asarray(params[f"conv{b + 1}_{i + 1}"]["bias"], np.float64)
            hp = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
            H, W = h.shape[1:3]
            y = sum(np.einsum("bhwc,cf->bhwf", hp[:, a:a + H, c:c + W], k[a, c]) for a in range(3) for c in range(3))
            h = np.maximum(y + bias, 0)
        B, H, W, C = h.shape
        h = h.reshape(B, H // 2, 2, W // 2, 2, C).max(axis=(2, 4))
        pools.append(h)
    return pools


def np_gram(f):
    b, h, w, c = f.shape
    F = f.reshape(b, h * w, c)
    return np.einsum("bnc,bnd->bcd", F, F) / (c * h * w)


def test_pconv_loss_terms_match_numpy():
    from inpaintjax import losses
    from inpaintjax.models import vgg
    rng = np.random.default_rng(3)
    B, H, W = 2, 16, 16
    gt = rng.standard_normal((B, H, W, 3)).astype(np.float32)
    out = rng.standard_normal((B, H, W, 3)).astype(np.float32)
    hole = np.zeros((B, H, W, 1), np.float32)
    hole[0, 3:9, 4:12] = 1
    hole[1, 10:16, 0:5] = 1  # touches the border
    hole[1, 2, 13] = 1       # a single pixel
    comp = hole * out + (1 - hole) * gt
    g64, o64, h64, c64 = (a.astype(np.float64) for a in (gt, out, hole, comp))
    n = gt.size

    # L_valid, L_hole: size-averaged L1 of the masked difference.
    np.testing.assert_allclose(float(losses.valid_l1(out, gt, hole)), np.abs((1 - h64) * (o64 - g64)).sum() / n, rtol=1e-6)
    np.testing.assert_allclose(float(losses.hole_l1(out, gt, hole)), np.abs(h64 * (o64 - g64)).sum() / n, rtol=1e-6)

    # Perceptual and style on a tiny random VGG-16 (pool1..pool3).
    widths = (3, 4, 5, 5, 5)
    variables = vgg.random_variables(16, seed=1, widths=widths)
    f = vgg.feature_fn(16, ("pool1", "pool2", "pool3"), widths)
    fo, fc, fg = (list(f(variables, a).values()) for a in (out, comp, gt))
    no, nc, ng = (np_vgg_pools(variables["params"], a) for a in (o64, c64, g64))
    perc_ref = sum(np.abs(a - b).mean() + np.abs(c - b).mean() for a, c, b in zip(no, nc, ng))
    perc = losses.perceptual(fo, fg) + losses.perceptual(fc, fg)
    np.testing.assert_allclose(float(perc), perc_ref, rtol=1e-5)
    for a, c, b in zip(no, nc, ng):
        assert np.abs(a - b).mean() > 1e-3  # every layer contributes
    style_ref = sum(np.abs(np_gram(a) - np_gram(b)).mean() + np.abs(np_gram(c) - np_gram(b)).mean()
                    for a, c, b in zip(no, nc, ng))
    np.testing.assert_allclose(float(losses.style(fo, fg) + losses.style(fc, fg)), style_ref, rtol=1e-5)

    # TV on the 1-pixel (8-neighbour) dilation P of the hole, pairs with both pixels in P.
    P = np.zeros_like(h64)
    for b in range(B):
        for i in range(H):
            for j in range(W):
                P[b, i, j, 0] = h64[b, max(i - 1, 0):i + 2, max(j - 1, 0):j + 2, 0].max()
    np.testing.assert_array_equal(np.asarray(losses.dilate_hole(hole)), P)
    assert P[1, 1:4, 12:15].min() == 1 and P[1].sum() == 7 * 6 + 3 * 3  # a pixel grows to 3x3
    tv = 0.0
    for b in range(B):
        for i in range(H):
            for j in range(W):
                if j + 1 < W and P[b, i, j, 0] and P[b, i, j + 1, 0]:
                    tv += np.abs(c64[b, i, j + 1] - c64[b, i, j]).sum()
                if i + 1 < H and P[b, i, j, 0] and P[b, i + 1, j, 0]:
                    tv += np.abs(c64[b, i + 1, j] - c64[b, i, j]).sum()
    np.testing.assert_allclose(float(losses.tv_dilated_hole(comp, hole)), tv / n, rtol=1e-6)


# ----------------------------------------------------------------------------- the family

ROOT = os.path.dirname(HERE)


def _config(variant="test", **overrides):
    import importlib
    spec = importlib.util.spec_from_file_location("pconv_config", os.path.join(ROOT, "configs", "pconv.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config(variant)
    for k, v in overrides.items():
        node = c
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    return c


def _family(config):
    from inpaintjax.families import base
    return base.get("pconv")(config)


def _batch(b=2, size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.stack([np.sin(6 * xx + p) * 0.4 + 0.5 + 0.3 * yy for p in rng.uniform(0, 6, 3)], -1)
    image = np.broadcast_to(image, (b, size, size, 3)).astype(np.float32).copy()
    image += rng.normal(0, 0.02, image.shape).astype(np.float32)
    hole = np.zeros((b, size, size, 1), np.float32)
    for i in range(b):
        t, l = rng.integers(0, size // 2, 2)
        hole[i, t:t + size // 3, l:l + size // 3] = 1
    return {"image": np.clip(image, 0, 1), "mask": hole}


def test_config_variants_and_frozen_vgg(tmp_path, caplog):
    from inpaintjax.families.base import FrozenWeightsError
    p1, p2 = _config("places2"), _config("places2_finetune")
    assert (p1.model.levels, p1.optim.lr, p1.model.freeze_encoder_bn, p1.batch_size) == (7, 2e-4, False, 16)
    assert (p2.optim.lr, p2.model.freeze_encoder_bn) == (5e-5, True)
    assert (p1.loss.valid, p1.loss.hole, p1.loss.perceptual, p1.loss.style, p1.loss.tv) == (1, 6, 0.05, 120, 0.1)
    assert p1.mask.generator == "irregular_random_walk" and not p1.mask.per_batch
    assert _family(_config("demo")).size_multiple == 64
    with pytest.raises(FrozenWeightsError, match=r"vgg_weights is empty.*vgg16-397923af\.pth"):
        _family(p1).load_frozen()
    with pytest.raises(FrozenWeightsError, match=r"nope\.h5.*not found"):
        _family(_config("places2", **{"loss.vgg_weights": str(tmp_path / "nope.h5")})).load_frozen()
    with caplog.at_level("WARNING"):
        frozen = _family(_config("test")).load_frozen()
    assert "RANDOM VGG-16" in caplog.text
    assert frozen["vgg"]["params"]["conv3_3"]["kernel"].shape == (3, 3, 8, 8)
    # evaluation tables name a model trained with random loss features as such
    assert "random VGG-16" in _family(_config("demo")).evaluation_label()
    assert _family(p1).evaluation_label() == "pconv"


def _step_fn(family):
    return jax.jit(family.train_step)


def test_training_steps_lower_the_loss():
    family = _family(_config("test"))
    frozen = jax.tree.map(jnp.asarray, family.load_frozen())
    batch = {k: jnp.asarray(v) for k, v in _batch().items()}
    state = jax.jit(family.init_state)(jax.random.key(0), batch)
    step = _step_fn(family)
    losses_seen = []
    for i in range(8):
        state, m = step(state, batch, jax.random.key(i), frozen)
        losses_seen.append(float(m["g/loss"]))
        assert all(np.isfinite(float(v)) for v in jax.tree.leaves(m))
    assert int(state.step) == 8
    assert losses_seen[-1] < 0.7 * losses_seen[0], losses_seen
    assert {"g/valid", "g/hole", "g/perceptual", "g/style", "g/tv", "g/lr"} <= set(m)
    # Inference composites: known pixels are the input exactly, the hole is in [0, 1].
    out = jax.jit(family.inpaint)(family.inference_variables(state), family.inference_inputs(_batch()))
    img, hole = _batch()["image"], _batch()["mask"]
    o = np.asarray(out["output"])
    np.testing.assert_array_equal(o[np.broadcast_to(hole, o.shape) == 0], img[np.broadcast_to(hole, o.shape) == 0])
    assert o.min() >= 0 and o.max() <= 1 and np.abs(o - img).max() > 0


def test_phase2_keeps_encoder_batchnorm_statistics():
    family = _family(_config("test", **{"model.freeze_encoder_bn": True}))
    frozen = jax.tree.map(jnp.asarray, family.load_frozen())
    batch = {k: jnp.asarray(v) for k, v in _batch().items()}
    init = jax.jit(family.init_state)
    state = init(jax.random.key(0), batch)
    # Statistics as a phase-1 run would leave them (not the 0/1 of a fresh network).
    rng = np.random.default_rng(0)
    stats0 = jax.tree.map(lambda a: jnp.asarray(rng.uniform(0.5, 1.5, a.shape), jnp.float32), state.batch_stats)
    state = state.replace(batch_stats=stats0)
    step = _step_fn(family)
    for i in range(3):
        state, _ = step(state, batch, jax.random.key(i), frozen)
    for name in stats0:
        for k in ("mean", "var"):
            before, after = np.asarray(stats0[name]["bn"][k]), np.asarray(state.batch_stats[name]["bn"][k])
            if name.startswith("enc"):
                np.testing.assert_array_equal(after, before, err_msg=f"{name} {k}")
            else:
                assert np.abs(after - before).max() > 1e-4, f"{name} {k} should keep updating"
    p0 = init(jax.random.key(0), batch).params
    assert np.abs(np.asarray(state.params["enc_2"]["bn"]["scale"]) - np.asarray(p0["enc_2"]["bn"]["scale"])).max() > 0


def test_two_phases_by_init_from_keep_the_encoder_statistics(tmp_path, official_checkpoint):
    """The paper's recipe through the training loop: phase 1, then phase 2 (encoder BatchNorm
    frozen, lr 5e-5) started from it with init_from: the encoder statistics are phase 1's and stay
    so, the decoder's move on. Official weights are evaluated under the plain family name."""
    from inpaintjax.inference import Inpainter
    from inpaintjax.training import load_for_inference, train
    p1, p2 = str(tmp_path / "p1"), str(tmp_path / "p2")
    run = {"num_steps": 2, "checkpoint_every": 2, "image_every": 0}
    train(_config("test", **run), p1)
    # phase 2 keeps an EMA (phase 1 none): it starts from the copied parameters, not from phase
    # 2's random initialisation (another seed: another start than phase 1's), so after two steps
    # at 5e-5 it is still about phase 1's network
    c2 = _config("test", **run, **{"model.freeze_encoder_bn": True, "optim.lr": 5e-5, "ema_decay": 0.5,
                                   "seed": 1})
    c2.init_from = p1
    train(c2, p2)
    _, _, v1 = load_for_inference(p1)
    _, fam2, v2 = load_for_inference(p2)
    assert fam2.name == "pconv" and fam2.config.optim.lr == 5e-5
    drift = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in
                zip(jax.tree.leaves(v2["params"]), jax.tree.leaves(v1["params"]), strict=True))
    assert 0 < drift < 1e-3, drift
    moved = 0
    for name, stats in v2["batch_stats"].items():
        for k in ("mean", "var"):
            a, b = np.asarray(stats["bn"][k]), np.asarray(v1["batch_stats"][name]["bn"][k])
            if name.startswith("enc"):  # copied from phase 1, then frozen for two steps
                np.testing.assert_array_equal(a, b, err_msg=f"{name} {k}")
            else:
                moved += float(np.abs(a - b).max()) > 1e-6
    assert moved > 0
    assert _family(_config("demo")).evaluation_label() != "pconv"   # random VGG: said so
    assert Inpainter.load(official_checkpoint).family.evaluation_label() == "pconv"
