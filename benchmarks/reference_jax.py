"""The hand-written JAX + Optax reference: what a careful user writes without any framework.

It deliberately does NOT import jaxnet_lite. Everything docs/design.md says makes JAX fast is done by hand:
the data is put on the device once, shuffled there each epoch (one permutation per epoch), and each
batch is cut on the device inside the jitted step (`lax.dynamic_slice` of the index, then a gather);
the step (forward, `jax.value_and_grad`, Adam, loss/accuracy sums) is one `jax.jit` with the state
donated; the loss is computed from logits; the CNN's 2x2 max pooling is crop + reshape + `max`, whose
gradient is far cheaper on XLA:CPU than `lax.reduce_window`'s. A short last batch is padded and
masked so a single compiled shape serves every step. The `lstm` workloads' model (embedding, masked
LSTM with the input projection hoisted out of its `lax.scan`, sigmoid folded into the loss) is in
`reference_lstm.py`. Under the workload's "mixed_bfloat16" policy the model casts its params and inputs
to bfloat16 and its logits back to float32 (`with_compute_dtype`): params, gradients, Adam's state, the
softmax and the loss stay float32, as a Keras mixed policy computes. Two variants:

- `ReferenceJit` ("ref_jit"): one jitted call per step, dispatched from a Python loop;
- `ReferenceScan` ("ref_scan"): one jitted call per epoch, `lax.scan` over its steps (on CPU several times
  faster than per-step calls for the tutorial MLP, but slower for the CNN: benchmarks/RESULTS.md).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from benchmarks import reference_lstm
from benchmarks.dtypes_seen import float_dtypes, matmul_dtypes

# -- models as pure functions ----------------------------------------------------------------------


def _glorot(key: jax.Array, shape: tuple[int, ...], fan_in: int, fan_out: int) -> jax.Array:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return jax.random.uniform(key, shape, jnp.float32, -limit, limit)


def init_cnn(key: jax.Array) -> dict:
    """Conv 3x3x1x32, conv 3x3x32x64, dense 1600x10 (Keras' glorot-uniform kernels, zero biases)."""
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "conv1": {"w": _glorot(k1, (3, 3, 1, 32), 9, 9 * 32), "b": jnp.zeros(32)},
        "conv2": {"w": _glorot(k2, (3, 3, 32, 64), 9 * 32, 9 * 64), "b": jnp.zeros(64)},
        "dense": {"w": _glorot(k3, (1600, 10), 1600, 10), "b": jnp.zeros(10)},
    }


