"""Small helpers with Keras' names: `to_categorical` (one-hot encoding of integer labels)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["to_categorical"]


def to_categorical(y: Any, num_classes: int | None = None, dtype: Any = "float32") -> np.ndarray:
    """One-hot encode integer class labels, as `keras.utils.to_categorical`.

    `y` of shape (N,) or (N, 1) gives (N, num_classes); any other shape `s` gives
    `s + (num_classes,)` (a trailing axis of size 1 is dropped first, as in Keras).
    `num_classes` defaults to `max(y) + 1`. Unlike Keras, labels that are negative,
    not below `num_classes`, or not whole numbers raise a ValueError instead of being
    truncated or wrapped silently.
    """
    labels = np.asarray(y)
    is_number = np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)
    if labels.dtype == bool or not is_number:
        raise ValueError(f"to_categorical: y must hold integer class labels, got dtype {labels.dtype}")
    if np.issubdtype(labels.dtype, np.floating):
        bad = labels[~np.isfinite(labels) | (labels != np.round(labels))]
        if bad.size:
            raise ValueError(
                f"to_categorical: y must hold whole-number class labels, got {bad.flat[0].item()!r}"
            )
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = labels.reshape(-1).astype(np.int64)

    if flat.size and flat.min() < 0:
        raise ValueError(
            f"to_categorical: y holds a negative label {flat.min()}; labels must be 0..num_classes-1"
        )
    if num_classes is None:
        if not flat.size:
            raise ValueError("to_categorical: y is empty, so num_classes cannot be inferred; pass num_classes")
        num_classes = int(flat.max()) + 1
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"to_categorical: num_classes must be a positive integer, got {num_classes!r}")
    elif flat.size and flat.max() >= num_classes:
        raise ValueError(
            f"to_categorical: y holds label {flat.max()}, which is not below num_classes={num_classes}"
        )

    categorical = np.zeros((flat.size, int(num_classes)), dtype=dtype)
    categorical[np.arange(flat.size), flat] = 1
    return categorical.reshape(shape + (int(num_classes),))
