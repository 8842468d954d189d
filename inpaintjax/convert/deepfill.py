"""Official DeepFill TensorFlow 1 checkpoints -> inpaintjax (Flax) variables.

    w = from_tf_checkpoint('release_places2_256')     # directory (with `checkpoint`) or prefix
    g = DeepFillV2Generator(cnum=w.cnum, guided=w.guided)
    stage1, stage2 = g.apply(w.generator, image_rgb_m1p1, mask)

No TensorFlow needed (inpaintjax.convert.tf_checkpoint reads the files). SPEC.md 1.12:
`inpaint_net/<layer>/kernel|bias` (HWIO, as flax) map one to one onto the generator's sub-modules
(up-sampling layers `<layer>/<layer>_conv` onto `<layer>/conv/conv`); the SN-PatchGAN, when the
file has it, from `discriminator/sn_patch_gan/conv{1..6}/kernel|bias` and `.../kernel_sn/u`.
Optimiser slots, `global_step` and `lr` are ignored.

Colour order: the official networks consume and produce BGR. The converted variables are RGB:
the image input channels of conv1, xconv1, pmconv1 (and the discriminator's conv1) and the
output channels of conv17, allconv17 are reversed, so
    converted(rgb) == reverse_channels(original(reverse_channels(rgb))).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from inpaintjax.convert.tf_checkpoint import CheckpointError, TFCheckpointReader

G_SCOPE = "inpaint_net"
D_SCOPE = "discriminator/sn_patch_gan"
# layers whose first 3 input channels are the (BGR) image, and the RGB output layers
_IMAGE_INPUT_LAYERS = ("conv1", "xconv1", "pmconv1")
_IMAGE_OUTPUT_LAYERS = ("conv17", "allconv17")


@dataclasses.dataclass
class DeepFillWeights:
    """Converted variables (RGB) and what was learned about the checkpoint.

    generator:      {'params': ...} for DeepFillV2Generator(cnum, guided)
    discriminator:  {'params': ..., 'batch_stats': ...} for SNPatchGAN(d_cnum), or None if the file
                    holds no discriminator (d_in_channels = 4, or 5 when guided)
    step:           the checkpoint's global_step, if recorded
    """

    generator: Dict[str, Any]
    discriminator: Optional[Dict[str, Any]]
    cnum: int
    guided: bool
    d_cnum: Optional[int]
    step: Optional[int]
    prefix: str

    def config(self):
        """A run config for these weights (inpaintjax.families.deepfill_v2.default_config)."""
        from inpaintjax.families.deepfill_v2 import default_config
        c = default_config(cnum=self.cnum, guided=self.guided)
        if self.d_cnum:
            c.model.d_cnum = self.d_cnum
        return c


def _flatten(tree, prefix=()) -> Dict[Tuple[str, ...], Any]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) or hasattr(v, "items"):
            out.update(_flatten(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


def _unflatten(flat: Dict[Tuple[str, ...], Any]) -> dict:
    out: dict = {}
    for path, v in flat.items():
        node = out
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = v
    return out


def generator_tf_name(path: Tuple[str, ...]) -> str:
    """TF variable name of a generator parameter path, e.g. ('conv13_upsample', 'conv', 'conv',
    'kernel') -> 'inpaint_net/conv13_upsample/conv13_upsample_conv/kernel'."""
    layer, leaf = path[0], path[-1]
    if len(path) == 4:  # GatedUpConv: <layer>/conv/conv/<leaf>
        return f"{G_SCOPE}/{layer}/{layer}_conv/{leaf}"
    return f"{G_SCOPE}/{layer}/{leaf}"


def _describe(reader: TFCheckpointReader, limit: int = 8) -> str:
    names = sorted(reader.keys())
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _detect_generator(reader: TFCheckpointReader, version: int) -> Tuple[int, bool]:
    shapes = reader.shapes()
    k1 = shapes.get(f"{G_SCOPE}/conv1/kernel")
    k2 = shapes.get(f"{G_SCOPE}/conv2_downsample/kernel")
    if k1 is None or k2 is None or len(k1) != 4 or len(k2) != 4:
        raise CheckpointError(
            f"{reader.prefix} is not a DeepFill checkpoint: it has no {G_SCOPE}/conv1/kernel and "
            f"{G_SCOPE}/conv2_downsample/kernel (it holds: {_describe(reader)})")
    cnum, in_ch = k1[3], k1[2]
    if k2[2] == cnum:  # ungated: conv2 consumes every conv1 output channel
        raise CheckpointError(
            f"{reader.prefix} is a DeepFill v1 checkpoint (plain convolutions: conv1 has {cnum} "
            f"outputs, all consumed by conv2), not DeepFill v{version} (gated: conv2 reads half)")
    if k2[2] * 2 != cnum or in_ch not in (5, 6) or cnum % 4:
        raise CheckpointError(
            f"{reader.prefix}: {G_SCOPE}/conv1/kernel {k1} and conv2_downsample/kernel {k2} do not "
            f"match the DeepFill v2 generator (conv1 [5, 5, 5 or 6, cnum], conv2 [3, 3, cnum/2, 2cnum])")
    return int(cnum), in_ch == 6


def _generator_params(reader: TFCheckpointReader, cnum: int, guided: bool) -> dict:
    from inpaintjax.models.deepfill import DeepFillV2Generator
    g = DeepFillV2Generator(cnum=cnum, guided=guided)
    img, msk = jnp.zeros((1, 64, 64, 3)), jnp.zeros((1, 64, 64, 1))
    guide = jnp.zeros((1, 64, 64, 1)) if guided else None
    abstract = jax.eval_shape(lambda: g.init(jax.random.key(0), img, msk, guide))["params"]
    shapes = reader.shapes()
    flat, missing, wrong = {}, [], []
    for path, leaf in _flatten(abstract).items():
        name = generator_tf_name(path)
        if name not in shapes:
            missing.append(name)
        elif tuple(shapes[name]) != tuple(leaf.shape):
            wrong.append(f"{name}: file {tuple(shapes[name])}, model {tuple(leaf.shape)}")
        else:
            flat[path] = np.asarray(reader.get(name), np.float32)
    if missing or wrong:
        raise CheckpointError(
            f"{reader.prefix} does not match the DeepFill v2 generator (cnum={cnum}, guided={guided}): "
            + (f"missing {missing[:6]}{' ...' if len(missing) > 6 else ''}; " if missing else "")
            + (f"shape mismatches {wrong[:6]}" if wrong else ""))
    # BGR -> RGB (image channels are the first three inputs; guide/ones/mask follow)
    for layer in _IMAGE_INPUT_LAYERS:
        k = flat[(layer, "conv", "kernel")].copy()
        k[:, :, 0:3, :] = k[:, :, 2::-1, :]
        flat[(layer, "conv", "kernel")] = k
    for layer in _IMAGE_OUTPUT_LAYERS:
        flat[(layer, "conv", "kernel")] = flat[(layer, "conv", "kernel")][..., ::-1].copy()
        flat[(layer, "conv", "bias")] = flat[(layer, "conv", "bias")][::-1].copy()
    return _unflatten({k: jnp.asarray(v) for k, v in flat.items()})


def _discriminator_variables(reader: TFCheckpointReader) -> Tuple[Optional[dict], Optional[int]]:
    from inpaintjax.layers.spectral import spectral_sigma
    if f"{D_SCOPE}/conv1/kernel" not in reader:
        return None, None
    params, stats = {}, {}
    for i in range(1, 7):
        base = f"{D_SCOPE}/conv{i}"
        for leaf in ("kernel", "bias"):
            if f"{base}/{leaf}" not in reader:
                raise CheckpointError(f"{reader.prefix}: discriminator incomplete, {base}/{leaf} missing")
        kernel = np.asarray(reader.get(f"{base}/kernel"), np.float32)
        bias = np.asarray(reader.get(f"{base}/bias"), np.float32)
        if i == 1:
            kernel = kernel.copy()
            kernel[:, :, 0:3, :] = kernel[:, :, 2::-1, :]
        if f"{base}/kernel_sn/u" in reader:
            u = np.asarray(reader.get(f"{base}/kernel_sn/u"), np.float32).reshape(1, -1)
        else:  # no power-iteration state saved: start it like a fresh layer (deterministically)
            u = np.asarray(jax.random.normal(jax.random.key(i), (1, kernel.shape[-1])), np.float32)
        params[f"conv{i}"] = {"conv": {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias)}}
        stats[f"conv{i}"] = {"sn": {"conv/kernel/u": jnp.asarray(u),
                                    "conv/kernel/sigma": spectral_sigma(kernel, u)}}
    d_cnum = int(params["conv1"]["conv"]["kernel"].shape[-1])
    return {"params": params, "batch_stats": stats}, d_cnum


def from_tf_checkpoint(path, version: int = 2) -> DeepFillWeights:
    """Read an official DeepFill TF1 checkpoint (directory with a `checkpoint` file, or a prefix
    such as '.../snap-1000000') into RGB Flax variables. See the module docstring."""
    if version != 2:
        raise ValueError(f"from_tf_checkpoint: version must be 2 (DeepFill v2), got {version!r}")
    path = os.fspath(path)
    if not os.path.exists(path) and not os.path.exists(path + ".index"):
        raise FileNotFoundError(
            f"DeepFill checkpoint not found: {path} (expected a directory holding `checkpoint`, "
            f"<prefix>.index and <prefix>.data-00000-of-00001, or the <prefix> itself)")
    reader = TFCheckpointReader(path)
    cnum, guided = _detect_generator(reader, version)
    generator = {"params": _generator_params(reader, cnum, guided)}
    discriminator, d_cnum = _discriminator_variables(reader)
    step = int(reader.get("global_step")) if "global_step" in reader else None
    return DeepFillWeights(generator=generator, discriminator=discriminator, cnum=cnum,
                           guided=guided, d_cnum=d_cnum, step=step, prefix=reader.prefix)


def is_tf_checkpoint(path) -> bool:
    """True for a TF1 checkpoint: a directory holding `checkpoint` or an .index file, a prefix
    with a `<prefix>.index` beside it, or the .index file itself."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return any(n == "checkpoint" or n.endswith(".index") for n in os.listdir(path))
    return path.endswith(".index") or os.path.isfile(path + ".index")


def tf_checkpoint_version(path) -> Optional[int]:
    """1 or 2 for an official DeepFill v1 / v2 TF checkpoint (read from the generator's first two
    kernel shapes: v2's gated conv2 reads half of conv1's outputs), None for anything else."""
    if not is_tf_checkpoint(path):
        return None
    try:
        shapes = TFCheckpointReader(os.fspath(path)).shapes()
    except (CheckpointError, OSError, ValueError):
        return None
    k1, k2 = shapes.get(f"{G_SCOPE}/conv1/kernel"), shapes.get(f"{G_SCOPE}/conv2_downsample/kernel")
    if k1 is None or k2 is None or len(k1) != 4 or len(k2) != 4:
        return None
    return 1 if k2[2] == k1[3] else 2
