"""GLCIC (Iizuka et al. 2017): the networks, the Torch7 reader and converters, inpaint.lua's pre-
and post-processing, and the family's three training phases.

Truth: the parameter counts computed from the paper's and the release's layer tables (6,072,131;
45,063,681), golden outputs of an independent PyTorch build of the released layer table
(tests/fixtures/glcic_make_golden.py), the `torchfile` package reading the same .t7 files
(written by tests/fixtures/torch7_writer.py in the release's layout), hand-worked Torch
`image.scale` values and inpaint.lua sizes, a re-derivation of `image.scale` as resampling
matrices, and OpenCV's own `inpaint` and `seamlessClone` (and its failure on thin holes).
"""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaintjax.convert import glcic as convert
from inpaintjax.convert import torch7
from inpaintjax.models.glcic import LAYERS, CompletionNetwork, GlobalLocalDiscriminator

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURES = os.path.join(HERE, "fixtures")


def _module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


recipe = _module("glcic_weights", os.path.join(FIXTURES, "glcic_weights.py"))
t7w = _module("torch7_writer", os.path.join(FIXTURES, "torch7_writer.py"))
configs = _module("glcic_configs", os.path.join(ROOT, "configs", "glcic.py"))


def n_params(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


# -- networks --------------------------------------------------------------------------------------
def test_parameter_counts():
    c = jax.eval_shape(lambda: CompletionNetwork().init(jax.random.key(0), jnp.zeros((1, 256, 256, 4))))
    assert n_params(c["params"]) == 6_072_131
    assert n_params(c["batch_stats"]) == 5_952
    assert sorted(c["params"]) == sorted([f"conv{i}" for i in range(1, 18)] + [f"bn{i}" for i in range(1, 17)])
    d = jax.eval_shape(lambda: GlobalLocalDiscriminator().init(
        jax.random.key(0), jnp.zeros((1, 256, 256, 3)), jnp.zeros((1, 128, 128, 3))))
    assert n_params(d["params"]) == 45_063_681
    assert n_params(d["params"]["global_branch"]) == 25_808_384
    assert n_params(d["params"]["local_branch"]) == 19_253_248
    assert d["params"]["global_branch"]["fc"]["kernel"].shape == (8192, 1024)
    assert d["params"]["local_branch"]["fc"]["kernel"].shape == (8192, 1024)


def test_transposed_convolution_initialisation_is_torch7s():
    # torch/nn SpatialFullConvolution.lua (0614529), reset(): uniform in +-1/sqrt(kW * kH *
    # nInputPlane), the input planes (PyTorch's ConvTranspose2d takes the output channels):
    # 32 -> 16 channels as conv13 at width 8, bound 1/sqrt(512), not 1/sqrt(256)
    from inpaintjax.models.glcic import TorchFullConv
    params = TorchFullConv(16).init(jax.random.key(0), jnp.zeros((1, 4, 4, 32)))["params"]
    bound = 1 / np.sqrt(32 * 4 * 4)
    for name, n in (("kernel", 4 * 4 * 32 * 16), ("bias", 16)):
        w = np.asarray(params[name])
        assert w.size == n and np.abs(w).max() <= bound
    assert np.abs(np.asarray(params["kernel"])).max() > 0.99 * bound  # 8,192 draws reach it


@pytest.fixture(scope="module")
def golden():
    g = dict(np.load(os.path.join(FIXTURES, "glcic_golden.npz")))
    sd = recipe.state_dict(int(g["seed"]))
    # the rebuilt weights are the ones the PyTorch build ran with
    np.testing.assert_allclose(recipe.checksums(sd), g["checksums"], rtol=1e-12)
    g["state_dict"] = sd
    return g


def test_completion_network_matches_pytorch_golden(golden, tmp_path):
    """The PyTorch conversion's file format ({'model': state_dict, 'mean'}) through
    `Inpainter.load`: the network's outputs equal the PyTorch build's."""
    import torch
    from inpaintjax import Inpainter
    pth = tmp_path / "completionnet.pth"
    torch.save({"model": {k: torch.from_numpy(v) for k, v in golden["state_dict"].items()},
                "mean": [float(v) for v in golden["mean"]]}, pth)
    assert convert.detect_format(str(pth)) == "torch"
    inp = Inpainter.load(str(pth))
    config = inp.family.config
    assert inp.family.name == "glcic" and config.model.width == 64 and config.model.bn_eps == 1e-5
    assert tuple(config.model.mean) == pytest.approx(tuple(golden["mean"]))
    images, holes = golden["images_u8"], golden["masks"]
    out = inp.inpaint(images, holes, return_extras=True)
    np.testing.assert_allclose(out["raw"], golden["outputs"], atol=1e-4)
    known = holes < 0.5
    np.testing.assert_array_equal(out["output"][known], images[known])
    expect = np.round(golden["outputs"] * 255)[~known]
    assert np.abs(out["output"][~known].astype(np.float32) - expect).max() <= 1
    # the outputs carry signal: they differ between the two inputs
    assert np.abs(golden["outputs"][0] - golden["outputs"][1]).mean() > 0.05


@pytest.mark.slow
def test_full_size_forward_256_matches_the_pytorch_build(golden, tmp_path):
    """The released configuration (width 64, 6,072,131 parameters) at 256x256 on a photograph,
    through `Inpainter.load` of the PyTorch file format: the network's output equals the PyTorch
    build's (the golden script's layer table, run here on the same input), the known pixels are the
    input's, and the hole's contents do not matter (inpaint.lua sets them to 0)."""
    import torch
    from skimage import data as skdata
    from inpaintjax import Inpainter
    ref = _module("glcic_make_golden", os.path.join(FIXTURES, "glcic_make_golden.py"))
    net = ref.build()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in golden["state_dict"].items()}, strict=False)
    net.eval()
    image = skdata.astronaut()[64:320, 128:384].copy()
    hole = np.zeros((256, 256), np.float32)
    hole[72:184, 96:200] = 1
    with torch.no_grad():
        want = net(ref.lua_input(image.astype(np.float32) / 255.0, hole))[0].numpy().transpose(1, 2, 0)
    pth = tmp_path / "completionnet.pth"
    torch.save({"model": {k: torch.from_numpy(v) for k, v in golden["state_dict"].items()},
                "mean": [float(v) for v in golden["mean"]]}, pth)
    inp = Inpainter.load(str(pth))
    assert n_params(inp.variables["params"]) == 6_072_131
    noisy = image.copy()
    noisy[hole > 0] = np.random.default_rng(0).integers(0, 256, (int(hole.sum()), 3), dtype=np.uint8)
    out = inp.inpaint(np.stack([image, noisy]), hole, return_extras=True)
    np.testing.assert_allclose(out["raw"][0], want, atol=1e-4)
    np.testing.assert_allclose(out["raw"][1], out["raw"][0], atol=1e-6)  # (rows differ in rounding)
    known = hole < 0.5
    np.testing.assert_array_equal(out["output"][0][known], image[known])
    assert want.std() > 0.1  # the weights carry signal at full size too


