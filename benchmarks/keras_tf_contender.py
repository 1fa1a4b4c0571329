"""Keras 3 on its TensorFlow backend ("keras_tf"): the same tutorial code as `keras_jax`, on TensorFlow.

Optional: needs `tensorflow-cpu` (or `tensorflow`) next to keras; skipped as "not installed" otherwise.
The worker sets `KERAS_BACKEND=tensorflow` in its own process (the contender's `env`) before this module
imports keras; it is set here too, so the module also works on its own. Keras keeps its defaults: on a
CPU-only machine `jit_compile="auto"` resolves to no XLA, so this is TensorFlow graph mode (oneDNN
kernels) with Keras' tf.data-style host batching, which is what a Keras user on TensorFlow gets.
The worker process also imports JAX (for `jax.devices()`), so its RSS includes both runtimes.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up banner out of the worker's stderr
import keras  # noqa: E402, F401  (first, on the TensorFlow backend)
import tensorflow as tf  # noqa: E402

from benchmarks.keras_contender import KerasJax  # noqa: E402  (same models, fit and evaluate)


class KerasTf(KerasJax):
    """`model.compile` + `model.fit(x, y, batch_size, epochs)` + `model.evaluate`, Keras 3 / TensorFlow."""

    backend = "tensorflow"

    def info(self) -> dict:
        return {**super().info(), "tensorflow_version": tf.__version__,
                "jit_compile": bool(getattr(self.model, "jit_compile", False))}
