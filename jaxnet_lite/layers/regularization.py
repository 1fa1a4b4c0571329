"""Dropout: identity in inference; in training zeroes a `rate` fraction and rescales the rest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxnet_lite.core import Layer, LayerError
from jaxnet_lite.core.shapes import as_int, spell
from jaxnet_lite.core.threefry import bernoulli
from jaxnet_lite.layers.core import check_float, check_int


class Dropout(Layer):
    """Keras' inverted dropout: kept units are scaled by `1 / (1 - rate)` so the expectation is unchanged."""

    stochastic = True
    supports_masking = True

    def __init__(self, rate: float, noise_shape: Sequence[int | None] | None = None, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rate = check_float("Dropout", "rate", rate, lambda r: 0.0 <= r < 1.0, "a float in [0, 1)")
        self.noise_shape = None if noise_shape is None else _noise_shape(noise_shape)
        self.seed = None if seed is None else check_int("Dropout", "seed", seed)

    def call(self, params, state, x, *, rng=None, training=False):
        if not training or self.rate == 0.0:
            return x, state
        if rng is None:
            if self.seed is None:
                raise self.error(
                    "needs a random key when training=True: pass apply(..., rng=jax.random.key(seed)) "
                    "(Trainer and model.fit do this for you)"
                )
            rng = jax.random.key(self.seed)
        shape = x.shape
        if self.noise_shape is not None:
            if len(self.noise_shape) != x.ndim:
                raise self.error(f"noise_shape {self.noise_shape} must have rank {x.ndim} like input {tuple(x.shape)}")
            shape = tuple(d if n is None else n for n, d in zip(self.noise_shape, x.shape))
        keep = 1.0 - self.rate
        mask = bernoulli(rng, keep, shape)
        return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros((), x.dtype)), state

    def compute_output_shape(self, input_shape):
        return input_shape


def _noise_shape(value: Any) -> tuple[int | None, ...]:
    """Keras' `noise_shape`: per axis (batch axis included) a positive int, or None for the input's size."""
    if isinstance(value, (tuple, list)):
        dims = tuple(None if v is None else as_int(v) for v in value)
        if all(v is None or d is not None and d > 0 for d, v in zip(dims, value)):
            return dims
    raise LayerError(f"Dropout: noise_shape must be a tuple of positive ints or None, got {spell(value)}")
