"""Sample weights, as Keras applies them: `fit(sample_weight=, class_weight=)`, `(x, y, w)` batches.

Weights travel with the labels (`WeightedLabels`), so every loop that gathers, pads or shards labels
moves them too. The loss is reduced as Keras' `sum_over_batch_size`: the sum of weighted example losses
over the number of examples (zero weights still count), so weights [1, 0] on two equal losses halve the
loss. `metrics` ignore sample weights and `weighted_metrics` use them, as in Keras.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np


class WeightedLabels(NamedTuple):
    """Labels `y` (any pytree of arrays) and one weight per example."""

    labels: Any
    sample_weight: Any


def split_sample_weight(y: Any) -> tuple[Any, Any]:
    """`(labels, sample_weight or None)`."""
    if isinstance(y, WeightedLabels):
        return y.labels, y.sample_weight
    return y, None


def check_sample_weight(sample_weight: Any, n: int, where: str) -> np.ndarray:
    """A weight per example, as float32 of shape (n,): finite and not negative."""
    try:
        weights = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: sample_weight must be numbers, one per example, got "
                         f"{type(sample_weight).__name__}") from None
    if weights.ndim == 2 and weights.shape[1] == 1:
        weights = weights[:, 0]
    if weights.shape != (n,):
        raise ValueError(f"{where}: sample_weight must hold one weight per example, shape ({n},), "
                         f"got {weights.shape}")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"{where}: sample_weight must be finite and not negative")
    return weights.astype(np.float32)


def class_weights_to_sample_weights(y: Any, class_weight: dict, where: str = "fit") -> np.ndarray:
    """Keras' rule: the class of each example (argmax of one-hot labels, else the rounded label) looks up
    its weight; classes missing from `class_weight` weigh 1."""
    if not isinstance(class_weight, dict):
        raise ValueError(f"{where}: class_weight must be a dict {{class index: weight}}, got "
                         f"{type(class_weight).__name__}")
    if isinstance(y, (list, tuple, dict)):
        raise ValueError(f"{where}: class_weight is only supported for models with a single output")
    labels = np.asarray(y)
    if labels.ndim > 1:
        labels = np.argmax(labels, axis=-1) if labels.shape[-1] != 1 else labels[..., 0]
    labels = np.round(labels).astype(np.int64).reshape(labels.shape[0], -1)[:, 0]
    table = {int(k): float(v) for k, v in class_weight.items()}
    return np.array([table.get(int(c), 1.0) for c in labels], np.float32)


def attach_sample_weight(y: Any, sample_weight: Any, class_weight: Any, n: int, where: str) -> Any:
    """`y` carrying the weights `fit`/`evaluate` were given (or `y` itself when none were)."""
    if sample_weight is not None and class_weight is not None:
        raise ValueError(f"{where}: pass sample_weight or class_weight, not both (as in Keras)")
    if class_weight is not None:
        return WeightedLabels(y, class_weights_to_sample_weights(y, class_weight, where))
    if sample_weight is not None:
        return WeightedLabels(y, check_sample_weight(sample_weight, n, where))
    return y


def weighted(values: jax.Array, weights: jax.Array | None) -> jax.Array:
    return values if weights is None else values * weights
