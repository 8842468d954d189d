"""DeepFill v2: generator / SN-PatchGAN against the authors' own graph, structure, full-size
forwards, losses, the family's training step and inpaint, and the config variants. Truth: golden
outputs of JiahuiYu/generative_inpainting's TF graph (tests/fixtures/deepfill_v2_golden, made by
its make_golden.py), the published parameter counts and layer tables, hand-computed loss values,
and behaviour the original guarantees (holes are zeroed before the network sees them; known pixels
are returned unchanged)."""

import functools
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaintjax import losses
from inpaintjax.convert.deepfill import from_tf_checkpoint
from inpaintjax.families import get as get_family
from inpaintjax.models.deepfill import DeepFillV2Generator
from inpaintjax.models.discriminators import SNPatchGAN

import family_steps as fs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CONFIGS = _load("configs/deepfill_v2.py", "deepfill_v2_configs")
# the official layer table (JiahuiYu/generative_inpainting `inpaint_model.py::build_inpaint_net`),
# written independently of the model code
FIXTURE = _load("tests/fixtures/make_tf_checkpoint.py", "make_tf_checkpoint")


def _abstract_params(model, *args):
    return jax.eval_shape(lambda: model.init(jax.random.key(0), *args))["params"]


def _random_params(abstract, seed=0, gain=2.5):
    """Glorot-uniform kernels times `gain`, small random biases, from numpy (faster than a jitted
    init). The gain keeps signals alive through 17 gated layers (ELU * sigmoid roughly halves
    them at every layer), so inputs visibly reach the outputs."""
    rng = np.random.default_rng(seed)

    def make(x):
        if len(x.shape) == 4:
            fan_in, fan_out = np.prod(x.shape[:3]), np.prod(x.shape[:2]) * x.shape[3]
            a = gain * np.sqrt(6.0 / (fan_in + fan_out))
            return jnp.asarray(rng.uniform(-a, a, x.shape), jnp.float32)
        return jnp.asarray(rng.uniform(-0.05, 0.05, x.shape), jnp.float32)
    return jax.tree.map(make, abstract)


