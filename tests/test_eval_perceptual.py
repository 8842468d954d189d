"""FID, KID, IS, LPIPS and P-IDS / U-IDS in the training evaluation (`evaluate()`, eval.py).

Truth: the same metrics computed directly by `inpaintjax.perceptual` (unsharded, unstreamed: NumPy
mean and covariance of all features at once) on outputs re-derived here (the toy model's `inpaint`,
the mean-colour fill) for the frozen masks and held-out images evaluate() used. The networks carry
random weights written here as .pth files (`inception.random_state_dict`, `lpips.random_state_dicts`,
as tests/test_fid.py and tests/test_evaluate_command.py use them). The Inception input is 75 px
instead of 299 (its smallest size) to keep the test cheap; the network, its resize modes and FID's
Frechet distance are checked against pytorch-fid in tests/test_fid.py. The Frechet distance here is
a stand-in that records its inputs (SciPy's sqrtm of a 2048 x 2048 matrix takes minutes on a small
CPU): the test checks the statistics evaluate() hands to it and that the tables report its value.
"""

import gc
import json
import logging
import os
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toy_family  # noqa: E402  (registers 'toy')
from conftest import mesh_over  # noqa: E402

from inpaintjax import baselines, masks as masks_lib  # noqa: E402
from inpaintjax.data import eval_images, fields  # noqa: E402
from inpaintjax.perceptual import fid, inception, lpips  # noqa: E402
from inpaintjax.perceptual.torch_files import WeightFileError  # noqa: E402
from inpaintjax.training import eval_perceptual  # noqa: E402
from inpaintjax.training import evaluate as evaluate_lib  # noqa: E402

# the tests that share the module's `runs` (two evaluations with Inception) run in one xdist worker
# (make test's --dist loadgroup), which builds them once
pytestmark = pytest.mark.xdist_group("eval_perceptual")

SIZE = 75  # Inception input side in these tests
PROBE = np.random.default_rng(5).standard_normal(inception.POOL3_DIM)


def _cheap_frechet(mu1, sigma1, mu2, sigma2, method="sqrtm"):
    """||mu1 - mu2||^2 + tr(S1) + tr(S2): the Frechet distance without its sqrtm term."""
    d = np.asarray(mu1) - np.asarray(mu2)
    return float(d @ d + np.trace(sigma1) + np.trace(sigma2))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    import torch
    folder = tmp_path_factory.mktemp("weights")
    paths = {"inception": str(folder / inception.WEIGHTS_FILE),
             "backbone": str(folder / lpips.BACKBONE_FILES["alex"]), "lin": str(folder / "alex.pth")}
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in inception.random_state_dict(0).items()},
               paths["inception"])
    sd, lin = lpips.random_state_dicts("alex", 0)
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, paths["backbone"])
    torch.save({k: torch.from_numpy(v) for k, v in lin.items()}, paths["lin"])
    return paths


def _config(weights):
    c = toy_family.toy_config()
    c.eval.baselines = "mean"
    c.eval.perceptual_min_bucket = 2  # the toy set has 2 masks a bucket
    c.eval.inception_weights = weights["inception"]
    c.eval.lpips_backbone = weights["backbone"]
    c.eval.lpips_lin = weights["lin"]
    return c


@pytest.fixture(scope="module")
def runs(weights, tmp_path_factory):
    """evaluate() with 8 and with 1 device(s): {n: (out_dir, summary, recorded FID inputs)}, plus
    the config and the model's weights."""
    c = _config(weights)
    family = toy_family.ToyFamily(c)
    batch = fields.example_batch(family.batch_spec(), 1, 16, 16)
    variables = family.inference_variables(family.init_state(jax.random.key(1), batch))
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inception, "INPUT_SIZE", SIZE)
        for n in (8, 1):
            calls = []

            def recording(mu1, sigma1, mu2, sigma2, *rest):
                # a random projection of each covariance stands for it (28 of them would be 900 MB)
                calls.append((mu1, sigma1 @ PROBE, mu2, sigma2 @ PROBE))
                return _cheap_frechet(mu1, sigma1, mu2, sigma2)

            mp.setattr(eval_perceptual.fid_lib, "frechet_distance", recording)
            folder = str(tmp_path_factory.mktemp(f"eval{n}"))
            summary = evaluate_lib.evaluate(c, family, variables, folder, progress=False, mesh=mesh_over(n))
            out[n] = (folder, summary, calls)
            gc.collect()  # the run's replicated weights (95 MB a device) go before the next run
    return c, family, variables, out


