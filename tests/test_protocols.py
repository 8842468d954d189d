"""The field's evaluation protocols (inpaintjax.protocols, `inpaintjax evaluate --protocol`).

Truth: each metric definition against an independent re-derivation (a hand NumPy/SciPy zero-padded
Gaussian SSIM for LaMa; OpenCV's filter2D + 5-pixel crop as MAT's and mmagic's code compute it;
scikit-image's rgb2gray / structural_similarity(win_size=51) / peak_signal_noise_ratio as EdgeConnect
calls them; hand-worked relative and masked MAE); LaMa's area-binning edge cases from its
evaluator's rule; LaMa's TSV layout against the output of LaMa's own three pandas lines
(tests/fixtures/make_lama_tsv_golden.py); FID and LPIPS-VGG of the LaMa protocol against pytorch-fid's
and lpips' outputs on the same folders (tests/fixtures/fid_golden.npz, lpips_golden.npz); 1 vs 8
devices in this process.
"""

import dataclasses
import json
import os

import numpy as np
import pytest
from PIL import Image

import test_evaluate_command as tec
from inpaintjax import cli
from inpaintjax import protocols as P
from inpaintjax.protocols import measures

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _pairs(n=6, size=64, seed=0):
    """n (truth, output, mask) of size x size: crops of skimage's astronaut / coffee / chelsea, the
    output the truth with the hole filled by a noisy blur (a plausible, imperfect inpainting)."""
    from skimage import data
    rng = np.random.default_rng(seed)
    sources = [data.astronaut(), data.coffee(), data.chelsea()]
    out = []
    for i in range(n):
        src = sources[i % 3]
        y, x = rng.integers(0, src.shape[0] - size), rng.integers(0, src.shape[1] - size)
        truth = src[y:y + size, x:x + size].astype(np.uint8)
        mask = np.zeros((size, size), np.float32)
        h0, w0 = rng.integers(4, size // 2, 2)
        hh, ww = rng.integers(6, size // 2, 2)
        mask[h0:h0 + hh, w0:w0 + ww] = 1
        fill = np.clip(truth.astype(np.float64) * 0.7 + 40 + rng.normal(0, 12, truth.shape), 0, 255)
        output = np.where(mask[..., None] > 0, fill, truth).round().astype(np.uint8)
        out.append((truth, output, mask))
    return out


def _write_folders(tmp_path, pairs):
    dirs = {k: tmp_path / k for k in ("truth", "outputs", "masks")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    for i, (t, o, m) in enumerate(pairs):
        Image.fromarray(t).save(dirs["truth"] / f"{i:02d}.png")
        Image.fromarray(o).save(dirs["outputs"] / f"{i:02d}.png")
        Image.fromarray((m * 255).astype(np.uint8)).save(dirs["masks"] / f"{i:02d}.png")
    return {k: str(v) for k, v in dirs.items()}


def _f(x):
    return np.asarray(x, np.float32)[None] / 255.0


# ------------------------------------------------------------------------------- metric definitions
def _gauss_2d(size=11, sigma=1.5):
    r = np.arange(size) - size // 2
    g = np.exp(-r ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    return np.outer(g, g)


def _hand_ssim_zero_pad(a, b):
    """LaMa's SSIM in NumPy: per channel, 11x11 Gaussian correlation over a zero-padded image."""
    from scipy.ndimage import correlate
    w = _gauss_2d()
    f = lambda z: correlate(z, w, mode="constant", cval=0.0)
    vals = []
    for c in range(a.shape[-1]):
        x, y = a[..., c], b[..., c]
        mx, my = f(x), f(y)
        vx, vy, cxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
        c1, c2 = 0.01 ** 2, 0.03 ** 2
        vals.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return np.mean(vals)


def test_lama_ssim_is_zero_padded_gaussian():
    t, _, _ = _pairs(1, 48)[0]
    # differences up to the border, where LaMa's zero padding matters
    o = np.clip(t + np.random.default_rng(0).normal(0, 20, t.shape), 0, 255).astype(np.uint8)
    lama = P.get_protocol("lama").metric("ssim")
    got = float(measures.ssim(_f(t), _f(o), **lama.options)[0])
    want = _hand_ssim_zero_pad(t / 255.0, o / 255.0)
    assert got == pytest.approx(want, abs=2e-6)
    # the border matters at this size: a reflect-padded SSIM is another number
    assert abs(float(measures.ssim(_f(t), _f(o), padding="reflect")[0]) - want) > 1e-3


def test_mat_and_mmagic_ssim_is_cv2_filter_then_crop():
    import cv2
    t, o, _ = _pairs(1, 40, seed=1)[0]
    a, b = t.astype(np.float64), o.astype(np.float64)
    # MAT evaluatoin/cal_psnr_ssim_l1.py and mmagic's _ssim per channel: filter2D, crop 5, C on [0, 255]
    win = np.outer(cv2.getGaussianKernel(11, 1.5), cv2.getGaussianKernel(11, 1.5).T)
    f = lambda z: cv2.filter2D(z, -1, win)[5:-5, 5:-5]
    per_channel = []
    for c in range(3):
        x, y = a[..., c], b[..., c]
        mx, my = f(x), f(y)
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        s = ((2 * mx * my + c1) * (2 * (f(x * y) - mx * my) + c2)) / \
            ((mx ** 2 + my ** 2 + c1) * (f(x * x) - mx ** 2 + f(y * y) - my ** 2 + c2))
        per_channel.append(s.mean())
    for name in ("mat", "mmagic"):
        m = P.get_protocol(name).metric("ssim")
        assert float(measures.ssim(_f(t), _f(o), **m.options)[0]) == pytest.approx(np.mean(per_channel), abs=2e-6)
    mse = np.mean((a - b) ** 2)
    assert float(measures.psnr(_f(t), _f(o))[0]) == pytest.approx(20 * np.log10(255 / np.sqrt(mse)), abs=1e-4)
    assert float(measures.l1(_f(t), _f(o))[0]) == pytest.approx(np.mean(np.abs(a - b)) / 255, abs=1e-7)


def test_edgeconnect_definitions_match_skimage():
    from skimage.color import rgb2gray
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    t, _, _ = _pairs(1, 64, seed=2)[0]
    o = np.clip(t + np.random.default_rng(2).normal(0, 20, t.shape), 0, 255).astype(np.uint8)
    gt, go = rgb2gray(t / 255.0), rgb2gray(o / 255.0)
    proto = P.get_protocol("edgeconnect")
    grey_t, grey_o = measures.to_grey(_f(t)), measures.to_grey(_f(o))
    np.testing.assert_allclose(np.asarray(grey_t)[0, ..., 0], gt, atol=1e-6)
    ssim = proto.metric("ssim")
    got = float(measures.ssim(grey_t, grey_o, **ssim.options)[0])
    assert got == pytest.approx(structural_similarity(gt, go, data_range=1, win_size=51), abs=2e-5)
    # another window is another number: the definition is the 51x51 one
    assert abs(structural_similarity(gt, go, data_range=1, win_size=7) - got) > 1e-3
    assert float(measures.psnr(grey_t, grey_o)[0]) == pytest.approx(peak_signal_noise_ratio(gt, go, data_range=1),
                                                                   abs=1e-3)
    assert float(measures.mae_relative(grey_t, grey_o)[0]) == pytest.approx(np.sum(np.abs(gt - go)) / np.sum(gt + go),
                                                                           rel=1e-5)
    # hand-worked: |0.2-0.1| + |0.4-0.4| = 0.1 over (0.2+0.1) + (0.4+0.4) = 1.1
    a, b = np.array([0.2, 0.4]).reshape(1, 1, 2, 1), np.array([0.1, 0.4]).reshape(1, 1, 2, 1)
    assert float(measures.mae_relative(a, b)[0]) == pytest.approx(0.1 / 1.1, rel=1e-6)


def test_mmagic_masked_mae_hand_worked():
    # 2x2 RGB, hole = the left column; |diff| in the hole: 0.1 x 3 channels + 0.3 x 3 channels
    t = np.zeros((1, 2, 2, 3), np.float32)
    o = t.copy()
    o[0, 0, 0], o[0, 1, 0], o[0, 0, 1] = 0.1, 0.3, 0.5  # (0, 1) is outside the hole
    m = np.zeros((1, 2, 2, 1), np.float32)
    m[0, :, 0] = 1
    want = (0.1 * 3 + 0.3 * 3) / (2 * 3)  # sum |diff| * mask / (sum(mask) * C) = 0.2
    assert float(measures.mae_masked(t, o, m)[0]) == pytest.approx(want, rel=1e-6)
    assert P.get_protocol("mmagic").metric("l1").scale == 100.0


# --------------------------------------------------------------------------------------- binning
def test_lama_area_bins_edges():
    b = P.get_protocol("lama").binning
    names = b.bin_names()
    assert names[0] == "0-10%" and names[-1] == "90-100%"
    idx = b.bin_index([0.0, 0.0999, 0.1, 0.15, 0.5, 0.99, 1.0])
    # searchsorted(linspace(0, 1, 11), area, 'right') - 1, area 1.0 moved into the last bin
    assert idx.tolist() == [0, 0, 1, 1, 5, 9, 9]
    full = np.ones((10, 10), np.float32)
    assert b.groups_of(full) == ("90-100%",)
    tenth = np.zeros((10, 10), np.float32)
    tenth[0] = 1
    assert b.groups_of(tenth) == ("10-20%",)


def test_pconv_buckets_and_border_split():
    b = P.get_protocol("pconv").binning
    assert b.bin_index([0.01, 0.0101, 0.1, 0.6, 0.61]).tolist() == [-1, 0, 0, 5, -1]
    m = np.zeros((512, 512), np.float32)
    m[100:300, 100:300] = 1  # 15.3%, 100 px from the border
    assert b.groups_of(m) == ("10-20% N/B",)
    m[100:300, 40:60] = 1  # now a hole 40 px from the left border (< 50)
    assert b.groups_of(m) == ("10-20% B",)
    # at 64 px the 50-of-512 band is 6 px
    s = np.zeros((64, 64), np.float32)
    s[7:30, 7:30] = 1
    assert not P.touches_border(s, 50, 512)
    s[5, 10] = 1
    assert P.touches_border(s, 50, 512)


def test_running_moments_equal_numpy_std():
    rng = np.random.default_rng(0)
    v = rng.normal(3.0, 2.0, 101)
    acc = P.RunningMoments()
    for part in np.split(v, [7, 8, 50, 90]):
        acc.update(part)
    assert acc.n == 101 and acc.mean == pytest.approx(v.mean(), rel=1e-12)
    assert acc.std == pytest.approx(v.std(), rel=1e-10)  # LaMa: numpy's std, ddof 0


def _same(got, want):
    """got == want for floats, NaN equal to NaN, finite values to float64 rounding."""
    if np.isnan(want) or np.isinf(want):
        return (np.isnan(got) and np.isnan(want)) or got == want
    return got == pytest.approx(want, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("extra", [(), (np.inf,), (np.inf, np.inf), (-np.inf,), (np.nan,), (np.inf, -np.inf),
                                   (np.inf, np.nan), (np.inf, 1e3, -np.inf, np.nan)])
def test_running_moments_with_non_finite_values_equal_numpy_on_the_whole_stream(extra):
    """A PSNR is +inf where an output equals its truth: the mean and std are np.mean and np.std
    (ddof 0) over all values, whatever the chunks and the merge order. The truth, by hand: finite
    only -> NumPy's numbers; +inf (and no NaN, no -inf) -> mean +inf; -inf likewise; NaN, or +inf
    and -inf together -> mean NaN; std NaN as soon as one value is not finite."""
    rng = np.random.default_rng(len(extra))
    finite = rng.normal(20.0, 3.0, 11)
    has_pos, has_neg, has_nan = np.inf in extra, -np.inf in extra, any(np.isnan(x) for x in extra)
    want_mean = (np.nan if has_nan or (has_pos and has_neg) else np.inf if has_pos else -np.inf if has_neg
                 else finite.mean())
    want_std = np.nan if extra else finite.std()
    for where in ("first", "last", "spread"):  # where the non-finite values sit in the stream
        if where == "first":
            v = np.concatenate([extra, finite])
        elif where == "last":
            v = np.concatenate([finite, extra])
        else:
            v = np.insert(finite, np.linspace(0, len(finite), len(extra)).astype(int), extra)
        with np.errstate(invalid="ignore"):
            assert _same(np.mean(v), want_mean) and _same(np.std(v), want_std)  # the hand truth is NumPy's
        for cuts in ([], [1], [1, 2, 3], [5], [len(v) - 1], list(range(1, len(v)))):
            parts = np.split(v, cuts)
            acc = P.RunningMoments()  # one stream, chunk by chunk
            for part in parts:
                acc.update(part)
            assert acc.n == len(v)
            assert _same(acc.mean, want_mean) and _same(acc.std, want_std), (where, cuts)
            for order in (parts, parts[::-1], parts[1::2] + parts[::2]):  # processes merged in any order,
                merged = P.RunningMoments()  # through to_array / from_array as they travel
                for part in order:
                    one = P.RunningMoments()
                    one.update(part)
                    merged.merge(P.RunningMoments.from_array(one.to_array()))
                assert merged.n == len(v)
                assert _same(merged.mean, want_mean) and _same(merged.std, want_std), (where, cuts)


def test_a_perfect_fill_gives_the_same_psnr_whatever_the_batch_size(tmp_path):
    """The reviewer's case: mmagic at 32x32, image 0's output equals its truth (PSNR +inf). The mean
    PSNR is +inf and its std NaN (np.mean / np.std of the per-image values) with chunks of 1 and 3;
    the other metrics agree to float32 rounding (each chunk size is its own program)."""
    import jax
    pairs = _pairs(3, 32, seed=6)
    pairs[0] = (pairs[0][0], pairs[0][0].copy(), pairs[0][2])
    dirs = _write_folders(tmp_path, pairs)
    got = [P.evaluate_protocol(_small("mmagic", 32), dirs["truth"], dirs["outputs"], dirs["masks"], batch_size=b,
                               devices=jax.devices()[:1])["results"] for b in (1, 3)]
    for r in got:
        assert r["psnr"]["total"]["mean"] == np.inf and np.isnan(r["psnr"]["total"]["std"])
    for name in ("l1", "ssim"):
        for stat in ("mean", "std"):
            assert got[0][name]["total"][stat] == pytest.approx(got[1][name]["total"][stat], rel=1e-5, abs=1e-9)


# ---------------------------------------------------------------------------------------- tables
def test_lama_tsv_layout_matches_lamas_pandas_lines():
    with open(os.path.join(FIXTURES, "lama_tsv_input.json")) as fh:
        data = json.load(fh)
    nan = float("nan")
    results = {m: {g: {k: (nan if v is None else v) for k, v in s.items()} for g, s in per.items()}
               for m, per in data["results"].items()}
    report = {"groups": data["groups"], "results": results, "derived": data["derived"]}
    with open(os.path.join(FIXTURES, "lama_tsv_golden.tsv")) as fh:
        want = fh.read()
    assert P.lama_tsv(report) == want


# -------------------------------------------------------------------------------- the evaluator
def _small(name, size=64, **kw):
    return dataclasses.replace(P.get_protocol(name), name=f"{name}_{size}", image_size=size, **kw)


def test_mmagic_and_edgeconnect_on_folders(tmp_path):
    import cv2
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity
    pairs = _pairs(6, 64, seed=3)
    dirs = _write_folders(tmp_path, pairs)
    report = P.evaluate_protocol(_small("mmagic"), dirs["truth"], dirs["outputs"], dirs["masks"], batch_size=4)
    mae = [np.sum(np.abs(t / 255.0 - o / 255.0) * m[..., None]) / (m.sum() * 3 + 1e-12) * 100 for t, o, m in pairs]
    assert report["results"]["l1"]["total"]["mean"] == pytest.approx(np.mean(mae), rel=1e-5)
    assert report["results"]["l1"]["total"]["std"] == pytest.approx(np.std(mae), rel=1e-4)
    psnr = [20 * np.log10(255 / np.sqrt(np.mean((t.astype(float) - o) ** 2))) for t, o, _ in pairs]
    assert report["results"]["psnr"]["total"]["mean"] == pytest.approx(np.mean(psnr), abs=1e-4)
    win = np.outer(cv2.getGaussianKernel(11, 1.5), cv2.getGaussianKernel(11, 1.5).T)
    assert report["groups"] == ["total"] and report["count"] == 6 and report["comparable"]
    text = P.format_text(report)
    assert "8.635" in text and "configs/deepfillv2/README.md" in text and "0a560bba" in text
    del win

    ec = P.evaluate_protocol(_small("edgeconnect"), dirs["truth"], dirs["outputs"], dirs["masks"], batch_size=4,
                             skip=["fid"])
    ratios = [float(m.mean()) for _, _, m in pairs]
    groups = {}
    for (t, o, m), r in zip(pairs, ratios):
        g = P.get_protocol("pconv").binning.bin_names()[int(P.get_protocol("pconv").binning.bin_index(r)[0])]
        gt, go = rgb2gray(t / 255.0), rgb2gray(o / 255.0)
        groups.setdefault(g, []).append(structural_similarity(gt, go, data_range=1, win_size=51))
    for g, vals in groups.items():
        assert ec["results"]["ssim"][g]["mean"] == pytest.approx(np.mean(vals), abs=3e-5)
        assert ec["group_counts"][g] == len(vals)
    assert not ec["comparable"] and "fid" not in ec["results"]


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """The FID golden's seeded random Inception weights as a .pth file."""
    import torch
    from inpaintjax.perceptual import inception
    path = str(tmp_path_factory.mktemp("inception") / inception.WEIGHTS_FILE)
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in
                inception.random_state_dict(int(tec.FID_GOLDEN["seed"])).items()}, path)
    return path


def test_lama_protocol_fid_lpips_against_pytorch_fid_and_lpips(tmp_path, inception_file):
    import torch
    from inpaintjax.perceptual import fid, lpips
    dirs = tec._folders(tmp_path)
    inc_path = inception_file
    sd, _ = lpips.random_state_dicts("vgg", int(tec.LPIPS_GOLDEN["seed"]))
    backbone = str(tmp_path / lpips.BACKBONE_FILES["vgg"])
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, backbone)
    lin = str(tmp_path / "vgg.pth")
    torch.save({f"lin{i}.model.1.weight": torch.from_numpy(tec.LPIPS_GOLDEN[f"lin_vgg_{i}"].reshape(1, -1, 1, 1))
                for i in range(5)}, lin)
    import jax
    tables = str(tmp_path / "tables")
    report = P.evaluate_protocol("lama", dirs["truth"], dirs["outputs"], dirs["masks"], inception_path=inc_path,
                                 lpips_backbone=backbone, lpips_lin=lin, allow_other_size=True,
                                 devices=jax.devices()[:1], fid_method="eigh")
    P.write_tables(report, tables)
    report = json.load(open(os.path.join(tables, "lama.json")))
    res = report["results"]
    assert res["fid"]["total"]["mean"] == pytest.approx(float(tec.FID_GOLDEN["fid_folders"]), rel=1e-4)
    want_lpips = tec.LPIPS_GOLDEN["vgg_square"].astype(np.float64)
    assert res["lpips"]["total"]["mean"] == pytest.approx(want_lpips.mean(), abs=1e-5)
    assert res["lpips"]["total"]["std"] == pytest.approx(want_lpips.std(), abs=1e-5)
    truth, outputs = tec.FID_GOLDEN["truth"] / 255.0, tec.FID_GOLDEN["outputs"] / 255.0
    want_ssim = [_hand_ssim_zero_pad(truth[i], outputs[i]) for i in range(len(truth))]
    assert res["ssim"]["total"]["mean"] == pytest.approx(np.mean(want_ssim), abs=2e-6)
    # the groups: each bin's FID is that of its images' pytorch-fid features; NaN for one image
    n = len(truth)
    areas = [float(np.any(tec.FID_GOLDEN["truth"][i] != tec.FID_GOLDEN["outputs"][i], -1).mean()) for i in range(n)]
    bins = P.get_protocol("lama").binning
    feats = tec.FID_GOLDEN["pool3_299"].astype(np.float64)
    for g in report["groups"][:-1]:
        sel = [i for i in range(n) if bins.bin_names()[int(bins.bin_index(areas[i])[0])] == g]
        got = res["fid"][g]["mean"]
        assert report["group_counts"][g] == len(sel)
        if len(sel) < 2:
            assert got is None  # NaN in the JSON
        elif len(sel) == n:  # the fixture's three holes have one area: the bin's FID is the total's
            assert got == pytest.approx(float(tec.FID_GOLDEN["fid_folders"]), rel=1e-4)
        else:
            assert got == pytest.approx(fid.fid_from_features(feats[:n][sel], feats[n:][sel], "eigh"), rel=1e-4)
    tsv = open(os.path.join(tables, "lama.tsv")).read().splitlines()
    assert tsv[0].split("\t") == ["", "fid", "lpips", "lpips", "lpips_fid100_f1", "ssim", "ssim"]
    assert tsv[-1].startswith("total\t") and float(tsv[-1].split("\t")[4]) == pytest.approx(
        report["derived"]["lpips_fid100_f1"], abs=1e-4)


def test_one_and_eight_devices_agree(tmp_path):
    import jax
    pairs = _pairs(5, 64, seed=4)
    dirs = _write_folders(tmp_path, pairs)
    proto = _small("mat")
    # 1 device: three chunks of 2; 8 devices: one chunk of 8 with 3 padded rows
    kw = dict(skip=["fid", "pids", "uids", "lpips"], batch_size=2)
    one = P.evaluate_protocol(proto, dirs["truth"], dirs["outputs"], dirs["masks"], devices=jax.devices()[:1], **kw)
    eight = P.evaluate_protocol(proto, dirs["truth"], dirs["outputs"], dirs["masks"], devices=jax.devices()[:8], **kw)
    assert one["devices"] == 1 and eight["devices"] == 8
    for name in ("psnr", "ssim", "l1"):
        for stat in ("mean", "std"):
            assert eight["results"][name]["total"][stat] == pytest.approx(one["results"][name]["total"][stat],
                                                                         rel=1e-6, abs=1e-9)


def test_missing_weights_are_refused_naming_the_option(tmp_path, capsys):
    dirs = _write_folders(tmp_path, _pairs(2, 32, seed=5))
    base = ["evaluate", "--truth", dirs["truth"], "--output", dirs["outputs"], "--mask", dirs["masks"], "--any-size"]
    assert cli.main(base + ["--protocol", "lama"]) == 2
    assert "--inception FILE" in capsys.readouterr().err
    assert cli.main(base + ["--protocol", "lama", "--skip", "fid"]) == 2
    assert "--lpips-backbone FILE" in capsys.readouterr().err
    assert cli.main(base + ["--protocol", "comodgan"]) == 2
    assert "--inception FILE" in capsys.readouterr().err
    assert cli.main(base + ["--protocol", "lamma"]) == 2
    assert "Did you mean 'lama'" in capsys.readouterr().err
    assert cli.main(["evaluate", "--truth", dirs["truth"], "--output", dirs["outputs"], "--protocol", "mmagic",
                     "--any-size"]) == 2
    assert "--mask DIR" in capsys.readouterr().err
    # the protocol's size is enforced unless --any-size
    assert cli.main(["evaluate", "--truth", dirs["truth"], "--output", dirs["outputs"], "--mask", dirs["masks"],
                     "--protocol", "mmagic"]) == 2
    assert "evaluates 256x256 images" in capsys.readouterr().err


def test_protocol_from_a_users_file(tmp_path, capsys):
    dirs = _write_folders(tmp_path, _pairs(3, 32, seed=6))
    spec = {"name": "my_l1", "title": "mean L1 in %, grouped like LaMa", "image_size": 32,
            "metrics": [{"name": "l1", "measure": "l1", "scale": 100.0, "higher_is_better": False}],
            "binning": {"edges": [0.0, 0.25, 0.5, 1.0]}}
    path = tmp_path / "my_protocol.json"
    path.write_text(json.dumps(spec))
    try:
        rc = cli.main(["evaluate", "--protocol-file", str(path), "--protocol", "my_l1", "--truth", dirs["truth"],
                       "--output", dirs["outputs"], "--mask", dirs["masks"], "--report", str(tmp_path / "r.json"),
                       "--quiet"])
        assert rc == 0, capsys.readouterr().err
        report = json.load(open(tmp_path / "r.json"))
        pairs = _pairs(3, 32, seed=6)
        want = np.mean([np.mean(np.abs(t / 255.0 - o / 255.0)) * 100 for t, o, _ in pairs])
        assert report["results"]["l1"]["total"]["mean"] == pytest.approx(want, rel=1e-5)
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**spec, "metrics": [{"name": "l1", "measure": "l1", "padding": "zero"}]}))
        assert cli.main(["evaluate", "--protocol-file", str(bad), "--protocol", "my_l1", "--truth", dirs["truth"],
                         "--output", dirs["outputs"]]) == 2
        assert "padding" in capsys.readouterr().err
    finally:
        P.PROTOCOLS.pop("my_l1", None)


