"""The configuration every run shares, whatever its family (ml_collections ConfigDict).

A family's config file (configs/<family>.py) starts from `base_config()` and fills `family`,
`model`, `loss`, `optim` and changes only what differs. Every knob lives here, none in code.
"""

from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.family = ""            # registry name, e.g. 'deepfill_v2'
    c.seed = 0               # the one root seed: parameters, masks, noise, data order

    c.data = ml_collections.ConfigDict()
    c.data.source = "samples"    # 'samples' (scikit-image photos, offline) | 'folder' | 'tfds'
    c.data.name = ""             # TFDS dataset name when source == 'tfds' (e.g. 'places365_small')
    c.data.data_dir = ""         # TFDS data_dir, or the image folder when source == 'folder'
    c.data.mask_dir = ""         # optional folder of paired masks (same relative names as images)
    c.data.train_split = "train"
    c.data.eval_split = "validation"
    c.data.image_size = 256      # square training crops
    c.data.crop = "random"       # 'random' (up-scale if smaller, random crop) | 'resize'
    c.data.flip = False          # random horizontal flips (the originals use none)
    c.data.guide = ""            # '' | 'edges': Canny edges of the ground truth as the guide channel
    c.data.num_workers = 0       # grain worker processes per host

    c.mask = ml_collections.ConfigDict()
    c.mask.generator = "deepfill_v2_training"   # a name in inpaintjax.masks.MASK_GENERATORS
    c.mask.per_batch = True      # one mask shared by the whole batch, as the DeepFill originals

    c.batch_size = 16            # global batch (all devices of all hosts)
    c.num_steps = 100_000
    c.log_every = 100
    c.image_every = 1000
    c.checkpoint_every = 1000
    c.keep_checkpoints = 3
    c.compute_dtype = "float32"  # 'float32' | 'bfloat16' (parameters stay float32)
    c.remat = False              # rematerialise generator blocks (512x512 training on small memory)

    c.eval = ml_collections.ConfigDict()
    c.eval.mask_generator = "deepfill_v2_training"
    c.eval.per_bucket = 50       # frozen mask set: masks per hole-ratio bucket
    c.eval.image_size = 256
    c.eval.num_images = 300
    c.eval.seed = 1234
    c.eval.batch_size = 8

    c.model = ml_collections.ConfigDict()
    c.loss = ml_collections.ConfigDict()
    c.optim = ml_collections.ConfigDict()
    return c
