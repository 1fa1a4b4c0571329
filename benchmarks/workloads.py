"""The workloads and their data, identical for every contender.

The parent process prepares each workload's arrays once and writes them to a scratch directory; every
worker loads the same files. So no contender can differ in its data, and the hand-written reference
never has to import jaxnet_lite to read a dataset. Image and table workloads have float32 inputs and
one-hot float32 labels; the sequence workloads have int32 token ids and float32 0/1 labels of shape (n, 1).

- `cnn`: the tutorial's MNIST CNN, batch 128 (XLA convolution speed; real MNIST when
  `$JAXNET_LITE_DATA_DIR/mnist` exists, else synthetic 28x28 images of the same shape);
- `mlp`: the tutorial's 4-32-32-32-3 MLP on Iris, batch 16 (per-step overhead dominates);
- `wide`: a 784-1024-1024-10 MLP on flattened MNIST, batch 256 (FLOPs dominate, for accelerators);
- `lstm`: the IMDB example (`examples/imdb_lstm.py`): Embedding(500, 32, mask_zero=True) -> LSTM(32) ->
  Dense(1, sigmoid) on reviews padded to 200 tokens, batch 32 (a 200-step loop of small matmuls);
- `lstm_wide`: the same model with LSTM(128), batch 128 (the recurrent matmul starts to matter).

Each workload runs under a dtype policy (`--policy`, Keras' names): "float32", or "mixed_bfloat16" for
the image/table workloads (bfloat16 compute, float32 params, optimizer state, loss and softmax).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

DATA_DIR_ENV = "JAXNET_LITE_DATA_DIR"
COMPUTE_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16"}  # policy -> what the layers compute in
POLICIES = tuple(COMPUTE_DTYPES)


@dataclasses.dataclass(frozen=True)
class Workload:
    """What is trained and how much of it makes one measurement window."""

    name: str
    batch_size: int
    input_shape: tuple[int, ...]
    classes: int
    n_train: int  # examples per epoch: the first n_train of the training set
    n_test: int
    epochs_per_window: int  # a window is this many epochs over the n_train examples
    eval_repeats: int  # an evaluation window is this many passes over the test set
    windows: int  # steady-state windows (after the first, which includes compilation)
    vocab: int = 0  # > 0: inputs are int32 token ids in [0, vocab), 0 the padding (the sequence workloads)
    units: int = 0  # the LSTM's units (sequence workloads)
    policy: str = "float32"  # the dtype policy every contender trains under (a key of COMPUTE_DTYPES)

    @property
    def binary(self) -> bool:
        """One output unit: 0/1 labels of shape (n, 1), sigmoid output, binary cross-entropy (else softmax
        over `classes` with one-hot labels and categorical cross-entropy)."""
        return self.classes == 1

    @property
    def sequence(self) -> bool:
        """Token-id inputs (the LSTM workloads)."""
        return self.vocab > 0

    @property
    def compute_dtype(self) -> str:
        """What the layers compute in under `policy` (params and optimizer state stay float32)."""
        return COMPUTE_DTYPES[self.policy]

    @property
    def label(self) -> str:
        """The workload's key in the results: its name, with `@policy` when that is not float32."""
        return self.name if self.policy == "float32" else f"{self.name}@{self.policy}"

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.n_train // self.batch_size)

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "steps_per_epoch": self.steps_per_epoch}


IMDB_VOCAB, IMDB_MAXLEN = 500, 200  # examples/imdb_lstm.py: num_words=500, pad_sequences(maxlen=200)
IMDB_TRAIN = 4000  # the example's training split: the first 80% of the 5,000 reviews (validation_split=0.2)

# Full runs: one window is one epoch of full MNIST for cnn/wide (60,000 images: the last batch is short,
# which each contender handles its own way), 250 epochs of Iris (2,000 steps) for mlp, one epoch of the
# example's 4,000 training reviews for lstm (125 steps) and lstm_wide (32 steps, the last one short).
FULL = {
    "cnn": Workload("cnn", 128, (28, 28, 1), 10, 60000, 10000, 1, 1, 3),
    "mlp": Workload("mlp", 16, (4,), 3, 120, 30, 250, 100, 7),
    "wide": Workload("wide", 256, (784,), 10, 60000, 10000, 1, 1, 3),
    "lstm": Workload("lstm", 32, (IMDB_MAXLEN,), 1, IMDB_TRAIN, 1000, 1, 1, 5, vocab=IMDB_VOCAB, units=32),
    "lstm_wide": Workload("lstm_wide", 128, (IMDB_MAXLEN,), 1, IMDB_TRAIN, 1000, 1, 1, 3, vocab=IMDB_VOCAB,
                          units=128),
}
# --quick: a few steps each, for the smoke test and a first look.
QUICK = {
    "cnn": Workload("cnn", 128, (28, 28, 1), 10, 512, 256, 1, 1, 2),
    "mlp": Workload("mlp", 16, (4,), 3, 120, 30, 10, 5, 2),
    "wide": Workload("wide", 256, (784,), 10, 1024, 512, 1, 1, 2),
    "lstm": Workload("lstm", 32, (IMDB_MAXLEN,), 1, 128, 64, 1, 1, 2, vocab=IMDB_VOCAB, units=32),
    "lstm_wide": Workload("lstm_wide", 128, (IMDB_MAXLEN,), 1, 256, 128, 1, 1, 2, vocab=IMDB_VOCAB, units=128),
}


