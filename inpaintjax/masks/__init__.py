"""Masks, 1 = hole: the published systems' generators (`generators`), PConv's hole-area buckets
(`buckets`) and frozen evaluation mask sets (`evalset`). Everything is re-exported here:
`from inpaintjax import masks; masks.make_mask('lama_thick', 0, 256, 256)`."""

from inpaintjax.masks.buckets import BUCKETS, bucket_name, bucket_of, hole_ratio  # noqa: F401
from inpaintjax.masks.evalset import (DEFAULT_EVAL_GENERATORS, MANIFEST,  # noqa: F401
                                      build_eval_mask_set, load_eval_mask_set, load_mask)
from inpaintjax.masks.generators import (MASK_GENERATORS, Stroke, as_rng, center_box,  # noqa: F401
                                         check_size, deepfill_box, deepfill_v2_stroke_params,
                                         deepfill_v2_strokes, deepfill_v2_training, draw_strokes,
                                         edgeconnect_block, edgeconnect_half, glcic_box,
                                         irregular_random_walk,
                                         lama_medium, lama_params, lama_stroke_params, lama_thick,
                                         lama_thin, make_mask, mask_hw1, resolve)
