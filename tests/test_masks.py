"""Mask generators checked against the published algorithms' stated ranges and geometry
(JiahuiYu/generative_inpainting `inpaint_ops.py::brush_stroke_mask`/`random_bbox`/`bbox2mask`,
naoto0804/pytorch-inpainting-with-partial-conv `generate_data.py`, knazeri/edge-connect
`src/dataset.py::load_mask`; LaMa configs/data_gen), buckets at their edges, and the frozen
eval-set round trip."""

import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from inpaintjax import masks as M

SEEDS = range(60)


def _bbox(mask):
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def _is_one_rectangle(mask):
    t, b, l, r = _bbox(mask)
    expect = np.zeros_like(mask)
    expect[t:b, l:r] = 1
    return np.array_equal(mask, expect)


# ---------------------------------------------------------------- DeepFill v2 strokes


@pytest.mark.parametrize("h,w", [(256, 256), (200, 320)])
def test_deepfill_stroke_params_follow_released_ranges(h, w):
    avg_r = math.sqrt(h * h + w * w) / 8
    n_strokes, n_vertices, widths = set(), set(), []
    for s in SEEDS:
        strokes = M.deepfill_v2_stroke_params(s, h, w)
        n_strokes.add(len(strokes))
        for st in strokes:
            n_vertices.add(len(st.vertices))
            widths.append(st.width)
            x0, y0 = st.vertices[0]
            assert 0 <= x0 < w and 0 <= y0 < h  # start: x over columns, y over rows
            for i, ((xa, ya), (xb, yb)) in enumerate(zip(st.vertices[:-1], st.vertices[1:])):
                assert 0 <= xb <= w and 0 <= yb <= h
                # segment length clip(Normal(r, floor(r/2)), 0, 2r), then int truncation (< sqrt 2)
                assert math.hypot(xb - xa, yb - ya) <= 2 * avg_r + 1.5
                # angles within 2pi/5 +- 2pi/15: odd segments go down (sin > 0), even ones up
                if 0 < xb < w and 0 < yb < h:
                    if i % 2 == 0:
                        assert yb - ya <= 1
                    else:
                        assert yb - ya >= -1
    assert n_strokes == {1, 2, 3}
    assert n_vertices == set(range(5, 13))  # 4..11 segments + the start point
    assert min(widths) >= 12 and max(widths) <= 39


def _segment_distance(px, py, xa, ya, xb, yb):
    dx, dy = xb - xa, yb - ya
    denom = dx * dx + dy * dy
    t = np.zeros_like(px) if denom == 0 else np.clip(((px - xa) * dx + (py - ya) * dy) / denom, 0, 1)
    return np.hypot(px - (xa + t * dx), py - (ya + t * dy))


def test_deepfill_strokes_raster_is_the_polyline_of_that_width():
    h, w = 96, 128
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    for s in range(8):
        strokes = M.deepfill_v2_stroke_params(s, h, w)
        mask = M.deepfill_v2_strokes(s, h, w)  # same seed: the drawing of those parameters
        near = np.zeros((h, w), bool)
        for st in strokes:
            v = st.vertices
            for (xa, ya), (xb, yb) in zip(v[:-1], v[1:]):
                near |= _segment_distance(xx, yy, xa, ya, xb, yb) <= st.width / 2 + 1.5
            for x, y in v:
                if x < w and y < h:
                    assert mask[y, x] == 1  # every vertex inside the canvas is painted
        assert mask.sum() > 0
        assert not np.any((mask == 1) & ~near)  # nothing painted away from the strokes


# ---------------------------------------------------------------- DeepFill boxes


@pytest.mark.parametrize(
    "h,w,box_h,box_w,dmax_h,dmax_w",
    [(256, 256, 128, 128, 16, 16), (64, 64, 32, 32, 4, 4), (128, 128, 64, 64, 8, 8), (64, 256, 32, 128, 4, 16)],
)
def test_deepfill_box_geometry(h, w, box_h, box_w, dmax_h, dmax_w):
    sides_h, sides_w = set(), set()
    for s in SEEDS:
        mask = M.deepfill_box(s, h, w)
        assert _is_one_rectangle(mask)
        t, b, l, r = _bbox(mask)
        sh, sw = b - t, r - l
        assert (box_h - sh) % 2 == 0 and (box_w - sw) % 2 == 0  # symmetric shrink
        dh, dw = (box_h - sh) // 2, (box_w - sw) // 2
        assert 0 <= dh <= dmax_h and 0 <= dw <= dmax_w
        top, left = t - dh, l - dw
        assert 0 <= top < h - box_h and 0 <= left < w - box_w  # exclusive max, as TF random_uniform
        sides_h.add(sh)
        sides_w.add(sw)
    assert min(sides_h) >= box_h - 2 * dmax_h and max(sides_h) <= box_h
    if (h, w) == (256, 256):
        assert min(sides_h | sides_w) >= 96 and max(sides_h | sides_w) <= 128


