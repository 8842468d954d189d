"""The evaluation protocols' mask sets against the authors' own code, and mask folders grouped as
PConv groups them.

Truth: tests/fixtures/protocol_mask_stats.json, statistics of 2,000 masks per generator drawn by the
original code (advimman/lama @ 786f593, zsyzzsoft/co-mod-gan @ c8b9ffe, fenglinglwb/MAT @ d273d89;
tests/fixtures/make_protocol_mask_stats.py), and tests/fixtures/cv2_lines.npz, OpenCV's rasters of
thick lines. The folder tests write masks whose hole ratios and border distances are known by
construction.
"""

import functools
import hashlib
import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from inpaintjax import masks as M

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
with open(os.path.join(FIXTURES, "protocol_mask_stats.json")) as _f:
    REFERENCE = json.load(_f)

SEED = 2026
# Masks drawn per generator, at the generator's own size. More where a draw is cheap (the 256
# configs), fewer where it is slow (512, and the hole ranges that reject most draws). The LaMa 256
# configs get the most because they carry the drawing code that all LaMa sizes share.
N_DRAWS = {
    "lama_thin_256": 1000, "lama_medium_256": 600, "lama_thick_256": 600,
    "lama_thin_512": 250, "lama_medium_512": 250, "lama_thick_512": 250,
    "comodgan_512": 300, "comodgan_512_h0": 300, "comodgan_512_h1": 200, "comodgan_512_h2": 120,
    "mat_large_512": 300, "mat_small_512": 300, "mat_large_256": 500, "mat_small_256": 500,
}
# Tolerances, in standard errors of the difference between our sample (n) and the reference (N).
# The draws are seeded, so each check either always passes or always fails; 4 standard errors is a
# two-sided normal tail of 6e-5 per check, about 0.5% that one of the ~90 checks of a correct
# implementation would fail for the chosen seed, while a shift of the mean by 4 standard errors
# (about 5% of the mean for the LaMa 256 configs, 10-15% for the rest) fails.
Z = 4.0
# Two-sample Kolmogorov-Smirnov critical value c(alpha) for alpha = 0.001: the largest gap between
# the two empirical distribution functions, evaluated at the reference's 5%..95% quantiles, must be
# below c * sqrt((n + N) / (n N)) (conservative where the distribution has atoms, e.g. no strokes).
KS_C = 1.95


@functools.lru_cache(maxsize=None)
def _sample(name):
    """Draw N_DRAWS[name] masks at the generator's size; return (hole ratios, part ratios (LaMa: 1 for
    box masks, 0 for strokes; CoModGAN/MAT: the brush strokes' own hole ratio), LaMa's segment
    counts (0 for boxes), sha256 of the first three masks' bits)."""
    size = REFERENCE["generators"][name]["size"]
    ratios, parts, segments, digest = [], [], [], hashlib.sha256()
    for i in range(N_DRAWS[name]):
        rng = np.random.default_rng([SEED, i])
        if name.startswith("lama_"):
            _, variant, ref = name.split("_")
            mask, info = M.lama_mask(variant, rng, size, size, ref=int(ref), return_info=True)
            parts.append(1.0 if info["kind"] == "box" else 0.0)
            segments.append(info["segments"])
        else:
            base = name[:len("comodgan_512")] if name.startswith("comodgan_512") else name
            ref, n_half, n_full, n_brush = M.BRUSH_BOX_CONFIGS[base]
            hole_range = M.COMODGAN_HOLE_RANGES.get(name[len("comodgan_512_"):], (0.0, 1.0)) \
                if name.startswith("comodgan_512") else (0.0, 1.0)
            mask, brush = M.brush_box_mask(rng, size, size, ref=ref, half_box_tries=n_half, box_tries=n_full,
                                           brush_tries=n_brush, hole_range=hole_range, return_parts=True)
            parts.append(M.hole_ratio(brush))
        if i < 3:
            np.testing.assert_array_equal(mask, M.make_mask(name, np.random.default_rng([SEED, i]), size, size))
            digest.update(np.packbits(mask > 0.5).tobytes())
        ratios.append(M.hole_ratio(mask))
    return np.array(ratios), np.array(parts), np.array(segments), digest.hexdigest()


