"""Weight penalties and constraints with Keras' names and formulas (`keras.regularizers`, `keras.constraints`).

Layers take them as `kernel_regularizer=`, `bias_constraint=`, `activity_regularizer=`, ...; each is a
pure function of one array. The protocol applies them (`Layer.penalty`, `Layer.constrain`), so they
live beside it; `jaxnet_lite.regularizers` and `jaxnet_lite.constraints` are their public names.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

EPSILON = 1e-7  # Keras' backend epsilon


class Regularizer:
    """A penalty `regularizer(weights) -> scalar` added to the training loss."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.zeros((), x.dtype)

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class L1L2(Regularizer):
    """`l1 * sum(|x|) + l2 * sum(x**2)` (Keras' defaults 0 and 0)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1, self.l2 = _non_negative("L1L2", "l1", l1), _non_negative("L1L2", "l2", l2)

    def __call__(self, x):
        total = jnp.zeros((), x.dtype)
        if self.l1:
            total = total + self.l1 * jnp.sum(jnp.abs(x))
        if self.l2:
            total = total + self.l2 * jnp.sum(jnp.square(x))
        return total

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """`l1 * sum(|x|)` (Keras' default 0.01)."""

    def __init__(self, l1: float = 0.01) -> None:
        self.l1 = _non_negative("L1", "l1", l1)

    def __call__(self, x):
        return self.l1 * jnp.sum(jnp.abs(x))

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """`l2 * sum(x**2)` (Keras' default 0.01)."""

    def __init__(self, l2: float = 0.01) -> None:
        self.l2 = _non_negative("L2", "l2", l2)

    def __call__(self, x):
        return self.l2 * jnp.sum(jnp.square(x))

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Keras' `OrthogonalRegularizer`: `factor` times the mean absolute off-diagonal cosine similarity of the
    rows (or columns) of a 2-D kernel."""

    def __init__(self, factor: float = 0.01, mode: str = "rows") -> None:
        if mode not in ("rows", "columns"):
            raise ValueError(f"OrthogonalRegularizer: mode must be 'rows' or 'columns', got {mode!r}")
        self.factor, self.mode = _non_negative("OrthogonalRegularizer", "factor", factor), mode

    def __call__(self, x):
        if x.ndim != 2:
            raise ValueError(f"OrthogonalRegularizer applies to 2-D kernels, got shape {tuple(x.shape)}")
        x = x if self.mode == "rows" else x.T
        x = x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        product = x @ x.T
        size = product.shape[0]
        off_diagonal = jnp.sum(jnp.abs(product)) - jnp.sum(jnp.abs(jnp.diag(product)))
        return self.factor * off_diagonal / (size * (size - 1))

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


class Constraint:
    """A projection `constraint(weights) -> weights` applied after every optimizer update."""

    def __call__(self, w: jax.Array) -> jax.Array:
        return w

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Constraint:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


def _norms(w: jax.Array, axis: Any) -> jax.Array:
    return jnp.sqrt(jnp.sum(jnp.square(w), axis=axis, keepdims=True))


class MaxNorm(Constraint):
    """Rescale each slice along `axis` whose norm exceeds `max_value` (Keras' default 2, axis 0)."""

    def __init__(self, max_value: float = 2.0, axis: Any = 0) -> None:
        self.max_value, self.axis = float(max_value), axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        return w * (jnp.clip(norms, 0, self.max_value) / (EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Zero the negative weights."""

    def __call__(self, w):
        return w * (w >= 0).astype(w.dtype)


class UnitNorm(Constraint):
    """Each slice along `axis` to unit norm."""

    def __init__(self, axis: Any = 0) -> None:
        self.axis = axis

    def __call__(self, w):
        return w / (EPSILON + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Each slice's norm moved `rate` of the way into `[min_value, max_value]`."""

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis: Any = 0) -> None:
        self.min_value, self.max_value, self.rate, self.axis = float(min_value), float(max_value), float(rate), axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = self.rate * jnp.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (EPSILON + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


REGULARIZERS = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2, "orthogonal_regularizer": OrthogonalRegularizer}
CONSTRAINTS = {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm, "min_max_norm": MinMaxNorm}


def get_regularizer(identifier: Any) -> Any:
    """None, a Keras name ("l2", "L1L2", ...), a class, or any callable `(weights) -> scalar`."""
    return _get(identifier, REGULARIZERS, Regularizer, "regularizer")


def get_constraint(identifier: Any) -> Any:
    """None, a Keras name ("max_norm", "NonNeg", ...), a class, or any callable `(weights) -> weights`."""
    return _get(identifier, CONSTRAINTS, Constraint, "constraint")


def _get(identifier: Any, table: dict, base: type, what: str) -> Any:
    if identifier is None:
        return None
    if isinstance(identifier, str):
        by_class = {cls.__name__: cls for cls in table.values()}
        cls = table.get(identifier.lower()) or by_class.get(identifier)
        if cls is None:
            raise ValueError(f"unknown {what} {identifier!r}; expected one of {sorted(table)} or a callable")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, base):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"a {what} must be a name, a {base.__name__} or a callable, got {identifier!r}")


def _non_negative(owner: str, what: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= 0:
        raise ValueError(f"{owner}: {what} must be a non-negative number, got {value!r}")
    return number
