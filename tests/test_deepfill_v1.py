"""DeepFill v1: generator and critics against the authors' code (golden outputs of
JiahuiYu/generative_inpainting v1.0.0 run under TF, tests/fixtures/deepfill_v1_golden/), the
converter on the checkpoint TF wrote, parameter counts and kernel shapes from a layer table
written from v1.0.0's `build_inpaint_net`, and the losses against hand computations and the
original's own values."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import family_steps as fs

from inpaintjax import losses
from inpaintjax.convert.deepfill import from_tf_checkpoint
from inpaintjax.convert.tf_checkpoint import CheckpointError, TFCheckpointReader
from inpaintjax.models.deepfill import DeepFillV1Generator
from inpaintjax.models.discriminators import WGANGlobalCritic, WGANLocalCritic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN_DIR = os.path.join(ROOT, "tests", "fixtures", "deepfill_v1_golden")
TOL = 1e-4


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(os.path.join(GOLDEN_DIR, "golden.npz")))


@pytest.fixture(scope="module")
def weights():
    return from_tf_checkpoint(GOLDEN_DIR)


def v1_layer_table(c):
    """(name, k, in, out) of every v1 generator conv, written from the v1.0.0 build_inpaint_net."""
    t = [("conv1", 5, 5, c), ("conv2_downsample", 3, c, 2 * c), ("conv3", 3, 2 * c, 2 * c),
         ("conv4_downsample", 3, 2 * c, 4 * c)]
    t += [(n, 3, 4 * c, 4 * c) for n in ("conv5", "conv6", "conv7_atrous", "conv8_atrous",
                                         "conv9_atrous", "conv10_atrous", "conv11", "conv12")]
    t += [("conv13_upsample", 3, 4 * c, 2 * c), ("conv14", 3, 2 * c, 2 * c),
          ("conv15_upsample", 3, 2 * c, c), ("conv16", 3, c, c // 2), ("conv17", 3, c // 2, 3)]
    t += [("xconv1", 5, 5, c), ("xconv2_downsample", 3, c, c), ("xconv3", 3, c, 2 * c),
          ("xconv4_downsample", 3, 2 * c, 2 * c), ("xconv5", 3, 2 * c, 4 * c)]
    t += [(n, 3, 4 * c, 4 * c) for n in ("xconv6", "xconv7_atrous", "xconv8_atrous",
                                         "xconv9_atrous", "xconv10_atrous")]
    t += [("pmconv1", 5, 5, c), ("pmconv2_downsample", 3, c, c), ("pmconv3", 3, c, 2 * c),
          ("pmconv4_downsample", 3, 2 * c, 4 * c), ("pmconv5", 3, 4 * c, 4 * c),
          ("pmconv6", 3, 4 * c, 4 * c), ("pmconv9", 3, 4 * c, 4 * c), ("pmconv10", 3, 4 * c, 4 * c)]
    t += [("allconv11", 3, 8 * c, 4 * c), ("allconv12", 3, 4 * c, 4 * c),
          ("allconv13_upsample", 3, 4 * c, 2 * c), ("allconv14", 3, 2 * c, 2 * c),
          ("allconv15_upsample", 3, 2 * c, c), ("allconv16", 3, c, c // 2), ("allconv17", 3, c // 2, 3)]
    return t


def _shapes(tree, prefix=()):
    out = {}
    for k, v in tree.items():
        if hasattr(v, "items"):
            out.update(_shapes(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = tuple(v.shape)
    return out


# ---------------------------------------------------------------------------------------------
# Structure

def test_parameter_counts_and_layer_table():
    x, m = jnp.zeros((1, 256, 256, 3)), jnp.zeros((1, 256, 256, 1))
    params = jax.eval_shape(DeepFillV1Generator(cnum=32).init, jax.random.key(0), x, m)["params"]
    assert sum(p.size for p in jax.tree.leaves(params)) == 3_601_542
    expected = {}
    for name, k, cin, cout in v1_layer_table(32):
        key = (name, "conv", "conv") if "upsample" in name else (name, "conv")
        expected[key + ("kernel",)] = (k, k, cin, cout)
        expected[key + ("bias",)] = (cout,)
    assert _shapes(params) == expected
    n = lambda critic, size: sum(p.size for p in jax.tree.leaves(jax.eval_shape(  # noqa: E731
        critic.init, jax.random.key(0), jnp.zeros((1, size, size, 3)))))
    assert n(WGANLocalCritic(), 128) == 4_339_329
    assert n(WGANGlobalCritic(), 256) == 2_733_441


# ---------------------------------------------------------------------------------------------
# Converter on the checkpoint TF wrote

def test_converter_detects_v1_and_permutes_bgr(weights):
    w = weights
    assert (w.version, w.cnum, w.d_cnum, w.step, w.guided) == (1, 8, 8, 7, False)
    r = TFCheckpointReader(GOLDEN_DIR)
    g = w.generator["params"]
    for layer in ("conv1", "xconv1", "pmconv1"):  # image input channels reversed, extras kept
        raw = r.get(f"inpaint_net/{layer}/kernel")
        np.testing.assert_array_equal(g[layer]["conv"]["kernel"][:, :, :3], raw[:, :, 2::-1])
        np.testing.assert_array_equal(g[layer]["conv"]["kernel"][:, :, 3:], raw[:, :, 3:])
    for layer in ("conv17", "allconv17"):  # output channels reversed
        np.testing.assert_array_equal(g[layer]["conv"]["kernel"], r.get(f"inpaint_net/{layer}/kernel")[..., ::-1])
        np.testing.assert_array_equal(g[layer]["conv"]["bias"], r.get(f"inpaint_net/{layer}/bias")[::-1])
    np.testing.assert_array_equal(g["conv13_upsample"]["conv"]["conv"]["kernel"],
                                  r.get("inpaint_net/conv13_upsample/conv13_upsample_conv/kernel"))
    np.testing.assert_array_equal(g["conv5"]["conv"]["bias"], r.get("inpaint_net/conv5/bias"))
    for key in ("local", "global"):
        p = w.discriminator[key]["params"]
        np.testing.assert_array_equal(p["conv1"]["kernel"],
                                      r.get(f"discriminator/discriminator_{key}/conv1/kernel")[:, :, ::-1])
        np.testing.assert_array_equal(p["conv3"]["kernel"], r.get(f"discriminator/discriminator_{key}/conv3/kernel"))
        np.testing.assert_array_equal(p["dense"]["kernel"], r.get(f"discriminator/dout_{key}_fc/kernel"))
    from inpaintjax.families.deepfill_v1 import config_for_weights
    assert config_for_weights(w).family == "deepfill_v1"
    with pytest.raises(CheckpointError, match="DeepFill v1 checkpoint.*version=1"):
        from_tf_checkpoint(GOLDEN_DIR, version=2)


# ---------------------------------------------------------------------------------------------
# Golden outputs of the original code

def _generate(weights, image, mask):
    g = DeepFillV1Generator(cnum=weights.cnum)
    fn = jax.jit(lambda v, x, m: g.apply(v, x, m, return_flow=True))
    return [np.asarray(a) for a in fn(weights.generator, image, mask)]


def test_generator_stage1_and_stage2_match_the_original(golden, weights):
    s1, s2, flow = _generate(weights, golden["image"], golden["mask"])
    np.testing.assert_allclose(s1, golden["stage1"], rtol=0, atol=TOL)
    np.testing.assert_allclose(s2, golden["stage2"], rtol=0, atol=TOL)
    # the original's flow image is in [-1, 1]; ours in [0, 1]
    np.testing.assert_allclose(flow, (golden["flow"] + 1.0) / 2.0, rtol=0, atol=TOL)
    # the fixture carries signal: another image moves both stages inside the hole, and stage 2
    # is not clipped flat
    hole = golden["mask"][0, :, :, 0] > 0
    assert np.abs(golden["stage2"] - golden["stage2_b"])[:, hole].mean() > 0.05
    assert np.abs(golden["stage1"] - golden["stage1_b"])[:, hole].mean() > 0.02
    assert np.mean(np.abs(golden["stage2"]) >= 1.0) < 0.1
    s1b, s2b, _ = _generate(weights, golden["image_b"], golden["mask"])
    np.testing.assert_allclose(s1b, golden["stage1_b"], rtol=0, atol=TOL)
    np.testing.assert_allclose(s2b, golden["stage2_b"], rtol=0, atol=TOL)
    # hole pixels of the input are never seen
    noisy = np.where(golden["mask"] > 0, 5.0, golden["image"]).astype(np.float32)
    s1n, s2n, _ = _generate(weights, noisy, golden["mask"])
    np.testing.assert_array_equal(s2n, s2)


def test_critics_match_the_original(golden, weights):
    local = WGANLocalCritic(cnum=weights.d_cnum)
    glob = WGANGlobalCritic(cnum=weights.d_cnum)
    out_l = np.asarray(jax.jit(local.apply)(weights.discriminator["local"], golden["critic_local_in"]))
    out_g = np.asarray(jax.jit(glob.apply)(weights.discriminator["global"], golden["critic_global_in"]))
    np.testing.assert_allclose(out_l, golden["critic_local"], rtol=0, atol=TOL)
    np.testing.assert_allclose(out_g, golden["critic_global"], rtol=0, atol=TOL)
    assert np.ptp(golden["critic_local"]) > 0.1 and np.ptp(golden["critic_global"]) > 0.1


def test_gradient_penalty_matches_the_original(golden, weights):
    t, l, h, w = (int(v) for v in golden["bbox"])
    real = golden["critic_global_in"][:2]
    fake = golden["critic_global_in"][2:]
    mask = golden["mask"]
    alpha = golden["gp_alpha"]
    local = WGANLocalCritic(cnum=weights.d_cnum)
    glob = WGANGlobalCritic(cnum=weights.d_cnum)
    crop = lambda x: x[:, t:t + h, l:l + w]  # noqa: E731
    gp_l = losses.gradient_penalty(lambda x: local.apply(weights.discriminator["local"], x),
                                   losses.random_interpolates(crop(real), crop(fake), alpha), crop(mask))
    gp_g = losses.gradient_penalty(lambda x: glob.apply(weights.discriminator["global"], x),
                                   losses.random_interpolates(real, fake, alpha), mask)
    np.testing.assert_allclose(float(gp_l), float(golden["gp_local"]), rtol=TOL)
    np.testing.assert_allclose(float(gp_g), float(golden["gp_global"]), rtol=TOL)


# ---------------------------------------------------------------------------------------------
# Losses against hand computations

def test_gradient_penalty_on_a_tiny_linear_critic_by_hand():
    # D(x) = sum(w * x) + 3: dD/dx = w everywhere, whatever x. With w = 2 on channel 0 and 1 on
    # channels 1, 2, and a hole of 3 pixels: slope^2 = 3 * (4 + 1 + 1) = 18.
    wgt = jnp.asarray([2.0, 1.0, 1.0])
    critic = lambda x: jnp.sum(x * wgt, axis=(1, 2, 3))[:, None] + 3.0  # noqa: E731
    real = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 4, 3)), jnp.float32)
    fake = real + 1.0
    mask = np.zeros((1, 4, 4, 1), np.float32)
    mask[0, 1, 1:4] = 1.0
    x = losses.random_interpolates(real, fake, jnp.asarray([0.25, 0.75]))
    np.testing.assert_allclose(np.asarray(x[0]), np.asarray(real[0]) + 0.25, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(x[1]), np.asarray(real[1]) + 0.75, rtol=1e-6)
    gp = losses.gradient_penalty(critic, x, jnp.asarray(mask))
    np.testing.assert_allclose(float(gp), (np.sqrt(18.0) - 1.0) ** 2, rtol=1e-6)
    # no mask: all 16 pixels count; an empty mask gives 1 (and a finite gradient)
    np.testing.assert_allclose(float(losses.gradient_penalty(critic, x)), (np.sqrt(96.0) - 1) ** 2, rtol=1e-6)
    empty = jnp.zeros((1, 4, 4, 1))
    assert float(losses.gradient_penalty(critic, x, empty)) == 1.0
    # a critic whose gradient differs per sample: D(x) = 0.5 * sum(x^2) -> dD/dx = x
    sq = lambda x: 0.5 * jnp.sum(jnp.square(x), axis=(1, 2, 3))  # noqa: E731
    xs = np.asarray(x)
    slopes = np.sqrt((xs ** 2 * mask).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(float(losses.gradient_penalty(sq, x, jnp.asarray(mask))),
                               np.mean((slopes - 1) ** 2), rtol=1e-5)


def test_spatial_discount_map_formula_and_original(golden):
    sd = losses.spatial_discount(128, 128, 0.9)
    assert sd.shape == (1, 128, 128, 1)
    for i, j in ((0, 0), (0, 64), (64, 64), (10, 100), (127, 3), (64, 1)):
        expect = max(0.9 ** min(i, 128 - i), 0.9 ** min(j, 128 - j))
        np.testing.assert_allclose(sd[0, i, j, 0], expect, rtol=1e-6)
    np.testing.assert_allclose(sd[0, 64, 64, 0], 0.9 ** 64, rtol=1e-5)
    crop = golden["discount_map"].shape[1]
    np.testing.assert_allclose(losses.spatial_discount(crop, crop, 0.9), golden["discount_map"], rtol=1e-6)


def test_wgan_and_l1_terms_by_hand():
    pos, neg = jnp.asarray([[1.0], [3.0]]), jnp.asarray([[0.5], [-1.5]])
    assert float(losses.wgan_d(pos, neg)) == pytest.approx((0.5 - 1.5 - 1.0 - 3.0) / 2)
    assert float(losses.wgan_g(neg)) == pytest.approx(0.5)
    a = jnp.zeros((2, 2, 2, 1))
    b = jnp.asarray(np.arange(8, dtype=np.float32).reshape(2, 2, 2, 1))
    mask = jnp.asarray([[[[1.0], [0.0]], [[0.0], [0.0]]]])  # one hole pixel of 4, shared
    # known pixels: values 1, 2, 3 and 5, 6, 7 -> mean 4
    assert float(losses.known_l1(a, b, mask)) == pytest.approx(4.0)
    disc = jnp.asarray([[[[1.0], [0.5]], [[0.5], [0.25]]]])
    expect = np.mean(np.arange(8).reshape(2, 2, 2, 1) * np.asarray(disc))
    assert float(losses.discounted_l1(a, b, disc)) == pytest.approx(expect)


# ---------------------------------------------------------------------------------------------
# The family

def _configs():
    import importlib.util
    spec = importlib.util.spec_from_file_location("deepfill_v1_configs",
                                                  os.path.join(ROOT, "configs", "deepfill_v1.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _stacked_batches(fam, config, rows, seed=0):
    """batches_per_step fresh batches of `rows` smooth images with one deepfill_box mask each, the
    family's fields computed as the pipeline does, stacked [k, rows, ...]."""
    from inpaintjax import masks as masks_lib
    from inpaintjax.data import fields
    rng = np.random.default_rng(seed)
    size = config.data.image_size
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    out = []
    for k in range(fam.batches_per_step):
        f = rng.uniform(0.5, 2.0, (rows, 1, 1, 3))
        images = (0.5 + 0.4 * np.sin(2 * np.pi * f * (yy + 0.5 * xx)[None, :, :, None])).astype(np.float32)
        hole = masks_lib.make_mask(config.mask.generator, np.random.default_rng([seed, k]), size, size)
        holes = np.broadcast_to(hole[None, :, :, None], (rows, size, size, 1)).astype(np.float32)
        out.append(fields.compute_batch(fam.batch_spec(), images, holes,
                                        [np.random.default_rng(i) for i in range(rows)]))
    return {key: np.stack([o[key] for o in out]) for key in out[0]}