def test_write_inputs_is_seeded_and_masks_the_truth(tmp_path):
    from skimage import data
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.astronaut()[:100, :80]).save(photos / "a.png")
    Image.fromarray(data.coffee()[:50, :70]).save(photos / "b.jpg")
    proto = _small("lama", 32, mask_sets=("lama_thin",), preparation=P.Preparation(32))
    m1 = P.write_inputs(proto, str(photos), str(tmp_path / "one"), seed=7)
    m2 = P.write_inputs(proto, str(photos), str(tmp_path / "two"), seed=7)
    assert m1["images"] == m2["images"] and m1["mask_set"] == "lama_thin"
    from inpaintjax.masks.generators import make_mask
    for i, stem in enumerate(("a", "b")):
        one = {k: np.asarray(Image.open(tmp_path / "one" / k / f"{stem}.png")) for k in ("truth", "masks", "masked")}
        two = {k: np.asarray(Image.open(tmp_path / "two" / k / f"{stem}.png")) for k in ("truth", "masks", "masked")}
        for k in one:
            np.testing.assert_array_equal(one[k], two[k])
        hole = make_mask("lama_thin", np.random.default_rng([7, i]), 32, 32) > 0.5
        np.testing.assert_array_equal(one["masks"] > 127, hole)
        np.testing.assert_array_equal(one["masked"], np.where(hole[..., None], 0, one["truth"]))
        assert one["truth"].shape == (32, 32, 3)
    # the truth: short side to 32 (PIL bicubic), centre crop
    src = data.astronaut()[:100, :80]
    want = np.asarray(Image.fromarray(src).resize((32, 40), Image.BICUBIC))[4:36]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "one" / "truth" / "a.png")), want)


