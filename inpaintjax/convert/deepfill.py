"""Official DeepFill TensorFlow 1 checkpoints (v1 and v2) -> inpaintjax (Flax) variables.

    w = from_tf_checkpoint('release_places2_256')     # directory (with `checkpoint`) or prefix
    g = DeepFillV2Generator(cnum=w.cnum, guided=w.guided)    # w.version == 2
    g = DeepFillV1Generator(cnum=w.cnum)                     # w.version == 1
    stage1, stage2 = g.apply(w.generator, image_rgb_m1p1, mask)

The version is read from the variables: v2's gated conv1 has 2x the outputs conv2_downsample
reads, v1's plain conv1 feeds all of them (JiahuiYu/generative_inpainting master and tag v1.0.0,
`inpaint_model.py`). Both generators use the same `inpaint_net/<layer>` names. DeepFill v1's
two WGAN critics, when the file has them, come from
`discriminator/discriminator_{local,global}/conv{1..4}/kernel|bias` and
`discriminator/dout_{local,global}_fc/kernel|bias`.

No TensorFlow needed (inpaintjax.convert.tf_checkpoint reads the files). The released checkpoints
(JiahuiYu/generative_inpainting, restored by its `test.py`) name their variables so that
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
import functools
import os
import struct
from typing import Any, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from inpaintjax.convert.tf_checkpoint import DATA_SHARD, CheckpointError, TFCheckpointReader

G_SCOPE = "inpaint_net"
D_SCOPE = "discriminator/sn_patch_gan"
V1_CRITICS = {"local": "discriminator_local", "global": "discriminator_global"}
# layers whose first 3 input channels are the (BGR) image, and the RGB output layers
_IMAGE_INPUT_LAYERS = ("conv1", "xconv1", "pmconv1")
_IMAGE_OUTPUT_LAYERS = ("conv17", "allconv17")


@dataclasses.dataclass
class DeepFillWeights:
    """Converted variables (RGB; NumPy float32 arrays on the host, as every converter returns)
    and what was learned about the checkpoint (the facts a family builds its config from:
    version, cnum, guided, d_cnum).

    version:        1 or 2 (DeepFill v1 / v2)
    generator:      {'params': ...} for DeepFillV2Generator(cnum, guided) or DeepFillV1Generator(cnum)
    discriminator:  v2: {'params': ..., 'batch_stats': ...} for SNPatchGAN(d_cnum)
                    (d_in_channels = 4, or 5 when guided); v1: {'local': {'params': ...},
                    'global': {'params': ...}} for WGANLocalCritic(d_cnum), WGANGlobalCritic(d_cnum);
                    None if the file holds no discriminator
    step:           the checkpoint's global_step, if recorded
    """

    generator: Dict[str, Any]
    discriminator: Optional[Dict[str, Any]]
    cnum: int
    guided: bool
    d_cnum: Optional[int]
    step: Optional[int]
    prefix: str
    version: int = 2


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


def detect_version(reader: TFCheckpointReader) -> int:
    """1 or 2 from the generator's first two kernels; CheckpointError if not a DeepFill file."""
    shapes = reader.shapes()
    k1 = shapes.get(f"{G_SCOPE}/conv1/kernel")
    k2 = shapes.get(f"{G_SCOPE}/conv2_downsample/kernel")
    if k1 is None or k2 is None or len(k1) != 4 or len(k2) != 4:
        raise CheckpointError(
            f"{reader.prefix} is not a DeepFill checkpoint: it has no {G_SCOPE}/conv1/kernel and "
            f"{G_SCOPE}/conv2_downsample/kernel (it holds: {_describe(reader)})")
    # ungated (v1): conv2 consumes every conv1 output; gated (v2): the feature half
    return 1 if k2[2] == k1[3] else 2


