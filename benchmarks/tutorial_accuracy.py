"""`python -m benchmarks.tutorial_accuracy`: the tutorial's MNIST CNN recipe, test accuracy per seed, jaxnet_lite vs Keras.

Both sides train the same recipe (Conv2D 32 / MaxPool / Conv2D 64 / MaxPool / Flatten / Dropout 0.5 /
Dense 10 softmax, Adam, batch 128, validation_split 0.1) for `--epochs` epochs on the real MNIST files
(`$JAXNET_LITE_DATA_DIR/mnist`) and report test accuracy; each run is its own process, under the dtype
policy named by `--policy` (set globally in that process, as `keras.mixed_precision` does). Keras runs only
when installed, on the backend named by `--keras-backend` (default tensorflow). This is how the
2-epoch accuracy of the recipe itself, independent of the engine, was measured (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")

JAXNET_LITE = textwrap.dedent("""
    import os, sys, tempfile
    from jaxnet_lite import mixed_precision
    from jaxnet_lite.apps import runs
    mixed_precision.set_global_policy(os.environ.get("BENCH_POLICY", "float32"))  # this process only
    with tempfile.TemporaryDirectory() as out:
        result = runs.train_mnist_cnn(epochs=int(sys.argv[1]), seed=int(sys.argv[2]), verbose=0, out=out)
    print("TEST_ACCURACY", result["test_accuracy"])
""")

KERAS = textwrap.dedent("""
    import os, sys
    import numpy as np
    import keras
    from benchmarks.keras_contender import build_model  # the benchmarks' Keras CNN (keeps $KERAS_BACKEND)
    from jaxnet_lite.datasets import mnist
    epochs, seed = int(sys.argv[1]), int(sys.argv[2])
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy(os.environ.get("BENCH_POLICY", "float32"))
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train = np.expand_dims(x_train.astype("float32") / 255, -1)
    x_test = np.expand_dims(x_test.astype("float32") / 255, -1)
    y_train, y_test = keras.utils.to_categorical(y_train, 10), keras.utils.to_categorical(y_test, 10)
    model = build_model("cnn")
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=128, epochs=epochs, validation_split=0.1, verbose=0)
    print("TEST_ACCURACY", model.evaluate(x_test, y_test, verbose=0)[1])
""")


def run(script: str, epochs: int, seed: int, env: dict[str, str]) -> float | None:
    proc = subprocess.run([sys.executable, "-c", script, str(epochs), str(seed)], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=REPO)
    for line in proc.stdout.splitlines():
        if line.startswith("TEST_ACCURACY"):
            return float(line.split()[1])
    print(proc.stderr[-2000:], file=sys.stderr)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--keras-backend", default="tensorflow", help="KERAS_BACKEND for the Keras side")
    parser.add_argument("--no-keras", action="store_true", help="train jaxnet_lite only")
    parser.add_argument("--policy", default="float32", choices=POLICIES,
                        help="dtype policy both sides train under (keras.mixed_precision's names)")
    args = parser.parse_args(argv)
    if not os.environ.get("JAXNET_LITE_DATA_DIR"):
        parser.error("set JAXNET_LITE_DATA_DIR to the directory holding mnist/ (the real files)")
    seeds = [int(s) for s in args.seeds.split(",")]
    policy = {"BENCH_POLICY": args.policy}
    sides = {"jaxnet_lite": (JAXNET_LITE, policy)}
    if not args.no_keras:
        sides[f"keras ({args.keras_backend})"] = (KERAS, {"KERAS_BACKEND": args.keras_backend, **policy})
    results: dict[str, list[float | None]] = {name: [] for name in sides}
    print(f"test accuracy (%) after {args.epochs} epoch(s), tutorial recipe, policy {args.policy}\n")
    print("| seed | " + " | ".join(sides) + " |\n| ---: |" + " ---: |" * len(sides))
    for seed in seeds:
        for name, (script, env) in sides.items():
            results[name].append(run(script, args.epochs, seed, env))
        print(f"| {seed} | " + " | ".join(_pct(results[n][-1]) for n in sides) + " |", flush=True)
    summary = []
    for name, values in results.items():
        done = [v for v in values if v is not None]
        if done:
            sd = statistics.stdev(done) if len(done) > 1 else 0.0
            summary.append(f"{name}: mean {100 * statistics.mean(done):.2f}%, SD {100 * sd:.2f}, "
                           f"min {100 * min(done):.2f}%, max {100 * max(done):.2f}%")
    print("\n" + "\n".join(summary))
    return 0 if all(v is not None for values in results.values() for v in values) else 1


def _pct(value: float | None) -> str:
    return "failed" if value is None else f"{100 * value:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
