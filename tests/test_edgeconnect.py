"""EdgeConnect: networks against the authors' PyTorch code, the converter, losses, data, family."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaintjax.models.edgeconnect import (EdgeConnectDiscriminator, EdgeGenerator, InpaintGenerator,
                                           SpectralConv)

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "edgeconnect_torch.npz")
NETS = {  # fixture name -> (from_torch key, official file, file entry, model)
    "G1": ("edge_generator", "EdgeModel_gen.pth", "generator", lambda **kw: EdgeGenerator(**kw)),
    "G2": ("inpaint_generator", "InpaintingModel_gen.pth", "generator", lambda **kw: InpaintGenerator()),
    "D1": ("edge_discriminator", "EdgeModel_dis.pth", "discriminator",
           lambda **kw: EdgeConnectDiscriminator(use_sigmoid=True, **kw)),
    "D2": ("inpaint_discriminator", "InpaintingModel_dis.pth", "discriminator",
           lambda **kw: EdgeConnectDiscriminator(use_sigmoid=False, **kw)),
}


# tests sharing a module-scoped fixture or the module's cache of training runs carry one xdist
# group, so that make test (--dist loadgroup) builds each once, in one worker
GOLDEN_GROUP = pytest.mark.xdist_group("edgeconnect-golden")   # `official_folder` (4 networks)
MODES_GROUP = pytest.mark.xdist_group("edgeconnect-modes-1-4")  # _train(1) and _train(4)


def _param_count(net, channels):
    v = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, channels))))
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(v["params"]))


def test_parameter_counts():
    assert _param_count(EdgeGenerator(), 3) == 10_761_089
    assert _param_count(InpaintGenerator(), 4) == 10_774_595
    assert _param_count(EdgeConnectDiscriminator(), 2) == 2_762_752
    assert _param_count(EdgeConnectDiscriminator(), 3) == 2_763_776


# ---------------------------------------------------------------------------------------------
# golden outputs of knazeri/edge-connect src/networks.py (tests/fixtures/edgeconnect_make_fixture.py)

@pytest.fixture(scope="module")
def golden():
    return dict(np.load(FIXTURE))


def _state_dict(golden, name, prefix=""):
    """The fixture network's state dict in the official layout: weights from the frozen legacy
    NumPy stream the fixture script used, spectral-norm vectors as stored after its training forwards."""
    sd = {}
    for i, (key, scale) in enumerate(zip(golden[f"{name}/keys"], golden[f"{name}/scales"])):
        shape = tuple(golden[f"{name}/shape/{key}"])
        sd[str(key)] = (np.random.RandomState(i).standard_normal(shape) * scale).astype(np.float32)
    if "features.0.weight_orig" in sd:
        # one module under two names in the original (`self.conv1 = self.features`): the fixture
        # script's later write (features.0) is the weight both names hold
        sd["conv1.0.weight_orig"] = sd["features.0.weight_orig"]
    tag = f"{name}/sd/"
    for k in golden:
        if k.startswith(tag):
            sd[k[len(tag):]] = golden[k]
    return {prefix + k: v for k, v in sd.items()}


def _write_pth(folder, golden, names, prefix=""):
    import torch
    for name in names:
        _, fname, entry, _ = NETS[name]
        sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in _state_dict(golden, name, prefix).items()}
        data = {"iteration": 3, entry: sd} if entry == "generator" else {entry: sd}
        torch.save(data, os.path.join(folder, fname))


@pytest.fixture(scope="module")
def official_folder(tmp_path_factory, golden):
    folder = tmp_path_factory.mktemp("edgeconnect_official")
    _write_pth(str(folder), golden, list(NETS))
    return str(folder)


def _close(actual, expected, what):
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    err = float(np.max(np.abs(actual - expected)))
    # 1e-4 absolute, and 1e-4 of the reference's spread (the discriminators' maps are small)
    assert err < 1e-4 and err < 1e-4 * max(float(expected.std()), 1e-3) * 10, (what, err, expected.std())


@GOLDEN_GROUP
@pytest.mark.parametrize("name", list(NETS))
def test_golden_eval(golden, official_folder, name):
    from inpaintjax.convert.edgeconnect import from_torch
    key, _, _, make = NETS[name]
    variables = from_torch(official_folder)[key]
    y = make().apply(variables, golden[f"{name}/x"])
    if name.startswith("D"):
        y, feats = y
        for i, f in enumerate(feats):
            _close(f, golden[f"{name}/feat{i + 1}"], f"{name} feat{i + 1}")
    _close(y, golden[f"{name}/y_eval"], f"{name} eval")


@GOLDEN_GROUP
@pytest.mark.parametrize("name", ["G1", "D1"])
def test_golden_train_forward_updates_spectral_vectors(golden, official_folder, name):
    from inpaintjax.convert.edgeconnect import from_torch
    key, _, _, make = NETS[name]
    variables = from_torch(official_folder)[key]
    y, new = make().apply(variables, golden[f"{name}/x"], train=True, mutable=["batch_stats"])
    if name.startswith("D"):
        y = y[0]
    _close(y, golden[f"{name}/y_train"], f"{name} train")
    expected = _state_dict(golden, name)
    flat = {"/".join(p.key for p in path): v for path, v in
            jax.tree_util.tree_flatten_with_path(new["batch_stats"])[0]}
    assert flat, "no spectral-norm vectors"
    moved = 0
    for path, value in flat.items():
        layer, vec = path.rsplit("/", 1)
        if name.startswith("D"):
            tkey = f"{layer}.0.weight_{vec}"
        else:
            tkey = layer.replace("middle_", "middle.").replace("/conv_block_", ".conv_block.").replace(
                "encoder_", "encoder.").replace("decoder_", "decoder.") + f".weight_{vec}"
        after = golden[f"{name}/sd_after/{tkey}"]
        np.testing.assert_allclose(value, after, atol=2e-5, err_msg=tkey)
        moved += float(np.max(np.abs(expected[tkey] - after))) > 1e-6
    assert moved > 0, "the fixture's training forward did not move any vector"


@GOLDEN_GROUP
@pytest.mark.parametrize("name", ["G1", "D1"])
def test_golden_baked(golden, official_folder, name):
    from inpaintjax.convert.edgeconnect import from_torch
    key, _, _, make = NETS[name]
    variables = from_torch(official_folder, bake=True)[key]
    assert set(variables) == {"params"}
    y = make(spectral_norm=False).apply(variables, golden[f"{name}/x"])
    if name.startswith("D"):
        y = y[0]
    _close(y, golden[f"{name}/y_eval"], f"{name} baked")


def test_converter_module_prefix_and_subset(golden, tmp_path):
    from inpaintjax.convert.edgeconnect import from_torch, is_checkpoint_folder
    _write_pth(str(tmp_path), golden, ["D1"], prefix="module.")
    assert is_checkpoint_folder(str(tmp_path))
    w = from_torch(str(tmp_path))
    assert set(w) == {"edge_discriminator"}
    y, _ = EdgeConnectDiscriminator().apply(w["edge_discriminator"], golden["D1/x"])
    _close(y, golden["D1/y_eval"], "D1 via module. prefix")


def test_converter_errors(tmp_path):
    import torch
    from inpaintjax.convert.edgeconnect import from_torch
    with pytest.raises(FileNotFoundError, match="EdgeModel_gen.pth"):
        from_torch(str(tmp_path))
    torch.save({"generator": {"encoder.1.weight_orig": torch.zeros(64, 3, 7, 7)}},
               str(tmp_path / "EdgeModel_gen.pth"))
    with pytest.raises(ValueError, match="weight_u"):
        from_torch(str(tmp_path))
    torch.save({"generator": {"head.weight": torch.zeros(3, 3, 1, 1)}}, str(tmp_path / "EdgeModel_gen.pth"))
    with pytest.raises(ValueError, match="head"):
        from_torch(str(tmp_path))
    (tmp_path / "EdgeModel_gen.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="EdgeModel_gen.pth"):
        from_torch(str(tmp_path))


def test_transposed_conv_matches_numpy_scatter():
    """PyTorch ConvTranspose2d(4, stride 2, padding 1) re-derived as an explicit scatter in NumPy."""
    rng = np.random.RandomState(0)
    x = rng.randn(1, 3, 5, 2).astype(np.float32)
    net = SpectralConv(3, 4, strides=2, padding=1, transpose=True)
    variables = net.init(jax.random.PRNGKey(0), x)
    k = rng.randn(4, 4, 2, 3).astype(np.float32)
    bias = rng.randn(3).astype(np.float32)
    y = net.apply({"params": {"kernel": k, "bias": bias}}, x)
    full = np.zeros((1, 2 * 3 + 2, 2 * 5 + 2, 3))  # output before cropping padding 1
    for i in range(3):
        for j in range(5):
            full[0, 2 * i:2 * i + 4, 2 * j:2 * j + 4] += np.einsum("c,hwco->hwo", x[0, i, j], k)
    np.testing.assert_allclose(y, full[:, 1:-1, 1:-1] + bias, atol=1e-5)
    assert variables["params"]["kernel"].shape == (4, 4, 2, 3)


def test_bad_input_sizes():
    with pytest.raises(ValueError, match="multiples of 4"):
        EdgeGenerator().init(jax.random.PRNGKey(0), jnp.zeros((1, 30, 32, 3)))


@GOLDEN_GROUP
@pytest.mark.slow
@pytest.mark.long
def test_full_size_forward_256(official_folder):
    """Both generators at the released 256x256, once, with the fixture's weights in the official
    layout (they carry signal; no initialisation program to compile): the published parameter
    counts of the converted files, the edge map a probability map that reads its input, the
    inpainting output an image in [0, 1] whose hole reads the known pixels and the edges; the
    discriminator's feature maps by shape."""
    from inpaintjax.convert.edgeconnect import from_torch
    size = 256
    rng = np.random.RandomState(0)
    g1, g2 = EdgeGenerator(), InpaintGenerator()
    official = from_torch(official_folder)
    v1, v2 = official["edge_generator"], official["inpaint_generator"]
    assert sum(int(np.prod(p.shape)) for p in jax.tree.leaves(v1["params"])) == 10_761_089
    assert sum(int(np.prod(p.shape)) for p in jax.tree.leaves(v2["params"])) == 10_774_595
    x1 = rng.rand(2, size, size, 3).astype(np.float32)
    x1[1, :, :, 1] = (rng.rand(size, size) > 0.9)   # other edges
    e = np.asarray(jax.jit(g1.apply)(v1, x1))
    assert e.shape == (2, size, size, 1) and 0 <= e.min() and e.max() <= 1
    assert np.abs(e[1] - e[0]).mean() > 1e-4
    x2 = np.concatenate([_scene(size, size, 0)[None].repeat(2, 0), e[:1].repeat(2, 0)], -1)
    x2[1, :, :, 3] = 1.0 - x2[1, :, :, 3]           # another edge map
    y = np.asarray(jax.jit(g2.apply)(v2, x2))
    assert y.shape == (2, size, size, 3) and 0 <= y.min() and y.max() <= 1 and y[0].std() > 1e-3
    assert np.abs(y[1] - y[0]).mean() > 1e-4
    d = EdgeConnectDiscriminator()
    out, feats = jax.eval_shape(lambda: d.init_with_output(jax.random.PRNGKey(0), jnp.zeros((2, 256, 256, 2)))[0])
    assert out.shape == (2, 30, 30, 1)
    assert [f.shape[1:] for f in feats] == [(128, 128, 64), (64, 64, 128), (32, 32, 256), (31, 31, 512),
                                           (30, 30, 1)]


