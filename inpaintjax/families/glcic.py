"""Globally and Locally Consistent Image Completion (Iizuka, Simo-Serra and Ishikawa, SIGGRAPH
2017): a completion network trained with a weighted MSE and a global + local context
discriminator.

Networks: `inpaintjax.models.glcic.CompletionNetwork` (the released .t7 layout) and
`GlobalLocalDiscriminator`. The completion network takes the image minus the model's mean pixel
(`model.mean`, RGB) with the hole set to 0 (so the hole holds the mean pixel, as the paper fills
holes and `inpaint.lua` builds the input) and the mask, and returns absolute RGB in [0, 1]; both
discriminator branches see RGB in [0, 1] (the global one the whole image, the local one the
`model.local_size` square centred on the hole's bounding box: the batch's `hole_box` field,
cropped as DeepFill v1's local critic, clamped inside the image).

Training is the paper's three phases, each a config variant (`phase`) chained by `init_from`
(the authors released no training code; configs/glcic.py gives the numbers):
  completion      L = mean over all pixels and channels of (mask * (C(x) - x))^2      (Tc steps)
  discriminator   L_D = (BCE(D(x), 1) + BCE(D(x~), 0)) / 2 with x~ = C(x) in the hole and x
                  outside; the completion network is frozen (its forward normalises with
                  the batch's statistics, as in training; nothing of it is updated)  (Td steps)
  joint           each step one discriminator update as above, then one completion update on
                  L = MSE + loss.alpha * BCE(D(x~), 1) (alpha = 0.0004) against the updated D
The local crop of the real image is taken at the same box as the fake's (the box's position says
nothing about which is real). Optimiser: ADADELTA (`optim.name = 'adadelta'`, rho 0.9, eps 1e-6,
rate 1) as the paper, or Adam (`'adam'`, families/common.py). BatchNorm everywhere uses the global
batch's statistics in training (the discriminator's over the real and the completed images of
the step together, in one pass), the running ones at inference.

Inference: `inpaint` composites the network's output into the known pixels (jittable; sides that
are not multiples of 4 are mirrored out to them for the network and cropped back); `predict` (host
side, what `Inpainter` calls, with the image at its own size: `size_multiple` is 1) follows
`inpaint.lua`: the image and mask take its two resizes with Torch's `image.scale` bilinear rule,
by inference.maxdim / max(H, W) when the longer side is above `inference.maxdim` (600), then to
sides rounded to multiples of 4 (`lua_inputs`); the mask is thresholded at 0.2, the image
inpainted, and the fill scaled back to the image's size; `inference.postprocess` (off by default,
as the 2020 release) runs OpenCV's Telea fill (radius 1) and Poisson `seamlessClone`
(NORMAL_CLONE) on the composite at the network's size, as inpaint.lua, before the scaling back
(`poisson_postprocess`).

Config keys read (configs/glcic.py): phase, model.{width, d_width, local_size, mean, bn_eps},
loss.alpha, optim.{name, lr, rho, eps, b1, b2, schedule, ...}, inference.{maxdim, postprocess},
mask.generator, compute_dtype, ema_decay.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from inpaintjax.config import base_config
from inpaintjax.convert import glcic as convert
from inpaintjax.data import fields
from inpaintjax.families import common
from inpaintjax.families.base import Batch, Family, Metrics, WeightFormat, register
from inpaintjax.models.glcic import CompletionNetwork, GlobalLocalDiscriminator, completion_input

log = logging.getLogger(__name__)

PHASES = ("completion", "discriminator", "joint")
OPTIMIZERS = ("adadelta", "adam")


@flax.struct.dataclass
class GLCICState:
    """Train state: completion network (g_*) and discriminator (d_*) parameters, BatchNorm
    statistics and optimiser states, and the completion network's EMA (None when off)."""

    step: jax.Array
    g_params: Any
    g_stats: Any
    d_params: Any
    d_stats: Any
    g_opt_state: Any
    d_opt_state: Any
    g_ema: Any = None


