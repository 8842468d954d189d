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
