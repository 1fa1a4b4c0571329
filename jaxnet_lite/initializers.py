"""Weight initializers by Keras name and with Keras defaults: `get("glorot_uniform")(key, shape, dtype)`.

The random ones give `jax.nn.initializers`' and `jax.random`'s values exactly; they draw their bits with
threefry written out (`core.threefry.unrolled`), so each new weight shape compiles faster on CPU.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxnet_lite.core.threefry import unrolled

Initializer = Callable[..., jax.Array]


def _unrolled_bits(init: Initializer) -> Initializer:
    """`init` given the same key as an `unrolled` one: the same values, without threefry's compiled loop."""

    @functools.wraps(init)
    def drawn(key: jax.Array, shape: Any, dtype: Any = jnp.float32, **kwargs: Any) -> jax.Array:
        return init(unrolled(key), shape, dtype, **kwargs)

    return drawn


glorot_uniform = _unrolled_bits(jax.nn.initializers.glorot_uniform())
glorot_normal = _unrolled_bits(jax.nn.initializers.glorot_normal())
he_uniform = _unrolled_bits(jax.nn.initializers.he_uniform())
he_normal = _unrolled_bits(jax.nn.initializers.he_normal())
lecun_uniform = _unrolled_bits(jax.nn.initializers.lecun_uniform())
lecun_normal = _unrolled_bits(jax.nn.initializers.lecun_normal())
orthogonal = _unrolled_bits(jax.nn.initializers.orthogonal())
zeros = jax.nn.initializers.zeros
ones = jax.nn.initializers.ones


def RandomNormal(mean: float = 0.0, stddev: float = 0.05) -> Initializer:
    """Keras' `RandomNormal` (default stddev 0.05)."""

    def init(key: jax.Array, shape: Any, dtype: Any = jnp.float32) -> jax.Array:
        return mean + stddev * jax.random.normal(unrolled(key), shape, dtype)

    return init


def RandomUniform(minval: float = -0.05, maxval: float = 0.05) -> Initializer:
    """Keras' `RandomUniform` (default range [-0.05, 0.05]); Embedding's default."""

    def init(key: jax.Array, shape: Any, dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(unrolled(key), shape, dtype, minval, maxval)

    return init


def TruncatedNormal(mean: float = 0.0, stddev: float = 0.05) -> Initializer:
    """Keras' `TruncatedNormal`: normal values cut at two standard deviations."""

    def init(key: jax.Array, shape: Any, dtype: Any = jnp.float32) -> jax.Array:
        return mean + stddev * jax.random.truncated_normal(unrolled(key), -2.0, 2.0, shape, dtype)

    return init


def Constant(value: float = 0.0) -> Initializer:
    return jax.nn.initializers.constant(value)


random_normal = RandomNormal()
random_uniform = RandomUniform()
truncated_normal = TruncatedNormal()

_BY_NAME: dict[str, Initializer] = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "lecun_uniform": lecun_uniform,
    "lecun_normal": lecun_normal,
    "orthogonal": orthogonal,
    "zeros": zeros,
    "ones": ones,
    "random_normal": random_normal,
    "random_uniform": random_uniform,
    "truncated_normal": truncated_normal,
    "uniform": random_uniform,
    "normal": random_normal,
}


def get(identifier: str | Initializer) -> Initializer:
    """Resolve a Keras name or a callable `(key, shape, dtype) -> array` to an initializer."""
    if isinstance(identifier, str):
        key = identifier.lower()
        try:
            return _BY_NAME[key]
        except KeyError:
            raise ValueError(
                f"unknown initializer {identifier!r}; expected one of {sorted(_BY_NAME)} or a callable"
            ) from None
    if callable(identifier):
        return identifier
    raise ValueError(f"initializer must be a name or a callable (key, shape, dtype), got {identifier!r}")