def test_crop_boxes_by_hand():
    from inpaintjax.families.common import crop_boxes
    x = jnp.asarray(np.arange(2 * 256 * 256, dtype=np.float32).reshape(2, 256, 256, 1))
    # sample 0: the original's geometry, box (top 40, left 100) with the hole shrunk by 8 / 12
    # px per side -> hole box (48, 112, 112, 104); sample 1: a hole near the corner (clamped)
    boxes = jnp.asarray([[48, 112, 112, 104], [250, 2, 4, 4]], jnp.int32)
    crops = np.asarray(crop_boxes(x, boxes, 128))
    np.testing.assert_array_equal(crops[0], np.asarray(x[0, 40:168, 100:228]))
    np.testing.assert_array_equal(crops[1], np.asarray(x[1, 128:256, 0:128]))
    with pytest.raises(ValueError, match="local_size 300 exceeds"):
        crop_boxes(x, boxes, 300)


@pytest.mark.long
@fs.group("deepfill_v1")
def test_family_train_steps_lower_the_l1_terms():
    # the shared step of the cross-family tests (tests/family_steps.py): the `test` variant, 8 rows
    run = fs.family_step("deepfill_v1")
    fam, config, step, state = run.family, run.config, run.step, run.state
    assert config.optim.critic_steps == _configs().get_config("test").optim.critic_steps
    assert fam.batches_per_step == config.optim.critic_steps + 1 == 3
    assert set(fam.batch_spec()) == {"image", "mask", "hole_box"}
    batch = _stacked_batches(fam, config, fs.ROWS)
    d0 = state.d_params
    history = []
    for i in range(6):
        state, metrics = step(state, batch, jax.random.key(i), run.frozen)
        history.append({k: float(v) for k, v in metrics.items()})
    assert set(history[0]) >= {"g/loss", "g/l1_discounted", "g/l1_known", "g/wgan_global",
                               "g/wgan_local", "d/loss", "d/wgan_global", "d/wgan_local",
                               "d/gp_global", "d/gp_local", "g/grad_norm", "d/grad_norm", "g/lr"}
    assert all(np.isfinite(v) for h in history for v in h.values())
    for key in ("g/l1_discounted", "g/l1_known"):
        series = [h[key] for h in history]
        assert series[-1] < 0.9 * series[0], (key, series)
    h = history[-1]
    c = config.loss
    expect = (c.gan_alpha * (h["g/wgan_global"] + h["g/wgan_local"]) + c.l1_alpha * h["g/l1_discounted"]
              + c.ae_alpha * h["g/l1_known"])
    assert h["g/loss"] == pytest.approx(expect, rel=1e-5)
    expect_d = h["d/wgan_global"] + h["d/wgan_local"] + c.gp_lambda * (h["d/gp_global"] + h["d/gp_local"])
    assert h["d/loss"] == pytest.approx(expect_d, rel=1e-4)
    assert int(state.step) == 6
    # the critics were updated critic_steps times per step (Adam's count)
    assert int(state.d_opt_state.inner_state[0].count) == 6 * config.optim.critic_steps
    assert int(state.g_opt_state.inner_state[0].count) == 6
    assert float(jnp.abs(state.d_params["local"]["conv1"]["kernel"] - d0["local"]["conv1"]["kernel"]).max()) > 0
    with pytest.raises(ValueError, match="needs 3 stacked batches"):
        step(state, jax.tree.map(lambda x: x[:2], batch), jax.random.key(0), {})


