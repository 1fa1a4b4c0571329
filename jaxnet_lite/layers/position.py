"""Learned position embeddings as Keras-Hub has them: `PositionEmbedding`, `TokenAndPositionEmbedding`."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxnet_lite.core import Layer, shape_str, split_rng
from jaxnet_lite.layers.core import check_positive_int, get_initializer
from jaxnet_lite.layers.embedding import Embedding


class PositionEmbedding(Layer):
    """Keras-Hub's `PositionEmbedding`: returns the learned vectors of positions `0..T-1`, broadcast to the
    input's shape `(batch, ..., T, features)`; it adds nothing (add it to the input yourself).

    Param `embeddings` of shape `(sequence_length, features)`. An input longer than `sequence_length` is
    an error. It keeps a mask it is given (padded steps stay padded), where Keras-Hub drops it.
    """

    supports_masking = True

    def __init__(self, sequence_length: int, initializer: Any = "glorot_uniform", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sequence_length = check_positive_int("PositionEmbedding", "sequence_length", sequence_length)
        self.initializer = get_initializer("PositionEmbedding", "initializer", initializer)

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 2:
            raise self.error(f"expects input of rank >= 2 (..., time, features), got {shape_str(input_shape)}")
        self._check_length(input_shape[-2], input_shape)

    def _check_length(self, length: int, shape: Any) -> None:
        if length > self.sequence_length:
            raise self.error(
                f"has sequence_length={self.sequence_length} but got an input of length {length} "
                f"(shape {shape_str(shape)}); make sequence_length at least {length}"
            )

    def make_variables(self, rng, input_shape):
        return {"embeddings": self.initializer(rng, (self.sequence_length, input_shape[-1]), self.dtype)}, {}

    def call(self, params, state, x, *, rng=None, training=False):
        table = params["embeddings"]
        if getattr(x, "ndim", 0) < 3 or x.shape[-1] != table.shape[1]:
            raise self.error(f"expects input of shape (batch, ..., time, {table.shape[1]}) to match its embeddings "
                             f"{tuple(table.shape)}, got {tuple(getattr(x, 'shape', ()))}")
        self._check_length(x.shape[-2], tuple(x.shape))
        return jnp.broadcast_to(table[: x.shape[-2]].astype(x.dtype), x.shape), state

    def compute_output_shape(self, input_shape):
        return input_shape


class TokenAndPositionEmbedding(Layer):
    """Keras-Hub's `TokenAndPositionEmbedding`: `Embedding(ids) + PositionEmbedding` of the result.

    Params `token_embedding` and `position_embedding`, each `{"embeddings"}`; both initialised with
    `embeddings_initializer` (Keras' "uniform"). With `mask_zero=True` id 0 is padding and the output
    carries a mask, as `Embedding(mask_zero=True)` does.
    """

    def __init__(self, vocabulary_size: int, sequence_length: int, embedding_dim: int, *,
                 embeddings_initializer: Any = "uniform", mask_zero: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        cls = "TokenAndPositionEmbedding"
        self.vocabulary_size = check_positive_int(cls, "vocabulary_size", vocabulary_size)
        self.sequence_length = check_positive_int(cls, "sequence_length", sequence_length)
        self.embedding_dim = check_positive_int(cls, "embedding_dim", embedding_dim)
        self.mask_zero = bool(mask_zero)
        initializer = get_initializer(cls, "embeddings_initializer", embeddings_initializer)
        self.token_embedding = Embedding(self.vocabulary_size, self.embedding_dim, embeddings_initializer=initializer,
                                         mask_zero=self.mask_zero, name="token_embedding", dtype=self.dtype)
        self.position_embedding = PositionEmbedding(self.sequence_length, initializer=initializer,
                                                    name="position_embedding", dtype=self.dtype)

    def children(self) -> list[tuple[str, Layer]]:
        return [("token_embedding", self.token_embedding), ("position_embedding", self.position_embedding)]

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 1:
            raise self.error(f"expects input of integer ids of shape (..., time), got {shape_str(input_shape)}")
        self.position_embedding.check_input_shape((*input_shape, self.embedding_dim))

    def make_variables(self, rng, input_shape):
        t_rng, p_rng = split_rng(rng, 2)
        tokens = self.token_embedding.init(t_rng, input_shape)
        positions = self.position_embedding.init(p_rng, (*input_shape, self.embedding_dim))
        return {"token_embedding": tokens.params, "position_embedding": positions.params}, {}

    def call(self, params, state, x, *, rng=None, training=False):
        tokens, _ = self.token_embedding.call(params["token_embedding"], {}, x)
        positions, _ = self.position_embedding.call(params["position_embedding"], {}, tokens)
        return tokens + positions, state

    def compute_mask(self, x, mask):
        return self.token_embedding.compute_mask(x, mask)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.embedding_dim)

