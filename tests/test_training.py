"""The generic training loop and evaluation, on the tiny toy family (tests/toy_family.py), plus
train.py / eval.py end to end on DeepFill v2's `test` config."""

import csv
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toy_family  # noqa: E402  (registers 'toy')

from inpaintjax import config as config_lib  # noqa: E402
from inpaintjax import masks as masks_lib  # noqa: E402
from inpaintjax.training import NonFiniteError, load_for_inference, train  # noqa: E402
from inpaintjax.training.checkpoint import Checkpointer  # noqa: E402
from inpaintjax.data import eval_images  # noqa: E402
from inpaintjax.training.evaluate import evaluate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY_CONFIG = os.path.join(ROOT, "tests", "toy_config.py")


def test_config_file_overrides_and_misspelt_keys(child_env):
    c = config_lib.load_config(TOY_CONFIG, ["batch_size=4", "data.flip=true", "optim.lr=0.5",
                                            "data.image_size=24"])
    assert (c.batch_size, c.data.flip, c.optim.lr, c.data.image_size) == (4, True, 0.5, 24)
    assert isinstance(c.optim.lr, float) and c.family == "toy"
    with pytest.raises(config_lib.ConfigKeyError, match=r"Did you mean 'data\.image_size'\?"):
        config_lib.load_config(TOY_CONFIG, ["data.imagesize=3"])
    with pytest.raises(config_lib.ConfigKeyError, match=r"Did you mean 'batch_size'\? \(valid keys at the "
                                                          r"top level: batch_size, checkpoint_every"):
        config_lib.load_config(TOY_CONFIG, ["batch_szie=3"])
    with pytest.raises(ValueError, match="is an int"):
        config_lib.load_config(TOY_CONFIG, ["num_steps=many"])
    # the command line: train.py stops before anything runs, naming the flag to use
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "--config", TOY_CONFIG,
                        "--workdir", "unused", "--config.mask.per_bacth=false"],
                       capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=120)
    assert r.returncode == 2
    assert "Did you mean '--config.mask.per_batch'?" in r.stderr


def test_entry_points_stop_on_what_the_user_gave_in_one_line(tmp_path, child_env):
    """train.py and eval.py: multi-host flags that do not fit, a missing workdir, an evaluation
    setting eval.py cannot use: the message alone on stderr, exit status 2, nothing written."""
    runs = [
        (["train.py", "--config", TOY_CONFIG, "--workdir", str(tmp_path / "a"),
          "--coordinator_address", "127.0.0.1:1"],
         "train.py: error: multi-host: with a coordinator address also give --num_processes"),
        (["eval.py", "--workdir", str(tmp_path / "b")],
         f"eval.py: error: {tmp_path / 'b' / 'config.json'} not found: '{tmp_path / 'b'}' is not a training workdir"),
    ]
    for args, message in runs:
        r = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=child_env(),
                           cwd=ROOT, timeout=120)
        lines = r.stderr.strip().splitlines()  # (the first may be the XLA:CPU set-up note)
        assert r.returncode == 2 and lines[-1].startswith(message), (args, r.stderr[-2000:])
        assert "Traceback" not in r.stderr and len(lines) <= 2, r.stderr[-2000:]
    # an evaluation setting eval.py cannot use is such an error (eval.py: one line, exit 2),
    # raised before any work (no network is run, nothing is written)
    from inpaintjax.families import get as get_family
    from inpaintjax.training import configuration_error
    for key, value, message in (("lpips_net", "resnet", "config.eval.lpips_net='resnet' is not one of"),
                                ("batch_size", 0, "config.eval.batch_size must be >= 1, got 0")):
        c = toy_family.toy_config()
        c.eval[key] = value
        with pytest.raises(ValueError, match=message) as info:
            evaluate(c, get_family("toy")(c), None, str(tmp_path / "c"))
        assert configuration_error(info.value)
        assert sorted(os.listdir(tmp_path)) == []
    # a data setting the pipeline cannot use stops train() before its workdir exists
    c = toy_family.toy_config()
    c.data.crop = "bogus"
    with pytest.raises(ValueError, match="config.data.crop must be 'random' or 'resize', got 'bogus'") as info:
        train(c, str(tmp_path / "never"))
    assert configuration_error(info.value) and sorted(os.listdir(tmp_path)) == []