def test_critics_warm_up_and_decay_over_the_generators_steps():
    """k critic updates per training step: the critics' schedule spans k times as many updates, so
    the first critic update of step i applies the rate of the generator's update of step i (which
    tests/test_learning_rate_log.py re-derives by hand), through the warm-up and the decay."""
    from inpaintjax.families import common
    from inpaintjax.families import get as get_family
    config = _configs().get_config("test,num_steps=12,optim.schedule=cosine,optim.warmup_steps=4")
    fam = get_family("deepfill_v1")(config)
    assert fam.critic_steps == 2
    params = {"w": jnp.zeros(3)}
    grads = {"w": jnp.ones(3)}
    g_state, d_state = fam.g_tx.init(params), fam.d_tx.init(params)
    g_rates, d_rates = [], []
    for _ in range(12):
        _, g_state = common.apply_gradients(fam.g_tx, grads, g_state, params)
        g_rates.append(float(common.learning_rate(g_state)))
        for j in range(fam.critic_steps):
            _, d_state = common.apply_gradients(fam.d_tx, grads, d_state, params)
            if j == 0:
                d_rates.append(float(common.learning_rate(d_state)))
    np.testing.assert_allclose(d_rates, g_rates, rtol=1e-6, atol=1e-12)
    assert g_rates[:5] == pytest.approx([0.0, 2.5e-4, 5e-4, 7.5e-4, 1e-3])  # warm-up over 4 steps


