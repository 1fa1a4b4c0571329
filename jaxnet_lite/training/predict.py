"""Batched inference with one compiled batch shape (the last window overlaps instead of being padded)."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet_lite.core import Layer, strip_mask
from jaxnet_lite.core.dtype_policy import cast_floating
from jaxnet_lite.training.progress import Progbar, resolve_verbose


def num_examples(x: Any) -> int:
    """Rows of the first array in `x` (its sample axis)."""
    leaves = jax.tree.leaves(x)
    if not leaves:
        raise ValueError("x holds no arrays")
    return int(np.shape(leaves[0])[0])


def check_inputs(x: Any, where: str = "predict") -> int:
    """The example count of model inputs `x`; a clear error when `x` is not arrays with a sample axis."""
    flat = jax.tree_util.tree_flatten_with_path(x)[0]
    if not flat:
        raise ValueError(f"{where}: x holds no arrays, got {type(x).__name__}")
    for path, leaf in flat:
        if isinstance(leaf, (str, bytes)) or np.ndim(leaf) == 0:
            raise ValueError(f"{where}: x{jax.tree_util.keystr(path)} must be an array whose first axis indexes "
                             f"examples, got {type(leaf).__name__} of shape {np.shape(leaf)}")
    return num_examples(x)


def inference_fn(model: Layer) -> Any:
    """`fn(params, state, x, start, size) -> y`: inference `apply` on rows `start:start + size` of `x`.

    Jit-compiled with `size` static, so arrays already on the device are cut inside the compiled call
    (one dispatch per batch, no eager slicing); a host batch is passed whole with `start=0`. Callers
    keep `fn` to reuse its compilation.
    """

    def run(params, state, x, start, size):
        xb = jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, start, size, axis=0), x)
        y = strip_mask(model.apply(params, state, xb, training=False)[0])
        return cast_floating(y, jnp.float32, narrow=False)  # mixed precision: float32 NumPy out

    return jax.jit(run, static_argnums=(4,))


def predict_arrays(fn: Any, params: Any, state: Any, x: Any, batch_size: int = 32, verbose: Any = "auto",
                   callbacks: Any = None) -> Any:
    """`fn` (from `inference_fn`) over `x` in batches; returns NumPy arrays (a pytree for multi-output).

    Arrays already on the device are cut there; NumPy arrays go over one batch at a time, so memory stays
    one batch. The last window ends at row `n` (overlapping the one before) instead of being padded, so
    every call has one shape and no eager slicing or padding runs; outputs come back in one transfer.
    `callbacks` (a `CallbackList`) that override a predict batch hook get it per batch, with the batch's
    outputs (on the device) as `logs["outputs"]`, as in Keras.
    """
    hooks = callbacks is not None and callbacks.wants_batch_hooks("predict")
    n = check_inputs(x)
    if n == 0:
        raise ValueError(f"predict: x holds no examples (shapes {[np.shape(a) for a in jax.tree.leaves(x)]})")
    batch_size = min(int(batch_size or 32), n)
    steps = math.ceil(n / batch_size)
    bar = Progbar(steps, resolve_verbose(verbose))
    on_device = all(isinstance(a, jax.Array) for a in jax.tree.leaves(x))
    if not on_device:
        x = jax.tree.map(np.asarray, x)
    outputs = []
    for i in range(steps):
        start = min(i * batch_size, n - batch_size)
        if hooks:
            callbacks.on_predict_batch_begin(i)
        if on_device:
            outputs.append(fn(params, state, x, start, batch_size))
        else:
            outputs.append(fn(params, state, jax.tree.map(lambda a: a[start:start + batch_size], x), 0, batch_size))
        if hooks:
            callbacks.on_predict_batch_end(i, {"outputs": outputs[-1]})
        bar.update(i + 1, finalize=i + 1 == steps)
    host = jax.device_get(outputs)
    overlap = steps * batch_size - n  # rows of the last window that the window before already gave
    host[-1] = jax.tree.map(lambda a: a[overlap:], host[-1])
    return jax.tree.map(lambda *parts: np.concatenate(parts), *host)