# ---------------------------------------------------------------------------------------------
# losses and the edge metric, against NumPy re-derivations of knazeri/edge-connect src/loss.py,
# src/models.py, src/metrics.py

def test_adversarial_losses_numpy():
    from inpaintjax import losses
    rng = np.random.RandomState(0)
    p = rng.uniform(0.01, 0.99, (2, 5, 5, 1)).astype(np.float32)
    p[0, 0, 0, 0] = 0.0  # BCE's log clamp at -100
    raw = rng.randn(2, 5, 5, 1).astype(np.float32)
    lp, lq = np.maximum(np.log(np.maximum(p, 1e-45)), -100), np.log1p(-p.astype(np.float64))
    cases = {
        ("nsgan", True, True): -np.mean(lp), ("nsgan", False, True): -np.mean(lq),
        ("nsgan", True, False): -np.mean(lp),
        ("lsgan", True, True): np.mean((p - 1) ** 2), ("lsgan", False, True): np.mean(p ** 2),
        ("lsgan", True, False): np.mean((p - 1) ** 2),
    }
    for (kind, real, disc), want in cases.items():
        got = losses.adversarial(p, real, disc, kind)
        np.testing.assert_allclose(float(got), want, rtol=1e-5, err_msg=str((kind, real, disc)))
    np.testing.assert_allclose(float(losses.adversarial(raw, True, True, "hinge")),
                               np.mean(np.maximum(1 - raw, 0)), rtol=1e-6)
    np.testing.assert_allclose(float(losses.adversarial(raw, False, True, "hinge")),
                               np.mean(np.maximum(1 + raw, 0)), rtol=1e-6)
    np.testing.assert_allclose(float(losses.adversarial(raw, True, False, "hinge")), -np.mean(raw), rtol=1e-6)
    with pytest.raises(ValueError, match="wgan"):
        losses.adversarial(p, True, True, "wgan")


