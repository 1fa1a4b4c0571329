"""The compiled epoch machinery: on-device batch indices, chunks of steps, whole epochs in one dispatch.

Data lives on the device; an epoch is a `(steps, batch)` table of example indices (a permutation,
padded at the end) and a matching table of weights (0 for padding), so every step has one shape and
exact means come from weighted sums.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxnet_lite.training.state import TrainState
from jaxnet_lite.training.step import MetricSet, Objective, eval_batch, train_batch

Shard = Callable[[Any], Any]
SHUFFLE_SALT = 0x5EED


def _as_is(tree: Any) -> Any:
    return tree


def epoch_index(key: jax.Array | None, n: int, steps: int, batch_size: int, padded: int
                ) -> tuple[jax.Array, jax.Array]:
    """`(steps, padded)` example indices (shuffled when `key` is given) and weights (1 real, 0 padding).

    When `steps` batches hold fewer than `n` examples (`steps_per_epoch`), the epoch takes the first ones.
    """
    order = jnp.arange(n) if key is None else jax.random.permutation(key, n)
    used = min(n, steps * batch_size)
    flat = jnp.zeros((steps * batch_size,), jnp.int32).at[:used].set(order[:used].astype(jnp.int32))
    weight = (jnp.arange(steps * batch_size) < used).astype(jnp.float32)
    index, weight = flat.reshape(steps, batch_size), weight.reshape(steps, batch_size)
    if padded > batch_size:  # round the batch up to a multiple of the device count
        index = jnp.pad(index, ((0, 0), (0, padded - batch_size)))
        weight = jnp.pad(weight, ((0, 0), (0, padded - batch_size)))
    return index, weight


def shuffle_key(rng: jax.Array, epoch: Any) -> jax.Array:
    """The key of epoch `epoch`'s permutation: a pure function of the run's key, so resume is exact."""
    return jax.random.fold_in(jax.random.fold_in(rng, SHUFFLE_SALT), epoch)


def zero_sums(names: Sequence[str]) -> dict[str, jax.Array]:
    return {k: jnp.zeros((), jnp.float32) for k in names}


def _gather(tree: Any, idx: jax.Array, shard: Shard) -> Any:
    return shard(jax.tree.map(lambda a: jnp.take(a, idx, axis=0), tree))


def _add(sums: dict, batch: dict) -> dict:
    return {k: sums[k] + batch[k] for k in sums}


def _repeat(k: int, body: Callable, start: Any, carry: Any) -> Any:
    """`body(i, carry)` for i in start..start+k: inline for k == 1, else a `lax.fori_loop`."""
    if k == 1:
        return body(start, carry)
    return jax.lax.fori_loop(0, k, lambda j, c: body(start + j, c), carry)


def train_steps(objective: Objective, metric_set: MetricSet, optimizer: optax.GradientTransformation,
                k: int, shard: Shard, hold: Shard = _as_is) -> Callable:
    """`run(ts, sums, x, y, index, weight, start) -> (ts, sums)`: `k` steps from `start`, not yet jitted.

    `hold` pins each new train state to its layout (split params stay split, replicated ones replicated).
    """

    def run(ts: TrainState, sums: dict, x: Any, y: Any, index: jax.Array, weight: jax.Array, start: Any):
        def body(i, carry):
            ts, sums = carry
            ts, batch = train_batch(objective, metric_set, optimizer, ts, _gather(x, index[i], shard),
                                    _gather(y, index[i], shard), weight[i])
            return hold(ts), _add(sums, batch)

        return _repeat(k, body, start, (ts, sums))

    return run


def make_train_chunk(objective: Objective, metric_set: MetricSet, optimizer: optax.GradientTransformation,
                     k: int, shard: Shard, hold: Shard = _as_is) -> Callable:
    """`chunk(ts, sums, x, y, index, weight, start) -> (ts, sums)`: `k` steps in one dispatch."""
    return jax.jit(train_steps(objective, metric_set, optimizer, k, shard, hold), donate_argnums=(0, 1))


def make_train_epoch(objective: Objective, metric_set: MetricSet, optimizer: optax.GradientTransformation,
                     names: Sequence[str], n: int, steps: int, batch_size: int, padded: int, shuffle: bool,
                     shard: Shard, hold: Shard = _as_is) -> Callable:
    """`epoch(ts, x, y, epoch) -> (ts, sums)`: a whole epoch (indices, steps, sums) in one dispatch."""

    def run(ts: TrainState, x: Any, y: Any, epoch: Any):
        key = shuffle_key(ts.rng, epoch) if shuffle else None
        index, weight = epoch_index(key, n, steps, batch_size, padded)
        run_steps = train_steps(objective, metric_set, optimizer, steps, shard, hold)
        return run_steps(ts, zero_sums(names), x, y, index, weight, 0)

    return jax.jit(run, donate_argnums=(0,))


def make_train_batch(objective: Objective, metric_set: MetricSet, optimizer: optax.GradientTransformation,
                     hold: Shard = _as_is) -> Callable:
    """`step(ts, sums, x, y, weight) -> (ts, sums)` for batches that arrive from the host (streaming)."""

    def step(ts: TrainState, sums: dict, x: Any, y: Any, weight: jax.Array):
        ts, batch = train_batch(objective, metric_set, optimizer, ts, x, y, weight)
        return hold(ts), _add(sums, batch)

    return jax.jit(step, donate_argnums=(0, 1))


def eval_steps(objective: Objective, metric_set: MetricSet, k: int, shard: Shard) -> Callable:
    """`run(params, state, sums, x, y, index, weight, start) -> sums`: `k` inference steps, not yet jitted."""

    def run(params, state, sums, x, y, index, weight, start):
        def body(i, sums):
            return _add(sums, eval_batch(objective, metric_set, params, state, _gather(x, index[i], shard),
                                         _gather(y, index[i], shard), weight[i]))

        return _repeat(k, body, start, sums)

    return run


def make_eval_chunk(objective: Objective, metric_set: MetricSet, k: int, shard: Shard) -> Callable:
    """`chunk(params, state, sums, x, y, index, weight, start) -> sums`: `k` inference steps in one dispatch."""
    return jax.jit(eval_steps(objective, metric_set, k, shard), donate_argnums=(2,))


def make_eval_batch(objective: Objective, metric_set: MetricSet) -> Callable:
    """`eval(params, state, sums, x, y, weight) -> sums` for batches that arrive from the host."""

    def run(params, state, sums, x, y, weight):
        return _add(sums, eval_batch(objective, metric_set, params, state, x, y, weight))

    return jax.jit(run, donate_argnums=(2,))


def make_epoch_setup(names: Sequence[str], n: int, steps: int, batch_size: int, padded: int, shuffle: bool
                     ) -> Callable:
    """`setup(rng, epoch) -> (index, weight, zero sums)` in one dispatch, for epochs run in chunks."""

    def setup(rng: jax.Array, epoch: Any):
        key = shuffle_key(rng, epoch) if shuffle else None
        return (*epoch_index(key, n, steps, batch_size, padded), zero_sums(names))

    return jax.jit(setup)


def make_eval_all(objective: Objective, metric_set: MetricSet, names: Sequence[str], n: int, steps: int,
                  batch_size: int, padded: int, shard: Shard) -> Callable:
    """`evaluate(params, state, x, y) -> sums`: a whole evaluation in one dispatch."""

    def run(params, state, x, y):
        index, weight = epoch_index(None, n, steps, batch_size, padded)
        return eval_steps(objective, metric_set, steps, shard)(params, state, zero_sums(names), x, y, index, weight, 0)

    return jax.jit(run)
