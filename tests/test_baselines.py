"""Classical fills (inpaintjax.baselines) against hand-worked cases."""

import numpy as np
import pytest

from inpaintjax import baselines


def _hole(h, w, top, left, hh, ww, b=1):
    m = np.zeros((b, h, w, 1), np.float32)
    m[:, top:top + hh, left:left + ww] = 1.0
    return m


def test_mean_fill_is_the_known_pixels_mean_colour():
    # 2x2 image, one hole pixel: the fill is the mean of the three others, worked by hand
    img = np.array([[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
                    [[0.7, 0.8, 0.9], [1.0, 0.0, 0.5]]], np.float32)[None]
    mask = np.zeros((1, 2, 2, 1), np.float32)
    mask[0, 1, 1] = 1.0
    out = baselines.mean_fill(img, mask)
    np.testing.assert_allclose(out[0, 1, 1], [0.4, 0.5, 0.6], atol=1e-6)  # (0.1+0.4+0.7)/3 ...
    np.testing.assert_array_equal(out[0][mask[0, ..., 0] == 0], img[0][mask[0, ..., 0] == 0])


def test_mean_fill_uses_each_images_own_known_pixels():
    img = np.stack([np.full((4, 4, 3), 0.2, np.float32), np.full((4, 4, 3), 0.8, np.float32)])
    img[1, 0, 0] = 0.0  # inside image 1's hole: must not count
    mask = _hole(4, 4, 0, 0, 2, 2, b=2)
    out = baselines.mean_fill(img, mask)
    np.testing.assert_allclose(out[0, :2, :2], 0.2, atol=1e-6)
    np.testing.assert_allclose(out[1, :2, :2], 0.8, atol=1e-6)


def test_biharmonic_reproduces_a_linear_ramp():
    # a linear function is biharmonic (and harmonic): the fill must be the ramp itself
    h, w = 24, 32
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.01 * x + 0.1, 0.02 * y + 0.05, 0.9 - 0.01 * x - 0.01 * y], -1)[None]
    mask = _hole(h, w, 6, 8, 10, 12)
    out = baselines.biharmonic_fill(img, mask)
    np.testing.assert_allclose(out, img, atol=1e-4)
    flat = baselines.mean_fill(img, mask)
    assert np.abs(flat - img).max() > 0.05  # the ramp is not trivially filled by the mean


def test_telea_fills_a_constant_image_with_the_constant():
    img = np.full((1, 20, 20, 3), 0.0, np.float32)
    img[..., 0], img[..., 1], img[..., 2] = 51 / 255, 153 / 255, 204 / 255
    mask = _hole(20, 20, 5, 6, 8, 7)
    out = baselines.telea_fill(img, mask)
    # OpenCV's Telea adds a first-order gradient term in float and rounds to 8 bits: measured
    # deviation up to 2 levels on a constant image (the same with the hole zeroed first)
    np.testing.assert_allclose(out, img, atol=2.5 / 255)
    assert abs(out[mask[..., 0] > 0].mean(0) - img[0, 0, 0]).max() < 0.5 / 255


def test_telea_continues_a_two_colour_split():
    # left half dark, right half bright, a hole straddling the edge: filled pixels well inside
    # each half take that half's colour (fast marching propagates from the nearest boundary)
    img = np.zeros((1, 32, 32, 3), np.float32)
    img[:, :, 16:] = 1.0
    mask = _hole(32, 32, 8, 8, 16, 16)
    out = baselines.telea_fill(img, mask)
    assert out[0, 8:24, 8:11].max() < 0.2 and out[0, 8:24, 21:24].min() > 0.8


@pytest.mark.parametrize("name", baselines.available())
def test_known_pixels_unchanged_and_hole_filled(name):
    rng = np.random.default_rng(0)
    img = rng.random((2, 16, 16, 3)).astype(np.float32)
    mask = _hole(16, 16, 4, 4, 6, 5, b=2)
    mask[1] = 0.0
    mask[1, 10:14, 2:9] = 1.0
    holes = np.zeros_like(img)  # the hole content must not leak into the fill
    out = baselines.fill(name, np.where(mask > 0.5, holes, img), mask)
    known = mask[..., 0] < 0.5
    np.testing.assert_array_equal(out[known], img[known])
    assert out.dtype == np.float32 and out.shape == img.shape
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert np.abs(out[~known]).mean() > 0.1  # something other than the zeros was put there


def test_no_known_pixels_and_no_hole():
    img = np.full((1, 8, 8, 3), 0.5, np.float32)
    for name in baselines.available():
        np.testing.assert_array_equal(baselines.fill(name, img, np.zeros((1, 8, 8, 1))), img)
        np.testing.assert_array_equal(baselines.fill(name, img, np.ones((1, 8, 8, 1))), 0 * img)


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="masks: expected"):
        baselines.mean_fill(np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 4, 1)))
    with pytest.raises(ValueError, match="images: expected"):
        baselines.mean_fill(np.zeros((8, 8, 3)), np.zeros((8, 8, 1)))
    with pytest.raises(ValueError, match="unknown baseline 'nope'"):
        baselines.fill("nope", np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 8, 1)))


def test_telea_without_opencv_says_what_to_install(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_cv2(name, *a, **k):
        if name == "cv2":
            raise ImportError("No module named 'cv2'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_cv2)
    assert "telea" not in baselines.available()
    with pytest.raises(ImportError, match="pip install opencv-python-headless"):
        baselines.telea_fill(np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 8, 1)))


def test_selected_baselines_keep_the_order_and_refuse_unknown_names():
    assert baselines.selected("telea, mean") == ["telea", "mean"]
    assert baselines.selected("") == []
    with pytest.raises(ValueError, match=r"unknown baseline\(s\) \['patchmach'\]; valid: mean"):
        baselines.selected("mean,patchmach")


@pytest.mark.parametrize("name", ["mean", "biharmonic"])
def test_images_outside_zero_one_are_refused_naming_the_values(name):
    # 0..255 data (uint8, or float holding 8-bit values) is not [0, 1]: refused, not filled with
    # a hole clipped to [0, 1] beside known pixels up to 255
    img = np.full((1, 8, 8, 3), 200, np.uint8)
    mask = np.zeros((1, 8, 8, 1), np.float32)
    mask[0, 2:5, 2:5] = 1
    with pytest.raises(ValueError, match=r"images: uint8 values.*/ 255"):
        baselines.fill(name, img, mask)
    with pytest.raises(ValueError, match=r"images: values in \[200, 200\] are outside \[0, 1\].*/ 255"):
        baselines.fill(name, img.astype(np.float32), mask)
    bad = np.full((1, 8, 8, 3), 0.5, np.float32)
    bad[0, 1, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"images: 1 NaN or Inf value"):
        baselines.fill(name, bad, mask)
