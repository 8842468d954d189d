"""A model through a protocol (`eval.py --protocol`, `training.eval_protocol.run_protocol`), and the
protocol evaluator's checkpoints and state merge.

Truth used: the scores re-derived in NumPy from the files the run wrote (mmagic's hole MAE x100 and
PSNR); the masks re-made from their generator and seed, or read from the mask folder and resized with
PIL's nearest filter; the truth images re-prepared from the sample photographs with PIL's bicubic
filter. Resuming is checked against an uninterrupted run of the same evaluation (bit for bit: the
chunks are the same), and the merged state of two shares against one pass over all images."""

import json
import os
import re
import sys

import jax
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toy_family  # noqa: E402  (registers 'toy')

from inpaintjax import protocols as P  # noqa: E402
from inpaintjax.data import fields, sources  # noqa: E402
from inpaintjax.masks.generators import make_mask  # noqa: E402
from inpaintjax.perceptual import inception  # noqa: E402
from inpaintjax.protocols import evaluate as protocol_eval  # noqa: E402
from inpaintjax.protocols.definitions import MMAGIC  # noqa: E402
from inpaintjax.training import eval_protocol  # noqa: E402
from inpaintjax.training import evaluate as evaluate_lib  # noqa: E402

SIDE = 32
TINY = P.Protocol(name="tiny_mmagic", title="mmagic's definitions at 32x32", image_size=SIDE,
                  metrics=MMAGIC.metrics, mask_sets=("lama_thin",), preparation=P.Preparation(SIDE),
                  published=MMAGIC.published[:1])


def _read(path):
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def model():
    c = toy_family.toy_config()
    c.eval.batch_size = 2
    family = toy_family.ToyFamily(c)
    batch = fields.example_batch(family.batch_spec(), 1, 16, 16)
    variables = family.inference_variables(family.init_state(jax.random.key(3), batch))
    return c, family, variables


@pytest.fixture(scope="module")
def run(model, tmp_path_factory):
    c, family, variables = model
    out = str(tmp_path_factory.mktemp("protocol") / "tiny")
    report = eval_protocol.run_protocol(c, family, variables, TINY, out, num_images=5, seed=4, progress=False)
    return out, report


def test_the_model_fills_the_protocols_inputs_and_is_scored_as_mmagic(run):
    out, report = run
    photos = sources.SampleSource("eval")
    l1, psnr = [], []
    for i in range(5):
        name = f"{i:06d}.png"
        truth = _read(os.path.join(out, "inputs", "truth", name))
        src = photos[i][0]
        h, w = src.shape[:2]
        s = SIDE / min(h, w)
        nw, nh = max(SIDE, int(round(w * s))), max(SIDE, int(round(h * s)))
        big = np.asarray(Image.fromarray(src).resize((nw, nh), Image.BICUBIC))
        top, left = (nh - SIDE) // 2, (nw - SIDE) // 2
        np.testing.assert_array_equal(truth, big[top:top + SIDE, left:left + SIDE])
        hole = _read(os.path.join(out, "inputs", "masks", name)) > 127
        np.testing.assert_array_equal(hole, make_mask("lama_thin", np.random.default_rng([4, i]), SIDE, SIDE) > 0.5)
        output = _read(os.path.join(out, "outputs", name))
        np.testing.assert_array_equal(output[~hole], truth[~hole])  # composited with the known pixels
        assert np.abs(output[hole].astype(int) - truth[hole]).mean() > 1  # the model filled the hole
        a, b = truth / 255.0, output / 255.0
        l1.append(100 * np.abs(a - b)[hole].sum() / (hole.sum() * 3))
        psnr.append(10 * np.log10(1.0 / np.mean((a - b) ** 2)))
    res = report["results"]
    assert report["count"] == 5 and report["method"] == "toy"
    np.testing.assert_allclose([res["l1"]["total"]["mean"], res["l1"]["total"]["std"]], [np.mean(l1), np.std(l1)],
                               rtol=1e-5)
    np.testing.assert_allclose(res["psnr"]["total"]["mean"], np.mean(psnr), rtol=1e-5)
    with open(os.path.join(out, "tiny_mmagic.json")) as fh:
        assert json.load(fh)["results"]["l1"]["total"]["mean"] == pytest.approx(np.mean(l1), rel=1e-5)
    md = open(os.path.join(out, "tiny_mmagic.md")).read()
    assert "| toy | 5 images | lama_thin |" in md and "open-mmlab/mmagic" in md
    assert min(Image.open(os.path.join(out, "tiny_mmagic.png")).size) > 100  # the plot
    assert not os.path.exists(os.path.join(out, "scoring_state.npz"))  # removed once the scores are in


