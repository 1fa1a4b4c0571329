"""Which params train: `trainable = False` on a layer freezes every param below it."""

from __future__ import annotations

import jax

from jaxnet_lite.core import Layer, PyTree


def trainable_mask(layer: Layer, params: PyTree) -> PyTree:
    """A tree of bools like `params`: False under every layer with `trainable = False` (recursively)."""
    if not getattr(layer, "trainable", True):
        return jax.tree.map(lambda _: False, params)
    children = dict(layer.children())
    if children and isinstance(params, dict):
        return {k: trainable_mask(children[k], v) if k in children else jax.tree.map(lambda _: True, v)
                for k, v in params.items()}
    return jax.tree.map(lambda _: True, params)
