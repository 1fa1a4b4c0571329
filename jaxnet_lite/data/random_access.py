"""Random-access data sources: examples read by index from files larger than memory.

A source has a length and reads any set of examples as one `(x, y)` batch; the epoch's order, the
split across processes and prefetching belong to the reader that drives it (`data/sampler.py`,
`data/prefetch.py`), as in the source/sampler/loader split of `tfds.data_source` and Grain::

    source = MemmapSource("x.npy", "y.npy")      # .npy files, read row by row, never loaded whole
    x, y = source[np.array([7, 3, 3])]           # a batch of three examples, in that order
    model.fit(source, epochs=2, batch_size=256)  # shuffled each epoch, sharded per process, prefetched

`RecordSource` adapts any sequence of records (`len` and `[i]`, e.g. a `tfds.data_source`) whose
records are `(x, y)` pairs or dicts of features.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

__all__ = ["MemmapSource", "RandomAccessSource", "RecordSource"]

# Reading a gap of this many unused bytes costs about one more read call, so nearer rows share a read.
_MERGE_GAP_BYTES = 1 << 14


class RandomAccessSource(abc.ABC):
    """Examples by index: `len(source)` of them; `source[indices]` is one `(x, y)` batch in that order.

    Subclasses implement `__len__` and `read_sorted(indices)` (strictly increasing indices, which file
    formats read fastest); `__getitem__` sorts, drops repeats, reads once and restores the asked order.
    """

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def read_sorted(self, indices: np.ndarray) -> tuple[Any, Any]:
        """The examples at strictly increasing `indices`, as `(x, y)` arrays (or pytrees) of `len(indices)` rows."""

    def __getitem__(self, index: Any) -> tuple[Any, Any]:
        """One example for an int (no batch axis), else a batch for an array, list or slice of indices."""
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            x, y = self[np.array([index])]
            return jax.tree.map(lambda a: a[0], x), jax.tree.map(lambda a: a[0], y)
        indices = self._checked_indices(index)
        unique, inverse = np.unique(indices, return_inverse=True)
        x, y = self.read_sorted(unique)
        if unique.shape[0] == indices.shape[0] and np.array_equal(unique, indices):
            return x, y
        return jax.tree.map(lambda a: a[inverse], x), jax.tree.map(lambda a: a[inverse], y)

    def _checked_indices(self, index: Any) -> np.ndarray:
        n = len(self)
        if isinstance(index, slice):
            return np.arange(n)[index]
        indices = np.asarray(index)
        if indices.ndim != 1 or not (indices.dtype.kind in "iu" or indices.size == 0):
            raise IndexError(f"{type(self).__name__}: index with an int or a 1-D array of ints, got "
                             f"{indices.dtype} of shape {indices.shape}")
        indices = indices.astype(np.int64)
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"{type(self).__name__}: indices must lie in [-{n}, {n}), got "
                             f"{int(indices.min())}..{int(indices.max())}")
        return np.where(indices < 0, indices + n, indices)


class MemmapSource(RandomAccessSource):
    """`(x, y)` from two `.npy` files (or arrays) whose first axis indexes examples.

    The files are opened with `np.load(mmap_mode="r")`, so nothing is loaded up front. Rows of a C-ordered
    file are then read with positional reads into each new batch: fancy-indexing the memory map instead
    maps every touched page (and the kernel's read-around) into the process, so a shuffled epoch over a
    2 GiB file grew the resident set to the whole file (docs/design-notes.md). Arrays already in memory
    are indexed as they are.
    """

    def __init__(self, x: str | os.PathLike | np.ndarray, y: str | os.PathLike | np.ndarray | None = None) -> None:
        self.x, self._x_file = _open(x, "x")
        self.y, self._y_file = (None, None) if y is None else _open(y, "y")
        if self.y is not None and self.y.shape[0] != self.x.shape[0]:
            raise ValueError(f"MemmapSource: x has {self.x.shape[0]} examples (shape {self.x.shape}) but y has "
                             f"{self.y.shape[0]} (shape {self.y.shape}); both files must have one row per example")
        if self.x.shape[0] == 0:
            raise ValueError(f"MemmapSource: x holds no examples (shape {self.x.shape})")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def read_sorted(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        x = _read_rows(self.x, self._x_file, indices)
        return x, None if self.y is None else _read_rows(self.y, self._y_file, indices)

    def __repr__(self) -> str:
        y = "" if self.y is None else f", y {self.y.dtype}{list(self.y.shape)}"
        return f"MemmapSource(x {self.x.dtype}{list(self.x.shape)}{y})"


class RecordSource(RandomAccessSource):
    """`(x, y)` batches from a sequence of records: `len(records)`, `records[i]` (and `__getitems__`, as
    `tfds.data_source` has it, when present).

    A record is an `(x, y)` pair, or a dict of features of which `keys=(x_key, y_key)` are taken (as for
    `tfds.data_source("mnist")`, whose records are `{"image": ..., "label": ...}`). `pick(record)`, if
    given, turns one record into `(x, y)` instead.
    """

    def __init__(self, records: Any, keys: Sequence[str] | None = None, *, pick: Any = None) -> None:
        if not (hasattr(records, "__len__") and hasattr(records, "__getitem__")):
            raise TypeError(f"RecordSource: records must support len() and [index] (a random-access data "
                            f"source), got {type(records).__name__}")
        if keys is not None and (isinstance(keys, str) or len(keys) != 2):
            raise ValueError(f"RecordSource: keys must be the two feature names (x_key, y_key), got {keys!r}")
        if len(records) == 0:
            raise ValueError("RecordSource: the records are empty")
        self.records, self.keys = records, None if keys is None else tuple(keys)
        self._pick = pick

    def __len__(self) -> int:
        return len(self.records)

    def read_sorted(self, indices: np.ndarray) -> tuple[Any, Any]:
        keys = [int(i) for i in indices]
        many = getattr(self.records, "__getitems__", None)
        records = many(keys) if many is not None else [self.records[i] for i in keys]
        pairs = [self.pick(record) for record in records]
        return _stack([p[0] for p in pairs], "x"), _stack([p[1] for p in pairs], "y")

    def pick(self, record: Any) -> tuple[Any, Any]:
        """One record as `(x, y)`."""
        if self._pick is not None:
            return self._pick(record)
        if isinstance(record, dict):
            if self.keys is None:
                raise ValueError(f"RecordSource: records are dicts with features {sorted(record)}; pass "
                                 "keys=(x_key, y_key) to say which are x and y")
            missing = [k for k in self.keys if k not in record]
            if missing:
                raise ValueError(f"RecordSource: records have no feature {missing}; they have {sorted(record)}")
            return record[self.keys[0]], record[self.keys[1]]
        if isinstance(record, (tuple, list)) and len(record) == 2:
            return record[0], record[1]
        raise ValueError(f"RecordSource: a record must be an (x, y) pair or a dict of features, got "
                         f"{type(record).__name__}")


def _open(value: Any, name: str) -> tuple[np.ndarray, str | None]:
    """`(array, file path to read rows from, or None to index the array)`."""
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if not os.path.exists(path):
            raise FileNotFoundError(f"MemmapSource: {name} file {path!r} does not exist")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"MemmapSource: {name} file {path!r} is not a .npy array: {e}") from None
        if not isinstance(array, np.memmap):
            raise ValueError(f"MemmapSource: {name} file {path!r} must be one .npy array, got {type(array).__name__}")
        if not (array.flags.c_contiguous and hasattr(os, "preadv")):
            path = None  # a Fortran-ordered file (or no positional reads here): index the map
    elif isinstance(value, np.ndarray):
        array, path = value, None
    else:
        raise TypeError(f"MemmapSource: {name} must be a .npy path or a NumPy array, got {type(value).__name__}")
    if array.ndim == 0:
        raise ValueError(f"MemmapSource: {name} has no example axis (shape ())")
    if array.dtype.hasobject:
        raise ValueError(f"MemmapSource: {name} has dtype {array.dtype}; expected numbers")
    return array, path


def _read_rows(array: np.ndarray, path: str | None, indices: np.ndarray) -> np.ndarray:
    """`array[indices]` for strictly increasing `indices`; from `path` by positional reads when given.

    Rows close together (gaps under `_MERGE_GAP_BYTES`, as for small label rows) are read as one span
    and picked from it; a span of consecutive rows is read straight into the batch. Either way the
    file's pages stay in the page cache (which the kernel may drop) instead of in the process."""
    if path is None:
        return np.asarray(array[indices])
    out = np.empty((indices.shape[0], *array.shape[1:]), array.dtype)
    row = out.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
    if out.size == 0:
        return out
    gaps = (np.diff(indices) - 1) * row
    bounds = [0, *(np.flatnonzero(gaps > _MERGE_GAP_BYTES) + 1).tolist(), indices.shape[0]]
    fd = os.open(path, os.O_RDONLY)
    try:
        for start, stop in zip(bounds[:-1], bounds[1:]):
            first, last = int(indices[start]), int(indices[stop - 1])
            if last - first == stop - start - 1:  # consecutive rows: read them in place
                _read_span(fd, path, out[start:stop], array.offset + first * row)
            else:
                span = np.empty((last - first + 1, *array.shape[1:]), array.dtype)
                _read_span(fd, path, span, array.offset + first * row)
                out[start:stop] = span[indices[start:stop] - first]
    finally:
        os.close(fd)
    return out


def _read_span(fd: int, path: str, into: np.ndarray, offset: int) -> None:
    """Fill the C-contiguous `into` with the file's bytes from `offset`."""
    buffer = memoryview(into).cast("B")
    got = os.preadv(fd, [buffer], offset)
    if got != buffer.nbytes:
        raise OSError(f"MemmapSource: {path!r} is shorter than its header says (read {got} of "
                      f"{buffer.nbytes} bytes at offset {offset})")


def _stack(values: list[Any], name: str) -> Any:
    """Per-example values (arrays or pytrees of them) stacked along a new first axis."""
    try:
        return jax.tree.map(lambda *leaves: np.stack([np.asarray(v) for v in leaves]), *values)
    except ValueError as e:
        raise ValueError(f"RecordSource: the {name} of these records differ in structure or shape ({e}); "
                         "every record must have the same shapes") from None
