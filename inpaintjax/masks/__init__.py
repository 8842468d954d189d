"""Masks, 1 = hole: the published systems' generators (`generators`), PConv's hole-area buckets
(`buckets`), frozen evaluation mask sets (`evalset`) and user mask folders grouped PConv's way
(`folders`). Everything is re-exported here:
`from inpaintjax import masks; masks.make_mask('lama_thick_256', 0, 256, 256)`."""

from inpaintjax.masks.buckets import BUCKETS, bucket_name, bucket_of, hole_ratio  # noqa: F401
from inpaintjax.masks.evalset import (DEFAULT_EVAL_GENERATORS, MANIFEST,  # noqa: F401
                                      build_eval_mask_set, load_eval_mask_set, load_mask)
from inpaintjax.masks.folders import (BORDER_MARGIN, BORDER_REFERENCE, MASK_SOURCE_POLARITY,  # noqa: F401
                                     POLARITIES, MaskGroups, MaskInfo, border_distance,
                                     group_mask_folder, group_name, mask_info, read_polarity_mask,
                                     resolve_polarity)
from inpaintjax.masks.generators import (BRUSH_BOX_CONFIGS, COMODGAN_HOLE_RANGES,  # noqa: F401
                                         LAMA_REFERENCE_SIZES, LAMA_VARIANTS, MASK_GENERATORS, Stroke,
                                         as_rng, brush_box_mask, center_box, check_size,
                                         deepfill_box, deepfill_v2_stroke_params, deepfill_v2_strokes,
                                         deepfill_v2_training, draw_cv2_lines, draw_strokes,
                                         edgeconnect_block, edgeconnect_half, free_form_strokes,
                                         glcic_box, irregular_random_walk, lama_mask, lama_medium,
                                         lama_params, lama_stroke_params, lama_thick, lama_thin,
                                         make_mask, mask_hw1, resolve)
