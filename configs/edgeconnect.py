"""EdgeConnect run configurations: `--config configs/edgeconnect.py:<variant>[,key=value...]`.

Variants (the original's `--model 1..4`, knazeri/edge-connect main.py; settings of its released
config.yml: batch 8, 256x256, Adam (0, 0.9), G 1e-4, D 1e-5, nsgan, FM 10, L1 1, perceptual 0.1,
style 250, adversarial 0.1, Canny sigma 2, horizontal flips):
  mode1   the edge model (G1, D1). Reads TFDS `places365_small` like the other families' Places2
          recipes (or --config.data.source=folder --config.data.data_dir=DIR).
  mode2   the inpainting model (G2, D2) on the ground truth's Canny edges. Needs VGG-19 weights:
          --config.loss.vgg_weights=vgg19-dcbb9e9d.pth. To keep a mode-1 edge model in this run's
          state for mode 4, start it with --config.init_from=MODE1_WORKDIR (copies `edge`).
  mode3   the inpainting model on the frozen edge model's edges (the released models' last stage):
          --config.init_from=MODE1_WORKDIR (copies `edge`; add init_from_paths=edge,inpaint to
          start from a mode-2 run that carries one).
  mode4   both models trained jointly: --config.init_from=MODE2_WORKDIR (a mode-2 run started from
          the mode-1 run; copies `edge` and `inpaint`).
  demo    a short mode-2 run on the built-in sample photos without VGG (perceptual and style
          weights 0): 64x64 crops, 2 residual blocks, batch 4, lr 1e-3 (D 1e-4), 2000 steps.
  test    tiny, for the test suite: 32x32 crops, 1 residual block, batch 2, a few steps, lr 1e-3;
          pick the mode with `model.mode=N`.
Modifiers: any dotted key=value, e.g. `mode3,init_from=runs/ec1,batch_size=4`.
"""

from __future__ import annotations

import ml_collections

from inpaintjax.config import apply_overrides
from inpaintjax.families.edgeconnect import default_config

VARIANTS = ("mode1", "mode2", "mode3", "mode4", "demo", "test")


def get_config(arg: str = "mode3") -> ml_collections.ConfigDict:
    tokens = [t.strip() for t in (arg or "mode3").split(",") if t.strip()]
    variant, mods = tokens[0], tokens[1:]
    if variant not in VARIANTS:
        raise ValueError(f"configs/edgeconnect.py: unknown variant {variant!r}; choose one of "
                         f"{', '.join(VARIANTS)}")
    if variant.startswith("mode"):
        c = default_config(int(variant[-1]))
        c.data.source = "tfds"
        c.data.name = "places365_small"
    else:
        c = default_config(2)
        c.data.source = "samples"
        c.data.crop = "random"
    if variant == "demo":
        c.data.image_size = 64
        c.eval.image_size = 64
        c.eval.num_images = 8
        c.eval.per_bucket = 4
        c.eval.batch_size = 8
        c.model.residual_blocks = 2
        c.loss.content_weight = 0.0
        c.loss.style_weight = 0.0
        c.optim.lr = 1e-3
        c.batch_size = 4
        c.num_steps = 2000
        c.log_every = 50
        c.image_every = 500
        c.checkpoint_every = 500
    elif variant == "test":
        c.data.image_size = 32
        c.eval.image_size = 32
        c.eval.num_images = 4
        c.eval.per_bucket = 1
        c.eval.batch_size = 2
        c.model.residual_blocks = 1
        c.optim.lr = 1e-4          # the released rate: at 1e-3 the first sign-like Adam steps overshoot
        c.loss.vgg_widths = (4, 4, 8, 8, 8)   # a tiny VGG-19 the tests write
        c.mask.generator = "edgeconnect_block"
        c.batch_size = 2
        c.num_steps = 4
        c.log_every = 1
        c.image_every = 2
        c.checkpoint_every = 2
        c.keep_checkpoints = 2
    for mod in mods:
        if "=" not in mod:
            raise ValueError(f"configs/edgeconnect.py: unknown modifier {mod!r} in {arg!r}; use key=value")
        apply_overrides(c, [mod])  # typed like --config.KEY=VALUE; unknown keys name the nearest
    return c