def test_family_inpaint_keeps_known_pixels(weights, golden):
    from inpaintjax.families import get as get_family
    from inpaintjax.families.deepfill_v1 import config_for_weights
    fam = get_family("deepfill_v1")(config_for_weights(weights))
    image = (golden["image"] + 1.0) / 2.0
    mask = np.broadcast_to(golden["mask"], image.shape[:3] + (1,)).astype(np.float32)
    out = jax.jit(fam.inpaint)(weights.generator, fam.inference_inputs({"image": image, "mask": mask}))
    assert out["output"].shape == out["stage1"].shape == out["flow"].shape == image.shape
    known = mask[..., 0] == 0
    np.testing.assert_array_equal(np.asarray(out["output"])[known], image[known])
    # in the hole: the original's stage 2, mapped to [0, 1]
    np.testing.assert_allclose(np.asarray(out["output"])[~known], ((golden["stage2"] + 1) / 2)[~known],
                               atol=TOL)


def test_config_variants():
    configs = _configs()
    p = configs.get_config("places2")
    assert (p.family, p.data.image_size, p.batch_size, p.optim.critic_steps) == ("deepfill_v1", 256, 16, 5)
    assert (p.model.cnum, p.model.d_cnum, p.model.local_size) == (32, 64, 128)
    assert (p.optim.lr, p.optim.b1, p.optim.b2) == (1e-4, 0.5, 0.9)
    assert (p.loss.l1_alpha, p.loss.ae_alpha, p.loss.coarse_alpha, p.loss.gan_alpha,
            p.loss.gp_lambda, p.loss.gamma) == (1.2, 1.2, 1.2, 0.001, 10.0, 0.9)
    assert (p.mask.generator, p.mask.per_batch) == ("deepfill_box", True)
    assert configs.get_config("celebahq").data.crop == "resize"
    d = configs.get_config("demo,num_steps=7")
    assert d.num_steps == 7 and d.data.source == "samples" and d.model.local_size == 32
    with pytest.raises(ValueError, match="unknown variant"):
        configs.get_config("places3")
    with pytest.raises(ValueError, match="modifier"):
        configs.get_config("demo,guided")


