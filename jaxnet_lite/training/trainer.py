"""`Trainer`: Keras' `fit`/`evaluate`/`predict` for any `Layer`, over the `Engine` and the one epoch loop.

Speed by design (docs/design.md): in-memory data goes to the device once; each epoch draws a permutation
on the device and every step gathers its batch there; the last short batch is padded and masked so one
compiled shape serves all steps; loss and metric sums stay on the device until the epoch ends; and
several steps run per dispatch where that measures faster (`engine.choose_steps_per_execution`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from jaxnet_lite import checkpoint
from jaxnet_lite import losses as losses_lib
from jaxnet_lite import optimizers as optimizers_lib
from jaxnet_lite.core import Layer, Variables
from jaxnet_lite.data.arrays import check_consistent_length, train_val_split
from jaxnet_lite.data.random_access import RandomAccessSource
from jaxnet_lite.host_allocator import tune_for_backend
from jaxnet_lite.loss_scaling import auto_loss_scaling
from jaxnet_lite.training.callbacks import Callback, CallbackList, History
from jaxnet_lite.training.distribution import Distribution
from jaxnet_lite.training.engine import Engine, choose_steps_per_execution, means
from jaxnet_lite.training.epochs import evaluate_source, fit_epochs
from jaxnet_lite.training.predict import check_inputs, inference_fn, predict_arrays
from jaxnet_lite.training.processes import gather_rows, local_copy, primary_output, several_processes
from jaxnet_lite.training.progress import Progbar, resolve_verbose
from jaxnet_lite.training.random_access import RandomAccessBatches, predict_source
from jaxnet_lite.training.sources import ArraySource, BatchStream
from jaxnet_lite.training.state import TrainState
from jaxnet_lite.training.step import MetricSet
from jaxnet_lite.training.validation import as_numeric, check_count, check_input_values, example_shapes
from jaxnet_lite.training.weighting import WeightedLabels, attach_sample_weight
from jaxnet_lite.training.weights import WeightsIO

__all__ = ["Trainer", "choose_steps_per_execution"]


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


def _is_batch_stream(x: Any, y: Any) -> bool:
    """`x` is an iterable of batches (a generator, a list of `(x, y)` pairs), not arrays."""
    return x is not None and y is None and not isinstance(x, (np.ndarray, jax.Array, dict))


def _global_rows(x: Any, y: Any, sample_weight: Any, where: str) -> tuple[Any, Any, Any]:
    """With several processes, arrays are each process's block of rows: the whole data set, on every process."""
    if not several_processes() or _is_batch_stream(x, y):
        return x, y, sample_weight
    numeric = (as_numeric(x, "x", where), as_numeric(y, "y", where), as_numeric(sample_weight, "sample_weight", where))
    return gather_rows(numeric, where)


def _global_validation(data: Any) -> Any:
    """`validation_data` given as arrays, each process's block of rows, gathered like `fit`'s arrays."""
    is_batch_list = isinstance(data, list) and bool(data) and isinstance(data[0], (tuple, list))
    if not several_processes() or not isinstance(data, (tuple, list)) or is_batch_list or not 2 <= len(data) <= 3:
        return data
    return tuple(gather_rows(tuple(as_numeric(part, "validation_data", "fit") for part in data), "validation_data"))