def _detect_generator(reader: TFCheckpointReader, version: int) -> Tuple[int, bool]:
    shapes = reader.shapes()
    k1 = shapes[f"{G_SCOPE}/conv1/kernel"]
    k2 = shapes[f"{G_SCOPE}/conv2_downsample/kernel"]
    found = detect_version(reader)
    cnum, in_ch = k1[3], k1[2]
    if found != version:
        kind = ("plain convolutions: conv1 has {c} outputs, all consumed by conv2" if found == 1
                else "gated convolutions: conv2 reads half of conv1's {c} outputs").format(c=cnum)
        raise CheckpointError(f"{reader.prefix} is a DeepFill v{found} checkpoint ({kind}), not "
                              f"DeepFill v{version}; load it with version={found} (or None)")
    if version == 1:
        if in_ch != 5 or cnum % 2:
            raise CheckpointError(
                f"{reader.prefix}: {G_SCOPE}/conv1/kernel {k1} does not match the DeepFill v1 "
                f"generator (conv1 [5, 5, 5, cnum], cnum even)")
        return int(cnum), False
    if k2[2] * 2 != cnum or in_ch not in (5, 6) or cnum % 4:
        raise CheckpointError(
            f"{reader.prefix}: {G_SCOPE}/conv1/kernel {k1} and conv2_downsample/kernel {k2} do not "
            f"match the DeepFill v2 generator (conv1 [5, 5, 5 or 6, cnum], conv2 [3, 3, cnum/2, 2cnum])")
    return int(cnum), in_ch == 6


@functools.lru_cache(maxsize=8)
def _generator_shapes(version: int, cnum: int, guided: bool) -> Dict[tuple, tuple]:
    """{parameter path: shape} of the generator (traced once per process and generator)."""
    from inpaintjax.models.deepfill import DeepFillV1Generator, DeepFillV2Generator
    img, msk = (jax.ShapeDtypeStruct((1, 64, 64, c), jnp.float32) for c in (3, 1))
    if version == 1:
        g, args = DeepFillV1Generator(cnum=cnum), (img, msk)
    else:
        g, args = DeepFillV2Generator(cnum=cnum, guided=guided), (img, msk, msk if guided else None)
    abstract = jax.eval_shape(lambda *a: g.init(jax.random.key(0), *a), *args)["params"]
    return {path: tuple(leaf.shape) for path, leaf in traverse_util.flatten_dict(abstract).items()}


