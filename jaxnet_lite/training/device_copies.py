"""Device copies of the NumPy arrays given to `fit`/`evaluate`, made once and reused while unchanged.

A training set passed to `fit` again (a second `fit`, `evaluate` on the same test set, a benchmark's
repeated calls) would otherwise cross to the device on every call: 188 MB for MNIST, tens of
milliseconds on a GPU each time. The rule: an array is recognised by the memory it occupies (address,
shape, strides, dtype) and reused only if its bytes are unchanged since the copy (a CRC-32 of them,
which takes about a third of the copy's time on CPU). So writing into an array in place between calls, as in
`x /= 255`, makes a fresh copy, never a stale one. A copy lives as long as the array it was made from
(and at most `capacity` copies are kept). `jax.Array`s are never copied: they are already on a device.
"""

from __future__ import annotations

import weakref
import zlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class _Copy(NamedTuple):
    owner: weakref.ref  # the array that owns the memory; the copy goes when it does
    checksum: int
    device: Any


def _owner(a: np.ndarray) -> np.ndarray:
    """The outermost array whose memory `a` views (slices of one array share it)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def checksum(a: np.ndarray) -> int:
    """CRC-32 of a C-contiguous array's bytes."""
    return zlib.crc32(memoryview(a).cast("B"))


class DeviceCopies:
    """`copies.get(a, put)`: `put(a)`, or the device array an earlier `put` of the same unchanged bytes gave."""

    def __init__(self, capacity: int = 16) -> None:
        self.capacity = capacity
        self.copies_made = 0  # host-to-device copies of cacheable arrays (read by tests)
        self._entries: OrderedDict[tuple, _Copy] = OrderedDict()

    @staticmethod
    def _key(a: np.ndarray) -> tuple:
        return (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str)

    def get(self, a: np.ndarray, put: Callable[[np.ndarray], Any]) -> Any:
        if not a.flags.c_contiguous or a.size == 0:
            return put(a)
        key = self._key(a)
        found = self._entries.get(key)
        crc = checksum(a)
        if found is not None and found.owner() is not None and found.checksum == crc:
            self._entries.move_to_end(key)
            return found.device
        device = put(a)
        self.copies_made += 1
        try:
            owner = weakref.ref(_owner(a), lambda ref, key=key: self._forget(key, ref))
        except TypeError:  # memory owned by something without weak references: keep no copy
            return device
        self._entries[key] = _Copy(owner, crc, device)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return device

    def _forget(self, key: tuple, owner: weakref.ref) -> None:
        """The array behind `key` is gone: drop its copy (unless the key already holds a newer one)."""
        if key in self._entries and self._entries[key].owner is owner:
            del self._entries[key]

    def clear(self) -> None:
        """Drop every kept copy (their device memory is freed once nothing else holds them)."""
        self._entries.clear()
