"""Spectral normalisation (flax `nn.SpectralNorm`), an SN convolution, and baking SN into kernels.

What flax 0.12's `nn.SpectralNorm` does (read from flax/linen/normalization.py):
  * every wrapped variable with ndim >= 2 (so the conv kernel, never the bias) is viewed as a
    matrix W [prod(shape[:-1]), shape[-1]] (HWIO kernel -> [kh*kw*in, out]);
  * `batch_stats` holds, in the SpectralNorm module's scope, `<layer>/<param>/u` [1, out]
    (initialised N(0, 1) from the 'params' rng) and `<layer>/<param>/sigma` [] (initialised 1);
  * every call, training or not, runs `n_steps` power iterations from the STORED u:
      v = l2n(u W^T), u' = l2n(v W), sigma = v W u'^T, with l2n(x) = x * rsqrt(sum x^2 + eps);
    u' and v are under stop_gradient, and the layer uses W / sigma;
  * `update_stats=True` (with mutable=['batch_stats']) stores u' and sigma; `update_stats=False`
    stores nothing. The stored sigma is never read by the forward pass.
So `bake_spectral_norm` recomputes sigma from the stored u with the same power iteration (not
the stored sigma, which belongs to the previous u), and an inference model without SN given the
baked kernels gives the SN model's `update_stats=False` output.

This differs from the originals: neuralgym (JiahuiYu/neuralgym `neuralgym/ops/gan_ops.py`, used by
generative_inpainting `inpaint_model.py::build_sn_patch_gan_discriminator`) lets gradients flow
through u, v and uses x / (||x|| + 1e-12); PyTorch's `torch.nn.utils.spectral_norm`, used by
knazeri/edge-connect `src/networks.py`, runs no power step in eval and uses sigma = u^T W v from
its stored u, v. Converters of official weights should bake those systems' own sigma.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Optional, Union

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from inpaintjax.layers.conv import Conv
from inpaintjax.layers.ops import torch_pad


class SNConv(nn.Module):
    """A 2-D convolution with spectral normalisation: `nn.SpectralNorm(Conv(...))`.

    Call: `y = SNConv(...)(x, update_stats=train)` with x [B, H, W, C] -> [B, H', W', features].
    Training: `apply(..., update_stats=True, mutable=['batch_stats'])`.

    Variables of an instance named `name`:
      params/<name>/conv/kernel                     [k, k, C, features]  (HWIO)
      params/<name>/conv/bias                       [features]            (if use_bias)
      batch_stats/<name>/sn/conv/kernel/u           [1, features]
      batch_stats/<name>/sn/conv/kernel/sigma       []
    With `spectral_norm=False` it is the plain conv with the same `params` tree and no
    `batch_stats`: the inference model for variables from `bake_spectral_norm`.

    padding: 'SAME' (TF rule, DeepFill's SN-PatchGAN), 'VALID', or an int p (PyTorch's
    symmetric padding, EdgeConnect). n_steps and epsilon are flax's SpectralNorm attributes.
    """

    features: int
    kernel_size: int = 3
    strides: int = 1
    dilation: int = 1
    padding: Union[str, int] = "SAME"
    use_bias: bool = True
    spectral_norm: bool = True
    n_steps: int = 1
    epsilon: float = 1e-12
    dtype: Optional[jnp.dtype] = None
    kernel_init: Callable = nn.initializers.glorot_uniform()  # TF's tf.layers.conv2d default
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jnp.ndarray, update_stats: bool) -> jnp.ndarray:
        if isinstance(self.padding, str):
            if self.padding.upper() not in ("SAME", "VALID"):
                raise ValueError(f"SNConv: padding must be 'SAME', 'VALID' or an int, got {self.padding!r}")
            padding = self.padding.upper()
        else:
            padding = torch_pad(self.padding)
        conv = Conv(
            self.features, (self.kernel_size, self.kernel_size),
            strides=(self.strides, self.strides),
            kernel_dilation=(self.dilation, self.dilation), padding=padding,
            use_bias=self.use_bias, dtype=self.dtype, kernel_init=self.kernel_init,
            bias_init=self.bias_init, name="conv")
        if not self.spectral_norm:
            return conv(x)
        return nn.SpectralNorm(conv, n_steps=self.n_steps, epsilon=self.epsilon, name="sn")(
            x, update_stats=update_stats)


def _l2_normalize(x, eps):
    # flax's formula (not x / (||x|| + eps)), so the baked kernels match its forward pass.
    return x * jax.lax.rsqrt(jnp.sum(x * x) + eps)


@functools.partial(jax.jit, static_argnames=("n_steps", "epsilon"))
def spectral_sigma(kernel: jnp.ndarray, u: jnp.ndarray, n_steps: int = 1,
                   epsilon: float = 1e-12) -> jnp.ndarray:
    """Flax SpectralNorm's sigma for `kernel` (any ndim >= 2, viewed as [-1, out]) from stored u [1, out].
    Jitted: one compiled program per kernel shape when called outside a trace (converters and
    `bake_spectral_norm` run it on host weights), not a program per operation."""
    w = jnp.reshape(jnp.asarray(kernel, jnp.float32), (-1, kernel.shape[-1]))
    u = jnp.asarray(u, jnp.float32)
    v = None
    for _ in range(n_steps):
        v = _l2_normalize(u @ w.T, epsilon)
        u = _l2_normalize(v @ w, epsilon)
    return (v @ w @ u.T)[0, 0]


@functools.partial(jax.jit, static_argnums=(2, 3))
def _baked_kernel(kernel, u, n_steps: int, epsilon: float):
    """kernel / sigma in the kernel's dtype: what SpectralNorm's forward multiplies by."""
    sigma = spectral_sigma(kernel, u, n_steps, epsilon)
    sigma = jnp.where(sigma != 0, sigma, 1.0)  # flax's guard
    return (jnp.asarray(kernel, jnp.float32) / sigma).astype(kernel.dtype)


def _to_dict(tree):
    if isinstance(tree, flax.core.FrozenDict):
        tree = flax.core.unfreeze(tree)
    if isinstance(tree, Mapping):
        return {k: _to_dict(v) for k, v in tree.items()}
    return tree


def _prune_empty(tree):
    if not isinstance(tree, dict):
        return tree
    out = {}
    for k, v in tree.items():
        v = _prune_empty(v)
        if not (isinstance(v, dict) and not v):
            out[k] = v
    return out


def bake_spectral_norm(variables: Mapping[str, Any], n_steps: int = 1, epsilon: float = 1e-12,
                       collection: str = "batch_stats") -> dict:
    """Variables for the same network without SpectralNorm: each SN-wrapped kernel becomes W / sigma.

    `variables` is a flax variable dict ({'params': ..., 'batch_stats': ...}) of any model that
    uses `nn.SpectralNorm` (e.g. `SNConv`). Every `<prefix>/<sn_module>/<layer>/<param>/u`
    entry of `collection` is matched with `params/<prefix>/<layer>/<param>`; sigma is computed
    from that stored u with `n_steps` power iterations exactly as `nn.SpectralNorm` does at
    `update_stats=False` (pass the wrapped modules' `n_steps`/`epsilon` if not the defaults). The
    u/sigma entries are removed (a collection left empty disappears); everything else is kept.
    Baked kernels keep their dtype. Requires the wrapped layer to be constructed in the module
    that applies `nn.SpectralNorm` (flax places its params there), as in `SNConv`.
    """
    out = _to_dict(variables)
    if "params" not in out:
        raise ValueError("bake_spectral_norm: `variables` has no 'params' collection; pass the whole "
                         "variable dict returned by model.init / the train state")
    stats = out.get(collection, {})
    found = []

    def walk(node, path):
        for key in list(node):
            value = node[key]
            if isinstance(value, dict):
                walk(value, path + (key,))
            elif key.endswith("/u"):
                found.append((path, key))

    walk(stats, ())
    params = out["params"]
    for path, key in found:
        prefix = path[:-1]  # drop the SpectralNorm module's own name
        param_path = prefix + tuple(key.split("/")[:-1])
        node = params
        try:
            for p in param_path[:-1]:
                node = node[p]
            kernel = node[param_path[-1]]
        except (KeyError, TypeError):
            raise ValueError(
                f"bake_spectral_norm: found {collection}/{'/'.join(path + (key,))} but no parameter "
                f"params/{'/'.join(param_path)}; the wrapped layer must be built in the module that "
                f"applies nn.SpectralNorm") from None
        sn_node = stats
        for p in path:
            sn_node = sn_node[p]
        node[param_path[-1]] = _baked_kernel(kernel, sn_node[key], n_steps, epsilon)
        del sn_node[key]
        sn_node.pop(key[:-2] + "/sigma", None)

    if collection in out:
        out[collection] = _prune_empty(out[collection])
        if not out[collection]:
            del out[collection]
    return out
