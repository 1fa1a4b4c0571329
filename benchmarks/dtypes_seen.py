"""What a contender really computes in: the operand dtypes of the matmuls and convolutions of a traced
function, and the dtypes of a tree of arrays (params, optimizer state). Imports JAX only, so the
hand-written reference can report the same facts as jaxnet_lite without importing it."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

HEAVY = ("dot_general", "conv_general_dilated")


def _sub_jaxprs(value: Any) -> list[Any]:
    """The jaxprs inside an equation's parameter (jit, scan, cond branches, custom derivatives)."""
    if hasattr(value, "eqns"):
        return [value]
    if hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
        return [value.jaxpr]
    if isinstance(value, (tuple, list)):
        return [j for v in value for j in _sub_jaxprs(v)]
    return []


def _walk(jaxpr: Any, found: set[str]) -> None:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in HEAVY:
            found.update(jnp.dtype(v.aval.dtype).name for v in eqn.invars)
        for value in eqn.params.values():
            for sub in _sub_jaxprs(value):
                _walk(sub, found)


def matmul_dtypes(fn: Any, *args: Any) -> list[str]:
    """The dtypes the matmuls and convolutions of `fn(*args)` take as operands (traced, not run)."""
    found: set[str] = set()
    _walk(jax.make_jaxpr(fn)(*args).jaxpr, found)
    return sorted(found)


def float_dtypes(tree: Any) -> list[str]:
    """The floating dtypes among the leaves of `tree` (e.g. params stay float32 under a mixed policy)."""
    return sorted({jnp.dtype(leaf.dtype).name for leaf in jax.tree.leaves(tree)
                   if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating)})
