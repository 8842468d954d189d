"""inpaintjax.bench in reduced mode (what CI runs): the convolution stack's FLOP count, under both
XLA:CPU set-ups, and the PyTorch side-by-side in the same invocation. (bfloat16 compute:
test_compute_dtype.py.)"""

from __future__ import annotations

import json

import pytest

from inpaintjax import bench


def test_reduced_bench_stack_flops_both_xla_cpu_setups_and_torch(monkeypatch, capsys, child_env):
    """One bench invocation (this process is the parent; each case runs in a child): the conv
    stack's FLOPs equal the count from its definition (8 convolutions, forward + input and kernel
    gradients) under jaxlib's defaults and with YNNPACK's convolutions off, each child really ran
    with the set-up asked for, and the PyTorch stack carries the same FLOPs."""
    env = child_env()                         # the children: this checkout, one CPU device
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if "XLA_FLAGS" not in env:
        monkeypatch.delenv("XLA_FLAGS")
    code = bench.main(["--reduced", "--cases", "stack", "--conv", "auto", "--xla-cpu", "both",
                       "--torch", "--repeats", "1"])
    out = capsys.readouterr().out
    recs = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    assert code == 0, out[-3000:]
    assert [r["kind"] for r in recs] == ["machine", "stack", "stack", "stack"]
    chans, dil, b, s = [5, 64, 64, 64, 64, 64, 64, 64, 3], [1, 1, 2, 4, 8, 1, 1, 1], 1, 32
    # XLA counts the multiply-adds of taps inside the image ('SAME' zero padding excluded): per
    # spatial dim, tap offsets -d, 0, +d reach s - d, s, s - d output positions.
    valid = [2 * b * (s + 2 * (s - d)) ** 2 * chans[i] * chans[i + 1] for i, d in enumerate(dil)]
    # forward + kernel gradient for all 8, input gradient for layers 2..8
    expected = 3 * sum(valid) - valid[0]
    for rec, mode in zip(recs[1:3], ("default", "tuned"), strict=True):
        assert rec["conv"] == "auto" and rec["xla_cpu"] == mode and "error" not in rec
        # the child really ran with YNNPACK's convolutions as asked (the parent's own
        # `import inpaintjax` put the option into XLA_FLAGS; the child must not inherit it)
        assert rec["ynn_convolutions_off"] is (mode == "tuned")
        assert rec["repeats"] == 1 and rec["median_s"] > 0
        # XLA also counts the ReLUs, their masks and the loss: within 1% of the conv FLOPs
        assert abs(rec["flops"] - expected) / expected < 0.01
    torch_rec = recs[3]
    assert torch_rec["framework"] == "torch" and torch_rec["kind"] == "stack" and "error" not in torch_rec
    assert torch_rec["flops"] == recs[1]["flops"] and torch_rec["median_s"] > 0


def test_torch_flag_without_torch_names_the_install_command(monkeypatch, capsys):
    import builtins
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(SystemExit) as info:
        bench.main(["--reduced", "--cases", "stack", "--torch"])
    assert info.value.code != 0
    assert "pip install 'inpaintjax[bench]'" in capsys.readouterr().err
