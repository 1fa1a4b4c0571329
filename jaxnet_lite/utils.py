"""Small helpers with Keras' names: `to_categorical` (one-hot encoding of integer labels) and
`pad_sequences` (ragged sequences, such as `datasets.imdb` reviews, to one rectangular array) and
`set_random_seed` (one seed for Python, NumPy and the models built afterwards)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from jaxnet_lite.core.rng import set_default_seed
from jaxnet_lite.core.shapes import as_int

__all__ = ["pad_sequences", "set_random_seed", "to_categorical"]


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


def pad_sequences(
    sequences: Any,
    maxlen: int | None = None,
    dtype: Any = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0.0,
) -> np.ndarray:
    """Pad (or cut) sequences to one length, as `keras.utils.pad_sequences`.

    `sequences` holds `num_samples` sequences: lists of numbers, or arrays of shape
    `(length, *features)` with the same `features` for all (taken from the first non-empty
    one). The result has shape `(num_samples, maxlen, *features)` and type `dtype`;
    `maxlen=None` means the longest length. Shorter sequences are filled with `value` before
    (`padding="pre"`) or after (`"post"`) their values; longer ones lose values at the start
    (`truncating="pre"`) or the end (`"post"`). Empty sequences become all `value`.

    As Keras, a str `value` needs `dtype=object` or a string dtype. Where Keras would convert
    silently, this raises a ValueError instead: with an integer `dtype`, a float that is not a
    whole number (Keras truncates 2.7 to 2), a string, or a number outside the dtype's range
    (which would wrap around); also `maxlen` that is not a positive integer (Keras takes
    `maxlen=0` as "keep everything" when truncating, and fails later), an empty `sequences`
    without `maxlen`, and a bad `padding` or `truncating` even when nothing needs padding.
    """
    if padding not in ("pre", "post"):
        raise ValueError(f'pad_sequences: padding must be "pre" or "post", got {padding!r}')
    if truncating not in ("pre", "post"):
        raise ValueError(f'pad_sequences: truncating must be "pre" or "post", got {truncating!r}')
    if maxlen is not None and (
        isinstance(maxlen, (bool, np.bool_)) or not isinstance(maxlen, (int, np.integer)) or maxlen <= 0
    ):
        raise ValueError(f"pad_sequences: maxlen must be a positive integer or None, got {maxlen!r}")
    if not hasattr(sequences, "__len__") or isinstance(sequences, (str, bytes)):
        raise ValueError(
            f"pad_sequences: sequences must be a list (or array) of sequences, got {type(sequences).__name__}"
        )
    target = np.dtype(dtype)

    lengths, sample_shape = [], None
    for i, sample in enumerate(sequences):
        try:
            if isinstance(sample, (str, bytes)):
                raise TypeError("a string is not read as a sequence of values")
            lengths.append(len(sample))
        except TypeError as e:
            raise ValueError(
                f"pad_sequences: sequences must be a list of iterables; sequence {i} is not one: {sample!r}"
            ) from e
        if sample_shape is None and len(sample):
            sample_shape = _as_array(sample, None, f"sequence {i}").shape[1:]
    if maxlen is None:
        if not lengths:
            raise ValueError("pad_sequences: sequences is empty, so maxlen cannot be inferred; pass maxlen")
        maxlen = max(lengths)
    sample_shape = sample_shape or ()

    fill = value if target.kind == "O" else _as_array(value, target, "value")
    x = np.full((len(lengths), int(maxlen), *sample_shape), fill, dtype=target)
    for i, sample in enumerate(sequences):
        if not lengths[i]:
            continue
        try:
            part = sample[-maxlen:] if truncating == "pre" else sample[:maxlen]
        except (TypeError, KeyError) as e:
            raise ValueError(f"pad_sequences: sequence {i} cannot be sliced: {type(sample).__name__}") from e
        kept = _as_array(part, target, f"sequence {i}")
        if kept.shape[1:] != sample_shape:
            raise ValueError(
                f"pad_sequences: sequence {i} has values of shape {kept.shape[1:]}, "
                f"but the first non-empty sequence's are {sample_shape}"
            )
        if padding == "post":
            x[i, : len(kept)] = kept
        else:
            x[i, -len(kept) :] = kept
    return x


def _as_array(values: Any, target: np.dtype | None, what: str) -> np.ndarray:
    """`values` as an array of type `target` (None: as NumPy reads it), refusing lossy conversions.

    For `pad_sequences`: strings need a string or object `target`; an integer `target` takes
    only whole numbers within its range. The error names `what` (a sequence, or the value).
    """
    as_object = target is not None and target.kind == "O"
    try:
        array = np.asarray(values, dtype=object if as_object else None)
        if array.dtype.kind == "O" and not as_object and array.size:
            array = np.asarray(array.tolist())  # an object array of numbers: read it as numbers
    except (ValueError, TypeError) as e:
        raise ValueError(f"pad_sequences: {what} is not a rectangular array of values: {e}") from e
    if target is None or as_object:
        return array
    kind = array.dtype.kind
    if kind in "US" and target.kind not in "US":
        hint = "; use dtype=object (or a string dtype) for strings" if what == "value" else ""
        raise ValueError(f"pad_sequences: {what} holds strings, which dtype {target} cannot hold{hint}")
    if kind == "O" and array.size:
        raise ValueError(f"pad_sequences: {what} holds values that are not numbers, which dtype {target} cannot hold")
    if target.kind in "iu" and array.size:
        if kind not in "biuf":
            raise ValueError(f"pad_sequences: {what} holds {array.dtype} values, which dtype {target} cannot hold")
        if kind == "f":
            bad = array[~np.isfinite(array) | (array != np.round(array))]
            if bad.size:
                raise ValueError(
                    f"pad_sequences: {what} holds {bad.flat[0].item()!r}, which integer dtype {target} "
                    f"would truncate; round it first or pass a float dtype"
                )
        info = np.iinfo(target)
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            raise ValueError(
                f"pad_sequences: {what} holds {(low if low < info.min else high).item()!r}, "
                f"outside the range of dtype {target} ({info.min}..{info.max})"
            )
    return array.astype(target)


def set_random_seed(seed: int) -> None:
    """Seed Python's `random`, NumPy's global generator and the seed models start from, as Keras' does.

    Models compiled afterwards without `seed=` initialise and shuffle from it, so a script that calls
    this first gives the same numbers on every run.
    """
    number = as_int(seed)
    if number is None or number < 0:
        raise ValueError(f"set_random_seed: seed must be a non-negative integer, got {seed!r}")
    random.seed(number)
    np.random.seed(number % 2**32)
    set_default_seed(number)
