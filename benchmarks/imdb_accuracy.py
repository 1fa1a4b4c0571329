"""`python -m benchmarks.imdb_accuracy`: Keras' IMDB LSTM recipe, test accuracy per seed, jaxnet_lite vs Keras 3.

Both sides run the same script shape on the IMDB subset shipped with jaxnet_lite (500 words, reviews
padded to 200, Embedding(500, 32, mask_zero=True), LSTM(32) or Bidirectional(LSTM(32)), Dense(1,
sigmoid), Adam, batch 32, validation_split 0.2, EarlyStopping(patience=2, restore_best_weights=True),
up to 15 epochs) and report test accuracy and seconds per epoch; each run is its own process. Keras
runs on its JAX backend when installed.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RECIPE = textwrap.dedent("""
    import sys, time
    epochs, seed, bidirectional = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
    if sys.argv[4] == "keras":
        import keras
        from keras.layers import LSTM, Bidirectional, Dense, Embedding
        from keras.callbacks import EarlyStopping
    else:
        import jaxnet_lite as keras
        from jaxnet_lite.layers import LSTM, Bidirectional, Dense, Embedding
        from jaxnet_lite.callbacks import EarlyStopping
    from jaxnet_lite.datasets import imdb
    from jaxnet_lite.utils import pad_sequences
    keras.utils.set_random_seed(seed)
    (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=500)
    x_train, x_test = pad_sequences(x_train, maxlen=200), pad_sequences(x_test, maxlen=200)
    model = keras.Sequential([keras.Input((200,), dtype="int32"), Embedding(500, 32, mask_zero=True),
                              Bidirectional(LSTM(32)) if bidirectional else LSTM(32), Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=32, epochs=epochs, validation_split=0.2, verbose=0,
                        callbacks=[EarlyStopping(patience=2, restore_best_weights=True)])
    seconds = (time.perf_counter() - start) / len(history.epoch)
    print("RESULT", model.evaluate(x_test, y_test, verbose=0)[1], len(history.epoch), seconds)
""")


def run(engine: str, epochs: int, seed: int, bidirectional: bool) -> tuple[float, int, float] | None:
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", RECIPE, str(epochs), str(seed), str(int(bidirectional)), engine],
                          capture_output=True, text=True, env=env, cwd=REPO)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            accuracy, ran, seconds = line.split()[1:]
            return float(accuracy), int(ran), float(seconds)
    print(f"{engine} seed {seed} failed:\n{proc.stderr[-1500:]}", file=sys.stderr)
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    parser.add_argument("--bidirectional", action="store_true")
    args = parser.parse_args(argv)
    engines = ["jaxnet_lite"] + (["keras"] if _has_keras() else [])
    print("engine       seed  test accuracy  epochs run  s/epoch (incl. compile)")
    accuracies: dict[str, dict[int, float]] = {engine: {} for engine in engines}
    for seed in (int(s) for s in args.seeds.split(",")):
        for engine in engines:
            result = run(engine, args.epochs, seed, args.bidirectional)
            if result is not None:
                accuracy, ran, seconds = result
                accuracies[engine][seed] = accuracy * 100
                print(f"{engine:<12} {seed:>4}  {accuracy * 100:12.2f}%  {ran:>10}  {seconds:7.2f}", flush=True)
    summarize(accuracies)


def summarize(accuracies: dict[str, dict[int, float]]) -> None:
    """Each engine's mean and standard deviation over seeds, and the difference of means with a 95% interval.

    A seed fixes each engine's own random streams, which differ between engines, so the two samples are
    independent (not paired by seed): the interval is Welch's, mean difference ± 2 standard errors.
    """
    samples = {engine: list(by_seed.values()) for engine, by_seed in accuracies.items() if by_seed}
    for engine, values in samples.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{engine:<12} mean {statistics.fmean(values):.2f}%  sd {spread:.2f}  over {len(values)} seeds")
    if len(samples) == 2 and all(len(v) > 1 for v in samples.values()):
        ours, theirs = samples.values()
        difference = statistics.fmean(ours) - statistics.fmean(theirs)
        error = math.sqrt(statistics.variance(ours) / len(ours) + statistics.variance(theirs) / len(theirs))
        print(f"jaxnet_lite - keras: {difference:+.2f} points, 95% interval "
              f"[{difference - 2 * error:+.2f}, {difference + 2 * error:+.2f}]")

def _has_keras() -> bool:
    import importlib.util

    return importlib.util.find_spec("keras") is not None


if __name__ == "__main__":
    main()
