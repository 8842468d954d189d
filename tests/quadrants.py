"""A test image whose orientation shows: four flat colours, one per quadrant (flat, so JPEG keeps
them at the quadrant centres). Used by the EXIF-orientation tests of image_io and serve."""
import numpy as np


def quadrants(h: int, w: int) -> np.ndarray:
    """uint8 [h, w, 3]: red top left, green top right, blue bottom left, white bottom right."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    a[: h // 2, w // 2:] = (0, 255, 0)
    a[h // 2:, : w // 2] = (0, 0, 255)
    a[h // 2:, w // 2:] = (255, 255, 255)
    return a
