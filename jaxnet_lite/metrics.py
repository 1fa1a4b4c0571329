"""Metrics with Keras names. Each gives one value per example, so epoch means are exact sums / counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from jaxnet_lite import losses


def _labels(y_true: jax.Array) -> jax.Array:
    y = jnp.asarray(y_true)
    return (y[..., 0] if y.ndim > 1 and y.shape[-1] == 1 else y).astype(jnp.int32)


def categorical_accuracy(y_true, y_pred):
    return (jnp.argmax(y_true, axis=-1) == jnp.argmax(y_pred, axis=-1)).astype(jnp.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    return (_labels(y_true) == jnp.argmax(y_pred, axis=-1)).astype(jnp.float32)


def binary_accuracy(y_true, y_pred, threshold: float = 0.5):
    hits = (losses.align_labels(y_true, y_pred) > threshold) == (y_pred > threshold)
    return hits.reshape(hits.shape[0], -1).mean(axis=1).astype(jnp.float32)


def top_k_categorical_accuracy(y_true, y_pred, k: int = 5):
    return _in_top_k(jnp.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k: int = 5):
    return _in_top_k(_labels(y_true), y_pred, k)


def _in_top_k(labels, y_pred, k):
    target = jnp.take_along_axis(y_pred, labels[..., None], axis=-1)
    return (jnp.sum(y_pred > target, axis=-1) < k).astype(jnp.float32)


@dataclass(frozen=True)
class Metric:
    """A resolved metric: the name it is logged under, its per-example function, and its direction
    ("up" when larger is better, "down" when smaller is, None when unknown), which `EarlyStopping`,
    `ModelCheckpoint` and `ReduceLROnPlateau`-style callbacks read in mode "auto"."""

    name: str
    fn: Callable[[Any, jax.Array], jax.Array]
    direction: str | None = None

    def __call__(self, y_true: Any, y_pred: jax.Array) -> jax.Array:
        return self.fn(y_true, y_pred)


_BY_NAME: dict[str, Callable] = {
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "binary_accuracy": binary_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
    "mean_squared_error": losses.mean_squared_error,
    "mean_absolute_error": losses.mean_absolute_error,
}
_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "acc": "accuracy"}
_DIRECTIONS = {
    "accuracy": "up",
    "categorical_accuracy": "up",
    "sparse_categorical_accuracy": "up",
    "binary_accuracy": "up",
    "top_k_categorical_accuracy": "up",
    "sparse_top_k_categorical_accuracy": "up",
    "mean_squared_error": "down",
    "mean_absolute_error": "down",
}


def direction_of(identifier: str | Metric | Callable) -> str | None:
    """"up" or "down" for a metric name, `Metric` or function (its `direction` attribute), else None."""
    if isinstance(identifier, Metric):
        return identifier.direction
    if isinstance(identifier, str):
        return _DIRECTIONS.get(_ALIASES.get(identifier.lower(), identifier.lower()))
    return getattr(identifier, "direction", None)


def accuracy_for(y_true_shape: tuple, y_pred_shape: tuple, loss_name: str | None = None) -> Callable:
    """Keras' rule for "accuracy": binary for one output unit, sparse for integer labels, else categorical."""
    if loss_name == "binary_crossentropy" or y_pred_shape[-1:] == (1,):
        return binary_accuracy
    if loss_name == "sparse_categorical_crossentropy" or len(y_true_shape) < len(y_pred_shape) or (
        y_true_shape[-1:] == (1,) and y_pred_shape[-1] != 1
    ):
        return sparse_categorical_accuracy
    return categorical_accuracy


def get(identifier: str | Metric | Callable, *, y_true_shape: tuple = (), y_pred_shape: tuple = (),
        loss_name: str | None = None) -> Metric:
    """Resolve a metric name (`"accuracy"` picks its variant from the label and output shapes) or callable."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier.lower(), identifier.lower())
        if name == "accuracy":
            return Metric(identifier, accuracy_for(y_true_shape, y_pred_shape, loss_name), "up")
        if name not in _BY_NAME:
            raise ValueError(
                f"unknown metric {identifier!r}; expected one of {sorted([*_BY_NAME, *_ALIASES, 'accuracy'])} "
                "or a callable"
            )
        return Metric(identifier, _BY_NAME[name], _DIRECTIONS[name])
    if callable(identifier):
        return Metric(getattr(identifier, "__name__", "metric"), identifier, direction_of(identifier))
    raise ValueError(f"metric must be a name or a callable, got {identifier!r}")


def check_name(identifier: Any) -> None:
    """Fail early (before any compile) on an unknown metric name."""
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier.lower(), identifier.lower())
        if name != "accuracy" and name not in _BY_NAME:
            get(identifier)