def test_published_rows_cite_a_file_and_commit():
    import re
    shown = 0
    for proto in P.PROTOCOLS.values():
        for row in proto.published:
            assert re.search(r"[0-9a-f]{40}", row.source) and (".md" in row.source or ".py" in row.source)
            assert set(row.values) <= {m.name for m in proto.metrics}
            shown += 1
    assert shown == 8 + 8  # mmagic's 8 reproductions, MAT's README table (4 rows x 2 mask sets)
    assert not P.get_protocol("lama").published and not P.get_protocol("pconv").published


def test_pids_uids_through_the_evaluator(tmp_path, inception_file):
    """P-IDS/U-IDS of a user protocol (pytorch-fid's resize) against CoModGAN's definition applied to
    pytorch-fid's features of the same images."""
    import jax
    from inpaintjax.perceptual.ids import inception_discriminative_scores
    dirs = tec._folders(tmp_path)
    inc_path = inception_file
    proto = P.Protocol(name="ids_pytorch", title="P-IDS/U-IDS with pytorch-fid's resize", image_size=64,
                       metrics=(P.Metric("pids", "pids", scale=100.0), P.Metric("uids", "uids", scale=100.0)))
    report = P.evaluate_protocol(proto, dirs["truth"], dirs["outputs"], inception_path=inc_path,
                                 devices=jax.devices()[:1])
    n = len(tec.FID_GOLDEN["truth"])
    feats = tec.FID_GOLDEN["pool3_299"].astype(np.float64)
    pids, uids = inception_discriminative_scores(feats[:n], feats[n:])
    assert report["results"]["pids"]["total"]["mean"] == pytest.approx(100 * pids, abs=1e-9)
    assert report["results"]["uids"]["total"]["mean"] == pytest.approx(100 * uids, abs=1e-9)