# -- Torch7 reader and converters -------------------------------------------------------------------
WIDTH = 4
T7_LAYERS = [(kind, k, s, d) for kind, k, s, d, _ in LAYERS]


def _small_state_dict(seed=5):
    """A width-4 completion network's state dict (PyTorch layouts), random."""
    rng = np.random.default_rng(seed)
    sd, cin = {}, 4
    for i, (kind, k, s, d, mult) in enumerate(LAYERS, start=1):
        cout = 3 if i == len(LAYERS) else int(WIDTH * mult)
        j = 3 * (i - 1)
        shape = (cin, cout, k, k) if kind == "t" else (cout, cin, k, k)
        sd[f"{j}.weight"] = rng.standard_normal(shape).astype(np.float32)
        sd[f"{j}.bias"] = rng.standard_normal(cout).astype(np.float32)
        if i < len(LAYERS):
            sd[f"{j + 1}.weight"] = rng.uniform(0.5, 1.5, cout).astype(np.float32)
            sd[f"{j + 1}.bias"] = rng.standard_normal(cout).astype(np.float32)
            sd[f"{j + 1}.running_mean"] = rng.standard_normal(cout).astype(np.float32)
            sd[f"{j + 1}.running_var"] = rng.uniform(0.5, 2.0, cout).astype(np.float32)
        cin = cout
    return sd


MEAN = (0.4561, 0.4473, 0.4156)


@pytest.fixture(scope="module")
def t7_file(tmp_path_factory):
    sd = _small_state_dict()
    path = str(tmp_path_factory.mktemp("glcic") / "completionnet_small.t7")
    # modules 0..23 as float tensors, 24.. as CUDA ones; bn3 in nn's old running_std field
    t7w.save(path, t7w.completionnet(sd, T7_LAYERS, MEAN, eps=1e-3, cuda_from=24, running_std_layer=3))
    return path, sd


def test_torch7_reader_agrees_with_torchfile(t7_file):
    import torchfile
    path, _ = t7_file
    ours, theirs = torch7.load(path), torchfile.load(path)
    np.testing.assert_array_equal(ours["mean"], theirs[b"mean"])
    mods, their_mods = ours["model"].modules, theirs[b"model"][b"modules"]
    assert ours["model"].typename == theirs[b"model"].torch_typename().decode() == "nn.Sequential"
    assert len(mods) == len(their_mods) == 50
    kinds = set()
    for j, m in mods.items():
        tm = their_mods[j - 1]
        assert m.typename == tm.torch_typename().decode()
        kinds.add(m.typename)
        for key, value in m.fields.items():
            other = tm[key.encode()]
            if isinstance(value, np.ndarray):
                assert value.dtype == np.asarray(other).dtype
                np.testing.assert_array_equal(value, other)
            else:
                assert value == other, (j, key)
    assert {"nn.SpatialConvolution", "nn.SpatialDilatedConvolution", "nn.SpatialFullConvolution",
            "nn.SpatialBatchNormalization", "nn.ReLU", "nn.Sigmoid"} <= kinds
    assert mods[13].typename == "nn.SpatialDilatedConvolution" and mods[13].dilationW == 1


