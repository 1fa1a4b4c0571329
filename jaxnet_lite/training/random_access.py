"""A random-access source (`data.random_access`) as data for the one epoch loop, `evaluate` and `predict`.

Each epoch, `EpochSampler` gives this process its part of every global batch in a shuffled order; a
background thread reads the next batches (one sorted read each) and puts them on the devices while the
current step runs (`Prefetch`, two batches ahead). Only a few batches are ever in memory, so the data
may be far larger than it. With several processes (`jax.distributed`), the parts of a global batch
become one array sharded over all devices.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxnet_lite.data.prefetch import Prefetch
from jaxnet_lite.data.random_access import RandomAccessSource
from jaxnet_lite.data.sampler import EpochSampler
from jaxnet_lite.training.engine import Engine
from jaxnet_lite.training.progress import Progbar, resolve_verbose
from jaxnet_lite.training.sources import EpochResult
from jaxnet_lite.training.validation import (
    check_count,
    check_finite,
    check_input_values,
    example_shapes,
    validate_arrays,
)
from jaxnet_lite.training.watch import StepWatch

PREFETCH_BATCHES = 2
_SAMPLE_ROWS = 8  # examples `predict` reads up front to learn the input shape


class RandomAccessBatches:
    """Batches of a `RandomAccessSource`: shuffled per epoch from the trainer's seed, sharded per
    process, read and put on the devices ahead of the step that uses them."""

    def __init__(self, engine: Engine, source: RandomAccessSource, batch_size: int | None, *, shuffle: bool = False,
                 steps_per_epoch: int | None = None, where: str = "fit", default_batch_size: int = 32) -> None:
        self.source, self.where = source, where
        n = len(source)
        self.batch_size = default_batch_size if batch_size is None else check_count(batch_size, "batch_size", where)
        if batch_size is None or where != "fit":  # as for arrays: only fit refuses a batch beyond the data
            self.batch_size = min(self.batch_size, n)
        seed = int(engine.seed) % (1 << 64)
        self.sampler = EpochSampler(n, self.batch_size, shuffle=shuffle, seed=seed,
                                    padded_batch_size=engine.padded_batch_size(self.batch_size),
                                    steps=steps_per_epoch, where=where)
        self.steps = self.sampler.steps
        self._shapes: tuple[Any, Any] | None = None
        self._model = engine.model

    @property
    def eval_steps(self) -> int:
        return self.steps

    def prepare(self, engine: Engine) -> None:
        """Check the first batch against the model (shapes, labels, values) and create the train state."""
        if self._shapes is None:
            x, y = self.source[np.arange(self.batch_size)]  # the first batch's worth, one contiguous read
            where = f"{self.where}: {self.source!r}"
            try:
                x, y, _ = validate_arrays(engine, x, y, None, where)
            except ValueError as e:  # the model's own shape errors get the source named too
                raise e if str(e).startswith(where) else type(e)(f"{where}: {e}") from None
            self._shapes = (example_shapes(x, engine.model), example_shapes(y))
        engine.ensure_state(self._shapes[0])

    def _read(self, index: np.ndarray, step: int) -> tuple[Any, Any]:
        """One step's examples from the source, checked like the first ones."""
        x, y = self.source[index]
        where = f"{self.where}: batch {step} of {self.source!r}"
        shapes = (example_shapes(x, self._model), example_shapes(y))
        if shapes != self._shapes:
            raise ValueError(f"{where} has example shapes x {shapes[0]}, y {shapes[1]}; the first examples had "
                             f"x {self._shapes[0]}, y {self._shapes[1]}")
        check_finite(x, "x", where)
        check_finite(y, "y", where)
        return x, y

    def _on_devices(self, engine: Engine, epoch: int) -> Iterator[tuple[Any, Any, Any]]:
        """This process's batches of `epoch`, as device arrays (made in the prefetch thread)."""
        put = _placer(engine)
        for step, (index, weight) in enumerate(self.sampler.batches(epoch)):
            x, y = self._read(index, step)
            yield put((x, y, weight))

    def train_epoch(self, engine: Engine, epoch: int, watch: StepWatch) -> EpochResult:
        self.prepare(engine)
        step_fn, sums, steps = engine.train_batch_fn(), engine.zero_sums(), 0
        with Prefetch(self._on_devices(engine, epoch), PREFETCH_BATCHES) as batches:
            for x, y, w in batches:
                watch.begin(steps)
                engine.train_state, sums = engine.settle(step_fn(engine.train_state, sums, x, y, w))
                steps += 1
                watch.end(steps, sums)
                if watch.stopped:
                    break
        return EpochResult(sums, steps, steps == self.steps)

    def evaluate(self, engine: Engine, params: Any, state: Any, watch: StepWatch) -> dict:
        self.prepare(engine)
        if params is None:
            params, state = engine.variables
        eval_fn, sums, steps = engine.eval_batch_fn(), engine.zero_sums(), 0
        with Prefetch(self._on_devices(engine, 0), PREFETCH_BATCHES) as batches:
            for x, y, w in batches:
                watch.begin(steps)
                sums = engine.settle(eval_fn(params, state, sums, x, y, w))
                steps += 1
                watch.end(steps, sums)
        return sums


def predict_source(engine: Engine, fn: Any, source: RandomAccessSource, batch_size: int, verbose: Any = "auto",
                   callbacks: Any = None) -> Any:
    """`fn` (from `inference_fn`) over every example of `source` in order; outputs as NumPy.

    The inputs are read one batch ahead in a thread; the last batch is filled up with repeats of a row
    and those outputs dropped, so every call has one shape."""
    n = len(source)
    sampler = EpochSampler(n, min(batch_size, n), shuffle=False, process_index=0, process_count=1, where="predict")
    sample, _ = source[np.arange(min(_SAMPLE_ROWS, n))]
    check_input_values(engine.model, sample, "predict")
    engine.ensure_state(example_shapes(sample, engine.model))
    params, state = _this_process(engine.variables)
    hooks = callbacks is not None and callbacks.wants_batch_hooks("predict")
    bar = Progbar(sampler.steps, resolve_verbose(verbose))
    size = sampler.local_batch_size

    def inputs() -> Iterator[Any]:
        for index, _ in sampler.batches(0):
            yield jax.device_put(source[index][0])

    outputs = []
    with Prefetch(inputs(), PREFETCH_BATCHES) as batches:
        for i, x in enumerate(batches):
            if hooks:
                callbacks.on_predict_batch_begin(i)
            outputs.append(fn(params, state, x, 0, size))
            if hooks:
                callbacks.on_predict_batch_end(i, {"outputs": outputs[-1]})
            bar.update(i + 1, finalize=i + 1 == sampler.steps)
    host = jax.device_get(outputs)
    return jax.tree.map(lambda *parts: np.concatenate(parts)[:n], *host)


def _placer(engine: Engine) -> Any:
    """How a process's part of a batch becomes device arrays: split over the mesh's devices (one global
    array across processes under `jax.distributed`), or put on the one device."""
    if engine.mesh is None:
        return jax.device_put
    sharding = NamedSharding(engine.mesh, PartitionSpec("batch"))
    if jax.process_count() > 1:
        return lambda tree: jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, a), tree)
    return lambda tree: jax.device_put(tree, sharding)


def _this_process(tree: Any) -> Any:
    """Replicated global arrays as this process's own copy: with several processes each one predicts
    every example by itself, with no collective between them."""
    if jax.process_count() == 1:
        return tree
    return jax.tree.map(lambda a: a.addressable_data(0) if isinstance(a, jax.Array) else a, tree)
