"""Metrics against scikit-image and NumPy masked formulas; the bucketed accumulator and its writers on a
hand-made example."""

import json

import jax
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from inpaintjax import masks as M
from inpaintjax import metrics as Mt

SSIM_ARGS = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1)


def _structured_pair():
    """Astronaut and the cat at 48x64 (PIL area resize), target vs a degraded prediction."""
    imgs = []
    for im in (skdata.astronaut(), skdata.chelsea()):
        imgs.append(np.asarray(Image.fromarray(im).resize((64, 48), Image.BOX), np.float32) / 255)
    target = np.stack(imgs)
    rng = np.random.default_rng(1)
    pred = target.copy()
    pred[0] = np.roll(target[0], 2, axis=1)  # shifted
    pred[1] = np.clip(target[1] * 0.8 + 0.1 + 0.05 * rng.standard_normal(target[1].shape), 0, 1)
    return pred.astype(np.float32), target


def _random_pair():
    rng = np.random.default_rng(0)
    target = rng.random((3, 32, 40, 3)).astype(np.float32)
    pred = np.clip(target + 0.2 * rng.standard_normal(target.shape), 0, 1).astype(np.float32)
    pred[2] = rng.random((32, 40, 3))  # unrelated image: SSIM near 0
    return pred, target


def _masks(b, h, w):
    return np.stack([M.mask_hw1(M.deepfill_v2_strokes(s, h, w)) for s in range(b)])


@pytest.mark.parametrize("pair", [_random_pair, _structured_pair])
def test_whole_image_metrics_match_skimage_and_numpy(pair):
    pred, target = pair()
    mask = _masks(pred.shape[0], *pred.shape[1:3])
    out = jax.jit(Mt.compute_metrics)(pred, target, mask)
    p64, t64 = pred.astype(np.float64), target.astype(np.float64)
    ssim_alone, psnr_alone = Mt.ssim(pred, target), Mt.psnr(pred, target)
    for i in range(pred.shape[0]):
        ref_ssim = structural_similarity(t64[i], p64[i], **SSIM_ARGS)
        ref_psnr = peak_signal_noise_ratio(t64[i], p64[i], data_range=1)
        np.testing.assert_allclose(out["ssim"][i], ref_ssim, atol=2e-5)
        np.testing.assert_allclose(ssim_alone[i], ref_ssim, atol=2e-5)
        np.testing.assert_allclose(out["psnr"][i], ref_psnr, rtol=1e-5)
        np.testing.assert_allclose(psnr_alone[i], ref_psnr, rtol=1e-5)
        np.testing.assert_allclose(out["l1"][i], np.mean(np.abs(p64[i] - t64[i])), rtol=1e-5)
        np.testing.assert_allclose(out["l2"][i], np.mean((p64[i] - t64[i]) ** 2), rtol=1e-5)


