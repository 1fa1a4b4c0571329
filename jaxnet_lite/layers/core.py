"""Core layers: Dense, Activation, Flatten, Reshape, Identity, Lambda."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxnet_lite import activations, initializers
from jaxnet_lite.core import Layer, LayerError, shape_str
from jaxnet_lite.core.shapes import as_float, as_int, as_ints, normalize_shape, spell
from jaxnet_lite.layers.matmul import matmul_last_axis


class ActivationMixin:
    """Holds a resolved activation and its name (the trainer reads it to compute losses from logits)."""

    def _set_activation(self, activation: Any) -> None:
        try:
            self.activation = activations.get(activation)
        except ValueError as e:
            raise LayerError(f"{type(self).__name__}: activation: {e}") from None
        self.activation_name = activations.name_of(self.activation)

    def split_final_activation(self) -> tuple[Layer, str] | None:
        """This layer without its activation (same params), and the activation's name."""
        if self.activation is activations.linear:
            return None
        bare = copy.copy(self)
        bare.activation, bare.activation_name = activations.linear, "linear"
        return bare, self.activation_name


def check_positive_int(owner: str, what: str, value: Any) -> int:
    """A size argument (units, filters, ...): a positive integer, Python's or NumPy's, as a Python int."""
    number = as_int(value)
    if number is None or number <= 0:
        raise LayerError(f"{owner}: {what} must be a positive integer, got {spell(value)}")
    return number


def check_int(owner: str, what: str, value: Any) -> int:
    """An integer argument that may be zero or negative (an axis, a seed), as a Python int."""
    number = as_int(value)
    if number is None:
        raise LayerError(f"{owner}: {what} must be an integer, got {spell(value)}")
    return number


def check_axes(owner: str, what: str, value: Any) -> int | tuple[int, ...]:
    """An axis or a tuple/list of axes (Keras' `axis=`), as a Python int or a tuple of Python ints."""
    axes = as_int(value)
    axes = axes if axes is not None else as_ints(value)
    if axes is None or axes == ():
        raise LayerError(f"{owner}: {what} must be an integer or a tuple of integers, got {spell(value)}")
    return axes


def check_float(owner: str, what: str, value: Any, within: Callable[[float], bool], requirement: str) -> float:
    """A real argument (a rate, epsilon), Python's or NumPy's, finite and `within` range, as a Python float.

    `requirement` completes the error message: `Dropout: rate must be <requirement>, got 1.5`.
    """
    number = as_float(value)
    if number is None or not within(number):
        raise LayerError(f"{owner}: {what} must be {requirement}, got {spell(value)}")
    return number


def get_initializer(owner: str, what: str, identifier: Any) -> Callable:
    try:
        return initializers.get(identifier)
    except ValueError as e:
        raise LayerError(f"{owner}: {what}: {e}") from None


class Dense(ActivationMixin, Layer):
    """`y = activation(x @ kernel + bias)` on the last axis; kernel `(in, units)` as in Keras."""

    supports_masking = True
    weight_arguments = {"kernel": "kernel", "bias": "bias"}

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = check_positive_int("Dense", "units", units)
        self._set_activation(activation)
        self.use_bias = use_bias
        self.kernel_initializer = get_initializer("Dense", "kernel_initializer", kernel_initializer)
        self.bias_initializer = get_initializer("Dense", "bias_initializer", bias_initializer)

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 1:
            raise self.error(f"expects input of rank >= 1 (..., features), got {shape_str(input_shape)}")

    def make_variables(self, rng, input_shape):
        k_rng, b_rng = jax.random.split(rng)
        params = {"kernel": self.kernel_initializer(k_rng, (input_shape[-1], self.units), self.dtype)}
        if self.use_bias:
            params["bias"] = self.bias_initializer(b_rng, (self.units,), self.dtype)
        return params, {}

    def call(self, params, state, x, *, rng=None, training=False):
        kernel = params["kernel"]
        if not hasattr(x, "ndim"):
            raise self.error(f"expects one array, got {type(x).__name__}")
        if x.ndim < 2 or x.shape[-1] != kernel.shape[0]:
            raise self.error(
                f"expects input of shape (batch, ..., {kernel.shape[0]}) to match its kernel "
                f"{tuple(kernel.shape)}, got {tuple(x.shape)}"
            )
        y = matmul_last_axis(x, kernel)
        if self.use_bias:
            y = y + params["bias"]
        return self.activation(y), state

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)


class Activation(ActivationMixin, Layer):
    """Applies an activation function by name or callable."""

    supports_masking = True

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._set_activation(activation)

    def call(self, params, state, x, *, rng=None, training=False):
        return self.activation(x), state

    def compute_output_shape(self, input_shape):
        return input_shape


class Identity(Layer):
    """Returns its input (stax's `Identity`, Keras' `Identity`)."""

    supports_masking = True

    def call(self, params, state, x, *, rng=None, training=False):
        return x, state

    def compute_output_shape(self, input_shape):
        return input_shape


class Flatten(Layer):
    """Flattens every axis but the batch axis."""

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list):
            raise self.error(f"expects one input, got shapes {shape_str(input_shape)}")

    def call(self, params, state, x, *, rng=None, training=False):
        return x.reshape(x.shape[0], -1), state

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)


class Reshape(Layer):
    """Reshapes to `target_shape` (no batch axis); one dimension may be -1."""

    def __init__(self, target_shape: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        dims = as_ints(target_shape)
        if dims is None or sum(d == -1 for d in dims) > 1 or any(d < -1 or d == 0 for d in dims):
            shown = spell(target_shape if dims is None else dims)
            raise LayerError(f"Reshape: target_shape must hold positive ints and at most one -1, got {shown}")
        self.target_shape = dims

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list):
            raise self.error(f"expects one input, got shapes {shape_str(input_shape)}")
        self.compute_output_shape(input_shape)

    def call(self, params, state, x, *, rng=None, training=False):
        return x.reshape(x.shape[0], *self.compute_output_shape(x.shape[1:])), state

    def compute_output_shape(self, input_shape):
        size = math.prod(input_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if known == 0 or size % known:
                raise self.error(f"cannot reshape input {shape_str(input_shape)} to target_shape {self.target_shape}")
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size:
            raise self.error(
                f"cannot reshape input {shape_str(input_shape)} ({size} values) to target_shape "
                f"{self.target_shape} ({known} values)"
            )
        return self.target_shape


class Lambda(Layer):
    """Wraps a parameter-free function `fn(x) -> y` as a layer (Keras' `Lambda`)."""

    supports_masking = True

    def __init__(self, function: Callable[[Any], Any], output_shape: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not callable(function):
            raise LayerError(f"Lambda: function must be callable, got {function!r}")
        self.function = function
        self._output_shape = None if output_shape is None else normalize_shape(output_shape,
                                                                                what="Lambda: output_shape")

    def call(self, params, state, x, *, rng=None, training=False):
        return self.function(x), state

    def compute_output_shape(self, input_shape):
        if self._output_shape is not None:
            return self._output_shape
        return super().compute_output_shape(input_shape)
