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

Differences from the original:
* mode 3 runs the frozen G1 in evaluation mode (stored spectral-norm vectors); the original
  leaves it in training mode, so its power iteration drifts the vectors during the run, but never
  saves them (mode 3 saves the inpainting model only);
* edge precision / recall are computed per image (the original pools a batch);
* `ema_decay > 0` (off by default, as the original has none) keeps an EMA of each trained
  generator's parameters, which evaluation and inference then use. The default `init_from` copies
  the raw networks; to freeze a mode-1 run's EMA edge model in mode 3, set
  `init_from_paths='edge,edge.generator.params=ema.edge'`.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from inpaintjax import losses, metrics
from inpaintjax.families import common
from inpaintjax.families.base import (Batch, Family, Metrics, WeightFormat,
                                      register)
from inpaintjax.models.edgeconnect import EdgeConnectDiscriminator, EdgeGenerator, InpaintGenerator

log = logging.getLogger(__name__)

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
    c.model.channels = 64              # the first layer's width in G1, G2, D1, D2 (released: 64)
    c.model.edge_threshold = 0.5       # EDGE_THRESHOLD: precision / recall of predicted edges
    c.model.edge_sigma = 2.0           # SIGMA: Canny sigma (0: random 1..4 per image, -1: no edges)
    c.model.test_composite_edges = False  # test(): G2 gets the raw G1 map (True: known edges kept)
    c.loss.gan = "nsgan"               # GAN_LOSS: nsgan | lsgan | hinge
    c.loss.fm_weight = 10.0            # FM_LOSS_WEIGHT (edge model)
    c.loss.l1_weight = 1.0             # L1_LOSS_WEIGHT
    c.loss.content_weight = 0.1        # CONTENT_LOSS_WEIGHT (VGG-19 perceptual)
    c.loss.style_weight = 250.0        # STYLE_LOSS_WEIGHT
    c.loss.adv_weight = 0.1            # INPAINT_ADV_LOSS_WEIGHT (the edge model's is 1)
    c.loss.vgg_weights = ""            # torchvision vgg19 state dict, Keras' VGG-19 notop h5, "random"
    c.loss.vgg_widths = (64, 128, 256, 512, 512)
    c.optim.lr = 1e-4                  # LR
    c.optim.b1 = 0.0                   # BETA1
    c.optim.b2 = 0.9                   # BETA2
    c.optim.d2g_lr = 0.1               # D2G_LR: discriminators' rate / generators' rate
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


def _load_official(folder: str):
    from inpaintjax.convert.edgeconnect import from_torch, read_sigma
    w = from_torch(folder)
    has_edge, has_inpaint = "edge_generator" in w, "inpaint_generator" in w
    if not (has_edge or has_inpaint):
        raise FileNotFoundError(f"{folder}: holds discriminators only; inference needs "
                                "EdgeModel_gen.pth and/or InpaintingModel_gen.pth")
    mode = 3 if has_edge and has_inpaint else (1 if has_edge else 2)
    c = default_config(mode)
    # the generators' depth and width are the files' own (the released ones: 8 blocks, 64)
    shapes = {(sum(k.startswith("middle_") for k in w[g]["params"]),
               int(w[g]["params"]["encoder_1"]["kernel"].shape[-1]))
              for g in ("edge_generator", "inpaint_generator") if g in w}
    if len(shapes) > 1:
        raise ValueError(f"{folder}: EdgeModel_gen.pth and InpaintingModel_gen.pth differ in residual "
                         f"blocks or first-layer width ({sorted(shapes)}); they must be one model's")
    c.model.residual_blocks, c.model.channels = shapes.pop()
    sigma = read_sigma(folder)
    if sigma is not None:
        c.model.edge_sigma = sigma
    variables = {}
    if has_edge:
        variables["edge"] = w["edge_generator"]
    if has_inpaint:
        variables["inpaint"] = w["inpaint_generator"]
    return c, variables


def _is_official(path: str) -> bool:
    # any of the four files: a folder of discriminators alone is EdgeConnect's too, and
    # `_load_official` then says which files inference needs
    from inpaintjax.convert.edgeconnect import is_checkpoint_folder
    return is_checkpoint_folder(path)


