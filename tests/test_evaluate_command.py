"""`inpaintjax evaluate`: two folders of PNG files, every metric, against pytorch-fid and lpips.

Truth: tests/fixtures/fid_golden.npz (pytorch-fid's FID of the same two folders, its pool3 features)
and lpips_golden.npz (lpips 0.1.4's AlexNet LPIPS of the same pairs), with the same seeded weights
written here as .pth files; L1 re-derived in NumPy.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from inpaintjax import cli
from inpaintjax.perceptual import fid, inception, lpips

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
FID_GOLDEN = np.load(os.path.join(FIXTURES, "fid_golden.npz"))
LPIPS_GOLDEN = np.load(os.path.join(FIXTURES, "lpips_golden.npz"))
N = len(FID_GOLDEN["truth"])  # image pairs


def _folders(tmp_path):
    truth, outputs = FID_GOLDEN["truth"], FID_GOLDEN["outputs"]
    dirs = {k: tmp_path / k for k in ("truth", "outputs", "masks")}
    for d in dirs.values():
        (d / "sub").mkdir(parents=True)
    for i in range(len(truth)):
        rel = f"sub/{i}" if i % 2 else f"{i}"
        Image.fromarray(truth[i]).save(dirs["truth"] / f"{rel}.png")
        Image.fromarray(outputs[i]).save(dirs["outputs"] / f"{rel}.png")
        mask = (np.any(truth[i] != outputs[i], -1) * 255).astype(np.uint8)
        Image.fromarray(mask).save(dirs["masks"] / f"{rel}.png")
    return {k: str(v) for k, v in dirs.items()}


@pytest.mark.long
def test_evaluate_two_folders(tmp_path, capsys):
    import torch
    import sklearn  # noqa: F401
    dirs = _folders(tmp_path)
    inc_path = str(tmp_path / inception.WEIGHTS_FILE)
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in inception.random_state_dict(int(FID_GOLDEN["seed"])).items()}, inc_path)
    sd, _ = lpips.random_state_dicts("alex", int(LPIPS_GOLDEN["seed"]))
    backbone = str(tmp_path / lpips.BACKBONE_FILES["alex"])
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, backbone)
    lin = str(tmp_path / "alex.pth")
    torch.save({f"lin{i}.model.1.weight": torch.from_numpy(LPIPS_GOLDEN[f"lin_alex_{i}"].reshape(1, -1, 1, 1))
                for i in range(5)}, lin)
    report_path = str(tmp_path / "out" / "report.json")
    stats_dir = str(tmp_path / "stats")
    rc = cli.main(["evaluate", "--truth", dirs["truth"], "--output", dirs["outputs"], "--mask", dirs["masks"],
                   "--metrics", "l1,l2,psnr,ssim,fid,kid,lpips,pids,uids", "--inception", inc_path,
                   "--lpips-backbone", backbone, "--lpips-lin", lin, "--batch-size", str(N),
                   "--report", report_path, "--save-stats", stats_dir])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "images/s" in out.err and "fid" in out.out
    report = json.load(open(report_path))
    assert report["count"] == N
    got = report["all"]
    want_fid = float(FID_GOLDEN["fid_folders"])  # pytorch-fid on the same two folders
    assert abs(got["fid"] - want_fid) <= 1e-4 * want_fid
    truth_mu, _ = fid.load_stats(os.path.join(stats_dir, "truth_stats.npz"))
    output_mu, _ = fid.load_stats(os.path.join(stats_dir, "output_stats.npz"))
    np.testing.assert_allclose(truth_mu, FID_GOLDEN["pool3_299"][:N].mean(0), atol=1e-4, rtol=0)
    np.testing.assert_allclose(output_mu, FID_GOLDEN["pool3_299"][N:].mean(0), atol=1e-4, rtol=0)
    assert got["lpips"] == pytest.approx(float(LPIPS_GOLDEN["alex_square"].mean()), abs=1e-5)
    truth, outputs = FID_GOLDEN["truth"] / 255.0, FID_GOLDEN["outputs"] / 255.0
    err = np.abs(truth - outputs)
    assert got["l1"] == pytest.approx(err.mean(), rel=1e-5)
    hole = np.any(err > 0, -1)
    want_hole = np.mean([err[i][hole[i]].mean() for i in range(N)])
    assert got["l1_hole"] == pytest.approx(want_hole, rel=1e-5)
    want_kid = fid.kernel_inception_distance(FID_GOLDEN["pool3_299"][:N], FID_GOLDEN["pool3_299"][N:])[0]
    assert got["kid"] == pytest.approx(want_kid, rel=1e-3)
    assert 0.0 <= got["pids"] <= 1.0 and 0.0 <= got["uids"] <= 1.0


def test_unpaired_file_is_named(tmp_path, capsys):
    dirs = _folders(tmp_path)
    os.remove(os.path.join(dirs["outputs"], "sub", "1.png"))
    rc = cli.main(["evaluate", "--truth", dirs["truth"], "--output", dirs["outputs"], "--metrics", "l1"])
    err = capsys.readouterr().err
    assert rc == 2 and os.path.join(dirs["truth"], "sub", "1.png") in err and "no file with the same relative path" in err
    rc = cli.main(["evaluate", "--truth", dirs["truth"], "--output", dirs["truth"], "--metrics", "fid"])
    assert rc == 2 and "--inception FILE" in capsys.readouterr().err
    rc = cli.main(["evaluate", "--truth", dirs["truth"], "--output", dirs["truth"], "--metrics", "fid,sharpness"])
    assert rc == 2 and "unknown ['sharpness']" in capsys.readouterr().err


# ------------------------------------------------------- input handling (cheap metrics: l1, psnr)
def _small_folders(tmp_path, holes, polarity="white_hole", size=24, seed=0):
    """Folders of len(holes) pairs of size x size: truth random, output = truth + noise everywhere
    (so l1 and l1_hole differ), mask i = holes[i] ([H, W] bool, True = hole) written with `polarity`."""
    rng = np.random.default_rng(seed)
    dirs = {k: tmp_path / k for k in ("truth", "outputs", "masks")}
    for d in dirs.values():
        d.mkdir()
    pairs = []
    for i, hole in enumerate(holes):
        t = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        o = np.clip(t.astype(int) + rng.integers(-60, 61, t.shape) * (1 + 2 * hole[..., None]), 0, 255).astype(np.uint8)
        Image.fromarray(t).save(dirs["truth"] / f"{i}.png")
        Image.fromarray(o).save(dirs["outputs"] / f"{i}.png")
        value = hole if polarity == "white_hole" else ~hole
        Image.fromarray(value.astype(np.uint8) * 255).save(dirs["masks"] / f"{i}.png")
        pairs.append((t / 255.0, o / 255.0, hole))
    return {k: str(v) for k, v in dirs.items()}, pairs


def _one_error_line(err, flag):
    """The command's error is one line naming `flag` (the first command of a session may print the
    XLA:CPU set-up line before it)."""
    lines = [line for line in err.splitlines() if line.startswith("inpaintjax evaluate:")]
    return len(lines) == 1 and flag in lines[0] and "error" in lines[0]


def _box(size, top, left, h, w):
    m = np.zeros((size, size), bool)
    m[top:top + h, left:left + w] = True
    return m


def _hole_l1(pairs):
    """NumPy: each image's mean |truth - output| over its hole pixels and channels, averaged over
    the images that have a hole."""
    return np.mean([np.abs(t - o)[h].mean() for t, o, h in pairs if h.any()])


def test_mask_polarity_applies_to_folder_masks(tmp_path, capsys):
    holes = [_box(24, 2, 3, 8, 10), _box(24, 10, 0, 12, 6), _box(24, 0, 12, 5, 12)]
    dirs, pairs = _small_folders(tmp_path, holes, polarity="black_hole")
    report = str(tmp_path / "r.json")
    base = ["evaluate", "--truth", dirs["truth"], "--output", dirs["outputs"], "--mask", dirs["masks"],
            "--metrics", "l1", "--quiet", "--report", report]
    assert cli.main(base + ["--mask-polarity", "black_hole"]) == 0, capsys.readouterr().err
    got = json.load(open(report))["all"]
    assert got["l1_hole"] == pytest.approx(_hole_l1(pairs), rel=1e-5)
    assert cli.main(base + ["--mask-polarity", "mat"]) == 0  # a source name: MAT's masks are black = hole
    assert json.load(open(report))["all"]["l1_hole"] == pytest.approx(_hole_l1(pairs), rel=1e-5)
    # white = hole (the default) reads the complement: another number
    assert cli.main(base) == 0
    inverted = [(t, o, ~h) for t, o, h in pairs]
    assert json.load(open(report))["all"]["l1_hole"] == pytest.approx(_hole_l1(inverted), rel=1e-5)
    with pytest.raises(SystemExit) as e:  # argparse: exit status 2, the valid values listed
        cli.main(base + ["--mask-polarity", "bogus"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "bogus" in err and "black_hole" in err


@pytest.mark.parametrize("flag", [["--seed", "3"], ["--mask-set", "lama_thin"], ["--checkpoint-every", "5"],
                                  ["--mask-polarity", "black_hole"]])
def test_flags_that_would_be_ignored_are_refused(tmp_path, capsys, flag):
    """Without --protocol / --write-inputs / --checkpoint / --mask these flags would change nothing:
    the run is refused with one line naming the flag, before any work."""
    dirs, _ = _small_folders(tmp_path, [_box(24, 2, 3, 8, 10)] * 2)
    rc = cli.main(["evaluate", "--truth", dirs["truth"], "--output", dirs["outputs"], "--metrics", "l1"] + flag)
    err = capsys.readouterr().err
    assert rc == 2 and _one_error_line(err, flag[0]), err


def test_a_mask_without_hole_is_left_out_of_the_hole_metrics(tmp_path):
    holes = [_box(24, 2, 3, 8, 10), np.zeros((24, 24), bool), _box(24, 0, 12, 5, 12)]
    dirs, pairs = _small_folders(tmp_path, holes)
    from inpaintjax.perceptual import folders
    with pytest.warns(UserWarning, match=r"no hole.*masks[/\\]1\.png"):
        report = folders.evaluate_folders(dirs["truth"], dirs["outputs"], ["l1", "psnr"], mask_dir=dirs["masks"],
                                          progress=False)
    got = report["all"]
    assert got["l1_hole"] == pytest.approx(_hole_l1(pairs), rel=1e-5)  # images 0 and 2
    mse = [np.square(t - o)[h].mean() for t, o, h in pairs if h.any()]
    assert got["psnr_hole"] == pytest.approx(np.mean(10 * np.log10(1 / np.array(mse))), rel=1e-5)
    assert got["l1"] == pytest.approx(np.mean([np.abs(t - o).mean() for t, o, _ in pairs]), rel=1e-5)  # all three
    assert report["count"] == 3 and report["hole_count"] == 2


def test_a_mask_without_an_image_is_named(tmp_path, capsys):
    dirs, _ = _small_folders(tmp_path, [_box(24, 2, 3, 8, 10)] * 2)
    Image.fromarray(np.zeros((24, 24), np.uint8)).save(os.path.join(dirs["masks"], "extra.png"))
    rc = cli.main(["evaluate", "--truth", dirs["truth"], "--output", dirs["outputs"], "--mask", dirs["masks"],
                   "--metrics", "l1"])
    err = capsys.readouterr().err
    assert rc == 2 and os.path.join(dirs["masks"], "extra.png") in err and dirs["truth"] in err


def test_save_stats_needs_an_inception_metric(tmp_path, capsys):
    dirs, _ = _small_folders(tmp_path, [_box(24, 2, 3, 8, 10)] * 2)
    stats = tmp_path / "stats"
    rc = cli.main(["evaluate", "--truth", dirs["truth"], "--output", dirs["outputs"], "--metrics", "l1,psnr",
                   "--save-stats", str(stats)])
    err = capsys.readouterr().err
    assert rc == 2 and _one_error_line(err, "--save-stats") and "fid" in err, err
    assert not stats.exists()
    # a weight file no metric uses: the run goes on and says so
    rc = cli.main(["evaluate", "--truth", dirs["truth"], "--output", dirs["outputs"], "--metrics", "l1", "--quiet",
                   "--inception", "never_read.pth"])
    err = capsys.readouterr().err
    assert rc == 0 and "--inception" in err and "not used" in err


def test_lpips_of_too_small_images_is_refused_naming_the_file(tmp_path, capsys):
    import torch
    dirs, _ = _small_folders(tmp_path, [_box(24, 2, 3, 8, 10)] * 2)  # 24 px: AlexNet's taps need 31
    sd, lin = lpips.random_state_dicts("alex", 0)
    backbone, lin_path = str(tmp_path / "alex_backbone.pth"), str(tmp_path / "alex_lin.pth")
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, backbone)
    torch.save({k: torch.from_numpy(v) for k, v in lin.items()}, lin_path)
    rc = cli.main(["evaluate", "--truth", dirs["truth"], "--output", dirs["outputs"], "--metrics", "l1,lpips",
                   "--lpips-backbone", backbone, "--lpips-lin", lin_path, "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and os.path.join(dirs["truth"], "0.png") in err and "24x24" in err and "31x31" in err, err


@pytest.mark.parametrize("flag", [["--output", "results"], ["--checkpoint", "state.npz"], ["--report", "r.json"],
                                  ["--tables", "tables"]])
def test_write_inputs_refuses_scoring_flags(tmp_path, capsys, flag):
    """--write-inputs only writes a protocol's inputs: a scoring option beside it would change nothing,
    so the run is refused with one line naming it, and nothing is written."""
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(photos / "a.png")
    rc = cli.main(["evaluate", "--protocol", "lama", "--truth", str(photos), "--write-inputs", str(tmp_path / "in")]
                  + flag)
    err = capsys.readouterr().err
    assert rc == 2 and _one_error_line(err, flag[0]), err
    assert not (tmp_path / "in").exists()