def test_center_box_is_deepfill_v1_validation_hole():
    mask = M.center_box(0, 256, 256)
    assert _bbox(mask) == (64, 192, 64, 192) and _is_one_rectangle(mask)


def test_deepfill_v2_training_contains_a_box_of_at_least_96():
    for s in range(20):
        mask = M.deepfill_v2_training(s, 256, 256)
        # a fully-holed 96x96 window exists (2-D prefix sums)
        c = np.pad(mask.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        k = 96
        win = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
        assert win.max() == k * k
        assert M.hole_ratio(mask) >= (96 * 96) / (256 * 256)


# ---------------------------------------------------------------- NI random walk


def test_random_walk_matches_per_step_loop():
    n, length = 24, 3000  # small canvas: the walk hits the borders many times
    for s in range(3):
        got = M.irregular_random_walk(s, n, n, canvas_size=n, length=length)
        rng = np.random.default_rng(s)
        x, y = (int(v) for v in rng.integers(0, n, size=2))
        moves = rng.integers(0, 4, size=length)
        actions = [(0, 1), (0, -1), (1, 0), (-1, 0)]  # NI's action list; x indexes rows
        expect = np.zeros((n, n), np.float32)
        for m in moves:
            x = min(max(x + actions[m][0], 0), n - 1)
            y = min(max(y + actions[m][1], 0), n - 1)
            expect[x, y] = 1
        np.testing.assert_array_equal(got, expect)


def test_random_walk_default_is_binary_and_resized():
    mask = M.irregular_random_walk(0, 100, 150)
    assert mask.shape == (100, 150) and set(np.unique(mask)) <= {0.0, 1.0}
    assert 0.05 < M.hole_ratio(mask) < 0.5


# ---------------------------------------------------------------- LaMa


def test_lama_params_are_lamas_configs():
    # advimman/lama configs/data_gen/random_{thin,medium,thick}_{256,512}.yaml
    expect = {
        ("thin", 256): (4, 50, 10, 40, None),
        ("thin", 512): (4, 70, 20, 100, None),
        ("medium", 256): (4, 5, 50, 100, dict(margin=0, min_size=10, max_size=50, min_times=1, max_times=5)),
        ("medium", 512): (4, 10, 100, 200, dict(margin=0, min_size=30, max_size=150, min_times=1, max_times=5)),
        ("thick", 256): (1, 5, 100, 200, dict(margin=10, min_size=30, max_size=150, min_times=1, max_times=3)),
        ("thick", 512): (1, 5, 250, 450, dict(margin=10, min_size=30, max_size=300, min_times=1, max_times=4)),
    }
    for (variant, size), (t0, t1, mw, ml, boxes) in expect.items():
        p = M.lama_params(variant, size, size)
        assert (p["min_times"], p["max_times"], p["max_width"], p["max_len"]) == (t0, t1, mw, ml)
        assert (p["width_offset"], p["len_offset"], p["max_angle"], p["max_area"]) == (5, 10, 4, 0.5)
        assert p["boxes"] == boxes
        assert p["box_proba"] == (0.0 if boxes is None else pytest.approx(0.3 / 1.3))
    p = M.lama_params("thick", 128, 128)  # half of the 256 config's lengths
    assert (p["max_width"], p["max_len"], p["boxes"]["max_size"]) == (50, 100, 75)
    # a named config at another size: the 512 config's lengths halved, its counts kept
    p = M.lama_params("thin", 256, 256, ref=512)
    assert (p["min_times"], p["max_times"], p["max_width"], p["max_len"], p["width_offset"]) == (4, 70, 10, 50, 2)
    assert M.lama_params("thin", 400, 400) == M.lama_params("thin", 400, 400, ref=512)
    assert M.lama_params("thin", 383, 500) == M.lama_params("thin", 383, 500, ref=256)
    with pytest.raises(ValueError, match="256 and 512"):
        M.lama_params("thin", 256, 256, ref=384)
    with pytest.raises(ValueError, match="thin"):
        M.lama_params("wide", 256, 256)


@pytest.mark.parametrize("name", ["lama_thin", "lama_medium", "lama_thick"])
def test_lama_area_at_most_half(name):
    ratios = [M.hole_ratio(M.make_mask(name, s, 256, 256)) for s in range(40)]
    ratios += [M.hole_ratio(M.make_mask(name, s, 96, 160)) for s in range(10)]
    assert max(ratios) <= 0.5
    assert min(ratios) > 0


@pytest.mark.parametrize("variant,size", [("thin", 256), ("medium", 512), ("thick", 256)])
def test_lama_stroke_params_follow_lamas_algorithm(variant, size):
    p = M.lama_params(variant, size, size)
    n_strokes, n_segments, widths = set(), set(), []
    base_angles = [0.01 + k for k in range(4)]
    for s in range(40):
        strokes = M.lama_stroke_params(np.random.default_rng(s), size, size, p)
        n_strokes.add(len(strokes))
        for i, st in enumerate(strokes):
            n_segments.add(len(st))
            for j, seg in enumerate(st):
                (xa, ya), (xb, yb) = seg.vertices
                widths.append(seg.width)
                if j > 0:
                    assert st[j - 1].vertices[1] == (xa, ya)  # segments are connected
                assert 0 <= xb <= size and 0 <= yb <= size
                length = math.hypot(xb - xa, yb - ya)
                assert length <= p["len_offset"] + p["max_len"] - 1 + 1.5
                if 0 < xb < size and 0 < yb < size and length > 12:
                    # direction = (sin a, cos a), a in {0.01, 1.01, 2.01, 3.01}, mirrored on even strokes
                    angles = [2 * math.pi - a for a in base_angles] if i % 2 == 0 else base_angles
                    got = math.atan2(xb - xa, yb - ya) % (2 * math.pi)
                    err = min(abs((got - a + math.pi) % (2 * math.pi) - math.pi) for a in angles)
                    assert err < 2.0 / length + 1e-6
    # LaMa's RandomIrregularMaskGenerator passes max_times + 1 to make_random_irregular_mask
    assert min(n_strokes) >= p["min_times"] and max(n_strokes) <= p["max_times"] + 1
    assert n_segments == {1, 2, 3, 4, 5}
    assert min(widths) >= 5 and max(widths) <= 5 + p["max_width"] - 1


def test_lama_counts_and_box_sides_reach_lamas_effective_ends():
    """LaMa's generator classes at coefficient 1 pass max_times + 1 strokes and bbox_max_size + 1 to
    its functions, whose randint excludes the top: 1..6 strokes for thick (config 1..5), box sides
    30..150 inclusive (config bbox 30..150) at 256."""
    p = M.lama_params("thick", 256, 256, ref=256)
    counts = {len(M.lama_stroke_params(np.random.default_rng(s), 256, 256, p)) for s in range(80)}
    assert counts == set(range(1, 7))
    sides = set()
    for s in range(400):
        mask = M.generators._lama_boxes(np.random.default_rng(s), 256, 256, dict(p["boxes"], max_times=1))
        t, b, l, r = _bbox(mask)
        sides.update((b - t, r - l))
    assert min(sides) == 30 and max(sides) == 150


def test_lama_lines_raster_is_the_segments_of_their_widths():
    h, w = 128, 160
    p = M.lama_params("thick", h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    for s in range(5):
        segs = [seg for st in M.lama_stroke_params(np.random.default_rng(s), h, w, p) for seg in st]
        mask = M.draw_cv2_lines(segs, h, w)
        near = np.zeros((h, w), bool)
        for seg in segs:
            (xa, ya), (xb, yb) = seg.vertices
            near |= _segment_distance(xx, yy, xa, ya, xb, yb) <= seg.width / 2 + 1.5
        assert mask.sum() > 0 and not np.any((mask == 1) & ~near)


# ---------------------------------------------------------------- EdgeConnect


@pytest.mark.parametrize("h,w", [(256, 256), (37, 50)])
def test_edgeconnect_block_is_half_by_half(h, w):
    tops = set()
    for s in range(30):
        mask = M.edgeconnect_block(s, h, w)
        assert _is_one_rectangle(mask)
        t, b, l, r = _bbox(mask)
        assert (b - t, r - l) == (h // 2, w // 2)
        assert 0 <= t <= h - h // 2 and 0 <= l <= w - w // 2
        tops.add((t, l))
    assert len(tops) > 20


@pytest.mark.parametrize("h,w", [(256, 256), (40, 61)])
def test_edgeconnect_half_is_left_or_right_half(h, w):
    sides = set()
    for s in range(20):
        mask = M.edgeconnect_half(s, h, w)
        left, right = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
        left[:, : w // 2] = 1
        right[:, w // 2 : 2 * (w // 2)] = 1
        assert np.array_equal(mask, left) or np.array_equal(mask, right)
        sides.add(bool(mask[0, 0]))
    assert sides == {True, False}


# ---------------------------------------------------------------- registry, dtype, determinism


@pytest.mark.parametrize("name", sorted(M.MASK_GENERATORS))
@pytest.mark.parametrize("h,w", [(33, 47), (64, 64), (50, 130)])
def test_generators_dtype_range_shape(name, h, w):
    mask = M.make_mask(name, 7, h, w)
    assert mask.dtype == np.float32 and mask.shape == (h, w)
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert M.mask_hw1(mask).shape == (h, w, 1)


@pytest.mark.parametrize("name", sorted(M.MASK_GENERATORS))
def test_generators_deterministic(name):
    a = M.make_mask(name, 11, 64, 96)
    np.testing.assert_array_equal(a, M.make_mask(name, np.random.default_rng(11), 64, 96))
    if name not in ("center_box", "shiftnet_center"):
        others = [M.make_mask(name, s, 64, 96) for s in (12, 13, 14)]
        assert any(not np.array_equal(a, o) for o in others)


def test_unknown_name_lists_valid_and_suggests():
    with pytest.raises(ValueError) as e:
        M.make_mask("deepfil_box", 0, 64, 64)
    msg = str(e.value)
    assert "Did you mean 'deepfill_box'" in msg and "lama_thick" in msg and "edgeconnect_half" in msg
    with pytest.raises(ValueError, match="deepfill_v2_strokes"):
        M.make_mask("deepfill_v2_training+deepfill_v2_stroke", 0, 64, 64)


def test_union_name_is_union_of_draws_in_order():
    rng = np.random.default_rng(3)
    a = M.deepfill_box(rng, 128, 128)
    b = M.edgeconnect_half(rng, 128, 128)
    np.testing.assert_array_equal(M.make_mask("deepfill_box+edgeconnect_half", 3, 128, 128), np.maximum(a, b))


def test_mixture_name_picks_one_alternative_per_draw():
    """'|' draws one integer in [0, n) from the stream, then that alternative's mask (a '+'-union
    counts as one alternative), re-derived here by hand for several seeds."""
    picked = set()
    for seed in range(12):
        rng = np.random.default_rng(seed)
        k = int(rng.integers(2))
        want = M.center_box(rng, 64, 64) if k == 0 else np.maximum(M.deepfill_box(rng, 64, 64),
                                                                     M.edgeconnect_half(rng, 64, 64))
        got = M.make_mask("center_box|deepfill_box+edgeconnect_half", seed, 64, 64)
        np.testing.assert_array_equal(got, want)
        picked.add(k)
    assert picked == {0, 1}
    with pytest.raises(ValueError, match="Did you mean 'lama_thin'"):
        M.make_mask("lama_thin|lama_thn", 0, 64, 64)


def test_bad_rng_and_size():
    with pytest.raises(TypeError, match="Generator or an int seed"):
        M.deepfill_box("seed", 64, 64)
    with pytest.raises(TypeError, match="two ints"):
        M.deepfill_box(0, 64.0, 64)


# ---------------------------------------------------------------- buckets


def test_bucket_edges_and_names():
    assert M.bucket_of(0.1) == 0  # (0.01, 0.1]
    assert M.bucket_of(0.01) == -1 and M.bucket_of(0.0) == -1
    assert M.bucket_of(0.0100001) == 0
    assert M.bucket_of(0.2) == 1 and M.bucket_of(0.2000001) == 2
    assert M.bucket_of(0.6) == 5 and M.bucket_of(0.6000001) == -1 and M.bucket_of(1.0) == -1
    np.testing.assert_array_equal(M.bucket_of(np.array([0.05, 0.3, 0.35, 0.7])), [0, 2, 3, -1])
    assert [M.bucket_name(i) for i in range(6)] == ["1-10%", "10-20%", "20-30%", "30-40%", "40-50%", "50-60%"]
    with pytest.raises(ValueError):
        M.bucket_name(6)
    # exactly 10% of the pixels is the top edge of the first bucket
    mask = np.zeros((10, 10), np.float32)
    mask[0, :] = 1
    assert M.hole_ratio(mask) == 0.1 and M.bucket_of(M.hole_ratio(mask)) == 0
    mask[1, :3] = 1
    np.testing.assert_allclose(M.hole_ratio(np.stack([mask, mask * 0])[..., None]), [0.13, 0.0])


# ---------------------------------------------------------------- frozen eval set


def _read_all(d):
    return {f: open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))}


def test_eval_set_fills_buckets_and_is_reproducible(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    man = M.build_eval_mask_set(a, size=(64, 64), per_bucket=2, seed=5)
    M.build_eval_mask_set(b, size=(64, 64), per_bucket=2, seed=5)
    files_a = _read_all(a)
    assert files_a == _read_all(b)  # byte-identical builds
    assert len(files_a) == 6 * 2 + 1 and "manifest.json" in files_a
    on_disk = json.loads(files_a["manifest.json"])
    assert on_disk == json.loads(json.dumps(man))
    counts = np.bincount([e["bucket"] for e in on_disk["masks"]], minlength=6)
    assert counts.tolist() == [2] * 6
    for e in on_disk["masks"]:
        assert set(e) >= {"file", "bucket", "ratio", "generator", "seed", "size", "index", "attempt"}
        png = np.asarray(Image.open(os.path.join(a, e["file"])))
        assert png.dtype == np.uint8 and png.shape == (64, 64) and set(np.unique(png)) <= {0, 255}
        lo, hi = M.BUCKETS[e["bucket"]]
        assert lo < (png == 255).mean() <= hi
        assert (png == 255).mean() == e["ratio"]
        # any mask can be re-made from its manifest entry alone
        again = M.make_mask(e["generator"], np.random.default_rng([e["seed"], e["attempt"]]), 64, 64)
        np.testing.assert_array_equal(again * 255, png)

    loaded = M.load_eval_mask_set(a)
    assert [bk for _, bk in loaded] == [e["bucket"] for e in on_disk["masks"]]
    assert all(m.dtype == np.float32 and m.shape == (64, 64) for m, _ in loaded)
    stacked, buckets = M.load_eval_mask_set(a, stacked=True)
    assert stacked.shape == (12, 64, 64, 1) and buckets.tolist() == [e["bucket"] for e in on_disk["masks"]]

    other = M.build_eval_mask_set(str(tmp_path / "c"), size=(64, 64), per_bucket=2, seed=6)
    assert [e["attempt"] for e in other["masks"]] != [e["attempt"] for e in man["masks"]]

    os.remove(os.path.join(a, on_disk["masks"][3]["file"]))
    with pytest.raises(FileNotFoundError, match=on_disk["masks"][3]["file"]):
        M.load_eval_mask_set(a)


def test_eval_set_unfillable_generator_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError) as e:
        M.build_eval_mask_set(str(tmp_path), generator="center_box", size=(64, 64), per_bucket=1, max_attempts=50)
    msg = str(e.value)
    assert "1-10%" in msg and "mix in another generator" in msg
    assert not os.path.exists(os.path.join(tmp_path, "manifest.json"))
    with pytest.raises(ValueError, match="Did you mean"):
        M.build_eval_mask_set(str(tmp_path), generator=["lama_thik"], size=(64, 64), per_bucket=1)


# ---------------------------------------------------------------- user mask files


def test_load_mask_any_format(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[1, 2, 0] = 255  # a red stroke on black: a hole
    rgb[4, 5, 0] = 255
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    expect = np.zeros((6, 8), np.float32)
    expect[1, 2] = expect[4, 5] = 1
    np.testing.assert_array_equal(M.load_mask(str(tmp_path / "rgb.png")), expect)

    rgba = np.concatenate([rgb, np.full((6, 8, 1), 255, np.uint8)], axis=-1)  # opaque alpha is ignored
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(M.load_mask(str(tmp_path / "rgba.png")), expect)

    grey = (expect * 128).astype(np.uint8)  # a hole from half of the range up (image_io's rule)
    grey[0, 0] = 127                        # just under half: known
    Image.fromarray(grey).save(tmp_path / "grey.bmp")
    with pytest.warns(UserWarning, match="3 distinct values"):
        np.testing.assert_array_equal(M.load_mask(str(tmp_path / "grey.bmp")), expect)

    Image.fromarray(expect.astype(bool)).save(tmp_path / "bits.png")  # 1-bit
    np.testing.assert_array_equal(M.load_mask(str(tmp_path / "bits.png")), expect)

    # nearest resize: each pixel of a 2x3 pattern becomes a 2x2 block
    small = np.array([[1, 0, 1], [0, 1, 0]], np.uint8) * 255
    Image.fromarray(small).save(tmp_path / "small.png")
    big = M.load_mask(str(tmp_path / "small.png"), size=(4, 6))
    np.testing.assert_array_equal(big, np.kron(small / 255, np.ones((2, 2))).astype(np.float32))
    assert M.load_mask(str(tmp_path / "small.png"), size=9).shape == (9, 9)


def test_load_mask_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="broken.png"):
        M.load_mask(str(bad))
    with pytest.raises(FileNotFoundError, match="absent.png"):
        M.load_mask(str(tmp_path / "absent.png"))
