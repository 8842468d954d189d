"""EdgeConnect (Nazeri et al., "EdgeConnect: Generative Image Inpainting with Adversarial Edge
Learning", 2019; knazeri/edge-connect).

Two stages, each a generator with its own patch discriminator (`inpaintjax.models.edgeconnect`):
the edge model G1/D1 completes the Canny edge map inside the hole from [grey with white holes,
known edges, mask]; the inpainting model G2/D2 paints the RGB hole from [RGB with white holes,
edges]. Images are in [0, 1] everywhere (the networks' own range), so no conversion at this
boundary. The training modes of the original (`--model 1..4`) are config variants
(configs/edgeconnect.py) chained by `init_from`:

  mode 1  edge model alone (G1, D1) on the ground truth's Canny edges;
  mode 2  inpainting model alone (G2, D2) fed the ground truth's Canny edges;
  mode 3  inpainting model fed the frozen G1's edges inside the hole (ground-truth edges outside);
          start from a mode-1 run (`init_from`, copies `edge`);
  mode 4  both models trained together; G2's loss also reaches G1 through the edge map; start
          from a mode-2 run that was itself started from the mode-1 run (it carries that edge
          model untouched), copying `edge` and `inpaint`.

Every state holds all four networks (`edge`, `inpaint`: {'generator', 'discriminator'} Flax
variables), as the original's checkpoint folder holds all four files whatever the mode trained;
only the trained networks have optimiser states. `init_from` copies networks, never optimiser
states: the original saves none, so each of its stages starts its Adam moments afresh.

Losses per iteration (src/models.py `process`; weights from the released config.yml):
  D1 = (adv(D1(grey, edges), real) + adv(D1(grey, G1 out), fake)) / 2
  G1 = adv(D1(grey, G1 out), real) + 10 * sum_blocks mean|D1 feats(fake) - D1 feats(real)|
  D2 = (adv(D2(image), real) + adv(D2(G2 out), fake)) / 2
  G2 = 0.1 adv(D2(G2 out), real) + mean|G2 out - image| / mean(mask)
       + 0.1 perceptual(VGG-19 relu{1..5}_1) + 250 style(VGG-19 relu2_2, 3_4, 4_4, 5_2 of x * mask)
with `adv` the non-saturating GAN by default (lsgan, hinge as options). The discriminators see the
raw generator outputs (not composited). As the original, one forward pass gives both losses and
the generator's adversarial and feature-matching terms use the discriminator's parameters from
before this step's discriminator update. Spectral norm runs one power iteration per training call
of an SN network, threaded in the original's order (D on real, on fake, then for the generator).
Adam betas (0, 0.9), generators lr 1e-4, discriminators 0.1 of it.

Differences from the original (each because the framework states it once, not per family):
* mode 3 runs the frozen G1 in evaluation mode (stored spectral-norm vectors); the original
  leaves it in training mode, so its power iteration drifts the vectors during the run, but never
  saves them (mode 3 saves the inpainting model only);
* edge precision / recall are computed per image (the original pools a batch);
* `ema_decay > 0` (off by default, as the original has none) keeps an EMA of each trained
  generator's parameters, which evaluation and export then use. The default `init_from` copies
  the raw networks; to freeze a mode-1 run's EMA edge model in mode 3, set
  `init_from_paths='edge,edge.generator.params=ema.edge'`.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, Optional

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from inpaintjax import losses, metrics
from inpaintjax.families import common
from inpaintjax.families.base import (Batch, Family, FrozenWeightsError, Metrics, WeightFormat,
                                      register)
from inpaintjax.models.edgeconnect import EdgeConnectDiscriminator, EdgeGenerator, InpaintGenerator

MODES = (1, 2, 3, 4)
VGG_LAYERS = tuple(sorted(set(losses.EDGECONNECT_PERCEPTUAL_LAYERS + losses.EDGECONNECT_STYLE_LAYERS)))


@flax.struct.dataclass
class EdgeConnectState:
    """Train state. edge / inpaint: {'generator': variables, 'discriminator': variables} (Flax
    variable dicts; spectral-norm vectors u, v in 'batch_stats'); opt: Adam states of the networks
    this mode trains, keyed 'edge_generator', 'edge_discriminator', 'inpaint_generator',
    'inpaint_discriminator'; ema: {'edge' and / or 'inpaint': the EMA of that trained generator's
    parameters} (None when config.ema_decay is 0)."""

    step: jax.Array
    edge: Any
    inpaint: Any
    opt: Any
    ema: Any = None


def default_config(mode: int = 3) -> ml_collections.ConfigDict:
    """The released model's settings (config.yml.example) on top of the base config. Mode 3 is how
    the released checkpoints are used (edge model, then inpainting model)."""
    from inpaintjax.config import base_config
    c = base_config()
    c.family = "edgeconnect"
    c.model.mode = int(mode)
    c.model.residual_blocks = 8
    c.model.edge_threshold = 0.5       # EDGE_THRESHOLD: precision / recall of predicted edges
    c.model.test_composite_edges = False  # test(): G2 gets the raw G1 map (True: known edges kept)
    c.loss.gan = "nsgan"               # GAN_LOSS: nsgan | lsgan | hinge
    c.loss.fm_weight = 10.0            # FM_LOSS_WEIGHT (edge model)
    c.loss.l1_weight = 1.0             # L1_LOSS_WEIGHT
    c.loss.content_weight = 0.1        # CONTENT_LOSS_WEIGHT (VGG-19 perceptual)
    c.loss.style_weight = 250.0        # STYLE_LOSS_WEIGHT
    c.loss.adv_weight = 0.1            # INPAINT_ADV_LOSS_WEIGHT (the edge model's is 1)
    c.loss.vgg_weights = ""            # torchvision vgg19 state dict (or Keras' VGG-19 notop h5)
    c.loss.vgg_widths = (64, 128, 256, 512, 512)
    c.optim.lr = 1e-4                  # LR
    c.optim.b1 = 0.0                   # BETA1
    c.optim.b2 = 0.9                   # BETA2
    c.optim.d2g_lr = 0.1               # D2G_LR: discriminators' rate / generators' rate
    c.data.edge_sigma = 2.0            # SIGMA (0: random 1..4 per image, -1: no edges)
    c.data.flip = True
    c.data.crop = "resize"             # the original centre-crops and resizes to INPUT_SIZE
    c.data.image_size = 256
    c.mask.generator = "irregular_random_walk"  # stand-in for the irregular mask files (MASK 3)
    c.mask.per_batch = False
    c.eval.image_size = 256
    # the library's frozen evaluation set needs generators that reach every hole-area bucket
    c.eval.mask_generator = "deepfill_v2_strokes,deepfill_v2_training,irregular_random_walk"
    c.batch_size = 8
    c.num_steps = 2_000_000
    c.checkpoint_every = 1000          # SAVE_INTERVAL
    c.log_every = 10                   # LOG_INTERVAL
    return c


def _read_sigma(folder: str) -> Optional[float]:
    """SIGMA from the folder's config.yml (the original copies it there), if present."""
    path = os.path.join(folder, "config.yml")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"\s*SIGMA\s*:\s*(-?[0-9.]+)", line)
            if m:
                return float(m.group(1))
    return None


