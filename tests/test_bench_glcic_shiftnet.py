"""The GLCIC and Shift-Net benchmark cases (`python -m inpaintjax.bench --family glcic|shiftnet
--torch`): what they time at full size, that the PyTorch side builds the same networks (the
published parameter counts at full size; the JAX family's counts at the reduced size), and that the
reduced cases run (PyTorch) and trace (JAX). Everything runs in this process (no bench children)."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from inpaintjax import bench, benchmarks_torch
from inpaintjax.benchmarks_torch import torch_glcic, torch_shiftnet

FAMILIES = ("glcic", "shiftnet")


def _cases(family, *flags):
    return bench._cases(bench._parser().parse_args(["--family", family, "--cases", "train,infer",
                                                    *flags]))


def _count(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def test_full_size_cases_and_the_torch_networks_are_the_published_ones():
    """Issues 27 and 28: the training step at 256x256, batch 4 (GLCIC's joint phase: both
    discriminators), and inference at 512x512, batch 1; the PyTorch networks have the released
    models' parameter counts (GLCIC: the .t7 completion network and the paper's discriminators;
    Shift-Net: the released `unet_shift_triple` and its PatchGAN)."""
    for family in FAMILIES:
        train, infer = _cases(family)
        assert (train["kind"], train["batch"], train["size"]) == ("train", 4, 256)
        assert (infer["kind"], infer["batch"], infer["size"]) == ("infer", 1, 512)
        assert benchmarks_torch.MODULES[family] == f"torch_{family}"
        assert bench._torch_module(train) == f"torch_{family}"
    assert "phase=joint" in _cases("glcic")[0]["overrides"]
    assert "overrides" not in _cases("shiftnet")[0]   # the released defaults, VGG and D included
    import torch
    count = torch_glcic.parameter_count
    with torch.device("meta"):   # shapes only: no 110 million random numbers
        assert count(torch_glcic.CompletionNetwork(64)) == 6_072_131
        assert count(torch_glcic.GlobalLocalDiscriminator(256, 128, 64)) == 45_063_681
        assert count(torch_shiftnet.ShiftUNet(8, 64)) == 54_944_771
        assert count(torch_shiftnet.PatchDiscriminator(64)) == 2_766_529


def _torch_record(module, case):
    """The PyTorch module's record for `case`, with the flags bench's `_torch_child` passes."""
    mod = {"torch_glcic": torch_glcic, "torch_shiftnet": torch_shiftnet}[module]
    return mod.main(["--case", case.get("torch_case", case["kind"]), "--batch", str(case["batch"]),
                     "--size", str(case["size"]), "--repeats", "1", *bench._TORCH_REDUCED[module]])


@pytest.fixture
def one_torch_thread():
    """PyTorch on one thread: at toy size its two threads only wait for each other (4.4 s against
    0.16 s of CPU for the GLCIC pair on the loaded 2-core test machine)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("family", FAMILIES)
def test_reduced_cases_run_on_both_sides_with_the_same_networks(family, capsys, one_torch_thread):
    """`--reduced`: the PyTorch module, with the flags bench gives it, runs both cases and builds
    networks with exactly the parameter counts of the JAX family the case configures; the JAX
    training step and inference trace with the case's config and batch (shapes only: the
    family's own tests compile and run both; `make bench` runs the bench children)."""
    train, infer = _cases(family, "--reduced", "--repeats", "1")
    assert [(c["kind"], c["batch"], c["size"]) for c in (train, infer)] == [("train", 2, 64),
                                                                           ("infer", 1, 64)]
    fam, _ = bench._family(family, "float32", False, True, train.get("overrides", ()))
    batch = bench._batch(fam, train["batch"], train["size"])
    state = jax.eval_shape(lambda: fam.init_state(jax.random.key(0), batch))
    d_params = state.d_params if family == "glcic" else state.d_vars["params"]
    g_count, d_count = _count(state.g_params), _count(d_params)
    new_state, metrics = jax.eval_shape(fam.train_step, state, batch, jax.random.key(1),
                                        fam.load_frozen())
    assert "g/loss" in metrics and "d/loss" in metrics   # both networks update (GLCIC: joint)
    assert _count(new_state.g_params) == g_count

    module = benchmarks_torch.MODULES[family]
    g_name = "completion" if family == "glcic" else "generator"
    rec = _torch_record(module, train)
    assert rec["parameters"] == {g_name: g_count, "discriminator": d_count}
    assert rec["median_s"] > 0
    rec = _torch_record(module, infer)
    assert rec["parameters"] == {g_name: g_count} and rec["median_s"] > 0
    capsys.readouterr()

    variables = jax.eval_shape(fam.inference_variables, state)
    inputs = fam.inference_inputs({k: np.asarray(v) for k, v in bench._batch(
        fam, infer["batch"], infer["size"]).items()})
    out = jax.eval_shape(fam.inpaint, variables, inputs)["output"]
    assert out.shape == (infer["batch"], infer["size"], infer["size"], 3)


