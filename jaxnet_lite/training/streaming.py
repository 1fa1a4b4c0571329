"""`fit` over an iterable of `(x, y)` batches (data that does not fit in memory), prefetched to the device."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet_lite.training.callbacks import CallbackList, History
from jaxnet_lite.training.predict import num_examples
from jaxnet_lite.training.progress import Progbar, resolve_verbose
from jaxnet_lite.training import loop


def _prefetch(batches: Iterator[Any], size: int = 2) -> Iterator[Any]:
    """Keep `size` batches in flight to the device while the current one trains."""
    queue: list[Any] = []
    for batch in batches:
        queue.append(jax.device_put(batch))
        if len(queue) >= size:
            yield queue.pop(0)
    yield from queue


def _pad_to(x: Any, size: int) -> Any:
    """Pad every leaf along axis 0 to `size` rows by repeating the first row (masked out by the weights)."""
    def pad(a):
        a = jnp.asarray(a)
        extra = size - a.shape[0]
        if extra <= 0:
            return a
        return jnp.concatenate([a, jnp.repeat(a[:1], extra, axis=0)], axis=0)

    return jax.tree.map(pad, x)


def _padded(batch: Any, batch_size: int) -> tuple[Any, Any, jax.Array]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError(f"fit: a streamed dataset must yield (x, y) pairs, got {type(batch).__name__}")
    x, y = batch
    real = num_examples(x)
    if real > batch_size:
        raise ValueError(f"fit: a streamed batch has {real} examples, more than the first batch's {batch_size}")
    weight = (np.arange(batch_size) < real).astype(np.float32)
    return _pad_to(x, batch_size), _pad_to(y, batch_size), weight


def fit_stream(trainer: Any, dataset: Iterable[Any], *, epochs: int, verbose: Any, callbacks: Any,
               validation_data: Any, initial_epoch: int, steps_per_epoch: int | None,
               validation_batch_size: int | None) -> History:
    """Each epoch iterates `dataset` again (or takes `steps_per_epoch` batches from one iterator)."""
    if not hasattr(dataset, "__iter__"):
        raise TypeError(f"fit: x must be arrays or an iterable of (x, y) batches, got {type(dataset).__name__}")
    verbose = resolve_verbose(verbose)
    history = History()
    cbs = CallbackList([history, *(callbacks or ())])
    model = trainer.callback_model()
    cbs.set_model(model)
    cbs.set_params({"epochs": epochs, "steps": steps_per_epoch, "verbose": verbose})
    iterator = iter(dataset) if steps_per_epoch is not None else None
    batch_size = None
    cbs.on_train_begin()
    logs: dict[str, float] = {}
    for epoch in range(initial_epoch, epochs):
        cbs.on_epoch_begin(epoch)
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}", flush=True)
        source = itertools.islice(iterator, steps_per_epoch) if iterator is not None else iter(dataset)
        bar = Progbar(steps_per_epoch or 0, verbose)
        sums = None
        steps = 0
        for batch in _prefetch(source):
            if batch_size is None:
                batch_size = num_examples(batch[0])
            x, y, w = _padded(batch, batch_size)
            if sums is None:
                trainer._ensure_state(tuple(np.shape(jax.tree.leaves(x)[0])[1:]))
                sums = trainer._place(loop.zero_sums(trainer._sum_names()))
            trainer.train_state, sums = trainer._stream_step()(trainer.train_state, sums, x, y, w)
            steps += 1
        if sums is None:
            raise ValueError(f"fit: the dataset yielded no batches in epoch {epoch + 1}; pass a re-iterable dataset "
                             "or steps_per_epoch with an endless iterator")
        logs = trainer._logs(sums)
        if validation_data is not None:
            vx, vy = validation_data
            params, state = trainer.variables
            val = trainer._logs(trainer._run_eval(params, state, trainer._to_device(vx), trainer._to_device(vy),
                                                  validation_batch_size or batch_size))
            logs.update({f"val_{k}": v for k, v in val.items()})
        bar.target = steps
        bar.update(steps, logs, finalize=True)
        cbs.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cbs.on_train_end(logs)
    trainer.history = history
    return history