def test_t7_and_state_dict_give_the_same_variables(t7_file):
    path, sd = t7_file
    assert convert.detect_format(path) == "t7"
    w = convert.from_t7(path)
    ref = convert.from_state_dict(sd, MEAN)
    assert (w.width, w.bn_eps, w.mean) == (WIDTH, 1e-3, pytest.approx(MEAN))
    flat, flat_ref = jax.tree_util.tree_leaves_with_path(w.variables), jax.tree_util.tree_leaves(ref.variables)
    for (p, a), b in zip(flat, flat_ref):
        # bn3's variance came back from 1 / sqrt(var + eps)
        tol = 1e-5 if "bn3" in jax.tree_util.keystr(p) else 0
        np.testing.assert_allclose(a, b, rtol=tol, err_msg=jax.tree_util.keystr(p))
    # a transposed convolution: Torch (in, out, k, k) -> (k, k, in, out)
    np.testing.assert_array_equal(w.variables["params"]["conv13"]["kernel"][1, 2],
                                  sd["36.weight"][:, :, 1, 2])
    np.testing.assert_array_equal(w.variables["params"]["conv1"]["kernel"][3, 0], sd["0.weight"][:, :, 3, 0].T)


def test_t7_errors_name_the_file(tmp_path, t7_file):
    path, sd = t7_file
    bad = tmp_path / "cut.t7"
    bad.write_bytes(open(path, "rb").read()[:5000])
    with pytest.raises(torch7.Torch7FormatError, match="cut.t7.*truncated"):
        convert.from_t7(str(bad))
    wrong = dict(sd)
    layers = list(T7_LAYERS)
    layers[6] = ("c", 3, 1, 3)  # conv7 with dilation 3 instead of 2
    t7w.save(str(tmp_path / "wrong.t7"), t7w.completionnet(wrong, layers, MEAN))
    with pytest.raises(convert.GLCICWeightsError, match="wrong.t7 module 18 .*dilationW=3 .expected 2"):
        convert.from_t7(str(tmp_path / "wrong.t7"))
    with pytest.raises(convert.GLCICWeightsError, match="missing"):
        convert.from_state_dict({k: v for k, v in sd.items() if k != "45.bias"})


def test_vector_sizes_are_checked_naming_the_file_and_layer(tmp_path):
    """A bias or BatchNorm vector of the wrong size is the converter's own error (the file, the
    layer, both sizes), not NumPy's reshape error. conv2 has 2c = 8 channels at width 4."""
    import torch
    for key, what in (("3.bias", "conv2: bias"), ("4.running_var", "bn2: running_var"),
                      ("4.weight", "bn2: weight"), ("48.bias", "conv17: bias")):
        sd = _small_state_dict()
        want = sd[key].size
        sd[key] = np.zeros(want + 1, np.float32)
        path = tmp_path / f"bad_{key.replace('.', '_')}.pth"
        torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, path)
        with pytest.raises(convert.GLCICWeightsError,
                           match=rf"bad_{key.replace('.', '_')}\.pth {what} has {want + 1} values, expected {want}"):
            convert.load(str(path))


def test_a_file_without_mean_logs_the_mean_it_gets(tmp_path, caplog):
    """A bare state dict records no mean pixel: loading it says that the Places2 model's
    (0.4560, 0.4472, 0.4155) is used and how to give another; a file with its mean says nothing."""
    import logging

    import torch
    from inpaintjax import Inpainter
    tensors = {k: torch.from_numpy(v) for k, v in _small_state_dict().items()}
    bare, with_mean = tmp_path / "bare.pth", tmp_path / "with_mean.pth"
    torch.save(tensors, bare)
    torch.save({"model": tensors, "mean": list(MEAN)}, with_mean)
    logger = "inpaintjax.convert.glcic"
    for load in (convert.load, Inpainter.load):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=logger):
            load(str(bare))
        assert str(bare) in caplog.text and "Places2" in caplog.text, caplog.text
        assert "(0.456, 0.4472, 0.4155)" in caplog.text and "'mean'" in caplog.text
        assert "config.model.mean" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=logger):
        assert convert.load(str(with_mean)).mean == pytest.approx(MEAN)
    assert not caplog.text


def test_inpainter_loads_t7_files(t7_file):
    from inpaintjax import Inpainter
    path, _ = t7_file
    inp = Inpainter.load(path)
    assert inp.family.name == "glcic" and inp.family.config.model.width == WIDTH
    assert inp.family.config.model.bn_eps == 1e-3
    assert tuple(inp.family.config.model.mean) == pytest.approx(MEAN)


