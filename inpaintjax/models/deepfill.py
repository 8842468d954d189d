"""DeepFill generators (coarse network + refinement network with contextual attention).

DeepFillV2Generator is SPEC.md 1.3/1.4 layer for layer (JiahuiYu/generative_inpainting master,
`InpaintCAModel.build_inpaint_net`). Sub-module names are the official TF layer names, so an
official checkpoint maps one to one (inpaint_net/<name>/kernel -> params[<name>]['conv']['kernel'];
up-sampling layers nest as params[<name>]['conv']['conv'], mirroring <name>/<name>_conv).
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from inpaintjax.layers.attention import ContextualAttention
from inpaintjax.layers.gated import GatedConv, GatedUpConv
from inpaintjax.layers.ops import resize_nearest_align_corners


class DeepFillV2Generator(nn.Module):
    """DeepFill v2 (gated convolutions, two stages, contextual attention in stage 2).

    Call: `stage1, stage2 = g(image, mask, guide=None)`, or with `return_flow=True`
    `stage1, stage2, flow = ...`.
      image  [B, H, W, 3] RGB in [-1, 1] (H, W multiples of 8); hole pixels may hold anything:
             the generator zeroes them itself (`image * (1 - mask)`), as the original.
      mask   [B, H, W, 1] or [1, H, W, 1] (shared), 1 = hole.
      guide  [B, H, W, 1] in {0, 1}, required iff `guided` (edges / user sketch; the caller keeps
             only the strokes inside the hole, as the original pipeline does).
    Returns stage1, stage2 [B, H, W, 3] in [-1, 1] (tanh outputs, not composited) and the
    attention flow [B, H/4, W/4, 3] in [0, 1] (a colour-coded offset image, for logging).

    Input channels: [image*(1-mask), ones, mask] (5), guided [image*(1-mask), guide, ones, mask]
    (6). Stage 2 sees only the 3-channel composite `stage1*mask + image*(1-mask)`; no stop-gradient
    between the stages. cnum=48 gives 4,052,478 parameters (5 input channels).

    `dtype` is the compute dtype of every convolution and of contextual attention (parameters
    stay float32; the attention layer keeps its scores and softmax in float32 itself; the stage
    outputs are float32). `remat=True` wraps every conv
    block in `nn.remat` (recompute activations in the backward pass: less memory, ~1/3 more
    compute); parameter names are unchanged.
    """

    cnum: int = 48
    guided: bool = False
    dtype: Optional[Any] = None
    remat: bool = False

    @nn.compact
    def __call__(self, image, mask, guide=None, return_flow: bool = False):
        if self.cnum % 4:
            raise ValueError(f"DeepFillV2Generator: cnum must be a multiple of 4, got {self.cnum}")
        b, h, w, _ = image.shape
        if h % 8 or w % 8:
            raise ValueError(f"DeepFillV2Generator: height and width must be multiples of 8 "
                             f"(got {h}x{w}); pad the input (inpaintjax.Inpainter does this)")
        if self.guided and guide is None:
            raise ValueError("DeepFillV2Generator(guided=True) needs `guide` [B, H, W, 1]")
        if not self.guided and guide is not None:
            raise ValueError("DeepFillV2Generator(guided=False) got a guide; build it with guided=True")
        image = image.astype(jnp.float32)
        mask = jnp.broadcast_to(mask.astype(jnp.float32), (b, h, w, 1))
        c = self.cnum
        conv_cls = nn.remat(GatedConv) if self.remat else GatedConv
        up_cls = nn.remat(GatedUpConv) if self.remat else GatedUpConv

        def conv(name, features, k=3, s=1, d=1, act=nn.elu):
            return conv_cls(features, k, s, d, activation=act, dtype=self.dtype, name=name)

        def up(name, features):
            return up_cls(features, dtype=self.dtype, name=name)

        xin = image * (1.0 - mask)
        ones = jnp.ones_like(mask)
        parts = [xin] + ([guide.astype(jnp.float32)] if self.guided else []) + [ones, ones * mask]
        x = jnp.concatenate(parts, axis=-1)

        # stage 1: coarse network
        x = conv("conv1", c // 2, 5)(x)
        x = conv("conv2_downsample", c, 3, 2)(x)
        x = conv("conv3", c)(x)
        x = conv("conv4_downsample", 2 * c, 3, 2)(x)
        x = conv("conv5", 2 * c)(x)
        x = conv("conv6", 2 * c)(x)
        # TF resizes the mask to the conv6 size here (align corners), and attention halves it
        # again: two steps pick different rows than one /8 step (SPEC 1.13 item 2).
        mask_s = resize_nearest_align_corners(mask, x.shape[1:3])
        x = conv("conv7_atrous", 2 * c, d=2)(x)
        x = conv("conv8_atrous", 2 * c, d=4)(x)
        x = conv("conv9_atrous", 2 * c, d=8)(x)
        x = conv("conv10_atrous", 2 * c, d=16)(x)
        x = conv("conv11", 2 * c)(x)
        x = conv("conv12", 2 * c)(x)
        x = up("conv13_upsample", c)(x)
        x = conv("conv14", c)(x)
        x = up("conv15_upsample", c // 2)(x)
        x = conv("conv16", c // 4)(x)
        x = conv("conv17", 3, act=None)(x)
        stage1 = jnp.tanh(x.astype(jnp.float32))

        # stage 2: refinement; input is the 3-channel composite only (v2)
        xnow = stage1 * mask + xin * (1.0 - mask)
        # hallucination (dilated conv) branch
        x = conv("xconv1", c // 2, 5)(xnow)
        x = conv("xconv2_downsample", c // 2, 3, 2)(x)
        x = conv("xconv3", c)(x)
        x = conv("xconv4_downsample", c, 3, 2)(x)
        x = conv("xconv5", 2 * c)(x)
        x = conv("xconv6", 2 * c)(x)
        x = conv("xconv7_atrous", 2 * c, d=2)(x)
        x = conv("xconv8_atrous", 2 * c, d=4)(x)
        x = conv("xconv9_atrous", 2 * c, d=8)(x)
        x = conv("xconv10_atrous", 2 * c, d=16)(x)
        x_hallu = x
        # attention branch
        x = conv("pmconv1", c // 2, 5)(xnow)
        x = conv("pmconv2_downsample", c // 2, 3, 2)(x)
        x = conv("pmconv3", c)(x)
        x = conv("pmconv4_downsample", 2 * c, 3, 2)(x)
        x = conv("pmconv5", 2 * c)(x)
        x = conv("pmconv6", 2 * c, act=nn.relu)(x)
        x, flow = ContextualAttention(ksize=3, stride=1, rate=2, fuse_k=3, softmax_scale=10.0,
                                      fuse=True, flow_resize="bilinear",
                                      name="contextual_attention")(x, x, mask_s, return_flow=True)
        x = conv("pmconv9", 2 * c)(x)
        x = conv("pmconv10", 2 * c)(x)
        x = jnp.concatenate([x_hallu, x], axis=-1)
        # decoder
        x = conv("allconv11", 2 * c)(x)
        x = conv("allconv12", 2 * c)(x)
        x = up("allconv13_upsample", c)(x)
        x = conv("allconv14", c)(x)
        x = up("allconv15_upsample", c // 2)(x)
        x = conv("allconv16", c // 4)(x)
        x = conv("allconv17", 3, act=None)(x)
        stage2 = jnp.tanh(x.astype(jnp.float32))
        if return_flow:
            return stage1, stage2, flow
        return stage1, stage2
