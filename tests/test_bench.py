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
    assert [r["kind"] for r in recs] == ["machine", "stack", "stack", "stack", "speedup", "speedup"]
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
    # one round: each set-up's speed-up is PyTorch's median step over its own
    for rec, jax_rec in zip(recs[4:], recs[1:3], strict=True):
        assert (rec["xla_cpu"], rec["conv"], rec["rounds"]) == (jax_rec["xla_cpu"], "auto", 1)
        assert rec["speedup"] == pytest.approx(torch_rec["median_s"] / jax_rec["median_s"], rel=2e-3)


def test_rounds_alternate_which_side_goes_first_and_the_speedup_is_the_median_ratio(monkeypatch,
                                                                                    capsys):
    """--rounds 3 with two XLA:CPU set-ups and PyTorch: rounds 0 and 2 run default, tuned, torch,
    round 1 the reverse; every child gets --pause; each speedup record is the median over the
    rounds of PyTorch's median step over the set-up's (children faked: seconds chosen by hand)."""
    ran = []
    seconds = {("default", 0): 4.0, ("default", 1): 6.0, ("default", 2): 5.0,
               ("tuned", 0): 2.0, ("tuned", 1): 2.5, ("tuned", 2): 3.0,
               ("torch", 0): 6.0, ("torch", 1): 9.0, ("torch", 2): 7.0}

    def fake_child(case, conv, timeout, mode):
        ran.append((mode, case["pause_s"]))
        return {**case, "conv": conv, "xla_cpu": mode, "flops": 1e9,
                "median_s": seconds[mode, sum(m == mode for m, _ in ran) - 1]}

    def fake_torch(case, timeout):
        ran.append(("torch", case["pause_s"]))
        return {"framework": "torch", "kind": case["kind"], "batch": case["batch"],
                "median_s": seconds["torch", sum(m == "torch" for m, _ in ran) - 1]}
    monkeypatch.setattr(bench, "_child", fake_child)
    monkeypatch.setattr(bench, "_torch_child", fake_torch)
    code = bench.main(["--cases", "train", "--xla-cpu", "both", "--torch", "--rounds", "3",
                       "--pause", "0.5", "--repeats", "1"])
    recs = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")]
    assert code == 0
    order = ["default", "tuned", "torch"]
    assert ran == [(m, 0.5) for m in order + order[::-1] + order]
    runs = [r for r in recs if r["kind"] == "train"]
    assert [(r["round"], r["position"]) for r in runs] == [(i, j) for i in range(3) for j in range(3)]
    assert [r.get("xla_cpu", "torch") for r in runs] == order + order[::-1] + order
    assert all(r["flops"] == 1e9 for r in runs)  # PyTorch's record too, even when it ran first
    speedups = {r["xla_cpu"]: r for r in recs if r["kind"] == "speedup"}
    # per round: torch / default = 6/4, 9/6, 7/5; torch / tuned = 6/2, 9/2.5, 7/3
    assert speedups["default"]["per_round"] == [1.5, 1.5, 1.4]
    assert speedups["tuned"]["per_round"] == [3.0, 3.6, 2.333]
    # medians over the rounds: torch 7, default 5, tuned 2.5
    assert speedups["default"]["speedup"] == 1.4 and speedups["tuned"]["speedup"] == 2.8
    assert speedups["tuned"]["rounds"] == 3 and speedups["tuned"]["pause_s"] == 0.5
    assert "xla_cpu_applied" not in speedups["tuned"]
    # --xla-cpu auto: the record names the set-up the children applied
    auto = bench._speedup({"kind": "train"}, "auto", "auto", [2.0, 4.0], [3.0, 5.0], "tuned")
    assert (auto["xla_cpu"], auto["xla_cpu_applied"], auto["speedup"]) == ("auto", "tuned", 1.333)


def test_the_peak_is_the_faster_matmul_of_the_two_setups(monkeypatch, capsys):
    """The matmul runs under both XLA:CPU set-ups (their matmul libraries differ); the peak every
    fraction is taken against is the faster one's FLOP/s (children faked)."""
    seconds = {"default": 1.25, "tuned": 2.0}

    def fake_child(case, conv, timeout, mode="tuned"):
        if case["kind"] == "peak_matmul":
            return {**case, "conv": conv, "xla_cpu": mode, "flops": 100.0, "median_s": seconds[mode]}
        return {**case, "conv": conv, "xla_cpu": mode, "flops": 40.0, "median_s": 1.0}
    monkeypatch.setattr(bench, "_child", fake_child)
    assert bench.main(["--cases", "peak,train"]) == 0
    recs = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")]
    peaks = [r for r in recs if r["kind"] == "peak_matmul"]
    assert [r["xla_cpu"] for r in peaks] == ["default", "tuned"]
    assert all(r["peak_flops_per_s"] == 80 for r in peaks)       # 100 FLOP / 1.25 s
    train = next(r for r in recs if r["kind"] == "train")
    assert train["fraction_of_peak"] == 0.5                         # 40 FLOP/s of 80


@pytest.mark.parametrize("flag", [["--rounds", "0"], ["--pause", "-1"]])
def test_rounds_and_pause_out_of_range_are_refused(flag, capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(["--cases", "train"] + flag)
    assert info.value.code == 2 and flag[0] in capsys.readouterr().err


def test_the_pause_precedes_each_timed_step_and_is_not_timed(monkeypatch):
    """A fake clock: each step takes 1 s, each sleep what it is asked; the warm-up is not
    paused, each timed step is, and no step's time includes a sleep."""
    from inpaintjax import timing
    clock, sleeps = [0.0], []

    def sleep(seconds):
        sleeps.append(seconds)
        clock[0] += seconds

    def step():
        clock[0] += 1.0
    monkeypatch.setattr(timing, "clock", lambda: clock[0])
    monkeypatch.setattr(timing, "sleep", sleep)
    assert timing.timed(step, 3, pause=5.0) == (1.0, [1.0, 1.0, 1.0])
    assert sleeps == [5.0, 5.0, 5.0]
    assert timing.timed(step, 2) == (1.0, [1.0, 1.0]) and sleeps == [5.0, 5.0, 5.0]


def test_torch_scripts_take_the_pause(monkeypatch, capsys):
    from inpaintjax import timing
    from inpaintjax.benchmarks_torch import torch_timing
    sleeps = []
    monkeypatch.setattr(timing, "sleep", sleeps.append)
    rec = torch_timing.run_cli("a step", {"noop": lambda args: (lambda: None)},
                               argv=["--case", "noop", "--repeats", "2", "--pause", "0.25"])
    assert sleeps == [0.25, 0.25] and rec["pause_s"] == 0.25 and rec["repeats"] == 2


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