# -- inpaint.lua's pre- and post-processing ---------------------------------------------------------
def test_torch_image_scale_by_hand():
    from inpaintjax.families.glcic import lua_inputs, lua_size, torch_image_scale
    # up: ends aligned, scale (3-1)/(5-1) = 0.5
    up = torch_image_scale(np.array([[0.0, 1.0, 2.0]], np.float32), 1, 5)
    np.testing.assert_allclose(up, [[0, 0.5, 1, 1.5, 2]], atol=1e-7)
    # down 6 -> 4: each output averages 1.5 input samples, split samples weighted by the fraction
    down = torch_image_scale(np.array([[1, 2, 3, 4, 5, 6]], np.float32), 1, 4)
    np.testing.assert_allclose(down, [[4 / 3, 8 / 3, 13 / 3, 17 / 3]], rtol=1e-6)
    # rows first, then columns: a 2x2 -> 3x3 up-scale is bilinear with aligned corners
    sq = torch_image_scale(np.array([[0, 2], [4, 6]], np.float32)[..., None], 3, 3)[..., 0]
    np.testing.assert_allclose(sq, [[0, 1, 2], [2, 3, 4], [4, 5, 6]], atol=1e-6)
    # inpaint.lua's sizes: 1000x750 (HxW) at maxdim 600 -> 600x450 -> multiples of 4: 600x452
    assert lua_size(1000, 750, 600) == (600, 452)
    assert lua_size(30, 41, 600) == (32, 40) and lua_size(64, 64, 600) == (64, 64)
    img = np.random.default_rng(0).uniform(0, 1, (30, 41, 3)).astype(np.float32)
    m = np.zeros((30, 41), np.float32)
    m[10:20, 10:20] = 1
    x, mm = lua_inputs(img, m)
    assert x.shape == (32, 40, 3) and mm.shape == (32, 40, 1) and set(np.unique(mm)) == {0.0, 1.0}


def _scale_matrix(src, dst):
    """Torch image's `Main_scaleLinear_rowcol` as a [dst, src] matrix in float64, re-derived from
    its rules: equal lengths copy; up-scaling interpolates linearly at d * (src-1)/(dst-1) with the
    last sample copied; down-scaling averages output cell d's span [d s, (d+1) s) of the input
    (s = src/dst), each input sample weighted by its overlap with the span."""
    a = np.zeros((dst, src))
    if dst == src:
        return np.eye(src)
    if dst > src:
        if src == 1:
            a[:, 0] = 1
            return a
        step = (src - 1) / (dst - 1)
        for d in range(dst - 1):
            i, f = int(d * step), d * step - int(d * step)
            a[d, i] += 1 - f
            a[d, i + 1] += f
        a[-1, -1] = 1
        return a
    s = src / dst
    for d in range(dst):
        lo, hi = d * s, (d + 1) * s
        for i in range(int(lo), min(int(np.ceil(hi)), src)):
            a[d, i] = min(hi, i + 1) - max(lo, i)
        a[d] /= a[d].sum()
    return a


def _scale_ref(x, h, w):
    """image.scale(x, w, h) by the matrices above, x [H, W, C] -> [h, w, C] float64."""
    x = np.asarray(x, np.float64)
    rows = np.einsum("xj,ijc->ixc", _scale_matrix(x.shape[1], w), x, optimize=True)  # BLAS
    return np.einsum("yi,ixc->yxc", _scale_matrix(x.shape[0], h), rows, optimize=True)


def _lua_route_ref(image, hole, first, final):
    """inpaint.lua's preparation re-derived: scale image and mask to `first` (None: not above
    maxdim), then to `final`; the mask thresholded at 0.2. -> (image, mask [h, w, 1], the mask
    before thresholding)."""
    img, m = np.asarray(image, np.float64), np.asarray(hole, np.float64)[..., None]
    for size in ([first] if first else []) + [final]:
        img, m = _scale_ref(img, *size), _scale_ref(m, *size)
    return img, (m >= 0.2).astype(np.float32), m


def test_lua_sizes_by_hand():
    from inpaintjax.families.glcic import lua_scaled_size, lua_size
    # 901x1203 (HxW) at maxdim 600: * 600/1203 -> 449.38 x 600 -> 449 x 600 (Torch truncates);
    # then round(449/4) = round(112.25) = 112 -> 448, 600/4 = 150 -> 600
    assert lua_scaled_size(901, 1203, 600) == (449, 600) and lua_size(901, 1203, 600) == (448, 600)
    # 301x210 at maxdim 200: 200 x 139.53 -> 200 x 139; round(34.75) * 4 = 140
    assert lua_scaled_size(301, 210, 200) == (200, 139) and lua_size(301, 210, 200) == (200, 140)
    # not above maxdim: only the rounding, halves away from zero: 75.25 -> 75, 52.5 -> 53
    assert lua_scaled_size(301, 210, 600) == (301, 210) and lua_size(301, 210, 600) == (300, 212)
    assert lua_size(301, 210, 0) == (300, 212)


