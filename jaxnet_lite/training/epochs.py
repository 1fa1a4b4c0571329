"""The one epoch loop behind `fit`, and the evaluation behind `evaluate` and validation.

Whatever the data (arrays on the device, a generator of batches), the same loop runs the callbacks,
the progress bar, validation every `validation_freq` epochs, Ctrl-C, early stopping and the logs; the
data source only decides how an epoch's steps reach the device (`sources.py`).
"""

from __future__ import annotations

from typing import Any, Protocol

import jax

from jaxnet_lite.training.callbacks import CallbackList, History
from jaxnet_lite.training.engine import Engine, means
from jaxnet_lite.training.progress import Progbar
from jaxnet_lite.training.sources import EpochResult
from jaxnet_lite.training.watch import Interrupt, StepWatch


class DataSource(Protocol):
    """What the loop needs of a data source (`ArraySource`, `BatchStream`)."""

    steps: int | None  # batches per epoch; None while unknown (a stream without steps_per_epoch)

    def train_epoch(self, engine: Engine, epoch: int, watch: StepWatch) -> EpochResult: ...

    def evaluate(self, engine: Engine, params: Any, state: Any, watch: StepWatch) -> dict: ...


def epoch_logs(sums: dict, val_sums: dict | None) -> dict[str, float]:
    """An epoch's logs from its training and validation sums, already on the host."""
    logs = means(sums)
    if val_sums is not None:
        logs.update({f"val_{k}": v for k, v in means(val_sums).items()})
    return logs


def evaluate_source(engine: Engine, source: DataSource, callbacks: CallbackList, bar: Progbar | None,
                    params: Any = None, state: Any = None) -> dict:
    """Device-side sums of the loss and metrics over `source`, with the test hooks around them."""
    if params is None and engine.has_state:
        params, state = engine.variables
    watch = StepWatch(bar, callbacks, None, callbacks.wants_batch_hooks("test"), phase="test")
    return source.evaluate(engine, params, state, watch)


def fit_epochs(engine: Engine, source: DataSource, *, epochs: int, initial_epoch: int, verbose: int,
               callbacks: CallbackList, history: History, model_handle: Any, validation: DataSource | None,
               validation_freq: int, defer_logs: bool) -> History:
    """Train `source` for epochs `initial_epoch..epochs-1`; returns `history`.

    With `defer_logs` (nobody watches between epochs: no output, no callbacks but History), epochs are
    dispatched back to back and their logs read at the end, with at most two epochs in flight so that
    Ctrl-C stops within about one epoch.
    """
    deferred: list | None = [] if defer_logs else None
    callbacks.on_train_begin()
    logs: dict[str, float] = {}
    with Interrupt() as interrupt:
        for epoch in range(initial_epoch, epochs):
            callbacks.on_epoch_begin(epoch)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}", flush=True)
            bar = Progbar(source.steps or 0, verbose)
            watch = StepWatch(bar, callbacks, interrupt, callbacks.wants_batch_hooks("train"))
            result = source.train_epoch(engine, epoch, watch)
            if not result.complete:
                of = f"/{source.steps}" if source.steps else ""
                print(f"Epoch {epoch + 1} interrupted after {result.steps}{of} steps; it is not recorded.")
                break
            val_sums = None
            if validation is not None and (epoch + 1) % validation_freq == 0:
                if deferred is None:
                    callbacks.on_test_begin()
                val_sums = evaluate_source(engine, validation, callbacks, None)
            if deferred is not None:
                deferred.append((epoch, result.sums, val_sums))
                if len(deferred) >= 2:  # keep the queue short, so an interrupt is seen within an epoch
                    jax.block_until_ready(deferred[-2][1])
            else:
                sums, val_host = jax.device_get((result.sums, val_sums))  # one transfer for both
                logs = epoch_logs(sums, val_host)
                if val_host is not None:
                    callbacks.on_test_end(means(val_host))
                bar.target = bar.target or result.steps
                bar.update(result.steps, logs, finalize=True)
                callbacks.on_epoch_end(epoch, logs)
            if model_handle.stop_training or interrupt.requested:
                break
        # One transfer for all deferred epochs (on a GPU each separate read is a sync of its own).
        for epoch, sums, val_sums in jax.device_get(deferred or []):
            logs = epoch_logs(sums, val_sums)
            callbacks.on_epoch_end(epoch, logs)
    callbacks.on_train_end(logs)
    return history
