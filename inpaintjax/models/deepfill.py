"""DeepFill generators (coarse network + refinement network with contextual attention).

DeepFillV2Generator is JiahuiYu/generative_inpainting master's `InpaintCAModel.build_inpaint_net`
layer for layer, DeepFillV1Generator the same function at the repository's tag v1.0.0. Both are
built by `coarse_to_fine` (one skeleton: the two versions have the same layers with the same
feature widths; they differ in the convolution, the output squashing and the refinement input). Sub-module names are the official TF layer names, so an
official checkpoint maps one to one (inpaint_net/<name>/kernel -> params[<name>]['conv']['kernel'];
up-sampling layers nest as params[<name>]['conv']['conv'], mirroring <name>/<name>_conv).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import flax.linen as nn
import jax.numpy as jnp

from inpaintjax.layers.attention import ContextualAttention
from inpaintjax.layers.gated import GatedConv, GatedUpConv, PlainConv, PlainUpConv
from inpaintjax.layers.ops import resize_nearest_align_corners


def coarse_to_fine(conv: Callable, up: Callable, x, xin, mask, width: int, *,
                   finish: Callable, refine_input: Callable, flow_resize: str):
    """The DeepFill coarse-to-fine network, shared by v1 and v2 (call it inside a compact method).

    conv(name, features, k=3, s=1, d=1, act=nn.elu) and up(name, features) build one layer (a
    sub-module of the calling module) under its official TF name. `width` is the feature width
    of conv1 (v1: cnum, v2: cnum / 2 because v2's conv outputs hold features and gates).
      x        [B, H, W, Cin] the stage-1 input (masked image and extra channels)
      xin      [B, H, W, 3] the masked image, mask [B, H, W, 1] (1 = hole)
      finish   maps a stage's raw 3-channel output to [-1, 1] (v1 clip, v2 tanh)
      refine_input(composite) -> the stage-2 input (v1 appends ones and the mask; v2 none)
    Returns stage1, stage2 [B, H, W, 3] and the attention flow image [B, H/4, W/4, 3].
    """
    f = width

    def encoder(prefix, y, widths, last_act=nn.elu):
        names = ("conv1", "conv2_downsample", "conv3", "conv4_downsample", "conv5", "conv6")
        for i, (name, features) in enumerate(zip(names, widths)):
            y = conv(prefix + name, features, 5 if i == 0 else 3, 2 if i in (1, 3) else 1,
                     act=last_act if i == 5 else nn.elu)(y)
        return y

    def dilated(prefix, y):
        for i, rate in enumerate((2, 4, 8, 16)):
            y = conv(f"{prefix}conv{7 + i}_atrous", 4 * f, d=rate)(y)
        return y

    def decoder(prefix, y):
        y = conv(prefix + "conv11", 4 * f)(y)
        y = conv(prefix + "conv12", 4 * f)(y)
        y = up(prefix + "conv13_upsample", 2 * f)(y)
        y = conv(prefix + "conv14", 2 * f)(y)
        y = up(prefix + "conv15_upsample", f)(y)
        y = conv(prefix + "conv16", f // 2)(y)
        return finish(conv(prefix + "conv17", 3, act=None)(y))

    # stage 1: coarse network
    y = encoder("", x, (f, 2 * f, 2 * f, 4 * f, 4 * f, 4 * f))
    # TF resizes the mask to the conv6 size here (align corners), and attention halves it
    # again: two steps pick different rows than one /8 step.
    mask_s = resize_nearest_align_corners(mask, y.shape[1:3])
    stage1 = decoder("", dilated("", y))

    # stage 2: refinement of the composite; no stop-gradient between the stages (as the original)
    xnow = refine_input(stage1 * mask + xin * (1.0 - mask))
    x_hallu = dilated("x", encoder("x", xnow, (f, f, 2 * f, 2 * f, 4 * f, 4 * f)))
    y = encoder("pm", xnow, (f, f, 2 * f, 4 * f, 4 * f, 4 * f), last_act=nn.relu)
    y, flow = ContextualAttention(ksize=3, stride=1, rate=2, fuse_k=3, softmax_scale=10.0,
                                  fuse=True, flow_resize=flow_resize,
                                  name="contextual_attention")(y, y, mask_s, return_flow=True)
    y = conv("pmconv9", 4 * f)(y)
    y = conv("pmconv10", 4 * f)(y)
    stage2 = decoder("all", jnp.concatenate([x_hallu, y], axis=-1))
    return stage1, stage2, flow


def _check_inputs(cls_name: str, image, mask, guide=None):
    """ValueError naming the argument, its shape and the expected one, before any layer runs:
    image [B, H, W, 3] with H, W multiples of 8; mask [B or 1, H, W, 1]; guide [B, H, W, 1]."""
    if image.ndim != 4 or image.shape[-1] != 3:
        raise ValueError(f"{cls_name}: image has shape {tuple(image.shape)}; expected [B, H, W] "
                         f"with 3 channels (RGB in [-1, 1])")
    b, h, w, _ = image.shape
    if h % 8 or w % 8:
        raise ValueError(f"{cls_name}: height and width must be multiples of 8 "
                         f"(got {h}x{w}); pad the input (inpaintjax.Inpainter does this)")
    for what, x, batch in (("mask", mask, "B or 1"), ("guide", guide, "B")):
        if x is None:
            continue
        ok_batch = (x.shape[0] in (1, b)) if what == "mask" else x.shape[0] == b
        if x.ndim != 4 or tuple(x.shape[1:]) != (h, w, 1) or not ok_batch:
            raise ValueError(f"{cls_name}: {what} has shape {tuple(x.shape)}; expected "
                             f"[{b}, {h}, {w}, 1] ({batch} x the image's height x width x 1 channel, "
                             f"1 = {'hole' if what == 'mask' else 'stroke'})")


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
        if self.guided and guide is None:
            raise ValueError("DeepFillV2Generator(guided=True) needs `guide` [B, H, W, 1]")
        if not self.guided and guide is not None:
            raise ValueError("DeepFillV2Generator(guided=False) got a guide; build it with guided=True")
        _check_inputs("DeepFillV2Generator", image, mask, guide)
        b, h, w, _ = image.shape
        image = image.astype(jnp.float32)
        mask = jnp.broadcast_to(mask.astype(jnp.float32), (b, h, w, 1))
        c = self.cnum
        conv_cls = nn.remat(GatedConv) if self.remat else GatedConv
        plain_cls = nn.remat(PlainConv) if self.remat else PlainConv
        up_cls = nn.remat(GatedUpConv) if self.remat else GatedUpConv

        def conv(name, features, k=3, s=1, d=1, act=nn.elu):
            if act is None:  # the RGB output layers: no gate
                return plain_cls(features, k, s, d, dtype=self.dtype, name=name)
            return conv_cls(features, k, s, d, activation=act, dtype=self.dtype, name=name)

        def up(name, features):
            return up_cls(features, dtype=self.dtype, name=name)

        xin = image * (1.0 - mask)
        ones = jnp.ones_like(mask)
        parts = [xin] + ([guide.astype(jnp.float32)] if self.guided else []) + [ones, ones * mask]
        # v2 refines the 3-channel composite only
        stage1, stage2, flow = coarse_to_fine(
            conv, up, jnp.concatenate(parts, axis=-1), xin, mask, c // 2,
            finish=lambda y: jnp.tanh(y.astype(jnp.float32)),
            refine_input=lambda composite: composite, flow_resize="bilinear")
        if return_flow:
            return stage1, stage2, flow
        return stage1, stage2


class DeepFillV1Generator(nn.Module):
    """DeepFill v1 (Yu et al., CVPR 2018): the same two stages with plain convolutions.

    JiahuiYu/generative_inpainting tag v1.0.0, `InpaintCAModel.build_inpaint_net`: every layer a
    TF 'SAME' convolution with ELU (pmconv6 ReLU; conv17/allconv17 none, then clipped to [-1, 1]),
    up-sampling = nearest x2 then a 3x3 convolution; stage 2 is fed [composite, ones, mask];
    contextual attention as in v2 (its flow image up-sampled nearest, as v1). cnum=32 gives
    3,601,542 parameters. Parameters nest like DeepFillV2Generator's (params[<name>]['conv'] and
    params[<name>]['conv']['conv'] for up-sampling layers), named after the TF layers.

    Call: `stage1, stage2 = g(image, mask)` (or `..., flow` with `return_flow=True`).
      image  [B, H, W, 3] RGB in [-1, 1], H and W multiples of 8; the generator zeroes the hole.
      mask   [B, H, W, 1] or [1, H, W, 1], 1 = hole.
    Returns stage1, stage2 [B, H, W, 3] float32 in [-1, 1] (not composited) and the flow
    [B, H/4, W/4, 3] in [0, 1]. `dtype` / `remat` as DeepFillV2Generator.
    """

    cnum: int = 32
    dtype: Optional[Any] = None
    remat: bool = False

    @nn.compact
    def __call__(self, image, mask, return_flow: bool = False):
        if self.cnum % 2:
            raise ValueError(f"DeepFillV1Generator: cnum must be even, got {self.cnum}")
        _check_inputs("DeepFillV1Generator", image, mask)
        b, h, w, _ = image.shape
        image = image.astype(jnp.float32)
        mask = jnp.broadcast_to(mask.astype(jnp.float32), (b, h, w, 1))
        # v1's tf.layers.conv2d, under the same parameter names as v2's layers
        conv_cls = nn.remat(PlainConv) if self.remat else PlainConv
        up_cls = nn.remat(PlainUpConv) if self.remat else PlainUpConv

        def activated(layer, act):
            return layer if act is None else (lambda y: act(layer(y)))

        def conv(name, features, k=3, s=1, d=1, act=nn.elu):
            return activated(conv_cls(features, k, s, d, dtype=self.dtype, name=name), act)

        def up(name, features):
            return activated(up_cls(features, dtype=self.dtype, name=name), nn.elu)

        xin = image * (1.0 - mask)
        ones = jnp.ones_like(mask)

        def with_ones_and_mask(y):
            return jnp.concatenate([y, ones, ones * mask], axis=-1)

        stage1, stage2, flow = coarse_to_fine(
            conv, up, with_ones_and_mask(xin), xin, mask, self.cnum,
            finish=lambda y: jnp.clip(y.astype(jnp.float32), -1.0, 1.0),
            refine_input=with_ones_and_mask, flow_resize="nearest")
        if return_flow:
            return stage1, stage2, flow
        return stage1, stage2
