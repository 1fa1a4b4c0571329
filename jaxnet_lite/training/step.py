"""The training step as pure functions a researcher can take apart.

    step = make_train_step(model, "categorical_crossentropy", optax.adam(1e-3), metrics=["accuracy"])
    train_state, logs = step(train_state, (x_batch, y_batch))      # jit-compiled, buffers donated

Internally the trainer uses the same pieces in "sums" form: a batch returns the sums of the loss and
of every metric plus the example count, so epoch means are exact whatever the batch sizes. Sample
weights reduce as Keras' `sum_over_batch_size` (`weighting.py`).
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
from jaxnet_lite.core import Layer, Masked, threefry
from jaxnet_lite.core.dtype_policy import cast_floating
from jaxnet_lite.core.layer import activity_losses
from jaxnet_lite.core.shapes import as_float
from jaxnet_lite.data.device_batches import RowBatch
from jaxnet_lite.loss_scaling import loss_scale_of, scaled_loss
from jaxnet_lite.training.state import TrainState
from jaxnet_lite.training.weighting import WeightedLabels, split_sample_weight, weighted

Batch = tuple  # (x, y) or (x, y, sample_weight)


@dataclass(frozen=True)
class Objective:
    """How a batch turns into per-example losses and predictions for one model and loss.

    `apply` is the model's apply, or (when the loss can take logits of the model's final softmax/sigmoid)
    the apply of a copy without that activation; `to_predictions` then re-applies it for the metrics.
    `penalty` (the weight regularizers) joins the loss and `constrain` follows every update, as in Keras.
    """

    apply: Callable
    loss: losses_lib.Loss
    to_predictions: Callable[[jax.Array], jax.Array]
    from_logits: bool
    loss_weights: tuple[float, ...] | None = None
    penalty: Callable[[Any], jax.Array] | None = None
    constrain: Callable[[Any], Any] | None = None

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
                return cls(found[0].apply, loss.on_logits(), activations.get(wanted), True, weights,
                           model.penalty, model.constrain)
        return cls(model.apply, loss, activations.linear, False, weights, model.penalty, model.constrain)

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
    """The compiled metrics: names and per-example functions, resolved once shapes are known.

    `weighted` are Keras' `weighted_metrics`: averaged with the sample weights, and logged under their
    own name unless a plain metric has it, then as `weighted_<name>` (Keras' rule).
    """

    def __init__(self, identifiers: Sequence[Any], loss_name: str | None, weighted: Sequence[Any] = ()) -> None:
        for m in [*identifiers, *weighted]:
            metrics_lib.check_name(m)
        self.identifiers = list(identifiers)
        self.weighted = list(weighted or ())
        self.loss_name = loss_name

    def resolve(self, y_true: Any, y_pred: Any) -> list[tuple[str, metrics_lib.Metric, bool]]:
        """`(logged name, metric, uses sample weights)` for every metric, in logged order."""
        t, p = _tree_first(y_true), _tree_first(y_pred)
        get = lambda m: metrics_lib.get(m, y_true_shape=tuple(t.shape[1:]), y_pred_shape=tuple(p.shape[1:]),
                                        loss_name=self.loss_name)  # noqa: E731
        flags = [False] * len(self.identifiers) + [True] * len(self.weighted)
        return [(name, get(m), w) for name, m, w in zip(self.names, [*self.identifiers, *self.weighted], flags)]

    def directions(self) -> dict[str, str | None]:
        """Each metric's direction ("up", "down" or None), by logged name."""
        return {name: metrics_lib.direction_of(m)
                for name, m in zip(self.names, [*self.identifiers, *self.weighted])}

    @property
    def names(self) -> list[str]:
        """The keys the metrics are logged under, in compile order (weighted metrics last)."""
        plain = [_metric_name(m) for m in self.identifiers]
        names = list(plain)
        for m in self.weighted:
            name = _metric_name(m)
            names.append(f"weighted_{name}" if name in plain else name)
        return names

    @property
    def sum_names(self) -> list[str]:
        """Every sum a batch returns: loss, example count, each metric, and the weight total of each
        weighted metric (`count/<name>`, its denominator)."""
        names = self.names
        weighted = names[len(self.identifiers):]
        return ["loss", "count", *names, *(f"count/{n}" for n in weighted)]


def _metric_name(m: Any) -> str:
    return m if isinstance(m, str) else getattr(m, "name", getattr(m, "__name__", "metric"))


def batch_sums(objective: Objective, metric_set: MetricSet, params: Any, state: Any, x: Any, y: Any,
               valid: jax.Array, rng: Any, training: bool) -> tuple[jax.Array, tuple[Any, dict]]:
    """The batch loss (what gets differentiated) and the sums to log.

    `valid` is 1 for real examples and 0 for padding; `y` may carry sample weights (`WeightedLabels`).
    The loss is Keras' `sum_over_batch_size`: sum of weighted losses over the real examples.
    """
    y, sample_weight = split_sample_weight(y)
    out, new_state = objective.apply(params, state, x, rng=rng, training=training)
    out = cast_floating(out, jnp.float32, narrow=False)  # mixed precision: loss and metrics in float32
    out, y, valid, sample_weight = steps_as_examples(out, y, valid, sample_weight)
    per_example = objective.per_example_loss(y, out)
    count = jnp.sum(valid)
    loss_weight = weighted(valid, sample_weight)
    total = jnp.sum(per_example * loss_weight)
    extra = activity_losses(new_state)  # Keras adds regularization to the loss it trains and logs
    if objective.penalty is not None:
        extra = extra + objective.penalty(params)
    total = total + extra * count
    preds = jax.tree.map(objective.to_predictions, out)
    sums = {"loss": total, "count": count}
    for name, metric, uses_weights in metric_set.resolve(y, preds):
        values = _per_output(metric, y, jax.lax.stop_gradient(preds))
        sums[name] = jnp.sum(values * (loss_weight if uses_weights else valid))
        if uses_weights:
            sums[f"count/{name}"] = jnp.sum(loss_weight)
    return total / jnp.maximum(count, 1.0), (new_state, sums)


def steps_as_examples(out: Any, y: Any, valid: jax.Array, sample_weight: jax.Array | None
                      ) -> tuple[Any, Any, jax.Array, jax.Array | None]:
    """A masked sequence output counts each real step as one example of the loss and the metrics.

    Keras weighs the loss and metrics of an output that carries a mask by that mask; here the time axis
    folds into the batch and the mask into the weights, so the loss is the mean over real steps.
    """
    if isinstance(out, (list, tuple)) and any(isinstance(o, Masked) for o in out):
        raise NotImplementedError("a model with several outputs, some of them masked, cannot be trained yet; "
                                  "end the masked branches in a layer without a mask (e.g. pooling)")
    if not isinstance(out, Masked):
        return out, y, valid, sample_weight
    values, mask = out
    batch, steps = mask.shape
    labels = jax.tree.leaves(y)
    if any(a.shape[:2] != (batch, steps) for a in labels):
        raise ValueError(f"the model's output is a masked sequence of shape {tuple(values.shape)}: labels must "
                         f"have one entry per step, shape ({batch}, {steps}, ...), got "
                         f"{[tuple(a.shape) for a in labels]}")
    fold = lambda a: a.reshape((batch * steps, *a.shape[2:]))  # noqa: E731
    step_valid = (valid[:, None] * mask.astype(valid.dtype)).reshape(-1)
    step_weight = None if sample_weight is None else jnp.repeat(sample_weight, steps)
    return fold(values), jax.tree.map(fold, y), step_valid, step_weight


def train_batch(objective: Objective, metric_set: MetricSet, optimizer: optax.GradientTransformation,
                ts: TrainState, x: Any, y: Any, weights: jax.Array) -> tuple[TrainState, dict]:
    """One optimisation step on a (possibly padded, hence weighted) batch; returns the new state and sums."""
    rng = threefry.fold_in(ts.rng, ts.step)
    # With a `LossScaleOptimizer` (float16), the loss is multiplied by its scale here and the optimizer
    # divides the gradients by it.
    loss_fn = scaled_loss(batch_sums, loss_scale_of(ts.opt_state))
    grad_fn = jax.value_and_grad(loss_fn, argnums=2, has_aux=True)
    (_, (new_state, sums)), grads = grad_fn(objective, metric_set, ts.params, ts.state, x, y, weights, rng, True)
    updates, opt_state = optimizer.update(grads, ts.opt_state, ts.params)
    params = optax.apply_updates(ts.params, updates)
    if objective.constrain is not None:
        params = objective.constrain(params)
    return TrainState(params, new_state, opt_state, ts.step + 1, ts.rng), sums


def eval_batch(objective: Objective, metric_set: MetricSet, params: Any, state: Any, x: Any, y: Any,
               weights: jax.Array) -> dict:
    """Weighted loss and metric sums of a batch in inference mode."""
    _, (_, sums) = batch_sums(objective, metric_set, params, state, x, y, weights, None, False)
    return sums


def batch_means(sums: dict) -> dict:
    """Means from sums, on the device: `{"loss": ..., "accuracy": ...}` (each weighted metric over its
    own weight total)."""
    def mean(key: str) -> jax.Array:
        total = sums.get(f"count/{key}", sums["count"])
        return sums[key] / jnp.where(total > 0, total, 1.0)  # no weight at all: 0, as Keras' divide_no_nan

    return {k: mean(k) for k in sums if not k.startswith("count")}


def _as_batch(batch: Batch) -> tuple[Any, Any, jax.Array]:
    """`(x, labels, valid)`: a `(x, y, w)` batch's weights travel with its labels; a `RowBatch` of
    device-resident data is gathered here, inside the compiled step."""
    if isinstance(batch, RowBatch):
        batch = batch.rows()
    x, y, *rest = batch
    valid = jnp.ones((jax.tree.leaves(x)[0].shape[0],), jnp.float32)
    if rest:
        y = WeightedLabels(y, jnp.asarray(rest[0], jnp.float32).reshape(-1))
    return x, y, valid


def make_train_step(model: Layer, loss: Any, optimizer: Any, metrics: Sequence[Any] = (), *,
                    loss_weights: Any = None, weighted_metrics: Sequence[Any] = (), jit: bool = True,
                    donate: bool = True) -> Callable[[TrainState, Batch], tuple[TrainState, dict]]:
    """`step(train_state, (x, y[, sample_weight])) -> (train_state, logs)`: forward, grad, Optax update.

    The batch may also be a `data.RowBatch` (from `data.DeviceBatches`): its rows are cut from data already
    on the device inside this step's own program, so a loop over them dispatches once per step.

    `logs` holds the batch means of the loss and metrics as device scalars (no host sync). With
    `donate=True` the old train state's buffers are reused: do not touch it after the call. The weights
    of a `(x, y, w)` batch weigh the loss as Keras does (sum of weighted losses over the batch size) and
    the `weighted_metrics`; plain `metrics` ignore them. A pure factory: it changes nothing in the
    process (see `host_allocator` for the CPU allocator setting).
    """
    objective = Objective.create(model, loss, loss_weights)
    metric_set = MetricSet(list(metrics), objective.loss.name, list(weighted_metrics or ()))
    optimizer = optimizers_lib.get(optimizer)

    def step(ts: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        x, y, w = _as_batch(batch)
        ts, sums = train_batch(objective, metric_set, optimizer, ts, x, y, w)
        return ts, batch_means(sums)

    return jax.jit(step, donate_argnums=(0,) if donate else ()) if jit else step


def make_eval_step(model: Layer, loss: Any, metrics: Sequence[Any] = (), *, loss_weights: Any = None,
                   weighted_metrics: Sequence[Any] = (), jit: bool = True) -> Callable[[Any, Any, Batch], dict]:
    """`eval_step(params, state, (x, y[, sample_weight]) or a RowBatch) -> logs` in inference mode (batch means)."""
    objective = Objective.create(model, loss, loss_weights)
    metric_set = MetricSet(list(metrics), objective.loss.name, list(weighted_metrics or ()))

    def step(params: Any, state: Any, batch: Batch) -> dict:
        x, y, w = _as_batch(batch)
        return batch_means(eval_batch(objective, metric_set, params, state, x, y, w))

    return jax.jit(step) if jit else step