def _load_official(folder: str):
    from inpaintjax.convert.edgeconnect import from_torch
    w = from_torch(folder)
    has_edge, has_inpaint = "edge_generator" in w, "inpaint_generator" in w
    if not (has_edge or has_inpaint):
        raise FileNotFoundError(f"{folder}: holds discriminators only; inference needs "
                                "EdgeModel_gen.pth and/or InpaintingModel_gen.pth")
    mode = 3 if has_edge and has_inpaint else (1 if has_edge else 2)
    c = default_config(mode)
    sigma = _read_sigma(folder)
    if sigma is not None:
        c.data.edge_sigma = sigma
    variables = {}
    if has_edge:
        variables["edge"] = w["edge_generator"]
    if has_inpaint:
        variables["inpaint"] = w["inpaint_generator"]
    return c, variables


def _is_official(path: str) -> bool:
    from inpaintjax.convert.edgeconnect import FILES, is_checkpoint_folder
    return is_checkpoint_folder(path) and any(
        os.path.exists(os.path.join(path, FILES[k][0])) for k in ("edge_generator", "inpaint_generator"))


def _apply_sn(module, variables, x, train: bool):
    """module(x) and its variables after the call (spectral-norm vectors updated when training)."""
    if train and "batch_stats" in variables:
        out, upd = module.apply(variables, x, train=True, mutable=["batch_stats"])
        return out, {**variables, "batch_stats": upd["batch_stats"]}
    return module.apply(variables, x), variables


