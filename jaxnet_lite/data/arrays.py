"""Batching helpers for in-memory data: slice arrays, or pytrees of arrays, along axis 0.

`x` and `y` may each be one array or a dict/list/tuple of arrays (any JAX pytree); all
leaves are sliced together, so a batch keeps the structure of the input.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

__all__ = ["batches", "check_consistent_length", "num_batches", "train_val_split"]

PyTree = Any


def check_consistent_length(x: PyTree, y: PyTree = None) -> int:
    """Return the number of samples shared by every array in `x` and `y`, or raise ValueError.

    Each leaf must have a leading (sample) axis of the same length; the error names the
    two leaves that disagree and both lengths.
    """
    first: tuple[str, int, tuple[int, ...]] | None = None
    for name, tree in (("x", x), ("y", y)):
        leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
        if name == "x" and not leaves:
            raise ValueError("x holds no arrays")
        for path, leaf in leaves:
            label = name + jax.tree_util.keystr(path)
            shape = np.shape(leaf)
            if not shape:
                raise ValueError(
                    f"{label} has no sample axis (shape ()); pass arrays whose first axis indexes samples"
                )
            if first is None:
                first = (label, shape[0], shape)
            elif shape[0] != first[1]:
                raise ValueError(
                    f"inconsistent number of samples: {first[0]} has {first[1]} (shape {first[2]}) "
                    f"but {label} has {shape[0]} (shape {shape})"
                )
    return first[1]


def num_batches(n: int, batch_size: int, drop_remainder: bool = False) -> int:
    """How many batches `batches` yields for `n` samples: ceil(n / batch_size), or floor when dropping."""
    _check_positive("batch_size", batch_size)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return n // batch_size if drop_remainder else -(-n // batch_size)


def batches(
    x: PyTree,
    y: PyTree = None,
    batch_size: int = 32,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
) -> Iterator[PyTree]:
    """Yield NumPy batches of `x`, or `(x_batch, y_batch)` pairs when `y` is given.

    Batches follow the data's order, or with `shuffle=True` a permutation drawn from
    `np.random.default_rng(seed)` (pass a new seed, e.g. the epoch number, for a new order).
    The last batch may be shorter than `batch_size` unless `drop_remainder=True`.
    """
    _check_positive("batch_size", batch_size)
    n = check_consistent_length(x, y)
    x, y = jax.tree_util.tree_map(np.asarray, (x, y))
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    for b in range(num_batches(n, batch_size, drop_remainder)):
        rows = slice(b * batch_size, min((b + 1) * batch_size, n))
        take = rows if order is None else order[rows]
        yield _take(x, take) if y is None else (_take(x, take), _take(y, take))


def train_val_split(
    x: PyTree, y: PyTree, validation_split: float
) -> tuple[tuple[PyTree, PyTree], tuple[PyTree, PyTree]]:
    """Split off the last `validation_split` fraction of the samples, as Keras' `fit` does.

    Returns `(x_train, y_train), (x_val, y_val)`. As in Keras 3
    (`keras/src/trainers/data_adapters/array_slicing.py`, `train_validation_split`), the split
    point is `floor(n * (1 - validation_split))`, taken before any shuffling, and a split that
    leaves either part empty is an error. `y` may be None.
    """
    if not _is_fraction(validation_split):
        raise ValueError(
            f"validation_split must be a float strictly between 0 and 1, got {validation_split!r}"
        )
    n = check_consistent_length(x, y)
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(
            f"{n} samples are too few to split with validation_split={validation_split}: "
            f"it would leave {split_at} for training and {n - split_at} for validation"
        )
    train, val = slice(0, split_at), slice(split_at, n)
    return (_take(x, train), _take(y, train)), (_take(x, val), _take(y, val))


def _take(tree: PyTree, rows: slice | np.ndarray) -> PyTree:
    """Index every leaf of `tree` along axis 0."""
    return jax.tree_util.tree_map(lambda a: a[rows], tree)


def _is_fraction(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.floating)) and 0 < value < 1


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
