"""Random windows of one long token sequence, drawn on the device: language-model batches.

This is nanoGPT's `get_batch` (`ix = randint(len(data) - block_size, (batch,))`, `x = data[i:i+block]`,
`y = data[i+1:i+1+block]`) as a pure function of a key, so the text is copied to the device once and
every batch is cut there, with no host work per step::

    windows = RandomWindows(ids, batch_size=12, block_size=64, seed=0)
    x, y = windows.sample(jax.random.key(1))      # (12, 64) int32 each; y is x shifted left by one
    model.fit(windows, steps_per_epoch=250, epochs=8)                  # an endless dataset of batches
    for step, (x, y) in zip(range(2000), windows): ...                 # or a hand-written loop
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["RandomWindows", "random_windows"]


def random_windows(data: jax.Array, key: jax.Array, *, batch_size: int, block_size: int
                   ) -> tuple[jax.Array, jax.Array]:
    """`(x, y)`, each `(batch_size, block_size)`: windows of `data` starting at uniform random offsets in
    `[0, len(data) - block_size)`, and the same windows one step later (the next-token targets).

    Pure and jit-able (`batch_size` and `block_size` static); the offsets are drawn from `key` exactly as
    nanoGPT draws them (`torch.randint(len(data) - block_size, (batch_size,))`), so every window and its
    target lie inside `data`.
    """
    starts = jax.random.randint(key, (batch_size,), 0, data.shape[0] - block_size)
    rows = data[starts[:, None] + jnp.arange(block_size + 1)]  # (batch, block + 1): one gather
    return rows[:, :-1], rows[:, 1:]


class RandomWindows:
    """A dataset of random-window batches of `data`, for `fit` and for hand-written loops.

    `sample(key)` is the pure draw (jit-compiled, the data passed in as an argument rather than baked
    into the program as a constant). Iterating yields batch 0, 1, 2, ... where batch `i` is
    `sample(fold_in(key(seed), i))`; the count carries on across iterations, so each epoch of `fit` sees
    new windows while a fresh object with the same seed replays the same stream. With `steps` an
    iteration stops after that many batches (a re-iterable dataset: `validation_data=`); without it the
    stream is endless (`fit(..., steps_per_epoch=N)`).
    """

    def __init__(self, data: Any, batch_size: int, block_size: int, *, seed: int = 0,
                 steps: int | None = None) -> None:
        self.batch_size = _positive("batch_size", batch_size)
        self.block_size = _positive("block_size", block_size)
        self.steps = None if steps is None else _positive("steps", steps)
        array = data if isinstance(data, jax.Array) else np.asarray(data)
        if array.ndim != 1 or not jnp.issubdtype(array.dtype, jnp.integer):
            raise ValueError(f"RandomWindows: data must be a 1-D array of integer ids, got shape {array.shape} "
                             f"and dtype {array.dtype}")
        if array.shape[0] <= self.block_size:
            raise ValueError(f"RandomWindows: data holds {array.shape[0]} ids, too few for windows of "
                             f"block_size {self.block_size} and their targets (needs at least {self.block_size + 1})")
        self.data = jnp.asarray(array, jnp.int32)
        self.key = jax.random.key(seed)
        self.drawn = 0  # batches yielded so far: the index of the next one

    def sample(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """`(x, y)` for one random key: `random_windows(self.data, key, ...)`, compiled once."""
        return _draw(self.data, key, None, batch_size=self.batch_size, block_size=self.block_size)

    def batch(self, index: int) -> tuple[jax.Array, jax.Array]:
        """Batch `index` of the stream: `sample(fold_in(key(seed), index))`, drawn in one dispatch."""
        return _draw(self.data, self.key, jnp.asarray(index, jnp.uint32), batch_size=self.batch_size,
                          block_size=self.block_size)

    def __iter__(self) -> Iterator[tuple[jax.Array, jax.Array]]:
        count = 0
        while self.steps is None or count < self.steps:
            batch = self.batch(self.drawn)
            self.drawn += 1
            count += 1
            yield batch

    def __repr__(self) -> str:
        return (f"RandomWindows(<{self.data.shape[0]} ids>, batch_size={self.batch_size}, "
                f"block_size={self.block_size}, steps={self.steps})")


def _draw_at(data: jax.Array, key: jax.Array, index: jax.Array | None, *, batch_size: int, block_size: int
             ) -> tuple[jax.Array, jax.Array]:
    if index is not None:
        key = jax.random.fold_in(key, index)
    return random_windows(data, key, batch_size=batch_size, block_size=block_size)


_draw = jax.jit(_draw_at, static_argnames=("batch_size", "block_size"))


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"RandomWindows: {name} must be a positive integer, got {value!r}")
    return int(value)