@pytest.mark.parametrize("pair", [_random_pair, _structured_pair])
def test_hole_metrics_match_masked_numpy_and_skimage_full_map(pair):
    pred, target = pair()
    mask = _masks(pred.shape[0], *pred.shape[1:3])
    out = jax.jit(Mt.compute_metrics)(pred, target, mask)
    alone = dict(
        ssim=Mt.ssim(pred, target, mask),
        l1=Mt.l1(pred, target, mask[..., 0]),
        l2=Mt.l2(pred, target, mask),
        psnr=Mt.psnr(pred, target, mask),
    )
    for i in range(pred.shape[0]):
        p, t = pred[i].astype(np.float64), target[i].astype(np.float64)
        hole = mask[i, ..., 0] > 0.5
        n = hole.sum() * p.shape[-1]
        l1 = sum(abs(p[y, x, c] - t[y, x, c]) for y, x in zip(*np.nonzero(hole)) for c in range(3)) / n
        l2 = np.sum(((p - t) ** 2)[hole]) / n
        np.testing.assert_allclose(out["l1_hole"][i], l1, rtol=1e-5)
        np.testing.assert_allclose(out["l2_hole"][i], l2, rtol=1e-5)
        np.testing.assert_allclose(out["psnr_hole"][i], 10 * np.log10(1 / l2), rtol=1e-5)
        _, full = structural_similarity(t, p, full=True, **SSIM_ARGS)
        np.testing.assert_allclose(out["ssim_hole"][i], full[hole].mean(), atol=2e-5)
        np.testing.assert_allclose(alone['ssim'][i], full[hole].mean(), atol=2e-5)
        np.testing.assert_allclose(alone['l1'][i], l1, rtol=1e-5)
        np.testing.assert_allclose(alone['l2'][i], l2, rtol=1e-5)
        np.testing.assert_allclose(alone['psnr'][i], 10 * np.log10(1 / l2), rtol=1e-5)
    # the full map itself is skimage's full map (per pixel within float32 cancellation in E[x^2]-E[x]^2)
    _, full0 = structural_similarity(target[0].astype(np.float64), pred[0].astype(np.float64), full=True, **SSIM_ARGS)
    np.testing.assert_allclose(np.asarray(jax.jit(Mt.ssim_map)(pred, target))[0], full0, atol=5e-4)


def test_hand_worked_values_and_edge_cases():
    target = np.zeros((2, 16, 16, 1), np.float32)
    pred = target.copy()
    pred[0, :8] = 0.5  # half the image off by 0.5: l1 0.25, mse 0.125, psnr 10log10(8)
    mask = np.zeros((2, 16, 16, 1), np.float32)
    mask[0, :4] = 1  # hole inside the wrong half: hole l1 0.5, mse 0.25
    out = Mt.compute_metrics(pred, target, mask)
    np.testing.assert_allclose(out["l1"], [0.25, 0.0], rtol=1e-6)
    np.testing.assert_allclose(out["l2"], [0.125, 0.0], rtol=1e-6)
    np.testing.assert_allclose(out["psnr"][0], 10 * np.log10(8), rtol=1e-6)
    assert np.isinf(out["psnr"][1]) and out["ssim"][1] == pytest.approx(1.0)
    np.testing.assert_allclose(out["l1_hole"][0], 0.5, rtol=1e-6)
    np.testing.assert_allclose(out["psnr_hole"][0], 10 * np.log10(4), rtol=1e-6)
    for k in ("l1_hole", "l2_hole", "psnr_hole", "ssim_hole"):
        assert np.isnan(out[k][1])  # empty hole
    # uint8 input is scaled by 1/255 (0.5 * 255 truncates to 127)
    u8 = (np.asarray(pred) * 255).astype(np.uint8)
    np.testing.assert_allclose(Mt.l1(u8, target), [127 / 255 / 2, 0.0], rtol=1e-6)
    with pytest.raises(ValueError, match="at least 11x11"):
        Mt.ssim(np.zeros((1, 8, 16, 3)), np.zeros((1, 8, 16, 3)))
    with pytest.raises(ValueError, match="same shape"):
        Mt.l1(np.zeros((1, 16, 16, 3)), np.zeros((1, 16, 16, 1)))
    with pytest.raises(ValueError, match="mask"):
        Mt.compute_metrics(pred, target, mask[:, :8])