def test_every_builtin_protocols_mask_sets_are_registered_generators():
    """The mask sets a protocol names draw masks at their protocol's size (1 = hole)."""
    from inpaintjax.masks.generators import make_mask
    from inpaintjax.protocols.definitions import PROTOCOLS
    named = {name for p in PROTOCOLS.values() for name in p.mask_sets}
    assert {"lama_thin_256", "lama_thick_512", "comodgan_512", "mat_small_256"} <= named
    for name in sorted(named):
        size = 256 if name.endswith("256") else 512
        m = make_mask(name, np.random.default_rng(0), size, size)
        assert m.shape[:2] == (size, size) and 0 < m.mean() < 1, name


@pytest.mark.parametrize("measure, options, named", [
    ("fid", {"covariance": "bogus"}, "'bogus'"),
    ("lpips", {"net": "resnet"}, "'resnet'"),
    ("ssim", {"padding": "mirror"}, "'mirror'"),
    ("ssim", {"window": "box"}, "'box'"),
    ("ssim", {"size": 10}, "10"),
    ("ssim", {"sigma": 0}, "0"),
    ("ssim", {"sample_covariance": "yes"}, "'yes'"),
    ("ssim", {"k1": -0.01}, "-0.01"),
    ("is", {"splits": 0}, "0"),
    ("is", {"splits": 2.5}, "2.5"),
])
def test_option_values_are_refused_at_definition(measure, options, named):
    """An option value the measure cannot use is refused when the metric is defined, naming the
    metric, the option and the value (not later, or silently as another definition)."""
    import re
    with pytest.raises(ValueError, match=f"metric 'x'.*{next(iter(options))}.*{re.escape(named)}"):
        P.Metric("x", measure, options)