def _agrees(values, ref, n_ref, what):
    """Mean, standard deviation and distribution of `values` against the reference summary `ref`."""
    n = len(values)
    mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
    se_mean = math.sqrt(std ** 2 / n + ref["std"] ** 2 / n_ref)
    assert abs(mean - ref["mean"]) <= Z * se_mean, \
        f"{what}: mean {mean:.4f} vs the original's {ref['mean']:.4f} (tolerance {Z * se_mean:.4f})"
    # sd(sample std) ~ std * sqrt((kurtosis - 1) / (4 n)) for any distribution with a 4th moment
    se_std = ref["std"] * math.sqrt((ref["kurtosis"] - 1) / 4) * math.sqrt(1 / n + 1 / n_ref)
    assert abs(std - ref["std"]) <= Z * se_std, \
        f"{what}: std {std:.4f} vs the original's {ref['std']:.4f} (tolerance {Z * se_std:.4f})"
    ecdf = np.searchsorted(np.sort(values), np.array(ref["quantiles"]), side="right") / n
    gap = float(np.max(np.abs(ecdf - np.array(ref["cdf_at_quantiles"]))))
    limit = KS_C * math.sqrt((n + n_ref) / (n * n_ref))
    assert gap <= limit, (f"{what}: distribution differs from the original's (largest CDF gap {gap:.3f} "
                          f"at the reference quantiles, limit {limit:.3f})")


STAT_NAMES = sorted(N_DRAWS)


@pytest.mark.parametrize("name", STAT_NAMES)
def test_mask_statistics_match_the_original_code(name):
    ref = REFERENCE["generators"][name]
    size = ref["size"]
    ratios, parts, segments, _ = _sample(name)
    assert ratios.min() > 0
    _agrees(ratios, ref["hole_ratio"], ref["n"], f"{name} hole ratio")
    if name.startswith("lama_"):
        assert ratios.max() <= 0.5  # max_tamper_area
        # box/stroke mix after the 50% rejection, and each kind's own hole area
        p_ref, n = ref["box_fraction"], len(parts)
        p = float(parts.mean())
        se = math.sqrt(p_ref * (1 - p_ref) * (1 / n + 1 / ref["n"]))
        assert abs(p - p_ref) <= max(Z * se, 1e-12), f"{name}: box fraction {p:.3f} vs {p_ref:.3f}"
        strokes, n_strokes_ref = parts == 0, round(ref["n"] * (1 - p_ref))
        _agrees(ratios[strokes], ref["hole_ratio_strokes"], n_strokes_ref, f"{name} strokes")
        # hole pixels per drawn segment: most of the hole ratio's spread is the stroke count's, so
        # this shows a change of brush width, segment length or line drawing that the ratio hides
        _agrees(segments[strokes], ref["segments"], n_strokes_ref, f"{name} segments")
        per_segment = ratios[strokes] * size * size / segments[strokes]
        _agrees(per_segment, ref["hole_pixels_per_segment"], n_strokes_ref, f"{name} hole pixels per segment")
        if p_ref > 0:
            _agrees(ratios[parts == 1], ref["hole_ratio_box"], round(ref["n"] * p_ref), f"{name} boxes")
    else:
        lo, hi = ref["hole_range"]
        assert lo < ratios.min() and ratios.max() < hi
        _agrees(parts, ref["brush_ratio"], ref["n"], f"{name} brush strokes' area")