class Trainer:
    """Trains a model (any `Layer`) with a loss, an Optax optimizer and metrics.

    `Trainer(model, loss, optimizer="adam", metrics=(), seed=0)`; the whole training state is one
    pytree, `trainer.train_state` (a `TrainState`), ready to checkpoint. `distribution` (a `DataParallel`
    or `ModelParallel`) says how params and batches lie on the devices; by default the one set with
    `set_distribution`, else the batch is split over every device.
    """

    def __init__(self, model: Layer, loss: Any, optimizer: Any = "adam", metrics: Sequence[Any] = (),
                 seed: int = 0, steps_per_execution: int | str = "auto", mesh: Mesh | None = None,
                 variables: Any = None, loss_weights: Any = None, weighted_metrics: Sequence[Any] = (),
                 distribution: Distribution | None = None, auto_scale_loss: bool = True) -> None:
        self.model = model
        self.loss = losses_lib.get(loss)
        self.metric_set = MetricSet(list(metrics or ()), self.loss.name, list(weighted_metrics or ()))
        optimizer = optimizers_lib.get(optimizer)
        if auto_scale_loss:  # float16 layers get dynamic loss scaling, as Keras' compile gives them
            optimizer = auto_loss_scaling(model, optimizer)
        self.engine = Engine(model, self.loss, optimizer, self.metric_set, seed=seed,
                             steps_per_execution=steps_per_execution, mesh=mesh, variables=variables,
                             loss_weights=loss_weights, distribution=distribution)
        if variables is not None or model.declared_input_shape is not None:
            self.engine.ensure_state(None)
        self.history: History | None = None

    # -- state ------------------------------------------------------------------------------------
    @property
    def optimizer(self) -> Any:
        return self.engine.optimizer

    @property
    def train_state(self) -> TrainState:
        return self.engine.train_state

    @train_state.setter
    def train_state(self, value: TrainState) -> None:
        self.engine.train_state = value

    @property
    def variables(self) -> Variables:
        return self.engine.variables

    @variables.setter
    def variables(self, value: Any) -> None:
        params, state = value
        self.train_state = self.engine.place(self.train_state._replace(params=params, state=state))

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
        self.train_state = self.engine.place(self.train_state._replace(opt_state=opt_state))

    def output_shape(self, input_shape: Any) -> Any:
        """The model's output shape for `input_shape` (no batch axis), remembered per input shape."""
        return self.engine.output_shape(input_shape)

    def save_checkpoint(self, path: Any, epoch: int | None = None) -> None:
        """The full `TrainState` (for exact resume with `fit(..., initial_epoch=epoch)`)."""
        checkpoint.save(path, self.train_state, metadata={"epoch": epoch, "kind": "train_state"})

    def restore_checkpoint(self, path: Any) -> int | None:
        """Load a full `TrainState` saved by `save_checkpoint`; returns the epoch it was saved at."""
        self.train_state = self.engine.place(checkpoint.restore(path, target=self.train_state))
        return checkpoint.read_metadata(path).get("epoch")

    def callback_model(self) -> Any:
        """What callbacks get as `self.model`: the Keras model, or a handle for a plain layer."""
        handle = self.model if isinstance(self.model, WeightsIO) else _TrainerHandle(self)
        handle.stop_training = False
        return handle

    def metric_directions(self) -> dict[str, str]:
        """"up"/"down" per logged name, for callbacks that monitor a metric in mode "auto"."""
        directions = {"loss": "down"}
        directions.update({k: v for k, v in self.metric_set.directions().items() if v is not None})
        return directions

    # -- data -------------------------------------------------------------------------------------
    @staticmethod
    def _weighted_labels(x: Any, y: Any, sample_weight: Any, class_weight: Any, where: str) -> Any:
        """`y` carrying the sample weights `fit`/`evaluate` were given (arrays only)."""
        if sample_weight is None and class_weight is None:
            return y
        if _is_batch_stream(x, y):
            raise ValueError(f"{where}: sample_weight and class_weight go with arrays; a dataset of batches "
                             "carries its weights in each batch, (x, y, sample_weight)")
        x, y = as_numeric(x, "x", where), as_numeric(y, "y", where)
        return attach_sample_weight(y, sample_weight, class_weight, check_consistent_length(x, y), where)

    def _source(self, x: Any, y: Any, batch_size: Any, *, where: str, shuffle: bool = False,
                steps_per_epoch: int | None = None) -> ArraySource | BatchStream | RandomAccessBatches:
        if isinstance(x, RandomAccessSource):
            if y is not None:
                raise ValueError(f"{where}: x is a {type(x).__name__}, whose examples carry their labels; leave y out")
            return RandomAccessBatches(self.engine, x, batch_size, shuffle=shuffle, steps_per_epoch=steps_per_epoch,
                                       where=where)
        if _is_batch_stream(x, y):
            if batch_size is not None:
                raise ValueError(f"{where}: batch_size={batch_size!r} was given with a dataset of batches; "
                                 "the dataset's batches set the batch size, so leave batch_size out")
            return BatchStream(x, steps_per_epoch=steps_per_epoch, where=where)
        if batch_size is not None and where != "fit":
            check_count(batch_size, "batch_size", where)
        return ArraySource(self.engine, x, y, batch_size, shuffle=shuffle, steps_per_epoch=steps_per_epoch,
                           where=where)

    def _validation_source(self, data: Any, batch_size: int | None) -> ArraySource | BatchStream:
        """`(x_val, y_val)` arrays (a tuple, or a list of two as Keras takes), a dataset of batches, or a
        random-access source."""
        if isinstance(data, RandomAccessSource):
            return RandomAccessBatches(self.engine, data, batch_size, where="validation_data")
        is_batch_list = isinstance(data, list) and bool(data) and isinstance(data[0], (tuple, list))
        if isinstance(data, (tuple, list)) and not is_batch_list:
            if len(data) not in (2, 3):
                raise ValueError(f"validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                                 f"sample_weight), got {len(data)} items")
            y = data[1] if len(data) == 2 or data[2] is None else WeightedLabels(data[1], data[2])
            return ArraySource(self.engine, data[0], y, batch_size, where="validation_data")
        return BatchStream(data, where="validation_data")

    # -- the Keras API ------------------------------------------------------------------------------
    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: Any = "auto", callbacks: Sequence[Callback] | None = None, validation_split: float = 0.0,
            validation_data: Any = None, shuffle: bool = True, initial_epoch: int = 0,
            steps_per_epoch: int | None = None, validation_batch_size: int | None = None,
            validation_freq: int = 1, sample_weight: Any = None, class_weight: Any = None) -> History:
        """Train for `epochs` epochs; returns a `History` (`history.history["val_loss"]`, `history.epoch`).

        `x` is arrays (with labels `y`), an iterable of `(x, y)` or `(x, y, sample_weight)` batches, or a
        random-access source (`data.MemmapSource`, `datasets.tfds.source`) read batch by batch.
        `sample_weight` (one weight per example) or `class_weight` (`{class: weight}`) weigh the loss as
        Keras does (`training/weighting.py`); `validation_split` splits sample weights with the examples,
        and class weights, as in Keras, weigh the training examples only.
        On CPU it keeps freed host memory for reuse (`host_allocator`; off with JAXNET_LITE_TUNE_MALLOC=0).
        """
        epochs = check_count(epochs, "epochs", "fit", minimum=0)
        initial_epoch = check_count(initial_epoch, "initial_epoch", "fit", minimum=0)
        validation_freq = check_count(validation_freq, "validation_freq", "fit")
        tune_for_backend(jax.default_backend())
        if sample_weight is not None and class_weight is not None:
            raise ValueError("fit: pass sample_weight or class_weight, not both (as in Keras)")
        x, y, sample_weight = _global_rows(x, y, sample_weight, "fit")
        validation_data = _global_validation(validation_data)
        y = self._weighted_labels(x, y, sample_weight, None, "fit")
        if validation_split and validation_data is None:  # Keras: validation_data takes precedence
            if _is_batch_stream(x, y):
                raise ValueError("fit: validation_split needs arrays; with a dataset of batches pass validation_data")
            (x, y), validation_data = train_val_split(x, y, validation_split)
        y = self._weighted_labels(x, y, None, class_weight, "fit")  # as Keras: training data only
        source = self._source(x, y, batch_size, where="fit", shuffle=shuffle, steps_per_epoch=steps_per_epoch)
        validation = None
        if validation_data is not None:
            val_batch = validation_batch_size or getattr(source, "batch_size", None)
            validation = self._validation_source(validation_data, val_batch)
        verbose = resolve_verbose(verbose)
        history = History()
        cbs = CallbackList([history, *(callbacks or ())])
        handle = self.callback_model()
        cbs.set_model(handle)
        cbs.set_params({"epochs": epochs, "steps": source.steps, "verbose": verbose,
                        "metric_directions": self.metric_directions()})
        with primary_output():
            self.history = fit_epochs(
                self.engine, source, epochs=epochs, initial_epoch=initial_epoch, verbose=verbose, callbacks=cbs,
                history=history, model_handle=handle, validation=validation, validation_freq=validation_freq,
                defer_logs=verbose == 0 and not callbacks)
        return self.history

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: Any = "auto",
                 sample_weight: Any = None, steps: int | None = None, callbacks: Sequence[Callback] | None = None,
                 return_dict: bool = False) -> Any:
        """Loss and metrics on `(x, y)` or a dataset of batches: `[loss, *metrics]` like Keras (a float
        without metrics), or a dict with `return_dict=True`."""
        x, y, sample_weight = _global_rows(x, y, sample_weight, "evaluate")
        y = self._weighted_labels(x, y, sample_weight, None, "evaluate")
        if steps is not None and not _is_batch_stream(x, y):
            raise ValueError("evaluate: steps is for datasets of batches; with arrays, every example is evaluated")
        source = self._source(x, y, batch_size, where="evaluate", steps_per_epoch=steps)
        cbs = CallbackList(callbacks or ())
        cbs.set_model(self.callback_model())
        with primary_output():
            bar = Progbar(source.eval_steps, resolve_verbose(verbose))
            cbs.on_test_begin()
            logs = means(jax.device_get(evaluate_source(self.engine, source, cbs, bar)))
            bar.target = source.eval_steps
            bar.update(bar.target, logs, finalize=True)
            cbs.on_test_end(logs)
        if return_dict:
            return logs
        values = [logs["loss"], *(logs[m] for m in self.metric_set.names)]  # Keras' order
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto", steps: int | None = None,
                callbacks: Sequence[Callback] | None = None) -> Any:
        """Model outputs for `x` (NumPy), in inference mode, batch by batch."""
        if steps is not None:
            raise ValueError("predict: steps is not supported; pass the examples to predict as x")
        if batch_size is not None:
            check_count(batch_size, "batch_size", "predict")
        if isinstance(x, RandomAccessSource):  # read batch by batch, ahead of the device
            return self._predict_source(x, batch_size or 32, verbose, callbacks)
        check_inputs(x, "predict")
        check_input_values(self.model, x, "predict")
        self.engine.ensure_state(example_shapes(x, self.model))
        params, state = local_copy(self.variables)  # several processes: each predicts its own rows
        cbs = CallbackList(callbacks or ())
        cbs.set_model(self.callback_model())
        with primary_output():
            cbs.on_predict_begin()
            fn = self.engine.cached(("predict",), lambda: inference_fn(self.model))
            out = predict_arrays(fn, params, state, x, batch_size=batch_size or 32, verbose=verbose, callbacks=cbs)
            cbs.on_predict_end()
        return out

    def _predict_source(self, source: RandomAccessSource, batch_size: int, verbose: Any,
                        callbacks: Sequence[Callback] | None) -> Any:
        """`predict` over every example of a random-access source, in its order."""
        cbs = CallbackList(callbacks or ())
        cbs.set_model(self.callback_model())
        with primary_output():
            cbs.on_predict_begin()
            fn = self.engine.cached(("predict",), lambda: inference_fn(self.model))
            out = predict_source(self.engine, fn, source, batch_size, verbose=verbose, callbacks=cbs)
            cbs.on_predict_end()
        return out
