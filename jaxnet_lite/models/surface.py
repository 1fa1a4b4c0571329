"""The Keras face of a model: `compile`, `fit`, `evaluate`, `predict`, `summary`, weights I/O.

It holds no training logic: `compile` attaches a `Trainer` and the rest delegates to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from jaxnet_lite.core import Variables
from jaxnet_lite.models.summary import param_counts, summary_text
from jaxnet_lite.training import Trainer
from jaxnet_lite.training.predict import inference_fn, predict_arrays
from jaxnet_lite.training.weights import WeightsIO


class KerasSurface(WeightsIO):
    """Mixin for `Sequential` and `Model`; the model stays a pure `init`/`apply` layer underneath."""

    stop_training: bool = False
    _trainer: Any = None
    _variables: Any = None
    _predict_fn: Any = None

    def _on_structure_changed(self) -> None:
        self._trainer = None
        self._variables = None
        self._predict_fn = None

    # -- training ---------------------------------------------------------------------------------
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Any = None, *,
                seed: int | None = None, steps_per_execution: int | str = "auto", **kwargs: Any) -> None:
        """Attach a `Trainer` (Keras' default optimizer is rmsprop; the tutorial passes "adam")."""
        unknown = set(kwargs) - {"loss_weights", "weighted_metrics", "run_eagerly", "jit_compile"}
        if unknown:
            raise TypeError(f"compile() got unexpected arguments {sorted(unknown)}")
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='categorical_crossentropy'")
        self._trainer = Trainer(
            self, loss=loss, optimizer=optimizer, metrics=metrics or (),
            seed=0 if seed is None else seed, steps_per_execution=steps_per_execution,
            variables=self._variables,
        )

    @property
    def trainer(self) -> Any:
        if self._trainer is None:
            raise RuntimeError(
                f"{self.describe()} is not compiled: call model.compile(loss=..., optimizer=..., metrics=[...]) "
                "before fit/evaluate"
            )
        return self._trainer

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        return self.trainer.fit(*args, **kwargs)

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        return self.trainer.evaluate(*args, **kwargs)

    def predict(self, x: Any, batch_size: int = 32, verbose: Any = "auto", **kwargs: Any) -> Any:
        """Predictions as NumPy; works before `compile` too (with freshly initialised weights, as in Keras)."""
        if self._trainer is not None:
            return self._trainer.predict(x, batch_size=batch_size, verbose=verbose, **kwargs)
        if self._predict_fn is None:
            self._predict_fn = inference_fn(self)
        params, state = self.variables
        return predict_arrays(self._predict_fn, params, state, x, batch_size=batch_size, verbose=verbose)

    # -- weights ----------------------------------------------------------------------------------
    @property
    def variables(self) -> Any:
        """Current `Variables(params, state)`: the trainer's once compiled, else initialised with seed 0."""
        if self._trainer is not None:
            return self._trainer.variables
        if self._variables is None:
            self._variables = self.init(jax.random.key(0))
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