def test_jit_matches_eager():
    pred, target = _random_pair()
    mask = _masks(3, 32, 40)
    eager = Mt.compute_metrics(pred, target, mask)
    jitted = jax.jit(Mt.compute_metrics)(pred, target, mask)
    for k in Mt.METRICS:
        np.testing.assert_allclose(jitted[k], eager[k], rtol=1e-5, atol=1e-6)
        assert jitted[k].shape == (3,)
    np.testing.assert_allclose(jax.jit(Mt.ssim)(pred, target), eager["ssim"], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- aggregation and writers


def _hand_made():
    acc = Mt.BucketedMetrics()
    acc.add({"l1": np.array([0.1, 0.3, 0.5]), "psnr": np.array([20.0, 30.0, 25.0])}, np.array([0, 0, 2]))
    acc.add({"l1": np.array([0.2, np.nan]), "psnr": np.array([10.0, 40.0])}, np.array([-1, 2]))
    return acc


def test_bucketed_summary_hand_made():
    s = _hand_made().summary()
    assert list(s) == ["1-10%", "10-20%", "20-30%", "30-40%", "40-50%", "50-60%", "all"]
    assert s["1-10%"] == {"l1": pytest.approx(0.2), "psnr": pytest.approx(25.0), "count": 2}
    assert s["10-20%"] == {"l1": None, "psnr": None, "count": 0}
    assert s["20-30%"] == {"l1": pytest.approx(0.5), "psnr": pytest.approx(32.5), "count": 2}  # NaN l1 skipped
    assert s["all"] == {"l1": pytest.approx(0.275), "psnr": pytest.approx(25.0), "count": 5}
    with pytest.raises(ValueError, match="differ"):
        _hand_made().add({"l1": np.zeros(1)}, np.zeros(1, int))
    with pytest.raises(ValueError, match="bucket indices"):
        _hand_made().add({"l1": np.zeros(1), "psnr": np.zeros(1)}, np.array([6]))


def test_writers_hand_made(tmp_path):
    acc = _hand_made()
    md = acc.to_markdown(str(tmp_path / "t.md"))
    assert md == (
        "| bucket | count | l1 | psnr |\n"
        "|---|---:|---:|---:|\n"
        "| 1-10% | 2 | 0.2000 | 25.00 |\n"
        "| 10-20% | 0 | - | - |\n"
        "| 20-30% | 2 | 0.5000 | 32.50 |\n"
        "| 30-40% | 0 | - | - |\n"
        "| 40-50% | 0 | - | - |\n"
        "| 50-60% | 0 | - | - |\n"
        "| all | 5 | 0.2750 | 25.00 |\n"
    )
    assert (tmp_path / "t.md").read_text() == md
    csv_text = acc.to_csv(str(tmp_path / "t.csv"))
    lines = csv_text.splitlines()
    assert lines[0] == "bucket,count,l1,psnr"
    assert lines[1].split(",")[:2] == ["1-10%", "2"] and float(lines[1].split(",")[2]) == pytest.approx(0.2)
    assert lines[2] == "10-20%,0,,"
    assert lines[7].startswith("all,5,") and float(lines[7].split(",")[3]) == 25.0
    assert len(lines) == 8 and (tmp_path / "t.csv").read_text() == csv_text
    acc.to_json(str(tmp_path / "t.json"))
    js = json.loads((tmp_path / "t.json").read_text())
    assert js["20-30%"]["count"] == 2 and js["10-20%"]["l1"] is None and js["all"]["psnr"] == 25.0
    acc.plot_png(str(tmp_path / "plot" / "t.png"))
    png = Image.open(tmp_path / "plot" / "t.png")
    assert png.format == "PNG" and png.size[0] > 200


def test_accumulator_takes_device_arrays_from_compute_metrics():
    pred, target = _random_pair()
    mask = _masks(3, 32, 40)
    out = jax.jit(Mt.compute_metrics)(pred, target, mask)
    buckets = M.bucket_of(M.hole_ratio(mask))
    acc = Mt.BucketedMetrics(Mt.METRICS)
    acc.add(out, buckets)
    acc.add(out, buckets)
    s = acc.summary()
    assert s["all"]["count"] == 6 and set(s["all"]) == set(Mt.METRICS) | {"count"}
    assert sum(s[M.bucket_name(i)]["count"] for i in range(6)) == 2 * int(np.sum(buckets >= 0))
    np.testing.assert_allclose(s["all"]["ssim"], float(np.mean(out["ssim"])), rtol=1e-6)
