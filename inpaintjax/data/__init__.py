"""Data: image sources (built-in sample photos, image folders, TFDS without TensorFlow), batch
fields a family declares (`fields`), and the deterministic, index-based training pipeline."""

from inpaintjax.data import fields  # noqa: F401
from inpaintjax.data.pipeline import (TrainBatches, center_crop, eval_batch, eval_images,  # noqa: F401
                                      preview_batch, random_crop)
from inpaintjax.data.sources import (FolderSource, SampleSource, TfdsSource, describe,  # noqa: F401
                                     make_source)