@pytest.mark.parametrize("measure", ["lpips", "fid", "pids", "uids", "is"])
def test_grey_is_refused_for_a_measure_that_does_not_take_it(measure, tmp_path):
    """colour="grey" converts with rgb2gray for the per-image measures only; asked of a network or
    set measure it would be recorded in the report and ignored, so it is refused when the metric
    (or a protocol, or a protocol file) is defined, naming the metric, the measure and the rule."""
    import re
    want = re.escape(f"metric 'x': colour 'grey' applies to the per-image measures ({', '.join(measures.PER_IMAGE)}) "
                     f"only; measure {measure!r}")
    with pytest.raises(ValueError, match=want):
        P.Metric("x", measure, colour="grey")
    with pytest.raises(ValueError, match=want):
        P.Protocol(name="g", title="", image_size=32, metrics=({"name": "x", "measure": measure, "colour": "grey"},))
    path = tmp_path / "grey.json"
    path.write_text(json.dumps({"name": "grey_" + measure, "title": "", "image_size": 32,
                                "metrics": [{"name": "x", "measure": measure, "colour": "grey"}]}))
    with pytest.raises(ValueError, match=want):
        P.load_protocol_file(str(path))
    assert "grey_" + measure not in P.PROTOCOLS
    assert P.Metric("x", measure).colour == "rgb"