def default_config(width: int = 64) -> ml_collections.ConfigDict:
    """The released model's and the paper's settings on the base config; training runs use
    configs/glcic.py."""
    c = base_config()
    c.family = "glcic"
    c.phase = "joint"
    c.model.width = width            # conv1's channels (64 in the release)
    c.model.d_width = 64             # both discriminator branches' conv1 channels
    c.model.local_size = 128         # local discriminator's crop; 0 = half the image side
    c.model.mean = convert.PLACES2_MEAN
    c.model.bn_eps = 1e-5
    c.loss.alpha = 0.0004
    c.optim.name = "adadelta"
    c.optim.lr = 1.0
    c.optim.rho = 0.9
    c.optim.eps = 1e-6
    c.mask.generator = "glcic_box"
    c.mask.per_batch = False
    c.inference = ml_collections.ConfigDict()
    c.inference.maxdim = 600         # inpaint.lua's --maxdim (0: never scale down)
    c.inference.postprocess = False  # inpaint.lua's --postproc (OpenCV Telea + seamlessClone)
    return c


def _load_official(path: str):
    w = convert.load(path)
    c = default_config(width=w.width)
    c.model.mean = tuple(w.mean)
    c.model.bn_eps = w.bn_eps
    return c, w.variables


def make_optimizer(optim, num_steps: int) -> optax.GradientTransformation:
    """ADADELTA (optim.lr, rho, eps; the rate in the optimiser state) or Adam (common)."""
    name = str(optim.name)
    if name == "adam":
        return common.make_optimizer(optim, num_steps)
    if name != "adadelta":
        raise ValueError(f"config.optim.name must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    schedule = common.learning_rate_schedule(optim, num_steps)
    return optax.inject_hyperparams(optax.adadelta)(
        learning_rate=schedule, rho=float(optim.rho), eps=float(optim.eps))


def _bce_logits(logits, target: float):
    """Mean binary cross-entropy of sigmoid(logits) against a constant target (stable form)."""
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)))


