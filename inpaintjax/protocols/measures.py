"""Per-image measures of the field's evaluation protocols, each exactly as one paper's code defines it.

Every measure takes a batch `truth, output` [B, H, W, C] float32 in [0, 1] and `mask` [B, H, W, 1]
(1 = hole) and returns one value per image [B]; all are jittable (options are static Python values).
They differ where the papers differ:

- `ssim` with `window="gaussian"`, `padding="zero"`: LaMa's SSIM (saicinpainting/evaluation/losses/
  ssim.py: 11x11 Gaussian, sigma 1.5, `F.conv2d(padding=5)`, so the statistics near the border see
  zeros; C1 = 0.01^2, C2 = 0.03^2 on [0, 1]; mean over channels and pixels).
- `ssim` with `window="gaussian"`, `padding="valid"`: the Wang et al. reference as MAT
  (evaluatoin/cal_psnr_ssim_l1.py) and mmagic (evaluation/metrics/ssim.py) compute it: `cv2.filter2D`
  then a 5-pixel crop, which keeps exactly the windows that lie inside the image.
- `ssim` with `window="uniform"`, `size=51`, `sample_covariance=True`: scikit-image's
  `structural_similarity(win_size=51, data_range=1)` as EdgeConnect's scripts/metrics.py calls it
  (uniform window, covariances scaled by N/(N-1), mean over the windows inside the image).
- `psnr`: 10 log10(1 / MSE) over the whole image (data range 1; the same number as 255 on [0, 255]).
- `l1`: mean |a - b| over the whole image (MAT's L1; PConv's l1 in % with scale 100).
- `mae_relative`: EdgeConnect's and AOT-GAN's "MAE", sum |a - b| / sum (a + b) per image.
- `mae_masked`: mmagic's MAE with `mask_key`: sum |a - b| * mask / (sum(mask) * C + 1e-12) per image.

`to_grey` is scikit-image's `rgb2gray` (0.2125 R + 0.7154 G + 0.0721 B), EdgeConnect's first step.
"""

from __future__ import annotations

from typing import Callable, Dict

import jax
import jax.numpy as jnp
import numpy as np

GREY_WEIGHTS = (0.2125, 0.7154, 0.0721)  # skimage.color.rgb2gray (ITU-R BT.709 luma)
SSIM_PADDINGS = ("zero", "valid", "reflect")
SSIM_WINDOWS = ("gaussian", "uniform")
#: FID's covariance: 'unbiased' (N - 1: pytorch-fid, TTUR) or 'biased' (N: StyleGAN2-ADA's FeatureStats, MAT)
FID_COVARIANCES = ("unbiased", "biased")
#: LPIPS backbones (`inpaintjax.perceptual.lpips.NETS`, named here so that defining a protocol does not
#: import the networks)
LPIPS_NETS = ("alex", "vgg", "squeeze")


def to_grey(x: jax.Array) -> jax.Array:
    """[B, H, W, 3] -> [B, H, W, 1], skimage's rgb2gray on float images."""
    w = jnp.asarray(GREY_WEIGHTS, x.dtype)
    return jnp.einsum("bhwc,c->bhw", x, w, precision=jax.lax.Precision.HIGHEST)[..., None]


def window_taps(window: str, size: int, sigma: float) -> np.ndarray:
    """The 1-D taps of a separable SSIM window (they sum to 1): a Gaussian as cv2.getGaussianKernel /
    LaMa's `gaussian()` make it, or a box of `size` taps."""
    if window not in SSIM_WINDOWS:
        raise ValueError(f"SSIM window {window!r} is not one of {', '.join(SSIM_WINDOWS)}")
    if size < 1 or size % 2 == 0:
        raise ValueError(f"SSIM window size must be odd and positive, got {size}")
    if window == "uniform":
        return np.full(size, 1.0 / size)
    r = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(r ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def _filter(z: jax.Array, taps: np.ndarray, padding: str) -> jax.Array:
    """Separable correlation of every channel of z [B, H, W, C] with taps x taps."""
    b, h, w, c = z.shape
    r = len(taps) // 2
    x = jnp.transpose(z, (0, 3, 1, 2)).reshape(b * c, h, w, 1)
    if padding == "zero":
        pad = ((r, r), (r, r))
    elif padding == "reflect":  # cv2's default border (BORDER_REFLECT_101 = numpy 'reflect')
        x = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="reflect")
        pad = ((0, 0), (0, 0))
    else:
        pad = ((0, 0), (0, 0))
    k = jnp.asarray(taps, z.dtype)
    dn = ("NHWC", "HWIO", "NHWC")
    hi = jax.lax.Precision.HIGHEST
    x = jax.lax.conv_general_dilated(x, k.reshape(-1, 1, 1, 1), (1, 1), (pad[0], (0, 0)), dimension_numbers=dn,
                                     precision=hi)
    x = jax.lax.conv_general_dilated(x, k.reshape(1, -1, 1, 1), (1, 1), ((0, 0), pad[1]), dimension_numbers=dn,
                                     precision=hi)
    return jnp.transpose(x.reshape(b, c, x.shape[1], x.shape[2]), (0, 2, 3, 1))


