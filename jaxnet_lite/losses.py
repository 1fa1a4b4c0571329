"""Losses with Keras names. Each returns one value per example; the trainer takes the (masked) mean.

Probabilistic losses accept `from_logits`. When a model ends in softmax/sigmoid, the trainer computes
them from the logits instead (`Loss.logits_activation`), so saturated outputs never give NaN or inf.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

EPSILON = 1e-7  # Keras' backend.epsilon(), used to clip probabilities.


def align_labels(y_true: Any, y_pred: jax.Array) -> jax.Array:
    """Labels of shape (N,) against outputs (N, 1) become (N, 1), as Keras' `squeeze_or_expand_to_same_rank`."""
    y_true = jnp.asarray(y_true)
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    return y_true


def _per_example(values: jax.Array) -> jax.Array:
    """Mean over every axis but the batch axis (Keras' per-sample reduction for elementwise losses)."""
    return values.reshape(values.shape[0], -1).mean(axis=1) if values.ndim > 1 else values


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1):
    """`-sum(y_true * log(y_pred))` over classes; one-hot (or soft) labels."""
    y_true = jnp.asarray(y_true, y_pred.dtype)
    if label_smoothing:
        num_classes = y_pred.shape[axis]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / num_classes
    if from_logits:
        log_p = jax.nn.log_softmax(y_pred, axis=axis)
    else:
        p = y_pred / jnp.sum(y_pred, axis=axis, keepdims=True)
        log_p = jnp.log(jnp.clip(p, EPSILON, 1.0 - EPSILON))
    return _per_example(-jnp.sum(y_true * log_p, axis=axis))


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False, axis: int = -1):
    """Cross-entropy with integer labels (shape `(batch,)` or `(batch, 1)`)."""
    labels = jnp.asarray(y_true).astype(jnp.int32)
    if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if from_logits:
        log_p = jax.nn.log_softmax(y_pred, axis=axis)
    else:
        p = y_pred / jnp.sum(y_pred, axis=axis, keepdims=True)
        log_p = jnp.log(jnp.clip(p, EPSILON, 1.0 - EPSILON))
    picked = jnp.take_along_axis(log_p, labels[..., None], axis=axis)[..., 0]
    return _per_example(-picked)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0):
    """Mean over the last axis of the elementwise binary cross-entropy."""
    y_true = align_labels(y_true, y_pred).astype(y_pred.dtype)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        values = optax.sigmoid_binary_cross_entropy(y_pred, y_true)
    else:
        p = jnp.clip(y_pred, EPSILON, 1.0 - EPSILON)
        values = -(y_true * jnp.log(p) + (1.0 - y_true) * jnp.log(1.0 - p))
    return _per_example(values)


def mean_squared_error(y_true, y_pred):
    return _per_example(jnp.square(y_pred - align_labels(y_true, y_pred).astype(y_pred.dtype)))


def mean_absolute_error(y_true, y_pred):
    return _per_example(jnp.abs(y_pred - align_labels(y_true, y_pred).astype(y_pred.dtype)))


def huber(y_true, y_pred, delta: float = 1.0):
    """Quadratic within `delta`, linear beyond (Keras' Huber, default delta 1.0)."""
    err = jnp.abs(y_pred - align_labels(y_true, y_pred).astype(y_pred.dtype))
    quad = jnp.minimum(err, delta)
    return _per_example(0.5 * quad**2 + delta * (err - quad))


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


# -- label checks: each loss says, before anything compiles, which labels it can take -------------------
LabelCheck = Callable[[str, tuple, Any, str, str], None]


def _dims(shape: tuple) -> str:
    return ", ".join(map(str, shape))


def check_integer_labels(loss_name: str, out_shape: tuple, y: Any, where: str, name: str) -> None:
    """Class indices of shape (batch, ...) or (batch, ..., 1), each in [0, classes)."""
    classes = out_shape[-1]
    label_shape = tuple(y.shape[1:])
    if label_shape not in (out_shape[:-1], (*out_shape[:-1], 1)):
        raise ValueError(
            f"{where}: {loss_name} expects integer labels of shape (batch,{''.join(f' {d},' for d in out_shape[:-1])}) "
            f"for model output (batch, {_dims(out_shape)}), got {name} of shape {y.shape}"
        )
    y = np.asarray(y)  # integer labels are small next to x; their range needs their values
    if np.issubdtype(y.dtype, np.floating) and y.size:
        fractional = y[y != np.round(y)]
        if fractional.size:
            raise ValueError(f"{where}: {loss_name} expects whole-number class labels, but {name} holds "
                             f"{fractional.flat[0].item()!r}")
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise ValueError(
            f"{where}: {name} holds labels from {int(y.min())} to {int(y.max())}, but the model outputs "
            f"{classes} classes (labels must be in [0, {classes - 1}])"
        )