@register
class GLCIC(Family):
    """The GLCIC family (see the module docstring)."""

    name = "glcic"
    # 1, not the network's 4: `inpaint.lua` brings any image to multiples of 4 by resizing it, so
    # the Inpainter must hand `predict` the image at its own size, unpadded (a mirrored border would
    # enter the resize and the scale factor); `inpaint` takes any size too (it pads to multiples of
    # 4 by reflection for the evaluation, which calls it directly)
    size_multiple = 1
    weight_formats = (WeightFormat("torch7-or-state-dict", lambda p: convert.detect_format(p) is not None,
                                   _load_official),)
    warm_start_paths = ("g_params", "g_stats", "d_params", "d_stats")
    ema_paths = (("g_ema", "g_params"),)

    def __init__(self, config):
        super().__init__(config)
        m = config.model
        self.phase = str(config.phase)
        if self.phase not in PHASES:
            raise ValueError(f"config.phase must be one of {', '.join(PHASES)}, got {self.phase!r}")
        dtype = common.compute_dtype(config)
        self.mean = tuple(float(v) for v in m.mean)
        if len(self.mean) != 3:
            raise ValueError(f"config.model.mean must be 3 floats (RGB), got {self.mean}")
        self.net = CompletionNetwork(width=int(m.width),
                                     bn_eps=float(m.bn_eps), dtype=dtype)
        self.disc = GlobalLocalDiscriminator(width=int(m.d_width), dtype=dtype)
        self.local_size = int(m.local_size)
        self.alpha = float(config.loss.alpha)
        steps = int(config.num_steps)
        self.g_tx = make_optimizer(config.optim, steps)
        self.d_tx = make_optimizer(config.optim, steps)
        self.ema_decay = common.ema_decay(config)
        common.no_remat(config, "glcic")
        self.maxdim = int(config.inference.maxdim)
        self.postprocess = bool(config.inference.postprocess)

    @classmethod
    def default_config(cls) -> ml_collections.ConfigDict:
        return default_config()

    def batch_spec(self) -> dict:
        spec = fields.default_spec()
        spec["hole_box"] = fields.hole_box()
        return spec

    # -- pieces ---------------------------------------------------------------------------------
    def _crop(self, x, boxes):
        size = self.local_size or min(x.shape[1], x.shape[2]) // 2
        return common.crop_boxes(x, boxes, size)

    def _complete(self, g_params, g_stats, image, mask, train: bool):
        """(network output [B,H,W,3] in [0,1], updated BatchNorm statistics)."""
        x = completion_input(image, mask, self.mean)
        if not train:
            return self.net.apply({"params": g_params, "batch_stats": g_stats}, x), g_stats
        out, upd = self.net.apply({"params": g_params, "batch_stats": g_stats}, x, train=True,
                                  mutable=["batch_stats"])
        return out, upd["batch_stats"]

    def _disc(self, d_params, d_stats, real, fake, boxes):
        """(real logits [B], fake logits [B], updated statistics): one discriminator pass over
        the real and the completed images together, so that its BatchNorm statistics are those
        of both (two separate passes would standardise each batch on its own and hide what
        tells them apart)."""
        both = jnp.concatenate([real, fake])
        boxes = jnp.concatenate([boxes, boxes])
        logits, upd = self.disc.apply({"params": d_params, "batch_stats": d_stats}, both,
                                      self._crop(both, boxes), train=True, mutable=["batch_stats"])
        b = real.shape[0]
        return logits[:b], logits[b:], upd["batch_stats"]

    @staticmethod
    def _mse(out, image, mask):
        return jnp.mean(jnp.square((out - image) * mask))

    def _d_update(self, state, image, fake, boxes):
        """One discriminator update on real `image` and completed `fake` (no gradient to C)."""
        fake = jax.lax.stop_gradient(fake)

        def loss_fn(d_params):
            real_logits, fake_logits, stats = self._disc(d_params, state.d_stats, image, fake, boxes)
            loss = 0.5 * (_bce_logits(real_logits, 1.0) + _bce_logits(fake_logits, 0.0))
            return loss, (stats, real_logits, fake_logits)

        (loss, (stats, real_logits, fake_logits)), grads = jax.value_and_grad(
            loss_fn, has_aux=True)(state.d_params)
        d_params, d_opt_state = common.apply_gradients(self.d_tx, grads, state.d_opt_state,
                                                       state.d_params)
        logs = {"d/loss": loss, "d/real": jnp.mean(jax.nn.sigmoid(real_logits)),
                "d/fake": jnp.mean(jax.nn.sigmoid(fake_logits)),
                "d/grad_norm": optax.tree.norm(grads), "d/lr": common.learning_rate(d_opt_state)}
        return state.replace(d_params=d_params, d_stats=stats, d_opt_state=d_opt_state), logs

    # -- Family interface -----------------------------------------------------------------------
    def init_state(self, rng: jax.Array, batch: Batch) -> GLCICState:
        image = batch["image"].astype(jnp.float32)
        mask = batch["mask"].astype(jnp.float32)
        g_rng, d_rng = jax.random.split(common.param_key(rng))
        g_vars = self.net.init(g_rng, completion_input(image, mask, self.mean))
        d_vars = self.disc.init(d_rng, image, self._crop(image, batch["hole_box"]))
        return GLCICState(
            step=jnp.zeros((), jnp.int32), g_params=g_vars["params"], g_stats=g_vars["batch_stats"],
            d_params=d_vars["params"], d_stats=d_vars["batch_stats"],
            g_opt_state=self.g_tx.init(g_vars["params"]), d_opt_state=self.d_tx.init(d_vars["params"]),
            g_ema=common.ema_init(g_vars["params"], self.ema_decay))

    def train_step(self, state: GLCICState, batch: Batch, rng: jax.Array,
                   frozen: Any) -> tuple[GLCICState, Metrics]:
        del rng, frozen  # masks come from the pipeline; nothing here is random
        image = batch["image"].astype(jnp.float32)
        mask = batch["mask"].astype(jnp.float32)
        boxes = batch["hole_box"]
        metrics: dict = {}
        if self.phase == "discriminator":
            out, _ = self._complete(state.g_params, state.g_stats, image, mask, train=True)
            state, metrics = self._d_update(state, image, out * mask + image * (1.0 - mask), boxes)
            return state.replace(step=state.step + 1), metrics

        # one completion forward: its output feeds the discriminator update (joint phase), then
        # the completion loss is back-propagated through the same forward
        (out, g_stats), g_vjp = jax.vjp(
            lambda p: self._complete(p, state.g_stats, image, mask, train=True), state.g_params)
        fake = out * mask + image * (1.0 - mask)
        if self.phase == "joint":
            state, metrics = self._d_update(state, image, fake, boxes)

        def g_loss(out):
            mse = self._mse(out, image, mask)
            if self.phase != "joint":
                return mse, {"g/mse": mse}
            completed = out * mask + image * (1.0 - mask)
            _, logits, _ = self._disc(state.d_params, state.d_stats, image, completed, boxes)
            gan = _bce_logits(logits, 1.0)
            return mse + self.alpha * gan, {"g/mse": mse, "g/gan": gan}

        (loss, g_logs), d_out = jax.value_and_grad(g_loss, has_aux=True)(out)
        (g_grads,) = g_vjp((d_out, jax.tree.map(jnp.zeros_like, g_stats)))
        g_params, g_opt_state = common.apply_gradients(self.g_tx, g_grads, state.g_opt_state,
                                                       state.g_params)
        state = state.replace(step=state.step + 1, g_params=g_params, g_stats=g_stats,
                              g_opt_state=g_opt_state,
                              g_ema=common.ema_update(state.g_ema, g_params, self.ema_decay))
        metrics.update(g_logs)
        metrics.update({"g/loss": loss, "g/grad_norm": optax.tree.norm(g_grads),
                        "g/lr": common.learning_rate(g_opt_state)})
        return state, metrics

    def inference_variables(self, state: GLCICState) -> Any:
        return {"params": state.g_params if state.g_ema is None else state.g_ema,
                "batch_stats": state.g_stats}

    def inpaint(self, variables: Any, inputs: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """inputs: image [B,H,W,3] in [0,1], mask [B,H,W,1] (1 = hole), any H and W: sides that
        are not multiples of 4 are padded at the bottom/right by mirror reflection for the network
        and cropped back (`predict`, the Inpainter's route, resizes to multiples of 4 instead, as
        inpaint.lua). Returns 'output' (the network's hole pixels, known pixels exactly the input)
        and 'raw' (the whole network output), both [B,H,W,3] in [0, 1]."""
        image = inputs["image"].astype(jnp.float32)
        mask = inputs["mask"].astype(jnp.float32)
        h, w = image.shape[1:3]
        pad = ((0, 0), (0, -h % 4), (0, -w % 4), (0, 0))
        x = completion_input(image, mask, self.mean)
        if pad[1][1] or pad[2][1]:
            x = jnp.pad(x, pad, mode="reflect" if min(h, w) > 1 else "edge")
        raw = self.net.apply(variables, x)[:, :h, :w]
        return {"output": jnp.where(mask > 0.5, raw, image), "raw": raw}

    def predict(self, fn, variables: Any, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`inpaint.lua` around the jitted `inpaint` (`fn`): bring the image to the network's size
        in inpaint.lua's two resizes (`lua_inputs`), run, scale the fill back, optionally
        post-process (see the module docstring). batch: 'image' [B,H,W,3] in [0,1], 'mask'
        [B,H,W,1], at the image's own size (the Inpainter does not pad for this family)."""
        image = np.asarray(batch["image"], np.float32)
        mask = np.asarray(batch["mask"], np.float32)
        h, w = image.shape[1:3]
        if lua_scaled_size(h, w, self.maxdim) == lua_size(h, w, self.maxdim) == (h, w):
            res = {k: np.asarray(v) for k, v in fn(variables, {"image": image, "mask": mask}).items()}
            if self.postprocess:
                res["output"] = np.stack([poisson_postprocess(o, m[..., 0])
                                          for o, m in zip(res["output"], mask)])
            return res
        small = [lua_inputs(x, m[..., 0], self.maxdim) for x, m in zip(image, mask)]
        img_s = np.stack([x for x, _ in small])
        msk_s = np.stack([m for _, m in small])
        raw_s = np.asarray(fn(variables, {"image": img_s, "mask": msk_s})["raw"])
        fill_s = raw_s
        if self.postprocess:  # as inpaint.lua: on the composite at the network's size
            fill_s = np.stack([poisson_postprocess(o, m[..., 0]) for o, m in
                               zip(np.where(msk_s > 0.5, raw_s, img_s), msk_s)])
        raw = np.stack([torch_image_scale(r, h, w) for r in raw_s])
        fill = raw if fill_s is raw_s else np.stack([torch_image_scale(f, h, w) for f in fill_s])
        return {"output": np.where(mask > 0.5, fill, image), "raw": raw}


# -- inpaint.lua's pre- and post-processing (host side, NumPy / OpenCV) -------------------------------
def _scale_axis(x: np.ndarray, axis: int, dst_len: int) -> np.ndarray:
    """Torch7 image's `Main_scaleLinear_rowcol` along one axis, in float32 like the C code:
    up-scaling interpolates linearly with the ends aligned (the last sample copied), down-scaling
    averages each output cell's span of input samples with fractional weights at its ends."""
    x = np.moveaxis(np.asarray(x, np.float32), axis, 0)
    src_len = x.shape[0]
    if dst_len == src_len:
        out = x.copy()
    elif dst_len > src_len:
        out = np.empty((dst_len,) + x.shape[1:], np.float32)
        if src_len == 1:
            out[:] = x[0]
        else:
            scale = np.float32(src_len - 1) / np.float32(dst_len - 1)
            for di in range(dst_len - 1):
                si_f = np.float32(di) * scale
                si_i = int(si_f)
                f = np.float32(si_f - np.float32(si_i))
                out[di] = (np.float32(1) - f) * x[si_i] + f * x[si_i + 1]
            out[-1] = x[-1]
    else:
        out = np.empty((dst_len,) + x.shape[1:], np.float32)
        scale = np.float32(src_len) / np.float32(dst_len)
        si0_i, si0_f = 0, np.float32(0)
        for di in range(dst_len):
            si1 = np.float32(di + 1) * scale
            si1_i = int(si1)
            si1_f = np.float32(si1 - np.float32(si1_i))
            acc = (np.float32(1) - si0_f) * x[si0_i]
            n = np.float32(1) - si0_f
            for si in range(si0_i + 1, si1_i):
                acc = acc + x[si]
                n = n + np.float32(1)
            if si1_i < src_len:
                acc = acc + si1_f * x[si1_i]
                n = n + si1_f
            out[di] = acc / n
            si0_i, si0_f = si1_i, si1_f
    return np.moveaxis(out, 0, axis)


def torch_image_scale(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Torch7 `image.scale(src, width, height)` in its default 'bilinear' mode for x [H, W, C]
    (or [H, W]): rows (the width) first, then columns, each by `_scale_axis`. float32."""
    return _scale_axis(_scale_axis(x, 1, int(width)), 0, int(height))


def lua_scaled_size(h: int, w: int, maxdim: int) -> tuple[int, int]:
    """`inpaint.lua`'s first resize: `image.scale(I, '*maxdim/hwmax')` when the longer side hwmax
    is above maxdim, i.e. each side times maxdim / hwmax with the fraction dropped (as Torch does
    when it makes a tensor of a fractional size; at least 1); (h, w) otherwise, and for maxdim 0."""
    if maxdim and max(h, w) > maxdim:
        hwmax = max(h, w)
        return max(int(h * maxdim / hwmax), 1), max(int(w * maxdim / hwmax), 1)
    return h, w


def lua_size(h: int, w: int, maxdim: int) -> tuple[int, int]:
    """The size `inpaint.lua` runs the network at: `lua_scaled_size`, then each side rounded to
    the nearest multiple of 4 (`torch.round(s / 4) * 4`, halves away from zero; at least 4 here,
    where the Lua code would scale a side under 2 px to 1). maxdim 0: only the rounding."""
    h, w = lua_scaled_size(h, w, maxdim)
    return (max(4, int(math.floor(h / 4 + 0.5)) * 4), max(4, int(math.floor(w / 4 + 0.5)) * 4))


def lua_inputs(image: np.ndarray, mask: np.ndarray, maxdim: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """`inpaint.lua`'s input preparation for one image: image [H, W, 3] in [0, 1], mask [H, W]
    (values in [0, 1], 1 = hole) -> (image [h, w, 3], mask [h, w, 1] in {0, 1}) at `lua_size`.
    Two resizes with Torch's bilinear rule, as the Lua code: to `lua_scaled_size` when the image
    is above maxdim, then to the multiples of 4; the mask the same way, then thresholded at 0.2."""
    h, w = image.shape[:2]
    first = lua_scaled_size(h, w, maxdim)
    if first != (h, w):
        image = torch_image_scale(image, *first)
        mask = torch_image_scale(mask, *first)
    th, tw = lua_size(*first, 0)
    image = torch_image_scale(image, th, tw)
    mask = (torch_image_scale(mask, th, tw) >= 0.2).astype(np.float32)
    return image, mask.reshape(th, tw, 1)


def poisson_postprocess(out: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """`inpaint.lua --postproc`: OpenCV's Telea fill (radius 1) of the hole of the composite `out`,
    then `seamlessClone(src=out, dst=that, mask, p, NORMAL_CLONE)` with p the centre of the hole's
    bounding box (as the Lua code computes it). out [H, W, 3] RGB in [0, 1], hole [H, W] (1 =
    hole) -> [H, W, 3] float32 in [0, 1] (8-bit steps, as OpenCV works on 8-bit images).

    seamlessClone clears the mask's outermost ring of pixels and fails (cv2.error, where
    inpaint.lua would stop) when what is left has a bounding box under 3 px high or wide; for such
    a hole the clone is skipped, with a logged warning, and the Telea fill is the result (at 3 px
    the clone leaves the Telea fill within one 8-bit step: measured on noise)."""
    try:
        import cv2
    except ImportError as e:
        raise ImportError("config.inference.postprocess needs OpenCV: pip install "
                          "opencv-python-headless (or inpaintjax[baselines])") from e
    hole = np.asarray(hole) > 0.5
    if not hole.any():
        return np.asarray(out, np.float32)
    rows, cols = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
    p = (int((cols[0] + cols[-1]) // 2), int((rows[0] + rows[-1]) // 2))
    src = cv2.cvtColor(np.round(np.clip(out, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    mask8 = hole.astype(np.uint8) * 255
    dst = cv2.inpaint(src, mask8, 1, cv2.INPAINT_TELEA)
    inner = hole[1:-1, 1:-1]                   # what seamlessClone keeps of the mask
    r_in, c_in = np.flatnonzero(inner.any(axis=1)), np.flatnonzero(inner.any(axis=0))
    box = (r_in[-1] - r_in[0] + 1, c_in[-1] - c_in[0] + 1) if inner.any() else None
    if box is not None and min(box) < 3:
        log.warning("GLCIC post-processing: the hole's bounding box is %dx%d px (%dx%d inside the "
                    "image's outermost ring), thinner than the 3 px OpenCV's seamlessClone needs; "
                    "kept the Telea fill without the Poisson blend", rows[-1] - rows[0] + 1,
                    cols[-1] - cols[0] + 1, *box)
        blended = dst
    else:
        blended = cv2.seamlessClone(src, dst, mask8, p, cv2.NORMAL_CLONE)
    return cv2.cvtColor(blended, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
