"""GLCIC run configurations: `--config configs/glcic.py:<variant>[,key=value]`.

The paper's recipe (Iizuka et al. 2017, section 3.3; the authors released no training code) in
three phases, each a variant, chained with --config.init_from=PREVIOUS_WORKDIR:
  places2_completion     phase 1: the completion network on the masked MSE alone, Tc = 90,000
                         steps.
  places2_discriminator  phase 2: the global + local discriminator alone against the frozen
                         completion network, Td = 10,000 steps.
  places2                phase 3: both, MSE + 0.0004 x GAN, 400,000 steps (500,000 in all).
All three: random 256x256 crops of Places2 images whose shorter side is resized to 256
(`data.resize_shorter`; the paper draws it from [256, 384]), batch 96, one rectangular hole per
image with sides of 96-128 px (`glcic_box`) filled with the mean pixel (model.mean, Places2's),
the local discriminator on the 128x128 crop centred on the hole, ADADELTA (rate 1, rho 0.9,
eps 1e-6). Adam instead: `optim.name=adam,optim.lr=1e-4`. Free-form holes (the 2020 freeform
model): `mask.generator=deepfill_v2_strokes` (or any generator). TFDS `places365_small`.
  demo     small and fast on the built-in sample photos: 64x64 crops (local crop 32), the three
           phases in one run's length each as `demo,phase=completion` etc., width 16, batch 4.
           A smoke run, not a model.
  test     tiny (32x32 crops, width 8, discriminator width 8, local crop 16, batch 2).
Modifiers: `key=value` for any dotted key, e.g. `test,phase=completion`.
"""

from __future__ import annotations

import ml_collections

from inpaintjax.config import apply_modifiers, parse_variant, sample_photo_run
from inpaintjax.families.glcic import default_config

FILE = "configs/glcic.py"
VARIANTS = ("places2_completion", "places2_discriminator", "places2", "demo", "test")
PHASE_STEPS = {"places2_completion": ("completion", 90_000),
               "places2_discriminator": ("discriminator", 10_000),
               "places2": ("joint", 400_000)}


def _common() -> ml_collections.ConfigDict:
    c = default_config(width=64)
    c.data.image_size = 256
    c.eval.image_size = 256
    c.eval.mask_generator = "glcic_box,deepfill_v2_strokes,deepfill_v2_training"
    c.batch_size = 96
    c.log_every = 100
    c.image_every = 2000
    c.checkpoint_every = 10_000
    return c


def get_config(arg: str = "places2") -> ml_collections.ConfigDict:
    variant, mods = parse_variant(arg, VARIANTS, "places2", FILE)
    c = _common()
    if variant in PHASE_STEPS:
        c.phase, c.num_steps = PHASE_STEPS[variant]
        c.data.source = "tfds"
        c.data.name = "places365_small"
        c.data.resize_shorter = 256
        c.data.crop = "random"
    elif variant == "demo":
        sample_photo_run(c, "demo")
        c.model.width = 16
        c.model.d_width = 16
        c.model.local_size = 32
    elif variant == "test":
        sample_photo_run(c, "test")
        # at 32x32 the boxes and strokes leave the 1-10% bucket empty: thin strokes reach it
        c.eval.mask_generator = "glcic_box,deepfill_v2_strokes,lama_thin"
        c.model.width = 8
        c.model.d_width = 8
        c.model.local_size = 16
    return apply_modifiers(c, mods, arg, FILE)
