"""DeepFill v1 run configurations: `--config configs/deepfill_v1.py:<variant>[,key=value]`.

Variants:
  places2   the released recipe (v1.0.0 `inpaint.yml`, `train.py`): random 256x256 crops, batch
            16, one box mask per batch (a 128x128 box shrunk by 0..16 px per side: hole sides
            96..128), five critic updates per generator update, each on a fresh batch; Adam 1e-4
            (0.5, 0.9); spatially discounted L1 (gamma 0.9) and known-region L1 at 1.2 (coarse
            stage 1.2x), WGAN-GP (lambda 10) global + local critics at 0.001. Reads TFDS
            `places365_small` (array_record; `tfds build` it first, or point data.source /
            data.data_dir at your own folder).
  celebahq  the same with each image resized to 256x256 (the yml's `RANDOM_CROP: False`), from an
            image folder: --config.data.data_dir=DIR (TFDS cannot download CelebA-HQ).
  demo      small and fast on the built-in sample photos: 64x64 crops (32x32 local crop, box
            holes of 24..32 px), cnum 16, critics cnum 16, batch 4, lr 1e-3. A smoke run, not a
            usable model.
  test      tiny (32x32 crops, cnum 8, critics cnum 8, batch 2, 2 critic steps) for the tests.
Modifiers (comma-separated after the variant):
  key=value         any dotted key, e.g. `demo,num_steps=100` (same as --config.num_steps=100).
"""

from __future__ import annotations

import ml_collections

from inpaintjax.config import apply_modifiers, parse_variant, sample_photo_run
from inpaintjax.families.deepfill_v1 import default_config

FILE = "configs/deepfill_v1.py"
VARIANTS = ("places2", "celebahq", "demo", "test")


def _common() -> ml_collections.ConfigDict:
    """The family's released settings (`default_config()`) plus the released run: 256x256,
    batch 16, a checkpoint every 10k steps."""
    c = default_config()
    c.model.local_size = 128       # the released local critic's crop (half of 256)
    c.data.image_size = 256
    c.eval.image_size = 256
    c.batch_size = 16
    c.num_steps = 1_000_000
    c.checkpoint_every = 10_000    # the original's TRAIN_SPE
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
        c.data.source = "folder"
    elif variant == "demo":
        sample_photo_run(c, "demo")
        c.model.cnum = 16
        c.model.d_cnum = 16
        c.model.local_size = 32
        c.optim.lr = 1e-3
    elif variant == "test":
        sample_photo_run(c, "test")
        c.model.cnum = 8
        c.model.d_cnum = 8
        c.model.local_size = 16
        c.optim.critic_steps = 2
        c.optim.lr = 1e-3          # so that a few steps move the losses measurably
    return apply_modifiers(c, mods, arg, FILE)
