"""The one convolution primitive every layer in inpaintjax goes through.

`conv_general_dilated` has the signature of `jax.lax.conv_general_dilated` and is passed to
`flax.linen.Conv(conv_general_dilated=...)` by every layer, so a faster formulation of the
convolution (and of its gradients) on one backend reaches every model at once.
"""

from jax import lax

conv_general_dilated = lax.conv_general_dilated
