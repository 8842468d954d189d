"""inpaintjax: deep image inpainting in JAX/Flax (DeepFill v1/v2, Partial Convolutions, EdgeConnect,
Global&Local, Shift-Net; PatchMatch and other classical fills).

Conventions: arrays are NHWC; `mask` is 1 = hole, 0 = known, shape [B, H, W, 1]; user-facing
images are RGB. Importing the package changes no JAX or XLA setting (see `inpaintjax.xla_cpu` for
what the command-line programs choose on CPUs).
"""

__version__ = "0.1.0"


def __getattr__(name):
    # `inpaintjax.Inpainter` without importing jax/flax when only e.g. masks are used
    if name == "Inpainter":
        from inpaintjax.inference import Inpainter
        return Inpainter
    raise AttributeError(f"module 'inpaintjax' has no attribute {name!r}")
