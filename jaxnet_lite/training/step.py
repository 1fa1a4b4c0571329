"""The training step as pure functions a researcher can take apart.

    step = make_train_step(model, "categorical_crossentropy", optax.adam(1e-3), metrics=["accuracy"])
    train_state, logs = step(train_state, (x_batch, y_batch))      # jit-compiled, buffers donated

Internally the trainer uses the same pieces in "sums" form: a batch returns the weighted sums of the
loss and of every metric plus the example count, so epoch means are exact whatever the batch sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxnet_lite import activations
from jaxnet_lite import losses as losses_lib
from jaxnet_lite import metrics as metrics_lib
from jaxnet_lite import optimizers as optimizers_lib
from jaxnet_lite.core import Layer
from jaxnet_lite.training.state import TrainState

Batch = tuple  # (x, y) or (x, y, sample_weight)


@dataclass(frozen=True)
class Objective:
    """How a batch turns into per-example losses and predictions for one model and loss.

    `apply` is the model's apply, or (when the loss can take logits of the model's final softmax/sigmoid)
    the apply of a copy without that activation; `to_predictions` then re-applies it for the metrics.
    """

    apply: Callable
    loss: losses_lib.Loss
    to_predictions: Callable[[jax.Array], jax.Array]
    from_logits: bool

    @classmethod
    def create(cls, model: Layer, loss: Any) -> Objective:
        """Take the from-logits path when the model says its output is `loss.logits_activation(bare(x))`."""
        loss = losses_lib.get(loss)
        wanted = loss.logits_activation
        if wanted is not None and not loss.from_logits:
            found = model.split_final_activation()
            if found is not None and found[1] == wanted:
                return cls(found[0].apply, loss.on_logits(), activations.get(wanted), True)
        return cls(model.apply, loss, activations.linear, False)


def _tree_first(y: Any) -> Any:
    return jax.tree.leaves(y)[0]


def _per_output(fn: Callable, y_true: Any, y_pred: Any) -> jax.Array:
    """Apply a per-example function to each (label, output) pair of a multi-output model and sum."""
    if isinstance(y_pred, (list, tuple)):
        ys = y_true if isinstance(y_true, (list, tuple)) else [y_true] * len(y_pred)
        return sum(fn(t, p) for t, p in zip(ys, y_pred))
    return fn(y_true, y_pred)


class MetricSet:
    """The compiled metrics: names and per-example functions, resolved once shapes are known."""

    def __init__(self, identifiers: Sequence[Any], loss_name: str | None) -> None:
        for m in identifiers:
            metrics_lib.check_name(m)
        self.identifiers = list(identifiers)
        self.loss_name = loss_name

    def resolve(self, y_true: Any, y_pred: Any) -> list[metrics_lib.Metric]:
        t, p = _tree_first(y_true), _tree_first(y_pred)
        return [
            metrics_lib.get(m, y_true_shape=tuple(t.shape[1:]), y_pred_shape=tuple(p.shape[1:]),
                            loss_name=self.loss_name)
            for m in self.identifiers
        ]

    @property
    def names(self) -> list[str]:
        """The keys the metrics are logged under, in compile order."""
        return [m if isinstance(m, str) else getattr(m, "name", getattr(m, "__name__", "metric"))
                for m in self.identifiers]


def batch_sums(objective: Objective, metric_set: MetricSet, params: Any, state: Any, x: Any, y: Any,
               weights: jax.Array, rng: Any, training: bool) -> tuple[jax.Array, tuple[Any, dict]]:
    """Mean loss over the weighted examples (what gets differentiated) and the weighted sums to log."""
    out, new_state = objective.apply(params, state, x, rng=rng, training=training)
    per_example = _per_output(objective.loss, y, out)
    count = jnp.sum(weights)
    loss = jnp.sum(per_example * weights) / jnp.maximum(count, 1.0)
    preds = jax.tree.map(objective.to_predictions, out)
    sums = {"loss": jnp.sum(per_example * weights), "count": count}
    for metric in metric_set.resolve(y, preds):
        values = _per_output(metric, y, jax.lax.stop_gradient(preds))
        sums[metric.name] = jnp.sum(values * weights)
    return loss, (new_state, sums)


def train_batch(objective: Objective, metric_set: MetricSet, optimizer: optax.GradientTransformation,
                ts: TrainState, x: Any, y: Any, weights: jax.Array) -> tuple[TrainState, dict]:
    """One optimisation step on a (possibly padded, hence weighted) batch; returns the new state and sums."""
    rng = jax.random.fold_in(ts.rng, ts.step)
    grad_fn = jax.value_and_grad(batch_sums, argnums=2, has_aux=True)
    (_, (new_state, sums)), grads = grad_fn(objective, metric_set, ts.params, ts.state, x, y, weights, rng, True)
    updates, opt_state = optimizer.update(grads, ts.opt_state, ts.params)
    params = optax.apply_updates(ts.params, updates)
    return TrainState(params, new_state, opt_state, ts.step + 1, ts.rng), sums


def eval_batch(objective: Objective, metric_set: MetricSet, params: Any, state: Any, x: Any, y: Any,
               weights: jax.Array) -> dict:
    """Weighted loss and metric sums of a batch in inference mode."""
    _, (_, sums) = batch_sums(objective, metric_set, params, state, x, y, weights, None, False)
    return sums


def sums_to_logs(sums: dict) -> dict[str, float]:
    """Exact means from weighted sums: `{"loss": ..., "accuracy": ...}`."""
    count = max(float(sums["count"]), 1.0)
    return {k: float(v) / count for k, v in sums.items() if k != "count"}


def _as_batch(batch: Batch) -> tuple[Any, Any, jax.Array]:
    if len(batch) == 2:
        x, y = batch
        return x, y, jnp.ones((jax.tree.leaves(x)[0].shape[0],), jnp.float32)
    x, y, w = batch
    return x, y, jnp.asarray(w, jnp.float32)


def make_train_step(model: Layer, loss: Any, optimizer: Any, metrics: Sequence[Any] = (), *,
                    jit: bool = True, donate: bool = True) -> Callable[[TrainState, Batch], tuple[TrainState, dict]]:
    """`step(train_state, (x, y[, sample_weight])) -> (train_state, logs)`: forward, grad, Optax update.

    `logs` holds the batch means of the loss and metrics as device scalars (no host sync). With
    `donate=True` the old train state's buffers are reused: do not touch it after the call. A pure
    factory: it changes nothing in the process (see `host_allocator` for the CPU allocator setting).
    """
    objective = Objective.create(model, loss)
    metric_set = MetricSet(list(metrics), objective.loss.name)
    optimizer = optimizers_lib.get(optimizer)

    def step(ts: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        x, y, w = _as_batch(batch)
        ts, sums = train_batch(objective, metric_set, optimizer, ts, x, y, w)
        count = jnp.maximum(sums["count"], 1.0)
        return ts, {k: v / count for k, v in sums.items() if k != "count"}

    return jax.jit(step, donate_argnums=(0,) if donate else ()) if jit else step


def make_eval_step(model: Layer, loss: Any, metrics: Sequence[Any] = (), *, jit: bool = True
                   ) -> Callable[[Any, Any, Batch], dict]:
    """`eval_step(params, state, (x, y[, sample_weight])) -> logs` in inference mode (batch means)."""
    objective = Objective.create(model, loss)
    metric_set = MetricSet(list(metrics), objective.loss.name)

    def step(params: Any, state: Any, batch: Batch) -> dict:
        x, y, w = _as_batch(batch)
        sums = eval_batch(objective, metric_set, params, state, x, y, w)
        count = jnp.maximum(sums["count"], 1.0)
        return {k: v / count for k, v in sums.items() if k != "count"}

    return jax.jit(step) if jit else step
