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
    """`fn(params, state, x) -> y`: the model's inference `apply`, jit-compiled (callers keep it to reuse)."""
    return jax.jit(lambda p, s, xb: model.apply(p, s, xb, training=False)[0])


def predict_arrays(fn: Any, params: Any, state: Any, x: Any, batch_size: int = 32, verbose: Any = "auto") -> Any:
    """`fn` (from `inference_fn`) over `x` in batches; returns NumPy arrays (a pytree for multi-output)."""
    n = num_examples(x)
    batch_size = min(int(batch_size or 32), n)
    steps = math.ceil(n / batch_size)
    bar = Progbar(steps, resolve_verbose(verbose))
    outputs = []
    for i in range(steps):
        xb = jax.tree.map(lambda a: a[i * batch_size:(i + 1) * batch_size], x)
        real = num_examples(xb)
        y = fn(params, state, pad_to(xb, batch_size))
        outputs.append(jax.tree.map(lambda a: a[:real], y))
        bar.update(i + 1, finalize=i + 1 == steps)
    return jax.tree.map(lambda *parts: np.concatenate([np.asarray(p) for p in parts]), *outputs)
