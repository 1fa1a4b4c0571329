"""jaxnet_lite as its users run it: the Keras surface (`model.fit`) and the pure `make_train_step`.

- `JnlFit` ("jnl_fit"): `model.compile(...)` then `model.fit(x, y, batch_size, epochs)` on NumPy arrays,
  exactly the tutorial (it is `Trainer.fit` underneath: `compile` only attaches a `Trainer`);
- `JnlFitDevice` ("jnl_fit_dev"): the same on arrays put on the device once beforehand;
- `JnlStep` ("jnl_step"): `make_train_step` + `TrainState.create` in a plain Python loop over
  `jaxnet_lite.data.DeviceBatches` (the data is put on the device once; each epoch one jitted call
  permutes its indices, and each step gathers its rows inside its own program; a short last batch stays
  short, as a user would write it).

Each sets the workload's dtype policy as the global policy before building its model, as a user of
`mixed_precision.set_global_policy` does (the worker is its own process, so nothing else sees it).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import optax

import jaxnet_lite as jnl
from jaxnet_lite import mixed_precision
from jaxnet_lite.data import DeviceBatches
from jaxnet_lite.host_allocator import tune_for_backend
from benchmarks import workloads
from benchmarks.dtypes_seen import float_dtypes, matmul_dtypes
from benchmarks.reference_lstm import matmul_flops_per_example
from jaxnet_lite.layers import LSTM, Conv2D, Dense, Dropout, Embedding, Flatten, MaxPooling2D


def build_model(workload: Any) -> jnl.Sequential:
    """The workload's model (a `Workload` or its name), as the tutorial and the IMDB example write it."""
    spec = workloads.FULL.get(workload) if isinstance(workload, str) else workload
    if spec is None:
        raise ValueError(f"unknown workload {workload!r}")
    workload = spec.name
    if spec.sequence:  # examples/imdb_lstm.py
        return jnl.Sequential([Embedding(spec.vocab, 32, mask_zero=True, input_shape=spec.input_shape),
                               LSTM(spec.units), Dense(1, activation="sigmoid")])
    if workload == "cnn":
        return jnl.Sequential([
            Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)), MaxPooling2D((2, 2)),
            Conv2D(64, (3, 3), activation="relu"), MaxPooling2D((2, 2)),
            Flatten(), Dropout(0.5), Dense(10, activation="softmax"),
        ])
    if workload == "mlp":
        return jnl.Sequential([Dense(32, activation="relu", input_shape=(4,)), Dense(32, activation="relu"),
                               Dense(32, activation="relu"), Dense(3, activation="softmax")])
    if workload == "wide":
        return jnl.Sequential([Dense(1024, activation="relu", input_shape=(784,)),
                               Dense(1024, activation="relu"), Dense(10, activation="softmax")])
    raise ValueError(f"unknown workload {workload!r}")


def loss_name(workload: Any) -> str:
    """Binary cross-entropy for the one-unit sigmoid models, categorical cross-entropy for the others."""
    return "binary_crossentropy" if workload.binary else "categorical_crossentropy"


def _flops_info(model: jnl.Sequential, workload: Any, variables: Any, x: Any) -> dict:
    """The inference FLOPs per example: the summary's XLA count, or for the LSTM the count by hand that the
    reference reports too (XLA's cost analysis counts a loop body once); and the dtypes the model computes
    in (its matmul and convolution operands on the batch `x`) and keeps its params in."""
    params, state = variables
    forward = lambda p, s, xb: model.apply(p, s, xb, rng=jax.random.key(0), training=True)[0]  # noqa: E731
    dtypes = {"matmul_dtypes": matmul_dtypes(forward, params, state, x), "param_dtypes": float_dtypes(params)}
    if workload.sequence:
        infer = matmul_flops_per_example(workload.input_shape[0], workload.units)
        return {"analytic_inference_flops_per_example": infer, "analytic_train_flops_per_example": 3 * infer,
                **dtypes}
    from jaxnet_lite.models.summary import flops_per_example

    return {"jnl_inference_flops_per_example": flops_per_example(model, workload.input_shape), **dtypes}


