"""inpaintjax: deep image inpainting in JAX/Flax (DeepFill v1/v2, Partial Convolutions, EdgeConnect).

Conventions (see DESIGN.md): arrays are NHWC; `mask` is 1 = hole, 0 = known, shape [B, H, W, 1];
user-facing images are RGB.
"""

__version__ = "0.1.0"

from inpaintjax import xla_cpu as _xla_cpu

# Before JAX starts its CPU backend: XLA:CPU's convolution library choice (see xla_cpu.py).
_xla_cpu.configure()


def __getattr__(name):
    # `inpaintjax.Inpainter` without importing jax/flax when only e.g. masks are used
    if name == "Inpainter":
        from inpaintjax.inference import Inpainter
        return Inpainter
    raise AttributeError(f"module 'inpaintjax' has no attribute {name!r}")