def test_a_rerun_fills_only_the_missing_outputs(run, model, monkeypatch):
    c, family, variables = model
    out, report = run
    outputs = os.path.join(out, "outputs")
    os.remove(os.path.join(outputs, "000003.png"))
    before = {f: os.stat(os.path.join(outputs, f)).st_mtime_ns for f in os.listdir(outputs)}
    calls = []
    real = evaluate_lib.predict
    monkeypatch.setattr(evaluate_lib, "predict", lambda *a: calls.append(1) or real(*a))
    again = eval_protocol.run_protocol(c, family, variables, TINY, out, num_images=5, seed=4, progress=False)
    assert len(calls) == 1  # one batch: the missing image (padded)
    assert {f: os.stat(os.path.join(outputs, f)).st_mtime_ns for f in before} == before
    assert again["results"] == report["results"]
    with pytest.raises(ValueError, match="another request"):  # the inputs of another draw are not mixed in
        eval_protocol.run_protocol(c, family, variables, TINY, out, num_images=5, seed=5, progress=False)


def test_outputs_of_another_checkpoint_are_refused_not_reused(tmp_path, monkeypatch):
    """Two checkpoints (steps 2 and 4) of one tiny run through one protocol folder: the outputs step 2
    wrote are not scored as step 4's. The second evaluation is refused before anything is written,
    in one line naming the folder, the model that made its outputs, the current one and the fix;
    another folder is accepted and gives step 4's numbers; the same model again reuses its outputs."""
    from inpaintjax.training import load_for_inference, train
    c = toy_family.toy_config()
    c.num_steps, c.checkpoint_every, c.image_every = 4, 2, 0
    c.eval.batch_size = 2
    workdir = str(tmp_path / "run")
    train(c, workdir)
    (c2, f2, v2), (c4, f4, v4) = load_for_inference(workdir, step=2), load_for_inference(workdir, step=4)
    kw = dict(num_images=3, seed=4, progress=False)
    first = str(tmp_path / "protocol" / "tiny")
    outputs = os.path.join(first, "outputs")
    at_2 = eval_protocol.run_protocol(c2, f2, v2, TINY, first, **kw)  # eval.py's call: no provenance given

    def files(folder):
        return {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))}
    before = files(outputs)
    with pytest.raises(ValueError) as e:
        eval_protocol.run_protocol(c4, f4, v4, TINY, first, **kw)
    d2, d4 = eval_protocol.variables_digest(v2), eval_protocol.variables_digest(v4)
    assert d2 != d4 and d2 == eval_protocol.variables_digest(load_for_inference(workdir, step=2)[2])
    assert len(before) == 4 and json.loads(before["model.json"]) == {"family": "toy", "label": "toy",
                                                                     "variables_sha256": d2}
    assert str(e.value) == (f"{outputs} holds the outputs of another model (toy, variables sha256 {d2[:12]}), "
                            f"not of the model evaluated now (toy, variables sha256 {d4[:12]}); pass another "
                            f"--protocol_dir, or delete {outputs} to fill it with this model (nothing was deleted)")
    assert files(outputs) == before and not os.path.exists(os.path.join(first, "scoring_state.npz"))

    other = str(tmp_path / "protocol4")  # a fresh --protocol_dir: accepted, with step 4's own numbers
    at_4 = eval_protocol.run_protocol(c4, f4, v4, TINY, other, model=dict(workdir=workdir, step=4), **kw)
    assert at_4["results"]["psnr"] != at_2["results"]["psnr"]
    with open(os.path.join(other, "outputs", "model.json")) as fh:
        assert json.load(fh) == {"family": "toy", "label": "toy", "variables_sha256": d4, "workdir": workdir,
                                 "step": 4}
    refused = (f"{os.path.join(other, 'outputs')} holds the outputs of another model (toy, step 4 of {workdir}, "
               f"variables sha256 {d4[:12]}), not of the model evaluated now (toy, step 2 of {workdir}, variables "
               f"sha256 {d2[:12]}); pass another --protocol_dir")
    with pytest.raises(ValueError, match="^" + re.escape(refused)):
        eval_protocol.run_protocol(c2, f2, v2, TINY, other, model=dict(workdir=workdir, step=2), **kw)
    calls = []
    real = evaluate_lib.predict
    monkeypatch.setattr(evaluate_lib, "predict", lambda *a: calls.append(1) or real(*a))
    again = eval_protocol.run_protocol(c4, f4, v4, TINY, other, **kw)  # the same variables: reused
    assert again["results"] == at_4["results"] and not calls
    monkeypatch.undo()

    os.remove(os.path.join(outputs, "model.json"))  # outputs nobody recorded (an older inpaintjax's)
    with pytest.raises(ValueError, match="holds the outputs of another model \\(a model it does not record: no "
                                         "model.json\\)"):
        eval_protocol.run_protocol(c2, f2, v2, TINY, first, **kw)
    for f in os.listdir(outputs):  # emptied by hand: filled afresh, recorded
        os.remove(os.path.join(outputs, f))
    assert eval_protocol.run_protocol(c4, f4, v4, TINY, first, **kw)["results"] == at_4["results"]


