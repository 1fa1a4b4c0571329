"""`TrainState`: everything that changes during training, as one pytree (checkpoint it whole)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxnet_lite.core import Layer


class TrainState(NamedTuple):
    """Params, layer state, optimizer state, the step counter and the base random key.

    The key never changes: step `t` draws its randomness from `fold_in(rng, t)`, so a run resumed from a
    checkpoint reproduces the uninterrupted run exactly.
    """

    params: Any
    state: Any
    opt_state: Any
    step: jax.Array
    rng: jax.Array

    @classmethod
    def create(cls, model: Layer, optimizer: optax.GradientTransformation, seed: int | jax.Array = 0,
               input_shape: Any = None, variables: Any = None) -> TrainState:
        """Initialise the model from `seed` (or take `variables`) and the optimizer from the params."""
        key = jax.random.key(seed) if isinstance(seed, int) else seed
        init_key, train_key = jax.random.split(key)
        params, state = variables if variables is not None else model.init(init_key, input_shape)
        return cls(params, state, optimizer.init(params), jnp.zeros((), jnp.int32), train_key)