def _flat_names(tree, prefix=()):
    out = {}
    for k, v in tree.items():
        if hasattr(v, "items"):
            out.update(_flat_names(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = tuple(v.shape)
    return out


# ---------------------------------------------------------------------------------------------
# The authors' graph (golden outputs)

GOLDEN = os.path.join(ROOT, "tests", "fixtures", "deepfill_v2_golden")


@functools.lru_cache(maxsize=1)
def _golden():
    return dict(np.load(os.path.join(GOLDEN, "golden.npz"))), from_tf_checkpoint(GOLDEN)


def test_generator_matches_the_authors_graph():
    # generative_inpainting's build_inpaint_net run by TensorFlow on the same weights (BGR) and
    # inputs; the converter makes the weights RGB. Stage 1, stage 2 and the attention-dependent
    # hole contents all at 1e-4.
    z, w = _golden()
    assert (w.cnum, w.guided) == (int(z["cnum"]), False)
    g = DeepFillV2Generator(cnum=w.cnum)
    s1, s2 = jax.jit(g.apply)(w.generator, z["image"], z["mask"])
    np.testing.assert_allclose(np.asarray(s1), z["stage1"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(np.asarray(s2), z["stage2"], rtol=0, atol=1e-4)


def test_sn_patchgan_matches_the_authors_graph():
    # build_gan_discriminator on the training graph's input: [images; composite] with the mask
    # as 4th channel, one power iteration from the checkpoint's u
    z, w = _golden()
    assert w.d_cnum == int(z["d_cnum"])
    mask = z["mask"]
    complete = z["stage2"] * mask + z["image"] * (1 - mask)
    x = np.concatenate([np.concatenate([z["image"], complete]),
                        np.broadcast_to(mask, (4,) + mask.shape[1:])], axis=-1)
    out = jax.jit(SNPatchGAN(cnum=w.d_cnum).apply)(w.discriminator, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(out), z["d_output"], rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Structure

def test_generator_parameter_count_and_official_layer_table():
    x, m = jnp.zeros((1, 256, 256, 3)), jnp.zeros((1, 256, 256, 1))
    params = _abstract_params(DeepFillV2Generator(cnum=48), x, m)
    # the released DeepFill v2 generator's parameter count
    assert sum(p.size for p in jax.tree.leaves(params)) == 4_052_478
    # every layer of `build_inpaint_net`, with its TF name and kernel shape, and nothing else
    expected = {}
    for path, k, cin, cout in FIXTURE.generator_layers(48):
        parts = path.split("/")
        key = (parts[0], "conv", "conv") if len(parts) == 2 else (parts[0], "conv")
        expected[key + ("kernel",)] = (k, k, cin, cout)
        expected[key + ("bias",)] = (cout,)
    assert _flat_names(params) == expected
    # guided: one more input channel in conv1 only (5x5x1x48 weights)
    guided = _abstract_params(DeepFillV2Generator(cnum=48, guided=True), x, m, m)
    assert sum(p.size for p in jax.tree.leaves(guided)) == 4_052_478 + 5 * 5 * 48
    # remat and a bfloat16 compute dtype keep the parameter tree (names, float32 storage; what
    # remat computes: test_remat_gives_the_same_forward_and_gradients)
    rem = _abstract_params(DeepFillV2Generator(cnum=48, remat=True, dtype=jnp.bfloat16), x, m)
    assert _flat_names(rem) == expected
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(rem))


def test_sn_patchgan_parameter_count_and_output_shape():
    d = SNPatchGAN(cnum=64)
    x = jnp.zeros((2, 256, 256, 4))
    variables = jax.eval_shape(lambda: d.init(jax.random.key(0), x))
    # the parameter count of generative_inpainting `build_sn_patch_gan_discriminator` (4-ch input)
    assert sum(p.size for p in jax.tree.leaves(variables["params"])) == 5_946_816
    chans = [4, 64, 128, 256, 256, 256, 256]
    for i in range(6):
        assert variables["params"][f"conv{i + 1}"]["conv"]["kernel"].shape == (5, 5, chans[i], chans[i + 1])
    out = jax.eval_shape(lambda v: d.apply(v, x), variables)
    assert out.shape == (2, 4 * 4 * 256)


def test_sn_patchgan_leaky_relu_on_last_layer():
    # with every weight zero and bias -1 the output is exactly LeakyReLU_0.2(-1) = -0.2 everywhere:
    # the original applies the activation after conv6 too
    d = SNPatchGAN(cnum=2)
    x = jnp.ones((1, 64, 64, 4))
    v = jax.eval_shape(d.init, jax.random.key(0), x)
    params = jax.tree.map(lambda p: jnp.zeros(p.shape), v["params"])
    stats = jax.tree.map(lambda p: jnp.ones(p.shape), v["batch_stats"])
    params["conv6"]["conv"]["bias"] = -jnp.ones_like(params["conv6"]["conv"]["bias"])
    # a zero kernel has sigma 0; flax then divides by 1, keeping the zero kernel
    out = jax.jit(d.apply)({"params": params, "batch_stats": stats}, x)
    np.testing.assert_allclose(np.asarray(out), -0.2, rtol=0, atol=1e-7)
    assert out.shape == (1, 8)


# ---------------------------------------------------------------------------------------------
# Full-size forward passes (one each)

@pytest.mark.slow
def test_full_size_forward_256_ignores_hole_contents_and_reads_known_pixels():
    """The released generator (cnum 48, 4,052,478 parameters) at 256x256, once, with random
    weights that carry signal: what is in the hole cannot matter (the generator zeroes it), the
    known pixels reach the hole's fill, outputs in range."""
    size = 256
    g = DeepFillV2Generator(cnum=48)
    x = np.random.default_rng(1).uniform(-1, 1, (3, size, size, 3)).astype(np.float32)
    m = np.zeros((1, size, size, 1), np.float32)
    m[:, size // 4: size // 2, size // 3: size // 3 + size // 4] = 1.0
    x[1] = np.where(m[0] > 0, -x[0], x[0])          # other hole contents
    x[2] = np.where(m[0] > 0, x[0], -x[0])          # other known pixels
    params = _random_params(_abstract_params(g, jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 8, 8, 1))))
    assert sum(p.size for p in jax.tree.leaves(params)) == 4_052_478
    s1, s2, flow = (np.asarray(a) for a in jax.jit(
        lambda p, a, b: g.apply({"params": p}, a, b, return_flow=True))(params, jnp.asarray(x), jnp.asarray(m)))
    assert s1.shape == s2.shape == (3, 256, 256, 3)
    assert flow.shape == (3, 64, 64, 3)
    for a in (s1, s2):
        assert np.isfinite(a).all() and np.abs(a).max() <= 1.0 and a.std() > 1e-3
    assert flow.min() >= 0.0 and flow.max() <= 1.0
    np.testing.assert_allclose(s1[0], s1[1], atol=1e-5)
    np.testing.assert_allclose(s2[0], s2[1], atol=1e-5)
    hole = m[0, ..., 0] > 0
    assert np.abs(s2[2][hole] - s2[0][hole]).mean() > 1e-2


def test_remat_gives_the_same_forward_and_gradients():
    """remat=True recomputes activations in the backward pass instead of storing them: the loss
    and every parameter gradient are those of the plain network (tiny widths, 32x32)."""
    x = jnp.asarray(np.random.default_rng(4).uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
    m = jnp.zeros((1, 32, 32, 1)).at[:, 8:20, 10:26].set(1.0)
    plain, remat = DeepFillV2Generator(cnum=8), DeepFillV2Generator(cnum=8, remat=True)
    params = _random_params(_abstract_params(plain, x, m), seed=6)

    def loss(net):
        def f(p):
            s1, s2 = net.apply({"params": p}, x, m)
            return jnp.mean(jnp.abs(s1 - x)) + jnp.mean(jnp.square(s2 - x))
        return jax.jit(jax.value_and_grad(f))(params)
    (l0, g0), (l1, g1) = loss(plain), loss(remat)
    assert float(l0) == pytest.approx(float(l1), rel=1e-6)
    assert float(optax_norm(g0)) > 0
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-7),
                 g0, g1)


def optax_norm(tree):
    return np.sqrt(sum(float(np.sum(np.square(np.asarray(v, np.float64)))) for v in jax.tree.leaves(tree)))


def test_sizes_must_be_multiples_of_8_and_guide_matches_mode():
    g = DeepFillV2Generator(cnum=8)
    with pytest.raises(ValueError, match="multiples of 8"):
        jax.eval_shape(lambda: g.init(jax.random.key(0), jnp.zeros((1, 36, 40, 3)), jnp.zeros((1, 36, 40, 1))))
    with pytest.raises(ValueError, match="guided=True"):
        jax.eval_shape(lambda: DeepFillV2Generator(cnum=8, guided=True).init(
            jax.random.key(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 32, 32, 1))))
    # non-square sizes work (multiples of 8)
    out = jax.eval_shape(lambda: g.init_with_output(
        jax.random.key(0), jnp.zeros((2, 40, 56, 3)), jnp.zeros((1, 40, 56, 1)), return_flow=True)[0])
    assert [o.shape for o in out] == [(2, 40, 56, 3), (2, 40, 56, 3), (2, 10, 14, 3)]


def test_guided_forward_uses_the_sketch():
    g = DeepFillV2Generator(cnum=8, guided=True)
    x = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (1, 32, 32, 3)), jnp.float32)
    m = jnp.zeros((1, 32, 32, 1)).at[:, 8:24, 8:24].set(1.0)
    params = _random_params(_abstract_params(g, x, m, m), seed=3)
    assert params["conv1"]["conv"]["kernel"].shape == (5, 5, 6, 8)  # [image, guide, ones, mask]
    f = jax.jit(lambda gd: g.apply({"params": params}, x, m, gd))
    no_sketch = f(jnp.zeros_like(m))
    sketch = jnp.zeros_like(m).at[:, 16, 8:24].set(1.0)
    with_sketch = f(sketch)
    assert np.abs(np.asarray(with_sketch[0] - no_sketch[0])).max() > 1e-3  # stage 1 reads the guide
    assert np.abs(np.asarray(with_sketch[1] - no_sketch[1])).max() > 1e-3  # and stage 2 follows


