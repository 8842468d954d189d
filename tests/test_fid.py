"""FID's Inception-v3, its resize conventions, FID, KID and IS against the reference implementations.

Truth: tests/fixtures/fid_golden.npz, written by tests/fixtures/make_fid_golden.py with pytorch-fid
0.3.0, clean-fid 0.1.35 and torch-fidelity 0.4.0 on the same seeded random weights
(`random_state_dict(0)`, regenerated here in NumPy) and images sliced from scikit-image's samples;
the published parameter count of the network (23,850,960) and hand-worked Frechet distances.
"""

import importlib.util
import os

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from inpaintjax.perceptual import fid, inception

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
GOLDEN = np.load(os.path.join(FIXTURES, "fid_golden.npz"))


def _maker():
    spec = importlib.util.spec_from_file_location("make_fid_golden", os.path.join(FIXTURES, "make_fid_golden.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MAKER = _maker()


@pytest.fixture(scope="module")
def params():
    return inception.from_state_dict(inception.random_state_dict(int(GOLDEN["seed"])))


def test_layer_table_has_the_published_parameter_count():
    shapes = inception.state_dict_shapes()
    assert len(shapes) == 94 * 3 + 2  # 94 BasicConv2d (conv, bn weight, bn bias) + fc weight/bias
    total = sum(int(np.prod(s)) for s in shapes.values())
    assert total == 23_850_960
    block = lambda p: sum(int(np.prod(s)) for k, s in shapes.items() if k.startswith(p + "."))
    # per-block counts computed from pytorch-fid's layer definitions
    assert block("Mixed_5b") == 255_904 and block("Mixed_6e") == 2_141_952 and block("Mixed_7c") == 6_076_800
    assert total - block("fc") == 21_785_568


def test_weight_file_errors(tmp_path):
    """A file that is not the FID Inception is refused naming a missing key and where to get the
    right file. (Reading a whole 95 MB file of the real layout, num_batches_tracked included, is part
    of tests/test_evaluate_command.py.)"""
    import torch
    path = str(tmp_path / "not_inception.pth")
    torch.save({"fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}, path)
    with pytest.raises(inception.WeightFileError, match="Conv2d_1a_3x3.conv.weight.*pt_inception-2015-12-05"):
        inception.load_weights(path)
    sd = {k: torch.from_numpy(np.asarray(v)) for k, v in inception.random_state_dict(0).items()
          if k.startswith("Conv2d_1a") or k.startswith("fc.")}
    sd["Conv2d_1a_3x3.conv.weight"] = torch.zeros(32, 3, 5, 5)
    torch.save(sd, path)
    with pytest.raises(inception.WeightFileError, match=r"Conv2d_1a_3x3.conv.weight \(32, 3, 5, 5\) \(needs \(32, 3, 3, 3\)\)"):
        inception.load_weights(path)
    with pytest.raises(inception.WeightFileError, match="not found.*pt_inception-2015-12-05"):
        inception.load_weights(str(tmp_path / "missing.pth"))


def test_pool3_and_logits_match_pytorch_fid_at_299(params):
    """pytorch-fid's pipeline (64 px image -> bilinear 299 -> 2x-1 -> pool3, logits) on one truth and
    one output image, one per device on two devices. (tests/test_evaluate_command.py checks all ten
    images and the FID of the two folders.)"""
    pick = [0, len(GOLDEN["truth"])]
    images = np.concatenate([GOLDEN["truth"], GOLDEN["outputs"]])[pick]
    mesh = Mesh(np.array(jax.devices()[:2]), ("data",))
    out = inception.make_extractor(params, "pytorch", mesh=mesh)(images)
    assert np.abs(GOLDEN["pool3_299"]).max() > 1.0  # the features carry signal
    np.testing.assert_allclose(np.asarray(out["pool3"]), GOLDEN["pool3_299"][pick], rtol=0, atol=1e-4)
    np.testing.assert_allclose(np.asarray(out["logits_unbiased"]), GOLDEN["logits_unbiased_299"][pick], rtol=0, atol=2e-4)


@pytest.mark.parametrize("broken", [None, {"count_include_pad": True}, {"mixed_7c_pool": "avg"}])
def test_network_choices_matter(params, broken):
    """At 107 px without resizing (pytorch-fid with resize_input=False): the FID network matches,
    and torchvision's choices (average pools counting padding, an average pool in Mixed_7c) do not."""
    small = MAKER.images()[3]
    x = 2.0 * (small.astype(np.float32) / 255.0) - 1.0
    f = jax.jit(lambda p, x: inception.features(p, x, **(broken or {}))["pool3"])
    err = np.abs(np.asarray(f(params, x)) - GOLDEN["pool3_107"]).max()
    if broken is None:
        assert err <= 1e-4
        assert float(GOLDEN["pool3_107_moved"]) > 0.05  # other images move the reference features
    else:
        assert err > 0.1


@pytest.mark.parametrize("mode", inception.RESIZE_MODES)
@pytest.mark.parametrize("direction", ["up", "down"])
def test_resize_modes_match_their_references(mode, direction):
    """pytorch: F.interpolate; tf1: torch-fidelity's TF1 bilinear; clean: clean-fid's PIL bicubic.
    Each differs from the others by far more than its own error."""
    import skimage.data
    src = skimage.data.astronaut()
    src = src[::8, ::8] if direction == "up" else src
    to01 = {m: 1.0 if m == "pytorch" else 1.0 / 255.0 for m in inception.RESIZE_MODES}  # the references' units
    scale_in = 1.0 / 255.0 if mode == "pytorch" else 1.0
    x = np.asarray(inception.resize(src[None].astype(np.float32) * scale_in, mode))[0]
    if mode == "clean":
        x = np.clip(x, 0, 255)
    got01 = x[::7, ::7] * to01[mode]
    for other in inception.RESIZE_MODES:
        err = np.abs(got01 - GOLDEN[f"resize_{other}_{direction}"] * to01[other]).max()
        if other == mode:
            assert err < 2e-5, (mode, err)  # float32 rounding
        else:
            assert err > 0.02, (mode, other, err)


def test_preprocess_ranges():
    img = np.full((1, 299, 299, 3), 255, np.uint8)
    assert float(inception.preprocess(img, "pytorch").max()) == 1.0
    assert float(inception.preprocess(img, "tf1").max()) == pytest.approx(127.0 / 128.0)
    assert float(inception.preprocess(img, "clean").max()) == pytest.approx(127.0 / 128.0)
    with pytest.raises(ValueError, match="resize mode 'bilinear'"):
        inception.preprocess(img, "bilinear")


def test_fid_formula_streaming_stats_and_routes(tmp_path):
    a, b, *_ = MAKER.synthetic()
    want = float(GOLDEN["fid_synthetic"])  # pytorch-fid's calculate_frechet_distance
    s1 = fid.FeatureStats(64)
    for lo, hi in ((0, 7), (7, 120), (120, 121), (121, 300)):
        s1.update(a[lo:hi])
    halves = [fid.FeatureStats(64).update(b[:150]), fid.FeatureStats(64).update(b[150:])]
    s2 = halves[0].merge(halves[1])  # two devices' partial statistics
    np.testing.assert_allclose(s1.sigma, np.cov(a, rowvar=False), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s2.mu, b.mean(0), rtol=1e-12, atol=1e-12)
    assert s1.count == 300 and s2.count == 300
    for method in ("sqrtm", "eigh"):
        got = fid.frechet_distance(s1.mu, s1.sigma, s2.mu, s2.sigma, method=method)
        assert abs(got - want) <= 1e-8 * want, method
    path = str(tmp_path / "stats.npz")
    fid.save_stats(path, s1.mu, s1.sigma, s1.count)
    with np.load(path) as f:
        assert {"mu", "sigma"} <= set(f.files)
    mu, sigma = fid.load_stats(path)
    np.testing.assert_array_equal(sigma, s1.sigma)
    np.savez(str(tmp_path / "bad.npz"), m=mu)
    with pytest.raises(ValueError, match="not pytorch-fid's 'mu' and 'sigma'"):
        fid.load_stats(str(tmp_path / "bad.npz"))


def test_held_rows_fold_exactly_and_are_copied(monkeypatch):
    """Rows are held back and folded in FLUSH_ROWS at a time (here 16, so the batches below cross
    it several times, once exactly): the statistics equal NumPy's mean and covariance of all rows
    however they were cut, and a caller reusing its batch buffer changes nothing."""
    monkeypatch.setattr(fid.FeatureStats, "FLUSH_ROWS", 16)
    rows = np.random.default_rng(3).normal(2.0, 1.5, (100, 5))
    s = fid.FeatureStats(5)
    buffer = np.empty((40, 5))
    for lo, hi in ((0, 3), (3, 16), (16, 32), (32, 33), (33, 73), (73, 100)):
        buffer[:hi - lo] = rows[lo:hi]
        s.update(buffer[:hi - lo])
        buffer[:] = np.nan          # reused by the caller
        assert s.count == hi
    np.testing.assert_allclose(s.mu, rows.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.sigma, np.cov(rows, rowvar=False), rtol=1e-12, atol=1e-12)
    other = fid.FeatureStats(5).update(rows[:5])   # held only, merged into one with held rows
    both = fid.FeatureStats(5).update(rows[5:9]).merge(other)
    np.testing.assert_allclose(both.sigma, np.cov(np.concatenate([rows[5:9], rows[:5]]), rowvar=False),
                               rtol=1e-12, atol=1e-12)
    assert both.count == 9 and fid.FeatureStats(5).merge(fid.FeatureStats(5)).count == 0


def test_frechet_distance_by_hand():
    # N(0, I) vs N(1, 4I) in 2-d: |mu|^2 = 2, tr = 2 + 8, tr sqrt(4I) = 4 -> 2 + 10 - 8 = 4
    for method in ("sqrtm", "eigh"):
        assert fid.frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2), method) == pytest.approx(4.0)
    # a product with a negative eigenvalue has a genuinely imaginary square root: refused
    with pytest.raises(ValueError, match="imaginary component"):
        fid.frechet_distance(np.zeros(2), np.diag([1.0, 1.0]), np.zeros(2), np.diag([-1.0, 1.0]))
    # singular covariances (fewer images than dimensions) still give a finite value (the 1e-6 retry)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 16)), rng.standard_normal((4, 16)) + 1
    assert np.isfinite(fid.fid_from_features(x, y))


def test_kid_and_inception_score_match_references():
    _, _, ka, kb, logits = MAKER.synthetic()
    kid, kid_std = fid.kernel_inception_distance(ka, kb)  # clean-fid's kernel_distance
    assert kid == pytest.approx(float(GOLDEN["kid_synthetic"]), rel=1e-10)
    assert kid_std < 1e-12  # equal sizes below 1,000: every subset is the whole set
    mean, std = fid.inception_score(logits)  # torch-fidelity, shuffle=False (file order)
    np.testing.assert_allclose([mean, std], GOLDEN["is_synthetic"], rtol=1e-10)
    # a hand-worked IS: two equally likely, perfectly confident classes -> exp(log 2) = 2
    z = np.array([[50.0, 0.0], [0.0, 50.0]] * 5)
    assert fid.inception_score(z, splits=5)[0] == pytest.approx(2.0, rel=1e-9)


@pytest.mark.multiprocess
def test_statistics_and_rows_are_combined_across_two_processes(tmp_path, child_env):
    """Two processes over jax.distributed (gloo on 127.0.0.1), each with its own unequal share of
    the feature rows: the merged FID statistics are NumPy's mean and sample covariance of all the
    rows, and the gathered rows are every process's rows in process order (what eval.py does with
    the Inception features of several hosts). The same processes score a protocol over folders, each
    its share: both report the one-process numbers."""
    import json
    import socket
    import subprocess
    import sys

    from PIL import Image

    import run_gather_stats as worker
    from inpaintjax.protocols import evaluate_protocol
    # the protocol part: each process scores its share of these folders (with its own checkpoint)
    # and both must report what one process computes alone
    folders = tmp_path / "protocol"
    rng = np.random.default_rng(3)
    for i in range(5):
        t = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        o = np.clip(t.astype(int) + rng.integers(-60, 60, t.shape), 0, 255).astype(np.uint8)
        m = ((rng.random((32, 32)) < (0.1 if i % 2 else 0.6)) * 255).astype(np.uint8)
        for sub, img in (("truth", t), ("output", o), ("masks", m)):
            (folders / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folders / sub / f"{i}.png")
    alone = evaluate_protocol(worker.protocol(), str(folders / "truth"), str(folders / "output"),
                              str(folders / "masks"), batch_size=2, devices=jax.devices()[:1])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    procs = [subprocess.Popen([sys.executable, worker.__file__, str(tmp_path / f"p{i}.npz"),
                               "--coordinator", address, "--num_processes", "2", "--process_id", str(i),
                               "--protocol_folders", str(folders)],
                              env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out[-3000:]
    rows = worker.features()
    for i in range(2):
        got = np.load(tmp_path / f"p{i}.npz")
        assert int(got["count"]) == len(rows)
        np.testing.assert_allclose(got["mu"], rows.mean(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got["sigma"], np.cov(rows, rowvar=False), rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(got["rows"], np.concatenate([rows[0::2], rows[1::2]]))
        with open(tmp_path / f"p{i}.json") as fh:
            report = json.load(fh)
        assert report["processes"] == 2 and report["count"] == 5
        assert report["group_counts"] == alone["group_counts"] and set(alone["group_counts"]) == {
            "0-20%", "20-100%", "total"}
        for name, per_group in alone["results"].items():
            for g, v in per_group.items():
                np.testing.assert_allclose([report["results"][name][g]["mean"], report["results"][name][g]["std"]],
                                           [v["mean"], v["std"]], rtol=1e-6)  # float32 per image
    assert not list(folders.glob("state*"))  # each process's checkpoint, removed at the end