def test_eval_reports_the_perceptual_metrics_of_the_direct_computation(runs, weights):
    c, family, variables, out = runs
    folder, summary, calls = out[8]
    ev = os.path.join(folder, "eval")
    tables = {m: json.load(open(os.path.join(ev, f"{f}.json")))
              for m, f in (("toy", "metrics"), ("mean", "baseline_mean"))}
    # the independent path: the frozen masks and held-out images, each method's outputs, features
    masks, buckets = masks_lib.load_eval_mask_set(os.path.join(folder, "eval_masks"), stacked=True)
    images = eval_images(c).astype(np.float32) / 255.0
    pair = np.arange(len(masks)) % len(images)
    truth = images[pair]
    outputs = {"toy": np.clip(np.asarray(family.inpaint(variables, {"image": truth, "mask": masks})["output"]), 0, 1),
               "mean": baselines.fill("mean", truth, masks)}
    params = inception.load_weights(weights["inception"])
    stack = np.concatenate([images, outputs["toy"], outputs["mean"]])
    feats = jax.jit(lambda p, x: inception.features(p, inception.preprocess(x, "pytorch", SIZE)))(params, stack)
    p3 = np.asarray(feats["pool3"], np.float64)
    logits = np.asarray(feats["logits_unbiased"], np.float64)
    n_img, n = len(images), len(masks)
    real = p3[:n_img][pair]
    fake = {"toy": p3[n_img:n_img + n], "mean": p3[n_img + n:]}
    fake_logits = {"toy": logits[n_img:n_img + n], "mean": logits[n_img + n:]}
    lp = lpips.load("alex", weights["backbone"], weights["lin"])
    names = [masks_lib.bucket_name(b) for b in range(len(masks_lib.BUCKETS))]
    for method, table in tables.items():
        d = np.asarray(lpips.distance(lp, truth, outputs[method], "alex"), np.float64)
        assert table["all"]["lpips"] == pytest.approx(d.mean(), rel=1e-5, abs=1e-7)
        for b, name in enumerate(names):
            assert table[name]["lpips"] == pytest.approx(d[buckets == b].mean(), rel=1e-5, abs=1e-7)
        for name, sel in [("all", np.ones(n, bool))] + [(nm, buckets == b) for b, nm in enumerate(names)]:
            a, b = real[sel], fake[method][sel]  # the stand-in needs only the covariances' traces
            d = a.mean(0) - b.mean(0)
            want = d @ d + a.var(0, ddof=1).sum() + b.var(0, ddof=1).sum()
            assert table[name]["fid"] == pytest.approx(want, rel=1e-5)
            kid, kid_std = fid.kernel_inception_distance(real[sel], fake[method][sel])
            assert table[name]["kid"] == pytest.approx(kid, rel=1e-4, abs=1e-6)
        # IS: 10 splits need 10 masks: over all 12, not in a bucket of 2 (the reason is written)
        assert table["all"]["is"] == pytest.approx(fid.inception_score(fake_logits[method])[0], rel=1e-5)
        assert table[names[0]]["is"] is None
        assert table[names[0]]["not_computed"]["is"] == "2 masks; is needs at least 10"
        assert 0.0 <= table["all"]["pids"] <= 0.5 and 0.0 <= table["all"]["uids"] <= 0.5
    # the statistics handed to the Frechet distance are the direct ones (the model's, over all masks)
    model_all = [a for a in calls if np.allclose(a[2], fake["toy"].mean(0), atol=1e-4)]
    assert len(model_all) == 1
    mu1, sigma1, mu2, sigma2 = model_all[0][:4]
    np.testing.assert_allclose(mu1, real.mean(0), atol=1e-5)
    np.testing.assert_allclose(sigma1, np.cov(real, rowvar=False) @ PROBE, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sigma2, np.cov(fake["toy"], rowvar=False) @ PROBE, rtol=1e-4, atol=1e-4)
    assert summary["all"]["fid"] == tables["toy"]["all"]["fid"]
    # the tables show them: comparison.md's columns, the Markdown notes, the CSV header
    comparison = open(os.path.join(ev, "comparison.md")).read()
    header = [x.strip() for x in comparison.splitlines()[2].strip("|").split("|")]
    assert {"fid", "kid", "is", "lpips", "pids", "uids"} <= set(header)
    assert "is in toy 1-10%" in comparison
    assert "2 masks; is needs at least 10" in open(os.path.join(ev, "metrics.md")).read()
    csv_head = open(os.path.join(ev, "baseline_mean.csv")).readline().strip().split(",")
    assert csv_head[-8:] == ["lpips", "fid", "kid", "kid_std", "is", "is_std", "pids", "uids"]