# sha256 of the bits of masks 0..2 of each generator (`_sample`), at its own size; they depend only
# on NumPy's PCG64 streams and Generator methods, and, for CoModGAN/MAT, Pillow's line and ellipse
# drawing (LaMa's are NumPy only), never on the machine.
MASK_HASHES = {
    "comodgan_512": "a8bc7a09fd702e5ba3772cab4ff232e5741ed28d375a9776ba331aa5fa4555f8",
    "comodgan_512_h0": "75153293109150b90dea192d38fed74ed3426010bc643c0fe859f953461cee98",
    "comodgan_512_h1": "8cc0059a2aa875f5326b747c18c1b75a7262bdf38f75bf767120f38c174a30c2",
    "comodgan_512_h2": "d776f5e2fbb8f7861b9ce1590ddf0c6ac62044ef83f13bcbafeaabe687b2b340",
    "lama_medium_256": "75a9d16b7735b3c235485c56fdca365259a6d7fceff1622dabb4465c8c8fb45b",
    "lama_medium_512": "5bf5bd621a6e29489ff24bddce64d405ade50984d5912d5acfcdd1efdb0333d5",
    "lama_thick_256": "05280bad730a73ae37d65794a10bae18de58442e6804c0b479d12b0c694a57f9",
    "lama_thick_512": "8a39b646c0f46185e0428ffd596304fc43004acf9f1de83942cf812420d31384",
    "lama_thin_256": "6428641b907b5c9e88cb74896b4d60b1d74ba79f3c97bea95cc83f81d0e18cf3",
    "lama_thin_512": "b41d45f769928efddf1473b6c56be25d6a044db25d30c41f0927a30abedafb6b",
    "mat_large_256": "69a8d929beb571aa84739f57f51599c6605405eee66d02208dedb729c17201ea",
    "mat_large_512": "d6fd896cfb675d3596c64ac75a3e24845f6adf23d2075055fa8beaf36f76c357",
    "mat_small_256": "2d7a160ba119321d2e59411581dd9cfa3d8a5cd1e9a13da2129e3b2f67be9715",
    "mat_small_512": "a426b47790a548a2e80a0be0d177a9d2fb632fc5f1290cf1e8a7878b329c5863",
}


@pytest.mark.parametrize("name", STAT_NAMES)
def test_same_seed_same_masks(name):
    assert _sample(name)[3] == MASK_HASHES[name]


def test_unsampled_hole_ranges_are_registered():
    """h3 and h4 are comodgan_512 restricted to (0.6, 0.8) and (0.8, 1): the code path of h2 (coef 1,
    rejection on both sides), checked by its statistics; here their ranges and coefficient."""
    for h, (lo, hi) in (("h3", (0.6, 0.8)), ("h4", (0.8, 1.0))):
        ratios = [M.hole_ratio(M.make_mask(f"comodgan_512_{h}", s, 512, 512)) for s in range(4)]
        assert all(lo < r < hi for r in ratios)
        assert REFERENCE["generators"][f"comodgan_512_{h}"]["hole_range"] == [lo, hi]


def test_cv2_line_raster_matches_opencv():
    """`draw_cv2_lines` against cv2.line's own rasters (thickness 1-24, ends on and past the edge)."""
    data = np.load(os.path.join(FIXTURES, "cv2_lines.npz"))
    total_cv2 = total_ours = 0
    for (x0, y0, x1, y1, t), packed in zip(data["segments"], data["rasters"]):
        theirs = np.unpackbits(packed, axis=-1)[:, :64].astype(bool)
        ours = M.draw_cv2_lines([M.Stroke(((int(x0), int(y0)), (int(x1), int(y1))), int(t))], 64, 64) > 0.5
        total_cv2 += theirs.sum()
        total_ours += ours.sum()
        union = (theirs | ours).sum()
        if union:
            assert (theirs & ours).sum() / union >= 0.92, (x0, y0, x1, y1, t)
    assert abs(total_ours / total_cv2 - 1) < 0.01


# ---------------------------------------------------------------- mask folders, PConv's groups


def _write(path, hole, polarity="white_hole"):
    hole = np.asarray(hole, bool)
    value = hole if polarity == "white_hole" else ~hole
    Image.fromarray(value.astype(np.uint8) * 255).save(path)


def _box(h, w, top, left, bh, bw):
    m = np.zeros((h, w), bool)
    m[top:top + bh, left:left + bw] = True
    return m


