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
  test    tiny, for the test suite: 32x32 crops, 1 residual block, 8-channel first layers
          (`model.channels`), batch 2, a few steps, lr 1e-4; pick the mode with `model.mode=N`.
Modifiers: any dotted key=value, e.g. `mode3,init_from=runs/ec1,batch_size=4`.
"""

from __future__ import annotations

import ml_collections

from inpaintjax.config import apply_modifiers, parse_variant, sample_photo_run
from inpaintjax.families.edgeconnect import default_config

FILE = "configs/edgeconnect.py"
VARIANTS = ("mode1", "mode2", "mode3", "mode4", "demo", "test")


def get_config(arg: str = "mode3") -> ml_collections.ConfigDict:
    variant, mods = parse_variant(arg, VARIANTS, "mode3", FILE)
    if variant.startswith("mode"):
        c = default_config(int(variant[-1]))
        c.data.source = "tfds"
        c.data.name = "places365_small"
    else:
        c = sample_photo_run(default_config(2), variant)
    if variant == "demo":
        c.model.residual_blocks = 2
        c.loss.content_weight = 0.0
        c.loss.style_weight = 0.0
        c.optim.lr = 1e-3
        c.log_every = 50
    elif variant == "test":
        c.model.residual_blocks = 1
        c.model.channels = 8       # an eighth of the released widths: the same layers, 1/64 the weights
        c.optim.lr = 1e-4          # the released rate: at 1e-3 the first sign-like Adam steps overshoot
        c.loss.vgg_widths = (4, 4, 8, 8, 8)   # a tiny VGG-19 the tests write
        c.mask.generator = "edgeconnect_block"
        # the random walk's 512x512 canvas costs ~30 ms a draw, and filling the 32x32 buckets
        # takes hundreds of draws: the strokes and boxes alone reach every bucket
        c.eval.mask_generator = "deepfill_v2_strokes,deepfill_v2_training"
    return apply_modifiers(c, mods, arg, FILE)
