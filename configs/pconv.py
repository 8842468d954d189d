"""Partial Convolutions run configurations: `--config configs/pconv.py:<variant>[,key=value]`.

Variants:
  places2           phase 1 of the reimplementation's recipe (naoto0804/pytorch-inpainting-with-
                    partial-conv `train.py`): 7-level U-Net, images resized to 256x256, batch 16,
                    Adam 2e-4, BatchNorm in training mode, 500k steps, an irregular random-walk
                    mask per image; TFDS `places365_small`. Needs VGG-16 ImageNet weights:
                    --config.loss.vgg_weights=/path/vgg16-397923af.pth (torchvision) or the Keras
                    vgg16 ..._notop.h5; the run refuses to start without one.
  places2_finetune  phase 2: Adam 5e-5, the encoder's BatchNorm statistics frozen, 500k steps,
                    started from phase 1: --config.init_from=PHASE1_WORKDIR.
  demo              small and fast on the built-in sample photos: 64x64, a 6-level U-Net, batch 4,
                    lr 1e-3, a random VGG (vgg_weights='random'). A smoke run, not a model.
  test              tiny (32x32, 4 levels of 8-64 channels, a tiny random VGG, batch 2, a
                    handful of steps).
The paper's own mask set (or any mask folder): --config.data.mask_dir=DIR.
Modifiers: `key=value` for any dotted key, e.g. `demo,num_steps=100`.
"""

from __future__ import annotations

import ml_collections

from inpaintjax.config import apply_modifiers, parse_variant, sample_photo_run
from inpaintjax.families.pconv import default_config

FILE = "configs/pconv.py"
VARIANTS = ("places2", "places2_finetune", "demo", "test")


def _common() -> ml_collections.ConfigDict:
    c = default_config(levels=7)
    c.data.image_size = 256
    c.eval.image_size = 256
    # the random walk covers 12-23% of the image: strokes and boxes fill the other buckets
    c.eval.mask_generator = "irregular_random_walk,deepfill_v2_strokes,deepfill_v2_training"
    c.batch_size = 16
    c.num_steps = 500_000
    c.checkpoint_every = 50_000  # the original's save_model_interval
    c.log_every = 10
    c.image_every = 5000         # the original's vis_interval
    return c


def get_config(arg: str = "places2") -> ml_collections.ConfigDict:
    variant, mods = parse_variant(arg, VARIANTS, "places2", FILE)
    c = _common()
    if variant in ("places2", "places2_finetune"):
        c.data.source = "tfds"
        c.data.name = "places365_small"
        c.data.crop = "resize"       # the original resizes every image to 256x256, no crop
        if variant == "places2_finetune":
            c.optim.lr = 5e-5
            c.model.freeze_encoder_bn = True
    elif variant == "demo":
        sample_photo_run(c, "demo")
        c.model.levels = 6
        c.loss.vgg_weights = "random"
        c.optim.lr = 1e-3
    elif variant == "test":
        sample_photo_run(c, "test")
        c.eval.mask_generator = "lama_thin,irregular_random_walk,deepfill_v2_training"  # 1-10% at 32x32
        c.model.levels = 4
        c.model.width = 8
        c.loss.vgg_weights = "random"
        c.loss.vgg_widths = (4, 8, 8, 8, 8)
        c.optim.lr = 1e-3
    return apply_modifiers(c, mods, arg, FILE)
