"""The contenders: what each one is, where its code lives, and what it needs installed.

Every contender is a class built as `Cls(workload, arrays, seed)` with three methods, each blocking until
the device is done (the worker times them):

- `train(epochs) -> float`: train that many epochs over the workload's training set, return a training loss;
- `evaluate(repeats) -> (loss, accuracy)`: that many passes over the test set in inference mode;
- `info() -> dict`: optional facts (FLOP counts, versions, and under a mixed policy the dtypes it saw).

A contender runs under the workload's dtype policy (`workload.policy`) when it lists that policy in
`policies`; under another it is skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util

REFERENCE = "ref_jit"  # ratios are to this contender, measured in the same run
F32_AND_BF16 = ("float32", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class Contender:
    name: str
    module: str
    cls: str
    description: str
    requires: tuple[str, ...] = ()  # optional packages (the `bench` extra); skipped when absent
    cpu_skip: tuple[str, ...] = ()  # workloads left out by default on CPU (too slow to be worth the wait)
    no_model: tuple[str, ...] = ()  # workloads this contender has no model for (always skipped)
    env: tuple[tuple[str, str], ...] = ()  # set in the worker's environment before the module is imported
    policies: tuple[str, ...] = ("float32",)  # the dtype policies it has a model for (workloads.POLICIES)

    def missing(self) -> list[str]:
        """Required packages that are not importable (checked without importing them)."""
        return [p for p in self.requires if importlib.util.find_spec(p) is None]

    def load(self) -> type:
        return getattr(importlib.import_module(self.module), self.cls)


ALL = {c.name: c for c in [
    Contender("jnl_fit", "benchmarks.jnl_contenders", "JnlFit", "jaxnet_lite model.fit (Trainer.fit) on NumPy",
              policies=F32_AND_BF16),
    Contender("jnl_fit_dev", "benchmarks.jnl_contenders", "JnlFitDevice",
              "jaxnet_lite model.fit on arrays already on the device", policies=F32_AND_BF16),
    Contender("jnl_step", "benchmarks.jnl_contenders", "JnlStep", "jaxnet_lite make_train_step, plain loop",
              policies=F32_AND_BF16),
    Contender("ref_jit", "benchmarks.reference_jax", "ReferenceJit", "hand-written JAX+Optax, jit per step",
              policies=F32_AND_BF16),
    # On XLA:CPU conv gradients inside a loop body run slowly (0.12-0.13x ref_jit, benchmarks/RESULTS.md), so an
    # epoch of the CNN in lax.scan takes minutes; it stays available with --contenders ref_scan and runs elsewhere.
    Contender("ref_scan", "benchmarks.reference_jax", "ReferenceScan", "hand-written JAX+Optax, lax.scan per epoch",
              cpu_skip=("cnn",), policies=F32_AND_BF16),
    Contender("keras_jax", "benchmarks.keras_contender", "KerasJax", "Keras 3, JAX backend, model.fit",
              requires=("keras",), policies=F32_AND_BF16),
    Contender("flax_nnx", "benchmarks.flax_contender", "FlaxNnx", "Flax NNX, MNIST-example style", requires=("flax",),
              no_model=("lstm", "lstm_wide")),
    # Peers outside JAX (optional, not in the `bench` extra): pip install tensorflow-cpu / torch==2.13.0.
    Contender("keras_tf", "benchmarks.keras_tf_contender", "KerasTf", "Keras 3, TensorFlow backend, model.fit",
              requires=("keras", "tensorflow"), env=(("KERAS_BACKEND", "tensorflow"),), policies=F32_AND_BF16),
    Contender("torch_eager", "benchmarks.torch_contender", "TorchEager", "PyTorch eager, plain training loop",
              requires=("torch",)),
]}