def test_one_and_eight_devices_agree(runs):
    _, _, _, out = runs
    for f in ("metrics", "baseline_mean"):
        one, eight = (json.load(open(os.path.join(out[n][0], "eval", f"{f}.json"))) for n in (1, 8))
        assert list(one) == list(eight)
        for g in one:
            for k, v in one[g].items():
                if isinstance(v, float):
                    assert eight[g][k] == pytest.approx(v, rel=1e-5, abs=1e-6), (f, g, k)
                else:
                    assert eight[g][k] == v, (f, g, k)


def test_bucket_with_too_few_masks_is_not_computed():
    """The per-bucket set metrics need config.eval.perceptual_min_bucket masks (statistics only,
    on random features)."""
    settings = eval_perceptual.Settings(("fid", "kid"), "pytorch", 3)
    pe = eval_perceptual.PerceptualEval.__new__(eval_perceptual.PerceptualEval)
    pe.settings, pe.metrics, pe.want_inception = settings, settings.metrics, True
    pe.keep_pool3, pe.keep_logits = True, False
    rng = np.random.default_rng(0)
    pe.truth_pool3 = rng.uniform(size=(4, inception.POOL3_DIM))
    pe.pair, pe.buckets = np.arange(6) % 4, np.array([0, 0, 1, 1, 1, 1])
    pe.rows = {"m": eval_perceptual._Rows(True, False)}
    pe.rows["m"].add(np.arange(6), pe.buckets, rng.uniform(size=(6, inception.POOL3_DIM)), None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(eval_perceptual.fid_lib, "frechet_distance", _cheap_frechet)
        values, reasons = pe.results()
    assert values["m"]["1-10%"] == {} and reasons["m"]["1-10%"] == {
        "fid": "2 masks < config.eval.perceptual_min_bucket=3", "kid": "2 masks < config.eval.perceptual_min_bucket=3"}
    assert set(values["m"]["10-20%"]) == {"fid", "kid", "kid_std"} and reasons["m"]["10-20%"] == {}
    assert reasons["m"]["20-30%"]["fid"].startswith("0 masks <")


def test_config_errors_stop_before_any_work(weights, tmp_path, caplog):
    c = toy_family.toy_config()
    family = toy_family.ToyFamily(c)
    # no weight file named: nothing computed, one log line naming the keys that enable them
    with caplog.at_level(logging.INFO, logger=eval_perceptual.__name__):
        assert eval_perceptual.from_config(c, mesh_over(1)) is None
    lines = [r.getMessage() for r in caplog.records if r.name == eval_perceptual.__name__]
    assert len(lines) == 1
    assert "fid,kid,is,pids,uids (set config.eval.inception_weights)" in lines[0]
    assert "lpips (set config.eval.lpips_backbone)" in lines[0]
    c.eval.perceptual_metrics = ""
    with caplog.at_level(logging.INFO, logger=eval_perceptual.__name__):
        assert eval_perceptual.from_config(c, mesh_over(1)) is None
    assert "fid,kid,is,lpips,pids,uids (set config.eval.perceptual_metrics)" in caplog.records[-1].getMessage()

    def fails(match, **keys):
        cc = toy_family.toy_config()
        cc.eval.update(keys)
        out = tmp_path / "run"
        with pytest.raises((WeightFileError, ValueError), match=match):
            evaluate_lib.evaluate(cc, family, None, str(out), progress=False, mesh=mesh_over(1))
        assert not out.exists()  # nothing was built or written

    missing = str(tmp_path / "nowhere.pth")
    fails(rf"config.eval.inception_weights='{missing}'.*not found.*pt_inception-2015-12-05-6726825d.pth",
          inception_weights=missing)
    # the LPIPS backbone named as the Inception: the key, the path, a missing key, the download
    fails(rf"config.eval.inception_weights='{weights['backbone']}'.*Conv2d_1a_3x3.*pytorch-fid",
          inception_weights=weights["backbone"])
    fails(rf"config.eval.lpips_backbone='{weights['inception']}'.*features.0.weight.*alexnet-owt-7be5be79",
          lpips_backbone=weights["inception"], lpips_lin=weights["lin"])
    fails(r"config.eval.lpips_lin=.*lin0.model.1.weight", lpips_backbone=weights["backbone"],
          lpips_lin=weights["backbone"])
    fails(r"config.eval.perceptual_metrics='fid,sharpness': unknown \['sharpness'\]",
          perceptual_metrics="fid,sharpness")
    # images too small for the LPIPS network: said when the config is read, not at the first batch
    fails(r"config.eval.image_size=24 is below the 31 pixels a side that LPIPS-alex needs",
          image_size=24, lpips_backbone=weights["backbone"], lpips_lin=weights["lin"])
