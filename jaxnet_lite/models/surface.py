"""The Keras face of a model: `compile`, `fit`, `evaluate`, `predict`, `summary`, weights I/O.

It holds no training logic: `compile` attaches a `Trainer` and the rest delegates to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np


class KerasSurface:
    """Mixin for `Sequential` and `Model`; the model stays a pure `init`/`apply` layer underneath."""

    stop_training: bool = False
    _trainer: Any = None
    _variables: Any = None

    def _on_structure_changed(self) -> None:
        self._trainer = None
        self._variables = None

    # -- training ---------------------------------------------------------------------------------
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Any = None, *,
                seed: int | None = None, steps_per_execution: int | str = "auto", **kwargs: Any) -> None:
        """Attach a `Trainer` (Keras' default optimizer is rmsprop; the tutorial passes "adam")."""
        from jaxnet_lite.training.trainer import Trainer

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
        from jaxnet_lite.training.predict import predict_arrays

        params, state = self.variables
        return predict_arrays(self, params, state, x, batch_size=batch_size, verbose=verbose)

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
        from jaxnet_lite.core import Variables

        value = Variables(*value)
        if self._trainer is not None:
            self._trainer.variables = value
        else:
            self._variables = value

    def get_weights(self) -> list[np.ndarray]:
        """All params then all state, as NumPy arrays, in a fixed (sorted-key) order."""
        params, state = self.variables
        return [np.asarray(a) for a in jax.tree.leaves((params, state))]

    def set_weights(self, weights: list[Any]) -> None:
        params, state = self.variables
        leaves, treedef = jax.tree.flatten((params, state))
        if len(weights) != len(leaves):
            raise ValueError(f"set_weights: expected {len(leaves)} arrays, got {len(weights)}")
        for i, (old, new) in enumerate(zip(leaves, weights)):
            if tuple(np.shape(new)) != tuple(old.shape):
                raise ValueError(f"set_weights: array {i} has shape {np.shape(new)}, expected {tuple(old.shape)}")
        self.variables = jax.tree.unflatten(treedef, [jax.numpy.asarray(w, o.dtype) for w, o in zip(weights, leaves)])

    def save_weights(self, filepath: Any) -> None:
        """Write params and state to `filepath` (an `.npz` checkpoint, atomically, no pickle)."""
        from jaxnet_lite import checkpoint

        params, state = self.variables
        checkpoint.save(filepath, {"params": params, "state": state}, metadata={"model": self.name})

    def load_weights(self, filepath: Any) -> None:
        """Restore weights saved by `save_weights`; names and shapes must match this model."""
        from jaxnet_lite import checkpoint

        params, state = self.variables
        restored = checkpoint.restore(filepath, target={"params": params, "state": state})
        self.variables = (restored["params"], restored["state"])

    def count_params(self) -> int:
        from jaxnet_lite.models.summary import param_counts

        return sum(param_counts(self))

    # -- summary ----------------------------------------------------------------------------------
    def summary(self, line_length: int | None = None, positions: Any = None,
                print_fn: Callable[[str], Any] | None = None, show_flops: bool = True,
                return_text: bool = False, **kwargs: Any) -> str | None:
        """Print Keras' summary table, plus FLOPs per example; `print_fn` gets each line instead.

        Returns `None` like Keras (so notebooks do not echo it twice), or the text with `return_text=True`.
        """
        from jaxnet_lite.models.summary import summary_text

        text = summary_text(self, show_flops=show_flops, line_length=line_length)
        if print_fn is None and not return_text:
            print(text)
        elif print_fn is not None:
            for line in text.split("\n"):
                print_fn(line)
        return text if return_text else None
