"""`python -m benchmarks.mixed_precision`: the dtype policies on this backend, speed and accuracy.

1. speed: the tutorial CNN's and the tutorial MLP's train step (`make_train_step`, batch 128 and 16)
   under "float32", "mixed_bfloat16" and "mixed_float16", alternating the policies round by round and
   reporting the median ms per step;
2. accuracy: the digits CNN trained with `fit` (seed 0) under each policy, its test accuracy and final loss.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import numpy as np

import jaxnet_lite as jnl
from jaxnet_lite import mixed_precision
from jaxnet_lite.apps import runs
from jaxnet_lite.datasets import digits
from jaxnet_lite.utils import to_categorical

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def build(make, policy: str):
    mixed_precision.set_global_policy(policy)
    try:
        return make()
    finally:
        mixed_precision.set_global_policy("float32")


def step_and_state(model, optimizer: str = "adam"):
    opt = mixed_precision.auto_loss_scaling(model, jnl.optimizers.get(optimizer))
    step = jnl.make_train_step(model, "categorical_crossentropy", opt, ["accuracy"], donate=False)
    return step, jnl.TrainState.create(model, opt, seed=0)


def speed(make, x_shape: tuple, classes: int, rounds: int, calls: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = rng.random(x_shape, np.float32)
    y = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, x_shape[0])]
    runners = {}
    for policy in POLICIES:
        step, state = step_and_state(build(make, policy))
        jax.block_until_ready(step(state, (x, y)))  # compile
        runners[policy] = (step, state)
    times: dict[str, list[float]] = {p: [] for p in POLICIES}
    for _ in range(rounds):
        for policy, (step, state) in runners.items():
            start = time.perf_counter()
            for _ in range(calls):
                out = step(state, (x, y))
            jax.block_until_ready(out)
            times[policy].append((time.perf_counter() - start) / calls * 1e3)
    return {p: round(statistics.median(t), 3) for p, t in times.items()}


def accuracy(epochs: int) -> dict[str, dict[str, float]]:
    (x, y), (xt, yt) = digits.load_data()
    x, xt = (x[..., None] / 16.0).astype(np.float32), (xt[..., None] / 16.0).astype(np.float32)
    out = {}
    for policy in POLICIES:
        model = build(runs.digits_cnn, policy)
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"], seed=0)
        history = model.fit(x, to_categorical(y, 10), batch_size=32, epochs=epochs, verbose=0)
        _, acc = model.evaluate(xt, to_categorical(yt, 10), verbose=0)
        out[policy] = {"test_accuracy": round(acc, 4), "final_loss": round(history.history["loss"][-1], 4)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    result = {
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "ms_per_step": {
            "tutorial CNN, batch 128": speed(runs.mnist_cnn, (128, 28, 28, 1), 10, args.rounds, args.calls),
            "tutorial MLP, batch 16": speed(runs.iris_mlp, (16, 4), 3, args.rounds, args.calls * 10),
        },
        "digits CNN": accuracy(args.epochs),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
