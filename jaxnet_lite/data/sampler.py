"""Which examples each step reads: the index sampler of a random-access pipeline.

An epoch is a permutation of all examples drawn from `(seed, epoch)` (the same seed gives the same
order, each epoch a new one, and a resumed run the order it would have had), cut into global batches
of `batch_size`; every process reads its own contiguous, equal part of each global batch, so the
processes together read each batch exactly once. The last batch is filled up with weight-0 rows, so
every step has one shape and means stay exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import jax
import numpy as np

__all__ = ["EpochSampler"]


class EpochSampler:
    """Per-step example indices and weights for one process.

    `batch_size` is the global batch (all processes together); `padded_batch_size` (default
    `batch_size`) rounds it up, e.g. to a multiple of the device count, with weight-0 rows.
    `process_index`/`process_count` default to `jax.process_index()`/`jax.process_count()`.
    `steps` (default: enough batches for every example) takes the first batches of each epoch.
    """

    def __init__(self, num_examples: int, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 process_index: int | None = None, process_count: int | None = None,
                 padded_batch_size: int | None = None, steps: int | None = None, where: str = "EpochSampler") -> None:
        self.num_examples = _integer(num_examples, "num_examples", where, minimum=1)
        self.batch_size = _integer(batch_size, "batch_size", where, minimum=1)
        self.seed = _integer(seed, "seed", where, minimum=0)
        self.shuffle = bool(shuffle)
        self.process_count = _integer(jax.process_count() if process_count is None else process_count,
                                      "process_count", where, minimum=1)
        self.process_index = _integer(jax.process_index() if process_index is None else process_index,
                                      "process_index", where, minimum=0)
        if self.process_index >= self.process_count:
            raise ValueError(f"{where}: process_index={self.process_index} must be below process_count="
                             f"{self.process_count}")
        self.padded_batch_size = self.batch_size if padded_batch_size is None else _integer(
            padded_batch_size, "padded_batch_size", where, minimum=self.batch_size)
        if self.padded_batch_size % self.process_count:
            padded = "" if self.padded_batch_size == self.batch_size else f" (padded to {self.padded_batch_size})"
            raise ValueError(f"{where}: batch_size={self.batch_size}{padded} does not split evenly across "
                             f"{self.process_count} processes; pass a multiple of {self.process_count}")
        if self.batch_size > self.num_examples:
            share = "" if self.process_count == 1 else (
                f": each of the {self.process_count} processes would read {self.local_batch_size} examples per "
                f"step from its share of {self.num_examples // self.process_count}")
            raise ValueError(f"{where}: batch_size={self.batch_size} is larger than the source's "
                             f"{self.num_examples} examples{share}")
        full = math.ceil(self.num_examples / self.batch_size)
        self.steps = full if steps is None else _integer(steps, "steps_per_epoch", where, minimum=1)
        if self.steps > full:
            raise ValueError(f"{where}: steps_per_epoch={self.steps} asks for more batches than the "
                             f"{self.num_examples} examples give at batch_size {self.batch_size} ({full})")

    @property
    def local_batch_size(self) -> int:
        """Rows this process reads per step."""
        return self.padded_batch_size // self.process_count

    def order(self, epoch: int) -> np.ndarray:
        """The epoch's global order of all examples: a permutation from `(seed, epoch)`, or 0..n-1."""
        if not self.shuffle:
            return np.arange(self.num_examples, dtype=np.int64)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(self.num_examples)

    def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """This process's `(steps, local_batch_size)` example indices and weights (1 real, 0 filler)."""
        index, weight = zip(*self.batches(epoch))
        return np.stack(index), np.stack(weight)

    def batches(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """This process's `(indices, weights)` step by step (only the epoch's order is held whole)."""
        order = self.order(epoch)
        part = slice(self.process_index * self.local_batch_size, (self.process_index + 1) * self.local_batch_size)
        for step in range(self.steps):
            real = order[step * self.batch_size:(step + 1) * self.batch_size]
            index = np.full(self.padded_batch_size, real[0], np.int64)  # filler: a real row, weighted 0
            index[:real.shape[0]] = real
            weight = (np.arange(self.padded_batch_size) < real.shape[0]).astype(np.float32)
            yield index[part], weight[part]


def _integer(value: object, name: str, where: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
