"""Pooling, channels-last: Max/AveragePooling1D/2D/3D and the global poolings.

Non-overlapping windows ("valid" padding, strides == pool_size, the common case) use crop + reshape +
reduce in training. Its gradient is a cheap elementwise mask, whereas `lax.reduce_window`'s max gradient
(select_and_scatter) measured ~9x slower on XLA:CPU (docs/design.md). Every other configuration takes the
general `lax.reduce_window` path; tests check the two agree, gradients included.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnet_lite.core import SPATIAL_AXES, Layer, LayerError, as_tuple, shape_str
from jaxnet_lite.core.masking import as_bool_mask
from jaxnet_lite.layers.conv import conv_output_length


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def window_max(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """`jnp.max(x, axes)` whose gradient goes to the first maximum of each window (row-major order).

    That is `lax.reduce_window`'s (and Keras', TensorFlow's, PyTorch's) choice among tied maxima, where
    `jnp.max` splits the gradient among them. It is also cheaper: the tangent is one masked sum, with no
    tie count or division; in the tutorial CNN's train step it measured 21.3 ms against 21.8-31.7 ms for
    `jnp.max`'s rule (benchmarks/RESULTS.md).
    """
    return jnp.max(x, axis=axes)


@window_max.defjvp
def _window_max_jvp(axes, primals, tangents):
    (x,), (x_dot,) = primals, tangents
    y = jnp.max(x, axis=axes)
    sizes = [x.shape[a] for a in axes]
    order = np.arange(math.prod(sizes), dtype=np.int32).reshape(
        [x.shape[a] if a in axes else 1 for a in range(x.ndim)])  # row-major position inside the window
    first = jnp.min(jnp.where(x == jnp.expand_dims(y, axes), order, order.size), axis=axes, keepdims=True)
    return y, jnp.sum(jnp.where(order == first, x_dot, jnp.zeros_like(x_dot)), axis=axes)


class _Pooling(Layer):
    rank: int = 2
    slow_in_cpu_loops = True  # measured with the convolutions: one step per dispatch on CPU
    reducer: str = "max"

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.pool_size = as_tuple(pool_size, self.rank, "pool_size", cls)
        self.strides = self.pool_size if strides is None else as_tuple(strides, self.rank, "strides", cls)
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise LayerError(f"{cls}: padding must be 'valid' or 'same', got {padding!r}")
        self.padding = padding.lower()
        if data_format not in (None, "channels_last"):
            raise LayerError(f"{cls}: only data_format='channels_last' is supported, got {data_format!r}")

    @property
    def uses_fast_path(self) -> bool:
        return self.padding == "valid" and self.strides == self.pool_size

    def check_input_shape(self, input_shape):
        self.expect_spatial_rank(input_shape, self.rank)
        if any(d <= 0 for d in self.compute_output_shape(input_shape)[:-1]):
            raise self.error(f"input {shape_str(input_shape)} is smaller than pool_size {self.pool_size}")

    def compute_output_shape(self, input_shape):
        spatial = tuple(
            conv_output_length(n, k, s, self.padding, 1)
            for n, k, s in zip(input_shape[:-1], self.pool_size, self.strides)
        )
        return (*spatial, input_shape[-1])

    def call(self, params, state, x, *, rng=None, training=False):
        if x.ndim != self.rank + 2:
            raise self.error(
                f"expects input of rank {self.rank + 2} with the batch axis (batch, "
                f"{SPATIAL_AXES[self.rank][1:-1]}), got {tuple(x.shape)}"
            )
        # The fast form wins where its gradient is needed; XLA's reduce_window is faster forward-only.
        pool = self.pool_fast if self.uses_fast_path and training else self.pool_general
        return pool(x), state

    def pool_fast(self, x):
        """Crop to whole windows, split each spatial axis into (windows, pool), reduce the pool axes."""
        out = [n // p for n, p in zip(x.shape[1:-1], self.pool_size)]
        x = x[(slice(None), *(slice(0, o * p) for o, p in zip(out, self.pool_size)), slice(None))]
        split = [x.shape[0]]
        for o, p in zip(out, self.pool_size):
            split += [o, p]
        x = x.reshape(*split, x.shape[-1])
        axes = tuple(2 + 2 * i for i in range(self.rank))
        if self.reducer == "max":
            return window_max(x, axes)
        return jnp.mean(x, axis=axes)

    def pool_general(self, x):
        """`lax.reduce_window` for overlapping windows or 'same' padding (Keras semantics)."""
        window = (1, *self.pool_size, 1)
        strides = (1, *self.strides, 1)
        # Init values must be NumPy constants: a traced init sends reduce_window down a path with no gradient.
        if self.reducer == "max":
            init = -np.inf if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).min
            return lax.reduce_window(x, np.array(init, x.dtype), lax.max, window, strides, self.padding.upper())
        total = lax.reduce_window(x, np.array(0, x.dtype), lax.add, window, strides, self.padding.upper())
        if self.padding == "valid":
            return total / math.prod(self.pool_size)
        # 'same': average over the real (unpadded) elements only, as Keras does.
        ones = jnp.ones((1, *x.shape[1:-1], 1), x.dtype)
        count = lax.reduce_window(ones, np.array(0, x.dtype), lax.add, window, strides, "SAME")
        return total / count


class MaxPooling1D(_Pooling):
    rank = 1


class MaxPooling2D(_Pooling):
    """Max over `pool_size` windows (default 2x2, stride = pool_size)."""

    rank = 2


class MaxPooling3D(_Pooling):
    rank = 3


class AveragePooling1D(_Pooling):
    rank = 1
    reducer = "mean"


class AveragePooling2D(_Pooling):
    rank = 2
    reducer = "mean"


class AveragePooling3D(_Pooling):
    rank = 3
    reducer = "mean"


class _GlobalPooling(Layer):
    slow_in_cpu_loops = True
    rank: int = 2
    reducer: str = "mean"

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise LayerError(f"{type(self).__name__}: only data_format='channels_last' is supported")
        self.keepdims = keepdims

    def check_input_shape(self, input_shape):
        self.expect_spatial_rank(input_shape, self.rank)

    def compute_output_shape(self, input_shape):
        return (*(1,) * self.rank, input_shape[-1]) if self.keepdims else (input_shape[-1],)

    def call(self, params, state, x, *, rng=None, training=False, mask=None):
        if x.ndim != self.rank + 2:
            raise self.error(f"expects input of rank {self.rank + 2} with the batch axis, got {tuple(x.shape)}")
        if mask is not None:
            return self._masked(x, as_bool_mask(mask)), state
        axes = tuple(range(1, self.rank + 1))
        reduce = jnp.max if self.reducer == "max" else jnp.mean
        return reduce(x, axis=axes, keepdims=self.keepdims), state

    def _masked(self, x, mask):
        """Pool over the real steps only; a sequence with no real step pools to zeros."""
        if mask.shape != x.shape[:2]:
            raise self.error(f"got a mask of shape {tuple(mask.shape)} for input {tuple(x.shape)}; "
                             f"expected {tuple(x.shape[:2])}")
        keep = mask[..., None]
        any_real = jnp.any(keep, axis=1, keepdims=True)
        if self.reducer == "max":
            low = jnp.asarray(-jnp.inf, x.dtype)
            pooled = jnp.where(any_real, jnp.max(jnp.where(keep, x, low), axis=1, keepdims=True), 0)
        else:
            count = jnp.sum(keep, axis=1, keepdims=True).astype(x.dtype)
            pooled = jnp.sum(jnp.where(keep, x, 0), axis=1, keepdims=True) / jnp.maximum(count, 1)
        return pooled.astype(x.dtype) if self.keepdims else pooled[:, 0].astype(x.dtype)


class GlobalAveragePooling1D(_GlobalPooling):
    """Mean over time; with a mask, the mean over the real steps (Keras 3)."""

    rank = 1
    call_takes_mask = True


class GlobalAveragePooling2D(_GlobalPooling):
    rank = 2


class GlobalAveragePooling3D(_GlobalPooling):
    rank = 3


class GlobalMaxPooling1D(_GlobalPooling):
    """Max over time; with a mask, the max over the real steps (Keras 3 drops the mask here instead)."""

    rank = 1
    call_takes_mask = True
    reducer = "max"


class GlobalMaxPooling2D(_GlobalPooling):
    rank = 2
    reducer = "max"


class GlobalMaxPooling3D(_GlobalPooling):
    rank = 3
    reducer = "max"
