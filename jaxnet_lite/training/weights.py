"""Keras' weight I/O (`get_weights`, `set_weights`, `save_weights`, `load_weights`) over `self.variables`.

What callbacks may ask of `self.model`; the Keras models mix it in, and a `Trainer` that wraps a plain
layer hands callbacks a handle built on it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet_lite import checkpoint


class WeightsIO:
    """Needs `variables` (a `(params, state)` pair, settable) and `name` on the class that mixes it in."""

    variables: Any
    name: str

    def get_weights(self) -> list[np.ndarray]:
        """All params then all state, as NumPy arrays, in a fixed (sorted-key) order."""
        return [np.asarray(a) for a in jax.tree.leaves(tuple(self.variables))]

    def set_weights(self, weights: list[Any]) -> None:
        """The inverse of `get_weights`; shapes must match."""
        leaves, treedef = jax.tree.flatten(tuple(self.variables))
        if len(weights) != len(leaves):
            raise ValueError(f"set_weights: expected {len(leaves)} arrays, got {len(weights)}")
        for i, (old, new) in enumerate(zip(leaves, weights)):
            if tuple(np.shape(new)) != tuple(old.shape):
                raise ValueError(f"set_weights: array {i} has shape {np.shape(new)}, expected {tuple(old.shape)}")
        self.variables = jax.tree.unflatten(treedef, [jnp.asarray(w, o.dtype) for w, o in zip(weights, leaves)])

    def save_weights(self, filepath: Any) -> None:
        """Write params and state to `filepath` (an `.npz` checkpoint, atomically, no pickle)."""
        params, state = self.variables
        checkpoint.save(filepath, {"params": params, "state": state}, metadata={"model": self.name})

    def load_weights(self, filepath: Any) -> None:
        """Restore weights saved by `save_weights`; names and shapes must match this model."""
        params, state = self.variables
        restored = checkpoint.restore(filepath, target={"params": params, "state": state})
        self.variables = (restored["params"], restored["state"])
