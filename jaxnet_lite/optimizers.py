"""Optimizers are Optax `GradientTransformation`s; Keras names map to Optax with Keras' defaults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

# Keras 3 defaults: learning rates and the epsilons Keras uses (not Optax's).
_FACTORIES: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam": lambda learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7: optax.adam(
        learning_rate, b1=beta_1, b2=beta_2, eps=epsilon),
    "adamw": lambda learning_rate=1e-3, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7: optax.adamw(
        learning_rate, b1=beta_1, b2=beta_2, eps=epsilon, weight_decay=weight_decay),
    "nadam": lambda learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7: optax.nadam(
        learning_rate, b1=beta_1, b2=beta_2, eps=epsilon),
    "adamax": lambda learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7: optax.adamax(
        learning_rate, b1=beta_1, b2=beta_2, eps=epsilon),
    "sgd": lambda learning_rate=1e-2, momentum=0.0, nesterov=False: optax.sgd(
        learning_rate, momentum=momentum or None, nesterov=nesterov),
    "rmsprop": lambda learning_rate=1e-3, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False: optax.rmsprop(
        learning_rate, decay=rho, eps=epsilon, momentum=momentum or None, centered=centered),
    "adagrad": lambda learning_rate=1e-3, initial_accumulator_value=0.1, epsilon=1e-7: optax.adagrad(
        learning_rate, initial_accumulator_value=initial_accumulator_value, eps=epsilon),
    "adadelta": lambda learning_rate=1e-3, rho=0.95, epsilon=1e-7: optax.adadelta(
        learning_rate, rho=rho, eps=epsilon),
    "lion": lambda learning_rate=1e-3, beta_1=0.9, beta_2=0.99: optax.lion(learning_rate, b1=beta_1, b2=beta_2),
}


_STRUCTURAL = {"sgd": ("momentum", "nesterov"), "rmsprop": ("momentum", "centered")}


def get(identifier: str | optax.GradientTransformation, **kwargs: Any) -> optax.GradientTransformation:
    """`get("adam")` gives Optax Adam with Keras' defaults (lr 1e-3, eps 1e-7); Optax objects pass through.

    The learning rate is injected as a hyper-parameter (`optax.inject_hyperparams`) so callbacks such as
    `ReduceLROnPlateau` can change it between epochs without recompiling.
    """
    if isinstance(identifier, optax.GradientTransformation):
        return identifier
    if isinstance(identifier, str):
        name = identifier.lower()
        if name not in _FACTORIES:
            raise ValueError(f"unknown optimizer {identifier!r}; expected one of {sorted(_FACTORIES)} or an Optax "
                             "GradientTransformation")
        # Structural options must stay Python values under jit; only numbers become hyper-parameters.
        static = tuple(k for k in ("momentum", "nesterov", "centered") if k in _STRUCTURAL.get(name, ()))
        return optax.inject_hyperparams(_FACTORIES[name], static_args=static)(**kwargs)
    raise ValueError(f"optimizer must be a name or an optax.GradientTransformation, got {identifier!r}")


def Adam(learning_rate: Any = 1e-3, **kwargs: Any) -> optax.GradientTransformation:
    return get("adam", learning_rate=learning_rate, **kwargs)


def SGD(learning_rate: Any = 1e-2, **kwargs: Any) -> optax.GradientTransformation:
    return get("sgd", learning_rate=learning_rate, **kwargs)


def RMSprop(learning_rate: Any = 1e-3, **kwargs: Any) -> optax.GradientTransformation:
    return get("rmsprop", learning_rate=learning_rate, **kwargs)


def AdamW(learning_rate: Any = 1e-3, **kwargs: Any) -> optax.GradientTransformation:
    return get("adamw", learning_rate=learning_rate, **kwargs)


def Adagrad(learning_rate: Any = 1e-3, **kwargs: Any) -> optax.GradientTransformation:
    return get("adagrad", learning_rate=learning_rate, **kwargs)


def Nadam(learning_rate: Any = 1e-3, **kwargs: Any) -> optax.GradientTransformation:
    return get("nadam", learning_rate=learning_rate, **kwargs)


def _hyperparams_state(opt_state: Any) -> tuple[Any, Any]:
    """Find the `inject_hyperparams` state, at the top or as the first element of a chain: `(state, path)`."""
    if hasattr(opt_state, "hyperparams"):
        return opt_state, ()
    if isinstance(opt_state, tuple) and not hasattr(opt_state, "_fields"):
        for i, inner in enumerate(opt_state):
            found, path = _hyperparams_state(inner)
            if found is not None:
                return found, (i, *path)
    return None, ()


def get_learning_rate(opt_state: Any) -> Any:
    """The current learning rate in an `inject_hyperparams` state (possibly inside a chain), or None."""
    state, _ = _hyperparams_state(opt_state)
    return None if state is None else state.hyperparams.get("learning_rate")


def set_learning_rate(opt_state: Any, value: float) -> Any:
    """A copy of an `inject_hyperparams` state with a new learning rate (no recompilation needed)."""
    state, path = _hyperparams_state(opt_state)
    if state is None or "learning_rate" not in state.hyperparams:
        raise ValueError("this optimizer's learning rate is not adjustable: build it by name or with "
                         "optax.inject_hyperparams")
    hp = dict(state.hyperparams)
    hp["learning_rate"] = jnp.asarray(value, dtype=jnp.asarray(hp["learning_rate"]).dtype)
    return _replace_at(opt_state, path, state._replace(hyperparams=hp))


def _replace_at(tree: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    items = list(tree)
    items[path[0]] = _replace_at(items[path[0]], path[1:], value)
    return type(tree)(items)


def freeze(optimizer: optax.GradientTransformation, trainable: Any) -> optax.GradientTransformation:
    """Zero the updates of params whose `trainable` mask leaf is False (Keras' `layer.trainable = False`).

    The optimizer still sees the gradients (its state keeps its shape); only the final updates are
    dropped, so frozen params never move.
    """

    def zero_frozen(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, keep: u if keep else jnp.zeros_like(u), updates, trainable), state

    return optax.chain(optimizer, optax.GradientTransformation(lambda params: optax.EmptyState(), zero_frozen))