# ---------------------------------------------------------------------------------------------
# Losses (hand-worked values)

def test_losses_hand_worked():
    assert float(losses.l1(jnp.array([0.0, 1.0, -1.0, 0.5]), jnp.array([1.0, 1.0, 1.0, 0.0]))) == pytest.approx(0.875)
    pos = jnp.array([2.0, 0.5, -1.0])    # relu(1-pos) = 0, 0.5, 2    -> mean 5/6
    neg = jnp.array([-2.0, 0.0, 1.0])    # relu(1+neg) = 0, 1, 2      -> mean 1
    assert float(losses.hinge_d(pos, neg)) == pytest.approx(0.5 * 5 / 6 + 0.5 * 1.0)
    assert float(losses.hinge_g(neg)) == pytest.approx(1.0 / 3.0)


# ---------------------------------------------------------------------------------------------
# Family

def _batch(size, n, guided=False, seed=0):
    rng = np.random.default_rng(seed)
    from skimage import data
    photo = data.astronaut()[::4, ::4].astype(np.float32) / 255.0   # 128x128
    image = np.stack([photo[i * 8: i * 8 + size, i * 8: i * 8 + size] for i in range(n)])
    mask = np.zeros((n, size, size, 1), np.float32)
    for i in range(n):
        t, l = rng.integers(0, size // 2, 2)
        mask[i, t: t + size // 3, l: l + size // 3] = 1.0
    b = {"image": jnp.asarray(image), "mask": jnp.asarray(mask)}
    if guided:
        b["guide"] = jnp.asarray((rng.random((n, size, size, 1)) > 0.8).astype(np.float32))
    return b


# The loop's guarded step (training.loop.make_train_step, state and carry donated, as train()
# builds it) on the `test` config: compiled once, shared by the training test and the guard test
# (one xdist group, so one worker compiles it).
GUARDED_STEP = pytest.mark.xdist_group("deepfill_v2-guarded-step")


@functools.lru_cache(maxsize=1)
def _guarded_step():
    """(family, batch, initial state on the host, jitted guarded step, metric names); the step's
    key is fold_in(key(1), state.step)."""
    from inpaintjax.training.loop import make_train_step
    config = CONFIGS.get_config("test")
    fam = get_family("deepfill_v2")(config)
    batch = _batch(config.data.image_size, config.batch_size)
    state = jax.jit(fam.init_state)(jax.random.key(0), batch)
    root = jax.random.key(1)
    step_fn, names = make_train_step(fam, root, state, batch, {})
    step = jax.jit(step_fn, donate_argnums=(0, 1))
    return fam, batch, jax.device_get(state), step, names


@GUARDED_STEP
def test_family_train_steps_lower_l1_and_report_every_term():
    from inpaintjax.training.loop import metric_means, zero_carry
    fam, batch, host_state, step, names = _guarded_step()
    state = jax.device_put(host_state)
    history = []
    for _ in range(8):  # a fresh carry per step: its means are that step's metrics
        state, carry = step(state, zero_carry(names), batch, {})
        carry = jax.device_get(carry)
        assert int(carry["bad_step"]) == -1           # every step applied
        history.append(metric_means(carry))
    assert set(history[0]) >= {"g/l1_stage1", "g/l1_stage2", "g/gan", "g/loss", "d/hinge",
                               "g/grad_norm", "d/grad_norm"}
    assert all(np.isfinite(v) for h in history for v in h.values())
    l1 = [h["g/l1_stage1"] + h["g/l1_stage2"] for h in history]
    assert all(b < a for a, b in zip(l1, l1[1:])), l1
    assert l1[-1] < l1[0] - 0.01, l1
    # G loss is generative_inpainting `build_graph_with_losses`' sum (alphas 1 in `inpaint.yml`):
    # L1 stage 1 + L1 stage 2 - mean D(fake)
    h = history[-1]
    assert h["g/loss"] == pytest.approx(h["g/l1_stage1"] + h["g/l1_stage2"] + h["g/gan"], rel=1e-5)
    assert int(state.step) == 8
    # the discriminator's SN power-iteration state moves with training
    assert "conv1" in state.d_batch_stats
    moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - b).max()),
                         jax.device_get(state.d_batch_stats), host_state.d_batch_stats)
    assert max(jax.tree.leaves(moved)) > 0


