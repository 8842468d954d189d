"""Shift-Net run configurations: `--config configs/shiftnet.py:<variant>[,key=value...]`.

Variants:
  center  the released code's defaults (Zhaoyi-Yan/Shift-Net_pytorch `options/*.py`):
          `unet_shift_triple`, the centre hole (rows and columns 68..187 at 256), images resized so
          the shorter side is 350 px, random 256x256 crops with flips, batch 1, Adam 2e-4
          (0.5, 0.999), 30 epochs of Paris StreetView (14,900 images: ~447k steps); losses L1 x100,
          discounted hole-crop L1 x400, GAN x0.2 (D sees the hole crop), VGG-16 style x10 and
          content x1, guidance x1. Images: --config.data.data_dir=DIR (a folder). Needs VGG-16
          ImageNet weights: --config.loss.vgg_weights=/path/vgg16-397923af.pth (or Keras'
          ..._notop.h5); the run refuses to start without one.
  random  the same with the released code's online random masks (`shiftnet_island`); no hole crop
          (whole-image D and losses). The released random models were trained on the PConv
          irregular mask set (20-30% holes) loaded offline instead, a set not shipped here.
  paper   the paper's (and the Lua code's) loss set on centre holes: L1 x100, GAN x0.2, guidance x1
          in the paper's masked form; no VGG, no discounted L1.
  soft    `center` with the released `patch_soft_unet_shift_triple` (`--model patch_soft_shiftnet
          --shift_sz 3 --mask_thred 4`): 3x3 patches, softmax attention x10; add `model.fuse=True`
          for the released `--fuse 1`.
  face    the released face model (`face_unet_shift_triple`, `--model face_shiftnet`, the network of
          face_flip_random.pth): flipped-image matching, a 6x6 third convolution; images resized so
          the shorter side is 256 px (CelebA-HQ 256: no crop), random (island) holes without a hole
          box, batch 1, 30 epochs of the 28,000 CelebA-HQ training images (~840k steps).
  demo    small and fast on the built-in sample photos: 64x64, a 6-level U-Net (ngf 32), batch 4,
          centre holes, a random VGG. A smoke run, not a model.
  test    tiny (64x64, 6 levels of 8-64 channels, ndf 8, a tiny random VGG, batch 2, 4 steps).
Evaluation uses the base config's bucketed stroke and box masks (a centre hole fills one
hole-ratio bucket only).
Modifiers: `key=value` for any dotted key, e.g. `center,model.shift=res` for
`res_unet_shift_triple`, `soft,model.fuse=True`, `center,loss.guidance_form=paper`,
`test,model.shift=flip`.
"""

from __future__ import annotations

import ml_collections

from inpaintjax.config import apply_modifiers, parse_variant, sample_photo_run
from inpaintjax.families.shiftnet import default_config

FILE = "configs/shiftnet.py"
VARIANTS = ("center", "random", "paper", "soft", "face", "demo", "test")


def _released(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.data.source = "folder"
    c.data.resize_shorter = 350     # loadSize
    c.data.crop = "random"          # fineSize 256
    c.data.flip = True
    c.batch_size = 1
    c.num_steps = 447_000           # niter=30 epochs x 14,900 Paris StreetView images, constant lr
    c.checkpoint_every = 10_000
    c.log_every = 50                # print_freq
    c.image_every = 5000
    return c


def get_config(arg: str = "center") -> ml_collections.ConfigDict:
    variant, mods = parse_variant(arg, VARIANTS, "center", FILE)
    c = default_config()
    if variant in ("center", "random", "paper", "soft", "face"):
        _released(c)
        if variant in ("random", "face"):
            c.mask.generator = "shiftnet_island"
            c.loss.hole_crop = False
        if variant == "soft":
            c.model.shift = "soft"
        elif variant == "face":
            c.model.shift = "flip"
            c.data.resize_shorter = 256     # the README: --loadSize=256 for faces
            c.num_steps = 840_000           # 30 epochs x 28,000 CelebA-HQ images (2,000 held out)
        elif variant == "paper":
            c.loss.hole_l1 = 0.0
            c.loss.style = 0.0
            c.loss.content = 0.0
            c.loss.guidance_form = "paper"
    else:
        sample_photo_run(c, variant)
        c.data.image_size = c.eval.image_size = 64
        c.model.num_downs = 6
        c.loss.vgg_weights = "random"
        if variant == "demo":
            c.model.ngf = 32
            c.optim.lr = 1e-3
        else:
            c.model.ngf = 8
            c.model.ndf = 8
            c.loss.vgg_widths = (4, 8, 8, 8, 8)
            c.optim.lr = 1e-3
    return apply_modifiers(c, mods, arg, FILE)
