"""Dynamic loss scaling for float16 training, as an Optax transformation around the real optimizer.

float16 gradients underflow to zero below about 6e-8. The train step multiplies the loss by a scale
(`loss_scale_of(opt_state)`), so the backward pass runs on larger numbers, and this wrapper divides the
gradients by it before the inner optimizer sees them. A step whose gradients are not finite is skipped
(params and the inner optimizer state unchanged) and halves the scale; every `dynamic_growth_steps`
finite steps in a row double it (Keras 3's `LossScaleOptimizer` rule and defaults). The scale lives in
the optimizer state, so it is checkpointed and compiled with everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxnet_lite import optimizers as optimizers_lib
from jaxnet_lite.core import Layer, iter_layers


class LossScaleState(NamedTuple):
    """The inner optimizer's state, the current `loss_scale` and the finite steps since it last changed."""

    inner_state: Any
    loss_scale: jax.Array
    finite_steps: jax.Array


class LossScaledTransformation(optax.GradientTransformationExtraArgs):
    """An optimizer wrapped by `LossScaleOptimizer` (so that it is never wrapped twice)."""


def all_finite(tree: Any) -> jax.Array:
    """True when every floating leaf of `tree` is finite (no inf, no NaN)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.stack(leaves).all() if leaves else jnp.asarray(True)


def LossScaleOptimizer(inner_optimizer: Any, initial_scale: float = 2.0**15,  # noqa: N802 - Keras' name
                       dynamic_growth_steps: int = 2000) -> LossScaledTransformation:
    """`inner_optimizer` (a name or an Optax transformation) with dynamic loss scaling.

    Its `update` takes gradients of the loss multiplied by the current scale (the train step does this
    when it finds the scale in the optimizer state) and returns the inner optimizer's updates for the
    unscaled gradients, or zero updates when they are not finite.
    """
    inner = optimizers_lib.get(inner_optimizer)
    if isinstance(inner, LossScaledTransformation):
        raise ValueError("LossScaleOptimizer: the optimizer already scales its loss; wrap the inner optimizer once")
    if not (isinstance(initial_scale, (int, float)) and initial_scale > 0 and jnp.isfinite(initial_scale)):
        raise ValueError(f"LossScaleOptimizer: initial_scale must be a positive finite number, got {initial_scale!r}")
    if not isinstance(dynamic_growth_steps, int) or isinstance(dynamic_growth_steps, bool) or dynamic_growth_steps < 1:
        raise ValueError(f"LossScaleOptimizer: dynamic_growth_steps must be a positive int, got {dynamic_growth_steps!r}")
    inner = optax.with_extra_args_support(inner)

    def init(params: Any) -> LossScaleState:
        return LossScaleState(inner.init(params), jnp.asarray(initial_scale, jnp.float32), jnp.zeros((), jnp.int32))

    def update(updates: Any, state: LossScaleState, params: Any = None, **extra_args: Any) -> tuple[Any, LossScaleState]:
        grads = jax.tree.map(lambda g: g / state.loss_scale.astype(g.dtype), updates)
        finite = all_finite(grads)
        new_updates, new_inner = inner.update(grads, state.inner_state, params, **extra_args)
        new_updates = jax.tree.map(lambda u: jnp.where(finite, u, jnp.zeros_like(u)), new_updates)
        new_inner = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_inner, state.inner_state)
        grow = state.finite_steps + 1 >= dynamic_growth_steps
        scale = jnp.where(finite, jnp.where(grow, state.loss_scale * 2.0, state.loss_scale), state.loss_scale * 0.5)
        steps = jnp.where(finite & ~grow, state.finite_steps + 1, jnp.zeros_like(state.finite_steps))
        return new_updates, LossScaleState(new_inner, scale, steps)

    return LossScaledTransformation(init, update)


def loss_scale_of(opt_state: Any) -> jax.Array | None:
    """The current loss scale in an optimizer state (at the top or inside a chain), or None if unscaled."""
    found = [s for s in jax.tree.leaves(opt_state, is_leaf=lambda n: isinstance(n, LossScaleState))
             if isinstance(s, LossScaleState)]
    if len(found) > 1:
        raise ValueError(f"the optimizer state holds {len(found)} loss scales; wrap the optimizer in "
                         "LossScaleOptimizer once, outermost")
    return found[0].loss_scale if found else None


def scaled_loss(loss_fn: Callable[..., tuple[jax.Array, Any]], scale: jax.Array | None) -> Callable:
    """`loss_fn` (returning `(loss, aux)`) with its loss multiplied by `scale`; `loss_fn` itself for None."""
    if scale is None:
        return loss_fn

    def scaled(*args: Any) -> tuple[jax.Array, Any]:
        loss, aux = loss_fn(*args)
        return loss * scale.astype(loss.dtype), aux

    return scaled


def computes_in_float16(model: Layer) -> bool:
    """True when some layer of `model` computes in float16 (its gradients need loss scaling)."""
    return any(layer.autocast and layer.compute_dtype == "float16" for layer in iter_layers(model))


def auto_loss_scaling(model: Layer, optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """`optimizer` wrapped in `LossScaleOptimizer` when `model` computes in float16 and it is not yet
    (what Keras' `compile` does under "mixed_float16"); otherwise `optimizer` as it is."""
    if computes_in_float16(model) and not isinstance(optimizer, LossScaledTransformation):
        return LossScaleOptimizer(optimizer)
    return optimizer
