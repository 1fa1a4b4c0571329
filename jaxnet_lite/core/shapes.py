"""Shapes without the batch axis: normalising user input, spelling shapes in errors, int-or-tuple args, and
the numbers of hyper-parameters (Python's or NumPy's) as plain Python ints and floats."""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

Shape = tuple[int, ...]

#: How errors spell the axes of channels-last inputs of each spatial rank (without the batch axis).
SPATIAL_AXES = {1: "(W, C)", 2: "(H, W, C)", 3: "(D, H, W, C)"}


class LayerError(ValueError):
    """A layer was configured or called wrongly; the message names the layer, argument and shapes."""


def as_int(value: Any) -> int | None:
    """`value` as a Python int if it is an integer (Python's, NumPy's, a 0-d integer array), else None.

    Bools are not integers here (`Dense(True)` is a mistake), nor are floats, even integral ones.
    """
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def as_float(value: Any) -> float | None:
    """`value` as a finite Python float if it is a real number (int or float, Python's or NumPy's), else None.

    A narrow NumPy float becomes the shortest decimal that reads back as it (`np.float32(0.1)` -> `0.1`), so
    the layer behaves and prints as with the Python literal.
    """
    number = as_int(value)
    if number is not None:
        return float(number)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    narrow = isinstance(value, np.floating) and value.dtype.itemsize < 8
    number = float(str(value)) if narrow else float(value)
    return number if math.isfinite(number) else None


def as_ints(values: Any) -> tuple[int, ...] | None:
    """A sequence of integers (tuple, list, 1-d NumPy array) as a tuple of Python ints; None if anything else."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        values = list(values)
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        return None
    ints = tuple(as_int(v) for v in values)
    return None if None in ints else ints  # type: ignore[return-value]


def spell(value: Any) -> str:
    """`repr(value)` with NumPy scalars shown as the Python numbers they hold, for error messages."""
    if isinstance(value, np.generic):
        return repr(value.item())
    if isinstance(value, (tuple, list)):
        inner = ", ".join(map(spell, value)) + ("," if isinstance(value, tuple) and len(value) == 1 else "")
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    return repr(value)


def normalize_shape(shape: Any, *, what: str = "input_shape") -> Shape | list[Shape]:
    """Turn an int, tuple or list of ints (Python's or NumPy's), or a list of such for multi-input layers, into
    tuples of Python ints."""
    if isinstance(shape, (list, tuple)) and shape and all(isinstance(s, (list, tuple)) for s in shape):
        return [normalize_shape(s, what=what) for s in shape]  # type: ignore[misc]
    single = as_int(shape)
    dims = (single,) if single is not None else as_ints(shape)
    if dims is None:
        raise LayerError(f"{what} must be a tuple of ints (without the batch axis), got {spell(shape)}")
    if any(d < 1 for d in dims):
        raise LayerError(f"{what} must have positive dimensions, got {dims}")
    return dims


def shape_str(shape: Any) -> str:
    """`(28, 28, 1)`, or `[(4,), (3,)]` for several inputs."""
    return str(tuple(shape)) if not isinstance(shape, list) else "[" + ", ".join(map(shape_str, shape)) + "]"


def as_tuple(value: Any, n: int, what: str, owner: str) -> tuple[int, ...]:
    """Keras' int-or-tuple arguments (`kernel_size=3` -> `(3, 3)`), validated as positive ints."""
    single = as_int(value)
    dims = (single,) * n if single is not None else as_ints(value)
    if dims is None or len(dims) != n or any(d <= 0 for d in dims):
        shown = spell(value if dims is None else dims)
        raise LayerError(f"{owner}: {what} must be a positive int or a tuple of {n} positive ints, got {shown}")
    return dims
