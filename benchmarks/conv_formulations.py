"""`python -m benchmarks.conv_formulations`: XLA's convolution against jaxnet_lite's im2col, per shape and in a step.

Two measurements, each alternating the formulations round by round and reporting medians:

1. per shape: forward + both gradients of `sum(relu(conv(x, w))**2)`, one jitted call (what a hidden
   convolution costs in a train step);
2. the tutorial CNN's whole train step through `make_train_step`, with `Conv2D(implementation="xla")`
   against the default "auto" (which takes im2col in training on CPU).

The host allocator is tuned as `fit` tunes it unless `JAXNET_LITE_TUNE_MALLOC=0`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

import jaxnet_lite as jnl
from jaxnet_lite.host_allocator import tune_host_allocator
from jaxnet_lite.apps import runs
from jaxnet_lite.layers import Conv2D
from jaxnet_lite.layers.im2col import conv_im2col, conv_xla

#: (input shape with batch, kernel shape): the tutorial's two convolutions, then other common CPU shapes.
SHAPES = [
    ((128, 28, 28, 1), (3, 3, 1, 32)),
    ((128, 13, 13, 32), (3, 3, 32, 64)),
    ((128, 26, 26, 8), (3, 3, 8, 16)),
    ((128, 26, 26, 16), (3, 3, 16, 32)),
    ((128, 32, 32, 3), (3, 3, 3, 32)),
    ((128, 30, 30, 32), (3, 3, 32, 32)),
    ((128, 16, 16, 64), (3, 3, 64, 64)),
    ((128, 8, 8, 128), (3, 3, 128, 128)),
    ((128, 28, 28, 1), (5, 5, 1, 32)),
]


def time_call(fn: Callable, args: tuple, calls: int) -> float:
    """Milliseconds per call of an already-compiled function, over `calls` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(calls):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls * 1e3


def alternate(contenders: dict[str, tuple[Callable, tuple]], rounds: int, calls: int) -> dict[str, list[float]]:
    """Times each contender once per round, in turn, after one warm-up call each."""
    for fn, args in contenders.values():
        jax.block_until_ready(fn(*args))
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (fn, args) in contenders.items():
            times[name].append(time_call(fn, args, calls))
    return times


def per_shape(rounds: int, calls: int, shapes: int | None = None) -> list[dict]:
    rows = []
    for x_shape, k_shape in SHAPES[:shapes]:
        x = jax.random.normal(jax.random.key(0), x_shape)
        kernel = jax.random.normal(jax.random.key(1), k_shape) * 0.1

        def grads(conv):
            return jax.jit(jax.grad(lambda x, k: jnp.sum(jax.nn.relu(conv(x, k)) ** 2), argnums=(0, 1)))

        times = alternate({"xla": (grads(conv_xla), (x, kernel)),
                           "im2col": (grads(lambda x, k: conv_im2col(x, k, "valid")), (x, kernel))}, rounds, calls)
        rows.append({"input": x_shape, "kernel": k_shape, **{k: statistics.median(v) for k, v in times.items()}})
    return rows


def tutorial_cnn(implementation: str) -> jnl.Sequential:
    """`runs.mnist_cnn()` (the tutorial's CNN) with every Conv2D set to `implementation`."""
    model = runs.mnist_cnn()
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            layer.implementation = implementation
    return model


def tutorial_step(rounds: int, calls: int) -> dict[str, list[float]]:
    x = jax.random.uniform(jax.random.key(0), (128, 28, 28, 1))
    y = jax.nn.one_hot(jnp.arange(128) % 10, 10)
    contenders = {}
    for implementation in ("xla", "auto"):
        model = tutorial_cnn(implementation)
        step = jnl.make_train_step(model, "categorical_crossentropy", "adam", ["accuracy"], donate=False)
        state = jnl.TrainState.create(model, jnl.optimizers.get("adam"), seed=0)
        contenders[implementation] = (step, (state, (x, y)))
    return alternate(contenders, rounds, calls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=10, help="calls per timed window")
    parser.add_argument("--shapes", type=int, default=None, help="only the first N shapes (smoke tests)")
    args = parser.parse_args(argv)
    print(f"device: {jax.devices()[0].device_kind}; host allocator tuned: {tune_host_allocator()}; "
          f"jax {jax.__version__}; {args.rounds} rounds of {args.calls} calls, medians in ms")
    print("\n| input, kernel | XLA conv | im2col | XLA / im2col |\n| --- | ---: | ---: | ---: |")
    for row in per_shape(args.rounds, args.calls, args.shapes):
        name = f"{row['input'][1:]}, {'x'.join(map(str, row['kernel']))}"
        print(f"| {name} | {row['xla']:.2f} | {row['im2col']:.2f} | {row['xla'] / row['im2col']:.2f}x |")
    times = tutorial_step(args.rounds, args.calls)
    xla, auto = (statistics.median(times[k]) for k in ("xla", "auto"))
    print(f"\ntutorial CNN train step (batch 128): implementation='xla' {xla:.1f} ms [{min(times['xla']):.1f}-"
          f"{max(times['xla']):.1f}], 'auto' {auto:.1f} ms [{min(times['auto']):.1f}-{max(times['auto']):.1f}]: "
          f"{xla / auto:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
