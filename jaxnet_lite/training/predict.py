"""Batched inference: pad the last batch so one compiled shape serves every batch."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet_lite.core import Layer
from jaxnet_lite.training.progress import Progbar, resolve_verbose


def num_examples(x: Any) -> int:
    leaves = jax.tree.leaves(x)
    if not leaves:
        raise ValueError("x holds no arrays")
    return int(np.shape(leaves[0])[0])


def pad_to(x: Any, size: int) -> Any:
    """Pad every leaf along axis 0 to `size` rows by repeating the first row (masked out later)."""
    def pad(a):
        a = jnp.asarray(a)
        extra = size - a.shape[0]
        if extra <= 0:
            return a
        return jnp.concatenate([a, jnp.repeat(a[:1], extra, axis=0)], axis=0)

    return jax.tree.map(pad, x)


def inference_fn(model: Layer) -> Any:
    """`fn(params, state, x_all, start, size) -> y`: inference `apply` on rows `start:start + size` of `x_all`.

    Jit-compiled, with `size` static: the batch is cut on the device, so a batched predict costs one
    dispatch per batch and no eager slicing or padding (callers keep `fn` to reuse its compilation).
    """

    def run(params, state, x_all, start, size):
        xb = jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, start, size, axis=0), x_all)
        return model.apply(params, state, xb, training=False)[0]

    return jax.jit(run, static_argnums=(4,))


def _pad_rows(a: Any, rows: int) -> Any:
    """`a` with `rows` rows: extra rows repeat the last one (their outputs are dropped), in `a`'s own library."""
    extra = rows - a.shape[0]
    if extra <= 0:
        return a
    xp = np if isinstance(a, np.ndarray) else jnp
    return xp.concatenate([a, xp.repeat(a[-1:], extra, axis=0)], axis=0)


def predict_arrays(fn: Any, params: Any, state: Any, x: Any, batch_size: int = 32, verbose: Any = "auto") -> Any:
    """`fn` (from `inference_fn`) over `x` in batches; returns NumPy arrays (a pytree for multi-output).

    `x` goes to the device once, padded to whole batches; outputs come back in one transfer at the end.
    """
    n = num_examples(x)
    batch_size = min(int(batch_size or 32), n)
    steps = math.ceil(n / batch_size)
    bar = Progbar(steps, resolve_verbose(verbose))
    x_all = jax.device_put(jax.tree.map(lambda a: _pad_rows(a if isinstance(a, jax.Array) else np.asarray(a),
                                                             steps * batch_size), x))
    outputs = []
    for i in range(steps):
        outputs.append(fn(params, state, x_all, i * batch_size, batch_size))
        bar.update(i + 1, finalize=i + 1 == steps)
    host = jax.device_get(outputs)
    return jax.tree.map(lambda *parts: np.concatenate(parts)[:n], *host)
