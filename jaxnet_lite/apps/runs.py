"""The jobs behind the `jaxnet-lite` command: the demo on embedded data and the tutorial's MNIST run.

Each writes a run folder: `history.json`, `curves.png` (when matplotlib is installed) and the weights.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from jaxnet_lite import Sequential
from jaxnet_lite.callbacks import EarlyStopping
from jaxnet_lite.datasets import digits, iris, mnist
from jaxnet_lite.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from jaxnet_lite.apps.plotting import PlottingUnavailable, plot_histories
from jaxnet_lite.utils import to_categorical


def run_folder(out: str | os.PathLike | None) -> Path:
    path = Path(out) if out is not None else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


def iris_mlp() -> Sequential:
    """The tutorial's MLP: 4 -> 32 -> 32 -> 32 -> 3."""
    model = Sequential()
    model.add(Dense(32, input_shape=(4,), activation="relu"))
    model.add(Dense(32, activation="relu"))
    model.add(Dense(32, activation="relu"))
    model.add(Dense(3, activation="softmax"))
    return model


def digits_cnn() -> Sequential:
    """A small CNN in the tutorial's style for the 8x8 digits."""
    return Sequential([
        Conv2D(32, kernel_size=(3, 3), padding="same", input_shape=(8, 8, 1), activation="relu"),
        MaxPooling2D(pool_size=(2, 2)),
        Conv2D(64, kernel_size=(3, 3), activation="relu"),
        Flatten(),
        Dropout(0.3),
        Dense(10, activation="softmax"),
    ], name="digits_cnn")


def mnist_cnn() -> Sequential:
    """The tutorial's MNIST CNN."""
    model = Sequential()
    model.add(Conv2D(32, kernel_size=(3, 3), input_shape=(28, 28, 1), activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Conv2D(64, kernel_size=(3, 3), activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dropout(0.5))
    model.add(Dense(10, activation="softmax"))
    return model


def _train(model: Sequential, data: Any, *, batch_size: int, epochs: int, seed: int, verbose: Any,
           patience: int, min_delta: float = 0.0005) -> tuple[Any, EarlyStopping, float, float]:
    (x, y), (x_test, y_test) = data
    model.summary()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"], seed=seed)
    stop = EarlyStopping(min_delta=min_delta, patience=patience, restore_best_weights=True)
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, callbacks=[stop], validation_split=0.1,
                        verbose=verbose)
    seconds = time.perf_counter() - start
    loss, acc = model.evaluate(x_test, y_test, verbose=verbose)
    return history, stop, seconds, (loss, acc)


def _marks(stop: EarlyStopping, history: Any, max_epochs: int) -> dict[str, int | None]:
    """1-based epochs to mark: where training stopped early (None when it ran to its cap) and the best
    epoch whose weights were restored (None when nothing was restored)."""
    ran = len(history.epoch)
    stopped = ran if stop.stopped_epoch and ran < max_epochs else None
    best = stop.best_epoch + 1 if stop.restore_best_weights and stop.best_weights is not None else None
    return {"stopped": stopped, "best": best}


def _report(marks: dict[str, int | None], epochs_run: int, monitor: str) -> None:
    """Say in words how training ended, so the numbers that follow are not a surprise."""
    if marks["stopped"] is not None:
        print(f"Stopped early after epoch {marks['stopped']}: {monitor} stopped improving.")
    else:
        print(f"Ran all {epochs_run} epochs.")
    if marks["best"] is not None:
        print(f"Restored the weights of epoch {marks['best']}, the best {monitor}; the test scores use them.")


def _save_plot(out: Path, runs: list) -> str:
    try:
        plot_histories(runs, out / "curves.png")
        return f"learning curves: {out / 'curves.png'}"
    except PlottingUnavailable as e:
        return f"no curves.png: {e}"


def demo(out: str | os.PathLike | None = None, seed: int = 0, max_epochs: int | None = None,
         verbose: Any = "auto") -> dict[str, Any]:
    """Train the tutorial MLP on Iris and a small CNN on 8x8 digits; returns the results it wrote."""
    folder = run_folder(out)
    (xi, yi), (xi_t, yi_t) = iris.load_data(seed=seed)
    iris_data = ((xi, to_categorical(yi, 3)), (xi_t, to_categorical(yi_t, 3)))
    (xd, yd), (xd_t, yd_t) = digits.load_data(seed=seed)
    scale = lambda a: np.expand_dims(a.astype("float32") / 16.0, -1)  # noqa: E731 - pixels are 0..16
    digits_data = ((scale(xd), to_categorical(yd, 10)), (scale(xd_t), to_categorical(yd_t, 10)))

    results: dict[str, Any] = {"seed": seed}
    runs = []
    for key, title, heading, model, data, cap, batch_size, patience in [
        ("iris_mlp", "Iris MLP", "Iris: the tutorial's MLP", iris_mlp(), iris_data, 150, 16, 10),
        ("digits_cnn", "Digits CNN", "Digits (8x8): a small CNN", digits_cnn(), digits_data, 40, 32, 4),
    ]:
        print(f"== {heading} ==")
        epochs = min(cap, max_epochs or cap)
        history, stop, seconds, (loss, acc) = _train(model, data, batch_size=batch_size, epochs=epochs, seed=seed,
                                                     verbose=verbose, patience=patience)
        marks = _marks(stop, history, epochs)
        _report(marks, len(history.epoch), stop.monitor)
        print(f"{title.split()[0]} test accuracy: {acc:.4f} (loss {loss:.4f})\n")
        model.save_weights(folder / f"{key}.weights.npz")
        results[key] = {"history": history.history, "epochs": len(history.epoch), "stopped_epoch": marks["stopped"],
                        "restored_epoch": marks["best"], "train_seconds": seconds, "test_loss": loss,
                        "test_accuracy": acc}
        runs.append((title, history, marks))
    (folder / "history.json").write_text(json.dumps(results, indent=2))
    note = _save_plot(folder, runs)
    print(f"Run folder: {folder}\n{note}")
    return results


def train_mnist_cnn(data_dir: str | None = None, epochs: int = 30, batch_size: int = 128, seed: int = 0,
                    out: str | os.PathLike | None = None, verbose: Any = "auto") -> dict[str, Any]:
    """The tutorial's MNIST run, ending with its `The test accuracy is 99.xx%` line."""
    (x_train, y_train), (x_test, y_test) = mnist.load_data(data_dir)
    folder = run_folder(out)
    prep = lambda a: np.expand_dims(a.astype("float32") / 255, -1)  # noqa: E731
    data = ((prep(x_train), to_categorical(y_train, 10)), (prep(x_test), to_categorical(y_test, 10)))
    model = mnist_cnn()
    history, stop, seconds, (loss, acc) = _train(model, data, batch_size=batch_size, epochs=epochs, seed=seed,
                                                 verbose=verbose, patience=2)
    marks = _marks(stop, history, epochs)
    _report(marks, len(history.epoch), stop.monitor)
    print("The test loss is %.2f" % loss)
    print("The test accuracy is %.2f" % (acc * 100) + "%")
    model.save_weights(folder / "mnist_cnn.weights.npz")
    results = {"seed": seed, "history": history.history, "epochs": len(history.epoch),
               "stopped_epoch": marks["stopped"], "restored_epoch": marks["best"], "train_seconds": seconds,
               "seconds_per_epoch": seconds / max(len(history.epoch), 1), "test_loss": loss, "test_accuracy": acc}
    (folder / "history.json").write_text(json.dumps(results, indent=2))
    print(f"Run folder: {folder}\n{_save_plot(folder, [('MNIST CNN', history, marks)])}")
    return results