def test_an_interrupted_scoring_resumes_from_its_checkpoint(run, monkeypatch, tmp_path):
    out, _ = run
    folders = (os.path.join(out, "inputs", "truth"), os.path.join(out, "outputs"), os.path.join(out, "inputs", "masks"))
    kw = dict(batch_size=2, checkpoint_every=2, devices=jax.devices()[:1])
    whole = P.evaluate_protocol(TINY, *folders, **kw)
    state = str(tmp_path / "state.npz")
    real, reads = protocol_eval._read_pair, []

    def dies_at_the_fourth(*a):
        if len(reads) == 3:
            raise KeyboardInterrupt("killed")
        reads.append(a[1])
        return real(*a)

    monkeypatch.setattr(protocol_eval, "_read_pair", dies_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        P.evaluate_protocol(TINY, *folders, checkpoint=state, **kw)
    with np.load(state) as f:
        assert int(f["done"]) == 2  # the first chunk of two was saved; the third image was lost
    reads.clear()
    monkeypatch.setattr(protocol_eval, "_read_pair", lambda *a: reads.append(a[1]) or real(*a))
    resumed = P.evaluate_protocol(TINY, *folders, checkpoint=state, **kw)
    assert [os.path.basename(p) for p in reads] == ["000002.png", "000003.png", "000004.png"]
    assert resumed["results"] == whole["results"]  # bit for bit
    assert not os.path.exists(state)
    # a checkpoint of other files is refused, naming it
    with pytest.raises(KeyboardInterrupt):
        reads.clear()
        monkeypatch.setattr(protocol_eval, "_read_pair", dies_at_the_fourth)
        P.evaluate_protocol(TINY, *folders, checkpoint=state, **kw)
    os.utime(os.path.join(folders[1], "000001.png"))
    with pytest.raises(ValueError, match="state.npz belongs to another evaluation"):
        P.evaluate_protocol(TINY, *folders, checkpoint=state, **kw)


def test_black_hole_masks_read_with_their_polarity(run, tmp_path):
    out, report = run
    masks = tmp_path / "black"
    masks.mkdir()
    for f in os.listdir(os.path.join(out, "inputs", "masks")):
        Image.fromarray(255 - _read(os.path.join(out, "inputs", "masks", f))).save(masks / f)
    got = P.evaluate_protocol(TINY, os.path.join(out, "inputs", "truth"), os.path.join(out, "outputs"), str(masks),
                              mask_polarity="mat")
    assert got["results"] == report["results"] and got["mask_polarity"] == "black_hole"


def test_write_inputs_takes_masks_from_a_folder(tmp_path):
    from skimage import data
    photos, masks = tmp_path / "photos", tmp_path / "nvidia"
    photos.mkdir()
    masks.mkdir()
    for k, img in enumerate((data.astronaut(), data.coffee(), data.chelsea())):
        Image.fromarray(img[:90, :70]).save(photos / f"p{k}.png")
    rng = np.random.default_rng(0)
    for k in range(2):  # 64x64, white = hole
        Image.fromarray(((rng.random((64, 64)) < 0.3) * 255).astype(np.uint8)).save(masks / f"m{k}.png")
    m = P.write_inputs(TINY, str(photos), str(tmp_path / "in"), seed=9, mask_folder=str(masks), mask_polarity="nvidia")
    order = np.random.default_rng([9]).permutation(2)
    for i in range(3):
        want = np.asarray(Image.open(masks / f"m{order[i % 2]}.png").resize((SIDE, SIDE), Image.NEAREST)) > 127
        got = _read(tmp_path / "in" / "masks" / f"p{i}.png") > 127
        np.testing.assert_array_equal(got, want)
        assert m["images"][i]["mask_file"] == f"m{order[i % 2]}.png"
    assert m["mask_polarity"] == "white_hole" and m["masks"] == 2
    stamp = os.stat(tmp_path / "in" / "manifest.json").st_mtime_ns
    assert P.write_inputs(TINY, str(photos), str(tmp_path / "in"), seed=9, mask_folder=str(masks),
                          mask_polarity="nvidia")["images"] == m["images"]
    assert os.stat(tmp_path / "in" / "manifest.json").st_mtime_ns == stamp  # reused, not rewritten


def test_two_shares_merged_equal_one_pass(tmp_path, monkeypatch):
    """What several processes do (each scores a share; the states are merged in process order), in
    one process: counts, moments, FID statistics, the feature rows and each row's groups. The
    Inception network is replaced by a fixed random projection of the pixels (its features are not
    what is tested here)."""
    proj = np.random.default_rng(2).standard_normal((SIDE * SIDE * 3, inception.POOL3_DIM)).astype(np.float32) / 100
    head = np.random.default_rng(3).standard_normal((inception.POOL3_DIM, 1008)).astype(np.float32) / 50

    def features(x):
        p3 = np.asarray(x, np.float32).reshape(len(x), -1) / 255.0 @ proj
        return {"pool3": p3, "logits_unbiased": p3 @ head}
    monkeypatch.setattr(inception, "load_weights", lambda path: None)
    monkeypatch.setattr(inception, "make_extractor", lambda *a, **k: features)
    proto = P.Protocol(name="split", title="two bins", image_size=SIDE,
                       metrics=(P.Metric("l1", "l1"), P.Metric("fid", "fid"), P.Metric("pids", "pids")),
                       binning=P.Binning(edges=(0.0, 0.2, 1.0)))
    rng = np.random.default_rng(1)
    items = []
    for i in range(7):
        t = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
        o = np.clip(t.astype(int) + rng.integers(-40, 40, t.shape), 0, 255).astype(np.uint8)
        m = (rng.random((SIDE, SIDE)) < (0.1 if i % 3 else 0.5)).astype(np.float32)
        items.append((t, o, m, ("total",) + proto.binning.groups_of(m)))
    mesh = protocol_eval._make_mesh(jax.devices()[:1])

    def scorer():
        return protocol_eval._Scorer(list(proto.metrics), proto, mesh, 3, "unused.pth", None, None, "sqrtm")
    one, first, second = scorer(), scorer(), scorer()
    for s in (slice(0, 3), slice(3, 6), slice(6, 7)):
        one.add(items[s])
    first.add(items[0:3])
    second.add(items[3:6])
    second.add(items[6:7])
    np.savez(tmp_path / "s.npz", **second.state())  # through a file, as a checkpoint travels
    with np.load(tmp_path / "s.npz") as f:
        first.merge({k: f[k] for k in f.files})
    assert first.counts == one.counts and one.counts["total"] == 7 and len(one.counts) == 3
    for g, mo in one.moments["l1"].items():
        got = first.moments["l1"][g]
        assert got.n == mo.n
        np.testing.assert_allclose([got.mean, got.m2], [mo.mean, mo.m2], rtol=1e-12)
    assert set(one.fid_stats) == set(first.fid_stats) == set(one.counts)
    for g, (t, o) in one.fid_stats.items():
        for a, b in ((first.fid_stats[g][0], t), (first.fid_stats[g][1], o)):
            assert a.count == b.count == one.counts[g]
            np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(a.scatter, b.scatter, rtol=1e-9, atol=1e-9 * np.abs(b.scatter).max())
    assert [set(m) for m in first.members] == [set(m) for m in one.members]
    for a, b in ((first.pool3[0], one.pool3[0]), (first.pool3[1], one.pool3[1]), (first.logits, one.logits)):
        np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))
    assert first.sizes == one.sizes == {(SIDE, SIDE)}
    order = ["0-20%", "20-100%", "total"]
    proto_pids = P.Protocol(name="pids", title="", image_size=SIDE, metrics=(P.Metric("pids", "pids"),),
                            binning=proto.binning)
    first.metrics = one.metrics = list(proto_pids.metrics)
    merged, single = first.results(order), one.results(order)
    assert merged["pids"] == single["pids"]  # (FID: the statistics above; its sqrtm is tested elsewhere)


