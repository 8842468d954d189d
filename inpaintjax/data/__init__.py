"""Data: image sources (built-in sample photos, image folders, TFDS without TensorFlow) and the
deterministic, index-based training pipeline (crops, flips, seeded masks, Canny edge guides)."""

from inpaintjax.data.pipeline import (TrainBatches, canny_edges, center_crop, eval_images,  # noqa: F401
                                      preview_batch, random_crop)
from inpaintjax.data.sources import (FolderSource, SampleSource, TfdsSource, make_source)  # noqa: F401
