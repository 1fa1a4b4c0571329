"""Shapes without the batch axis: normalising user input, spelling shapes in errors, int-or-tuple args."""

from __future__ import annotations

from typing import Any

Shape = tuple[int, ...]

#: How errors spell the axes of channels-last inputs of each spatial rank (without the batch axis).
SPATIAL_AXES = {1: "(W, C)", 2: "(H, W, C)", 3: "(D, H, W, C)"}


class LayerError(ValueError):
    """A layer was configured or called wrongly; the message names the layer, argument and shapes."""


def normalize_shape(shape: Any, *, what: str = "input_shape") -> Shape | list[Shape]:
    """Turn an int, tuple or list of ints (or a list of such, for multi-input layers) into tuples."""
    if isinstance(shape, int):
        return (shape,)
    if isinstance(shape, (list, tuple)) and shape and all(isinstance(s, (list, tuple)) for s in shape):
        return [normalize_shape(s, what=what) for s in shape]
    if isinstance(shape, (list, tuple)) and all(isinstance(d, (int,)) or hasattr(d, "__index__") for d in shape):
        dims = tuple(int(d) for d in shape)
        if any(d < 1 for d in dims):
            raise LayerError(f"{what} must have positive dimensions, got {dims}")
        return dims
    raise LayerError(f"{what} must be a tuple of ints (without the batch axis), got {shape!r}")


def shape_str(shape: Any) -> str:
    """`(28, 28, 1)`, or `[(4,), (3,)]` for several inputs."""
    return str(tuple(shape)) if not isinstance(shape, list) else "[" + ", ".join(map(shape_str, shape)) + "]"


def as_tuple(value: Any, n: int, what: str, owner: str) -> tuple[int, ...]:
    """Keras' int-or-tuple arguments (`kernel_size=3` -> `(3, 3)`), validated as positive ints."""
    if isinstance(value, int) or hasattr(value, "__index__") and not isinstance(value, (tuple, list)):
        value = (int(value),) * n
    if not isinstance(value, (tuple, list)):
        raise LayerError(f"{owner}: {what} must be a positive int or a tuple of {n} positive ints, got {value!r}")
    value = tuple(value)
    if len(value) != n or not all(isinstance(v, int) and v > 0 for v in value):
        raise LayerError(f"{owner}: {what} must be a positive int or a tuple of {n} positive ints, got {value!r}")
    return value