def test_feature_matching_l1_perceptual_style_numpy():
    from inpaintjax import losses
    rng = np.random.RandomState(1)
    fake = [rng.randn(2, s, s, c).astype(np.float32) for s, c in ((8, 4), (4, 6), (3, 1))]
    real = [rng.randn(*f.shape).astype(np.float32) for f in fake]
    want = sum(np.mean(np.abs(f - r)) for f, r in zip(fake, real))
    np.testing.assert_allclose(float(losses.feature_matching(fake, real)), want, rtol=1e-5)
    # the real features are constants: the gradient w.r.t. them is zero, w.r.t. the fakes sign/n
    g = jax.grad(lambda r: losses.feature_matching(fake, r))(real)
    assert all(float(jnp.abs(x).max()) == 0 for x in g)

    out, img = rng.rand(2, 6, 6, 3).astype(np.float32), rng.rand(2, 6, 6, 3).astype(np.float32)
    mask = np.zeros((2, 6, 6, 1), np.float32)
    mask[:, 1:4, 2:5] = 1
    np.testing.assert_allclose(float(losses.l1_over_hole_fraction(out, img, mask)),
                               np.mean(np.abs(out - img)) / (18 / 72), rtol=1e-5)

    names = ["relu1_1", "relu2_1", "relu2_2", "relu3_1", "relu3_4", "relu4_1", "relu4_4", "relu5_1", "relu5_2"]
    fx = {n: rng.rand(2, 5 - i // 3, 4, 3 + i).astype(np.float32) for i, n in enumerate(names)}
    fy = {n: rng.rand(*v.shape).astype(np.float32) for n, v in fx.items()}
    want = sum(np.mean(np.abs(fx[n] - fy[n])) for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"))
    np.testing.assert_allclose(float(losses.perceptual(fx, fy, losses.EDGECONNECT_PERCEPTUAL_LAYERS)), want, rtol=1e-5)

    def gram_np(f):  # NCHW as the original: f.view(b, c, h*w) @ its transpose / (c*h*w)
        b, h, w, c = f.shape
        m = f.transpose(0, 3, 1, 2).reshape(b, c, h * w).astype(np.float64)
        return m @ m.transpose(0, 2, 1) / (c * h * w)

    want = sum(np.mean(np.abs(gram_np(fx[n]) - gram_np(fy[n]))) for n in ("relu2_2", "relu3_4", "relu4_4", "relu5_2"))
    np.testing.assert_allclose(float(losses.style(fx, fy, losses.EDGECONNECT_STYLE_LAYERS)), want, rtol=1e-5)


def test_edge_precision_recall_hand_worked():
    from inpaintjax.metrics import edge_precision_recall
    target = np.zeros((3, 4, 4, 1), np.float32)
    pred = np.zeros((3, 4, 4, 1), np.float32)
    target[0, 0, :4] = 1          # 4 true edges
    pred[0, 0, :2] = 0.9          # 2 hits
    pred[0, 3, 3] = 0.7           # 1 false positive
    pred[0, 2, 2] = 0.5           # not above the threshold
    target[2, 1, 1] = 1           # image 2: one edge, missed; image 1: nothing anywhere
    p, r = edge_precision_recall(pred, target)
    np.testing.assert_allclose(np.asarray(p), [2 / 3, 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(r), [0.5, 1.0, 0.0], atol=1e-6)
    mask = np.zeros((3, 4, 4, 1), np.float32)
    mask[:, :2] = 1               # hole = top two rows: the false positive is outside
    p, r = edge_precision_recall(pred, target, mask)
    np.testing.assert_allclose(np.asarray(p), [1.0, 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(r), [0.5, 1.0, 0.0], atol=1e-6)


# ---------------------------------------------------------------------------------------------
# the family: modes, inference pipeline, weights

# the tiny VGG-19 weight file of the test config: the session fixture `tiny_vgg19` (conftest.py)


def _scene(h, w, seed):
    """A hand-made RGB image in [0, 1]: smooth shading plus two flat rectangles (clear edges)."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.3 + 0.3 * xx, 0.4 + 0.2 * yy, 0.5 - 0.2 * xx * yy], -1)
    for _ in range(2):
        t, l = rng.randint(0, h // 2), rng.randint(0, w // 2)
        img[t:t + h // 3, l:l + w // 3] = rng.rand(3)
    return img.astype(np.float32)


def _batch(family, size=32, n=2):
    from inpaintjax.data import fields
    images = np.stack([_scene(size, size, i) for i in range(n)])
    holes = np.zeros((n, size, size, 1), np.float32)
    holes[:, size // 4:size // 4 + size // 2, size // 4:size // 4 + size // 2] = 1
    rngs = [np.random.default_rng(i) for i in range(n)]
    return fields.compute_batch(family.batch_spec(), images, holes, rngs)


_RUNS = {}


def _family(mode, vgg_path):
    from configs.edgeconnect import get_config
    from inpaintjax.families.edgeconnect import EdgeConnect
    return EdgeConnect(get_config(f"test,model.mode={mode},loss.vgg_weights={vgg_path}"))


def _train(mode, vgg_path, steps):
    if mode not in _RUNS:
        fam = _family(mode, vgg_path)
        batch = {k: jnp.asarray(v) for k, v in _batch(fam).items()}
        state0 = jax.jit(fam.init_state)(jax.random.PRNGKey(0), batch)
        step = jax.jit(fam.train_step)
        frozen = jax.tree.map(jnp.asarray, fam.load_frozen())
        states, history = [state0], []
        for _ in range(steps):
            s, m = step(states[-1], batch, jax.random.PRNGKey(1), frozen)
            states.append(s)
            history.append(jax.device_get(m))
        _RUNS[mode] = (fam, batch, states, history)
    return _RUNS[mode]


@pytest.mark.parametrize("mode", [pytest.param(1, marks=MODES_GROUP), 2, 3,
                                  pytest.param(4, marks=MODES_GROUP)])
def test_mode_trains_and_lowers_its_loss(mode, tiny_vgg19):
    fam, batch, states, history = _train(mode, tiny_vgg19, 8)
    assert int(states[-1].step) == 8
    for m in history:
        assert all(np.isfinite(v) for v in m.values()), m
    key = "edge/g_loss" if mode == 1 else "inpaint/g_l1"
    first, last = history[0][key], history[-1][key]
    assert last < first, (key, [h[key] for h in history])
    s0, s1 = states[0], states[-1]
    same = lambda a, b: all(np.array_equal(x, y) for x, y in  # noqa: E731
                            zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
    # which networks move in which mode (spectral-norm vectors included)
    assert same(s0.edge, s1.edge) == (mode in (2, 3))
    assert same(s0.inpaint, s1.inpaint) == (mode == 1)
    assert set(s1.opt) == {1: {"edge_generator", "edge_discriminator"},
                           2: {"inpaint_generator", "inpaint_discriminator"},
                           3: {"inpaint_generator", "inpaint_discriminator"},
                           4: {"edge_generator", "edge_discriminator", "inpaint_generator",
                               "inpaint_discriminator"}}[mode]


def _step_image(h=60, w=62, col=30):
    """Dark left of column `col`, bright right of it, mid-grey on it: the only edge is column `col`."""
    img = np.full((h, w, 3), 0.2, np.float32)
    img[:, col] = 0.5
    img[:, col + 1:] = 0.8
    return img


def test_inference_inputs_canny_on_known_pixels_only():
    """The known-pixel edges of a hand-made step image: one edge pixel per row at the step, none in
    the hole (whose content must not matter) nor on its rim."""
    from configs.edgeconnect import get_config
    from inpaintjax.families.edgeconnect import EdgeConnect
    fam = EdgeConnect(get_config("mode3"))
    img = _step_image(60, 64)
    mask = np.zeros((60, 64, 1), np.float32)
    mask[20:40, 22:42] = 1
    noisy = img.copy()
    noisy[20:40, 22:42] = np.random.RandomState(0).rand(20, 20, 3)  # garbage in the hole
    a = fam.inference_inputs({"image": img[None], "mask": mask[None]})
    b = fam.inference_inputs({"image": noisy[None], "mask": mask[None]})
    np.testing.assert_array_equal(a["edges"], b["edges"])
    e = a["edges"][0, ..., 0]
    assert set(np.unique(e)) <= {0.0, 1.0}
    ys, xs = np.nonzero(e)
    assert set(xs) == {30}, sorted(set(xs))
    assert not e[19:41, 21:43].any()               # hole and its one-pixel rim
    for y in list(range(4, 17)) + list(range(43, 56)):  # rows away from the hole and the border
        assert e[y].sum() == 1, (y, np.nonzero(e[y]))
    np.testing.assert_allclose(a["grey"][0, 0, 0, 0], 0.2, atol=1e-6)  # rgb2gray of a grey pixel
    assert set(a) == {"image", "mask", "grey", "edges"}



def test_wrong_sized_mask_and_edge_maps_are_named():
    """A mask or an edge map whose size is not the image's is named with the expected shape, before
    any network runs (not a broadcasting error from inside the generator's input)."""
    from configs.edgeconnect import get_config
    from inpaintjax.families.edgeconnect import EdgeConnect
    fam = EdgeConnect(get_config("test"))
    image = np.zeros((1, 32, 32, 3), np.float32)
    full, small = np.zeros((1, 32, 32, 1), np.float32), np.zeros((1, 16, 16, 1), np.float32)
    with pytest.raises(ValueError, match=r"'mask' must be \[1, 32, 32, 1\].*got \(1, 16, 16, 1\)"):
        fam.inference_inputs({"image": image, "mask": small})
    with pytest.raises(ValueError, match=r"'edges' must be \[1, 32, 32, 1\].*got \(1, 16, 16, 1\)"):
        fam.inference_inputs({"image": image, "mask": full, "edges": small})
    with pytest.raises(ValueError, match=r"'edges' must be \[1, 32, 32, 1\].*got \(1, 16, 16, 1\)"):
        fam.inpaint(None, {"image": image, "mask": full, "grey": full, "edges": small})


def test_folder_with_discriminators_only_is_named(tmp_path):
    """Inpainter.load on an official folder holding only a discriminator file says that inference
    needs a generator file, naming them."""
    import torch
    from inpaintjax.inference import Inpainter
    widths = (2, 8, 8, 8, 8, 1)  # a narrow D1: five 4x4 convolutions without bias
    sd = {f"conv{i}.0.weight": torch.zeros(widths[i], widths[i - 1], 4, 4) for i in range(1, 6)}
    torch.save({"discriminator": sd}, str(tmp_path / "EdgeModel_dis.pth"))
    with pytest.raises(FileNotFoundError, match=r"discriminators only.*EdgeModel_gen\.pth.*InpaintingModel_gen\.pth"):
        Inpainter.load(str(tmp_path))


def _tiny_edge_generator_file(folder, channels=2, blocks=1, drop=()):
    """EdgeModel_gen.pth as knazeri/edge-connect's EdgeGenerator(residual_blocks=blocks) with first
    width `channels` saves it (src/networks.py): spectral norm (weight_orig, weight_u, weight_v) on
    every layer but decoder.7, biases outside the residual blocks; the layers in `drop` left out."""
    import torch
    c, rng = channels, np.random.RandomState(0)
    layers = [("encoder.1", (c, 3, 7, 7), True, True), ("encoder.4", (2 * c, c, 4, 4), True, True),
              ("encoder.7", (4 * c, 2 * c, 4, 4), True, True)]
    for i in range(blocks):
        layers += [(f"middle.{i}.conv_block.{j}", (4 * c, 4 * c, 3, 3), True, False) for j in (1, 5)]
    layers += [("decoder.0", (4 * c, 2 * c, 4, 4), True, True), ("decoder.3", (2 * c, c, 4, 4), True, True),
               ("decoder.7", (1, c, 7, 7), False, True)]
    sd = {}
    for name, shape, sn, bias in layers:
        if name in drop:
            continue
        out = shape[1] if name.startswith("decoder.") and name != "decoder.7" else shape[0]
        w = torch.from_numpy(rng.randn(*shape).astype(np.float32) * 0.1)
        if sn:
            sd[f"{name}.weight_orig"] = w
            sd[f"{name}.weight_u"] = torch.from_numpy(rng.randn(out).astype(np.float32))
            sd[f"{name}.weight_v"] = torch.from_numpy(rng.randn(w.numel() // out).astype(np.float32))
        else:
            sd[f"{name}.weight"] = w
        if bias:
            sd[f"{name}.bias"] = torch.zeros(out)
    torch.save({"iteration": 1, "generator": sd}, os.path.join(folder, "EdgeModel_gen.pth"))


def test_generator_file_depth_width_and_missing_layers(tmp_path):
    """A generator file's residual-block count and width come from the file; a file lacking a layer
    is refused naming the file and the layer (not a Flax scope error at the first inpainting)."""
    from inpaintjax.convert.edgeconnect import from_torch
    from inpaintjax.inference import Inpainter
    _tiny_edge_generator_file(str(tmp_path), channels=2, blocks=1)
    image = np.full((32, 32, 3), 128, np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 8:20] = 255
    assert Inpainter.load(str(tmp_path)).inpaint(image, mask).shape == (32, 32, 3)
    _tiny_edge_generator_file(str(tmp_path), drop=("decoder.7",))
    with pytest.raises(ValueError, match=r"EdgeModel_gen\.pth: missing decoder\.7\.weight"):
        from_torch(str(tmp_path))
    _tiny_edge_generator_file(str(tmp_path), drop=("middle.0.conv_block.5",))
    with pytest.raises(ValueError, match=r"EdgeModel_gen\.pth: missing middle\.0\.conv_block\.5\.weight"):
        from_torch(str(tmp_path))

@pytest.fixture(scope="module")
def official_generators(tmp_path_factory, golden):
    folder = tmp_path_factory.mktemp("edgeconnect_generators")
    _write_pth(str(folder), golden, ["G1", "G2"])
    (folder / "config.yml").write_text("MODE: 1\nSIGMA: 2            # canny\nGAN_LOSS: nsgan\n")
    return str(folder)


def test_inpainter_pipeline_official_folder(official_generators):
    """Inpainter.load detects the folder; any size (padded to multiples of 4); known pixels exact;
    the predicted edges as an extra; the hole filled by G2 fed the raw G1 map of the known-pixel edges."""
    from inpaintjax.inference import Inpainter
    from inpaintjax.models.edgeconnect import EdgeGenerator, InpaintGenerator
    inp = Inpainter.load(official_generators)
    assert inp.family.name == "edgeconnect" and inp.family.mode == 3
    img = _step_image(60, 62)
    mask = np.zeros((60, 62), np.float32)
    mask[20:40, 22:42] = 1
    res = inp.inpaint(img, mask, return_extras=True)
    out, edges = res["output"], res["edges"]
    assert out.shape == (60, 62, 3) and edges.shape == (60, 62, 1)
    known = mask[..., None] == 0
    np.testing.assert_array_equal(np.where(known, out, 0), np.where(known, img, 0))
    assert 0 <= edges.min() and edges.max() <= 1
    # the same two networks by hand on the reflect-padded 60x64 input
    pad = np.pad(img, ((0, 0), (0, 2), (0, 0)), mode="reflect")
    mpad = np.pad(mask, ((0, 0), (0, 2)), mode="reflect")[..., None]
    ins = inp.family.inference_inputs({"image": pad[None], "mask": mpad[None]})
    assert set(np.nonzero(ins["edges"][0, :, :62, 0])[1]) == {30}
    g1_in = np.concatenate([ins["grey"] * (1 - mpad) + mpad, ins["edges"] * (1 - mpad), mpad[None]], -1)
    e = jax.jit(EdgeGenerator().apply)(inp.variables["edge"], g1_in)
    g2_in = np.concatenate([pad[None] * (1 - mpad) + mpad, np.asarray(e)], -1)
    fill = np.asarray(jax.jit(InpaintGenerator().apply)(inp.variables["inpaint"], g2_in))[0, :, :62]
    np.testing.assert_allclose(out[20:40, 22:42], fill[20:40, 22:42], atol=1e-5)
    np.testing.assert_allclose(edges, np.asarray(e)[0, :, :62], atol=1e-5)
    # settings of the loaded folder: another Canny sigma (config.yml's SIGMA is 2) applies to the
    # inference inputs; a mode that drops a network is refused, naming what the weights hold
    assert inp.family.edge_sigma == 2.0
    soft = Inpainter.load(official_generators, settings={"model.edge_sigma": 4.0})
    assert soft.family.edge_sigma == 4.0 and soft.variables is not None
    from skimage import data
    photo = {"image": (data.astronaut()[None, 100:164, 200:264] / 255.0).astype(np.float32),
             "mask": np.zeros((1, 64, 64, 1), np.float32)}
    assert not np.array_equal(soft.family.inference_inputs(photo)["edges"],
                              inp.family.inference_inputs(photo)["edges"])
    with pytest.raises(ValueError, match=r"model.mode=1: changes the network of .*\(its variables would be "
                                         r"without \['inpaint'\]"):
        Inpainter.load(official_generators, settings=["model.mode=1"])


def test_composite_edges_keep_the_known_edges_for_the_inpainting_generator():
    """model.test_composite_edges=True: G2 reads G1's map inside the hole and the known pixels'
    Canny edges outside it (the original's test() option); False: G1's raw map everywhere."""
    from configs.edgeconnect import get_config
    from inpaintjax.families.edgeconnect import EdgeConnect
    outputs, nets = {}, {}
    for composite in (False, True):
        fam = EdgeConnect(get_config(f"test,model.mode=3,model.test_composite_edges={composite}"))
        hole = np.zeros((1, 60, 64, 1), np.float32)
        hole[:, 20:40, 36:56] = 1                    # away from the step's edge at column 30
        inputs = {k: jnp.asarray(v) for k, v in fam.inference_inputs(
            {"image": _step_image(60, 64)[None], "mask": hole}).items()}
        if not nets:  # the option changes no network: one initial state and one jitted program
            # per network serve both settings
            nets = {"state": jax.jit(fam.init_state)(jax.random.PRNGKey(0), _batch(fam, n=1)),
                    "edge": jax.jit(fam.edge_generator.apply),
                    "inpaint": jax.jit(fam.inpaint_generator.apply)}
        variables = fam.inference_variables(nets["state"])
        outputs[composite] = np.asarray(jax.jit(fam.inpaint)(variables, inputs)["output"])
        image, mask, grey, edges = (inputs[k] for k in ("image", "mask", "grey", "edges"))
        e = nets["edge"](
            variables["edge"], jnp.concatenate([grey * (1 - mask) + mask, edges * (1 - mask), mask], -1))
        e_in = e * mask + edges * (1 - mask) if composite else e
        fill = nets["inpaint"](
            variables["inpaint"], jnp.concatenate([image * (1 - mask) + mask, e_in], -1))
        np.testing.assert_allclose(outputs[composite], np.where(mask > 0.5, fill, image), atol=1e-5)
        assert float(jnp.abs(edges * (1 - mask)).sum()) > 0 and float(jnp.abs(e - edges).max()) > 0.1
    assert np.abs(outputs[True] - outputs[False]).max() > 1e-4


def test_mode1_evaluation_metrics_are_edge_precision_recall():
    from configs.edgeconnect import get_config
    from inpaintjax.families.edgeconnect import EdgeConnect
    fam = EdgeConnect(get_config("test,model.mode=1"))
    truth = np.zeros((1, 8, 8, 1), np.float32)
    truth[0, 2, 1:5] = 1
    pred = np.zeros((1, 8, 8, 1), np.float32)
    pred[0, 2, 1:3] = 0.8
    pred[0, 6, 6] = 0.9            # outside the hole: not scored
    mask = np.zeros((1, 8, 8, 1), np.float32)
    mask[0, :4] = 1
    m = fam.evaluation_metrics({"mask": mask, "edges_truth": truth}, {"edges": pred})
    assert set(m) == {"edge_precision", "edge_recall"}
    np.testing.assert_allclose(np.asarray(m["edge_precision"]), [1.0])
    np.testing.assert_allclose(np.asarray(m["edge_recall"]), [0.5])
    with pytest.raises(ValueError, match="edges_truth"):
        fam.evaluation_metrics({"mask": mask}, {"edges": pred})


def test_missing_vgg_weights_error(tmp_path):
    from configs.edgeconnect import get_config
    from inpaintjax.families.base import FrozenWeightsError
    from inpaintjax.families.edgeconnect import EdgeConnect
    with pytest.raises(FrozenWeightsError, match="vgg19"):
        EdgeConnect(get_config(f"mode2,loss.vgg_weights={tmp_path}/missing.pth")).load_frozen()
    assert EdgeConnect(get_config("mode1")).load_frozen() == {}
    with pytest.raises(ValueError, match="mode"):
        EdgeConnect(get_config("test,model.mode=5"))


@MODES_GROUP
def test_generator_loss_uses_the_discriminator_before_its_update(tiny_vgg19):
    """Step 1 of mode 1 re-derived by hand: G1 (training forward), D1 on real then on fake (two
    power iterations), then the generator's adversarial term through D1's *initial* parameters
    with the vectors after those two calls; D1's updated parameters would give another value."""
    from inpaintjax import losses
    fam, batch, states, history = _train(1, tiny_vgg19, 8)
    s0, s1 = states[0], states[1]
    grey, edges, mask = batch["grey"], batch["edges"], batch["mask"]
    x = jnp.concatenate([grey * (1 - mask) + mask, edges * (1 - mask), mask], -1)
    # each network jitted once (one program each, not op by op), called in training mode
    g_train = jax.jit(lambda variables, x: fam.edge_generator.apply(
        variables, x, train=True, mutable=["batch_stats"]))
    d_train = jax.jit(lambda variables, x: fam.edge_discriminator.apply(
        variables, x, train=True, mutable=["batch_stats"]))
    e_out, _ = g_train(s0.edge["generator"], x)
    v = s0.edge["discriminator"]
    for inp in (jnp.concatenate([grey, edges], -1), jnp.concatenate([grey, e_out], -1)):
        _, upd = d_train(v, inp)
        v = {**v, "batch_stats": upd["batch_stats"]}

    def g_adv(params):
        (out, _), _ = d_train({**v, "params": params}, jnp.concatenate([grey, e_out], -1))
        return float(losses.adversarial(out, True, False))

    before, after = g_adv(s0.edge["discriminator"]["params"]), g_adv(s1.edge["discriminator"]["params"])
    tol = 1e-5
    np.testing.assert_allclose(history[0]["edge/g_adv"], before, rtol=tol)
    # and not the updated D1's: its value lies well outside the tolerance of the match above
    assert abs(after - before) > 3 * tol * abs(before), (before, after)


@pytest.mark.slow
@pytest.mark.long
def test_mode3_run_starts_from_a_mode1_run_and_evaluates(tmp_path, tiny_vgg19, capsys):
    """train.py's loop: a 2-step mode-1 run, then a 2-step mode-3 run with init_from whose frozen
    edge model is the mode-1 result (init_from_paths 'edge,edge.generator.params=ema.edge': the
    generator's weights renamed from the EMA); mode-1 evaluation writes edge precision / recall
    tables."""
    from configs.edgeconnect import get_config
    from inpaintjax.families.edgeconnect import EdgeConnect
    from inpaintjax.training import train
    from inpaintjax.training.evaluate import evaluate
    c1 = get_config("test,model.mode=1,num_steps=2,image_every=0,ema_decay=0.5")
    first = train(c1, str(tmp_path / "ec1"))["state"]
    # an EMA of decay 0.5 keeps 0.5 ** 2 = 25% of the initial weights after 2 steps: the run says so
    # and names the largest decay that leaves at most 5% (0.05 ** (1 / 2) = 0.2236 -> 0.223)
    assert ("warning: ema_decay 0.5 over 2 steps" in (out := capsys.readouterr().out)
            and "hold 25% of the initial weights" in out and "ema_decay to 0.223 or less" in out), out
    c3 = get_config(f"test,model.mode=3,num_steps=2,image_every=0,loss.vgg_weights={tiny_vgg19}")
    c3.init_from = str(tmp_path / "ec1")
    # the documented recipe: the edge model, with the generator's weights from its EMA
    c3.init_from_paths = "edge,edge.generator.params=ema.edge"
    third = train(c3, str(tmp_path / "ec3"))["state"]
    equal = lambda a, b: jax.tree.map(  # noqa: E731
        lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)
    equal(third.edge["discriminator"], first.edge["discriminator"])
    equal(third.edge["generator"]["batch_stats"], first.edge["generator"]["batch_stats"])
    equal(third.edge["generator"]["params"], first.ema["edge"])
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(
        jax.tree.leaves(first.ema["edge"]), jax.tree.leaves(first.edge["generator"]["params"]), strict=True))
    fam = EdgeConnect(c1)
    summary = evaluate(c1, fam, fam.inference_variables(first), str(tmp_path / "eval1"), progress=False)
    assert set(summary["all"]) >= {"edge_precision", "edge_recall"}
    assert 0.0 <= summary["all"]["edge_precision"] <= 1.0
    with open(tmp_path / "eval1" / "eval" / "metrics.md") as f:
        assert "edge_recall" in f.read()


@MODES_GROUP
def test_mode4_inpainting_loss_reaches_the_edge_generator(tiny_vgg19):
    """From the same initial state and batch, step 1 of mode 4 updates D1 exactly as mode 1 does
    (same edge-model losses) but G1 differently: G2's loss flows back through the edge map."""
    _, _, states1, _ = _train(1, tiny_vgg19, 8)
    _, _, states4, _ = _train(4, tiny_vgg19, 8)
    for a, b in zip(jax.tree.leaves(states1[0].edge), jax.tree.leaves(states4[0].edge), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    d1, d4 = (s[1].edge["discriminator"]["params"] for s in (states1, states4))
    for a, b in zip(jax.tree.leaves(d1), jax.tree.leaves(d4), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-7)
    g1, g4 = (s[1].edge["generator"]["params"] for s in (states1, states4))
    differ = sum(int(np.sum(np.asarray(a) != np.asarray(b)))
                 for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g4), strict=True))
    assert differ > 1000, differ