def test_a_tfds_split_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="cannot open TFDS dataset 'no_such_set' split 'validation'"):
        P.write_inputs(TINY, "tfds:no_such_set:validation", str(tmp_path / "in"))
    with pytest.raises(ValueError, match="tfds:NAME:SPLIT"):
        P.write_inputs(TINY, "tfds:places365_small", str(tmp_path / "in"))
    assert not os.path.exists(tmp_path / "in")


def test_an_fid_that_sqrtm_refuses_is_reported_not_computed(tmp_path, monkeypatch):
    """pytorch-fid's rule refuses an FID whose sqrtm(S1 S2) has a diagonal imaginary part above 1e-3:
    that group's FID is reported not computed, with inpaintjax's reason, and every other number of
    the run is kept (re-derived in NumPy here). SciPy's sqrtm is replaced by one that returns such a
    matrix (finding real features that do so would take a 2048 x 2048 sqrtm per try); the Inception
    network by a fixed random projection, as above."""
    import scipy.linalg
    proj = np.random.default_rng(2).standard_normal((SIDE * SIDE * 3, inception.POOL3_DIM)).astype(np.float32) / 100
    monkeypatch.setattr(inception, "load_weights", lambda path: None)
    monkeypatch.setattr(inception, "make_extractor", lambda *a, **k: lambda x: {
        "pool3": np.asarray(x, np.float32).reshape(len(x), -1) / 255.0 @ proj,
        "logits_unbiased": np.zeros((len(x), 1008), np.float32)})
    monkeypatch.setattr(scipy.linalg, "sqrtm", lambda a: np.eye(len(a)) * (1 + 0.5j))
    rng = np.random.default_rng(5)
    dirs = {k: tmp_path / k for k in ("truth", "outputs")}
    l1 = []
    for d in dirs.values():
        d.mkdir()
    for i in range(4):
        t = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
        o = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
        Image.fromarray(t).save(dirs["truth"] / f"{i}.png")
        Image.fromarray(o).save(dirs["outputs"] / f"{i}.png")
        l1.append(np.abs(t / 255.0 - o / 255.0).mean())
    proto = P.Protocol(name="fid_l1", title="", image_size=SIDE, metrics=(P.Metric("l1", "l1"), P.Metric("fid", "fid")))
    report = P.evaluate_protocol(proto, str(dirs["truth"]), str(dirs["outputs"]), inception_path="unused.pth",
                                 devices=jax.devices()[:1])
    assert np.isnan(report["results"]["fid"]["total"]["mean"])
    assert "imaginary component" in report["not_computed"]["fid"]["total"]
    assert report["results"]["l1"]["total"]["mean"] == pytest.approx(np.mean(l1), rel=1e-5)
    assert "imaginary component" in P.format_text(report) and "imaginary component" in P.to_markdown(report)