def test_group_mask_folder_buckets_and_border(tmp_path):
    d = tmp_path / "nvidia"
    d.mkdir()
    # 256x256: the margin is 50 * 256 / 512 = 25 px. 65536 px; 9830 px = 0.15 (bucket 1)
    expect = {
        "a_inside.png": (_box(256, 256, 25, 25, 98, 100), 1, False),         # top row 25, left col 25
        "b_top_24.png": (_box(256, 256, 24, 100, 98, 100), 1, True),         # top row 24
        "c_bottom_230.png": (_box(256, 256, 133, 100, 98, 100), 1, False),   # last row 230 = 255 - 25
        "d_bottom_231.png": (_box(256, 256, 134, 100, 98, 100), 1, True),    # last row 231
        "e_right_230.png": (_box(256, 256, 100, 131, 100, 100), 1, False),   # last column 230
        "f_left_0.png": (_box(256, 256, 100, 0, 100, 100), 1, True),
    }
    # exact bucket edges on 100x100 (10,000 px): 1000 px = 0.1 -> bucket 0; 100 px = 0.01 -> none;
    # 6000 px = 0.6 -> bucket 5; 6001 -> none. The margin is 50 * 100 / 512 = 9.77 px.
    expect["g_ratio_0.1.png"] = (_box(100, 100, 10, 10, 20, 50), 0, False)  # 20 x 50 = 1000 px
    small = _box(100, 100, 40, 40, 10, 10)  # 100 px = 0.01
    expect["h_ratio_0.01.png"] = (small, -1, False)
    big = _box(100, 100, 0, 0, 60, 100)  # 6000 px = 0.6
    expect["i_ratio_0.6.png"] = (big, 5, True)
    over = big.copy()
    over[60, 0] = True  # 6001 px
    expect["j_ratio_0.6001.png"] = (over, -1, True)
    expect["k_empty.png"] = (np.zeros((64, 64), bool), -1, False)
    # non-square 200x300: rows scale by 512/200, columns by 512/300; row 20 -> 51.2, row 19 -> 48.6;
    # column 30 -> 51.2, column 29 -> 49.5
    expect["l_rect_ok.png"] = (_box(200, 300, 20, 30, 60, 100), 0, False)   # 6000 / 60000 = 0.1
    expect["m_rect_row19.png"] = (_box(200, 300, 19, 30, 60, 100), 0, True)
    expect["n_rect_col29.png"] = (_box(200, 300, 20, 29, 60, 100), 0, True)
    for name, (hole, _, _) in expect.items():
        _write(d / name, hole)
    (d / "notes.txt").write_text("not a mask")

    groups = M.group_mask_folder(str(d), polarity="nvidia")
    assert groups.polarity == "white_hole"
    assert [os.path.basename(m.path) for m in groups.masks] == sorted(expect)
    for m in groups.masks:
        hole, bucket, with_border = expect[os.path.basename(m.path)]
        assert m.hole_ratio == hole.mean()
        assert m.bucket == bucket, m.path
        assert m.with_border == with_border, m.path
        assert m.size == hole.shape
    by_name = {os.path.basename(m.path): m for m in groups.masks}
    assert by_name["a_inside.png"].border_distance == 50.0
    assert by_name["b_top_24.png"].border_distance == 48.0
    assert by_name["k_empty.png"].border_distance == math.inf
    assert by_name["l_rect_ok.png"].border_distance == pytest.approx(51.2)
    assert groups.paths(1, False) == [str(d / n) for n in ("a_inside.png", "c_bottom_230.png", "e_right_230.png")]
    assert groups.paths(1, True) == [str(d / n) for n in ("b_top_24.png", "d_bottom_231.png", "f_left_0.png")]
    assert groups.paths(0, True) == [str(d / n) for n in ("m_rect_row19.png", "n_rect_col29.png")]
    counts = groups.counts()
    assert counts["10-20%, without border"] == 3 and counts["1-10%, without border"] == 2
    assert counts["50-60%, with border"] == 1 and counts["outside"] == 3
    assert sum(counts.values()) == len(expect) and len(groups.groups) == 12

    # the same masks measured after a nearest resize of the 256 ones to 512: same groups
    resized = M.group_mask_folder(str(d), polarity="white_hole", size=512)
    for a, b in zip(groups.masks, resized.masks):
        if a.size == (256, 256):
            assert (b.bucket, b.with_border, b.hole_ratio) == (a.bucket, a.with_border, a.hole_ratio)


