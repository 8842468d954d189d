"""image_io: every file here is made by the test; expected values are worked out by hand."""

import os
import struct
import time
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from quadrants import quadrants

from inpaintjax import image_io


def _no_warnings():
    return warnings.catch_warnings(record=True)


def test_16bit_grey_png_is_scaled_not_clipped(tmp_path):
    v = np.linspace(0, 65535, 64 * 48).round().astype(np.uint16).reshape(48, 64)
    p = tmp_path / "deep.png"
    Image.fromarray(v).save(p)
    assert Image.open(p).mode.startswith("I;16")
    img = image_io.read_image(p)
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    expect = np.floor(v.astype(np.float64) * 255.0 / 65535.0 + 0.5).astype(np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], expect)
    # a clipping reader makes everything above 255 white: here half the image is below 128
    assert (img[..., 0] < 128).mean() == pytest.approx(0.5, abs=0.01)


def test_16bit_mask_thresholds_at_half_range(tmp_path):
    v = np.zeros((8, 8), np.uint16)
    v[:, 2] = 20000      # below 32768: not a hole
    v[:, 5] = 40000      # hole
    p = tmp_path / "m16.png"
    Image.fromarray(v).save(p)
    with _no_warnings():
        hole = image_io.read_mask(p)
    expect = np.zeros((8, 8), np.float32)
    expect[:, 5] = 1
    np.testing.assert_array_equal(hole, expect)


