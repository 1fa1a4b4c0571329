"""Early, readable checks on the data given to `fit`/`evaluate`, run before anything is compiled."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet_lite.data.arrays import check_consistent_length


def example_shapes(x: Any, model: Any = None) -> Any:
    """Example shapes (no batch axis) of `x`: a tuple, or a list of them for multi-input data.

    A dict is ordered like the model's `Input`s (by name) when the model has them.
    """
    if isinstance(x, dict):
        names = (model.input_names() if model is not None else None) or []
        keys = names if names and set(names) == set(x) else list(x)
        return [tuple(np.shape(x[k])[1:]) for k in keys]
    if isinstance(x, (list, tuple)):
        return [tuple(np.shape(v)[1:]) for v in x]
    return tuple(np.shape(x)[1:])


def check_count(value: Any, what: str, where: str, *, minimum: int = 1) -> int:
    """An integer argument of `fit`/`evaluate`/`predict` (a batch size, a number of epochs or steps), as a
    Python int; bools and floats are refused with the argument named."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{where}: {what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def as_numeric(tree: Any, name: str, where: str) -> Any:
    """`tree` with every leaf an array of numbers: nested Python lists of numbers become one array;
    strings, objects, complex numbers and ragged lists are refused with the leaf's name and dtype."""
    if tree is None:
        return None
    if isinstance(tree, (list, tuple)) and all(np.ndim(leaf) == 0 for leaf in jax.tree.leaves(tree)):
        try:
            tree = np.asarray(tree)
        except ValueError:
            raise ValueError(f"{where}: {name} is a ragged nested list; pass an array whose first axis indexes "
                             "examples") from None

    def check(path, leaf):
        array = leaf if isinstance(leaf, (np.ndarray, jax.Array)) else np.asarray(leaf)
        dtype = array.dtype
        if not (dtype == np.bool_ or jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)):
            raise ValueError(f"{where}: {name}{jax.tree_util.keystr(path)} has dtype {dtype}; expected numbers "
                             "(floats or integers)")
        return array

    return jax.tree_util.tree_map_with_path(check, tree)


def validate_arrays(engine: Any, x: Any, y: Any, batch_size: int | None, where: str) -> tuple[Any, Any, int]:
    """Check types, lengths, batch size, NaN and inf, and labels against the model's outputs (the loss
    checks its own labels). Returns `(x, y, n)`, with nested lists made arrays. `engine` gives `model`,
    `loss` and `output_shape`."""
    if x is None or y is None:
        raise ValueError(f"{where}: needs both x and y (got {'no x' if x is None else 'no y'})")
    x, y = as_numeric(x, "x", where), as_numeric(y, "y", where)
    n = check_consistent_length(x, y)
    if n == 0:
        raise ValueError(f"{where}: x and y hold no examples")
    if batch_size is not None:
        check_count(batch_size, "batch_size", where)
        if batch_size > n:
            raise ValueError(f"{where}: batch_size {batch_size} is larger than the {n} training examples")
    check_finite(x, "x", where)
    check_finite(y, "y", where)
    out_shape = engine.output_shape(example_shapes(x, engine.model))
    check_input_values(engine.model, x, where)
    outputs = out_shape if isinstance(out_shape, list) else [out_shape]
    labels = list(y.values()) if isinstance(y, dict) else list(y) if isinstance(y, (list, tuple)) else [y]
    if len(outputs) > 1 and len(labels) == 1:
        labels = labels * len(outputs)
    if len(labels) != len(outputs):
        raise ValueError(f"{where}: the model has {len(outputs)} outputs but y holds {len(labels)} arrays")
    for i, (shape, label) in enumerate(zip(outputs, labels)):
        label = label if hasattr(label, "shape") else np.asarray(label)  # arrays keep their place
        engine.loss.check_labels(tuple(shape), label, where=where, name="y" if len(outputs) == 1 else f"y[{i}]")
    return x, y, n


def check_input_values(model: Any, x: Any, where: str) -> None:
    """Ask the model whether the values of `x` can work (ids inside an Embedding's vocabulary)."""
    try:
        model.check_input_values(x)
    except ValueError as e:
        raise type(e)(f"{where}: x: {e}") from None


def check_finite(tree: Any, name: str, where: str) -> None:
    """Raise when a float leaf holds NaN or inf (training on them only gives NaN weights)."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        bad = non_finite(leaf)
        if bad:
            raise ValueError(f"{where}: {name}{jax.tree_util.keystr(path)} contains {bad} values")


def non_finite(a: Any) -> str | None:
    """"NaN" or "inf" when a float array holds one, else None; without copying the array: arrays on an
    accelerator are checked there (copying the data back made every `fit` on device data pay a transfer)."""
    if not jnp.issubdtype(a.dtype, jnp.floating) or a.size == 0:
        return None
    if _on_accelerator(a):
        low, high = (float(v) for v in _device_extremes(a))
    else:
        a = np.asarray(a)  # a view for NumPy and for arrays on the host CPU
        # max and min propagate NaN and show inf; unlike isfinite(a).all() they allocate nothing.
        low, high = float(np.min(a)), float(np.max(a))
    if np.isnan(low) or np.isnan(high):
        return "NaN"
    return "inf" if np.isinf(low) or np.isinf(high) else None


def _on_accelerator(a: Any) -> bool:
    return isinstance(a, jax.Array) and any(d.platform != "cpu" for d in a.devices())


@jax.jit
def _device_extremes(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    return jnp.min(a), jnp.max(a)
