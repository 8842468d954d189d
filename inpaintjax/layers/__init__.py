"""Layers of the inpainting systems, NHWC, with hole masks (1 = hole) throughout.

Every convolution goes through `inpaintjax.layers.conv.conv_general_dilated` (the models' layers
through `Conv`); the normalisation layers' statistics and the biases' gradients through
`inpaintjax.layers.reductions`.
"""

from inpaintjax.layers.attention import ContextualAttention, contextual_attention, flow_to_image
from inpaintjax.layers.conv import Conv, conv_general_dilated
from inpaintjax.layers.gated import GatedConv, GatedUpConv, PlainConv, PlainUpConv
from inpaintjax.layers.ops import (
    BatchNorm,
    InstanceNorm,
    align_corners_indices,
    leaky_relu,
    reflect_pad,
    resize_nearest_align_corners,
    torch_conv_transpose_padding,
    torch_pad,
)
from inpaintjax.layers.partial import PartialConv
from inpaintjax.layers.reductions import broadcast_leading, leading_mean, leading_sum
from inpaintjax.layers.spectral import SNConv, bake_spectral_norm, spectral_sigma

__all__ = [
    "BatchNorm",
    "ContextualAttention",
    "Conv",
    "GatedConv",
    "GatedUpConv",
    "PlainConv",
    "PlainUpConv",
    "InstanceNorm",
    "PartialConv",
    "SNConv",
    "align_corners_indices",
    "bake_spectral_norm",
    "broadcast_leading",
    "contextual_attention",
    "conv_general_dilated",
    "flow_to_image",
    "leading_mean",
    "leading_sum",
    "leaky_relu",
    "reflect_pad",
    "resize_nearest_align_corners",
    "spectral_sigma",
    "torch_conv_transpose_padding",
    "torch_pad",
]
