"""Test kit for layers, yours and ours: protocol checks and float64 gradient checks.

    from jaxnet_lite.testing import check_layer, check_layer_grads
    check_layer(MyLayer(8), (5,))          # shapes, jit == eager, vmap-consistent, deterministic
    check_layer_grads(MyLayer(8), (5,))    # jax.test_util.check_grads in float64, params and inputs

Hypothesis strategies for shapes and hyper-parameters live in `jaxnet_lite.testing.strategies`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from jaxnet_lite.core import Layer, Variables, normalize_shape, split_mask, strip_mask, with_mask

__all__ = ["check_layer", "check_layer_grads", "make_input", "assert_trees_close"]


def make_input(input_shape: Any, batch_size: int = 2, seed: int = 0, dtype: Any = "float32",
               maxval: int = 10) -> Any:
    """A reproducible batch for `input_shape` (a list of shapes gives a list): normal floats, or ints in [0, maxval)."""
    shape = normalize_shape(input_shape)
    if isinstance(shape, list):
        return [make_input(s, batch_size, seed + i, dtype, maxval) for i, s in enumerate(shape)]
    rng = np.random.default_rng(seed)
    if np.issubdtype(np.dtype(dtype), np.integer):
        return jnp.asarray(rng.integers(0, maxval, size=(batch_size, *shape)), dtype)
    return jnp.asarray(rng.standard_normal((batch_size, *shape)), dtype)


def assert_trees_close(a: Any, b: Any, *, atol: float = 1e-5, rtol: float = 1e-5, what: str = "trees") -> None:
    """Same structure, shapes and (within tolerance) values; the message names the first differing leaf."""
    sa, sb = jax.tree.structure(a), jax.tree.structure(b)
    if sa != sb:
        raise AssertionError(f"{what}: structures differ:\n  {sa}\n  {sb}")
    for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)):
        where = jax.tree_util.keystr(path) or "(root)"
        x, y = _key_data(x), _key_data(y)
        if np.shape(x) != np.shape(y):
            raise AssertionError(f"{what}{where}: shapes differ: {np.shape(x)} vs {np.shape(y)}")
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol, err_msg=f"{what}{where}")


def _key_data(x: Any) -> Any:
    """Typed PRNG keys compare by their raw key data."""
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(x)
    return x


def _output_shapes(y: Any) -> Any:
    if isinstance(y, (list, tuple)):
        return [tuple(v.shape[1:]) for v in y]
    return tuple(y.shape[1:])


def check_layer(
    layer: Layer,
    input_shape: Any,
    *,
    x: Any = None,
    batch_size: int = 3,
    seed: int = 0,
    training: bool = False,
    input_dtype: Any = "float32",
    check_vmap: bool | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> tuple[Variables, Any]:
    """Check the layer protocol on one input shape; returns `(variables, y)` for further checks.

    Checks: `init` returns `Variables`; the output shape matches `output_shape`; `apply` under `jax.jit`
    equals eager `apply`; init and apply are deterministic for a fixed key; the state keeps its structure,
    shapes and dtypes; and (in inference, or with `check_vmap=True`) applying to the whole batch equals
    applying to each example alone under `jax.vmap`.
    """
    rng = jax.random.key(seed)
    init_rng, apply_rng = jax.random.split(rng)
    variables = layer.init(init_rng, input_shape)
    if not isinstance(variables, Variables):
        raise AssertionError(f"{layer!r}.init returned {type(variables).__name__}, expected Variables")
    assert_trees_close(variables, layer.init(init_rng, input_shape), atol=0, rtol=0, what="init twice")
    params, state = variables
    if x is None:
        x = make_input(input_shape, batch_size, seed, input_dtype)
    key = apply_rng if training else None

    y, new_state = layer.apply(params, state, x, rng=key, training=training)
    expected = normalize_shape(layer.output_shape(input_shape))
    if _output_shapes(y) != expected:
        raise AssertionError(f"{layer!r}: apply gave output shapes {_output_shapes(y)}, output_shape says {expected}")
    if jax.tree.structure(new_state) != jax.tree.structure(state) or jax.tree.map(
        lambda a: (a.shape, a.dtype), new_state
    ) != jax.tree.map(lambda a: (a.shape, a.dtype), state):
        raise AssertionError(f"{layer!r}: apply changed the structure, shapes or dtypes of the state")

    y_again, state_again = layer.apply(params, state, x, rng=key, training=training)
    assert_trees_close((y, new_state), (y_again, state_again), atol=0, rtol=0, what="apply twice")

    jitted = jax.jit(lambda p, s, x, k: layer.apply(p, s, x, rng=k, training=training))
    assert_trees_close((y, new_state), jitted(params, state, x, key), atol=atol, rtol=rtol, what="jit vs eager")

    if check_vmap is None:
        check_vmap = not training
    if check_vmap:
        def one(xi):
            yi, _ = layer.apply(params, state, jax.tree.map(lambda a: a[None], xi), rng=key, training=training)
            return jax.tree.map(lambda a: a[0], yi)

        assert_trees_close(y, jax.vmap(one)(x), atol=atol, rtol=rtol, what="batch vs vmap per example")
    return variables, y


def _to_float64(tree: Any) -> Any:
    return jax.tree.map(lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def check_layer_grads(
    layer: Layer,
    input_shape: Any,
    *,
    x: Any = None,
    wrt: Sequence[str] = ("params", "inputs"),
    training: bool = False,
    seed: int = 0,
    batch_size: int = 2,
    order: int = 1,
    modes: Sequence[str] = ("rev",),
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> None:
    """Compare autodiff with central finite differences in float64 (`jax.test_util.check_grads`).

    `wrt` picks what to differentiate: "params", "inputs" or both. Integer inputs (ids) are never
    differentiated. Randomness (`training=True`) uses a fixed key, so the function checked is deterministic.
    """
    wrt = tuple(wrt)
    if not set(wrt) <= {"params", "inputs"} or not wrt:
        raise ValueError(f"wrt must name 'params' and/or 'inputs', got {wrt!r}")
    # Initialised as `check_layer` does (same key, default precision, so no recompilation), then cast up.
    init_rng, apply_rng = jax.random.split(jax.random.key(seed))
    variables = layer.init(init_rng, input_shape)
    with jax.enable_x64(True):
        params, state = _to_float64(variables)
        if x is None:
            x = make_input(input_shape, batch_size, seed, "float64")
        x, mask = split_mask(x)  # a mask is held fixed: only the values are differentiated
        x = _to_float64(x)
        key = apply_rng if training else None
        int_input = any(not jnp.issubdtype(a.dtype, jnp.floating) for a in jax.tree.leaves(x))

        def f(p, xx):
            return strip_mask(layer.apply(p, state, with_mask(xx, mask), rng=key, training=training)[0])

        if "inputs" in wrt and not int_input and "params" in wrt and jax.tree.leaves(params):
            check_grads(f, (params, x), order=order, modes=modes, eps=eps, atol=atol, rtol=rtol)
        elif "inputs" in wrt and not int_input:
            check_grads(lambda xx: f(params, xx), (x,), order=order, modes=modes, eps=eps, atol=atol, rtol=rtol)
        elif "params" in wrt and jax.tree.leaves(params):
            check_grads(lambda p: f(p, x), (params,), order=order, modes=modes, eps=eps, atol=atol, rtol=rtol)
