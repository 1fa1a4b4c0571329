"""Data sources: where the epoch loop's batches come from.

The one epoch loop (`fit_loop.py`) asks a source to run an epoch's training steps or an evaluation
on an `Engine`, watched by a `StepWatch`; the source decides how batches reach the device:

- `ArraySource`: arrays in memory. They go to the device once, each epoch is shuffled there and every
  step gathers its batch there, several steps per dispatch where that measures faster.
- `BatchStream`: any iterable of `(x, y)` batches (a generator, a list, a TFDS iterator), for data that
  does not fit in memory. Batches are checked, padded to the first batch's size and prefetched.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet_lite.training.engine import Engine
from jaxnet_lite.training.predict import num_examples
from jaxnet_lite.training.processes import agree_on_batch, global_batch, several_processes
from jaxnet_lite.training.validation import (
    as_numeric,
    check_count,
    check_finite,
    example_shapes,
    validate_arrays,
)
from jaxnet_lite.training.watch import StepWatch
from jaxnet_lite.training.weighting import WeightedLabels, check_sample_weight, split_sample_weight


@dataclass
class EpochResult:
    """What an epoch's steps left: device-side sums, steps run, and whether the epoch ran to its end."""

    sums: dict
    steps: int
    complete: bool


class ArraySource:
    """In-memory `(x, y)`, checked once, put on the device on first use."""

    def __init__(self, engine: Engine, x: Any, y: Any, batch_size: int | None, *, shuffle: bool = False,
                 steps_per_epoch: int | None = None, where: str = "fit", default_batch_size: int = 32) -> None:
        y, sample_weight = split_sample_weight(y)
        x, y, self.n = validate_arrays(engine, x, y, batch_size if where == "fit" else None, where)
        if sample_weight is not None:
            y = WeightedLabels(y, check_sample_weight(sample_weight, self.n, where))
        self.batch_size = min(default_batch_size, self.n) if batch_size is None else min(batch_size, self.n)
        self.steps = math.ceil(self.n / self.batch_size)
        if steps_per_epoch is not None:
            check_count(steps_per_epoch, "steps_per_epoch", where)
            if steps_per_epoch > self.steps:
                raise ValueError(f"{where}: steps_per_epoch={steps_per_epoch} asks for more batches than the "
                                 f"{self.n} examples give at batch_size {self.batch_size} ({self.steps})")
            self.steps = int(steps_per_epoch)
        self.shuffle = shuffle
        self.shapes = example_shapes(x, engine.model)
        self._host = (x, y)
        self._device: tuple[Any, Any] | None = None

    def prepare(self, engine: Engine) -> None:
        """Create the train state if needed and copy the data to the device (once)."""
        engine.ensure_state(self.shapes)
        if self._device is None:
            x, y = self._host
            self._device = (engine.to_device(x), engine.to_device(y))
            self._host = None

    def train_epoch(self, engine: Engine, epoch: int, watch: StepWatch) -> EpochResult:
        """Run one epoch: one dispatch when nobody watches, else chunks of steps with the watch between."""
        self.prepare(engine)
        x, y = self._device
        n, steps, batch_size = self.n, self.steps, self.batch_size
        padded = engine.padded_batch_size(batch_size)
        k = 1 if watch.each_step else engine.steps_per_dispatch(steps)
        if not watch.each_step and engine.in_one_dispatch(k, steps, watch.watched):
            engine.train_state, sums = engine.settle(engine.train_epoch_fn(n, steps, batch_size, padded, self.shuffle)(
                engine.train_state, x, y, engine.scalar(epoch)))
            return EpochResult(sums, steps, True)
        index, weight, sums = engine.epoch_setup_fn(n, steps, batch_size, padded, self.shuffle)(
            engine.train_state.rng, engine.scalar(epoch))
        start = 0
        while start < steps and not watch.stopped:
            size = min(k, steps - start)  # a short tail is one chunk of its own size (one more compile)
            watch.begin(start)
            engine.train_state, sums = engine.settle(
                engine.train_chunk_fn(size)(engine.train_state, sums, x, y, index, weight, start))
            start += size
            watch.end(start, sums)
        return EpochResult(sums, start, start == steps)

    def evaluate(self, engine: Engine, params: Any, state: Any, watch: StepWatch) -> dict:
        """Device-side loss and metric sums over all examples, in inference mode."""
        self.prepare(engine)
        x, y = self._device
        n, steps, batch_size = self.n, math.ceil(self.n / self.batch_size), self.batch_size
        padded = engine.padded_batch_size(batch_size)
        k = 1 if watch.each_step else engine.steps_per_dispatch(steps)
        if not watch.each_step and engine.in_one_dispatch(k, steps, watch.watched):
            return engine.settle(engine.eval_all_fn(n, steps, batch_size, padded)(params, state, x, y))
        index, weight, sums = engine.epoch_setup_fn(n, steps, batch_size, padded, False)(engine.train_state.rng, 0)
        start = 0
        while start < steps:
            size = min(k, steps - start)
            watch.begin(start)
            sums = engine.settle(engine.eval_chunk_fn(size)(params, state, sums, x, y, index, weight, start))
            start += size
            watch.end(start, sums)
        return sums

    @property
    def eval_steps(self) -> int:
        return math.ceil(self.n / self.batch_size)


