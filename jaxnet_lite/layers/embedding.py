"""Embedding: integer ids -> dense vectors (`embeddings` of shape (input_dim, output_dim))."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxnet_lite.core import Layer, shape_str
from jaxnet_lite.layers.core import check_positive_int, get_initializer


class Embedding(Layer):
    """Looks up rows of `embeddings`; inputs are integer ids in `[0, input_dim)`."""

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 **kwargs: Any) -> None:
        kwargs.pop("input_length", None)  # Keras 2 argument, no longer needed.
        super().__init__(**kwargs)
        self.input_dim = check_positive_int("Embedding", "input_dim", input_dim)
        self.output_dim = check_positive_int("Embedding", "output_dim", output_dim)
        self.embeddings_initializer = get_initializer("Embedding", "embeddings_initializer", embeddings_initializer)

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list):
            raise self.error(f"expects one input of integer ids, got shapes {shape_str(input_shape)}")

    def make_variables(self, rng, input_shape):
        return {"embeddings": self.embeddings_initializer(rng, (self.input_dim, self.output_dim), self.dtype)}, {}

    def call(self, params, state, x, *, rng=None, training=False):
        ids = jnp.asarray(x)
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            ids = ids.astype(jnp.int32)
        return jnp.take(params["embeddings"], ids, axis=0), state

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)