def test_group_mask_folder_polarity(tmp_path):
    """MAT/CoModGAN files are black = hole: the same file read with each polarity gives complementary
    holes; a source name picks its polarity."""
    hole = _box(128, 128, 30, 30, 40, 50)  # 2000 / 16384 = 0.122
    _write(tmp_path / "mat.png", hole, polarity="black_hole")
    black = M.group_mask_folder(str(tmp_path), polarity="mat").masks[0]
    assert black.hole_ratio == hole.mean() and black.bucket == 1 and not black.with_border
    white = M.group_mask_folder(str(tmp_path), polarity="white_hole").masks[0]
    assert white.hole_ratio == 1 - hole.mean() and white.bucket == -1 and white.with_border
    np.testing.assert_array_equal(M.load_mask(str(tmp_path / "mat.png"), polarity="comodgan"), hole)
    with pytest.raises(ValueError, match="white_hole.*black_hole.*nvidia"):
        M.group_mask_folder(str(tmp_path), polarity="white")


def test_group_mask_folder_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        M.group_mask_folder(str(tmp_path / "nowhere"), polarity="nvidia")
    with pytest.raises(ValueError, match="no image files"):
        M.group_mask_folder(str(tmp_path), polarity="nvidia")
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "x.png", _box(64, 64, 10, 10, 20, 20))
    with pytest.raises(ValueError, match="recursive=True"):
        M.group_mask_folder(str(tmp_path), polarity="nvidia")
    nested = M.group_mask_folder(str(tmp_path), polarity="nvidia", recursive=True)
    assert [m.path for m in nested.masks] == [str(tmp_path / "sub" / "x.png")]
    assert nested.masks[0].hole_ratio == 400 / 4096 and not nested.masks[0].with_border  # 10 px = 80 of 512
    _write(tmp_path / "00000.png", _box(64, 64, 10, 10, 20, 20))
    (tmp_path / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ValueError, match="00001.png"):
        M.group_mask_folder(str(tmp_path), polarity="nvidia")
    f = tmp_path / "00000.png"
    with pytest.raises(NotADirectoryError, match="00000.png"):
        M.group_mask_folder(str(f), polarity="nvidia")


def test_the_pconv_protocol_and_the_folder_grouping_split_the_border_alike(tmp_path):
    """One border rule (`border_distance`, scaled to 512 per axis) for the `pconv` protocol's B / N/B
    groups and for `group_mask_folder`. At 300x300 a hole from row 29 is 29 * 512 / 300 = 49.49
    reference pixels from the top: "with border" (B); from row 30, 51.2: N/B (hand-worked). Then a
    sweep of sizes and offsets around the margin: the two groupings agree on every file."""
    from inpaintjax import protocols as P
    binning = P.get_protocol("pconv").binning
    # (size, top row of a size/3 box): with border? At 300 the box from row 171 ends in row 270, 29 px
    # from the bottom (49.49 reference px); from row 170 it ends in row 269, 30 px (51.2)
    hand = {(300, 29): True, (300, 30): False, (300, 171): True, (300, 170): False,
            (512, 49): True, (512, 50): False, (256, 24): True, (256, 25): False}
    for (size, top), with_border in hand.items():
        hole = _box(size, size, top, size // 3, size // 3, size // 3)
        assert binning.groups_of(hole.astype(np.float32)) == (f"10-20% {'B' if with_border else 'N/B'}",), (size, top)
    cases = {}
    for size in (64, 100, 300, 384, 600):
        margin = 50 * size / 512
        for top in sorted({max(0, int(margin) + k) for k in (-1, 0, 1)}):
            for side in ("top", "left", "bottom"):
                b = size // 3
                box = {"top": (top, size // 3), "left": (size // 3, top), "bottom": (size - top - b, size // 3)}[side]
                cases[f"s{size}_{side}_{top}.png"] = _box(size, size, box[0], box[1], b, b)
    d = tmp_path / "masks"
    d.mkdir()
    for name, hole in cases.items():
        _write(d / name, hole)
    infos = {os.path.basename(m.path): m for m in M.group_mask_folder(str(d), polarity="white_hole").masks}
    assert len(infos) == len(cases)
    seen = set()
    for name, hole in cases.items():
        info = infos[name]
        assert info.bucket >= 0, name
        want = (f"{binning.bin_names()[info.bucket]} {'B' if info.with_border else 'N/B'}",)
        assert binning.groups_of(hole.astype(np.float32)) == want, (name, info.border_distance)
        assert P.touches_border(hole, 50, 512) == info.with_border == (M.border_distance(hole) < 50), name
        seen.add(info.with_border)
    assert seen == {True, False}
