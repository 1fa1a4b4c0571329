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


_WEIGHTS = ("params", "state")
_ENTRY_WORDS = {"opt_state": "optimizer state"}


def _describe_file(filepath: Any) -> str:
    """What a checkpoint file holds, in words ("a training checkpoint (...)"); refuses one without weights.

    Read from its metadata and top-level entries, not from its arrays.
    """
    metadata, entries = checkpoint.read_metadata(filepath), checkpoint.read_entries(filepath)
    if not set(_WEIGHTS) <= set(entries):
        raise checkpoint.CheckpointError(
            f"'{filepath}' holds no model weights: it is a jaxnet_lite checkpoint whose top-level entries are "
            f"{', '.join(map(repr, entries)) or 'none'}, and weights are stored as 'params' and 'state'.")
    listed = ", ".join(_ENTRY_WORDS.get(entry, str(entry)) for entry in entries)
    epoch, model = metadata.get("epoch"), metadata.get("model")
    if metadata.get("kind") == "train_state" or "opt_state" in entries:
        return f"a training checkpoint ({listed}" + ("" if epoch is None else f"; saved after epoch {epoch}") + ")"
    if sorted(entries) == sorted(_WEIGHTS):
        return "a weights file (params, state" + ("" if model is None else f"; saved from model {model!r}") + ")"
    return f"a checkpoint of {listed}"


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
        """Restore params and state from any file this package writes, names and shapes checked.

        A weights file (`save_weights`, `ModelCheckpoint(save_weights_only=True)`) or a training checkpoint
        (`Trainer.save_checkpoint`, `ModelCheckpoint()`): only its params and state are read; the optimizer
        state, step and rng are left in the file. A mismatch says which kind of file it is and what differs.
        """
        kind = _describe_file(filepath)
        params, state = self.variables
        try:
            restored = checkpoint.restore(filepath, target={"params": params, "state": state}, only=_WEIGHTS)
        except checkpoint.CheckpointMismatchError as e:
            raise checkpoint.CheckpointMismatchError(e.path, e.problems, (
                f"Cannot load weights from '{e.path}' into model '{self.name}': the file is {kind}, and its "
                f"params and state do not match this model's: {e.listing()}")) from None
        self.variables = (restored["params"], restored["state"])

