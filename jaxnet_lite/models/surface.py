"""The Keras face of a model: `compile`, `fit`, `evaluate`, `predict`, `summary`, weights I/O.

It holds no training logic: `compile` attaches a `Trainer` and the rest delegates to it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax

from jaxnet_lite.core import Variables
from jaxnet_lite.core.rng import default_seed
from jaxnet_lite.data.random_access import RandomAccessSource
from jaxnet_lite.models.summary import param_counts, summary_text
from jaxnet_lite.training import Trainer
from jaxnet_lite.training.predict import inference_fn, predict_arrays
from jaxnet_lite.training.validation import check_count, check_input_values
from jaxnet_lite.models.saving import save_model
from jaxnet_lite.training.weights import WeightsIO


class KerasSurface(WeightsIO):
    """Mixin for `Sequential` and `Model`; the model stays a pure `init`/`apply` layer underneath."""

    stop_training: bool = False
    _trainer: Any = None
    _variables: Any = None
    _predict_fn: Any = None

    _stale_compile: bool = False

    def _on_structure_changed(self) -> None:
        """Layers were added: the compiled trainer and the weights no longer fit the model."""
        self._stale_compile = self._stale_compile or self._trainer is not None
        self._trainer = None
        self._variables = None
        self._predict_fn = None

    # -- training ---------------------------------------------------------------------------------
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Any = None, *,
                loss_weights: Any = None, weighted_metrics: Any = None, run_eagerly: bool = False,
                steps_per_execution: int | str = "auto", jit_compile: Any = "auto", seed: int | None = None,
                distribution: Any = None, auto_scale_loss: bool = True) -> None:
        """Attach a `Trainer` (Keras' default optimizer is rmsprop; the tutorial passes "adam").

        `loss_weights` scales each output's loss (a list in output order, or a dict by output name);
        `weighted_metrics` are averaged with the sample weights `fit`/`evaluate` are given.
        `distribution` (`jaxnet_lite.distribution.ModelParallel`/`DataParallel`) lays params and batches out
        on the devices; by default the one given to `set_distribution`, else the batch is split over all.
        With `auto_scale_loss` (Keras' default) a model with float16 layers gets dynamic loss scaling.
        Keras arguments this engine cannot honour are refused, never ignored.
        """
        if run_eagerly:
            raise NotImplementedError("compile: run_eagerly=True is not supported: every step is compiled with "
                                      "jax.jit; to debug a layer, run its apply under jax.disable_jit()")
        if jit_compile not in ("auto", True):
            raise NotImplementedError(f"compile: jit_compile={jit_compile!r} is not supported: every step is "
                                      "compiled with XLA")
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='categorical_crossentropy'")
        given = dict(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=loss_weights,
                     weighted_metrics=weighted_metrics, steps_per_execution=steps_per_execution, seed=seed,
                     auto_scale_loss=None if auto_scale_loss is True else auto_scale_loss)
        self._compile_arguments = {k: v for k, v in given.items() if v is not None}
        self._stale_compile = False
        self._trainer = Trainer(
            self, loss=loss, optimizer=optimizer, metrics=metrics or (), loss_weights=loss_weights,
            weighted_metrics=weighted_metrics or (), seed=default_seed() if seed is None else seed, steps_per_execution=steps_per_execution,
            variables=self._variables, distribution=distribution, auto_scale_loss=auto_scale_loss,
        )

    @property
    def trainer(self) -> Any:
        if self._trainer is None:
            if self._stale_compile:
                raise RuntimeError(f"{self.describe()} changed after compile (a layer was added): call "
                                   "model.compile(...) again before fit/evaluate")
            raise RuntimeError(
                f"{self.describe()} is not compiled: call model.compile(loss=..., optimizer=..., metrics=[...]) "
                "before fit/evaluate"
            )
        return self._trainer

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        """`Trainer.fit`: Keras' arguments, Keras' defaults."""
        return self.trainer.fit(*args, **kwargs)

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        """`Trainer.evaluate`: Keras' arguments; unknown ones are a TypeError, as in Keras."""
        return self.trainer.evaluate(*args, **kwargs)

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto", steps: int | None = None,
                callbacks: Any = None) -> Any:
        """Predictions as NumPy; works before `compile` too (with freshly initialised weights, as in Keras)."""
        if self._trainer is not None:
            return self._trainer.predict(x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks)
        if steps is not None or callbacks or isinstance(x, RandomAccessSource):
            raise ValueError("predict: steps, callbacks and random-access sources need a compiled model (call "
                             "compile first)")
        if batch_size is not None:
            check_count(batch_size, "batch_size", "predict")
        check_input_values(self, x, "predict")
        if self._predict_fn is None:
            self._predict_fn = inference_fn(self)
        params, state = self.variables
        return predict_arrays(self._predict_fn, params, state, x, batch_size=batch_size or 32, verbose=verbose)

    def save(self, filepath: Any, overwrite: bool = True, include_optimizer: bool = True) -> None:
        """Keras' `model.save("m.keras")`: architecture, weights, compile arguments and (by default) the
        optimizer state in one pickle-free file, written atomically; `load_model` rebuilds the model."""
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"model.save: {os.fspath(filepath)!r} exists and overwrite=False")
        save_model(self, filepath, include_optimizer=include_optimizer)

    # -- weights ----------------------------------------------------------------------------------
    @property
    def variables(self) -> Any:
        """Current `Variables(params, state)`: the trainer's once compiled, else initialised from the default
        seed (0 unless `utils.set_random_seed` set another)."""
        if self._trainer is not None:
            return self._trainer.variables
        if self._variables is None:
            self._variables = self.init(jax.random.key(default_seed()))
        return self._variables

    @variables.setter
    def variables(self, value: Any) -> None:
        value = Variables(*value)
        if self._trainer is not None:
            self._trainer.variables = value
        else:
            self._variables = value

    def count_params(self) -> int:
        return sum(param_counts(self))

    # -- summary ----------------------------------------------------------------------------------
    def summary(self, line_length: int | None = None, positions: Any = None,
                print_fn: Callable[[str], Any] | None = None, show_flops: bool = True,
                return_text: bool = False, **kwargs: Any) -> str | None:
        """Print Keras' summary table, plus FLOPs per example; `print_fn` gets each line instead.

        Returns `None` like Keras (so notebooks do not echo it twice), or the text with `return_text=True`.
        """
        text = summary_text(self, show_flops=show_flops, line_length=line_length)
        if print_fn is None and not return_text:
            print(text)
        elif print_fn is not None:
            for line in text.split("\n"):
                print_fn(line)
        return text if return_text else None
