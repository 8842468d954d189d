"""The random-number generator of parameter initialisation: a counter-based hash, cheap to compile.

A family's initialisation draws every parameter separately (flax folds each module's path into the
key, then draws the parameter), so its program holds one key derivation and one bit generation per
parameter. With JAX's `threefry2x32` each is 20 rounds of a block cipher (a loop on the CPU), with
`rbg` XLA's RngBitGenerator, which XLA:CPU expands into Philox's 64-bit multiplies: most of the
initialisation's instructions. Here each is two rounds of a 32-bit integer hash, a dozen
instructions: the initialisation programs compile 2-3.4x faster (docs/performance.md, "Parameter
initialisation"), and every backend computes the same bits (pure integer arithmetic; XLA's
RngBitGenerator may differ by backend).

The generator. A key is two uint32 words (k0, k1); word i of a stream is

    H(k, i) = mix(mix(i ^ k0) + k1)      (32-bit wrap-around arithmetic)

where `mix` is the 32-bit finaliser `lowbias32` from Chris Wellons' hash-prospector
(x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16), a bijection with
strong avalanche. `random_bits` is H(k, 0), H(k, 1), ... (8 and 16 bits: each word's top bits;
64 bits: two words, the first the high half). `split` and `fold_in` read the streams of k with its
first word xor-ed with a constant of their own (so their keys are not draws of k): child j of a
split is the words (2j, 2j+1) of k0 ^ SPLIT's stream, fold_in(k, d) the words (2d, 2d+1) of
k0 ^ FOLD's. For a fixed key the stream is a permutation of the counters (no word repeats within
2^32 draws). Not for cryptography, nor for anything but drawing initial weights; training-time
randomness (masks, dropout, the families' step keys) uses JAX's default generator.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
import jax.extend.random as jex_random

_M1, _M2 = 0x7FEB352D, 0x846CA68B   # lowbias32's multipliers
# the domain separation of split and fold_in (the golden-ratio constant and one of murmur3's)
SPLIT, FOLD = 0x9E3779B9, 0x85EBCA6B


def mix(x: jax.Array) -> jax.Array:
    """lowbias32 on uint32 values."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(_M1)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(_M2)
    return x ^ (x >> 16)


def _stream(k0, k1, counters):
    return mix(mix(counters ^ k0) + k1)


def _words(key, n: int, domain: int = 0) -> jax.Array:
    """The first n words of the stream of `key` (uint32[2]), its first word xor-ed with `domain`."""
    return _stream(key[0] ^ jnp.uint32(domain), key[1], lax.iota(jnp.uint32, n))


def _seed(seed: jax.Array) -> jax.Array:
    s = jnp.asarray(seed)
    lo = lax.convert_element_type(s, jnp.uint32)
    hi = (lax.convert_element_type(s >> 32, jnp.uint32) if s.dtype.itemsize == 8
          else jnp.zeros((), jnp.uint32))
    return _words(jnp.stack([lo, hi]), 2, FOLD)


def _split(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return _words(key, 2 * math.prod(shape), SPLIT).reshape(*shape, 2)


def _fold_in(key: jax.Array, data: jax.Array) -> jax.Array:
    d = lax.convert_element_type(data, jnp.uint32) * jnp.uint32(2)
    return _stream(key[0] ^ jnp.uint32(FOLD), key[1], jnp.stack([d, d + jnp.uint32(1)]))


def _random_bits(key: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
    n = math.prod(shape)
    if bit_width == 64:  # only asked for with jax_enable_x64
        words = _words(key, 2 * n).reshape(n, 2).astype(jnp.uint64)
        return ((words[:, 0] << 32) | words[:, 1]).reshape(shape)
    words = _words(key, n).reshape(shape)
    if bit_width == 32:
        return words
    if bit_width not in (8, 16):
        raise ValueError(f"param_prng: {bit_width}-bit draws are not supported (8, 16, 32 or 64)")
    return lax.convert_element_type(words >> (32 - bit_width), jnp.dtype(f"uint{bit_width}"))


HASH32 = jex_random.define_prng_impl(key_shape=(2,), seed=_seed, split=_split, fold_in=_fold_in,
                                     random_bits=_random_bits, name="inpaintjax_hash32", tag="h32")


def param_key(rng: jax.Array) -> jax.Array:
    """A HASH32 key drawn from `rng` (any JAX key), for parameter initialisation."""
    return jax.random.wrap_key_data(jax.random.bits(rng, (2,), jnp.uint32), impl=HASH32)
