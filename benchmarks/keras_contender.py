"""Keras 3 on its JAX backend ("keras_jax"): the tutorial as written for Keras, `model.fit` on NumPy.

The worker sets `KERAS_BACKEND=jax` in its environment before this module imports keras. Keras keeps
its own defaults (its `MaxPooling2D` is `lax.reduce_window`, `steps_per_execution=1`, host-side
shuffling and batching): that is what a Keras user gets. The `lstm` workloads are Keras' IMDB recipe
(`examples/imdb_lstm.py`): `Embedding(500, 32, mask_zero=True)`, `LSTM(units)`, `Dense(1, sigmoid)`,
binary cross-entropy; on JAX Keras runs its LSTM as a `lax.scan` (cuDNN only on NVIDIA GPUs). Under a
mixed workload policy it calls `keras.mixed_precision.set_global_policy` before building the model, as
Keras' mixed-precision guide does.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402
from keras import layers  # noqa: E402


def build_model(workload: Any) -> keras.Sequential:
    """The workload's model (a `Workload` or the name of an image/table workload), as Keras users write it."""
    if getattr(workload, "sequence", False):
        return keras.Sequential([keras.Input(workload.input_shape, dtype="int32"),
                                 layers.Embedding(workload.vocab, 32, mask_zero=True), layers.LSTM(workload.units),
                                 layers.Dense(1, activation="sigmoid")])
    workload = getattr(workload, "name", workload)
    if workload == "cnn":
        return keras.Sequential([
            keras.Input((28, 28, 1)), layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
            layers.Flatten(), layers.Dropout(0.5), layers.Dense(10, activation="softmax"),
        ])
    if workload == "mlp":
        return keras.Sequential([keras.Input((4,)), layers.Dense(32, activation="relu"),
                                 layers.Dense(32, activation="relu"), layers.Dense(32, activation="relu"),
                                 layers.Dense(3, activation="softmax")])
    if workload == "wide":
        return keras.Sequential([keras.Input((784,)), layers.Dense(1024, activation="relu"),
                                 layers.Dense(1024, activation="relu"), layers.Dense(10, activation="softmax")])
    raise ValueError(f"unknown workload {workload!r}")


class KerasJax:
    """`model.compile` + `model.fit(x, y, batch_size, epochs)` + `model.evaluate`, Keras 3 / JAX."""

    backend = "jax"

    def __init__(self, workload: Any, arrays: tuple[np.ndarray, ...], seed: int = 0) -> None:
        if keras.backend.backend() != self.backend:
            raise RuntimeError(f"Keras backend is {keras.backend.backend()!r}, not {self.backend!r} "
                               "(keras was imported before KERAS_BACKEND was set)")
        keras.utils.set_random_seed(seed)
        keras.mixed_precision.set_global_policy(workload.policy)
        self.workload = workload
        self.x, self.y, self.x_test, self.y_test = arrays
        self.model = build_model(workload)
        loss = "binary_crossentropy" if workload.binary else "categorical_crossentropy"
        self.model.compile(loss=loss, optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])

    def train(self, epochs: int) -> float:
        history = self.model.fit(self.x, self.y, batch_size=self.workload.batch_size, epochs=epochs, verbose=0)
        return float(history.history["loss"][-1])

    def evaluate(self, repeats: int = 1) -> tuple[float, float]:
        for _ in range(repeats):
            loss, acc = self.model.evaluate(self.x_test, self.y_test, batch_size=self.workload.batch_size, verbose=0)
        return float(loss), float(acc)

    def info(self) -> dict:
        """Keras' version, and the dtypes its layers compute in and keep their weights in."""
        return {"keras_version": keras.__version__,
                "compute_dtypes": sorted({layer.compute_dtype for layer in self.model.layers if layer.weights}),
                "param_dtypes": sorted({str(v.dtype) for v in self.model.weights})}
