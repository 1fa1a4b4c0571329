"""Batches of device-resident arrays that are cut inside the compiled step: one dispatch per step.

A hand-written loop that slices its batch (`x[perm[i:i + b]]`) and then calls the step dispatches two
programs per step; on an accelerator each dispatch costs the host hundreds of microseconds. A
`RowBatch` instead carries the whole data set, the epoch's order and the batch's start; the train and
eval steps of `make_train_step`/`make_eval_step` gather its rows inside their own program::

    batches = DeviceBatches((x_train, y_train), batch_size=128, seed=0)   # copied to the device once
    for epoch in range(10):
        for batch in batches.epoch(epoch):
            ts, logs = step(ts, batch)                                     # one dispatch per step
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["DeviceBatches", "RowBatch"]


@jax.tree_util.register_pytree_node_class
class RowBatch:
    """Rows `order[start:start + size]` of `data` (a tuple `(x, y)` or `(x, y, sample_weight)` of arrays or
    pytrees, first axis the examples); `rows()` gathers them, traced inside the step that receives it."""

    def __init__(self, data: Any, order: jax.Array, start: Any, size: int) -> None:
        self.data, self.order, self.start, self.size = data, order, start, size

    def rows(self) -> Any:
        """The batch itself, `(x, y[, sample_weight])`, gathered with one index for every leaf."""
        index = lax.dynamic_slice_in_dim(self.order, self.start, self.size)
        return jax.tree.map(lambda a: jnp.take(a, index, axis=0), self.data)

    def tree_flatten(self) -> tuple[tuple, int]:
        return (self.data, self.order, self.start), self.size

    @classmethod
    def tree_unflatten(cls, size: int, children: tuple) -> RowBatch:
        return cls(*children, size)


@partial(jax.jit, static_argnums=(2, 3))
def _order(key: jax.Array, epoch: jax.Array, n: int, shuffle: bool) -> jax.Array:
    if not shuffle:
        return jnp.arange(n, dtype=jnp.int32)
    return jax.random.permutation(jax.random.fold_in(key, epoch), n).astype(jnp.int32)


class DeviceBatches:
    """The batches of one epoch of in-memory data, as `RowBatch`es over a single device copy of it.

    `data` is `(x, y)` or `(x, y, sample_weight)`; it goes to the device once. `epoch(e)` draws epoch `e`'s
    order on the device (a permutation of `fold_in(key(seed), e)`, or the given order without `shuffle`)
    and yields its batches; the last is shorter when `batch_size` does not divide the examples (a second
    compiled size), or is left out with `drop_remainder=True`.
    """

    def __init__(self, data: tuple, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 drop_remainder: bool = False) -> None:
        if not isinstance(data, tuple) or len(data) not in (2, 3):
            raise ValueError(f"DeviceBatches: data must be a tuple (x, y) or (x, y, sample_weight), "
                             f"got {type(data).__name__}")
        lengths = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree.leaves(data)}
        if len(lengths) != 1 or None in lengths:
            shapes = [np.shape(leaf) for leaf in jax.tree.leaves(data)]
            raise ValueError(f"DeviceBatches: every array needs the same number of examples on its first axis, "
                             f"got shapes {shapes}")
        self.n = lengths.pop()
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not 0 < batch_size <= self.n:
            raise ValueError(f"DeviceBatches: batch_size must be an integer in [1, {self.n}] (the number of "
                             f"examples), got {batch_size!r}")
        self.batch_size, self.shuffle, self.drop_remainder = int(batch_size), shuffle, drop_remainder
        self.data = jax.device_put(data)
        self.key = jax.random.key(seed)
        # Each batch's start, on the device once: a step then transfers nothing, not even an int.
        self._starts = [jax.device_put(np.int32(i * self.batch_size)) for i in range(len(self))]

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.n // self.batch_size if self.drop_remainder else -(-self.n // self.batch_size)

    def epoch(self, epoch: int) -> Iterator[RowBatch]:
        order = _order(self.key, jax.device_put(np.uint32(epoch)), self.n, self.shuffle)
        for i, start in enumerate(self._starts):
            yield RowBatch(self.data, order, start, min(self.batch_size, self.n - i * self.batch_size))
