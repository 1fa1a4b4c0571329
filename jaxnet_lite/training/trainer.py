"""`Trainer`: Keras' `fit`/`evaluate`/`predict` over the pure steps in `step.py`.

Speed by design (DESIGN.md): in-memory data goes to the device once; each epoch draws a permutation on
the device and every step gathers its batch there; the last short batch is padded and masked so one
compiled shape serves all steps; loss and metric sums stay on the device until the epoch ends; and
`steps_per_execution` steps run per dispatch where that measures faster (see `choose_steps_per_execution`).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnet_lite import losses as losses_lib
from jaxnet_lite import optimizers as optimizers_lib
from jaxnet_lite import checkpoint
from jaxnet_lite.core import Layer, Variables, iter_layers
from jaxnet_lite.data.arrays import train_val_split
from jaxnet_lite.host_allocator import tune_for_backend
from jaxnet_lite.training import loop
from jaxnet_lite.training.callbacks import Callback, CallbackList, History
from jaxnet_lite.training.predict import inference_fn, num_examples, predict_arrays
from jaxnet_lite.training.progress import Progbar, resolve_verbose
from jaxnet_lite.training.state import TrainState
from jaxnet_lite.training.step import MetricSet, Objective
from jaxnet_lite.training.trainable import trainable_mask
from jaxnet_lite.training.validation import example_shapes, validate_arrays
from jaxnet_lite.training.weights import WeightsIO

_SMALL_ARRAY_BYTES = 1 << 20  # below this, `jnp.asarray` moves an array to the device faster than `device_put`


def choose_steps_per_execution(model: Layer, steps: int, backend: str | None = None) -> int:
    """How many steps to run per dispatch ("auto").

    Measured on a 2-core CPU (docs/design.md): a `lax` loop over steps made the tutorial MLP 2.3x faster
    per step, but made conv models 7x slower, because XLA:CPU compiles convolution gradients inside loop
    bodies poorly. So on CPU, a model with any layer that says `slow_in_cpu_loops` runs one step per
    dispatch and others run up to 64 steps per dispatch; on accelerators loops behave, so up to 64 steps
    run per dispatch always.
    """
    backend = backend or jax.default_backend()
    if backend == "cpu" and any(layer.slow_in_cpu_loops for layer in iter_layers(model)):
        return 1
    return max(1, min(steps, 64))


class _Interrupt:
    """Turns Ctrl-C during `fit` into a flag checked between dispatches, so no step is cut in half."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True
        print("\nInterrupted: stopping after the current steps (Ctrl-C again to abort).", flush=True)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _TrainerHandle(WeightsIO):
    """What callbacks see as `self.model` when the trainer wraps a plain layer (not a Keras model)."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.name = trainer.model.name
        self.stop_training = False

    @property
    def variables(self) -> Variables:
        return self.trainer.variables

    @variables.setter
    def variables(self, value: Any) -> None:
        self.trainer.variables = value


class Trainer:
    """Trains a model (any `Layer`) with a loss, an Optax optimizer and metrics.

    `Trainer(model, loss, optimizer="adam", metrics=(), seed=0)`; the whole training state is one
    pytree, `trainer.train_state` (a `TrainState`), ready to checkpoint.
    """

    def __init__(self, model: Layer, loss: Any, optimizer: Any = "adam", metrics: Sequence[Any] = (),
                 seed: int = 0, steps_per_execution: int | str = "auto", mesh: Mesh | None = None,
                 variables: Any = None) -> None:
        self.model = model
        self.loss = losses_lib.get(loss)
        self.optimizer = optimizers_lib.get(optimizer)
        self.metric_set = MetricSet(list(metrics or ()), self.loss.name)
        self.objective = Objective.create(model, self.loss)
        if steps_per_execution != "auto" and (not isinstance(steps_per_execution, int) or steps_per_execution < 1):
            raise ValueError(f"steps_per_execution must be 'auto' or a positive int, got {steps_per_execution!r}")
        self.steps_per_execution = steps_per_execution
        self.seed = seed
        self.mesh = mesh if mesh is not None else (Mesh(np.array(jax.devices()), ("batch",))
                                                    if jax.device_count() > 1 else None)
        # XLA:CPU can deadlock with several multi-device programs in flight (see `_settle`).
        self._sync_dispatch = self.mesh is not None and self.mesh.devices.flat[0].platform == "cpu"
        self._train_state: TrainState | None = None
        self._initial_variables = variables
        if variables is not None or _declared_input_shape(model) is not None:
            self._ensure_state(None)
        self._compiled: dict[Any, Any] = {}
        self.history: History | None = None

    # -- state ------------------------------------------------------------------------------------
    def _ensure_state(self, input_shape: Any) -> TrainState:
        """Create the training state on first need; a model without a declared input shape waits for data."""
        if self._train_state is None:
            abstract = jax.eval_shape(lambda k: self.model.init(k, input_shape), jax.random.key(0))
            mask = trainable_mask(self.model, abstract.params)
            if not all(jax.tree.leaves(mask)):  # some layer has trainable=False: its params never move
                self.optimizer = optimizers_lib.freeze(self.optimizer, mask)
            ts = TrainState.create(self.model, self.optimizer, self.seed, input_shape=input_shape,
                                   variables=self._initial_variables)
            self._train_state = self._place(ts)
        return self._train_state

    @property
    def train_state(self) -> TrainState:
        if self._train_state is None:
            raise RuntimeError(
                f"{self.model.describe()} has no input shape yet: its variables are created by the first "
                "fit/evaluate, or declare input_shape= on the first layer"
            )
        return self._train_state

    @train_state.setter
    def train_state(self, value: TrainState) -> None:
        self._train_state = value

    @property
    def variables(self) -> Variables:
        return Variables(self.train_state.params, self.train_state.state)

    @variables.setter
    def variables(self, value: Any) -> None:
        params, state = value
        self.train_state = self._place(self.train_state._replace(params=params, state=state))

    @property
    def learning_rate(self) -> float:
        lr = optimizers_lib.get_learning_rate(self.train_state.opt_state)
        if lr is None:
            raise ValueError("this optimizer has no adjustable learning rate (pass a name like 'adam', or wrap "
                             "an Optax optimizer in optax.inject_hyperparams)")
        return float(lr)

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        opt_state = optimizers_lib.set_learning_rate(self.train_state.opt_state, value)
        self.train_state = self._place(self.train_state._replace(opt_state=opt_state))

    def save_checkpoint(self, path: Any, epoch: int | None = None) -> None:
        """The full `TrainState` (for exact resume with `fit(..., initial_epoch=epoch)`)."""
        checkpoint.save(path, self.train_state, metadata={"epoch": epoch, "kind": "train_state"})

    def restore_checkpoint(self, path: Any) -> int | None:
        """Load a full `TrainState` saved by `save_checkpoint`; returns the epoch it was saved at."""
        self.train_state = self._place(checkpoint.restore(path, target=self.train_state))
        return checkpoint.read_metadata(path).get("epoch")

    def callback_model(self) -> Any:
        """What callbacks get as `self.model`: the Keras model, or a handle for a plain layer."""
        handle = self.model if isinstance(self.model, WeightsIO) else _TrainerHandle(self)
        handle.stop_training = False
        return handle

    # -- placement --------------------------------------------------------------------------------
    def _replicated(self) -> Any:
        return NamedSharding(self.mesh, PartitionSpec()) if self.mesh is not None else None

    def _place(self, tree: Any) -> Any:
        if self.mesh is None:
            return tree
        return jax.device_put(tree, self._replicated())

    def _to_device(self, tree: Any) -> Any:
        """`tree` on the device (replicated over a mesh). Measured on CPU: `jnp.asarray` is quicker for a
        small array (17 against 28 µs), but holds two copies of a large one (MNIST's 188 MB: 171 against
        91 ms, and 390 against 184 MB of peak memory), so large arrays go through `device_put`."""

        def put(a):
            a = np.asarray(a) if not isinstance(a, jax.Array) else a
            if self.mesh is not None:
                return jax.device_put(a, self._replicated())
            return jnp.asarray(a) if a.nbytes < _SMALL_ARRAY_BYTES else jax.device_put(a)

        return jax.tree.map(put, tree)

    def _shard_batch(self, tree: Any) -> Any:
        if self.mesh is None:
            return tree
        spec = NamedSharding(self.mesh, PartitionSpec("batch"))
        return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, spec), tree)

    def _padded_batch_size(self, batch_size: int) -> int:
        devices = self.mesh.size if self.mesh is not None else 1
        return -(-batch_size // devices) * devices

    def _settle(self, tree: Any) -> Any:
        """`tree`, waited for when the mesh spans several CPU devices, so one dispatch is in flight at most.

        On XLA:CPU, with several sharded programs queued, one device's launch can wait for a slot while
        another device's program waits for it inside an all-reduce: `fit` of the tutorial CNN on 2 or 8
        simulated CPU devices hung until XLA aborted (docs/design-notes.md). Accelerators are not affected.
        """
        if self._sync_dispatch:
            jax.block_until_ready(tree)
        return tree

    # -- compiled pieces (cached per shape) ----------------------------------------------------------
    def _sum_names(self) -> list[str]:
        return ["loss", "count", *self.metric_set.names]

    def _cached(self, key: tuple, build: Any) -> Any:
        if key not in self._compiled:
            self._compiled[key] = build()
        return self._compiled[key]

    def _train_chunk(self, k: int) -> Any:
        return self._cached(("train", k), lambda: loop.make_train_chunk(
            self.objective, self.metric_set, self.optimizer, k, self._shard_batch))

    def _train_epoch(self, n: int, steps: int, batch_size: int, padded: int, shuffle: bool) -> Any:
        return self._cached(("epoch", n, steps, batch_size, padded, shuffle), lambda: loop.make_train_epoch(
            self.objective, self.metric_set, self.optimizer, self._sum_names(), n, steps, batch_size, padded,
            shuffle, self._shard_batch))

    def _stream_step(self) -> Any:
        return self._cached(("stream",), lambda: loop.make_train_batch(
            self.objective, self.metric_set, self.optimizer))

    def _eval_chunk(self, k: int) -> Any:
        return self._cached(("eval", k), lambda: loop.make_eval_chunk(
            self.objective, self.metric_set, k, self._shard_batch))

    def _epoch_setup(self, n: int, steps: int, batch_size: int, padded: int, shuffle: bool) -> Any:
        return self._cached(("setup", n, steps, batch_size, padded, shuffle), lambda: loop.make_epoch_setup(
            self._sum_names(), n, steps, batch_size, padded, shuffle))

    def _eval_all(self, n: int, steps: int, batch_size: int, padded: int) -> Any:
        return self._cached(("eval_all", n, steps, batch_size, padded), lambda: loop.make_eval_all(
            self.objective, self.metric_set, self._sum_names(), n, steps, batch_size, padded, self._shard_batch))

    def output_shape(self, input_shape: Any) -> Any:
        """The model's output shape for `input_shape` (no batch axis), remembered: the model's walk over
        its layers took about a sixth of a small `evaluate` call's time."""
        key = tuple(input_shape) if isinstance(input_shape, list) else input_shape
        return self._cached(("output_shape", key), lambda: self.model.output_shape(input_shape))

    def _steps_per_execution(self, steps: int) -> int:
        if self.steps_per_execution == "auto":  # walks the model's layers: decide once per epoch length
            return self._cached(("steps_per_execution", steps), lambda: choose_steps_per_execution(self.model, steps))
        return min(int(self.steps_per_execution), steps)

    def _in_one_dispatch(self, k: int, steps: int, bar: Progbar | None) -> bool:
        """Whether all `steps` run as one dispatch: they fit in `k`, or loops pay ("auto" chose k > 1) and
        no live bar waits for chunks. One program then serves the epoch instead of a chunk and a tail."""
        live = bar is not None and bar.dynamic and bar.verbose == 1
        return k >= steps or (k > 1 and self.steps_per_execution == "auto" and not live)

    # -- running over arrays ------------------------------------------------------------------------
    def _run_train_epoch(self, x, y, n, batch_size, epoch, shuffle, bar, interrupt, callbacks, batch_hooks):
        """One epoch; returns the device-side sums (no host sync unless a bar or batch hook asks) and steps run."""
        steps = math.ceil(n / batch_size)
        padded = self._padded_batch_size(batch_size)
        k = 1 if batch_hooks else self._steps_per_execution(steps)
        if self._in_one_dispatch(k, steps, bar):  # the whole epoch: indices, steps and sums
            self.train_state, sums = self._settle(self._train_epoch(n, steps, batch_size, padded, shuffle)(
                self.train_state, x, y, epoch))
            return sums, steps
        index, weight, sums = self._epoch_setup(n, steps, batch_size, padded, shuffle)(self.train_state.rng, epoch)
        start, last_shown = 0, time.perf_counter()
        while start < steps and not interrupt.requested:
            size = min(k, steps - start)  # a short tail is one chunk of its own size (one more compile)
            if batch_hooks:
                callbacks.on_train_batch_begin(start)
            self.train_state, sums = self._settle(
                self._train_chunk(size)(self.train_state, sums, x, y, index, weight, start))
            start += size
            if batch_hooks:
                callbacks.on_train_batch_end(start - 1, self._logs(sums))
            if bar.dynamic and bar.verbose == 1 and time.perf_counter() - last_shown > 0.2:
                bar.update(start, self._logs(sums))
                last_shown = time.perf_counter()
        return sums, start

    def _run_eval(self, params, state, x, y, batch_size, bar=None) -> dict:
        """Device-side loss and metric sums over `(x, y)` in inference mode (a live `bar` sees chunks)."""
        n = num_examples(x)
        steps = math.ceil(n / batch_size)
        padded = self._padded_batch_size(batch_size)
        k = self._steps_per_execution(steps)
        if self._in_one_dispatch(k, steps, bar):
            sums = self._settle(self._eval_all(n, steps, batch_size, padded)(params, state, x, y))
        else:
            index, weight, sums = self._epoch_setup(n, steps, batch_size, padded, False)(self.train_state.rng, 0)
            start = 0
            while start < steps:
                size = min(k, steps - start)
                sums = self._settle(self._eval_chunk(size)(params, state, sums, x, y, index, weight, start))
                start += size
                if bar is not None and bar.dynamic and bar.verbose == 1:
                    bar.update(start, self._logs(sums))
        return sums

    @staticmethod
    def _logs(sums: dict) -> dict[str, float]:
        return _means(jax.device_get(sums))

    # -- the Keras API ------------------------------------------------------------------------------
    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: Any = "auto", callbacks: Sequence[Callback] | None = None, validation_split: float = 0.0,
            validation_data: Any = None, shuffle: bool = True, initial_epoch: int = 0,
            steps_per_epoch: int | None = None, validation_batch_size: int | None = None,
            validation_freq: int = 1) -> History:
        """Train for `epochs` epochs; returns a `History` (`history.history["val_loss"]`, `history.epoch`).

        On CPU it keeps freed host memory for reuse (`host_allocator`; off with JAXNET_LITE_TUNE_MALLOC=0).
        """
        tune_for_backend(jax.default_backend())
        if x is not None and y is None and not isinstance(x, (np.ndarray, jax.Array, dict)):
            from jaxnet_lite.training.streaming import fit_stream

            return fit_stream(self, x, epochs=epochs, verbose=verbose, callbacks=callbacks,
                              validation_data=validation_data, initial_epoch=initial_epoch,
                              steps_per_epoch=steps_per_epoch, validation_batch_size=validation_batch_size)
        if validation_split and validation_data is None:  # Keras: validation_data takes precedence
            (x, y), validation_data = train_val_split(x, y, validation_split)
        n = validate_arrays(self, x, y, batch_size, "fit")
        batch_size = min(32, n) if batch_size is None else batch_size
        self._ensure_state(example_shapes(x, self.model))
        x_dev, y_dev = self._to_device(x), self._to_device(y)
        val = None
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (x_val, y_val)")
            vx, vy = validation_data
            validate_arrays(self, vx, vy, None, "validation_data")
            val = (self._to_device(vx), self._to_device(vy))
        verbose = resolve_verbose(verbose)
        history = History()
        cbs = CallbackList([history, *(callbacks or ())])
        handle = self.callback_model()
        steps = math.ceil(n / batch_size)
        cbs.set_model(handle)
        cbs.set_params({"epochs": epochs, "steps": steps, "verbose": verbose})
        batch_hooks = cbs.wants_batch_hooks()
        # With nobody watching between epochs (no callbacks but History, no output), the per-epoch host
        # read is deferred to the end, so epochs dispatch back to back without a sync.
        deferred: list | None = [] if verbose == 0 and not callbacks else None
        cbs.on_train_begin()
        logs: dict[str, float] = {}
        with _Interrupt() as interrupt:
            for epoch in range(initial_epoch, epochs):
                cbs.on_epoch_begin(epoch)
                if verbose:
                    print(f"Epoch {epoch + 1}/{epochs}", flush=True)
                bar = Progbar(steps, verbose)
                sums, done = self._run_train_epoch(x_dev, y_dev, n, batch_size, epoch, shuffle, bar, interrupt,
                                                   cbs, batch_hooks)
                if interrupt.requested and done < steps:
                    print(f"Epoch {epoch + 1} interrupted after {done}/{steps} steps; it is not recorded.")
                    break
                val_sums = None
                if val is not None and (epoch + 1) % validation_freq == 0:
                    params, state = self.variables
                    val_sums = self._run_eval(params, state, *val, validation_batch_size or batch_size)
                if deferred is not None:
                    deferred.append((epoch, sums, val_sums))
                else:
                    logs = self._epoch_logs(*jax.device_get((sums, val_sums)))  # one transfer for both
                    bar.update(steps, logs, finalize=True)
                    cbs.on_epoch_end(epoch, logs)
                if handle.stop_training or interrupt.requested:
                    break
        # One transfer for all deferred epochs (on a GPU each separate read is a sync of its own).
        for epoch, sums, val_sums in jax.device_get(deferred or []):
            logs = self._epoch_logs(sums, val_sums)
            cbs.on_epoch_end(epoch, logs)
        cbs.on_train_end(logs)
        self.history = history
        return history

    @staticmethod
    def _epoch_logs(sums: dict, val_sums: dict | None) -> dict[str, float]:
        """An epoch's logs from its training and validation sums, already on the host."""
        logs = _means(sums)
        if val_sums is not None:
            logs.update({f"val_{k}": v for k, v in _means(val_sums).items()})
        return logs

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: Any = "auto",
                 return_dict: bool = False, **kwargs: Any) -> Any:
        """Loss and metrics on `(x, y)`: `[loss, *metrics]` like Keras (a float without metrics), or a dict."""
        batch_size = 32 if batch_size is None else batch_size
        n = validate_arrays(self, x, y, None, "evaluate")
        self._ensure_state(example_shapes(x, self.model))
        steps = math.ceil(n / min(batch_size, n))
        bar = Progbar(steps, resolve_verbose(verbose))
        params, state = self.variables
        logs = self._logs(self._run_eval(params, state, self._to_device(x), self._to_device(y), min(batch_size, n),
                                         bar))
        bar.update(steps, logs, finalize=True)
        if return_dict:
            return logs
        values = [logs["loss"], *(logs[m] for m in self.metric_set.names)]
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto", **kwargs: Any) -> Any:
        """Model outputs for `x` (NumPy), in inference mode, batch by batch."""
        self._ensure_state(example_shapes(x, self.model))
        params, state = self.variables
        fn = self._cached(("predict",), lambda: inference_fn(self.model))
        return predict_arrays(fn, params, state, x, batch_size=batch_size or 32, verbose=verbose)


def _means(host: dict) -> dict[str, float]:
    """Exact means from weighted sums on the host, in sorted key order (as Keras logs them)."""
    count = max(float(host["count"]), 1.0)
    return {k: float(host[k]) / count for k in sorted(host) if k != "count"}


def _declared_input_shape(model: Layer) -> Any:
    return getattr(model, "declared_input_shape", None)

