"""BatchNormalization, LayerNormalization and RMSNormalization with Keras' names, defaults and variable
layouts."""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp

from jaxnet_lite.core import Layer, shape_str
from jaxnet_lite.layers.core import check_axes, check_float, get_initializer


def check_epsilon(owner: str, epsilon: Any) -> float:
    """The variance offset: a finite float > 0 (Python's or NumPy's), as a Python float."""
    return check_float(owner, "epsilon", epsilon, lambda e: e > 0, "> 0")


def _check_feature_axes(layer: Layer, input_shape: Any) -> None:
    """A single input of rank >= 1 whose normalized axes exist (the three normalization layers)."""
    if isinstance(input_shape, list) or len(input_shape) < 1:
        raise layer.error(f"expects input of rank >= 1 (..., features), got {shape_str(input_shape)}")
    _normalize_axes(layer, layer.axis, len(input_shape))


def _normalize_axes(owner: Layer, axis: Any, rank: int) -> tuple[int, ...]:
    """Feature axes as non-negative indices into the batched input (batch axis 0 never allowed)."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        b = a + rank + 1 if a < 0 else a
        if not 1 <= b <= rank:
            raise owner.error(f"axis {a} is out of range for input of rank {rank} (batch axis excluded)")
        out.append(b)
    return tuple(sorted(set(out)))


class BatchNormalization(Layer):
    """Normalises with batch statistics in training and moving statistics in inference.

    params: `gamma`, `beta`; state: `moving_mean`, `moving_variance`, updated in training as
    `moving = moving * momentum + batch * (1 - momentum)` (Keras' rule, biased batch variance).
    """

    supports_masking = True
    computes_in_float32 = True  # statistics in float32 under a mixed policy
    weight_arguments = {"gamma": "gamma", "beta": "beta"}

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        cls = "BatchNormalization"
        self.axis = check_axes(cls, "axis", axis)
        self.momentum = check_float(cls, "momentum", momentum, lambda m: 0.0 <= m <= 1.0, "in [0, 1]")
        self.epsilon = check_epsilon(cls, epsilon)
        self.center, self.scale = center, scale
        self.beta_initializer = get_initializer(cls, "beta_initializer", beta_initializer)
        self.gamma_initializer = get_initializer(cls, "gamma_initializer", gamma_initializer)
        self.moving_mean_initializer = get_initializer(cls, "moving_mean_initializer", moving_mean_initializer)
        self.moving_variance_initializer = get_initializer(
            cls, "moving_variance_initializer", moving_variance_initializer
        )

    def check_input_shape(self, input_shape):
        _check_feature_axes(self, input_shape)

    def _feature_shape(self, input_shape) -> tuple[int, ...]:
        axes = _normalize_axes(self, self.axis, len(input_shape))
        return tuple(input_shape[a - 1] for a in axes)

    def make_variables(self, rng, input_shape):
        shape = self._feature_shape(input_shape)
        keys = jax.random.split(rng, 4)
        params = {}
        if self.scale:
            params["gamma"] = self.gamma_initializer(keys[0], shape, self.dtype)
        if self.center:
            params["beta"] = self.beta_initializer(keys[1], shape, self.dtype)
        state = {
            "moving_mean": self.moving_mean_initializer(keys[2], shape, self.dtype),
            "moving_variance": self.moving_variance_initializer(keys[3], shape, self.dtype),
        }
        return params, state

    def _broadcast(self, v, ndim, axes):
        shape = [1] * ndim
        for a, d in zip(axes, v.shape):
            shape[a] = d
        return v.reshape(shape)

    def call(self, params, state, x, *, rng=None, training=False):
        axes = _normalize_axes(self, self.axis, x.ndim - 1)
        expected = state["moving_mean"].shape
        if tuple(x.shape[a] for a in axes) != expected:
            raise self.error(f"expects {expected} features on axis {self.axis}, got input {tuple(x.shape)}")
        reduce_axes = tuple(a for a in range(x.ndim) if a not in axes)
        if training and self.trainable:  # Keras 3: a frozen BatchNormalization runs in inference mode
            mean = jnp.mean(x, axis=reduce_axes)
            var = jnp.var(x, axis=reduce_axes)
            m = self.momentum
            new_state = {
                "moving_mean": jax.lax.stop_gradient(state["moving_mean"] * m + mean * (1 - m)),
                "moving_variance": jax.lax.stop_gradient(state["moving_variance"] * m + var * (1 - m)),
            }
        else:
            mean, var, new_state = state["moving_mean"], state["moving_variance"], state
        inv = jax.lax.rsqrt(var + self.epsilon)
        if self.scale:
            inv = inv * params["gamma"]
        y = (x - self._broadcast(mean, x.ndim, axes)) * self._broadcast(inv, x.ndim, axes)
        if self.center:
            y = y + self._broadcast(params["beta"], x.ndim, axes)
        return y, new_state

    def compute_output_shape(self, input_shape):
        return input_shape


class LayerNormalization(Layer):
    """Normalises each example over `axis` (default the last); params `gamma`, `beta`.

    `rms_scaling=True` is Keras' definition, kept for weights copied from Keras: `x / sqrt(var(x) + epsilon)
    * gamma`, with `gamma` only (the input is divided by its standard deviation but not centred). Keras
    deprecates it, and so do we: `RMSNormalization` divides by the root mean square.
    """

    supports_masking = True
    computes_in_float32 = True  # statistics in float32 under a mixed policy
    weight_arguments = {"gamma": "gamma", "beta": "beta"}

    def __init__(self, axis: Any = -1, epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                 beta_initializer: Any = "zeros", gamma_initializer: Any = "ones", rms_scaling: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = check_axes("LayerNormalization", "axis", axis)
        self.epsilon = check_epsilon("LayerNormalization", epsilon)
        self.center, self.scale = center, scale
        self.rms_scaling = bool(rms_scaling)
        if self.rms_scaling:
            warnings.warn(
                "LayerNormalization(rms_scaling=True) is deprecated, as in Keras: it divides the input by its "
                "standard deviation, not its root mean square; use RMSNormalization for RMS normalization",
                stacklevel=2,
            )
        self.beta_initializer = get_initializer("LayerNormalization", "beta_initializer", beta_initializer)
        self.gamma_initializer = get_initializer("LayerNormalization", "gamma_initializer", gamma_initializer)

    def check_input_shape(self, input_shape):
        _check_feature_axes(self, input_shape)

    def make_variables(self, rng, input_shape):
        axes = _normalize_axes(self, self.axis, len(input_shape))
        shape = tuple(input_shape[a - 1] for a in axes)
        g_rng, b_rng = jax.random.split(rng)
        params = {}
        if self.scale or self.rms_scaling:
            params["gamma"] = self.gamma_initializer(g_rng, shape, self.dtype)
        if self.center and not self.rms_scaling:
            params["beta"] = self.beta_initializer(b_rng, shape, self.dtype)
        return params, {}

    def call(self, params, state, x, *, rng=None, training=False):
        axes = _normalize_axes(self, self.axis, x.ndim - 1)
        features = tuple(x.shape[a] for a in axes)
        for name in ("gamma", "beta"):
            if name in params and tuple(params[name].shape) != features:
                raise self.error(
                    f"expects {tuple(params[name].shape)} features on axis {self.axis} (its {name}), "
                    f"got input {tuple(x.shape)}"
                )
        shape = [1] * x.ndim
        for a in axes:
            shape[a] = x.shape[a]
        var = jnp.var(x, axis=axes, keepdims=True)
        if self.rms_scaling:
            return x * jax.lax.rsqrt(var + self.epsilon) * params["gamma"].reshape(shape), state
        mean = jnp.mean(x, axis=axes, keepdims=True)
        y = (x - mean) * jax.lax.rsqrt(var + self.epsilon)
        if self.scale:
            y = y * params["gamma"].reshape(shape)
        if self.center:
            y = y + params["beta"].reshape(shape)
        return y, state

    def compute_output_shape(self, input_shape):
        return input_shape


class RMSNormalization(Layer):
    """Keras 3's `RMSNormalization`: `x * rsqrt(mean(x**2 over axis) + epsilon) * scale`; param `scale`.

    It keeps a mask it is given (each step is normalised on its own), where Keras drops it.
    """

    supports_masking = True
    computes_in_float32 = True  # statistics in float32 under a mixed policy

    def __init__(self, axis: Any = -1, epsilon: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = check_axes("RMSNormalization", "axis", axis)
        self.epsilon = check_epsilon("RMSNormalization", epsilon)

    def check_input_shape(self, input_shape):
        _check_feature_axes(self, input_shape)

    def make_variables(self, rng, input_shape):
        axes = _normalize_axes(self, self.axis, len(input_shape))
        return {"scale": jnp.ones(tuple(input_shape[a - 1] for a in axes), self.dtype)}, {}

    def call(self, params, state, x, *, rng=None, training=False):
        axes = _normalize_axes(self, self.axis, x.ndim - 1)
        scale = params["scale"]
        if tuple(x.shape[a] for a in axes) != tuple(scale.shape):
            raise self.error(f"expects {tuple(scale.shape)} features on axis {self.axis} (its scale), "
                             f"got input {tuple(x.shape)}")
        shape = [1] * x.ndim
        for a in axes:
            shape[a] = x.shape[a]
        rms = jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=axes, keepdims=True) + self.epsilon)
        return x * rms * scale.reshape(shape), state

    def compute_output_shape(self, input_shape):
        return input_shape
