"""The data pipeline: image folders (skipping and counting bad files), the built-in sample set and
its held-out split, TFDS without TensorFlow, deterministic index-based batches, edge guides."""

import io
import logging
import os
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from inpaintjax.config import base_config
from inpaintjax.data import (FolderSource, SampleSource, TfdsSource, TrainBatches, fields,
                             eval_images, make_source)
from inpaintjax.data.sources import SAMPLE_PHOTOS


def _rand_image(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_folder(root, rng):
    """3 good images (nested, 3 formats) plus junk; returns {relative path: pixels} of the good."""
    good = {}
    os.makedirs(os.path.join(root, "a", "b"), exist_ok=True)
    for rel, fmt in (("one.png", "PNG"), ("a/two.webp", "WEBP"), ("a/b/three.PNG", "PNG")):
        arr = _rand_image(rng, 40, 50)
        Image.fromarray(arr).save(os.path.join(root, rel), format=fmt, lossless=True)
        good[rel] = arr
    with open(os.path.join(root, "a", "junk.jpg"), "wb") as f:   # random bytes
        f.write(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    open(os.path.join(root, "empty.png"), "wb").close()          # zero bytes
    Image.fromarray(_rand_image(rng, 8, 8)).save(os.path.join(root, "tiny.png"))
    with open(os.path.join(root, "notes.txt"), "w") as f:         # not an image extension
        f.write("hello")
    return good


def test_folder_skips_and_counts_bad_files(tmp_path, caplog):
    rng = np.random.default_rng(0)
    good = _write_folder(str(tmp_path), rng)
    with caplog.at_level(logging.WARNING):
        src = FolderSource(str(tmp_path), min_side=16)
    assert len(src) == 3
    assert src.skipped == {"undecodable": 2, "tiny": 1, "no_mask": 0}
    assert "2 undecodable, 1 smaller than 16 px" in src.describe()
    for name in ("junk.jpg", "empty.png", "tiny.png"):
        assert any(name in r.getMessage() for r in caplog.records), name
    got = {src.files[i].replace(os.sep, "/"): src[i][0] for i in range(len(src))}
    assert set(got) == set(good)
    for rel, arr in good.items():
        np.testing.assert_array_equal(got[rel], arr)  # lossless formats: exact pixels


def test_folder_paired_masks(tmp_path):
    rng = np.random.default_rng(1)
    images, masks = tmp_path / "img", tmp_path / "msk"
    good = _write_folder(str(images), rng)
    os.makedirs(masks / "a", exist_ok=True)
    hole = np.zeros((40, 50), np.uint8)
    hole[10:20, 5:30] = 255
    Image.fromarray(hole).save(masks / "one.png")
    Image.fromarray(hole[:, ::-1]).save(masks / "a" / "two.png")  # pairs with a/two.webp
    src = FolderSource(str(images), mask_dir=str(masks), min_side=16)
    assert len(src) == 2 and src.skipped["no_mask"] == 1
    by_name = {src.files[i].replace(os.sep, "/"): src[i] for i in range(2)}
    np.testing.assert_array_equal(by_name["one.png"][1], (hole > 0).astype(np.float32))
    np.testing.assert_array_equal(by_name["a/two.webp"][1], (hole[:, ::-1] > 0).astype(np.float32))
    np.testing.assert_array_equal(by_name["one.png"][0], good["one.png"])


def test_empty_folder_is_an_error_naming_it(tmp_path):
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    with pytest.raises(ValueError, match="nothing_here"):
        FolderSource(str(empty))
    bad = tmp_path / "only_junk"
    bad.mkdir()
    (bad / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="only_junk"):
        FolderSource(str(bad))
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        FolderSource(str(tmp_path / "missing_dir"))


def _photo(name):
    img = getattr(skimage.data, name)()
    return img[0] if name == "stereo_motorcycle" else img


def _find(window, image):
    """Positions where `window` occurs exactly in `image` (brute force)."""
    h, w = window.shape[:2]
    H, W = image.shape[:2]
    cand = np.argwhere(np.all(image[:H - h + 1, :W - w + 1] == window[0, 0], axis=-1))
    return [(y, x) for y, x in cand if np.array_equal(image[y:y + h, x:x + w], window)]


def test_sample_set_split_is_disjoint_and_complete():
    train, held = SampleSource("train"), SampleSource("eval")
    assert len(train) == len(held) == len(SAMPLE_PHOTOS) == 8
    for i, name in enumerate(SAMPLE_PHOTOS):
        photo = _photo(name)
        a, b = train[i][0], held[i][0]
        # the two parts tile the photo side by side: every pixel in exactly one split
        np.testing.assert_array_equal(np.concatenate([a, b], axis=1), photo[..., :3])
        assert b.shape[1] == photo.shape[1] - round(0.75 * photo.shape[1])
    # data.resize_shorter scales each whole photo first (aspect kept), then splits it
    small_train, small_held = SampleSource("train", 100), SampleSource("eval", 100)
    for i, name in enumerate(SAMPLE_PHOTOS):
        h, w = _photo(name).shape[:2]
        a, b = small_train[i][0], small_held[i][0]
        assert a.shape[0] == b.shape[0] and min(a.shape[0], a.shape[1] + b.shape[1]) == 100
        assert abs((a.shape[1] + b.shape[1]) / a.shape[0] - w / h) < 0.02


def test_training_crops_come_from_train_part_and_eval_crops_from_held_out():
    c = base_config()
    c.batch_size, c.data.image_size, c.eval.image_size = 4, 24, 24
    c.data.flip = False
    train, held = SampleSource("train"), SampleSource("eval")
    data = TrainBatches(c, train, range(4), fields.default_spec())
    for k in range(2):
        batch = data.batch(k)
        for r in range(4):
            idx = data.example_index(k, r)
            crop = np.round(batch["image"][r] * 255).astype(np.uint8)
            assert len(_find(crop, train[idx][0])) >= 1
            assert len(_find(crop, held[idx][0])) == 0
    ev = eval_images(c, 8)
    np.testing.assert_array_equal(ev, eval_images(c, 8))  # deterministic
    for j in range(8):
        assert len(_find(ev[j], held[j][0])) >= 1
        assert len(_find(ev[j], train[j][0])) == 0


def test_batches_are_a_function_of_step_and_row():
    c = base_config()
    c.batch_size, c.data.image_size = 4, 16
    c.data.flip = True
    c.mask.generator = "deepfill_v2_strokes"
    c.mask.per_batch = False
    src = SampleSource("train")
    spec = dict(fields.default_spec(), guide=fields.canny_edges(0.0))  # sigma drawn per example
    whole = TrainBatches(c, src, range(4), spec)
    run = list(whole.iterate(0, 6))                        # sequential
    c.data.num_workers = 3
    resumed = list(TrainBatches(c, src, range(4), spec).iterate(3, 6))  # threaded, from step 3
    for k in range(3, 6):
        for key in ("image", "mask", "guide"):
            np.testing.assert_array_equal(run[k][key], resumed[k - 3][key])
    # two hosts holding rows 0-1 and 2-3 together load exactly the one-host batch
    lo, hi = TrainBatches(c, src, [0, 1], spec).batch(4), TrainBatches(c, src, [2, 3], spec).batch(4)
    for key in ("image", "mask", "guide"):
        np.testing.assert_array_equal(np.concatenate([lo[key], hi[key]]), run[4][key])
    # every example exactly once per epoch (8 photos, batch 4 -> batches 0, 1 form epoch 0)
    seen = [whole.example_index(k, r) for k in range(2) for r in range(4)]
    assert sorted(seen) == list(range(8))
    assert run[0]["image"].shape == (4, 16, 16, 3) and run[0]["mask"].shape == (4, 16, 16, 1)
    assert set(np.unique(run[0]["mask"])) <= {0.0, 1.0}
    # another seed, another stream
    c.seed = 1
    assert not np.array_equal(TrainBatches(c, src, range(4), spec).batch(0)["image"], run[0]["image"])


def test_canny_edges_of_a_square():
    img = np.zeros((40, 40, 3), np.float32)
    img[10:30, 10:30] = 1.0
    e = fields.canny(img, sigma=1.0)[..., 0]
    assert e.shape == (40, 40) and set(np.unique(e)) == {0.0, 1.0}
    ys, xs = np.nonzero(e)
    # every edge pixel lies within 1 px of the square's outline, and the outline is covered
    dist = np.minimum(np.minimum(np.abs(ys - 9.5), np.abs(ys - 29.5)), np.minimum(np.abs(xs - 9.5), np.abs(xs - 29.5)))
    assert dist.max() <= 1.0
    assert e[20, 8:12].any() and e[20, 28:32].any() and e[8:12, 20].any() and e[28:32, 20].any()
    assert not e[15:25, 15:25].any()


def test_tfds_array_record_source_without_tensorflow(tmp_path):
    import tensorflow_datasets as tfds
    rng = np.random.default_rng(2)
    pics = [_rand_image(rng, 20 + i, 30, ) for i in range(5)]

    class InpaintjaxTinyPics(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(None, None, 3), encoding_format="png")}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(range(3)),
                    "validation": self._generate_examples(range(3, 5))}

        def _generate_examples(self, ids):
            for i in ids:
                # already-encoded PNG: encoding a numpy array would need TensorFlow
                buf = io.BytesIO()
                Image.fromarray(pics[i]).save(buf, format="PNG")
                buf.seek(0)
                yield i, {"image": buf}

    InpaintjaxTinyPics(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
    train = TfdsSource("inpaintjax_tiny_pics", "train", str(tmp_path))
    val = TfdsSource("inpaintjax_tiny_pics", "validation", str(tmp_path))
    assert len(train) == 3 and len(val) == 2
    got = sorted((train[i][0] for i in range(3)), key=lambda a: a.shape[0])
    for i in range(3):
        np.testing.assert_array_equal(got[i], pics[i])
    assert "tensorflow" not in sys.modules
    c = base_config()
    c.data.source, c.data.name, c.data.data_dir = "tfds", "inpaintjax_tiny_pics", str(tmp_path)
    assert len(make_source(c.data, "eval")) == 2
    with pytest.raises(ValueError, match="DatasetNotFoundError.*array_record"):
        TfdsSource("inpaintjax_no_such_set", "train", str(tmp_path))
    # a registered dataset that is not prepared in data_dir: said in one line, with the command
    with pytest.raises(ValueError, match=r"'inpaintjax_tiny_pics' split 'train' in data_dir '.*empty': "
                                         r"it is not prepared there. Prepare it first: `tfds build") as info:
        TfdsSource("inpaintjax_tiny_pics", "train", str(tmp_path / "empty"))
    assert "\n" not in str(info.value)


def test_folder_split_by_holdout_percent_or_eval_dir(tmp_path):
    """data.holdout_percent: the files whose CRC-32 of the relative path (mod 10000) falls below
    percent * 100 are the eval split, the rest the train split (re-derived with zlib here);
    data.eval_dir: the eval split is that folder and the train split all of data_dir."""
    import zlib
    rng = np.random.default_rng(0)
    names = [f"{i:02d}.png" for i in range(40)] + [f"sub/{i}.png" for i in range(8)]
    os.makedirs(tmp_path / "all" / "sub")
    for name in names:
        Image.fromarray(_rand_image(rng, 32, 32)).save(tmp_path / "all" / name)
    c = base_config()
    c.data.source, c.data.data_dir, c.data.holdout_percent = "folder", str(tmp_path / "all"), 25
    train, held = make_source(c.data, "train"), make_source(c.data, "eval")
    want = {n for n in names if zlib.crc32(n.encode()) % 10000 < 2500}
    assert 0 < len(want) < len(names)
    assert set(held.files) == want and set(train.files) == set(names) - want
    os.makedirs(tmp_path / "other")
    for i in range(3):
        Image.fromarray(_rand_image(rng, 40, 40)).save(tmp_path / "other" / f"e{i}.png")
    c.data.eval_dir = str(tmp_path / "other")
    assert set(make_source(c.data, "eval").files) == {"e0.png", "e1.png", "e2.png"}
    assert set(make_source(c.data, "train").files) == set(names)       # nothing held out