@pytest.mark.slow
def test_full_size_forward_256_of_the_released_configuration():
    """The released generator (cnum 32, 3,601,542 parameters) at 256x256, once, with random
    weights that carry signal: holes' contents are never seen, known pixels come back exactly,
    and the known pixels reach the hole's fill."""
    from inpaintjax.families.deepfill_v1 import DeepFillV1, default_config
    fam = DeepFillV1(default_config(cnum=32))
    size = 256
    abstract = jax.eval_shape(fam.generator.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)),
                              jnp.zeros((1, 64, 64, 1)))["params"]
    rng = np.random.default_rng(0)

    def glorot(x, gain=2.0):
        if len(x.shape) == 4:
            a = gain * np.sqrt(6.0 / (np.prod(x.shape[:3]) + np.prod(x.shape[:2]) * x.shape[3]))
            return jnp.asarray(rng.uniform(-a, a, x.shape), jnp.float32)
        return jnp.asarray(rng.uniform(-0.05, 0.05, x.shape), jnp.float32)
    params = jax.tree.map(glorot, abstract)
    assert sum(p.size for p in jax.tree.leaves(params)) == 3_601_542
    yy, xx = np.mgrid[0:size, 0:size] / size
    photo = np.stack([0.5 + 0.4 * np.sin(7 * xx + 3 * yy), 0.3 + 0.5 * yy, 0.6 - 0.3 * xx], -1)
    mask = np.zeros((3, size, size, 1), np.float32)
    mask[:, 64:128, 96:160] = 1.0
    image = np.stack([photo] * 3).astype(np.float32)
    image[1] = np.where(mask[0] > 0, 1.0 - photo, photo)                  # other hole contents
    image[2] = np.where(mask[0] > 0, photo, np.clip(photo + 0.3, 0, 1))   # other known pixels
    out = jax.jit(fam.inpaint)({"params": params}, {"image": jnp.asarray(image), "mask": jnp.asarray(mask)})
    output, stage1 = np.asarray(out["output"]), np.asarray(out["stage1"])
    assert output.shape == stage1.shape == np.asarray(out["flow"]).shape == (3, size, size, 3)
    known = mask[..., 0] == 0
    np.testing.assert_array_equal(output[known], image[known])
    np.testing.assert_allclose(output[1], output[0] * mask[0] + image[1] * (1 - mask[0]), atol=1e-5)
    hole = ~known[0]
    assert np.abs(output[2][hole] - output[0][hole]).mean() > 1e-3
    assert output[0][hole].std() > 1e-3 and 0 <= output.min() and output.max() <= 1