def _generator_params(reader: TFCheckpointReader, cnum: int, guided: bool, version: int) -> dict:
    label = (f"DeepFill v1 generator (cnum={cnum})" if version == 1
             else f"DeepFill v2 generator (cnum={cnum}, guided={guided})")
    shapes = reader.shapes()
    flat, missing, wrong = {}, [], []
    for path, shape in _generator_shapes(version, cnum, guided).items():
        name = generator_tf_name(path)
        if name not in shapes:
            missing.append(name)
        elif tuple(shapes[name]) != shape:
            wrong.append(f"{name}: file {tuple(shapes[name])}, model {shape}")
        else:
            flat[path] = np.asarray(reader.get(name), np.float32)
    if missing or wrong:
        raise CheckpointError(
            f"{reader.prefix} does not match the {label}: "
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
    return traverse_util.unflatten_dict(flat)


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
        params[f"conv{i}"] = {"conv": {"kernel": kernel, "bias": bias}}
        stats[f"conv{i}"] = {"sn": {"conv/kernel/u": u,
                                    "conv/kernel/sigma": np.asarray(spectral_sigma(kernel, u))}}
    d_cnum = int(params["conv1"]["conv"]["kernel"].shape[-1])
    return {"params": params, "batch_stats": stats}, d_cnum


def _v1_critic_variables(reader: TFCheckpointReader) -> Tuple[Optional[dict], Optional[int]]:
    """DeepFill v1's local and global WGAN critics (RGB), or (None, None) if the file has neither."""
    scope = "discriminator"
    present = [k for k in V1_CRITICS.values() if f"{scope}/{k}/conv1/kernel" in reader]
    if not present:
        return None, None
    out = {}
    for key, sub in V1_CRITICS.items():
        names = {f"conv{i}": f"{scope}/{sub}/conv{i}" for i in range(1, 5)}
        names["dense"] = f"{scope}/dout_{key}_fc"
        params = {}
        for module, base in names.items():
            leaves = {}
            for leaf in ("kernel", "bias"):
                if f"{base}/{leaf}" not in reader:
                    raise CheckpointError(f"{reader.prefix}: DeepFill v1 critics incomplete, "
                                          f"{base}/{leaf} missing (both critics or neither)")
                leaves[leaf] = np.asarray(reader.get(f"{base}/{leaf}"), np.float32)
            if module == "conv1":  # BGR -> RGB input channels
                leaves["kernel"] = leaves["kernel"][:, :, ::-1, :].copy()
            params[module] = leaves
        out[key] = {"params": params}
    return out, int(out["local"]["params"]["conv1"]["kernel"].shape[-1])


def _discriminator_width(reader: TFCheckpointReader, version: int) -> Optional[int]:
    """d_cnum as the file's discriminator (v2) or local critic (v1) conv1 has it, or None."""
    name = (f"{D_SCOPE}/conv1/kernel" if version == 2
            else f"discriminator/{V1_CRITICS['local']}/conv1/kernel")
    return int(reader.shapes()[name][-1]) if name in reader else None


def from_tf_checkpoint(path, version: Optional[int] = None,
                       discriminator: bool = True) -> DeepFillWeights:
    """Read an official DeepFill TF1 checkpoint (directory with a `checkpoint` file, or a prefix
    such as '.../snap-1000000') into RGB Flax variables. See the module docstring.
    `version` None detects v1 or v2 from the variables; 1 or 2 insists on that version.
    `discriminator=False` leaves the discriminator out (`discriminator` None; inference needs the
    generator only, and the SN-PatchGAN's sigmas cost a compiled program per layer shape);
    `d_cnum` is still read from the file."""
    if version not in (None, 1, 2):
        raise ValueError(f"from_tf_checkpoint: version must be 1, 2 or None (detect), got {version!r}")
    path = os.fspath(path)
    if not os.path.exists(path) and not os.path.exists(path + ".index"):
        raise FileNotFoundError(
            f"DeepFill checkpoint not found: {path} (expected a directory holding `checkpoint`, "
            f"<prefix>.index and <prefix>.data-00000-of-00001, or the <prefix> itself)")
    reader = TFCheckpointReader(path)
    version = detect_version(reader) if version is None else version
    cnum, guided = _detect_generator(reader, version)
    generator = {"params": _generator_params(reader, cnum, guided, version)}
    if not discriminator:
        d_variables, d_cnum = None, _discriminator_width(reader, version)
    elif version == 1:
        d_variables, d_cnum = _v1_critic_variables(reader)
    else:
        d_variables, d_cnum = _discriminator_variables(reader)
    step = int(reader.get("global_step")) if "global_step" in reader else None
    return DeepFillWeights(generator=generator, discriminator=d_variables, cnum=cnum,
                           guided=guided, d_cnum=d_cnum, step=step, prefix=reader.prefix,
                           version=version)


def is_tf_checkpoint(path) -> bool:
    """True for what can only be a TF1 checkpoint, complete or not: a directory holding
    `checkpoint`, an .index file or a `.data-NNNNN-of-NNNNN` shard, a prefix with a
    `<prefix>.index` beside it, or an .index or .data file itself."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return any(n == "checkpoint" or n.endswith(".index") or DATA_SHARD.match(n)
                   for n in os.listdir(path))
    return (path.endswith(".index") or bool(DATA_SHARD.match(os.path.basename(path)))
            or os.path.isfile(path + ".index"))


def tf_checkpoint_version(path) -> Optional[int]:
    """1 or 2 for an official DeepFill v1 / v2 TF checkpoint (read from the generator's first two
    kernel shapes: v2's gated conv2 reads half of conv1's outputs), None for anything that is not
    a TF checkpoint or is a readable TF checkpoint of another model. A TF checkpoint that cannot be
    read (its .index missing, cut short or corrupt) raises CheckpointError naming the file, so
    that `Inpainter.load` reports it rather than "unrecognised weights"."""
    if not is_tf_checkpoint(path):
        return None
    try:
        reader = TFCheckpointReader(os.fspath(path))
    except CheckpointError:
        raise
    except (OSError, ValueError, struct.error, IndexError) as e:
        raise CheckpointError(f"{os.fspath(path)} looks like a TF checkpoint but its index cannot "
                              f"be read ({type(e).__name__}: {e}); fetch the checkpoint again") from e
    try:
        return detect_version(reader)
    except CheckpointError:  # a readable checkpoint of another model
        return None
