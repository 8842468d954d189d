"""VGG-16/19 feature extractors and their weight loaders.

Truth: the same network written in plain PyTorch in this file, laid out as torchvision's
`vgg16().features` / `vgg19().features` (torchvision itself is not needed), and Keras' VGG
computed by torch on the BGR 0-255 Caffe-preprocessed image, from files the tests write.
"""

import numpy as np
import pytest

from inpaintjax.models import vgg

import torch  # noqa: E402  (the test extra)
nnt = torch.nn

SMALL = (8, 12, 16, 16, 16)


def torch_features(depth, widths, seed):
    """torchvision's `features` Sequential layout with He-normal weights and random biases."""
    g = torch.Generator().manual_seed(seed)
    layers, cin = [], 3
    for b, n in enumerate(vgg.BLOCKS[depth]):
        for _ in range(n):
            conv = nnt.Conv2d(cin, widths[b], 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * np.sqrt(2.0 / (9 * cin)))
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.1)
            layers += [conv, nnt.ReLU(inplace=False)]
            cin = widths[b]
        layers.append(nnt.MaxPool2d(2, 2))
    return nnt.Sequential(*layers)


def torch_named(features, x, depth):
    """Every named activation of the torch Sequential, NHWC numpy."""
    names = vgg.layer_names(depth)
    out, h = {}, x
    with torch.no_grad():
        for name, layer in zip(names, features):
            h = layer(h)
            out[name] = h.permute(0, 2, 3, 1).numpy()
    return out


class Holder(nnt.Module):
    def __init__(self, features):
        super().__init__()
        self.features = features
        self.classifier = nnt.Linear(2, 2)  # torchvision state dicts carry the classifier too


def run_flax(variables, depth, outputs, x_nhwc, widths=vgg.WIDTHS):
    f = vgg.feature_fn(depth, outputs, widths)
    return {k: np.asarray(v) for k, v in f(variables, x_nhwc).items()}


@pytest.mark.parametrize("depth,widths,outputs", [
    (16, vgg.WIDTHS, ("pool1", "pool2", "pool3")),
    (19, SMALL, ("relu1_1", "relu2_1", "relu2_2", "relu3_1", "relu3_4", "relu4_1", "relu4_4",
                 "relu5_1", "relu5_2")),
])
def test_torchvision_state_dict_matches_torch_network(tmp_path, depth, widths, outputs):
    features = torch_features(depth, widths, seed=depth)
    path = tmp_path / f"vgg{depth}.pth"
    torch.save(Holder(features).state_dict(), path)
    variables = vgg.load_weights(str(path), depth, widths)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 32, 32)).astype(np.float32)
    ref = torch_named(features, torch.from_numpy(x), depth)
    got = run_flax(variables, depth, outputs, x.transpose(0, 2, 3, 1), widths)
    assert list(got) == list(outputs)
    for name in outputs:
        assert got[name].shape == ref[name].shape, name
        scale = np.abs(ref[name]).max()
        assert scale > 0.1, name  # the activation carries signal
        np.testing.assert_allclose(got[name], ref[name], atol=1e-4 * scale, rtol=1e-4, err_msg=name)
    # The bare `features` state dict (keys "N.weight") loads the same.
    path2 = tmp_path / "features_only.pth"
    torch.save(features.state_dict(), path2)
    v2 = vgg.load_torchvision(str(path2), depth, widths)
    np.testing.assert_array_equal(v2["params"]["conv1_2"]["kernel"], variables["params"]["conv1_2"]["kernel"])


def write_keras_h5(path, depth, widths, seed):
    """An h5 in the layout Keras 2 writes for `save_weights` (the applications' notop files):
    root attrs layer_names; per layer a group with attrs weight_names and datasets at those
    names ('block1_conv1/kernel:0' is a nested group path). Returns {name: (HWIO kernel, bias)}."""
    import h5py
    rng = np.random.default_rng(seed)
    weights, cin = {}, 3
    layer_list = ["input_1"]
    for b, n in enumerate(vgg.BLOCKS[depth]):
        for i in range(n):
            name = f"block{b + 1}_conv{i + 1}"
            weights[name] = ((rng.normal(size=(3, 3, cin, widths[b])) * np.sqrt(2.0 / (9 * cin))).astype(np.float32),
                             (rng.normal(size=(widths[b],)) * 0.1).astype(np.float32))
            layer_list.append(name)
            cin = widths[b]
        layer_list.append(f"block{b + 1}_pool")
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in layer_list]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for name in layer_list:
            g = f.create_group(name)
            if name in weights:
                wn = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
                g.attrs["weight_names"] = wn
                g.create_dataset(wn[0].decode(), data=weights[name][0])
                g.create_dataset(wn[1].decode(), data=weights[name][1])
            else:
                g.attrs["weight_names"] = np.array([], dtype="S1")
    return weights


