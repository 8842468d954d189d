"""LPIPS v0.1 (alex, vgg, squeeze) against the `lpips` package.

Truth: tests/fixtures/lpips_golden.npz, written by tests/fixtures/make_lpips_golden.py with lpips
0.1.4 (`pnet_rand=True`, its real v0.1 linear layers, stored in the file) on backbones with seeded
random weights (`random_state_dicts(net, seed)`, regenerated here in NumPy); published parameter counts.
"""

import functools
import importlib.util
import os

import jax
import numpy as np
import pytest

from inpaintjax.perceptual import lpips as L

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
GOLDEN = np.load(os.path.join(FIXTURES, "lpips_golden.npz"))


def _pairs():
    spec = importlib.util.spec_from_file_location("make_lpips_golden", os.path.join(FIXTURES, "make_lpips_golden.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.pairs()


PAIRS = _pairs()


def _params(net):
    sd, _ = L.random_state_dicts(net, int(GOLDEN["seed"]))
    return {"backbone": L.backbone_from_state_dict(net, sd),
            "lin": [GOLDEN[f"lin_{net}_{i}"] for i in range(len(L.CHANNELS[net]))]}


def test_parameter_counts():
    count = lambda shapes: sum(int(np.prod(s)) for s in shapes.values())
    assert count(L.backbone_shapes("alex")) == 2_469_696
    assert count(L.backbone_shapes("vgg")) == 14_714_688
    assert count(L.backbone_shapes("squeeze")) == 722_496
    assert [sum(len(GOLDEN[f"lin_{n}_{i}"]) for i in range(len(L.CHANNELS[n]))) for n in L.NETS] == [1152, 1472, 2240]


@pytest.mark.parametrize("net", L.NETS)
def test_matches_lpips_package(net):
    params = _params(net)
    f = jax.jit(functools.partial(L.distance, net=net, per_layer=True))
    for tag, (a, b) in PAIRS.items():
        total, layers = f(params, a, b)
        np.testing.assert_allclose(np.asarray(total), GOLDEN[f"{net}_{tag}"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(np.asarray(layers), GOLDEN[f"{net}_{tag}_layers"], rtol=0, atol=1e-5)
        assert np.ptp(GOLDEN[f"{net}_{tag}"]) > 2e-4  # different pairs, different distances


def test_broken_choices_fail_the_golden(monkeypatch):
    """Without the scaling layer (LPIPS v0.0's bug) or without SqueezeNet's ceil-mode pooling the
    numbers move by far more than the tolerance."""
    a, b = PAIRS["odd"]
    monkeypatch.setattr(L, "SHIFT", (0.0, 0.0, 0.0))
    assert np.abs(np.asarray(jax.jit(L.distance, static_argnums=3)(_params("alex"), a, b, "alex")) - GOLDEN["alex_odd"]).max() > 1e-4
    monkeypatch.undo()
    monkeypatch.setattr(L, "_max_pool", _floor_pool)
    assert np.abs(np.asarray(jax.jit(L.distance, static_argnums=3)(_params("squeeze"), a, b, "squeeze")) - GOLDEN["squeeze_odd"]).max() > 1e-4


def _floor_pool(x, ceil_mode=False):
    return jax.lax.reduce_window(x, -np.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")


def test_weight_files(tmp_path, monkeypatch):
    import torch
    sd, _ = L.random_state_dicts("squeeze", int(GOLDEN["seed"]))
    sd["classifier.1.weight"] = np.zeros((1000, 512, 1, 1), np.float32)  # a whole torchvision model
    backbone = str(tmp_path / L.BACKBONE_FILES["squeeze"])
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, backbone)
    lin = str(tmp_path / "squeeze.pth")
    torch.save({f"lin{i}.model.1.weight": torch.from_numpy(GOLDEN[f"lin_squeeze_{i}"].reshape(1, -1, 1, 1))
                for i in range(7)}, lin)
    params = L.load("squeeze", backbone, lin)
    a, b = PAIRS["square"]
    np.testing.assert_allclose(np.asarray(jax.jit(L.distance, static_argnums=3)(params, a, b, "squeeze")), GOLDEN["squeeze_square"], atol=1e-5)
    with pytest.raises(L.WeightFileError, match="features.0.weight.*squeezenet1_1-b8a52dc0.pth"):
        L.load("squeeze", lin, lin)  # the linear layers named as the backbone
    monkeypatch.setattr(L, "default_lin_path", lambda net: None)
    with pytest.raises(L.WeightFileError, match="pip install lpips"):
        L.load_lin("alex")
    with pytest.raises(ValueError, match="'resnet' is not one of alex, vgg, squeeze"):
        L.load_lin("resnet", lin)


# The smallest side each backbone's last tap has a pixel at, worked by hand from the layers
# (floor((n + 2p - k) / s) + 1 per convolution or floor-mode pool; ceil mode for SqueezeNet's pools,
# PyTorch's rule, with which the `lpips` package raises "Output size is too small" below it):
# alex: conv 11/4 pad 2 -> (n - 7) // 4 + 1, then two 3/2 pools need 7 -> 3 -> 1: n >= 31.
# vgg: four 2/2 pools before relu5_3: n >= 16.
# squeeze: conv 3/2 -> (n - 3) // 2 + 1 = a; three ceil-mode 3/2 pools need a >= 8 (8 -> 4 -> 2 -> 1;
#   7 -> 3 -> 1 leaves a 1-pixel input for the last pool, whose window would start outside): n >= 17.
HAND_MINIMUM = {"alex": 31, "vgg": 16, "squeeze": 17}


@pytest.mark.parametrize("net", L.NETS)
def test_too_small_images_are_refused(net):
    """Below its minimum a backbone's last tap is empty and the spatial mean would be NaN: refused
    with the size and the minimum; at the minimum the distance is a number."""
    params = _params(net)
    n = HAND_MINIMUM[net]
    assert L.MIN_SIZE[net] == n
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 1, n, n + 9, 3), np.float32)
    # jitted: one program instead of the backbone's layers compiled one by one
    assert np.isfinite(np.asarray(jax.jit(L.distance, static_argnums=3)(params, a, b, net))).all()
    for shape in ((1, n - 1, n + 9, 3), (1, n + 9, n - 1, 3)):
        small = np.zeros(shape, np.float32)
        h, w = shape[1:3]
        with pytest.raises(ValueError, match=f"{w}x{h}.*at least {n}x{n}"):
            L.distance(params, small, small, net)


def test_a_corrupt_file_names_the_file_and_the_error_type(tmp_path):
    import torch
    sd, _ = L.random_state_dicts("alex", 0)
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, str(path))
    path.write_bytes(path.read_bytes()[:5000])  # a download cut short
    try:  # the type torch itself raises for this file (EOFError with torch 2.x)
        torch.load(str(path), weights_only=True)
    except Exception as exc:
        raised = type(exc).__name__
    with pytest.raises(L.WeightFileError) as e:
        L.load_backbone("alex", str(path))
    msg = str(e.value)
    assert str(path) in msg and f"({raised}" in msg and "https://download.pytorch.org/models/" in msg
    assert "weights_only" not in msg and "\n" not in msg  # no advice to load the file unsafely
    pickled = tmp_path / "code.pth"  # a file that only an unsafe load would read
    torch.save({"w": torch.zeros(1), "f": functools.partial(int, "3")}, str(pickled))
    with pytest.raises(L.WeightFileError) as e:
        L.load_backbone("alex", str(pickled))
    assert str(pickled) in str(e.value) and "weights_only" not in str(e.value) and "\n" not in str(e.value)
