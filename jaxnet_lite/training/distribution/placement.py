"""Where each leaf of a `TrainState` lives: params and layer state by the distribution's layouts, optimizer
state like the param it mirrors, the step and key replicated."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from jaxnet_lite.training.distribution.strategies import Distribution
from jaxnet_lite.training.state import TrainState


def mirror_params(optimizer: optax.GradientTransformation, opt_state: Any, params: Any, param_leaves: Any,
                  other: Any) -> Any:
    """`opt_state` with each leaf replaced: by the matching leaf of `param_leaves` where the leaf sits in a
    copy of the params tree (Adam's `mu` and `nu`) and has its param's shape, by `other` elsewhere.

    Which subtrees are params copies is Optax's answer (`optax.tree_map_params`, which runs the
    optimizer's `init` on a placeholder); an `init` that cannot run on one falls back to finding the
    subtrees whose tree structure and leaf shapes equal the params'.
    """

    def same_shape(leaf: Any, param: Any, value: Any) -> Any:
        return value if np.shape(leaf) == np.shape(param) else other  # a factored slot (Adafactor) is not

    try:
        return optax.tree_map_params(optimizer, same_shape, opt_state, params, param_leaves,
                                     transform_non_params=lambda _: other)
    except (TypeError, ValueError, AttributeError, IndexError, KeyError):
        return _mirror_by_structure(opt_state, params, param_leaves, other)


def _mirror_by_structure(node: Any, params: Any, param_leaves: Any, other: Any) -> Any:
    treedef = jax.tree.structure(params)
    shapes = [np.shape(p) for p in jax.tree.leaves(params)]

    def walk(node: Any) -> Any:
        structure = jax.tree.structure(node)
        if structure == treedef and [np.shape(leaf) for leaf in jax.tree.leaves(node)] == shapes:
            return param_leaves
        if jax.tree_util.treedef_is_leaf(structure):
            return other
        children, rebuild = jax.tree_util.tree_flatten(node, is_leaf=lambda n: n is not node)
        return jax.tree_util.tree_unflatten(rebuild, [walk(c) for c in children])

    return walk(node)


def train_state_shardings(distribution: Distribution, ts: TrainState, optimizer: optax.GradientTransformation
                          ) -> TrainState:
    """A `TrainState` of `NamedSharding`s for `ts` (arrays or `jax.ShapeDtypeStruct`s) under `distribution`.

    Layer state (moving statistics) follows the layout map too, as Keras lays out every variable by path.
    """
    mesh = distribution.device_mesh.backend_mesh
    replicated = NamedSharding(mesh, PartitionSpec())

    def named(specs: Any) -> Any:
        return jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs,
                            is_leaf=lambda s: isinstance(s, PartitionSpec))

    params = named(distribution.variable_specs(ts.params))
    state = named(distribution.variable_specs(ts.state))
    opt_state = mirror_params(optimizer, ts.opt_state, ts.params, params, replicated)
    return TrainState(params, state, opt_state, replicated, replicated)