@pytest.mark.parametrize("depth", [16, 19])
def test_keras_h5_runs_keras_preprocessing_exactly(tmp_path, depth):
    path = tmp_path / f"vgg{depth}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    weights = write_keras_h5(path, depth, SMALL, seed=1)
    variables = vgg.load_weights(str(path), depth, SMALL)
    rng = np.random.default_rng(2)
    rgb01 = rng.uniform(size=(2, 32, 32, 3)).astype(np.float32)
    # Keras: BGR, 0-255, Caffe means subtracted, then its convolutions (zero padding of THAT image).
    bgr = rgb01[..., ::-1] * 255.0 - np.asarray(vgg.CAFFE_MEAN_BGR, np.float32)
    h = torch.from_numpy(np.ascontiguousarray(bgr.transpose(0, 3, 1, 2)))
    ref = {}
    with torch.no_grad():
        for b, n in enumerate(vgg.BLOCKS[depth]):
            for i in range(n):
                k, bias = weights[f"block{b + 1}_conv{i + 1}"]
                h = torch.relu(torch.nn.functional.conv2d(
                    h, torch.from_numpy(k.transpose(3, 2, 0, 1).copy()), torch.from_numpy(bias), padding=1))
                ref[f"relu{b + 1}_{i + 1}"] = h.permute(0, 2, 3, 1).numpy()
            h = torch.nn.functional.max_pool2d(h, 2, 2)
            ref[f"pool{b + 1}"] = h.permute(0, 2, 3, 1).numpy()
    outputs = ("relu1_1", "pool1", "pool3", "relu4_1")
    x = np.asarray(vgg.imagenet_normalise(rgb01))
    got = run_flax(variables, depth, outputs, x, SMALL)
    for name in outputs:
        scale = np.abs(ref[name]).max()
        np.testing.assert_allclose(got[name], ref[name], atol=1e-4 * scale, rtol=1e-4, err_msg=name)


def test_missing_wrong_and_unreadable_files_are_named(tmp_path):
    with pytest.raises(vgg.VGGWeightsError, match=r"nowhere\.pth.*not found.*vgg16-397923af\.pth"):
        vgg.load_weights(str(tmp_path / "nowhere.pth"), 16)
    path19 = tmp_path / "vgg19.pth"
    torch.save(torch_features(19, SMALL, 0).state_dict(), path19)
    with pytest.raises(vgg.VGGWeightsError, match=r"vgg19\.pth: holds VGG-19, not torchvision's VGG-16"):
        vgg.load_weights(str(path19), 16, SMALL)
    # Published widths are required unless asked otherwise: a shrunken file is refused.
    path16 = tmp_path / "small16.pth"
    torch.save(torch_features(16, SMALL, 0).state_dict(), path16)
    with pytest.raises(vgg.VGGWeightsError, match=r"small16\.pth: conv1_1 has kernel \(3, 3, 3, 8\)"):
        vgg.load_weights(str(path16), 16)
    # the reverse: the real VGG-16 (published widths) under a config of small widths (a test
    # preset's loss.vgg_widths) names that setting, not the file
    full16 = tmp_path / "vgg16.pth"
    torch.save(torch_features(16, vgg.WIDTHS, 0).state_dict(), full16)
    with pytest.raises(vgg.VGGWeightsError, match=r"vgg16\.pth is VGG-16 with its published widths "
                                                  r"\(64, 128, 256, 512, 512\), but the config asks for "
                                                  r"widths \(8, 12, 16, 16, 16\) \(config.loss.vgg_widths"):
        vgg.load_weights(str(full16), 16, SMALL)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(vgg.VGGWeightsError, match=r"junk\.pth: not a readable PyTorch file"):
        vgg.load_weights(str(junk), 16)
    h5 = tmp_path / "vgg19_notop.h5"
    write_keras_h5(h5, 19, SMALL, 0)
    with pytest.raises(vgg.VGGWeightsError, match=r"vgg19_notop\.h5: holds Keras' VGG-19"):
        vgg.load_weights(str(h5), 16, SMALL)
    with pytest.raises(ValueError, match="has no layer"):
        vgg.feature_fn(16, ("relu3_4",), SMALL)(vgg.random_variables(16, widths=SMALL), np.zeros((1, 8, 8, 3)))