def _signal(module, seed, calibrate=None):
    """He-scaled convolutions and non-trivial norm scales and biases, and, with `calibrate` (an
    input), BatchNorm running statistics of that input's own pass: activations keep their scale
    through every layer, so that a wrong layer anywhere shows in the output."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                fan_in = m.weight[0].numel() if isinstance(m, torch.nn.Conv2d) else m.weight[:, 0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2 / fan_in) ** 0.5)
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)) and m.affine:
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 1.0   # the calibration pass's statistics become the running ones
        if calibrate is not None:
            module.train()(calibrate)
    return module.eval()


def test_torch_networks_compute_what_the_jax_networks_compute():
    """The same weights in the benchmark's PyTorch networks and in inpaintjax's (through the
    families' own converters from the released state-dict layouts) give the same outputs: the
    side-by-side times one computation. GLCIC: the completion network (inference mode) at 64x48;
    Shift-Net: a 6-level generator (ngf 8) at 64x64, the shift included."""
    import torch

    from inpaintjax.convert import glcic as glcic_convert
    from inpaintjax.convert import shiftnet as shiftnet_convert
    from inpaintjax.models.glcic import CompletionNetwork, completion_input
    from inpaintjax.models.shiftnet import ShiftNetGenerator

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    image = rng.random((2, 64, 48, 3), np.float32)
    mask = np.zeros((2, 64, 48, 1), np.float32)
    mask[0, 16:40, 8:30] = 1
    mask[1, 30:60, 20:44] = 1
    x = completion_input(image, mask, torch_glcic.MEAN)
    x_torch = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2)
    net = _signal(torch_glcic.CompletionNetwork(8), 1, calibrate=x_torch)
    weights = glcic_convert.from_state_dict({k[len("net."):]: v for k, v in net.state_dict().items()})
    completion = jax.jit(CompletionNetwork(width=8).apply)  # one program, not op by op
    want = completion(weights.variables, x)
    other = completion(weights.variables, completion_input(1 - image, mask, torch_glcic.MEAN))
    with torch.no_grad():
        got = net(x_torch).permute(0, 2, 3, 1).numpy()
    assert np.std(want) > 0.05 and np.abs(np.asarray(other) - want).mean() > 0.01
    np.testing.assert_allclose(got, np.asarray(want), atol=1e-4)

    gen = _signal(torch_shiftnet.ShiftUNet(6, 8), 2)   # InstanceNorm: no statistics to keep
    names = {f"down_{k}": gen.down[k - 1] for k in range(1, 7)}
    names.update({f"up_{k}": gen.up[k - 1] for k in range(1, 7)})
    names.update({f"down_norm_{k}": gen.down_norm[k - 2] for k in range(2, 6)})
    names.update({f"up_norm_{k}": gen.up_norm[k - 2] for k in range(2, 7)})
    sd = {}
    for name, prefix, _ in shiftnet_convert._layers(6, "hard"):
        sd[prefix + ".weight"], sd[prefix + ".bias"] = names[name].weight, names[name].bias
    variables, _ = shiftnet_convert.from_state_dict(sd)
    real = rng.random((2, 64, 64, 3), np.float32) * 2 - 1
    hole = np.zeros((2, 64, 64, 1), np.float32)
    hole[0, 16:48, 16:48] = 1
    hole[1, 8:30, 18:53] = 1
    x = np.concatenate([real * (1 - hole), 1 - hole], -1)
    want, feats = jax.jit(ShiftNetGenerator(num_downs=6, ngf=8).apply)(variables, x, hole)
    with torch.no_grad():
        out, former = gen(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(hole).permute(0, 3, 1, 2))
    assert np.std(want) > 0.01
    np.testing.assert_allclose(out.permute(0, 2, 3, 1).numpy(), np.asarray(want), atol=1e-4)
    np.testing.assert_allclose(former.permute(0, 2, 3, 1).numpy(), np.asarray(feats["decoder"]), atol=1e-4)


def _released_script():
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "benchmarks", "released_shiftnet.py")
    spec = importlib.util.spec_from_file_location("released_shiftnet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_released_shiftnet_script_alternates_and_refuses_a_wrong_checkout(tmp_path, monkeypatch, capsys):
    """benchmarks/released_shiftnet.py: a folder that is not a Shift-Net_pytorch checkout is refused
    naming it; the rounds alternate which side goes first, each side runs the case asked for, and
    the summary's ratios are released seconds over inpaintjax seconds (hand-chosen fake timings, no
    child processes; the inference summary also carries the released test.py's per-image median);
    the torchvision stand-in has torchvision's VGG-16 feature layout (pools at 4, 9, 16, 23, 30,
    where the released code slices its three blocks; 14,714,688 convolution parameters,
    torchvision's count)."""
    script = _released_script()
    with pytest.raises(SystemExit) as exc:
        script.main(["--checkout", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "git clone" in err

    checkout = tmp_path / "Shift-Net_pytorch"
    (checkout / "models" / "shift_net").mkdir(parents=True)
    (checkout / "models" / "shift_net" / "shiftnet_model.py").write_text("")
    import json
    for case, test_py in (("train", None), ("infer", [2.0, 1.6, 1.9])):
        seconds = {"inpaintjax": iter([4.0, 5.0, 3.0]), "released": iter([6.0, 5.0, 3.3])}
        test_py_seconds = iter(test_py or [])
        order = []

        def fake_run(cmd, kind):
            side = "released" if "--released-child" in cmd else "inpaintjax"
            # each side is asked for the case: the bench by --cases, this script by --case
            assert kind == case and cmd[cmd.index("--cases" if side == "inpaintjax" else "--case") + 1] == case
            order.append(side)
            rec = {"kind": kind, "median_s": next(seconds[side])}
            if side == "released" and test_py:
                rec["test_py_median_s"] = next(test_py_seconds)
            return rec

        monkeypatch.setattr(script, "_run", fake_run)
        out = tmp_path / f"{case}.jsonl"
        script.main(["--checkout", str(checkout), "--case", case, "--rounds", "3", "--out", str(out)])
        assert order == ["inpaintjax", "released", "released", "inpaintjax", "inpaintjax", "released"]
        summary = json.loads(out.read_text().splitlines()[-1])
        assert summary["case"] == case and summary["per_round"] == [1.5, 1.0, 1.1]
        assert summary["speedup"] == pytest.approx(1.1)
        assert (summary["inpaintjax_median_s"], summary["released_median_s"]) == (4.0, 5.0)
        assert summary.get("released_test_py_median_s") == (1.9 if test_py else None)

    import torch
    features = script.torchvision_stand_in()["torchvision.models"].vgg16(pretrained=True).features
    assert [i for i, m in enumerate(features) if isinstance(m, torch.nn.MaxPool2d)] == [4, 9, 16, 23, 30]
    assert sum(p.numel() for p in features.parameters()) == 14_714_688
