"""The parameter-initialisation generator (inpaintjax/families/param_prng.py): its words against a
NumPy re-derivation of the formula its docstring states, and the statistics initial weights need
(uniform bits, normal draws, independent children of split and fold_in)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from inpaintjax.families import param_prng


def _mix(x):
    """lowbias32 (Chris Wellons' hash-prospector) on uint32, wrapping."""
    x = np.asarray(x, np.uint64) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    x ^= x >> 16
    return x


def _stream(k0, k1, counters):
    return _mix((_mix(np.asarray(counters, np.uint64) ^ k0) + k1) & 0xFFFFFFFF).astype(np.uint32)


SPLIT, FOLD = 0x9E3779B9, 0x85EBCA6B
KEY = (0x12345678, 0xDEADBEEF)


def _key(words=KEY):
    return jax.random.wrap_key_data(jnp.asarray(words, jnp.uint32), impl=param_prng.HASH32)


def test_mix_hand_worked():
    # by hand: 1 ^ (1 >> 16) = 1; * 0x7feb352d = 0x7feb352d; ^ (x >> 15 = 0xffd6) = 0x7febcafb;
    # * 0x846ca68b mod 2^32 = 0x6889f849; ^ (x >> 16 = 0x6889) = 0x688990c0
    assert int(param_prng.mix(jnp.uint32(1))) == 0x688990C0 == int(_mix(1))
    assert int(_mix(0)) == 0
    x = np.array([1, 2, 0xFFFFFFFF, 0x80000000], np.uint32)
    np.testing.assert_array_equal(np.asarray(param_prng.mix(jnp.asarray(x))), _mix(x).astype(np.uint32))
    # a bijection with avalanche: one flipped input bit flips about half of the output's
    flips = [bin(int(_mix(v)) ^ int(_mix(v ^ (1 << b)))).count("1") for v in range(1, 200) for b in range(32)]
    assert 15.0 < np.mean(flips) < 17.0


def test_words_split_fold_in_and_narrow_bits_follow_the_formula():
    k0, k1 = KEY
    key = _key()
    np.testing.assert_array_equal(np.asarray(jax.random.bits(key, (1000,), jnp.uint32)),
                                  _stream(k0, k1, np.arange(1000)))
    np.testing.assert_array_equal(np.asarray(jax.random.bits(key, (4, 5), jnp.uint32)),
                                  _stream(k0, k1, np.arange(20)).reshape(4, 5))
    np.testing.assert_array_equal(np.asarray(jax.random.bits(key, (64,), jnp.uint16)),
                                  (_stream(k0, k1, np.arange(64)) >> 16).astype(np.uint16))
    np.testing.assert_array_equal(np.asarray(jax.random.bits(key, (64,), jnp.uint8)),
                                  (_stream(k0, k1, np.arange(64)) >> 24).astype(np.uint8))
    children = np.asarray(jax.random.key_data(jax.random.split(key, 3)))
    np.testing.assert_array_equal(children, _stream(k0 ^ SPLIT, k1, np.arange(6)).reshape(3, 2))
    for d in (0, 1, 7, 2**31 + 5):
        folded = np.asarray(jax.random.key_data(jax.random.fold_in(key, d)))
        np.testing.assert_array_equal(folded, _stream(k0 ^ FOLD, k1, [(2 * d) % 2**32, (2 * d + 1) % 2**32]))
    # the same words under jit (one program) and op by op
    jitted = jax.jit(lambda k: jax.random.bits(jax.random.fold_in(k, 3), (16,), jnp.uint32))(key)
    np.testing.assert_array_equal(np.asarray(jitted),
                                  np.asarray(jax.random.bits(jax.random.fold_in(key, 3), (16,), jnp.uint32)))


def test_sixty_four_bit_draws_with_x64():
    k0, k1 = KEY
    with jax.enable_x64(True):
        got = np.asarray(jax.random.bits(_key(), (5,), jnp.uint64))
    words = _stream(k0, k1, np.arange(10)).astype(np.uint64).reshape(5, 2)
    np.testing.assert_array_equal(got, (words[:, 0] << np.uint64(32)) | words[:, 1])


def test_param_key_is_drawn_from_any_jax_key():
    for rng in (jax.random.key(0), jax.random.PRNGKey(0)):
        k = param_prng.param_key(rng)
        assert jax.random.key_impl(k) == param_prng.HASH32
        np.testing.assert_array_equal(np.asarray(jax.random.key_data(k)),
                                      np.asarray(jax.random.bits(rng, (2,), jnp.uint32)))
    a, b = (np.asarray(jax.random.key_data(param_prng.param_key(jax.random.key(s)))) for s in (0, 1))
    assert not np.array_equal(a, b)


def test_uniform_and_normal_draws_and_independent_children():
    n = 1 << 18
    key = param_prng.param_key(jax.random.key(3))
    u = np.asarray(jax.random.uniform(key, (n,)), np.float64)
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    counts = np.bincount(np.asarray(jax.random.bits(key, (n,), jnp.uint8)), minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-4
    # neighbouring counters are uncorrelated
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5 / np.sqrt(n)
    z = np.asarray(jax.random.normal(key, (n,)), np.float64)
    assert abs(z.mean()) < 5 / np.sqrt(n) and abs(z.std() - 1) < 5 / np.sqrt(2 * n)
    assert stats.kstest(z, "norm").pvalue > 1e-4
    # the streams of split children, of fold_in children and of the parent: pairwise uncorrelated
    kids = list(jax.random.split(key, 2)) + [jax.random.fold_in(key, d) for d in (0, 1, 2)] + [key]
    draws = np.stack([np.asarray(jax.random.normal(k, (n,)), np.float64) for k in kids])
    corr = np.corrcoef(draws)
    off = corr[~np.eye(len(kids), dtype=bool)]
    assert np.abs(off).max() < 5 / np.sqrt(n), np.abs(off).max()


def test_flax_initialisers_draw_the_documented_distributions():
    import flax.linen as nn
    key = param_prng.param_key(jax.random.key(0))
    params = nn.Dense(256).init(key, jnp.zeros((1, 512)))["params"]
    w = np.asarray(params["kernel"], np.float64)
    # flax's Dense: lecun normal, a normal truncated at 2 sd scaled to variance 1 / fan_in
    assert w.std() == pytest.approx(np.sqrt(1 / 512), rel=0.02)
    assert np.abs(w).max() <= 2 * np.sqrt(1 / 512) / 0.87962566103423978 + 1e-6

    class TwoLayers(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(256)(nn.Dense(256)(x))

    # each parameter draws from its own path: two same-shaped kernels are uncorrelated
    p = TwoLayers().init(key, jnp.zeros((1, 256)))["params"]
    a, b = (np.asarray(p[f"Dense_{i}"]["kernel"], np.float64).ravel() for i in (0, 1))
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(a.size)
