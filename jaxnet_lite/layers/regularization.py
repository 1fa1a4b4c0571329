"""Dropout: identity in inference; in training zeroes a `rate` fraction and rescales the rest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxnet_lite.core import Layer, LayerError


class Dropout(Layer):
    """Keras' inverted dropout: kept units are scaled by `1 / (1 - rate)` so the expectation is unchanged."""

    stochastic = True

    def __init__(self, rate: float, noise_shape: Sequence[int | None] | None = None, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise LayerError(f"Dropout: rate must be a float in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed

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
        mask = jax.random.bernoulli(rng, keep, shape)
        return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros((), x.dtype)), state

    def compute_output_shape(self, input_shape):
        return input_shape