@fs.group("deepfill_v2")
def test_gan_alpha_zero_step_is_adam_on_the_l1_terms_and_leaves_the_discriminator():
    """The shared family step (tests/family_steps.py: `test,loss.gan_alpha=0`, 8 rows, each with
    its own hole, a warm-up schedule whose first rate is 0) against Adam by hand-fed optax: two
    updates at the rates the schedule gives (0, then PEAK / WARMUP) on mean|x-s1| + mean|x-s2|."""
    import optax
    run = fs.family_step("deepfill_v2")
    assert float(run.config.loss.gan_alpha) == 0.0
    one, stacked = fs.batch(run.family, fs.mixed_holes())
    state = run.state
    new, metrics = run.step(state, stacked, jax.random.key(1), run.frozen)
    assert not any(k.startswith("d/") for k in metrics) and "g/gan" not in metrics
    # the first rate is 0: the parameters stay (bit for bit), Adam's moments take the gradient
    for a, b in zip(jax.tree.leaves(state.g_params), jax.tree.leaves(new.g_params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    new, metrics = run.step(new, stacked, jax.random.key(2), run.frozen)
    assert not any(k.startswith("d/") for k in metrics) and "g/gan" not in metrics
    for a, b in zip(jax.tree.leaves((state.d_params, state.d_batch_stats, state.d_opt_state)),
                    jax.tree.leaves((new.d_params, new.d_batch_stats, new.d_opt_state)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the reference: Adam (betas 0.5/0.999, the test config's) twice on the same gradient (the
    # parameters did not move), at the rates 0 and PEAK / WARMUP
    x = jnp.asarray(one["image"]) * 2 - 1
    mask = jnp.asarray(one["mask"])  # each row's own mask (sharing one is the pipeline's choice)
    assert float(jnp.abs(mask[0] - mask[-1]).max()) == 1.0

    def l1(p):
        s1, s2 = run.family.generator.apply({"params": p}, x, mask, None)
        return jnp.mean(jnp.abs(x - s1)) + jnp.mean(jnp.abs(x - s2))
    loss, grads = jax.jit(jax.value_and_grad(l1))(state.g_params)
    rates = [0.0, fs.PEAK / fs.WARMUP]
    tx = optax.adam(lambda count: jnp.asarray(rates)[count], b1=0.5, b2=0.999)

    @jax.jit  # optax's two updates as one program, not ~140 op-by-op compilations
    def adam_twice(params, grads):
        opt = tx.init(params)
        for _ in rates:
            updates, opt = tx.update(grads, opt, params)
            params = optax.apply_updates(params, updates)
        return params
    params = adam_twice(state.g_params, grads)
    assert float(metrics["g/loss"]) == pytest.approx(float(loss), rel=1e-6)
    moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in
                zip(jax.tree.leaves(params), jax.tree.leaves(state.g_params), strict=True))
    assert moved > 1e-4
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(new.g_params), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-7)


def test_family_keeps_each_rows_mask_and_guide_restricted_to_hole():
    # sharing one mask per batch is the input pipeline's choice (tests/test_paired_masks.py)
    config = CONFIGS.get_config("test,guided")
    batch = _batch(16, 2, guided=True)
    fam = get_family("deepfill_v2")(config)
    image, mask, guide = fam._inputs(batch)
    np.testing.assert_array_equal(np.asarray(mask), np.asarray(batch["mask"]))
    np.testing.assert_array_equal(np.asarray(guide), np.asarray(batch["guide"] * mask))
    np.testing.assert_allclose(np.asarray(image), np.asarray(batch["image"]) * 2 - 1)


def test_family_inpaint_keeps_known_pixels_and_ranges():
    config = CONFIGS.get_config("test")
    fam = get_family("deepfill_v2")(config)
    batch = _batch(32, 2)
    params = _random_params(_abstract_params(fam.generator, batch["image"], batch["mask"]), seed=5)
    out = jax.jit(fam.inpaint)({"params": params}, {"image": batch["image"], "mask": batch["mask"]})
    for k in ("output", "stage1", "flow"):
        assert out[k].shape == (2, 32, 32, 3)
        assert float(out[k].min()) >= 0.0 and float(out[k].max()) <= 1.0
    known = np.asarray(batch["mask"][..., 0]) == 0
    np.testing.assert_array_equal(np.asarray(out["output"])[known], np.asarray(batch["image"])[known])
    assert np.abs(np.asarray(out["output"])[~known] - np.asarray(batch["image"])[~known]).max() > 1e-3


# ---------------------------------------------------------------------------------------------
# Configs

def test_config_variants():
    p = CONFIGS.get_config("places2")
    assert (p.family, p.data.crop, p.data.image_size, p.batch_size) == ("deepfill_v2", "random", 256, 16)
    assert (p.model.cnum, p.model.d_cnum, p.optim.lr, p.optim.b1, p.optim.b2) == (48, 64, 1e-4, 0.5, 0.999)
    assert (p.loss.l1_alpha, p.loss.gan_alpha, p.mask.per_batch) == (1.0, 1.0, True)
    assert CONFIGS.get_config("celebahq").data.crop == "resize"
    g = CONFIGS.get_config("places2,guided")
    assert g.model.guided and not p.model.guided
    d = CONFIGS.get_config("demo,num_steps=7,mask.per_batch=False")
    assert d.num_steps == 7 and d.mask.per_batch is False and d.data.source == "samples"
    assert d.data.flip and not p.data.flip     # the demo flips; the released recipe does not
    assert CONFIGS.get_config("test").model.cnum == 8
    with pytest.raises(ValueError, match="unknown variant"):
        CONFIGS.get_config("places3")
    with pytest.raises(ValueError, match="modifier"):
        CONFIGS.get_config("demo,guidd")


# ---------------------------------------------------------------------------------------------
# The loop's non-finite guard on the real family

def _leaves(tree):
    return [(jax.tree_util.keystr(k), np.asarray(v))
            for k, v in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]]


def _assert_bitwise_equal(a, b):
    la, lb = _leaves(a), _leaves(b)
    assert [k for k, _ in la] == [k for k, _ in lb]
    for (k, x), (_, y) in zip(la, lb, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), k


@GUARDED_STEP
def test_guard_keeps_the_state_bit_for_bit_after_non_finite_steps():
    from inpaintjax.training.loop import zero_carry
    fam, batch, before, step, names = _guarded_step()
    state = jax.device_put(before)

    # 1. only the gradient is non-finite: a huge value in a hole pixel (the generator never sees
    # hole pixels; every loss stays finite) makes D's gradient overflow (unguarded, Adam's second
    # moment would become inf)
    image = np.array(batch["image"])
    r, c = np.argwhere(np.asarray(batch["mask"][0, ..., 0]) == 1)[0]
    image[0, r, c, 0] = 1e30
    poisoned = {"image": jnp.asarray(image), "mask": batch["mask"]}
    state, carry = step(state, zero_carry(names), poisoned, {})
    _assert_bitwise_equal(state, before)
    carry = jax.device_get(carry)
    assert int(carry["bad_step"]) == 1  # the first update, numbered as the log numbers it
    # every loss term was finite (checked by the guard too), only the gradient norm was not
    assert [k for k in names if carry["bad_terms"][k]] == ["d/grad_norm"]
    assert np.isinf(carry["bad_values"]["d/grad_norm"])

    # 2. a non-finite discriminator: one NaN weight in its conv3
    d_params = jax.tree_util.tree_map(lambda x: x, state.d_params)
    d_params["conv3"]["conv"]["kernel"] = d_params["conv3"]["conv"]["kernel"].at[0, 0, 0, 0].set(jnp.nan)
    sick = state.replace(d_params=d_params)
    sick_before = jax.device_get(sick)
    sick, carry = step(sick, zero_carry(names), batch, {})
    _assert_bitwise_equal(sick, sick_before)
    carry = jax.device_get(carry)
    assert carry["bad_terms"]["d/hinge"] and carry["bad_terms"]["d/grad_norm"]



# ---------------------------------------------------------------------------------------------
# Official weights: incomplete or damaged checkpoint folders are named, not "unrecognised"

def _release_copy(tmp_path, name, drop=()):
    import shutil
    folder = tmp_path / name
    folder.mkdir()
    for f in ("checkpoint", "golden.index", "golden.data-00000-of-00001"):
        if f not in drop:
            shutil.copy(os.path.join(GOLDEN, f), folder / f)
    return folder


def test_inpainter_load_names_the_missing_or_damaged_checkpoint_file(tmp_path):
    from inpaintjax.convert.tf_checkpoint import CheckpointError
    from inpaintjax.inference import Inpainter
    # the `checkpoint` file names golden, whose .index was not downloaded
    no_index = _release_copy(tmp_path, "no_index", drop=("golden.index",))
    with pytest.raises(CheckpointError, match=r"golden\.index does not exist"):
        Inpainter.load(str(no_index))
    # only the data shard: no `checkpoint` file and no .index
    data_only = _release_copy(tmp_path, "data_only", drop=("checkpoint", "golden.index"))
    with pytest.raises(CheckpointError, match=r"golden\.data-00000-of-00001.*golden\.index"):
        Inpainter.load(str(data_only))
    # an index cut short (an interrupted download)
    cut = _release_copy(tmp_path, "cut")
    data = (cut / "golden.index").read_bytes()
    (cut / "golden.index").write_bytes(data[:40])
    with pytest.raises(CheckpointError, match=r"golden\.index is too short"):
        Inpainter.load(str(cut))
    # the data file's own path is a way to name the checkpoint (as for the .index)
    inp = Inpainter.load(os.path.join(GOLDEN, "golden.data-00000-of-00001"))
    assert inp.family.name == "deepfill_v2" and inp.family.config.model.cnum == int(_golden()[0]["cnum"])


def test_generator_names_a_mask_or_guide_of_the_wrong_shape():
    g, gg = DeepFillV2Generator(cnum=8), DeepFillV2Generator(cnum=8, guided=True)
    x, m = jnp.zeros((2, 32, 32, 3)), jnp.zeros((2, 32, 32, 1))

    def init(model, *args):
        return jax.eval_shape(lambda: model.init(jax.random.key(0), *args))
    for bad in (jnp.zeros((2, 16, 16, 1)), jnp.zeros((2, 32, 32, 3)), jnp.zeros((32, 32)),
                jnp.zeros((3, 32, 32, 1))):
        with pytest.raises(ValueError, match=r"DeepFillV2Generator: mask .*%s.*\[2, 32, 32, 1\]"
                           % (r"\(" + ", ".join(map(str, bad.shape)) + r"\)")):
            init(g, x, bad)
    with pytest.raises(ValueError, match=r"DeepFillV2Generator: guide .*\(2, 16, 16, 1\).*\[2, 32, 32, 1\]"):
        init(gg, x, m, jnp.zeros((2, 16, 16, 1)))
    with pytest.raises(ValueError, match=r"DeepFillV2Generator: image .*\(2, 32, 32, 4\).*3 channels"):
        init(g, jnp.zeros((2, 32, 32, 4)), m)
    init(g, x, m[:1])  # one mask shared by the batch is fine
