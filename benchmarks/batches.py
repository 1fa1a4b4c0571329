"""Device-resident batches for the plain-loop contenders (`jnl_step`, `flax_nnx`), without jaxnet_lite.

Each epoch, one jitted call permutes the device-resident data (one copy on the device); each step, one
tiny jitted call cuts its batch with `lax.dynamic_slice` (a short last batch is a second compiled size).
So the loop body is `state = step(state, next(batches))` plus ~10 us of slicing. Two alternatives were
measured and rejected on the 2-core CPU of RESULTS.md: eager indexing per step (`x[perm]` ~370 us, a
slice `x[a:b]` ~55 us, against ~140 us for the whole jitted MLP train step), and one jitted call returning
all 469 CNN batches of an epoch (19.6 s to compile, 1.5 GB peak RSS).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import jax
from jax import lax


@jax.jit
def _shuffle(key: jax.Array, epoch: jax.Array, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), x.shape[0])
    return x[perm], y[perm]


@partial(jax.jit, static_argnums=(3,))
def _slice(xs: jax.Array, ys: jax.Array, start: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    return lax.dynamic_slice_in_dim(xs, start, size), lax.dynamic_slice_in_dim(ys, start, size)


def epoch_batches(key: jax.Array, epoch: int, x: jax.Array, y: jax.Array, batch: int) -> Iterator[tuple]:
    """The epoch's shuffled `(x_batch, y_batch)` pairs, cut on the device one step at a time."""
    xs, ys = _shuffle(key, epoch, x, y)
    n = x.shape[0]
    for start in range(0, n, batch):
        yield _slice(xs, ys, start, min(batch, n - start))
