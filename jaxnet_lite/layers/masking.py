"""Masking: mark the time steps whose features all equal `mask_value` as padding."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxnet_lite.core import Layer, shape_str
from jaxnet_lite.layers.core import check_float


class Masking(Layer):
    """Zeroes the padded steps and masks them (a step is padding when all its features equal `mask_value`).

    Later layers that read masks (recurrent layers, pooling, attention, losses) skip those steps.
    """

    supports_masking = True

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask_value = check_float("Masking", "mask_value", mask_value, lambda v: True, "a number")

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 2:
            raise self.error(f"expects input of rank >= 2 (timesteps, features), got {shape_str(input_shape)}")

    def call(self, params, state, x, *, rng=None, training=False):
        keep = self.compute_mask(x, None)
        return jnp.where(keep[..., None], x, jnp.zeros((), x.dtype)), state

    def compute_mask(self, x, mask):
        return jnp.any(jnp.asarray(x) != self.mask_value, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape
