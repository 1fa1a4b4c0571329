"""The random operations of a training step (key splits, `fold_in`, dropout masks) with JAX's exact values.

JAX lowers its threefry hash on the CPU as a loop of five iterations, which XLA:CPU runs as a `while`
loop: a pass over the whole array per iteration for a dropout mask, and a fixed cost per call for a key
split. The same hash written out round by round is one elementwise kernel instead (and compiles faster).
Each function here computes exactly what JAX would for a threefry key with its default (partitionable)
bit layout, so a seed keeps its meaning on every backend; anything else (another key implementation, a
half-precision `p`, more than 2**32 values) is handed to `jax.random` itself. `unrolled(key)` gives
every `jax.random` sampler the same bits: the initializers draw through it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np
from jax import lax

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = np.uint32(0x1BD11BDA)
_MAX_VALUES = 2**32  # the counters' high word is zero below this, which the hash below assumes


def _rotate_left(x: jax.Array, bits: int) -> jax.Array:
    return lax.shift_left(x, np.uint32(bits)) | lax.shift_right_logical(x, np.uint32(32 - bits))


def threefry2x32(k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 with 20 rounds (Salmon et al., 2011), written out round by round in `jnp` ops."""
    keys = (k1, k2, k1 ^ k2 ^ _KEY_PARITY)
    x1, x2 = x1 + keys[0], x2 + keys[1]
    for block in range(5):
        for rotation in _ROTATIONS[block % 2]:
            x1 = x1 + x2
            x2 = x1 ^ _rotate_left(x2, rotation)
        x1 = x1 + keys[(block + 1) % 3]
        x2 = x2 + keys[(block + 2) % 3] + np.uint32(block + 1)
    return x1, x2


def _hash(k1: jax.Array, k2: jax.Array, counters: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The hash of each 64-bit counter `(0, counter)` under the key words `k1, k2`: how JAX draws bits,
    splits and folds in."""
    return threefry2x32(k1, k2, jnp.zeros_like(counters), counters)


def _words(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A threefry key's two 32-bit words."""
    data = jax.random.key_data(key)
    return data[..., 0], data[..., 1]


def random_bits(key: jax.Array, shape: Sequence[int], width: int = 32) -> jax.Array:
    """`jax.random.bits(key, shape)` of `width` 32 or 64 for a threefry key (fewer than 2**32 values)."""
    return _bits(*_words(key), tuple(shape), width)


def _bits(k1: jax.Array, k2: jax.Array, shape: tuple[int, ...], width: int) -> jax.Array:
    """Threefry's bits of `width` 8, 16, 32 or 64 for the key words `k1, k2`, as JAX's partitionable layout
    draws them: the hash of each element's index, its two words XORed (or joined, for 64 bits)."""
    hi, lo = _hash(k1, k2, lax.iota(np.uint32, math.prod(shape)).reshape(shape))
    if width == 64:
        return lax.shift_left(hi.astype(np.uint64), np.uint64(32)) | lo.astype(np.uint64)
    bits = hi ^ lo
    return bits if width == 32 else bits.astype(np.dtype(f"uint{width}"))


def _uniform(key: jax.Array, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
    """`jax.random.uniform(key, shape, dtype)` in [0, 1) for float32 or float64: random mantissa bits."""
    finfo = jnp.finfo(dtype)
    uint = np.dtype(f"uint{finfo.bits}")
    bits = random_bits(key, shape, finfo.bits)
    one = np.array(1.0, dtype).view(uint)
    mantissa = lax.shift_right_logical(bits, uint.type(finfo.bits - finfo.nmant)) | one
    return lax.bitcast_convert_type(mantissa, dtype) - np.array(1.0, dtype)


def _is_threefry(key: jax.Array) -> bool:
    """One typed threefry key, with JAX's default bit layout (what the functions here reproduce)."""
    return (isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.ndim == 0
            and str(jax.random.key_impl(key)) == "threefry2x32" and bool(jax.config.jax_threefry_partitionable))


def _hashed_keys(key: jax.Array, counters: jax.Array) -> jax.Array:
    """One new key per counter, its data the counter's hash."""
    hi, lo = _hash(*_words(key), counters)
    return jax.random.wrap_key_data(jnp.stack([hi, lo], axis=-1), impl="threefry2x32")


def split(key: jax.Array, num: int = 2) -> jax.Array:
    """`jax.random.split(key, num)`: `num` new keys."""
    if not _is_threefry(key) or not 0 < num < _MAX_VALUES:
        return jax.random.split(key, num)
    return _hashed_keys(key, lax.iota(np.uint32, num))


def fold_in(key: jax.Array, data: int | jax.Array) -> jax.Array:
    """`jax.random.fold_in(key, data)`: a new key for the integer `data` (a step or epoch number)."""
    if not _is_threefry(key) or np.shape(data) != ():
        return jax.random.fold_in(key, data)
    return _hashed_keys(key, jnp.asarray(data).astype(np.uint32))


def bernoulli(key: jax.Array, p: float | jax.Array, shape: Sequence[int]) -> jax.Array:
    """A boolean mask of `shape`, True with probability `p`: the values of `jax.random.bernoulli(key, p, shape)`."""
    shape = tuple(int(d) for d in shape)
    p = jnp.asarray(p)
    dtype = np.dtype(p.dtype)
    if (not _is_threefry(key) or dtype not in (np.dtype(np.float32), np.dtype(np.float64))
            or not 0 < math.prod(shape) < _MAX_VALUES):
        return jax.random.bernoulli(key, p, shape)
    return _kept_as_buffer(_uniform(key, shape, dtype), key) < p


def _kept_as_buffer(u: jax.Array, key: jax.Array) -> jax.Array:
    """`u` itself, returned by a `lax.cond` whose predicate is always true but only known at run time.

    XLA fuses cheap elementwise producers into every consumer: left alone, the hash would run again in the
    backward pass, once per element of whatever it is fused with there (pooling's gradient: four times the
    mask's size). A conditional's result is a buffer, so the hash runs once and both passes read it."""
    always = (_words(key)[0] | np.uint32(1)) != 0
    return lax.cond(always, lambda: u, lambda: jnp.zeros_like(u))


# ------------------------------------------------------------------ threefry's key, any `jax.random` sampler

_THREEFRY = jax.extend.random.threefry_prng_impl


def _unrolled_random_bits(key_data: jax.Array, width: int, shape: tuple[int, ...]) -> jax.Array:
    """The threefry implementation's `random_bits` for one key's data, with the hash written out."""
    if not 0 < math.prod(shape) < _MAX_VALUES or not jax.config.jax_threefry_partitionable:
        return _THREEFRY.random_bits(key_data, width, shape)
    return _bits(key_data[0], key_data[1], tuple(shape), width)


UNROLLED_THREEFRY = jax.extend.random.define_prng_impl(
    key_shape=(2,), seed=_THREEFRY.seed, split=_THREEFRY.split, random_bits=_unrolled_random_bits,
    fold_in=_THREEFRY.fold_in, name="threefry2x32_unrolled", tag="fru",
)


def unrolled(key: jax.Array) -> jax.Array:
    """The same threefry key, drawing its bits through the written-out hash.

    Every `jax.random` sampler (uniform, normal, truncated normal, ...) then gives exactly the values it
    gives for `key`, and a program that draws them compiles without threefry's loop: on XLA:CPU about
    half the time for each new shape. Splits and `fold_in` stay threefry's own. Other keys come back as
    they are."""
    if not _is_threefry(key):
        return key
    return jax.random.wrap_key_data(jax.random.key_data(key), impl=UNROLLED_THREEFRY)
