"""Merge layers: combine a list of inputs (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate)."""

from __future__ import annotations

from functools import reduce
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxnet_lite.core import Layer, shape_str
from jaxnet_lite.core.masking import both_masks
from jaxnet_lite.layers.core import check_int


class _Merge(Layer):
    supports_masking = True
    min_inputs = 2
    max_inputs: int | None = None

    def check_input_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < self.min_inputs:
            raise self.error(f"expects a list of at least {self.min_inputs} inputs, got {shape_str(input_shape)}")
        if self.max_inputs is not None and len(input_shape) > self.max_inputs:
            raise self.error(f"expects exactly {self.max_inputs} inputs, got {shape_str(input_shape)}")
        self._check_compatible(input_shape)

    def _check_compatible(self, shapes):
        """Shapes that broadcast as Keras' merges broadcast them: NumPy's rule on the shapes without the
        batch axis (Keras expands a lower-rank input after its batch axis, which is the same)."""
        try:
            return tuple(np.broadcast_shapes(*[tuple(s) for s in shapes]))
        except ValueError:
            raise self.error(f"expects inputs of the same shape, or shapes that broadcast, got "
                             f"{shape_str(shapes)}") from None

    def call(self, params, state, x, *, rng=None, training=False):
        if not isinstance(x, (list, tuple)) or len(x) < self.min_inputs:
            raise self.error(f"expects a list of at least {self.min_inputs} arrays, got {type(x).__name__}")
        self._check_compatible([tuple(v.shape[1:]) for v in x])
        rank = max(v.ndim for v in x)
        return self.merge([v.reshape((v.shape[0], *(1,) * (rank - v.ndim), *v.shape[1:])) for v in x]), state

    def compute_output_shape(self, input_shape):
        return self._check_compatible(input_shape)

    def compute_mask(self, x, mask):
        """Steps real in every masked input (Keras 3 merges masks the same way)."""
        return both_masks(mask) if isinstance(mask, list) else mask


class Add(_Merge):
    """Elementwise sum (stax's `FanInSum`)."""

    def merge(self, xs):
        return reduce(jnp.add, xs)


class Subtract(_Merge):
    max_inputs = 2

    def merge(self, xs):
        return xs[0] - xs[1]


class Multiply(_Merge):
    def merge(self, xs):
        return reduce(jnp.multiply, xs)


class Average(_Merge):
    def merge(self, xs):
        return reduce(jnp.add, xs) / len(xs)


class Maximum(_Merge):
    def merge(self, xs):
        return reduce(jnp.maximum, xs)


class Minimum(_Merge):
    def merge(self, xs):
        return reduce(jnp.minimum, xs)


class Concatenate(_Merge):
    """Joins inputs along `axis` (default the last; stax's `FanInConcat`)."""

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = check_int("Concatenate", "axis", axis)

    def _axis(self, rank: int) -> int:
        axis = self.axis + rank if self.axis < 0 else self.axis - 1  # index into shapes without the batch axis
        if not 0 <= axis < rank:
            raise self.error(f"axis {self.axis} is out of range for inputs of rank {rank} (batch axis excluded)")
        return axis

    def _check_compatible(self, shapes):
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes):
            raise self.error(f"expects inputs of the same rank, got {shape_str(shapes)}")
        axis = self._axis(rank)
        strip = [s[:axis] + s[axis + 1:] for s in shapes]
        if any(s != strip[0] for s in strip):
            raise self.error(f"expects inputs that match except on axis {self.axis}, got {shape_str(shapes)}")

    def merge(self, xs):
        return jnp.concatenate(xs, axis=self._axis(xs[0].ndim - 1) + 1)

    def compute_output_shape(self, input_shape):
        axis = self._axis(len(input_shape[0]))
        out = list(input_shape[0])
        out[axis] = sum(s[axis] for s in input_shape)
        return tuple(out)