@register
class EdgeConnect(Family):
    """The EdgeConnect family (see the module docstring)."""

    name = "edgeconnect"
    size_multiple = 4
    weight_formats = (WeightFormat("edgeconnect-torch-folder", _is_official, _load_official),)

    def __init__(self, config):
        super().__init__(config)
        m = config.model
        self.mode = int(m.mode)
        if self.mode not in MODES:
            raise ValueError(f"config.model.mode must be one of {MODES} (1 edge model, 2 inpainting "
                             f"model, 3 inpainting model on G1's edges, 4 joint), got {m.mode!r}")
        self.ema_decay = common.ema_decay(config)
        self.gan = str(config.loss.gan)
        if self.gan not in losses.GAN_LOSSES:
            raise ValueError(f"config.loss.gan must be one of {losses.GAN_LOSSES}, got {self.gan!r}")
        dtype = common.compute_dtype(config)
        blocks = int(m.get("residual_blocks", 8))
        sigmoid = self.gan != "hinge"
        self.edge_generator = EdgeGenerator(residual_blocks=blocks, dtype=dtype)
        self.inpaint_generator = InpaintGenerator(residual_blocks=blocks, dtype=dtype)
        self.edge_discriminator = EdgeConnectDiscriminator(use_sigmoid=sigmoid, dtype=dtype)
        self.inpaint_discriminator = EdgeConnectDiscriminator(use_sigmoid=sigmoid, dtype=dtype)
        steps = int(config.num_steps)
        lr = float(config.optim.lr)
        self.g_tx = common.make_optimizer(config.optim, steps)
        self.d_tx = common.make_optimizer(config.optim, steps, lr=lr * float(config.optim.get("d2g_lr", 0.1)))
        self.trains_edge = self.mode in (1, 4)
        self.trains_inpaint = self.mode in (2, 3, 4)
        # init_from copies networks only (see the module docstring); a mode-2 run started from a
        # mode-1 run carries that edge model along for mode 4
        self.warm_start_paths = ("edge", "inpaint") if self.mode == 4 else ("edge",)
        self.uses_vgg = self.trains_inpaint and (float(config.loss.content_weight) != 0.0
                                                 or float(config.loss.style_weight) != 0.0)

    @classmethod
    def default_config(cls) -> ml_collections.ConfigDict:
        return default_config()

    def batch_spec(self) -> dict:
        from inpaintjax.data import fields
        spec = fields.default_spec()
        spec["grey"] = fields.grey()
        spec["edges"] = fields.canny_edges(float(self.config.data.get("edge_sigma", 2.0)))
        return spec

    def load_frozen(self) -> Any:
        """VGG-19 for the perceptual and style losses (modes 2-4, unless both weights are 0), from
        config.loss.vgg_weights."""
        if not self.uses_vgg:
            return {}
        from inpaintjax.models import vgg
        path = str(self.config.loss.get("vgg_weights", ""))
        if not path or not os.path.isfile(path):
            raise FrozenWeightsError(
                f"config.loss.vgg_weights={path!r}: EdgeConnect's perceptual and style losses need "
                f"VGG-19 weights; get {vgg.where_to_get(19)} (the original uses torchvision's, fed "
                "[0, 1] images without ImageNet normalisation)")
        try:
            variables = vgg.load_weights(path, depth=19, widths=tuple(self.config.loss.vgg_widths))
        except vgg.VGGWeightsError as e:
            raise FrozenWeightsError(str(e)) from e
        return {"vgg": variables}

    # -- networks' inputs -----------------------------------------------------------------------
    @staticmethod
    def _edge_input(grey, edges, mask):
        return jnp.concatenate([grey * (1.0 - mask) + mask, edges * (1.0 - mask), mask], axis=-1)

    @staticmethod
    def _inpaint_input(image, edges, mask):
        return jnp.concatenate([image * (1.0 - mask) + mask, edges], axis=-1)

    def _vgg(self, frozen, x):
        from inpaintjax.models import vgg
        f = vgg.feature_fn(19, VGG_LAYERS, widths=tuple(self.config.loss.vgg_widths),
                           dtype=common.compute_dtype(self.config))
        return f(frozen["vgg"], x)

    # -- Family interface -----------------------------------------------------------------------
    def init_state(self, rng: jax.Array, batch: Batch) -> EdgeConnectState:
        image = batch["image"].astype(jnp.float32)
        mask = batch["mask"].astype(jnp.float32)
        grey = batch["grey"].astype(jnp.float32)
        edges = batch["edges"].astype(jnp.float32)
        k = jax.random.split(common.param_key(rng), 4)
        edge = {"generator": self.edge_generator.init(k[0], self._edge_input(grey, edges, mask)),
                "discriminator": self.edge_discriminator.init(k[1], jnp.concatenate([grey, edges], -1))}
        inpaint = {"generator": self.inpaint_generator.init(k[2], self._inpaint_input(image, edges, mask)),
                   "discriminator": self.inpaint_discriminator.init(k[3], image)}
        edge, inpaint = (jax.tree.map(jnp.asarray, flax.core.unfreeze(t)) for t in (edge, inpaint))
        opt, generators = {}, {}
        for model, trained in (("edge", self.trains_edge), ("inpaint", self.trains_inpaint)):
            if trained:
                nets = edge if model == "edge" else inpaint
                generators[model] = nets["generator"]["params"]
                opt[f"{model}_generator"] = self.g_tx.init(nets["generator"]["params"])
                opt[f"{model}_discriminator"] = self.d_tx.init(nets["discriminator"]["params"])
        return EdgeConnectState(step=jnp.zeros((), jnp.int32), edge=edge, inpaint=inpaint, opt=opt,
                                ema=common.ema_init(generators, self.ema_decay))

    def _discriminator_step(self, disc, d_vars, real, fake):
        """D loss and gradient on real and (fixed) fake inputs; the variables after both calls and
        the real features (for feature matching)."""

        def loss_fn(d_params):
            v = {**d_vars, "params": d_params}
            (real_out, real_feats), v = _apply_sn(disc, v, real, True)
            (fake_out, _), v = _apply_sn(disc, v, fake, True)
            loss = (losses.adversarial(real_out, True, True, self.gan)
                    + losses.adversarial(fake_out, False, True, self.gan)) / 2.0
            return loss, (v, real_feats)

        (loss, (new_vars, real_feats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_vars["params"])
        return loss, grads, new_vars, jax.lax.stop_gradient(real_feats)

    def train_step(self, state: EdgeConnectState, batch: Batch, rng: jax.Array,
                   frozen: Any) -> tuple[EdgeConnectState, Metrics]:
        del rng  # masks and edges come from the pipeline; nothing here is random
        c = self.config.loss
        image = batch["image"].astype(jnp.float32)
        mask = batch["mask"].astype(jnp.float32)
        grey = batch["grey"].astype(jnp.float32)
        edges = batch["edges"].astype(jnp.float32)
        edge, inpaint = state.edge, state.inpaint

        # Generator forward passes as a function of the trained generators' parameters, so one
        # vjp carries every generator loss back (in mode 4 G2's loss reaches G1 through the edges).
        trained = {}
        if self.trains_edge:
            trained["edge"] = edge["generator"]["params"]
        if self.trains_inpaint:
            trained["inpaint"] = inpaint["generator"]["params"]

        def generators(params):
            outs, new_vars = {}, {}
            e_in = edges
            if self.mode in (1, 4):
                v = {**edge["generator"], "params": params["edge"]}
                e_out, new_vars["edge"] = _apply_sn(self.edge_generator, v, self._edge_input(grey, edges, mask), True)
                outs["edge"] = e_out
            elif self.mode == 3:
                e_out = jax.lax.stop_gradient(self.edge_generator.apply(
                    edge["generator"], self._edge_input(grey, edges, mask)))
            if self.mode in (3, 4):
                e_in = e_out * mask + edges * (1.0 - mask)
            if self.trains_inpaint:
                v = {**inpaint["generator"], "params": params["inpaint"]}
                outs["inpaint"] = self.inpaint_generator.apply(v, self._inpaint_input(image, e_in, mask))
            return outs, new_vars

        outs, vjp_fn, g_vars = jax.vjp(generators, trained, has_aux=True)
        cotangents, m, d_grads, new_d = {}, {}, {}, {}

        if self.trains_edge:
            e_out = outs["edge"]
            d_in_real = jnp.concatenate([grey, edges], -1)
            d_in_fake = jnp.concatenate([grey, e_out], -1)
            d_loss, d_grads["edge"], d_vars, real_feats = self._discriminator_step(
                self.edge_discriminator, edge["discriminator"], d_in_real, jax.lax.stop_gradient(d_in_fake))

            def edge_g_loss(e):
                (out, feats), v = _apply_sn(self.edge_discriminator, d_vars, jnp.concatenate([grey, e], -1), True)
                adv = losses.adversarial(out, True, False, self.gan)
                fm = losses.feature_matching(feats, real_feats) * c.fm_weight
                return adv + fm, (v, adv, fm)

            (g_loss, (new_d["edge"], adv, fm)), cotangents["edge"] = jax.value_and_grad(
                edge_g_loss, has_aux=True)(e_out)
            precision, recall = metrics.edge_precision_recall(
                e_out, edges, mask, float(self.config.model.get("edge_threshold", 0.5)))
            m.update({"edge/d_loss": d_loss, "edge/g_adv": adv, "edge/g_fm": fm, "edge/g_loss": g_loss,
                      "edge/precision": jnp.mean(precision), "edge/recall": jnp.mean(recall)})

        if self.trains_inpaint:
            i_out = outs["inpaint"]
            d_loss, d_grads["inpaint"], d_vars, _ = self._discriminator_step(
                self.inpaint_discriminator, inpaint["discriminator"], image, jax.lax.stop_gradient(i_out))
            b = image.shape[0]
            if self.uses_vgg:
                truth = jax.lax.stop_gradient(self._vgg(frozen, jnp.concatenate([image, image * mask])))

            def inpaint_g_loss(x):
                (out, _), v = _apply_sn(self.inpaint_discriminator, d_vars, x, True)
                adv = losses.adversarial(out, True, False, self.gan) * c.adv_weight
                l1 = losses.l1_over_hole_fraction(x, image, mask) * c.l1_weight
                if self.uses_vgg:
                    feats = self._vgg(frozen, jnp.concatenate([x, x * mask]))
                    fx = {k: f[:b] for k, f in feats.items()}
                    fxm = {k: f[b:] for k, f in feats.items()}
                    fy = {k: f[:b] for k, f in truth.items()}
                    fym = {k: f[b:] for k, f in truth.items()}
                    content = losses.perceptual(fx, fy, losses.EDGECONNECT_PERCEPTUAL_LAYERS) * c.content_weight
                    style = losses.style(fxm, fym, losses.EDGECONNECT_STYLE_LAYERS) * c.style_weight
                else:
                    content = style = jnp.zeros((), jnp.float32)
                return adv + l1 + content + style, (v, adv, l1, content, style)

            (g_loss, (new_d["inpaint"], adv, l1, content, style)), cotangents["inpaint"] = \
                jax.value_and_grad(inpaint_g_loss, has_aux=True)(i_out)
            merged = i_out * mask + image * (1.0 - mask)
            m.update({"inpaint/d_loss": d_loss, "inpaint/g_adv": adv, "inpaint/g_l1": l1,
                      "inpaint/g_perceptual": content, "inpaint/g_style": style,
                      "inpaint/g_loss": g_loss,
                      # the original's training log: MAE of the merged image over the image's sum
                      "inpaint/mae": jnp.sum(jnp.abs(image - merged)) / jnp.sum(image)})

        (g_grads,) = vjp_fn(cotangents)
        opt = dict(state.opt)
        for model in trained:
            nets = dict(edge if model == "edge" else inpaint)
            g_params, opt[f"{model}_generator"] = common.apply_gradients(
                self.g_tx, g_grads[model], state.opt[f"{model}_generator"], nets["generator"]["params"])
            d_params, opt[f"{model}_discriminator"] = common.apply_gradients(
                self.d_tx, d_grads[model], state.opt[f"{model}_discriminator"],
                nets["discriminator"]["params"])
            gen = g_vars.get(model, nets["generator"])
            nets["generator"] = {**gen, "params": g_params}
            nets["discriminator"] = {**new_d[model], "params": d_params}
            m[f"{model}/g_grad_norm"] = optax.tree.norm(g_grads[model])
            m[f"{model}/d_grad_norm"] = optax.tree.norm(d_grads[model])
            if model == "edge":
                edge = nets
            else:
                inpaint = nets
        m["g/lr"] = common.learning_rate(opt[f"{next(iter(trained))}_generator"])
        ema = common.ema_update(state.ema, {model: (edge if model == "edge" else inpaint)[
            "generator"]["params"] for model in trained}, self.ema_decay)
        return state.replace(step=state.step + 1, edge=edge, inpaint=inpaint, opt=opt, ema=ema), m

    def inference_variables(self, state: EdgeConnectState) -> Any:
        """The generators `inpaint` runs; a trained generator's parameters are its EMA when
        config.ema_decay > 0 (its spectral-norm vectors stay the trained network's)."""
        out = {}
        ema = state.ema or {}
        for model, nets, used in (("edge", state.edge, self.mode != 2),
                                  ("inpaint", state.inpaint, self.mode != 1)):
            if used:
                gen = nets["generator"]
                out[model] = {**gen, "params": ema[model]} if model in ema else gen
        return out

    def inference_inputs(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """image, mask, 'grey' (rgb2gray of the image) and 'edges': Canny of the known pixels only
        (the original's test-time `canny(grey, sigma, mask=known)`), with sigma from
        config.data.edge_sigma (0: a random 1..4 per image from a fixed seed; -1: none). When the
        batch carries the ground truth's 'edges' (evaluation, previews) they pass on as
        'edges_truth' for the mode-1 precision / recall."""
        from inpaintjax.data import fields
        out = super().inference_inputs(batch)
        image, mask = out["image"], out["mask"]
        sigma = float(self.config.data.get("edge_sigma", 2.0))
        rng = np.random.default_rng(0)
        known = mask[..., 0] < 0.5
        out["grey"] = np.stack([fields.grey_image(im) for im in image])
        out["edges"] = np.stack([fields.canny(im, sigma, rng, known=k) for im, k in zip(image, known)])
        if "edges" in batch:
            out["edges_truth"] = np.asarray(batch["edges"], np.float32)
        return out

    def inpaint(self, variables: Any, inputs: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """The original's test(): 'output' [B,H,W,3] composited in [0, 1] and 'edges' [B,H,W,1]: the
        edge model's raw prediction (modes 1, 3, 4) or the known-pixel Canny map (mode 2). In mode 1
        (edge model only) 'output' is the edge map (predicted in the hole, Canny outside) as grey."""
        image = inputs["image"].astype(jnp.float32)
        mask = inputs["mask"].astype(jnp.float32)
        mask = (mask > 0.5).astype(jnp.float32)
        edges = inputs["edges"].astype(jnp.float32)
        if self.mode == 2:
            e = edges
        else:
            e = self.edge_generator.apply(variables["edge"], self._edge_input(inputs["grey"], edges, mask))
        if self.mode == 1:
            merged = e * mask + edges * (1.0 - mask)
            return {"output": jnp.repeat(merged, 3, axis=-1), "edges": e}
        if self.mode != 2 and self.config.model.get("test_composite_edges", False):
            e_in = e * mask + edges * (1.0 - mask)
        else:
            e_in = e
        out = self.inpaint_generator.apply(variables["inpaint"], self._inpaint_input(image, e_in, mask))
        # a select, not a blend: known pixels come back bit-exact
        return {"output": jnp.where(mask > 0.5, out, image), "edges": e}

    def evaluation_metrics(self, inputs: Mapping[str, jax.Array],
                           outputs: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """Mode 1: edge precision and recall inside the hole against the ground truth's Canny
        edges ('edges_truth'); other modes: the image metrics."""
        if self.mode != 1:
            return super().evaluation_metrics(inputs, outputs)
        if "edges_truth" not in inputs:
            raise ValueError("EdgeConnect mode 1 evaluation needs the ground truth's edges "
                             "('edges_truth' from inference_inputs of a batch with 'edges')")
        p, r = metrics.edge_precision_recall(outputs["edges"], inputs["edges_truth"], inputs["mask"],
                                             float(self.config.model.get("edge_threshold", 0.5)))
        return {"edge_precision": p, "edge_recall": r}
