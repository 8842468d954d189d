"""What every family repeats: the compute dtype, parameter-init keys, optimisers built from the
config (schedules included, the rate kept in the optimiser state so it can be logged), one
optimiser update, and an exponential moving average of the generator's parameters.

Optimiser settings are data (a config subtree, e.g. `config.optim`):
  lr              peak learning rate
  b1, b2          Adam's betas
  schedule        'constant' | 'cosine' | 'linear' (decay from lr to lr * final_lr_ratio over the
                  run's steps after the warm-up)
  warmup_steps    linear warm-up from 0 (0 = none)
  final_lr_ratio  the decayed schedules' end value as a fraction of lr
"""

from __future__ import annotations

import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
import optax

from inpaintjax.families.param_prng import param_key  # noqa: F401  (the families' parameter-init keys)

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
SCHEDULES = ("constant", "cosine", "linear")


def compute_dtype(config):
    """The activations' dtype from config.compute_dtype (parameters stay float32)."""
    name = config.compute_dtype
    if name not in _DTYPES:
        raise ValueError(f"config.compute_dtype must be one of {', '.join(_DTYPES)}, got {name!r}")
    return _DTYPES[name]


def learning_rate_schedule(optim, num_steps: int, lr: float | None = None) -> optax.Schedule:
    """The schedule described by the `optim` config subtree (see the module docstring)."""
    peak = float(optim.lr if lr is None else lr)
    kind = optim.schedule
    warmup = int(optim.warmup_steps)
    final = peak * float(optim.final_lr_ratio)
    decay = max(int(num_steps) - warmup, 1)
    if kind == "constant":
        main = optax.constant_schedule(peak)
    elif kind == "cosine":
        main = optax.cosine_decay_schedule(peak, decay, alpha=final / peak if peak else 0.0)
    elif kind == "linear":
        main = optax.linear_schedule(peak, final, decay)
    else:
        raise ValueError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
    if warmup <= 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), main], [warmup])


def make_optimizer(optim, num_steps: int, lr: float | None = None) -> optax.GradientTransformation:
    """Adam with the config's betas and schedule; `lr` overrides optim.lr (e.g. a critic's rate).
    The current rate lives in the optimiser state (`learning_rate(opt_state)`)."""
    schedule = learning_rate_schedule(optim, num_steps, lr)
    return optax.inject_hyperparams(optax.adam)(
        learning_rate=schedule, b1=float(optim.b1), b2=float(optim.b2))


def learning_rate(opt_state: Any) -> jax.Array:
    """The rate the latest update applied, from the state `apply_gradients` returned (a fresh
    state holds the schedule's first value)."""
    return jnp.asarray(opt_state.hyperparams["learning_rate"], jnp.float32)


def apply_gradients(tx: optax.GradientTransformation, grads: Any, opt_state: Any,
                    params: Any) -> tuple[Any, Any]:
    """One optimiser update: (new params, new optimiser state)."""
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def ema_decay(config) -> float:
    """config.ema_decay, checked: 0 (off) or in (0, 1)."""
    decay = float(config.ema_decay)
    if decay and not 0.0 < decay < 1.0:
        raise ValueError(f"config.ema_decay must be 0 (off) or in (0, 1), e.g. 0.999; got {decay}")
    return decay


#: the share of the initial weights an EMA may still hold at a run's last step without a warning
EMA_INITIAL_SHARE = 0.05


def ema_horizon_warning(decay: float, num_steps: int) -> Optional[str]:
    """A warning for a run too short for its EMA, else None. The EMA starts as a copy of the
    initial parameters and keeps decay ** steps of them: evaluation and inference use the EMA, so
    a run whose EMA still holds more than EMA_INITIAL_SHARE of its initialisation at the last step
    saves a model that is mostly untrained (the demo preset's 0.997 over 300 steps: 41%)."""
    if not decay or num_steps <= 0:
        return None
    share = decay ** num_steps
    if share <= EMA_INITIAL_SHARE:
        return None
    most = math.floor(EMA_INITIAL_SHARE ** (1.0 / num_steps) * 1000) / 1000
    return (f"warning: ema_decay {decay:g} over {num_steps} steps: the EMA of the generator, which "
            f"evaluation and inference use, will still hold {share:.0%} of the initial weights at the "
            f"last step; set --config.ema_decay to {most:g} or less, or train for more steps")


def no_remat(config, family: str) -> None:
    """Refuse config.remat for a family whose generator does not rematerialise (one line, before
    anything is written), instead of ignoring it."""
    if bool(config.remat):
        raise ValueError(f"config.remat=True: the {family} generator has no rematerialised blocks "
                         f"(it trains at 256x256 within memory without them); set "
                         f"--config.remat=False")


def ema_init(params: Any, decay: float) -> Any:
    """The EMA's start (a copy of `params`), or None when decay == 0 (EMA off)."""
    if not decay:
        return None
    return jax.tree.map(jnp.asarray, params)


def ema_update(ema: Any, params: Any, decay: float) -> Any:
    """ema <- decay * ema + (1 - decay) * params (None stays None)."""
    if ema is None:
        return None
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def crop_boxes(x, boxes, size: int, key: str = "model.local_size"):
    """Per-sample size x size crops of x [B, H, W, C] around the centre of each box [B, 4] =
    (top, left, height, width), clamped inside the image. For the original's masks (a hole
    shrunk symmetrically inside a size x size box) this is exactly that box. `key` names the
    setting that chose `size` (for the error when it exceeds the image)."""
    h, w = x.shape[1], x.shape[2]
    if size > h or size > w:
        raise ValueError(f"{key} {size} exceeds the image size {h}x{w}")
    boxes = boxes.astype(jnp.int32)
    top = jnp.clip(boxes[:, 0] + boxes[:, 2] // 2 - size // 2, 0, h - size)
    left = jnp.clip(boxes[:, 1] + boxes[:, 3] // 2 - size // 2, 0, w - size)

    def one(xi, t, lft):
        return jax.lax.dynamic_slice(xi, (t, lft, 0), (size, size, xi.shape[-1]))

    return jax.vmap(one)(x, top, left)


def load_frozen_vgg(family: str, depth: int, src: str, widths, seed: int, purpose: str) -> dict:
    """{'vgg': VGG-`depth` variables} for a family's loss network, from `src` (the value of
    config.loss.vgg_weights): a torchvision state dict or Keras notop .h5 file, or 'random' (a
    seeded random network, for tests and demos, with a warning). `purpose` says what needs it in
    the error for an empty value (e.g. "the PConv loss")."""
    import logging

    from inpaintjax.families.base import FrozenWeightsError
    from inpaintjax.models import vgg
    log = logging.getLogger(f"inpaintjax.families.{family}")
    if src == "random":
        log.warning("%s: config.loss.vgg_weights='random': %s uses a RANDOM VGG-%d (tests/demo only), "
                    "not ImageNet features", family, purpose, depth)
        return {"vgg": vgg.random_variables(depth, seed=seed, widths=widths)}
    if not src:
        raise FrozenWeightsError(
            f"config.loss.vgg_weights is empty: {purpose} needs VGG-{depth} ImageNet weights, "
            f"{vgg.where_to_get(depth)} (--config.loss.vgg_weights=PATH), or 'random' for a smoke test")
    try:
        variables = vgg.load_weights(src, depth, widths)
    except vgg.VGGWeightsError as e:
        raise FrozenWeightsError(f"config.loss.vgg_weights: {e}") from e
    log.info("%s: VGG-%d loss network from %s", family, depth, src)
    return {"vgg": variables}