def test_inpainter_loads_official_v1_weights(golden):
    from inpaintjax.inference import Inpainter
    inp = Inpainter.load(GOLDEN_DIR)
    assert inp.family.name == "deepfill_v1"
    image = ((golden["image"][0] + 1.0) / 2.0).astype(np.float32)
    hole = golden["mask"][0, :, :, 0] > 0
    out = np.asarray(inp.inpaint(image, hole.astype(np.uint8)))
    np.testing.assert_allclose(out[hole], ((golden["stage2"][0] + 1.0) / 2.0)[hole], atol=TOL)
    np.testing.assert_array_equal(out[~hole], image[~hole])
    with pytest.raises(ValueError, match="holds deepfill_v1 weights, not deepfill_v2's: pass family='deepfill_v1'"):
        Inpainter.load(GOLDEN_DIR, family="deepfill_v2")


def test_generator_names_a_mask_of_the_wrong_shape():
    g = DeepFillV1Generator(cnum=8)
    x = jnp.zeros((2, 32, 32, 3))

    def init(*args):
        return jax.eval_shape(lambda: g.init(jax.random.key(0), *args))
    with pytest.raises(ValueError, match=r"DeepFillV1Generator: mask .*\(2, 16, 16, 1\).*\[2, 32, 32, 1\]"):
        init(x, jnp.zeros((2, 16, 16, 1)))
    with pytest.raises(ValueError, match=r"DeepFillV1Generator: image .*\(2, 32, 32, 4\).*3 channels"):
        init(jnp.zeros((2, 32, 32, 4)), jnp.zeros((2, 32, 32, 1)))