@pytest.mark.parametrize("shape,maxdim,first,final", [
    ((901, 1203), 600, (449, 600), (448, 600)),
    ((301, 210), 200, (200, 139), (200, 140)),
    ((301, 210), 600, None, (300, 212)),
])
def test_inpainter_prepares_images_as_inpaint_lua(shape, maxdim, first, final):
    """Through `Inpainter`: the network sees the image at inpaint.lua's size, reached from the
    image's own size (no padding first) in inpaint.lua's two resizes; the fill comes back at the
    image's size; known pixels are the input's. The network is a recorder returning 1 - image."""
    from inpaintjax import Inpainter
    from inpaintjax.families import get
    config = get("glcic").default_config()
    config.inference.maxdim = maxdim
    inp = Inpainter(get("glcic")(config), {})
    seen = []

    def network(variables, inputs):
        seen.append({k: np.asarray(v) for k, v in inputs.items()})
        raw = 1.0 - np.asarray(inputs["image"])
        return {"output": np.where(inputs["mask"] > 0.5, raw, inputs["image"]), "raw": raw}

    inp._fn = network
    h, w = shape
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    hole = np.zeros((h, w), np.float32)
    hole[h // 3 + 1:h // 3 + h // 4 + 1, w // 5 + 1:w // 5 + w // 3 + 2] = 1
    out = inp.inpaint(image, hole, return_extras=True)
    img_ref, mask_ref, soft = _lua_route_ref(image / 255.0, hole, first, final)
    assert np.abs(soft - 0.2).min() > 1e-4          # no cell at the threshold: the mask is exact
    (got,) = seen
    assert got["image"].shape == (1,) + final + (3,) and got["mask"].shape == (1,) + final + (1,)
    # 1e-4: Torch (and the port) place the samples in float32, so positions near index 1,000
    # carry ~1e-5 of rounding (5e-5 at most in values, measured); one resize instead of two
    # differs by up to 0.29, a padded image by a whole row
    np.testing.assert_allclose(got["image"][0], img_ref, atol=1e-4)
    np.testing.assert_array_equal(got["mask"][0], mask_ref)
    np.testing.assert_allclose(out["raw"], _scale_ref(1.0 - got["image"][0], h, w), atol=1e-4)
    known = hole < 0.5
    np.testing.assert_array_equal(out["output"][known], image[known])


def test_postprocess_is_opencv_telea_then_seamless_clone():
    import cv2
    from skimage import data
    from inpaintjax.families.glcic import poisson_postprocess
    img = data.astronaut()[::8, ::8].astype(np.float32) / 255.0   # 64x64
    hole = np.zeros((64, 64), np.float32)
    hole[10:30, 8:24] = 1
    out = img.copy()
    out[hole > 0] = 0.3                                            # a flat "network" fill
    got = poisson_postprocess(out, hole)
    bgr = cv2.cvtColor(np.round(out * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    m8 = (hole * 255).astype(np.uint8)
    dst = cv2.inpaint(bgr, m8, 1, cv2.INPAINT_TELEA)
    # inpaint.lua's point: floor((1-based min + max) / 2) - 1 = (0-based min + max) // 2
    ref = cv2.seamlessClone(bgr, dst, m8, ((8 + 23) // 2, (10 + 29) // 2), cv2.NORMAL_CLONE)
    np.testing.assert_array_equal(np.round(got * 255).astype(np.uint8), cv2.cvtColor(ref, cv2.COLOR_BGR2RGB))
    assert np.abs(got - out)[hole > 0].mean() > 0.01   # the blend changed the flat fill


@pytest.mark.parametrize("box,thin", [((20, 21, 30, 31), True), ((20, 21, 30, 35), True),
                                      ((20, 22, 30, 32), True), ((20, 22, 30, 40), True),
                                      ((30, 40, 20, 21), True), ((0, 3, 10, 20), True),
                                      ((10, 40, 62, 64), True), ((20, 23, 30, 33), False),
                                      ("two dots", False)])
def test_postprocess_of_thin_holes(box, thin, caplog):
    """OpenCV's seamlessClone fails (cv2.error) when the hole's bounding box is 1 or 2 px thin,
    counted without the image's outermost ring (rows 0..2 at the top edge leave 2; columns 62..63
    at the right edge leave 1); inpaint.lua would stop there. The post-processing then keeps the
    Telea fill without the Poisson blend and logs why. A 3x3 box runs the clone, and so do two
    1-px dots far apart (their bounding box is 21x21 px): then the result is OpenCV's."""
    import logging

    import cv2
    from inpaintjax.families.glcic import poisson_postprocess
    rng = np.random.default_rng(4)
    out = rng.uniform(0, 1, (64, 64, 3)).astype(np.float32)
    hole = np.zeros((64, 64), np.float32)
    if box == "two dots":
        r0, r1, c0, c1 = 20, 41, 30, 51
        hole[20, 30] = hole[40, 50] = 1
    else:
        r0, r1, c0, c1 = box
        hole[r0:r1, c0:c1] = 1
    bgr = cv2.cvtColor(np.round(out * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    m8 = (hole * 255).astype(np.uint8)
    telea = cv2.inpaint(bgr, m8, 1, cv2.INPAINT_TELEA)
    try:
        ref = cv2.seamlessClone(bgr, telea, m8, ((c0 + c1 - 1) // 2, (r0 + r1 - 1) // 2), cv2.NORMAL_CLONE)
        assert not thin
    except cv2.error:
        assert thin
        ref = telea
    with caplog.at_level(logging.WARNING, logger="inpaintjax.families.glcic"):
        got = poisson_postprocess(out, hole)
    if thin:
        assert f"bounding box is {r1 - r0}x{c1 - c0} px" in caplog.text and "Telea" in caplog.text
    else:
        assert not caplog.text
    np.testing.assert_array_equal(np.round(got * 255).astype(np.uint8), cv2.cvtColor(ref, cv2.COLOR_BGR2RGB))


# -- the family --------------------------------------------------------------------------------------
def _batch(fam, config, seed=0):
    """Smooth sine images with one glcic_box hole each, the family's fields as the pipeline makes them."""
    from inpaintjax import masks as masks_lib
    from inpaintjax.data import fields
    rng = np.random.default_rng(seed)
    size, b = config.data.image_size, config.batch_size
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    f = rng.uniform(0.5, 2.0, (b, 1, 1, 3))
    images = (0.5 + 0.4 * np.sin(2 * np.pi * f * (yy + 0.5 * xx)[None, :, :, None])).astype(np.float32)
    holes = np.stack([masks_lib.make_mask(config.mask.generator, np.random.default_rng([seed, i]), size, size)
                      for i in range(b)])[..., None]
    out = fields.compute_batch(fam.batch_spec(), images, holes, [np.random.default_rng(i) for i in range(b)])
    return {k: jnp.asarray(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def start():
    """(config, batch, initial state) of the test variant, batch 8 (one sample per device)."""
    from inpaintjax.families import get
    config = configs.get_config("test,batch_size=8")
    fam = get("glcic")(config)
    batch = _batch(fam, config)
    return config, batch, jax.jit(fam.init_state)(jax.random.key(0), batch)


def _run(phase, start, steps):
    from inpaintjax.families import get
    config, batch, state = start
    fam = get("glcic")(configs.get_config(f"test,batch_size=8,phase={phase}"))
    step = jax.jit(fam.train_step)
    history, first = [], None
    for i in range(steps):
        state, metrics = step(state, batch, jax.random.key(i), {})
        history.append({k: float(v) for k, v in metrics.items()})
        first = state if first is None else first
    assert all(np.isfinite(v) for h in history for v in h.values())
    return state, history, first


def test_completion_phase_lowers_the_masked_mse(start):
    state0 = start[2]
    state, history, _ = _run("completion", start, 5)
    assert set(history[0]) == {"g/loss", "g/mse", "g/grad_norm", "g/lr"}
    mse = [h["g/mse"] for h in history]
    assert all(np.diff(mse) < 0) and mse[-1] < 0.9 * mse[0], mse
    # NumPy re-derivation of the first step's loss: mean over all elements of (mask * (C(x) - x))^2
    config, batch, _ = start
    from inpaintjax.families import get
    fam = get("glcic")(config)
    out, _ = fam._complete(state0.g_params, state0.g_stats, batch["image"], batch["mask"], train=True)
    diff = (np.asarray(out, np.float64) - np.asarray(batch["image"])) * np.asarray(batch["mask"])
    assert history[0]["g/mse"] == pytest.approx(float(np.mean(diff ** 2)), rel=1e-5)
    # the discriminator is untouched in this phase
    np.testing.assert_array_equal(state.d_params["fc"]["kernel"], state0.d_params["fc"]["kernel"])
    assert int(state.step) == 5


def test_discriminator_phase_lowers_its_loss_and_freezes_the_completion_network(start):
    state0 = start[2]
    state, history, _ = _run("discriminator", start, 4)
    assert set(history[0]) == {"d/loss", "d/real", "d/fake", "d/grad_norm", "d/lr"}
    loss = [h["d/loss"] for h in history]
    assert loss[-1] < 0.5 * loss[0], loss
    assert history[-1]["d/real"] > history[-1]["d/fake"]
    for a, b in zip(jax.tree.leaves((state.g_params, state.g_stats)),
                    jax.tree.leaves((state0.g_params, state0.g_stats))):
        np.testing.assert_array_equal(a, b)
    # the first step's loss re-derived with each row's local crop cut by hand around that row's
    # own hole (its bounding box from the mask, centred, clamped inside the image), real and
    # completed images through the discriminator in one pass, BCE with logits in NumPy
    config, batch, _ = start
    from inpaintjax.families import get
    fam = get("glcic")(config)
    image, mask = np.asarray(batch["image"]), np.asarray(batch["mask"])
    out, _ = fam._complete(state0.g_params, state0.g_stats, batch["image"], batch["mask"], train=True)
    fake = np.asarray(out) * mask + image * (1 - mask)
    size, (h, w) = config.model.local_size, image.shape[1:3]
    corners = []
    for hole in mask[..., 0] > 0.5:
        rows, cols = np.flatnonzero(hole.any(1)), np.flatnonzero(hole.any(0))
        corners.append((min(max(rows[0] + (rows[-1] - rows[0] + 1) // 2 - size // 2, 0), h - size),
                        min(max(cols[0] + (cols[-1] - cols[0] + 1) // 2 - size // 2, 0), w - size)))
    assert len(set(corners)) > 1  # the rows' crops differ, so a crop shared by the rows would show
    both = np.concatenate([image, fake])
    crops = np.stack([x[t:t + size, c:c + size] for x, (t, c) in zip(both, corners + corners)])
    logits, _ = jax.jit(lambda v, x, y: fam.disc.apply(v, x, y, train=True, mutable=["batch_stats"]))(
        {"params": state0.d_params, "batch_stats": state0.d_stats}, both, crops)
    z = np.asarray(logits, np.float64).ravel()
    b = len(image)
    want = 0.5 * (np.mean(np.logaddexp(0, -z[:b])) + np.mean(np.logaddexp(0, z[b:])))
    assert history[0]["d/loss"] == pytest.approx(want, rel=1e-5)


def test_joint_phase_and_eight_devices_equal_one(start):
    from inpaintjax.families import get
    config, batch, state0 = start
    state, history, s1 = _run("joint", start, 4)
    assert {"g/mse", "g/gan", "g/loss", "d/loss"} <= set(history[0])
    h = history[0]
    assert h["g/loss"] == pytest.approx(h["g/mse"] + 0.0004 * h["g/gan"], rel=1e-5)
    assert history[-1]["g/mse"] < history[0]["g/mse"] and history[-1]["d/loss"] < history[0]["d/loss"]

    # the first step again with the batch sharded over 8 devices (BatchNorm statistics are the
    # global batch's, so the step equals the one-device step above)
    if jax.device_count() < 8:
        pytest.fail("needs 8 devices: tests/conftest.py sets XLA_FLAGS=--xla_force_host_platform_device_count=8")
    from jax.sharding import NamedSharding, PartitionSpec as P
    fam = get("glcic")(configs.get_config("test,batch_size=8,phase=joint"))
    mesh = jax.make_mesh((8,), ("data",), devices=jax.devices()[:8],
                         axis_types=(jax.sharding.AxisType.Auto,))
    sharded = jax.device_put(batch, NamedSharding(mesh, P("data")))
    assert len(sharded["image"].sharding.device_set) == 8
    s8, m8 = jax.jit(fam.train_step)(jax.device_put(state0, NamedSharding(mesh, P())), sharded,
                                     jax.random.key(0), {})
    # the losses to 1e-4; the gradient norms, sums of squares over 17 BatchNorm layers' gradients
    # whose statistics are reduced in another order, to 1e-3 (differed by 1.4e-4). Per-device
    # statistics (a sharding mistake) would differ by far more.
    for k, v in history[0].items():
        assert float(m8[k]) == pytest.approx(v, rel=1e-3 if "grad_norm" in k else 1e-4, abs=1e-6), k

    def leaves(s):
        return [np.asarray(x) for x in jax.tree.leaves((s.g_params, s.d_params, s.g_stats, s.d_stats))]

    moved = max(np.abs(a - b).max() for a, b in zip(leaves(s1), leaves(state0)))
    diff = max(np.abs(a - b).max() for a, b in zip(leaves(s1), leaves(s8)))
    assert moved > 1e-4 and diff < 1e-3 * moved, (moved, diff)


def test_inpaint_keeps_known_pixels_and_scales_large_images_down(t7_file):
    from inpaintjax import Inpainter
    from inpaintjax.families import get
    path, _ = t7_file
    w = convert.from_t7(path)
    config = get("glcic").default_config()
    config.model.width, config.model.mean, config.model.bn_eps = w.width, w.mean, w.bn_eps
    config.inference.maxdim = 16
    fam = get("glcic")(config)
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (40, 28, 3), dtype=np.uint8)
    hole = np.zeros((40, 28), np.float32)
    hole[8:30, 6:20] = 1
    inp = Inpainter(fam, w.variables)
    out = inp.inpaint(image, hole, return_extras=True)
    known = hole < 0.5
    np.testing.assert_array_equal(out["output"][known], image[known])
    # inpaint.lua's route: 40x28 -> * 16/40 -> 16x11 -> multiples of 4: 16x12; the network runs
    # there, its output scaled back up to 40x28
    small, small_hole, soft = _lua_route_ref(image / 255.0, hole, (16, 11), (16, 12))
    assert np.abs(soft - 0.2).min() > 1e-3
    raw = inp._fn(w.variables, {"image": small[None].astype(np.float32), "mask": small_hole[None]})["raw"][0]
    np.testing.assert_allclose(out["raw"], _scale_ref(np.asarray(raw), 40, 28), atol=1e-4)


def test_postprocess_runs_at_the_network_size_before_scaling_back(t7_file):
    """inpaint.lua --postproc blends the composite at the network's size; the Inpainter then
    scales that back to the image (re-derived here: OpenCV's own calls at 16x12, Torch's bilinear
    rule by matrices) and keeps the known pixels; 'raw' stays the network's output. The settings
    (inpaint.lua's --maxdim and --postproc) are given when the weights are loaded; settings that
    would change the network are refused, naming the tensor."""
    import cv2
    from inpaintjax import Inpainter
    from inpaintjax.config import ConfigKeyError
    path, _ = t7_file
    w = convert.from_t7(path)
    inp = Inpainter.load(path, settings=["inference.maxdim=16", "inference.postprocess=true"])
    assert (inp.family.maxdim, inp.family.postprocess) == (16, True)
    assert (inp.family.config.model.width, inp.family.config.model.bn_eps) == (w.width, w.bn_eps)
    with pytest.raises(ValueError, match=rf"model.width={2 * w.width}: changes the network of "
                                         rf".*completionnet_small.t7 \(\['batch_stats'\]\['bn1'\]\['mean'\] would be "
                                         rf"float32\[{2 * w.width}\], the weights hold float32\[{w.width}\]"):
        Inpainter.load(path, settings={"model.width": 2 * w.width})
    with pytest.raises(ConfigKeyError, match="'inference.postproces'. Did you mean 'inference.postprocess'"):
        Inpainter.load(path, settings=["inference.postproces=true"])
    image = np.random.default_rng(1).integers(0, 256, (40, 28, 3), dtype=np.uint8)
    hole = np.zeros((40, 28), np.float32)
    hole[8:30, 6:20] = 1
    out = inp.inpaint(image, hole, return_extras=True)
    small, small_hole, _ = _lua_route_ref(image / 255.0, hole, (16, 11), (16, 12))
    raw = np.asarray(inp._fn(w.variables, {"image": small[None].astype(np.float32),
                                           "mask": small_hole[None]})["raw"][0])
    np.testing.assert_allclose(out["raw"], _scale_ref(raw, 40, 28), atol=1e-4)
    comp = np.where(small_hole > 0.5, raw, small)
    bgr = cv2.cvtColor(np.round(comp * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    m8 = (small_hole[..., 0] * 255).astype(np.uint8)
    rows, cols = np.flatnonzero(m8.any(1)), np.flatnonzero(m8.any(0))
    centre = ((cols[0] + cols[-1]) // 2, (rows[0] + rows[-1]) // 2)
    blended = cv2.seamlessClone(bgr, cv2.inpaint(bgr, m8, 1, cv2.INPAINT_TELEA), m8, centre, cv2.NORMAL_CLONE)
    post = cv2.cvtColor(blended, cv2.COLOR_BGR2RGB).astype(np.float64) / 255.0
    want = np.where(hole[..., None] > 0.5, _scale_ref(post, 40, 28), image / 255.0)
    assert np.abs(out["output"].astype(np.float64) - np.round(want * 255)).max() <= 1
    assert np.abs(_scale_ref(post, 40, 28) - _scale_ref(comp, 40, 28))[hole > 0.5].mean() > 0.005


def test_inpaint_pads_sides_that_are_not_multiples_of_4(t7_file):
    """`inpaint` itself (what the evaluation calls) takes any size: the network runs on the input
    mirrored at the bottom/right to multiples of 4 (numpy's 'reflect'), cropped back."""
    from inpaintjax.families import get
    path, _ = t7_file
    w = convert.from_t7(path)
    config = get("glcic").default_config()
    config.model.width, config.model.mean, config.model.bn_eps = w.width, w.mean, w.bn_eps
    fam = get("glcic")(config)
    rng = np.random.default_rng(2)
    image = rng.uniform(0, 1, (1, 30, 41, 3)).astype(np.float32)
    hole = np.zeros((1, 30, 41, 1), np.float32)
    hole[:, 10:29, 30:] = 1
    inpaint = jax.jit(fam.inpaint)  # one program per size, not the network op by op
    got = inpaint(w.variables, {"image": image, "mask": hole})
    pad = ((0, 0), (0, 2), (0, 3), (0, 0))
    ref = inpaint(w.variables, {"image": np.pad(image, pad, mode="reflect"),
                                "mask": np.pad(hole, pad, mode="reflect")})
    assert got["raw"].shape == (1, 30, 41, 3)
    np.testing.assert_allclose(got["raw"], ref["raw"][:, :30, :41], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(got["output"])[hole[..., 0] < 0.5], image[hole[..., 0] < 0.5])


def test_config_variants_chain_the_three_phases():
    c1, c2, c3 = (configs.get_config(v) for v in ("places2_completion", "places2_discriminator", "places2"))
    assert (c1.phase, c1.num_steps) == ("completion", 90_000)
    assert (c2.phase, c2.num_steps) == ("discriminator", 10_000)
    assert (c3.phase, c3.num_steps) == ("joint", 400_000)
    for c in (c1, c2, c3):
        assert c.optim.name == "adadelta" and c.loss.alpha == 0.0004 and c.mask.generator == "glcic_box"
        assert c.model.local_size == 128 and c.data.image_size == 256 and c.batch_size == 96
    assert configs.get_config("places2,optim.name=adam").optim.name == "adam"
    from inpaintjax.families import get
    with pytest.raises(ValueError, match="config.phase must be one of"):
        get("glcic")(configs.get_config("test,phase=joint_training"))
    with pytest.raises(ValueError, match="optim.name must be one of"):
        get("glcic")(configs.get_config("test,optim.name=sgd"))
    with pytest.raises(ValueError, match="unknown variant"):
        configs.get_config("places3")


def test_glcic_box_sides_and_positions():
    from inpaintjax import masks
    sides, corners = set(), set()
    for s in range(200):
        m = masks.make_mask("glcic_box", s, 256, 256)
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        assert m.sum() == len(rows) * len(cols)     # one filled rectangle
        sides |= {len(rows), len(cols)}
        corners.add((rows[0] // 32, cols[0] // 32))
    assert min(sides) == 96 and max(sides) == 128 and len(sides) > 25
    assert len(corners) > 10                        # positions spread over the image