def ssim(truth, output, mask=None, *, window: str = "gaussian", size: int = 11, sigma: float = 1.5,
         padding: str = "zero", sample_covariance: bool = False, k1: float = 0.01, k2: float = 0.03) -> jax.Array:
    """Mean SSIM per image [B] (see the module docstring for which option set is whose).

    padding: "zero" (the map keeps the image size, statistics see zeros past the border), "valid"
    (only windows inside the image) or "reflect" (cv2's default border, kept for comparisons)."""
    if padding not in SSIM_PADDINGS:
        raise ValueError(f"SSIM padding {padding!r} is not one of {', '.join(SSIM_PADDINGS)}")
    h, w = truth.shape[1], truth.shape[2]
    if padding == "valid" and (h < size or w < size):
        raise ValueError(f"SSIM with a {size}x{size} window inside the image needs images of at least "
                         f"{size}x{size}, got {w}x{h}")
    taps = window_taps(window, size, sigma)
    a, b = truth.astype(jnp.float32), output.astype(jnp.float32)
    f = lambda z: _filter(z, taps, padding)
    mu_a, mu_b = f(a), f(b)
    cov_norm = size * size / (size * size - 1.0) if sample_covariance else 1.0
    var_a = cov_norm * (f(a * a) - mu_a * mu_a)
    var_b = cov_norm * (f(b * b) - mu_b * mu_b)
    cov_ab = cov_norm * (f(a * b) - mu_a * mu_b)
    c1, c2 = k1 ** 2, k2 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov_ab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return jnp.mean(s, axis=(1, 2, 3))


def psnr(truth, output, mask=None) -> jax.Array:
    """10 log10(1 / MSE) per image [B], MSE over all pixels and channels (inf where equal)."""
    mse = jnp.mean(jnp.square(truth.astype(jnp.float32) - output.astype(jnp.float32)), axis=(1, 2, 3))
    return 10.0 * jnp.log10(1.0 / mse)


def l1(truth, output, mask=None) -> jax.Array:
    """Mean absolute error over the whole image per image [B]."""
    return jnp.mean(jnp.abs(truth.astype(jnp.float32) - output.astype(jnp.float32)), axis=(1, 2, 3))


def mae_relative(truth, output, mask=None) -> jax.Array:
    """sum |a - b| / sum (a + b) per image [B] (EdgeConnect's and AOT-GAN's "MAE")."""
    a, b = truth.astype(jnp.float32), output.astype(jnp.float32)
    return jnp.sum(jnp.abs(a - b), axis=(1, 2, 3)) / jnp.sum(a + b, axis=(1, 2, 3))


def mae_masked(truth, output, mask) -> jax.Array:
    """mmagic's masked MAE per image [B]: sum |a - b| * mask / (sum(mask) * C + 1e-12)."""
    a, b = truth.astype(jnp.float32), output.astype(jnp.float32)
    m = mask.astype(jnp.float32)
    c = a.shape[-1]
    return jnp.sum(jnp.abs(a - b) * m, axis=(1, 2, 3)) / (jnp.sum(m, axis=(1, 2, 3)) * c + 1e-12)


PER_IMAGE: Dict[str, Callable] = {
    "ssim": ssim,
    "psnr": psnr,
    "l1": l1,
    "mae_relative": mae_relative,
    "mae_masked": mae_masked,
}
# measured on the whole set (or group) of images, from Inception features, or by a learned network
SET_MEASURES = ("fid", "pids", "uids", "is")
NETWORK_MEASURES = ("lpips",)
ALL_MEASURES = tuple(PER_IMAGE) + NETWORK_MEASURES + SET_MEASURES


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) \
        and np.isfinite(v)


def _option_error(options: dict) -> str:
    """Why a value of `options` (of a known measure, known names) cannot be used, or ''."""
    choices = {"window": SSIM_WINDOWS, "padding": SSIM_PADDINGS, "covariance": FID_COVARIANCES,
               "net": LPIPS_NETS}
    for k, v in options.items():
        if k in choices and v not in choices[k]:
            return f"option {k}={v!r} is not one of {', '.join(choices[k])}"
        if k == "size" and not (_is_int(v) and v >= 1 and v % 2 == 1):
            return f"option size={v!r} must be an odd positive integer (the window's side in pixels)"
        if k in ("sigma", "k1", "k2") and not (_is_real(v) and v > 0):
            return f"option {k}={v!r} must be a positive number"
        if k == "sample_covariance" and not isinstance(v, (bool, np.bool_)):
            return f"option sample_covariance={v!r} must be true or false"
        if k == "splits" and not (_is_int(v) and v >= 1):
            return f"option splits={v!r} must be a positive integer"
    if options.get("sample_covariance") and options.get("size", 11) == 1:
        return "option sample_covariance=True needs a window of more than one pixel (size >= 3)"
    return ""


def check_options(measure: str, options: dict) -> None:
    """Refuse an unknown measure, an unknown option or an option value the measure cannot use, with
    a message listing the valid ones."""
    import inspect
    if measure not in ALL_MEASURES:
        raise ValueError(f"unknown measure {measure!r}; choose from {', '.join(ALL_MEASURES)}")
    if measure in PER_IMAGE:
        params = inspect.signature(PER_IMAGE[measure]).parameters
        valid = [k for k, p in params.items() if p.kind == p.KEYWORD_ONLY]
    else:
        valid = {"fid": ["covariance"], "lpips": ["net"], "is": ["splits"], "pids": [], "uids": []}[measure]
    bad = [k for k in options if k not in valid]
    if bad:
        raise ValueError(f"measure {measure!r} has no option(s) {bad}; valid: {valid or 'none'}")
    why = _option_error(options)
    if why:
        raise ValueError(f"measure {measure!r}: {why}")


def per_image(measure: str, options: dict, truth, output, mask) -> jax.Array:
    return PER_IMAGE[measure](truth, output, mask, **options)


__all__ = ["ALL_MEASURES", "FID_COVARIANCES", "GREY_WEIGHTS", "LPIPS_NETS", "PER_IMAGE", "SET_MEASURES", "check_options", "l1", "mae_masked",
           "mae_relative", "psnr", "ssim", "to_grey", "window_taps"]