def _conv(x: jax.Array, p: dict) -> jax.Array:
    y = lax.conv_general_dilated(x, p["w"], (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + p["b"]


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2/stride-2 max pooling as crop + reshape + max (same values as `reduce_window`, cheaper gradient)."""
    b, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, : 2 * h2, : 2 * w2].reshape(b, h2, 2, w2, 2, c).max(axis=(2, 4))


def _dropout(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def apply_cnn(params: dict, x: jax.Array, key: jax.Array | None, training: bool) -> jax.Array:
    """Logits of the tutorial CNN (its final softmax is folded into the loss)."""
    x = max_pool_2x2(jax.nn.relu(_conv(x, params["conv1"])))
    x = max_pool_2x2(jax.nn.relu(_conv(x, params["conv2"])))
    x = x.reshape(x.shape[0], -1)
    if training:
        x = _dropout(x, 0.5, key)
    return x @ params["dense"]["w"] + params["dense"]["b"]


def init_mlp(key: jax.Array, sizes: tuple[int, ...]) -> dict:
    keys = jax.random.split(key, len(sizes) - 1)
    return {f"dense{i}": {"w": _glorot(k, (a, b), a, b), "b": jnp.zeros(b)}
            for i, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:]))}


def apply_mlp(params: dict, x: jax.Array, key: jax.Array | None = None, training: bool = False) -> jax.Array:
    """Logits of a relu MLP (no dropout, so `key` and `training` are unused)."""
    n = len(params)
    for i in range(n):
        x = x @ params[f"dense{i}"]["w"] + params[f"dense{i}"]["b"]
        if i < n - 1:
            x = jax.nn.relu(x)
    return x


MLP_SIZES = {"mlp": (4, 32, 32, 32, 3), "wide": (784, 1024, 1024, 10)}


def with_compute_dtype(apply: Any, dtype: Any) -> Any:
    """`apply` computing in `dtype`: floating params and inputs cast down to it, the logits cast up to float32
    (so the softmax and the loss run in float32); the float32 params are what is differentiated."""
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float32:
        return apply

    def down(a: jax.Array) -> jax.Array:
        return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a

    def mixed(params: Any, x: jax.Array, key: jax.Array | None = None, training: bool = False) -> jax.Array:
        return apply(jax.tree.map(down, params), down(x), key, training).astype(jnp.float32)

    return mixed


def model_for(workload: Any) -> tuple[Any, Any]:
    """`(init(key), apply(params, x, key, training))` of a workload's model (a `Workload`, or the name of
    one of the image/table workloads), computing in the workload's compute dtype (float32 by default)."""
    name = getattr(workload, "name", workload)
    if getattr(workload, "sequence", False):
        init, apply = (lambda key: reference_lstm.init_lstm(key, workload.vocab, workload.units)), \
            reference_lstm.apply_lstm
    elif name == "cnn":
        init, apply = init_cnn, apply_cnn
    else:
        sizes = MLP_SIZES[name]
        init, apply = (lambda key: init_mlp(key, sizes)), apply_mlp
    return init, with_compute_dtype(apply, getattr(workload, "compute_dtype", "float32"))


def losses_for(workload: Any) -> tuple[Any, Any]:
    """`(per_example_loss(logits, y), correct(logits, y))`, both from logits: softmax cross-entropy and
    argmax agreement on one-hot labels, or sigmoid cross-entropy and `logit > 0` on 0/1 labels (n, 1)."""
    if getattr(workload, "binary", False):
        return (lambda logits, y: optax.sigmoid_binary_cross_entropy(logits[:, 0], y[:, 0]),
                lambda logits, y: ((logits[:, 0] > 0) == (y[:, 0] > 0.5)))
    return optax.softmax_cross_entropy, lambda logits, y: jnp.argmax(logits, -1) == jnp.argmax(y, -1)


# -- the trainer a careful user writes -------------------------------------------------------------


class ReferenceJit:
    """One `jax.jit` step per batch from a Python loop; loss/accuracy sums stay on the device."""

    def __init__(self, workload: Any, arrays: tuple[np.ndarray, ...], seed: int = 0) -> None:
        self.batch = workload.batch_size
        self.workload = workload
        init, self.apply = model_for(workload)
        self.loss_fn, self.correct_fn = losses_for(workload)
        x_train, y_train, x_test, y_test = arrays
        self.x, self.y = jax.device_put(x_train), jax.device_put(y_train)  # once, before any timing
        self.x_test, self.y_test = jax.device_put(x_test), jax.device_put(y_test)
        self.n, self.n_test = len(x_train), len(x_test)
        self.steps, self.test_steps = -(-self.n // self.batch), -(-self.n_test // self.batch)
        key = jax.random.key(seed)
        init_key, self.key = jax.random.split(key)
        self.tx = optax.adam(1e-3)
        params = init(init_key)
        self.carry = (params, self.tx.init(params), jnp.zeros((), jnp.int32), jnp.zeros(3))
        self.epoch = 0
        self._train_step = jax.jit(self._step, donate_argnums=(0,))
        self._eval_step = jax.jit(self._eval, donate_argnums=(1,))
        self._index = jax.jit(self._epoch_index, static_argnums=(1, 2))

    # pure pieces
    def _epoch_index(self, key: jax.Array | None, n: int, steps: int) -> tuple[jax.Array, jax.Array]:
        """Shuffled example indices padded to whole batches, and 1/0 weights marking the padding."""
        order = jnp.arange(n, dtype=jnp.int32) if key is None else jax.random.permutation(key, n).astype(jnp.int32)
        pad = steps * self.batch - n
        return jnp.pad(order, (0, pad)), jnp.pad(jnp.ones(n, jnp.float32), (0, pad))

    def _batch(self, x_all, y_all, index, weight, i):
        idx = lax.dynamic_slice_in_dim(index, i * self.batch, self.batch)
        w = lax.dynamic_slice_in_dim(weight, i * self.batch, self.batch)
        return jnp.take(x_all, idx, axis=0), jnp.take(y_all, idx, axis=0), w

    def _sums(self, per_example, logits, y, w):
        correct = self.correct_fn(logits, y).astype(jnp.float32)
        return jnp.stack([jnp.sum(per_example * w), jnp.sum(correct * w), jnp.sum(w)])

    def _step(self, carry, x_all, y_all, index, weight, i):
        params, opt_state, t, sums = carry
        xb, yb, w = self._batch(x_all, y_all, index, weight, i)

        def loss_fn(p):
            logits = self.apply(p, xb, jax.random.fold_in(self.key, t), True)
            per_example = self.loss_fn(logits, yb)
            return jnp.sum(per_example * w) / jnp.maximum(jnp.sum(w), 1.0), (per_example, logits)

        (_, (per_example, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, t + 1, sums + self._sums(per_example, logits, yb, w)

    def _eval(self, params, sums, x_all, y_all, index, weight, i):
        xb, yb, w = self._batch(x_all, y_all, index, weight, i)
        logits = self.apply(params, xb, None, False)
        return sums + self._sums(self.loss_fn(logits, yb), logits, yb, w)

    # the benchmark interface
    def train(self, epochs: int) -> float:
        """Run `epochs` epochs; returns their mean training loss (the only host sync)."""
        params, opt_state, t, _ = self.carry
        carry = (params, opt_state, t, jnp.zeros(3))
        for _ in range(epochs):
            index, weight = self._index(jax.random.fold_in(self.key, self.epoch), self.n, self.steps)
            for i in range(self.steps):
                carry = self._train_step(carry, self.x, self.y, index, weight, i)
            self.epoch += 1
        self.carry = carry
        sums = np.asarray(carry[3])
        return float(sums[0] / sums[2])

    def evaluate(self, repeats: int = 1) -> tuple[float, float]:
        """Test loss and accuracy, `repeats` passes over the test set (for timing small sets)."""
        index, weight = self._index(None, self.n_test, self.test_steps)
        for _ in range(repeats):
            sums = jnp.zeros(3)
            for i in range(self.test_steps):
                sums = self._eval_step(self.carry[0], sums, self.x_test, self.y_test, index, weight, i)
        sums = np.asarray(sums)
        return float(sums[0] / sums[2]), float(sums[1] / sums[2])

    def info(self) -> dict:
        """XLA's FLOP count of one train step and of inference, per example (the FLOP-rate denominators);
        for the LSTM a count by hand, 3x inference for training (XLA counts a loop body once); and the
        dtypes it computes in (the operands of its matmuls and convolutions) and keeps its params and Adam
        state in."""
        dtypes = {"matmul_dtypes": matmul_dtypes(lambda p, x: self.apply(p, x, self.key, True), self.carry[0],
                                                 self.x[:2]),
                  "param_dtypes": float_dtypes(self.carry[0]), "opt_state_dtypes": float_dtypes(self.carry[1])}
        if getattr(self.workload, "sequence", False):
            infer = reference_lstm.matmul_flops_per_example(self.x.shape[1], self.workload.units)
            return {"analytic_inference_flops_per_example": infer, "analytic_train_flops_per_example": 3 * infer,
                    **dtypes}
        index, weight = self._index(None, self.n, self.steps)
        step_cost = _flops(self._step, self.carry, self.x, self.y, index, weight, jnp.zeros((), jnp.int32))
        one = jax.ShapeDtypeStruct((1, *self.x.shape[1:]), self.x.dtype)
        infer_cost = _flops(lambda p, x: self.apply(p, x, None, False), self.carry[0], one)
        return {"xla_train_flops_per_example": step_cost / self.batch if step_cost else None,
                "xla_inference_flops_per_example": infer_cost, **dtypes}


class ReferenceScan(ReferenceJit):
    """The same step, but a whole epoch (shuffle included) is one jitted `lax.scan` dispatch."""

    def __init__(self, workload: Any, arrays: tuple[np.ndarray, ...], seed: int = 0) -> None:
        super().__init__(workload, arrays, seed)
        self._train_epoch = jax.jit(self._epoch, donate_argnums=(0,))
        self._eval_all = jax.jit(self._eval_epoch)

    def _epoch(self, carry, x_all, y_all, epoch):
        index, weight = self._epoch_index(jax.random.fold_in(self.key, epoch), self.n, self.steps)
        body = lambda c, i: (self._step(c, x_all, y_all, index, weight, i), None)  # noqa: E731
        return lax.scan(body, carry, jnp.arange(self.steps))[0]

    def _eval_epoch(self, params, x_all, y_all):
        index, weight = self._epoch_index(None, self.n_test, self.test_steps)
        body = lambda s, i: (self._eval(params, s, x_all, y_all, index, weight, i), None)  # noqa: E731
        return lax.scan(body, jnp.zeros(3), jnp.arange(self.test_steps))[0]

    def train(self, epochs: int) -> float:
        params, opt_state, t, _ = self.carry
        carry = (params, opt_state, t, jnp.zeros(3))
        for _ in range(epochs):
            carry = self._train_epoch(carry, self.x, self.y, self.epoch)
            self.epoch += 1
        self.carry = carry
        sums = np.asarray(carry[3])
        return float(sums[0] / sums[2])

    def evaluate(self, repeats: int = 1) -> tuple[float, float]:
        for _ in range(repeats):
            sums = self._eval_all(self.carry[0], self.x_test, self.y_test)
        sums = np.asarray(sums)
        return float(sums[0] / sums[2]), float(sums[1] / sums[2])


def _flops(fn: Any, *args: Any) -> float | None:
    """XLA's FLOP count of `jit(fn)(*args)` before compiling; CUDA's plugin has no such analysis, so then
    the same program is lowered for the host CPU (the count is the program's, whatever runs it)."""
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), a.dtype), args)
    for platform in (None, "cpu"):
        try:
            with jax.default_device(jax.devices(platform)[0] if platform else None):
                cost = jax.jit(fn).lower(*abstract).cost_analysis()
        except Exception:  # noqa: BLE001 - FLOP counts are an optional column
            continue
        if isinstance(cost, list):
            cost = cost[0] if cost else {}
        if (cost or {}).get("flops"):
            return float(cost["flops"])
    return None