def _check_maps(inputs: Mapping[str, Any], keys) -> None:
    """Each of `keys` present in `inputs` must be a one-channel map of the image's size."""
    b, h, w = inputs["image"].shape[:3]
    for key in keys:
        if key in inputs and tuple(inputs[key].shape) != (b, h, w, 1):
            raise ValueError(f"edgeconnect: {key!r} must be [{b}, {h}, {w}, 1], one channel of the "
                             f"image's size, got {tuple(inputs[key].shape)}")


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
        model, loss, optim = config.model, config.loss, config.optim
        self.mode = int(model.mode)
        if self.mode not in MODES:
            raise ValueError(f"config.model.mode must be one of {MODES} (1 edge model, 2 inpainting "
                             f"model, 3 inpainting model on G1's edges, 4 joint), got {model.mode!r}")
        self.edge_sigma = float(model.edge_sigma)
        self.edge_threshold = float(model.edge_threshold)
        self.test_composite_edges = bool(model.test_composite_edges)
        self.ema_decay = common.ema_decay(config)
        self.gan = str(loss.gan)
        if self.gan not in losses.GAN_LOSSES:
            raise ValueError(f"config.loss.gan must be one of {losses.GAN_LOSSES}, got {self.gan!r}")
        self.fm_weight, self.l1_weight = float(loss.fm_weight), float(loss.l1_weight)
        self.content_weight, self.style_weight = float(loss.content_weight), float(loss.style_weight)
        self.adv_weight = float(loss.adv_weight)
        self.vgg_weights = str(loss.vgg_weights)
        self.vgg_widths = tuple(int(w) for w in loss.vgg_widths)
        self.seed = int(config.seed)
        self.dtype = common.compute_dtype(config)
        blocks, remat, width = int(model.residual_blocks), bool(config.remat), int(model.channels)
        if width < 1:
            raise ValueError(f"config.model.channels must be a whole number >= 1 (the released "
                             f"networks' 64), got {model.channels!r}")
        sigmoid = self.gan != "hinge"
        self.edge_generator = EdgeGenerator(residual_blocks=blocks, dtype=self.dtype, remat=remat,
                                            channels=width)
        self.inpaint_generator = InpaintGenerator(residual_blocks=blocks, dtype=self.dtype,
                                                  remat=remat, channels=width)
        self.edge_discriminator = EdgeConnectDiscriminator(use_sigmoid=sigmoid, dtype=self.dtype,
                                                           channels=width)
        self.inpaint_discriminator = EdgeConnectDiscriminator(use_sigmoid=sigmoid, dtype=self.dtype,
                                                              channels=width)
        steps = int(config.num_steps)
        self.g_tx = common.make_optimizer(optim, steps)
        self.d_tx = common.make_optimizer(optim, steps, lr=float(optim.lr) * float(optim.d2g_lr))
        self.trains_edge = self.mode in (1, 4)
        self.trains_inpaint = self.mode in (2, 3, 4)
        # init_from copies networks only (see the module docstring); a mode-2 run started from a
        # mode-1 run carries that edge model along for mode 4
        self.warm_start_paths = ("edge", "inpaint") if self.mode == 4 else ("edge",)
        self.ema_paths = tuple((f"ema.{model}", f"{model}.generator.params") for model, trained in
                               (("edge", self.trains_edge), ("inpaint", self.trains_inpaint)) if trained)
        self.uses_vgg = self.trains_inpaint and (self.content_weight != 0.0
                                                 or self.style_weight != 0.0)

    @classmethod
    def default_config(cls) -> ml_collections.ConfigDict:
        return default_config()

    def batch_spec(self) -> dict:
        from inpaintjax.data import fields
        spec = fields.default_spec()
        spec["grey"] = fields.grey()
        spec["edges"] = fields.canny_edges(self.edge_sigma)
        return spec

    def load_frozen(self) -> Any:
        """VGG-19 for the perceptual and style losses (modes 2-4, unless both weights are 0), from
        config.loss.vgg_weights (a file, or 'random': a random VGG-19 for tests and demos)."""
        if not self.uses_vgg:
            return {}
        # the original feeds its VGG-19 [0, 1] images without ImageNet normalisation
        return common.load_frozen_vgg("edgeconnect", 19, self.vgg_weights, self.vgg_widths, self.seed,
                                      "EdgeConnect's perceptual and style loss")

    def evaluation_label(self) -> str:
        if self.uses_vgg and self.vgg_weights == "random":
            return f"{self.name} (trained with random VGG-19 loss features)"
        return self.name

    # -- networks' inputs -----------------------------------------------------------------------
    @staticmethod
    def _edge_input(grey, edges, mask):
        return jnp.concatenate([grey * (1.0 - mask) + mask, edges * (1.0 - mask), mask], axis=-1)

    @staticmethod
    def _inpaint_input(image, edges, mask):
        return jnp.concatenate([image * (1.0 - mask) + mask, edges], axis=-1)

    def _vgg(self, frozen, x):
        from inpaintjax.models import vgg
        f = vgg.feature_fn(19, VGG_LAYERS, widths=self.vgg_widths, dtype=self.dtype)
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

    def _generators(self, state: EdgeConnectState, params, grey, edges, mask, image):
        """The training forward passes of the generators as a function of the trained
        generators' `params` ({'edge' and / or 'inpaint'}), so one vjp carries every generator
        loss back (in mode 4 G2's loss reaches G1 through the edge map). Returns ({'edge': G1's
        map, 'inpaint': G2's image} for the trained ones, {'edge': G1's variables after its
        spectral-norm iteration} when G1 trains)."""
        outs, new_vars = {}, {}
        edge_in = self._edge_input(grey, edges, mask)
        e_in = edges
        if self.trains_edge:
            v = {**state.edge["generator"], "params": params["edge"]}
            outs["edge"], new_vars["edge"] = _apply_sn(self.edge_generator, v, edge_in, True)
            e_out = outs["edge"]
        elif self.mode == 3:  # the frozen G1, in evaluation mode
            e_out = jax.lax.stop_gradient(self.edge_generator.apply(state.edge["generator"], edge_in))
        if self.mode in (3, 4):
            e_in = e_out * mask + edges * (1.0 - mask)
        if self.trains_inpaint:
            v = {**state.inpaint["generator"], "params": params["inpaint"]}
            outs["inpaint"] = self.inpaint_generator.apply(v, self._inpaint_input(image, e_in, mask))
        return outs, new_vars

    def _edge_losses(self, state: EdgeConnectState, e_out, grey, edges, mask):
        """D1's loss and gradient, and G1's adversarial + feature-matching loss with its gradient
        with respect to the edge map `e_out`: (cotangent, D1 gradient, D1 variables, metrics)."""
        d_in_real = jnp.concatenate([grey, edges], -1)
        d_in_fake = jnp.concatenate([grey, e_out], -1)
        d_loss, d_grads, d_vars, real_feats = self._discriminator_step(
            self.edge_discriminator, state.edge["discriminator"], d_in_real,
            jax.lax.stop_gradient(d_in_fake))

        def edge_g_loss(e):
            (out, feats), v = _apply_sn(self.edge_discriminator, d_vars,
                                        jnp.concatenate([grey, e], -1), True)
            adv = losses.adversarial(out, True, False, self.gan)
            fm = losses.feature_matching(feats, real_feats) * self.fm_weight
            return adv + fm, (v, adv, fm)

        (g_loss, (new_d, adv, fm)), cotangent = jax.value_and_grad(
            edge_g_loss, has_aux=True)(e_out)
        precision, recall = metrics.edge_precision_recall(e_out, edges, mask, self.edge_threshold)
        logs = {"edge/d_loss": d_loss, "edge/g_adv": adv, "edge/g_fm": fm, "edge/g_loss": g_loss,
                "edge/precision": jnp.mean(precision), "edge/recall": jnp.mean(recall)}
        return cotangent, d_grads, new_d, logs

    def _inpaint_losses(self, state: EdgeConnectState, i_out, image, mask, frozen):
        """D2's loss and gradient, and G2's adversarial + L1 + perceptual + style loss with its
        gradient with respect to the image `i_out`: (cotangent, D2 gradient, D2 variables,
        metrics)."""
        d_loss, d_grads, d_vars, _ = self._discriminator_step(
            self.inpaint_discriminator, state.inpaint["discriminator"], image,
            jax.lax.stop_gradient(i_out))
        b = image.shape[0]
        if self.uses_vgg:
            truth = jax.lax.stop_gradient(self._vgg(frozen, jnp.concatenate([image, image * mask])))

        def inpaint_g_loss(x):
            (out, _), v = _apply_sn(self.inpaint_discriminator, d_vars, x, True)
            adv = losses.adversarial(out, True, False, self.gan) * self.adv_weight
            l1 = losses.l1_over_hole_fraction(x, image, mask) * self.l1_weight
            if self.uses_vgg:
                feats = self._vgg(frozen, jnp.concatenate([x, x * mask]))
                fx = {k: f[:b] for k, f in feats.items()}
                fxm = {k: f[b:] for k, f in feats.items()}
                fy = {k: f[:b] for k, f in truth.items()}
                fym = {k: f[b:] for k, f in truth.items()}
                content = (losses.perceptual(fx, fy, losses.EDGECONNECT_PERCEPTUAL_LAYERS)
                           * self.content_weight)
                style = losses.style(fxm, fym, losses.EDGECONNECT_STYLE_LAYERS) * self.style_weight
            else:
                content = style = jnp.zeros((), jnp.float32)
            return adv + l1 + content + style, (v, adv, l1, content, style)

        (g_loss, (new_d, adv, l1, content, style)), cotangent = jax.value_and_grad(
            inpaint_g_loss, has_aux=True)(i_out)
        merged = i_out * mask + image * (1.0 - mask)
        logs = {"inpaint/d_loss": d_loss, "inpaint/g_adv": adv, "inpaint/g_l1": l1,
                "inpaint/g_perceptual": content, "inpaint/g_style": style,
                "inpaint/g_loss": g_loss,
                # the original's training log: MAE of the merged image over the image's sum
                "inpaint/mae": jnp.sum(jnp.abs(image - merged)) / jnp.sum(image)}
        return cotangent, d_grads, new_d, logs

    def train_step(self, state: EdgeConnectState, batch: Batch, rng: jax.Array,
                   frozen: Any) -> tuple[EdgeConnectState, Metrics]:
        del rng  # masks and edges come from the pipeline; nothing here is random
        image = batch["image"].astype(jnp.float32)
        mask = batch["mask"].astype(jnp.float32)
        grey = batch["grey"].astype(jnp.float32)
        edges = batch["edges"].astype(jnp.float32)
        nets = {"edge": state.edge, "inpaint": state.inpaint}
        trained = [model for model, on in (("edge", self.trains_edge),
                                           ("inpaint", self.trains_inpaint)) if on]
        g_params = {model: nets[model]["generator"]["params"] for model in trained}

        outs, vjp_fn, g_vars = jax.vjp(
            lambda p: self._generators(state, p, grey, edges, mask, image), g_params, has_aux=True)
        cotangents, d_grads, new_d, logs = {}, {}, {}, {}
        if self.trains_edge:
            cotangents["edge"], d_grads["edge"], new_d["edge"], edge_logs = self._edge_losses(
                state, outs["edge"], grey, edges, mask)
            logs.update(edge_logs)
        if self.trains_inpaint:
            (cotangents["inpaint"], d_grads["inpaint"], new_d["inpaint"],
             inpaint_logs) = self._inpaint_losses(state, outs["inpaint"], image, mask, frozen)
            logs.update(inpaint_logs)
        (g_grads,) = vjp_fn(cotangents)

        # one Adam update per trained network
        opt = dict(state.opt)
        for model in trained:
            g_new, opt[f"{model}_generator"] = common.apply_gradients(
                self.g_tx, g_grads[model], state.opt[f"{model}_generator"], g_params[model])
            d_new, opt[f"{model}_discriminator"] = common.apply_gradients(
                self.d_tx, d_grads[model], state.opt[f"{model}_discriminator"],
                nets[model]["discriminator"]["params"])
            generator = g_vars.get(model, nets[model]["generator"])
            nets[model] = {"generator": {**generator, "params": g_new},
                           "discriminator": {**new_d[model], "params": d_new}}
            logs[f"{model}/g_grad_norm"] = optax.tree.norm(g_grads[model])
            logs[f"{model}/d_grad_norm"] = optax.tree.norm(d_grads[model])
        logs["g/lr"] = common.learning_rate(opt[f"{trained[0]}_generator"])
        ema = common.ema_update(
            state.ema, {model: nets[model]["generator"]["params"] for model in trained},
            self.ema_decay)
        return state.replace(step=state.step + 1, edge=nets["edge"], inpaint=nets["inpaint"],
                             opt=opt, ema=ema), logs

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
        config.model.edge_sigma (0: a random 1..4 per image from a fixed seed; -1: none). When the
        batch carries the ground truth's 'edges' (evaluation, previews) they pass on as
        'edges_truth' for the mode-1 precision / recall."""
        from inpaintjax.data import fields
        _check_maps(batch, ("mask", "edges"))
        out = super().inference_inputs(batch)
        image, mask = out["image"], out["mask"]
        sigma = self.edge_sigma
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
        _check_maps(inputs, ("mask", "grey", "edges"))
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
        if self.mode != 2 and self.test_composite_edges:
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
                                             self.edge_threshold)
        return {"edge_precision": p, "edge_recall": r}
