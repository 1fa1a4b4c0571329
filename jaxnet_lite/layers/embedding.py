"""Embedding: integer ids -> dense vectors (`embeddings` of shape (input_dim, output_dim))."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet_lite.core import Layer, shape_str
from jaxnet_lite.layers.core import check_positive_int, get_initializer


class Embedding(Layer):
    """Looks up rows of `embeddings`; inputs are integer ids in `[0, input_dim)`.

    With `mask_zero=True` id 0 is padding: the output carries a mask (False where the id is 0) that
    recurrent layers, pooling and losses honour, and the vocabulary must leave room for it (Keras' rule).
    An id outside `[0, input_dim)` is an error when the ids are concrete arrays (an eager `apply`,
    `fit`'s input checks); inside compiled code it cannot raise, and its vector is NaN instead of a
    silently clipped row, so the loss turns NaN and training stops with an error.
    """

    weight_arguments = {"embeddings": "embeddings"}

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 mask_zero: bool = False, **kwargs: Any) -> None:
        kwargs.pop("input_length", None)  # Keras 2 argument, no longer needed.
        super().__init__(**kwargs)
        self.input_dim = check_positive_int("Embedding", "input_dim", input_dim)
        self.output_dim = check_positive_int("Embedding", "output_dim", output_dim)
        self.embeddings_initializer = get_initializer("Embedding", "embeddings_initializer", embeddings_initializer)
        self.mask_zero = bool(mask_zero)

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list):
            raise self.error(f"expects one input of integer ids, got shapes {shape_str(input_shape)}")

    def make_variables(self, rng, input_shape):
        return {"embeddings": self.embeddings_initializer(rng, (self.input_dim, self.output_dim), self.dtype)}, {}

    def call(self, params, state, x, *, rng=None, training=False):
        ids = self._ids(x)
        return jnp.take(params["embeddings"], ids, axis=0, mode="fill", fill_value=jnp.nan), state

    def compute_mask(self, x, mask):
        return self._ids(x) != 0 if self.mask_zero else None

    def _ids(self, x: Any) -> jax.Array:
        ids = jnp.asarray(x)
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            ids = ids.astype(jnp.int32)
        if not isinstance(ids, jax.core.Tracer):
            self.check_ids(np.asarray(ids))
        return ids

    def check_input_values(self, x: Any) -> None:
        self.check_ids(np.asarray(x))

    def check_ids(self, ids: np.ndarray) -> None:
        """Raise naming the layer, the bad id and its position when an id is outside the vocabulary."""
        bad = (ids < 0) | (ids >= self.input_dim)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise self.error(
                f"got id {int(ids[where])} at index {where} of its input of shape {ids.shape}; ids must lie "
                f"in [0, {self.input_dim}) (input_dim={self.input_dim})"
            )

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)