def test_misspelt_mask_generator_stops_the_run_before_the_workdir_exists(tmp_path):
    from inpaintjax.training import configuration_error
    for name, wrong in (("deepfil_v2_training", "deepfil_v2_training"),
                        ("lama_medium|deepfill_v2_training+center_bx", "center_bx")):
        c = config_lib.load_config(TOY_CONFIG, [f"mask.generator={name}"])
        with pytest.raises(ValueError) as info:
            train(c, str(tmp_path / "never"))
        assert configuration_error(info.value)               # train.py prints it in one line, exit 2
        text = str(info.value)
        assert text.startswith(f"config.mask.generator={name!r}: unknown mask generator {wrong!r}")
        assert "Did you mean" in text
        assert not os.path.exists(tmp_path / "never")


def test_variant_and_modifiers_in_order_with_named_errors():
    variant, mods = config_lib.parse_variant(" demo , flag ,batch_size=3", ("run", "demo"), "run",
                                             "configs/x.py")
    assert (variant, mods) == ("demo", ["flag", "batch_size=3"])
    assert config_lib.parse_variant("", ("run", "demo"), "run", "configs/x.py") == ("run", [])
    with pytest.raises(ValueError, match=r"configs/x\.py: unknown variant 'dmeo'\. Did you mean 'demo'"):
        config_lib.parse_variant("dmeo", ("run", "demo"), "run", "configs/x.py")
    c = config_lib.sample_photo_run(config_lib.base_config(), "test")
    assert (c.data.source, c.data.image_size, c.batch_size, c.num_steps) == ("samples", 32, 2, 4)
    seen = []
    c = config_lib.apply_modifiers(c, ["batch_size=5", "flag", "batch_size=7"], "test,...",
                                   "configs/x.py", flags={"flag": lambda cfg: seen.append(cfg.batch_size)})
    assert seen == [5] and c.batch_size == 7   # applied left to right
    with pytest.raises(ValueError, match=r"unknown modifier 'flg'.*use 'flag' or key=value"):
        config_lib.apply_modifiers(c, ["flg"], "test,flg", "configs/x.py", flags={"flag": print})
    with pytest.raises(config_lib.ConfigKeyError, match="batch_size"):
        config_lib.apply_modifiers(c, ["batch_sise=1"], "test,batch_sise=1", "configs/x.py")


def test_non_finite_loss_stops_naming_step_and_term_and_keeps_last_good(tmp_path):
    c = toy_family.toy_config()
    c.num_steps, c.log_every, c.checkpoint_every = 12, 3, 2
    c.model.nan_at_step = 5          # the 6th update (state.step == 5 before it) has a NaN L1 loss
    with pytest.raises(NonFiniteError) as err:
        train(c, str(tmp_path))
    e = err.value
    # named as the log and the checkpoints number steps (step k = after k updates): step 6
    assert e.step == 6 and "loss/l1" in e.terms
    assert "at step 6 " in str(e) and "loss/l1" in str(e) and "checkpoint (step 4)" in str(e)
    # steps 2 and 4 were saved; the bad step 5 was never applied nor saved (6 would have been next)
    ckpt = Checkpointer(str(tmp_path), read_only=True)
    assert ckpt.steps() == [2, 4]
    ckpt.close()
    _, family, variables = load_for_inference(str(tmp_path))
    # the last good checkpoint equals a clean run stopped at step 4
    c2 = toy_family.toy_config()
    c2.num_steps, c2.log_every, c2.checkpoint_every = 4, 2, 2
    clean = train(c2, str(tmp_path / "clean"))
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(clean["state"].params), strict=True):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)