class JnlFit:
    """`model.fit` on NumPy arrays, one call per window (so the host-to-device copy is counted)."""

    def __init__(self, workload: Any, arrays: tuple[np.ndarray, ...], seed: int = 0) -> None:
        mixed_precision.set_global_policy(workload.policy)
        self.workload = workload
        self.x, self.y, self.x_test, self.y_test = arrays
        self.model = build_model(workload)
        self.model.compile(loss=loss_name(workload), optimizer=optax.adam(1e-3), metrics=["accuracy"], seed=seed)

    def train(self, epochs: int) -> float:
        history = self.model.fit(self.x, self.y, batch_size=self.workload.batch_size, epochs=epochs, verbose=0)
        return float(history.history["loss"][-1])

    def evaluate(self, repeats: int = 1) -> tuple[float, float]:
        for _ in range(repeats):
            loss, acc = self.model.evaluate(self.x_test, self.y_test, batch_size=self.workload.batch_size,
                                            verbose=0)
        return float(loss), float(acc)

    def info(self) -> dict:
        return {**_flops_info(self.model, self.workload, self.model.variables, self.x[:2]),
                "opt_state_dtypes": float_dtypes(self.model.trainer.train_state.opt_state),
                "steps_per_execution": _resolved_spe(self.model, self.workload.steps_per_epoch)}


class JnlFitDevice(JnlFit):
    """`model.fit` on arrays the user put on the device once (`jax.device_put`): the same loop as `JnlFit`
    without its per-call host-to-device copy, so the two together show what that copy costs."""

    def __init__(self, workload: Any, arrays: tuple[np.ndarray, ...], seed: int = 0) -> None:
        super().__init__(workload, arrays, seed)
        self.x, self.y, self.x_test, self.y_test = jax.device_put((self.x, self.y, self.x_test, self.y_test))


def _resolved_spe(model: Any, steps: int) -> int:
    from jaxnet_lite.training.engine import choose_steps_per_execution

    return choose_steps_per_execution(model, steps)


class JnlStep:
    """`make_train_step` in a plain loop over `DeviceBatches`: the data on the device once, each epoch
    permuted there, and each step's rows gathered inside the step's own program (one dispatch per step).

    The pure step leaves the process alone, so this loop tunes the host allocator itself on CPU, as the
    README tells users of their own loops to do (`fit` does it for its users)."""

    def __init__(self, workload: Any, arrays: tuple[np.ndarray, ...], seed: int = 0) -> None:
        tune_for_backend(jax.default_backend())
        mixed_precision.set_global_policy(workload.policy)
        self.workload = workload
        self.batch = workload.batch_size
        x, y, x_test, y_test = arrays
        self.batches = DeviceBatches((x, y), self.batch, seed=seed + 1)
        self.x = self.batches.data[0]
        self.x_test, self.y_test = jax.device_put(x_test), jax.device_put(y_test)
        self.model = build_model(workload)
        optimizer = optax.adam(1e-3)
        self.step = jnl.make_train_step(self.model, loss_name(workload), optimizer, metrics=["accuracy"])
        self.eval_step = jnl.make_eval_step(self.model, loss_name(workload), metrics=["accuracy"])
        self.ts = jnl.TrainState.create(self.model, optimizer, seed, input_shape=workload.input_shape)
        self.epoch = 0

    def train(self, epochs: int) -> float:
        for _ in range(epochs):
            for batch in self.batches.epoch(self.epoch):
                self.ts, logs = self.step(self.ts, batch)
            self.epoch += 1
        return float(logs["loss"])  # the last batch's loss; the only host sync of the window

    def evaluate(self, repeats: int = 1) -> tuple[float, float]:
        n = len(self.x_test)
        test_batches = [(self.x_test[s:s + self.batch], self.y_test[s:s + self.batch]) for s in range(0, n, self.batch)]
        for _ in range(repeats):
            parts = [(self.eval_step(self.ts.params, self.ts.state, b), len(b[0])) for b in test_batches]
        loss = sum(float(logs["loss"]) * k for logs, k in parts) / n
        acc = sum(float(logs["accuracy"]) * k for logs, k in parts) / n
        return loss, acc

    def info(self) -> dict:
        return {**_flops_info(self.model, self.workload, (self.ts.params, self.ts.state), self.x[:2]),
                "opt_state_dtypes": float_dtypes(self.ts.opt_state)}