class BatchStream:
    """An iterable of `(x, y)` batches. Each epoch iterates it again, or, with `steps_per_epoch`, takes
    the next `steps_per_epoch` batches of one iterator (for endless generators)."""

    def __init__(self, dataset: Iterable[Any], *, steps_per_epoch: int | None = None, where: str = "fit") -> None:
        if not hasattr(dataset, "__iter__") or isinstance(dataset, (str, bytes)):
            raise TypeError(f"{where}: x must be arrays or an iterable of (x, y) batches, got {type(dataset).__name__}")
        if steps_per_epoch is not None:
            check_count(steps_per_epoch, "steps_per_epoch", where)
        self.dataset, self.where = dataset, where
        self.steps = steps_per_epoch
        self.eval_steps = 0  # batches the last evaluation read
        self._iterator = iter(dataset) if steps_per_epoch is not None else None
        self.batch_size: int | None = None
        self._weighted = False
        self._shapes: tuple[Any, Any] | None = None  # example shapes of x and y, from the first batch

    def _batches(self) -> Iterator[Any]:
        if self._iterator is not None:
            return itertools.islice(self._iterator, self.steps)
        return iter(self.dataset)

    def _checked(self, engine: Engine, batch: Any, index: int) -> tuple[Any, Any, np.ndarray]:
        """The batch as `(x, y, valid)`, padded to the first batch's size; bad batches raise early.

        A batch `(x, y, w)` carries sample weights; they travel with its labels (`WeightedLabels`)."""
        where = f"{self.where}: batch {index}"
        if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
            raise ValueError(f"{where}: a streamed dataset must yield (x, y) or (x, y, sample_weight) batches, "
                             f"got {type(batch).__name__}")
        x, y, *weights = batch
        if self._shapes is not None and bool(weights) != self._weighted:
            raise ValueError(f"{where} {'has' if weights else 'lacks'} sample weights, unlike the first batch")
        if self._shapes is None:
            x, y, real = validate_arrays(engine, x, y, None, where)  # shapes and labels against the model, once
            self.batch_size = max(real, self.batch_size or 0)  # several processes: set beforehand (`_global_batches`)
            self._weighted = bool(weights)
            self._shapes = (example_shapes(x, engine.model), example_shapes(y))
            engine.ensure_state(self._shapes[0])
        else:
            x, y = as_numeric(x, "x", where), as_numeric(y, "y", where)
            real = num_examples(x)
            shapes = (example_shapes(x, engine.model), example_shapes(y))
            if shapes != self._shapes or num_examples(y) != real:
                raise ValueError(f"{where} has example shapes x {shapes[0]}, y {shapes[1]} ({real} and "
                                 f"{num_examples(y)} rows); the first batch had x {self._shapes[0]}, y {self._shapes[1]}")
            if real > self.batch_size:
                raise ValueError(f"{where} has {real} examples, more than the first batch's {self.batch_size}")
            check_finite(x, "x", where)
            check_finite(y, "y", where)
        if weights:
            y = WeightedLabels(y, check_sample_weight(weights[0], real, where))
        valid = (np.arange(self.batch_size) < real).astype(np.float32)
        return _pad_rows(x, self.batch_size), _pad_rows(y, self.batch_size), valid

    def _prefetched(self, engine: Engine) -> Iterator[tuple[Any, Any, Any]]:
        """Checked, padded batches, with the next ones already on their way to the device."""
        if several_processes():
            yield from self._global_batches(engine)
            return
        queue: list[Any] = []
        for i, batch in enumerate(self._batches()):
            queue.append(jax.device_put(self._checked(engine, batch, i)))
            if len(queue) >= 2:
                yield queue.pop(0)
        yield from queue

    def _global_batches(self, engine: Engine) -> Iterator[tuple[Any, Any, Any]]:
        """Several processes: each reads its own batches, and step `i` trains on all processes' `i`-th batches
        as one global batch (rows in process order). Before each step the processes exchange their row
        counts, so all stop together when any runs out, and all pad to the largest first batch."""
        batches = self._batches()
        local_devices = jax.local_device_count()
        for i in itertools.count():
            batch = next(batches, None)
            rows = None
            if batch is not None:
                try:
                    rows = num_examples(batch[0])
                except (TypeError, ValueError, IndexError, KeyError):
                    rows = 0  # not a batch: `_checked` says why
            counts = agree_on_batch(rows)
            if None in counts:
                return
            if self._shapes is None:  # one padded size for every process, split evenly over its devices
                self.batch_size = -(-max(counts) // local_devices) * local_devices
            yield global_batch(self._checked(engine, batch, i), engine.mesh)

    def _empty(self, epoch: int) -> ValueError:
        return ValueError(f"{self.where}: the dataset yielded no batches in epoch {epoch + 1}; pass a re-iterable "
                          "dataset, or steps_per_epoch with an endless iterator")

    def train_epoch(self, engine: Engine, epoch: int, watch: StepWatch) -> EpochResult:
        sums, steps = None, 0
        for x, y, w in self._prefetched(engine):
            if sums is None:
                sums = engine.zero_sums()
            watch.begin(steps)
            engine.train_state, sums = engine.settle(engine.train_batch_fn()(engine.train_state, sums, x, y, w))
            steps += 1
            watch.end(steps, sums)
            if watch.stopped:
                break
        if sums is None:
            raise self._empty(epoch)
        return EpochResult(sums, steps, not watch.stopped)

    def evaluate(self, engine: Engine, params: Any, state: Any, watch: StepWatch) -> dict:
        sums, steps = None, 0
        for x, y, w in self._prefetched(engine):
            if sums is None:
                sums = engine.zero_sums()
                params, state = engine.variables if params is None else (params, state)
            watch.begin(steps)
            sums = engine.settle(engine.eval_batch_fn()(params, state, sums, x, y, w))
            steps += 1
            watch.end(steps, sums)
        if sums is None:
            raise self._empty(0)
        self.eval_steps = steps
        return sums


def _pad_rows(tree: Any, size: int) -> Any:
    """Pad every leaf along axis 0 to `size` rows by repeating its first row (weighted 0 by the caller)."""

    def pad(a):
        a = np.asarray(a) if not isinstance(a, jax.Array) else a
        extra = size - a.shape[0]
        if extra <= 0:
            return a
        xp = jnp if isinstance(a, jax.Array) else np
        return xp.concatenate([a, xp.repeat(a[:1], extra, axis=0)], axis=0)

    return jax.tree.map(pad, tree)