def get(name: str, quick: bool, windows: int | None = None, steps: int | None = None,
        policy: str = "float32") -> Workload:
    """The workload `name` in quick or full size under `policy`; `windows` and `steps` (steps per window)
    override."""
    table = QUICK if quick else FULL
    if name not in table:
        raise SystemExit(f"unknown workload {name!r}; choose from {', '.join(table)}")
    if policy not in COMPUTE_DTYPES:
        raise SystemExit(f"unknown policy {policy!r}; choose from {', '.join(POLICIES)}")
    w = dataclasses.replace(table[name], policy=policy)
    if windows is not None:
        w = dataclasses.replace(w, windows=windows)
    if steps is not None and w.name != "mlp":  # mlp keeps all of Iris and changes the epoch count
        w = dataclasses.replace(w, n_train=steps * w.batch_size, epochs_per_window=1)
    elif steps is not None:
        w = dataclasses.replace(w, epochs_per_window=max(1, steps // w.steps_per_epoch))
    return w


def _one_hot(y: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[np.asarray(y, np.int64)]


def _repeat(a: np.ndarray, n: int) -> np.ndarray:
    """The first `n` rows of `a` repeated as often as needed (`--steps` beyond one pass over the data)."""
    return np.concatenate([a] * -(-n // len(a)))[:n]


def _imdb(workload: Workload) -> tuple[str, tuple[np.ndarray, ...]]:
    """The shipped IMDB subset as the example prepares it: int32 ids padded in front to 200, 0/1 labels."""
    from jaxnet_lite.datasets import imdb
    from jaxnet_lite.utils import pad_sequences

    (xtr, ytr), (xte, yte) = imdb.load_data(num_words=workload.vocab)
    maxlen = workload.input_shape[0]
    xtr, xte = pad_sequences(xtr[:IMDB_TRAIN], maxlen=maxlen), pad_sequences(xte, maxlen=maxlen)
    ytr, yte = ytr[:IMDB_TRAIN], yte
    source = f"imdb subset (shipped with jaxnet_lite), num_words={workload.vocab}, maxlen={maxlen}"
    label = lambda y: np.asarray(y, np.float32).reshape(-1, 1)  # noqa: E731
    return source, (_repeat(xtr, workload.n_train).astype(np.int32), label(_repeat(ytr, workload.n_train)),
                    xte[:workload.n_test].astype(np.int32), label(yte[:workload.n_test]))


def _mnist(n_train: int, n_test: int) -> tuple[str, tuple[np.ndarray, ...]]:
    """Real MNIST scaled to [0, 1] when `$JAXNET_LITE_DATA_DIR/mnist` holds it, else synthetic."""
    env = os.environ.get(DATA_DIR_ENV, "")
    if env and (Path(env).expanduser() / "mnist").is_dir():
        from jaxnet_lite.datasets import mnist

        (xtr, ytr), (xte, yte) = mnist.load_data()
        source = f"mnist ({Path(env).expanduser() / 'mnist'})"
    else:
        rng = np.random.default_rng(0)
        templates = rng.uniform(0, 255, (10, 28, 28))
        ytr, yte = rng.integers(0, 10, 60000), rng.integers(0, 10, 10000)
        noise = lambda n: rng.normal(0, 60, (n, 28, 28))  # noqa: E731
        xtr = np.clip(templates[ytr] + noise(60000), 0, 255).astype(np.uint8)
        xte = np.clip(templates[yte] + noise(10000), 0, 255).astype(np.uint8)
        source = f"synthetic 28x28 (no {DATA_DIR_ENV}/mnist)"
    reps = -(-n_train // len(xtr))  # allow --steps beyond one epoch of MNIST by repeating it
    xtr, ytr = np.concatenate([xtr] * reps)[:n_train], np.concatenate([ytr] * reps)[:n_train]
    return source, (xtr, ytr, xte[:n_test], yte[:n_test])


def prepare(workload: Workload, out_dir: Path) -> dict:
    """Write `<name>.npz` (x_train, y_train, x_test, y_test) to `out_dir`; returns a description."""
    if workload.sequence:
        source, (xtr, ytr, xte, yte) = _imdb(workload)
        arrays = {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}
        np.savez(out_dir / f"{workload.name}.npz", **arrays)
        return {"source": source, "synthetic": False, "padding_fraction": float(np.mean(xtr == 0)),
                **{f"{k}_shape": list(v.shape) for k, v in arrays.items()}}
    if workload.name == "mlp":
        from jaxnet_lite.datasets import iris

        (xtr, ytr), (xte, yte) = iris.load_data()
        source = "iris (shipped with jaxnet_lite, stratified 120/30 split)"
        xtr, xte = xtr.astype(np.float32), xte.astype(np.float32)
    else:
        source, (xtr, ytr, xte, yte) = _mnist(workload.n_train, workload.n_test)
        xtr = (xtr.astype(np.float32) / 255.0).reshape(len(xtr), *workload.input_shape)
        xte = (xte.astype(np.float32) / 255.0).reshape(len(xte), *workload.input_shape)
    arrays = {
        "x_train": np.ascontiguousarray(xtr), "y_train": _one_hot(ytr, workload.classes),
        "x_test": np.ascontiguousarray(xte), "y_test": _one_hot(yte, workload.classes),
    }
    np.savez(out_dir / f"{workload.name}.npz", **arrays)
    return {"source": source, "synthetic": source.startswith("synthetic"),
            **{f"{k}_shape": list(v.shape) for k, v in arrays.items()}}


def load(out_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The prepared arrays of workload `name`: (x_train, y_train, x_test, y_test) as NumPy (float32; the
    sequence workloads' inputs int32)."""
    with np.load(Path(out_dir) / f"{name}.npz") as f:
        return f["x_train"], f["y_train"], f["x_test"], f["y_test"]
