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
from jaxnet_lite.core.layer import ACTIVITY_LOSS


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
        """Every weight as a NumPy array, in Keras' order: layer by layer, each layer's as Keras creates
        them (kernel before bias; gamma, beta, moving mean, moving variance), so Keras' lists fit as they are."""
        leaves = _leaves_by_path(self.variables)
        return [np.asarray(leaves[path]) for path in keras_weight_order(self, *self.variables)]

    def set_weights(self, weights: list[Any]) -> None:
        """The inverse of `get_weights` (Keras' order); shapes must match."""
        order = keras_weight_order(self, *self.variables)
        if len(weights) != len(order):
            raise ValueError(f"set_weights: expected {len(order)} arrays, got {len(weights)}")
        old = _leaves_by_path(self.variables)
        new = {}
        for i, (path, value) in enumerate(zip(order, weights)):
            if tuple(np.shape(value)) != tuple(old[path].shape):
                raise ValueError(f"set_weights: array {i} ({'/'.join(map(str, path[1:]))}) has shape "
                                 f"{np.shape(value)}, expected {tuple(old[path].shape)}")
            new[path] = jnp.asarray(value, old[path].dtype)
        self.variables = jax.tree_util.tree_map_with_path(lambda p, leaf: new.get(_path_key(p), leaf),
                                                          tuple(self.variables))

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



# Keras creates a layer's weights in this order; names not listed follow, sorted.
_KERAS_NAME_ORDER = ("embeddings", "depthwise_kernel", "pointwise_kernel", "kernel", "recurrent_kernel", "bias",
                     "gamma", "beta", "scale", "moving_mean", "moving_variance", "query", "key", "value",
                     "attention_output")


def _path_key(path: Any) -> tuple:
    return tuple(getattr(k, "key", getattr(k, "idx", k)) for k in path)


def _leaves_by_path(variables: Any) -> dict[tuple, Any]:
    return {_path_key(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(tuple(variables))[0]}


def _ordered_keys(tree: dict) -> list:
    rank = {name: i for i, name in enumerate(_KERAS_NAME_ORDER)}
    return sorted(tree, key=lambda k: (rank.get(k, len(rank)), str(k)))


def keras_weight_order(layer: Any, params: Any, state: Any) -> list[tuple]:
    """Paths `(0 for params | 1 for state, *keys)` of every weight, in Keras' order: sublayers in the
    model's order (`children()`), each leaf layer's params then its state."""
    order: list[tuple] = []

    def leaf_paths(tree: Any, prefix: tuple) -> list[tuple]:
        if isinstance(tree, dict):
            return [p for k in _ordered_keys(tree) for p in leaf_paths(tree[k], (*prefix, k))]
        return [prefix]

    def walk(node: Any, p: Any, s: Any, prefix: tuple) -> None:
        children = node.children() if hasattr(node, "children") else []
        if children and isinstance(p, dict) and all(name in p for name, _ in children):
            seen = set()
            for name, child in children:
                if name not in seen:
                    seen.add(name)
                    walk(child, p[name], s.get(name, {}) if isinstance(s, dict) else {}, (*prefix, name))
            return
        order.extend((0, *path) for path in leaf_paths(p, prefix))
        order.extend((1, *path) for path in leaf_paths(s, prefix))

    walk(layer, params, state, ())
    # An activity regularizer's last penalty lives in the state but is not a weight (Keras has no variable).
    every = {path for path in _leaves_by_path((params, state)) if path[-1] != ACTIVITY_LOSS}
    return [path for path in order if path in every] + sorted(every - set(order), key=str)