def test_grey_per_image_measures_and_the_builtin_protocols_still_build():
    for measure in measures.PER_IMAGE:
        assert P.Metric("x", measure, colour="grey").colour == "grey"
    for proto in P.PROTOCOLS.values():  # built again from their fields, as a protocol file would give them
        again = P.Protocol(**{f.name: getattr(proto, f.name) for f in dataclasses.fields(P.Protocol)})
        assert again == proto
    assert [m.name for m in P.get_protocol("edgeconnect").metrics if m.colour == "grey"] == ["psnr", "ssim", "mae"]


def test_protocol_lpips_nets_are_the_lpips_modules():
    from inpaintjax.perceptual import lpips
    assert measures.LPIPS_NETS == lpips.NETS


def test_protocol_has_one_covariance_setting():
    """The FID covariance is the metric's option; a protocol-level field that nothing read is gone
    (a JSON file naming it is refused as an unknown field)."""
    assert "fid_covariance" not in {f.name for f in dataclasses.fields(P.Protocol)}
    assert P.get_protocol("mat").metric("fid").options["covariance"] == "biased"
    with pytest.raises(ValueError, match="unknown protocol field.*fid_covariance"):
        P.definitions.protocol_from_dict({"name": "c", "title": "", "image_size": 32, "fid_covariance": "biased",
                                          "metrics": [{"name": "fid", "measure": "fid"}]})


