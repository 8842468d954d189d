"""DeepFill v2 run configurations: `--config configs/deepfill_v2.py:<variant>[,guided][,key=value]`.

Variants:
  places2   the released Places2 recipe (`inpaint.yml`): random 256x256 crops (up-scaled first if
            smaller), batch 16, one stroke+box mask per batch, Adam 1e-4 (0.5, 0.999), L1:GAN 1:1;
            reads TFDS `places365_small` (array_record; `tfds build` it first, or point
            data.source/data.data_dir at your own folder).
  celebahq  the same with each image resized to 256x256 (the yml default `random_crop: False`),
            from an image folder: --config.data.data_dir=DIR (TFDS cannot download CelebA-HQ).
  demo      small and fast on the built-in sample photos: 64x64 crops, cnum 16, batch 4 with a
            mask per image, random flips, lr 1e-3 with a cosine decay, EMA of the generator
            (0.997), L1 only, 4000 steps (minutes on two CPU cores). docs/demo.md gives
            its time and numbers beside the classical fills. A smoke run, not a usable model.
  test      tiny (32x32 crops, cnum 8, batch 2, a handful of steps) for the test suite.
Modifiers (comma-separated after the variant):
  guided            sketch/edge guidance: Canny edges of the ground truth inside the hole as a
                    4th generator input (and a 5th discriminator input), the layout of the
                    original code's guided option (which read precomputed edge images; the
                    released checkpoints are unguided).
  key=value         any dotted key, e.g. `demo,num_steps=100` (same as --config.num_steps=100).
"""

from __future__ import annotations

import ml_collections

from inpaintjax.config import apply_modifiers, parse_variant, sample_photo_run
from inpaintjax.families.deepfill_v2 import default_config

FILE = "configs/deepfill_v2.py"
VARIANTS = ("places2", "celebahq", "demo", "test")


def _common() -> ml_collections.ConfigDict:
    """The family's released settings (`default_config()`) plus the released run: 256x256,
    batch 16, a checkpoint every 4000 steps."""
    c = default_config()
    c.data.image_size = 256
    c.eval.image_size = 256
    c.batch_size = 16
    c.num_steps = 1_000_000
    c.checkpoint_every = 4000    # the original's train_spe
    c.log_every = 100
    c.image_every = 2000
    return c


def get_config(arg: str = "places2") -> ml_collections.ConfigDict:
    variant, mods = parse_variant(arg, VARIANTS, "places2", FILE)
    c = _common()
    if variant == "places2":
        c.data.crop = "random"
        c.data.source = "tfds"
        c.data.name = "places365_small"
    elif variant == "celebahq":
        c.data.crop = "resize"
        c.data.source = "folder"   # CelebA-HQ is not downloadable by TFDS: --config.data.data_dir=DIR
    elif variant == "demo":
        sample_photo_run(c, "demo")
        c.model.cnum = 16
        c.model.d_cnum = 16
        # a few-minute run: 10x the paper's rate with a cosine decay to 2% of it, many cheap steps
        # (batch 4) with a mask per image, random flips, the EMA of the generator evaluated, and
        # no GAN term; docs/demo.md gives the measurements behind each choice
        c.optim.lr = 1e-3
        c.optim.schedule = "cosine"
        c.optim.warmup_steps = 100
        c.optim.final_lr_ratio = 0.02
        c.ema_decay = 0.997
        c.loss.gan_alpha = 0.0
        c.mask.per_batch = False
        c.data.flip = True
        c.num_steps = 4000
    elif variant == "test":
        sample_photo_run(c, "test")
        c.model.cnum = 8
        c.model.d_cnum = 8
        c.optim.lr = 1e-3         # so that a few steps move the losses measurably
    return apply_modifiers(c, mods, arg, FILE, flags={"guided": _guided})


def _guided(c: ml_collections.ConfigDict) -> None:
    c.model.guided = True
