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
from jaxnet_lite.core.shapes import as_float
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
    loss_weights: tuple[float, ...] | None = None

    @classmethod
    def create(cls, model: Layer, loss: Any, loss_weights: Any = None) -> Objective:
        """Take the from-logits path when the model says its output is `loss.logits_activation(bare(x))`.

        `loss_weights` (Keras' compile argument) scales each output's loss: a number, a list in output
        order, or a dict keyed by output name.
        """
        loss = losses_lib.get(loss)
        weights = resolve_loss_weights(model, loss_weights)
        wanted = loss.logits_activation
        if wanted is not None and not loss.from_logits:
            found = model.split_final_activation()
            if found is not None and found[1] == wanted:
                return cls(found[0].apply, loss.on_logits(), activations.get(wanted), True, weights)
        return cls(model.apply, loss, activations.linear, False, weights)

    def per_example_loss(self, y_true: Any, y_pred: Any) -> jax.Array:
        """The loss of each example, summed over the outputs (each scaled by its loss weight)."""
        return _per_output(self.loss, y_true, y_pred, self.loss_weights)


def resolve_loss_weights(model: Layer, loss_weights: Any) -> tuple[float, ...] | None:
    """`loss_weights` as one float per output, in output order (None: all 1)."""
    if loss_weights is None:
        return None
    names = model.output_names()
    count = len(names) if names is not None else None
    if isinstance(loss_weights, dict):
        if names is None:
            raise ValueError(f"loss_weights: {model.describe()} has no named outputs; pass a list in output order")
        unknown = sorted(set(loss_weights) - set(names))
        if unknown:
            raise ValueError(f"loss_weights names {unknown}, which are not outputs of {model.describe()} "
                             f"(its outputs: {names})")
        weights = tuple(as_float(loss_weights.get(n, 1.0)) for n in names)
        if None in weights:
            raise ValueError(f"loss_weights must hold finite numbers, got {loss_weights!r}")
        return weights
    if as_float(loss_weights) is not None:
        return (as_float(loss_weights),) * (count or 1)
    if isinstance(loss_weights, (list, tuple)) and all(as_float(w) is not None for w in loss_weights):
        if count is not None and len(loss_weights) != count:
            raise ValueError(f"loss_weights has {len(loss_weights)} entries but {model.describe()} has {count} "
                             f"outputs {names}")
        return tuple(as_float(w) for w in loss_weights)
    raise ValueError(f"loss_weights must be a number, a list of numbers or a dict of them, got {loss_weights!r}")


def _tree_first(y: Any) -> Any:
    return jax.tree.leaves(y)[0]


def _per_output(fn: Callable, y_true: Any, y_pred: Any, weights: Sequence[float] | None = None) -> jax.Array:
    """Apply a per-example function to each (label, output) pair of a multi-output model and sum,
    each term scaled by its weight when `weights` are given."""
    if isinstance(y_pred, (list, tuple)):
        ys = y_true if isinstance(y_true, (list, tuple)) else [y_true] * len(y_pred)
        terms = [fn(t, p) for t, p in zip(ys, y_pred)]
    else:
        terms = [fn(y_true, y_pred)]
    if weights is not None:
        if len(weights) != len(terms):
            raise ValueError(f"loss_weights has {len(weights)} entries but the model gave {len(terms)} outputs")
        terms = [w * t for w, t in zip(weights, terms)]
    return sum(terms[1:], terms[0])


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

    def directions(self) -> dict[str, str | None]:
        """Each metric's direction ("up", "down" or None), by logged name."""
        return {name: metrics_lib.direction_of(m) for name, m in zip(self.names, self.identifiers)}

    @property
    def names(self) -> list[str]:
        """The keys the metrics are logged under, in compile order."""
        return [m if isinstance(m, str) else getattr(m, "name", getattr(m, "__name__", "metric"))
                for m in self.identifiers]


def batch_sums(objective: Objective, metric_set: MetricSet, params: Any, state: Any, x: Any, y: Any,
               weights: jax.Array, rng: Any, training: bool) -> tuple[jax.Array, tuple[Any, dict]]:
    """Mean loss over the weighted examples (what gets differentiated) and the weighted sums to log."""
    out, new_state = objective.apply(params, state, x, rng=rng, training=training)
    per_example = objective.per_example_loss(y, out)
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


def batch_means(sums: dict) -> dict:
    """Means from weighted sums, on the device: `{"loss": ..., "accuracy": ...}`."""
    count = jnp.maximum(sums["count"], 1.0)
    return {k: v / count for k, v in sums.items() if k != "count"}


def _as_batch(batch: Batch) -> tuple[Any, Any, jax.Array]:
    if len(batch) == 2:
        x, y = batch
        return x, y, jnp.ones((jax.tree.leaves(x)[0].shape[0],), jnp.float32)
    x, y, w = batch
    return x, y, jnp.asarray(w, jnp.float32)


def make_train_step(model: Layer, loss: Any, optimizer: Any, metrics: Sequence[Any] = (), *,
                    loss_weights: Any = None, jit: bool = True, donate: bool = True
                    ) -> Callable[[TrainState, Batch], tuple[TrainState, dict]]:
    """`step(train_state, (x, y[, sample_weight])) -> (train_state, logs)`: forward, grad, Optax update.

    `logs` holds the batch means of the loss and metrics as device scalars (no host sync). With
    `donate=True` the old train state's buffers are reused: do not touch it after the call. The weights
    of a `(x, y, w)` batch weigh each example in the loss and in the metrics (0 masks it out). A pure
    factory: it changes nothing in the process (see `host_allocator` for the CPU allocator setting).
    """
    objective = Objective.create(model, loss, loss_weights)
    metric_set = MetricSet(list(metrics), objective.loss.name)
    optimizer = optimizers_lib.get(optimizer)

    def step(ts: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        x, y, w = _as_batch(batch)
        ts, sums = train_batch(objective, metric_set, optimizer, ts, x, y, w)
        return ts, batch_means(sums)

    return jax.jit(step, donate_argnums=(0,) if donate else ()) if jit else step


def make_eval_step(model: Layer, loss: Any, metrics: Sequence[Any] = (), *, loss_weights: Any = None,
                   jit: bool = True) -> Callable[[Any, Any, Batch], dict]:
    """`eval_step(params, state, (x, y[, sample_weight])) -> logs` in inference mode (batch means)."""
    objective = Objective.create(model, loss, loss_weights)
    metric_set = MetricSet(list(metrics), objective.loss.name)

    def step(params: Any, state: Any, batch: Batch) -> dict:
        x, y, w = _as_batch(batch)
        return batch_means(eval_batch(objective, metric_set, params, state, x, y, w))

    return jax.jit(step) if jit else step
