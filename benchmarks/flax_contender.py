"""Flax NNX ("flax_nnx") in the style of Flax's MNIST example.

As in that example: an `nnx.Module`, `nnx.Optimizer(model, optax.adam(...), wrt=nnx.Param)`, an
`nnx.MultiMetric` of accuracy and average loss updated inside an `@nnx.jit` train step, and
`model.train()` / `model.eval()` modes. The example's data loop feeds tf.data batches; here the batches
are cut from device-resident data permuted per epoch (`batches.py`), the same loop as `jnl_step`, so
the comparison is about the framework's step and not the input pipeline. Pooling is `nnx.max_pool`
(`lax.reduce_window`), what a Flax user writes for the tutorial's MaxPooling2D.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import flax
import jax
import numpy as np
import optax
from flax import nnx

from benchmarks.batches import epoch_batches


class CNN(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv1 = nnx.Conv(1, 32, kernel_size=(3, 3), padding="VALID", rngs=rngs)
        self.conv2 = nnx.Conv(32, 64, kernel_size=(3, 3), padding="VALID", rngs=rngs)
        self.pool = partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2))
        self.dropout = nnx.Dropout(0.5, rngs=rngs)
        self.linear = nnx.Linear(1600, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.pool(nnx.relu(self.conv1(x)))
        x = self.pool(nnx.relu(self.conv2(x)))
        x = self.dropout(x.reshape(x.shape[0], -1))
        return self.linear(x)


class MLP(nnx.Module):
    def __init__(self, sizes: tuple[int, ...], rngs: nnx.Rngs) -> None:
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[:-1]:
            x = nnx.relu(layer(x))
        return self.layers[-1](x)


def _loss_fn(model: nnx.Module, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits = model(x)
    return optax.softmax_cross_entropy(logits, y).mean(), logits


@nnx.jit
def train_step(model: nnx.Module, optimizer: nnx.Optimizer, metrics: nnx.MultiMetric, x, y) -> None:
    grad_fn = nnx.value_and_grad(_loss_fn, has_aux=True)
    (loss, logits), grads = grad_fn(model, x, y)
    metrics.update(loss=loss, logits=logits, labels=y.argmax(-1))
    optimizer.update(model, grads)


@nnx.jit
def eval_step(model: nnx.Module, metrics: nnx.MultiMetric, x, y) -> None:
    loss, logits = _loss_fn(model, x, y)
    metrics.update(loss=loss, logits=logits, labels=y.argmax(-1))


class FlaxNnx:
    """The Flax MNIST example's loop around the tutorial's models."""

    def __init__(self, workload: Any, arrays: tuple[np.ndarray, ...], seed: int = 0) -> None:
        from benchmarks.reference_jax import MLP_SIZES

        self.batch = workload.batch_size
        x, y, x_test, y_test = arrays
        self.x, self.y = jax.device_put(x), jax.device_put(y)
        self.x_test, self.y_test = jax.device_put(x_test), jax.device_put(y_test)
        rngs = nnx.Rngs(seed)
        self.model = CNN(rngs) if workload.name == "cnn" else MLP(MLP_SIZES[workload.name], rngs)
        self.optimizer = nnx.Optimizer(self.model, optax.adam(1e-3), wrt=nnx.Param)
        self.metrics = nnx.MultiMetric(accuracy=nnx.metrics.Accuracy(), loss=nnx.metrics.Average("loss"))
        self.key = jax.random.key(seed + 1)
        self.epoch = 0

    def train(self, epochs: int) -> float:
        self.model.train()
        for _ in range(epochs):
            self.metrics.reset()
            for xb, yb in epoch_batches(self.key, self.epoch, self.x, self.y, self.batch):
                train_step(self.model, self.optimizer, self.metrics, xb, yb)
            self.epoch += 1
        return float(self.metrics.compute()["loss"])

    def evaluate(self, repeats: int = 1) -> tuple[float, float]:
        self.model.eval()
        n = len(self.x_test)
        test_batches = [(self.x_test[s:s + self.batch], self.y_test[s:s + self.batch]) for s in range(0, n, self.batch)]
        for _ in range(repeats):
            self.metrics.reset()
            for xb, yb in test_batches:
                eval_step(self.model, self.metrics, xb, yb)
        logs = self.metrics.compute()
        return float(logs["loss"]), float(logs["accuracy"])

    def info(self) -> dict:
        return {"flax_version": flax.__version__}
