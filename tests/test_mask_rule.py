"""One rule for a mask (or sketch), whether it comes as a file or as an array: each case is
written to a PNG and passed as an array, and both must give the hand-worked hole map."""

import numpy as np
import pytest
from PIL import Image

from inpaintjax import image_io
from inpaintjax.inference import _binary_batch

H, W = 6, 8
STROKE = np.zeros((H, W), bool)
STROKE[1:3, 2:7] = True
STROKE[4, 1] = True


def _cases():
    grey = np.where(STROKE, 200, 100).astype(np.uint8)               # 100 < 128 <= 200
    yield "grey", grey, "L", STROKE
    label = STROKE.astype(np.uint8)                                   # a 0/1 label map
    yield "label map", label, "L", STROKE
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 2] = 255                                                 # constant blue: no mask
    rgb[..., 0] = np.where(STROKE, 255, 0)                            # red strokes
    yield "red on blue", rgb, "RGB", STROKE
    rgba = np.zeros((H, W, 4), np.uint8)                              # black everywhere,
    rgba[..., 3] = np.where(STROKE, 255, 0)                           # strokes only in alpha
    yield "alpha strokes", rgba, "RGBA", STROKE
    deep = np.where(STROKE, 40000, 20000).astype(np.uint16)           # 20000 < 32768 <= 40000
    yield "16-bit", deep, "I;16", STROKE


@pytest.mark.parametrize("name, values, mode, want", list(_cases()), ids=[c[0] for c in _cases()])
def test_file_and_array_give_the_same_hand_worked_hole(tmp_path, name, values, mode, want):
    path = str(tmp_path / "mask.png")
    if mode == "I;16":
        Image.frombytes("I;16", (W, H), values.astype("<u2").tobytes()).save(path)
    else:
        Image.fromarray(values).save(path)
    assert Image.open(path).mode == mode
    from_file = image_io.read_mask(path)
    from_array = _binary_batch(values, "mask", 1, (H, W))[0, ..., 0]
    np.testing.assert_array_equal(from_file > 0.5, want)
    np.testing.assert_array_equal(from_array > 0.5, want)
    np.testing.assert_array_equal(image_io.mask_from_array(values), want)


def test_float_and_bool_arrays_use_half_of_their_range():
    values = np.where(STROKE, 0.75, 0.25).astype(np.float32)
    np.testing.assert_array_equal(image_io.mask_from_array(values), STROKE)
    np.testing.assert_array_equal(image_io.mask_from_array(STROKE), STROKE)
    with pytest.raises(ValueError, match=r"sketch: \d+ NaN or Inf values \(first at row 0, column 0\)"):
        image_io.mask_from_array(np.full((H, W), np.nan, np.float32), "sketch")