def _read_png(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_eval_writes_model_and_classical_rows_and_a_labelled_picture(tmp_path):
    from inpaintjax import baselines
    from inpaintjax.training.logs import HOLE_EDGE, HOLE_TINT
    c = toy_family.toy_config()
    c.num_steps = 2
    c.eval.baselines = "mean,biharmonic,telea,patchmatch"
    train(c, str(tmp_path))
    config, family, variables = load_for_inference(str(tmp_path))
    summary = evaluate(config, family, variables, str(tmp_path), progress=False)
    ev = tmp_path / "eval"
    buckets = ["1-10%", "10-20%", "20-30%", "30-40%", "40-50%", "50-60%", "all"]
    per = config.eval.per_bucket
    methods = ["mean", "biharmonic", "telea", "patchmatch"]
    assert baselines.available() == methods  # the test extra installs OpenCV: Telea rows in CI
    for name in ["metrics"] + [f"baseline_{m}" for m in methods]:
        data = json.loads((ev / f"{name}.json").read_text())
        assert list(data) == buckets
        assert [data[b]["count"] for b in buckets] == [per] * 6 + [6 * per]
        rows = list(csv.reader((ev / f"{name}.csv").open()))
        assert rows[0][:2] == ["bucket", "count"] and "psnr_hole" in rows[0]
        assert [r[0] for r in rows[1:]] == buckets
        md = (ev / f"{name}.md").read_text().strip().splitlines()
        assert len(md) == 2 + 7 and md[0].startswith("| bucket | count |")
        assert [line.split("|")[1].strip() for line in md[2:]] == buckets
        assert _read_png(ev / f"{name}.png").shape[0] > 50
    assert summary["all"]["count"] == 6 * per

    # the combined table: every bucket, the model then the four fills, numbers from the JSON files
    table = [line for line in (ev / "comparison.md").read_text().splitlines() if line.startswith("| ")]
    header = [x.strip() for x in table[0].strip("|").split("|")]
    assert header[:3] == ["bucket", "method", "count"] and "l1_hole" in header
    body = [[x.strip() for x in line.strip("|").split("|")] for line in table[1:]]
    assert [(r[0], r[1]) for r in body] == [(b, m) for b in buckets for m in ["toy"] + methods]
    col = header.index("l1_hole")
    for r in body:
        src = json.loads((ev / ("metrics.json" if r[1] == "toy" else f"baseline_{r[1]}.json")).read_text())
        assert float(r[col]) == pytest.approx(src[r[0]]["l1_hole"], abs=6e-5)

    # independent re-derivation of the mean-fill rows from the files: mask i goes with held-out
    # image i mod N; a hole pixel becomes the mean colour of that image's known pixels
    images = eval_images(config).astype(np.float64) / 255.0
    manifest = json.loads((tmp_path / "eval_masks" / "manifest.json").read_text())
    errs, holes = [], []
    for i, entry in enumerate(manifest["masks"]):
        hole = np.asarray(Image.open(tmp_path / "eval_masks" / entry["file"])) > 127
        img = images[i % len(images)]
        fill = img.copy()
        fill[hole] = img[~hole].mean(axis=0)
        errs.append(np.abs(fill - img).mean())
        holes.append(hole)
    flat = json.loads((ev / "baseline_mean.json").read_text())
    np.testing.assert_allclose(flat["all"]["l1"], np.mean(errs), rtol=1e-5)
    # the smooth fills beat the flat one on these photographs' hole pixels
    bih = json.loads((ev / "baseline_biharmonic.json").read_text())
    tel = json.loads((ev / "baseline_telea.json").read_text())
    assert bih["all"]["l1_hole"] < flat["all"]["l1_hole"] and tel["all"]["l1_hole"] < flat["all"]["l1_hole"]

    # samples.png: a label band, then rows of input (hole marked) | output | telea | truth, tiles
    # enlarged by whole pixels to >= 256 px, 4 px white gaps
    s, n = config.eval.image_size, config.eval.num_samples
    k = -(-256 // s)
    gap, head = 4, 14 + 2 * 4 + 2
    grid = _read_png(tmp_path / "samples.png")
    assert grid.shape == (head + n * (k * s + gap), 4 * (k * s + gap) + gap, 3)
    assert (grid[:head] < 128).any(axis=-1).sum() > 100  # label text is drawn in the band

    def tile(i, j):
        y0, x0 = head + i * (k * s + gap), gap + j * (k * s + gap)
        t = grid[y0:y0 + k * s, x0:x0 + k * s]
        # whole-pixel enlargement: every k x k block is one colour (the hole outline aside)
        return t[::k, ::k]

    for i in range(n):
        marked, output, telea, truth = (tile(i, j) for j in range(4))
        assert any(np.array_equal(truth, (im * 255 + 0.5).astype(np.uint8)) for im in images)
        hole = np.any(marked != truth, axis=-1)
        assert 0 < hole.mean() < 0.7
        tint = marked[hole].astype(np.float64) / 255
        # hole pixels are the magenta tint (checkered) or its outline colour, nothing of the photo
        near = np.minimum(np.abs(tint - HOLE_TINT * 0.8).max(-1), np.abs(tint - HOLE_EDGE).max(-1))
        assert (near < 0.2).all()
        for t in (output, telea):
            np.testing.assert_array_equal(t[~hole], truth[~hole])
        assert np.abs(telea[hole].astype(int) - truth[hole]).mean() < 60


def _tensorboard_events(folder):
    """Every event of the TensorBoard files in `folder`: (step, tag, value) of the scalars and
    (step, tag, PIL image) of the images. The files are TFRecords (length, CRC, Event proto, CRC);
    the protos come with tensorboardX."""
    import io
    import struct

    from tensorboardX.proto import event_pb2
    scalars, images = [], []
    for name in sorted(os.listdir(folder)):
        data = open(os.path.join(folder, name), "rb").read()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for v in event.summary.value:
                if v.HasField("image"):
                    images.append((event.step, v.tag, Image.open(io.BytesIO(v.image.encoded_image_string))))
                elif v.HasField("simple_value"):
                    scalars.append((event.step, v.tag, v.simple_value))
    return scalars, images


def _check_tables(folder, buckets):
    """metrics.{json,csv,md} say the same numbers; the plot has one panel per metric."""
    data = json.loads((folder / "metrics.json").read_text())
    assert list(data) == buckets
    rows = list(csv.reader((folder / "metrics.csv").open()))
    header = rows[0]
    assert header[:2] == ["bucket", "count"] and [r[0] for r in rows[1:]] == buckets
    for r in rows[1:]:
        assert int(r[1]) == data[r[0]]["count"]
        for key, value in zip(header[2:], r[2:], strict=True):
            assert float(value) == pytest.approx(data[r[0]][key], rel=1e-4, abs=1e-6), (r[0], key)
    md = (folder / "metrics.md").read_text().strip().splitlines()
    assert len(md) == 2 + len(buckets)
    plot = _read_png(folder / "metrics.png")
    assert plot.shape[0] > 50 and len(np.unique(plot.reshape(-1, 3), axis=0)) > 8  # drawn, not blank
    return data


@pytest.mark.long
def test_train_py_and_eval_py_end_to_end_on_deepfill_v2_test_config(tmp_path, child_env):
    """The one run of the command-line programs (the loop itself is generic and tested in this
    process on every family): train.py trains, logs and checkpoints; eval.py without --config
    evaluates with the config the run saved, its frozen masks in --mask_dir; eval.py --weights runs
    official weights through a paper's protocol (--protocol)."""
    workdir = str(tmp_path / "run")
    cfg = os.path.join(ROOT, "configs", "deepfill_v2.py") + ":test"
    r = subprocess.run([sys.executable, "train.py", "--config", cfg, "--workdir", workdir,
                        "--config.num_steps=6", "--config.image_every=3", "--config.log_every=1",
                        "--config.checkpoint_every=1", "--config.keep_checkpoints=10",
                        "--config.eval.mask_generator=lama_thin,deepfill_v2_training",
                        "--config.eval.per_bucket=1"],
                       capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "global batch 2 = 2 per device x 1 devices" in r.stdout
    assert "step 6/6" in r.stdout and "steps/s" in r.stdout and "ETA" in r.stdout
    lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [x["step"] for x in lines] == [1, 2, 3, 4, 5, 6]
    for key in ("g/l1_stage1", "g/l1_stage2", "d/hinge", "g/grad_norm", "g/lr", "steps_per_sec"):
        assert np.isfinite(lines[-1][key]), key
    saved = config_lib.read_saved_config(os.path.join(workdir, "config.json"))
    assert saved.family == "deepfill_v2" and saved.num_steps == 6
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints")), key=int) == [
        "1", "2", "3", "4", "5", "6"]
    # TensorBoard holds the same scalars as metrics.jsonl, and a preview at steps 3 and 6
    scalars, images = _tensorboard_events(os.path.join(workdir, "tb"))
    for line in lines:
        for key, value in line.items():
            if key not in ("step", "time"):
                got = [v for s, t, v in scalars if s == line["step"] and t == key]
                assert got == [pytest.approx(value, rel=1e-6)], (line["step"], key, got)
    assert [s for s, _, _ in images] == [3, 6]
    assert all(im.size[0] > 32 and len(np.unique(np.asarray(im))) > 16 for _, _, im in images)
    # training through train.py lowers the L1 on a fixed held-out batch (the generator's raw
    # stage-2 output against the truth over the whole image, the term train_step minimises)
    image = np.stack(eval_images(saved)[:2]).astype(np.float32) / 255.0
    hole = masks_lib.make_mask("deepfill_v2_training", 0, *image.shape[1:3])
    mask = np.broadcast_to(hole[None, :, :, None], image.shape[:3] + (1,)).astype(np.float32)

    _, family, first = load_for_inference(workdir, step=1)
    stage2 = jax.jit(lambda variables: family.generator.apply(variables, image * 2 - 1, mask)[1])

    def fixed_batch_l1(variables):
        return float(np.mean(np.abs(np.asarray(stage2(variables)) - (image * 2 - 1))))

    assert fixed_batch_l1(load_for_inference(workdir, step=6)[2]) < fixed_batch_l1(first)
    # eval.py without --config: the evaluation settings come from the run's saved config; the
    # frozen masks built once into --mask_dir (default: the workdir's eval_masks)
    masks = str(tmp_path / "masks")
    r = subprocess.run([sys.executable, "eval.py", "--workdir", workdir, "--mask_dir", masks],
                       capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    buckets = ["1-10%", "10-20%", "20-30%", "30-40%", "40-50%", "50-60%", "all"]
    data = _check_tables(tmp_path / "run" / "eval", buckets)
    assert [data[b]["count"] for b in buckets] == [1] * 6 + [6]      # eval.per_bucket=1, saved
    assert "| all | deepfill_v2 |" in r.stdout
    assert _read_png(tmp_path / "run" / "samples.png").shape[1] > 256
    assert len(os.listdir(masks)) >= 6 and not os.path.exists(os.path.join(workdir, "eval_masks"))
    # official weights (a TF-written DeepFill v2 checkpoint, cnum 4, read by --weights) through a
    # paper's protocol (the protocol path itself is tested in test_protocol_runs.py)
    official = str(tmp_path / "official")
    r = subprocess.run([sys.executable, "eval.py", "--config", cfg, "--workdir", official,
                        "--weights", os.path.join(ROOT, "tests", "fixtures", "deepfill_v2_tf"),
                        "--protocol", "mmagic", "--protocol_mask_set", "lama_thin", "--protocol_num_images", "2"],
                       capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.load(open(os.path.join(official, "protocol", "mmagic", "mmagic.json")))
    assert report["count"] == 2 and report["method"] == "deepfill_v2" and report["inputs"]["mask_set"] == "lama_thin"
    outputs = os.path.join(official, "protocol", "mmagic", "outputs")
    assert len([f for f in os.listdir(outputs) if f.endswith(".png")]) == 2
    # what made them: the weights eval.py was given (a second model in this folder is refused)
    made_by = json.load(open(os.path.join(outputs, "model.json")))
    assert made_by["family"] == "deepfill_v2" and made_by["weights"] == os.path.join(
        ROOT, "tests", "fixtures", "deepfill_v2_tf")
    assert "Published (verified in the source named)" in r.stdout


# ---------------------------------------------------------------------------------------------
# The family contract: several batches per step, sparse metrics, frozen networks, init_from,
# optimiser schedules

def _metrics(workdir):
    return [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]


def test_a_run_traces_the_family_step_and_initialisation_once(tmp_path, monkeypatch, train_devices):
    """Tracing a family's step is seconds of Python for a real network, and train() needs its
    metric names (a shape query) before compiling the guarded step around it; the query's trace is
    the one the step reuses. Likewise the initialisation: traced for the shapes a resume restores,
    and called on a fresh start. Counted on 2 devices (batches sharded over the mesh), fresh and
    resumed."""
    calls = {"train_step": 0, "init_state": 0}
    for name in calls:
        method = getattr(toy_family.ToyFamily, name)

        def counted(self, *args, _method=method, _name=name):
            calls[_name] += 1
            return _method(self, *args)
        monkeypatch.setattr(toy_family.ToyFamily, name, counted)
    train_devices(2)
    c = toy_family.toy_config()
    c.num_steps, c.log_every, c.checkpoint_every, c.image_every = 2, 1, 2, 0
    train(c, str(tmp_path))
    assert calls == {"train_step": 1, "init_state": 1}
    c.num_steps = 3
    train(c, str(tmp_path))  # resumed from step 2: the initialisation is traced for its shapes only
    assert calls == {"train_step": 2, "init_state": 2}


def test_k_batches_per_step_and_metrics_averaged_over_the_steps_that_computed_them(tmp_path):
    c = toy_family.toy_config()
    c.model.substeps = 3
    c.num_steps, c.log_every, c.checkpoint_every, c.image_every = 6, 3, 6, 0
    result = train(c, str(tmp_path))
    assert result["step"] == 6 and int(result["state"].step) == 6   # substeps are not steps
    logged = _metrics(str(tmp_path))
    assert [m["step"] for m in logged] == [3, 6]
    # 'sub/index' is 1, 2, 3 on the substeps of every step: mean 2 whatever the window
    assert [m["sub/index"] for m in logged] == [2.0, 2.0]
    # 'even/step' is the step number, computed on even steps only: steps 0 and 2, then 4
    assert [m["even/step"] for m in logged] == [1.0, 4.0]
    # the per-substep L1 mean is the mean over all 9 substeps of a window, the last-substep
    # L1 over its 3 steps: replay the steps by hand with the family's own step function
    from inpaintjax import data as data_lib
    from inpaintjax.families import get as get_family
    from inpaintjax.training import loop
    family = get_family("toy")(c)
    source = data_lib.make_source(c.data, "train")
    batches = data_lib.TrainBatches(c, source, range(c.batch_size), family.batch_spec(), 3)
    init_key, step_root = jax.random.split(jax.random.key(int(c.seed)))
    example = data_lib.fields.example_batch(family.batch_spec(), 1, 16, 16)
    state = jax.jit(family.init_state)(init_key, example)
    frozen = family.load_frozen()
    per_sub, last = [], []
    for s in range(6):
        batch = batches.step_batch(s)
        assert batch["image"].shape == (3, 8, 16, 16, 3)
        state, m = family.train_step(state, batch, jax.random.fold_in(step_root, s), frozen)
        per_sub.append(float(m["loss/l1"].total) / 3)
        last.append(float(m["last/l1"]))
    for i, window in enumerate((slice(0, 3), slice(3, 6))):
        assert logged[i]["loss/l1"] == pytest.approx(np.mean(per_sub[window]), rel=1e-5)
        assert logged[i]["last/l1"] == pytest.approx(np.mean(last[window]), rel=1e-5)
    # ... and the loop's parameters are the hand-replayed ones
    for a, b in zip(jax.tree.leaves(result["state"].params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    del loop


def test_frozen_network_is_an_argument_not_a_constant_nor_in_the_checkpoint(tmp_path):
    import glob
    from inpaintjax.data import fields
    from inpaintjax.families import get as get_family
    from inpaintjax.training import loop
    c = toy_family.toy_config()
    c.num_steps, c.checkpoint_every = 2, 2
    kernel = toy_family.frozen_kernel(5) * 3.0 + 11.0   # values nothing else in the run has
    np.savez(tmp_path / "frozen.npz", kernel=kernel)
    c.model.frozen_file = str(tmp_path / "frozen.npz")
    train(c, str(tmp_path / "run"))
    # not in the checkpoint: no array file holds the kernel's bytes
    blob = b"".join(open(f, "rb").read() for f in glob.glob(str(tmp_path / "run" / "checkpoints" / "**"),
                                                           recursive=True) if os.path.isfile(f))
    assert kernel.astype(np.float32).tobytes()[:12] not in blob
    # not a constant of the compiled step: its shape is a parameter of the program, and no
    # constant of that shape (or holding its values) appears
    family = get_family("toy")(c)
    state = jax.jit(family.init_state)(jax.random.key(0), fields.example_batch(family.batch_spec(), 1, 16, 16))
    batch = fields.example_batch(family.batch_spec(), 8, 16, 16)
    step_fn, names = loop.make_train_step(family, jax.random.key(1), state, batch, family.load_frozen())
    assert names == ["grad_norm", "loss/l1", "lr"]
    step = jax.jit(step_fn)
    text = step.lower(state, loop.zero_carry(names), batch, family.load_frozen()).as_text()
    assert "tensor<1x1x3x5xf32>" in text                          # the frozen argument
    assert "constant dense" not in "".join(l for l in text.splitlines() if "1x1x3x5" in l)
    assert f"{float(kernel.ravel()[0]):.4f}"[:6] not in text
    # a missing frozen file stops the run before anything is written, saying what to do
    c.model.frozen_file = str(tmp_path / "absent.npz")
    with pytest.raises(FileNotFoundError, match="model.frozen_file='random'"):
        train(c, str(tmp_path / "never"))
    assert not os.path.exists(tmp_path / "never")


def test_the_guard_predicate_is_computed_once_not_per_state_leaf():
    """The non-finite guard's predicate selects each of the state's leaves (new or previous): the
    compiled step holds one finiteness check per metric, not one per metric per leaf (XLA fused a
    copy of the whole predicate into every leaf's select: 60 checks here for 3 metrics and 25
    leaves, doubling DeepFill v2's compiled step)."""
    from inpaintjax.data import fields
    from inpaintjax.families import get as get_family
    from inpaintjax.training import loop
    family = get_family("toy")(toy_family.toy_config())
    state = jax.jit(family.init_state)(jax.random.key(0), fields.example_batch(family.batch_spec(), 1, 16, 16))
    batch = fields.example_batch(family.batch_spec(), 8, 16, 16)
    step_fn, names = loop.make_train_step(family, jax.random.key(1), state, batch, family.load_frozen())
    compiled = jax.jit(step_fn).lower(state, loop.zero_carry(names), batch, family.load_frozen()).compile()
    checks = compiled.as_text().count("is-finite(")
    assert len(jax.tree.leaves(state)) > 20 and len(names) == 3
    # each metric's check, and at most one copy of it where the record of the bad terms reads it
    assert len(names) <= checks <= 2 * len(names), checks


def test_second_phase_starts_from_the_first_with_init_from(tmp_path):
    c1 = toy_family.toy_config()
    c1.num_steps, c1.checkpoint_every, c1.image_every = 4, 2, 0
    first = train(c1, str(tmp_path / "phase1"))["state"]
    c2 = toy_family.toy_config()
    c2.model.phase = 2
    c2.num_steps, c2.checkpoint_every, c2.image_every = 3, 3, 0
    c2.init_from = str(tmp_path / "phase1") + ":2"      # an older step of phase 1
    out = train(c2, str(tmp_path / "phase2"))
    second = out["state"]
    # 'first' came from phase 1's checkpoint 2 and stayed frozen; 'second' trained from scratch
    ckpt_first = load_for_inference(str(tmp_path / "phase1"), step=2)[2]["first"]
    for a, b in zip(jax.tree.leaves(second.params["first"]), jax.tree.leaves(ckpt_first), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
               zip(jax.tree.leaves(ckpt_first), jax.tree.leaves(first.params["first"]), strict=True))
    fresh = jax.jit(toy_family.ToyFamily(c2).init_state)(
        jax.random.split(jax.random.key(0))[0],
        {"image": np.zeros((1, 16, 16, 3), np.float32), "mask": np.zeros((1, 16, 16, 1), np.float32)})
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
               zip(jax.tree.leaves(fresh.params["second"]), jax.tree.leaves(second.params["second"]),
                   strict=True))
    # resume of phase 2 is automatic and does not warm-start again
    c2.num_steps = 4
    again = train(c2, str(tmp_path / "phase2"))["state"]
    assert int(again.step) == 4
    # 'dst=src' renames: this run's (untrained, unused) second network starts as phase 1's first
    c4 = toy_family.toy_config()
    c4.num_steps, c4.checkpoint_every, c4.image_every = 1, 1, 0
    c4.init_from, c4.init_from_paths = str(tmp_path / "phase1") + ":2", "params.second=params.first"
    renamed = train(c4, str(tmp_path / "renamed"))["state"]
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 renamed.params["second"], ckpt_first)
    # errors name the path
    c3 = toy_family.toy_config()
    c3.init_from, c3.init_from_paths = str(tmp_path / "phase1"), "params.third"
    with pytest.raises(KeyError, match=r"no 'params.third' \(at 'third'; there: first, second\)"):
        train(c3, str(tmp_path / "bad"))
    c3.init_from = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="not a train.py workdir"):
        train(c3, str(tmp_path / "bad2"))


def test_logged_learning_rate_follows_the_schedule_from_the_optimiser_state(tmp_path):
    c = toy_family.toy_config()
    c.num_steps, c.log_every, c.checkpoint_every, c.image_every = 6, 1, 6, 0
    c.optim.lr, c.optim.schedule, c.optim.warmup_steps, c.optim.final_lr_ratio = 0.01, "linear", 2, 0.5
    train(c, str(tmp_path))
    lrs = [m["lr"] for m in _metrics(str(tmp_path))]
    # steps 1..6 apply the rate at optimiser counts 0..5: warm-up 0 -> 0.01 over 2 steps, then
    # linear 0.01 -> 0.005 over the remaining 4
    expected = [0.0, 0.005, 0.01, 0.00875, 0.0075, 0.00625]
    np.testing.assert_allclose(lrs, expected, rtol=1e-6, atol=1e-9)
