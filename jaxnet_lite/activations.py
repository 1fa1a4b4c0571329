"""Activation functions by Keras name: `get("relu")`, or the functions themselves."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Activation = Callable[[jax.Array], jax.Array]


def linear(x: jax.Array) -> jax.Array:
    """The identity (Keras' `activation=None`)."""
    return x


def relu(x: jax.Array) -> jax.Array:
    return jax.nn.relu(x)


def sigmoid(x: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(x)


def tanh(x: jax.Array) -> jax.Array:
    return jnp.tanh(x)


def softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    return jax.nn.softmax(x, axis=axis)


def log_softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    return jax.nn.log_softmax(x, axis=axis)


def gelu(x: jax.Array, approximate: bool = False) -> jax.Array:
    """Keras 3's default is the exact (erf) GELU."""
    return jax.nn.gelu(x, approximate=approximate)


def elu(x: jax.Array, alpha: float = 1.0) -> jax.Array:
    return jax.nn.elu(x, alpha)


def selu(x: jax.Array) -> jax.Array:
    return jax.nn.selu(x)


def leaky_relu(x: jax.Array, negative_slope: float = 0.2) -> jax.Array:
    """Keras' default slope is 0.2 (JAX's is 0.01)."""
    return jax.nn.leaky_relu(x, negative_slope)


def softplus(x: jax.Array) -> jax.Array:
    return jax.nn.softplus(x)


def silu(x: jax.Array) -> jax.Array:
    return jax.nn.silu(x)


swish = silu

def hard_sigmoid(x: jax.Array) -> jax.Array:
    """Keras 3's piecewise-linear sigmoid: `clip(x / 6 + 0.5, 0, 1)`."""
    return jax.nn.hard_sigmoid(x)


def softsign(x: jax.Array) -> jax.Array:
    return jax.nn.soft_sign(x)


def relu6(x: jax.Array) -> jax.Array:
    return jax.nn.relu6(x)


def exponential(x: jax.Array) -> jax.Array:
    return jnp.exp(x)


_BY_NAME: dict[str, Activation] = {
    "linear": linear,
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "gelu": gelu,
    "elu": elu,
    "selu": selu,
    "leaky_relu": leaky_relu,
    "softplus": softplus,
    "silu": silu,
    "swish": swish,
    "hard_sigmoid": hard_sigmoid,
    "softsign": softsign,
    "relu6": relu6,
    "exponential": exponential,
}


def get(identifier: str | Activation | None) -> Activation:
    """Resolve `None`, a Keras name or a callable to an activation function."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier.lower()]
        except KeyError:
            raise ValueError(
                f"unknown activation {identifier!r}; expected one of {sorted(_BY_NAME)} or a callable"
            ) from None
    if callable(identifier):
        return identifier
    raise ValueError(f"activation must be a name, a callable or None, got {identifier!r}")


def name_of(fn: Activation) -> str:
    """The Keras name of a known activation (`"softmax"`), else the function's own name."""
    for name, known in _BY_NAME.items():
        if fn is known:
            return name
    return getattr(fn, "__name__", type(fn).__name__)