@pytest.mark.parametrize("orientation,expect", [
    (3, lambda a: a[::-1, ::-1]),              # rotated 180
    (6, lambda a: np.rot90(a, k=-1)),          # displayed rotated 90 clockwise
    (8, lambda a: np.rot90(a, k=1)),           # displayed rotated 90 counter-clockwise
])
def test_exif_orientation_applied_to_jpeg_image_and_png_mask(tmp_path, orientation, expect):
    stored = quadrants(32, 64)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "photo.jpg"
    Image.fromarray(stored).save(p, exif=exif, quality=95)
    img = image_io.read_image(p)
    want = expect(stored)
    assert img.shape == want.shape
    h, w = want.shape[:2]
    for y in (h // 4, 3 * h // 4):               # quadrant centres (JPEG blurs colour edges)
        for x in (w // 4, 3 * w // 4):
            assert np.abs(img[y, x].astype(int) - want[y, x].astype(int)).max() < 8, (y, x)
    assert image_io.image_size(p) == (want.shape[1], want.shape[0])

    m = np.zeros((32, 64), np.uint8)
    m[:8, :16] = 255                            # the top-left corner of the stored pixels
    mp = tmp_path / "mask.png"
    Image.fromarray(m).save(mp, exif=exif)
    np.testing.assert_array_equal(image_io.read_mask(mp), expect(m).astype(np.float32) / 255.0)


def test_grey_background_mask_is_not_a_hole(tmp_path):
    m = np.full((20, 30), 100, np.uint8)       # a grey background, not black
    m[5:10, 5:20] = 255
    p = tmp_path / "grey_bg.png"
    Image.fromarray(m).save(p)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # two levels, small hole: no warning
        hole = image_io.read_mask(p)
    assert hole.dtype == np.float32
    np.testing.assert_array_equal(hole, (m == 255).astype(np.float32))


def test_jpeg_mask_is_thresholded_and_warned_about(tmp_path):
    m = np.zeros((64, 64), np.uint8)
    m[19:37, 11:45] = 255                       # edges off the 8x8 JPEG grid: they ring
    p = tmp_path / "mask.jpg"
    Image.fromarray(m).save(p, quality=75)
    assert len(np.unique(np.asarray(Image.open(p)))) > 2     # the JPEG really rang
    with pytest.warns(UserWarning, match=r"mask\.jpg has \d+ distinct values"):
        hole = image_io.read_mask(p)
    truth = m > 0
    assert (hole.astype(bool) == truth).mean() > 0.99        # only edge pixels may differ
    assert hole[:12].sum() == 0 and hole[44:].sum() == 0      # ringing far away is not a hole


def test_rgb_masks_with_a_saturated_channel(tmp_path):
    truth = np.zeros((16, 16), bool)
    truth[4:9, 3:12] = True
    blue_bg = np.zeros((16, 16, 3), np.uint8)
    blue_bg[...] = (0, 0, 255)                  # blue everywhere: any-non-zero would say all hole
    blue_bg[truth] = (255, 255, 255)
    red_strokes = np.zeros((16, 16, 3), np.uint8)
    red_strokes[truth] = (255, 0, 0)            # luminance 76: a grey threshold would miss it
    for name, arr in (("blue.png", blue_bg), ("red.png", red_strokes)):
        Image.fromarray(arr).save(tmp_path / name)
        np.testing.assert_array_equal(image_io.read_mask(tmp_path / name), truth.astype(np.float32))


def test_label_map_mask_and_coverage_warning(tmp_path):
    m = np.zeros((10, 10), np.uint8)
    m[2:4, 2:4] = 1                              # 0/1 label map: 1 = hole
    Image.fromarray(m).save(tmp_path / "labels.png")
    np.testing.assert_array_equal(image_io.read_mask(tmp_path / "labels.png"), m.astype(np.float32))
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(tmp_path / "white.png")
    with pytest.warns(UserWarning, match=r"white\.png marks 100% of the image as hole"):
        image_io.read_mask(tmp_path / "white.png")


def test_alpha_only_mask_and_rgba_image(tmp_path):
    a = np.zeros((6, 6, 4), np.uint8)
    a[..., :3] = 40
    a[1:3, 1:5, 3] = 255                         # strokes only in alpha
    Image.fromarray(a, "RGBA").save(tmp_path / "alpha.png")
    expect = np.zeros((6, 6), np.float32)
    expect[1:3, 1:5] = 1
    np.testing.assert_array_equal(image_io.read_mask(tmp_path / "alpha.png"), expect)
    img = image_io.read_image(tmp_path / "alpha.png")
    assert img.shape == (6, 6, 3) and np.all(img == 40)      # alpha dropped, colour kept


def _png_header_only(path, width, height):
    """A PNG whose header declares width x height and which holds no pixel data at all."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [10_000, 20_000])   # 1.1x (Pillow only warns) and 4.5x the limit
def test_decompression_bomb_is_an_error_before_decoding(tmp_path, side):
    p = tmp_path / "bomb.png"
    _png_header_only(p, side, side)
    assert os.path.getsize(p) < 100
    t0 = time.time()
    for fn in (image_io.read_image, image_io.read_mask, image_io.image_size):
        with pytest.raises(ValueError, match=r"bomb\.png.*decompression-bomb limit of 89,478,485"):
            fn(p)
    assert time.time() - t0 < 2.0


def test_limit_follows_pillow_setting(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"small\.png: 1,600 pixels is above .* limit of 1,000"):
        image_io.read_image(tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert image_io.read_image(tmp_path / "small.png").shape == (40, 40, 3)


def test_float_tiff_with_nan_is_refused_and_in_range_float_is_scaled(tmp_path):
    good = np.array([[0.0, 0.5], [1.0, 0.25]], np.float32)
    Image.fromarray(good, "F").save(tmp_path / "good.tif")
    np.testing.assert_array_equal(image_io.read_image(tmp_path / "good.tif")[..., 1],
                                  [[0, 128], [255, 64]])
    bad = good.copy()
    bad[0, 1] = np.nan
    Image.fromarray(bad, "F").save(tmp_path / "nan.tif")
    with pytest.raises(ValueError, match=r"nan\.tif holds NaN or Inf"):
        image_io.read_image(tmp_path / "nan.tif")


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.png"):
        image_io.read_image(tmp_path / "absent.png")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        image_io.read_mask(tmp_path)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"mask .*junk\.png"):
        image_io.read_mask(tmp_path / "junk.png", "mask")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.png .*damaged or truncated"):
        image_io.read_image(tmp_path / "cut.png")
    # the header alone (how the CLI sizes an image before decoding it): the same words
    with pytest.raises(ValueError, match=r"cannot decode image .*cut\.png \(64x64\): the file is damaged or truncated"):
        image_io.image_size(tmp_path / "cut.png")
    (tmp_path / "head.png").write_bytes(data[:20])  # cut inside the header
    for read in (image_io.image_size, image_io.read_image):
        with pytest.raises(ValueError, match=r"head\.png: the file is damaged or truncated"):
            read(tmp_path / "head.png")


def test_write_image_round_trip_and_refusals(tmp_path):
    a = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image_io.write_image(tmp_path / "sub" / "x.png", a)
    np.testing.assert_array_equal(image_io.read_image(tmp_path / "sub" / "x.png"), a)
    image_io.write_image(tmp_path / "f.png", np.full((2, 2, 3), 0.5, np.float32))
    assert np.all(image_io.read_image(tmp_path / "f.png") == 128)
    with pytest.raises(ValueError, match=r"out\.xyz: unknown image extension '\.xyz'"):
        image_io.write_image(tmp_path / "out.xyz", a)
    with pytest.raises(ValueError, match="NaN or Inf"):
        image_io.write_image(tmp_path / "n.png", np.full((2, 2, 3), np.nan, np.float32))
    assert sorted(os.listdir(tmp_path)) == ["f.png", "sub"]   # no temporary file left behind


def test_list_images_survives_a_symlink_loop(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for rel in ("a.PNG", "sub/b.jpg", ".hidden/c.png", ".dot.png", "notes.txt"):
        (root / rel).write_bytes(b"x")
    os.symlink("..", root / "sub" / "loop")          # data/sub/loop -> data
    os.symlink("../..", root / "sub" / "up")         # -> tmp_path (which holds data again)
    os.symlink("sub/b.jpg", root / "link.jpg")       # a file link is an image
    os.symlink("missing.png", root / "dangling.png")
    t0 = time.time()
    assert image_io.list_images(root, recursive=True) == ["a.PNG", "link.jpg", "sub/b.jpg"]
    assert image_io.list_images(root) == ["a.PNG", "link.jpg"]
    assert time.time() - t0 < 1.0
    with pytest.raises(NotADirectoryError, match="notes.txt"):
        image_io.list_images(root / "notes.txt")


def test_pil_images_follow_the_file_rules(tmp_path):
    # image_from_pil is read_image without a file, pixels_from_pil the same values at the mode's
    # own depth, mask_from_pil read_mask's rule; the 16-bit values are worked out by hand
    v = np.array([[0, 257, 32767, 32768, 65535, 70000, -5, 1000]] * 8, np.int32)
    im = Image.fromarray(v)
    assert im.mode == "I"
    clipped = np.clip(v, 0, 65535)
    np.testing.assert_array_equal(image_io.pixels_from_pil(im), clipped.astype(np.uint16))
    eight = np.floor(clipped * 255.0 / 65535.0 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(image_io.image_from_pil(im), np.repeat(eight[..., None], 3, -1))
    Image.fromarray(clipped.astype(np.uint16)).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(image_io.image_from_pil(im),
                                  image_io.read_image(tmp_path / "deep.png"))
    np.testing.assert_array_equal(image_io.mask_from_pil(im), clipped >= 32768)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 30
    rgba[2:5, 2:6, 3] = 255                     # strokes only in alpha
    pim = Image.fromarray(rgba)
    np.testing.assert_array_equal(image_io.image_from_pil(pim), rgba[..., :3])
    np.testing.assert_array_equal(image_io.mask_from_pil(pim), rgba[..., 3] >= 128)
    assert pim.mode == "RGBA" and np.asarray(pim).shape == (8, 8, 4)  # the caller's, unchanged
    with pytest.raises(ValueError, match=r"^image holds NaN or Inf values"):
        image_io.image_from_pil(Image.fromarray(np.full((4, 4), np.nan, np.float32)))
    with pytest.raises(ValueError, match=r"^image up\.tif is a float image with values in \[2, 2"):
        image_io.image_from_pil(Image.fromarray(np.full((4, 4), 2.0, np.float32)), path="up.tif")