def test_write_inputs_refuses_two_photos_with_one_name(tmp_path):
    """x.png and x.jpg would both become truth/x.png: refused before anything is written, naming both."""
    from skimage import data
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    Image.fromarray(data.astronaut()[:40, :40]).save(photos / "a.png")
    Image.fromarray(data.coffee()[:40, :40]).save(photos / "x.png")
    Image.fromarray(data.chelsea()[:40, :40]).save(photos / "x.jpg")
    proto = _small("lama", 32, mask_sets=("lama_thin",), preparation=P.Preparation(32))
    with pytest.raises(ValueError, match=r"x\.jpg and x\.png"):
        P.write_inputs(proto, str(photos), str(tmp_path / "in"))
    assert not (tmp_path / "in").exists()
    os.remove(photos / "x.jpg")
    Image.fromarray(data.chelsea()[:40, :40]).save(photos / "sub" / "x.jpg")  # another folder: no clash
    assert [e["file"] for e in P.write_inputs(proto, str(photos), str(tmp_path / "in"))["images"]] == \
        ["a.png", "sub/x.png", "x.png"]


def test_write_inputs_never_replaces_a_photo(tmp_path):
    """Writing the inputs into the photo folder would write photos/a.png's truth over the photograph
    photos/truth/a.png before it is read: refused, naming the file; a mask folder likewise."""
    from skimage import data
    photos = tmp_path / "photos"
    (photos / "truth").mkdir(parents=True)
    Image.fromarray(data.coffee()[:40, :40]).save(photos / "a.png")
    Image.fromarray(data.astronaut()[:40, :40]).save(photos / "truth" / "a.png")
    proto = _small("lama", 32, mask_sets=("lama_thin",), preparation=P.Preparation(32))
    before = (photos / "truth" / "a.png").read_bytes()
    with pytest.raises(ValueError, match=r"truth[/\\]a\.png"):
        P.write_inputs(proto, str(photos), str(photos))
    assert (photos / "truth" / "a.png").read_bytes() == before and not (photos / "manifest.json").exists()
    masks = tmp_path / "work" / "masks"
    masks.mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(masks / "a.png")
    with pytest.raises(ValueError, match=r"masks[/\\]a\.png"):
        P.write_inputs(proto, str(photos), str(tmp_path / "work"), mask_folder=str(masks))


def test_lpips_of_too_small_images_is_refused_in_a_protocol(tmp_path):
    import torch
    from inpaintjax.perceptual import lpips
    rng = np.random.default_rng(7)
    tiny = [(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), rng.integers(0, 256, (12, 12, 3), dtype=np.uint8),
             np.zeros((12, 12), np.float32)) for _ in range(2)]
    dirs = _write_folders(tmp_path, tiny)  # 12 px: VGG's relu5_3 (after four 2x2 pools) needs 16
    sd, lin = lpips.random_state_dicts("vgg", 0)
    backbone, lin_path = str(tmp_path / "vgg_backbone.pth"), str(tmp_path / "vgg_lin.pth")
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, backbone)
    torch.save({k: torch.from_numpy(v) for k, v in lin.items()}, lin_path)
    proto = P.Protocol(name="lp", title="", image_size=12, metrics=(P.Metric("lpips", "lpips", dict(net="vgg")),))
    with pytest.raises(ValueError, match=r"00\.png.*12x12.*16x16"):
        P.evaluate_protocol(proto, dirs["truth"], dirs["outputs"], lpips_backbone=backbone, lpips_lin=lin_path)