def check_labels_like_output(loss_name: str, out_shape: tuple, y: Any, where: str, name: str) -> None:
    """Labels of the output's shape (a single-unit output also takes labels of shape (batch,))."""
    label_shape = tuple(y.shape[1:])
    if label_shape != out_shape and not (label_shape == () and out_shape == (1,)):
        raise ValueError(
            f"{where}: {loss_name} expects {name} of shape (batch, {_dims(out_shape)}) to match the model output, "
            f"got {y.shape}"
        )


def check_one_hot_labels(loss_name: str, out_shape: tuple, y: Any, where: str, name: str) -> None:
    """One-hot (or soft) labels exactly as wide as the output."""
    if tuple(y.shape[1:]) != out_shape:
        raise ValueError(
            f"{where}: {loss_name} expects {name} of shape (batch, {_dims(out_shape)}) to match the model output, "
            f"got {y.shape} (one-hot width must equal the number of output units; use to_categorical(y, num_classes))"
        )


def check_binary_labels(loss_name: str, out_shape: tuple, y: Any, where: str, name: str) -> None:
    """Labels of the output's shape; a single sigmoid unit also takes labels of shape (batch,), as in Keras."""
    check_labels_like_output(loss_name, out_shape, y, where, name)


@dataclass(frozen=True)
class Loss:
    """A resolved loss: its Keras name, the per-example function and how it relates to logits.

    `logits_activation` is the output activation ("softmax"/"sigmoid") whose logits this loss can take
    directly; `from_logits` says whether `fn` is currently called on logits.
    """

    name: str
    fn: Callable[..., jax.Array]
    from_logits: bool = False
    logits_activation: str | None = None
    kwargs: tuple = ()
    label_check: LabelCheck | None = None

    def __call__(self, y_true: Any, y_pred: jax.Array) -> jax.Array:
        extra = dict(self.kwargs)
        if self.logits_activation is not None:
            extra["from_logits"] = self.from_logits
        return self.fn(y_true, y_pred, **extra)

    def on_logits(self) -> Loss:
        return replace(self, from_logits=True)

    def check_labels(self, out_shape: tuple, y: Any, *, where: str = "fit", name: str = "y") -> None:
        """Raise a ValueError naming `where`, `name` and both shapes when `y` cannot be this loss's labels
        for an output of `out_shape` (no batch axis). Losses without a rule accept any labels."""
        if self.label_check is not None:
            self.label_check(self.name, tuple(out_shape), y, where, name)


def CategoricalCrossentropy(from_logits: bool = False, label_smoothing: float = 0.0) -> Loss:
    return Loss("categorical_crossentropy", categorical_crossentropy, from_logits, "softmax",
                (("label_smoothing", label_smoothing),), check_one_hot_labels)


def SparseCategoricalCrossentropy(from_logits: bool = False) -> Loss:
    return Loss("sparse_categorical_crossentropy", sparse_categorical_crossentropy, from_logits, "softmax",
                label_check=check_integer_labels)


def BinaryCrossentropy(from_logits: bool = False, label_smoothing: float = 0.0) -> Loss:
    return Loss("binary_crossentropy", binary_crossentropy, from_logits, "sigmoid",
                (("label_smoothing", label_smoothing),), check_binary_labels)


def MeanSquaredError() -> Loss:
    return Loss("mean_squared_error", mean_squared_error, label_check=check_labels_like_output)


def MeanAbsoluteError() -> Loss:
    return Loss("mean_absolute_error", mean_absolute_error, label_check=check_labels_like_output)


def Huber(delta: float = 1.0) -> Loss:
    return Loss("huber", huber, kwargs=(("delta", delta),), label_check=check_labels_like_output)


_BY_NAME: dict[str, Callable[[], Loss]] = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "huber": Huber,
}


def get(identifier: str | Loss | Callable) -> Loss:
    """Resolve a Keras name, a `Loss`, or a function `(y_true, y_pred) -> per-example losses`."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier.lower()]()
        except KeyError:
            raise ValueError(f"unknown loss {identifier!r}; expected one of {sorted(_BY_NAME)} or a callable") from None
    if callable(identifier):
        for name, fn in [("categorical_crossentropy", categorical_crossentropy),
                         ("sparse_categorical_crossentropy", sparse_categorical_crossentropy),
                         ("binary_crossentropy", binary_crossentropy)]:
            if identifier is fn:
                return _BY_NAME[name]()
        return Loss(getattr(identifier, "__name__", "loss"), identifier)
    raise ValueError(f"loss must be a name, a Loss or a callable, got {identifier!r}")
