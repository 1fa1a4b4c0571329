"""MNIST handwritten digits (Y. LeCun, C. Cortes, C. Burges; CC BY-SA 3.0), as Keras loads it."""

from __future__ import annotations

import os

import numpy as np

from jaxnet_lite.datasets._sources import load_mnist_format

__all__ = ["load_data"]


def load_data(
    path: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return `(x_train, y_train), (x_test, y_test)`: (60000, 28, 28), (60000,), (10000, 28, 28), (10000,), uint8.

    Sources, in order: `path`, a directory holding the four IDX files
    (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
    `t10k-labels-idx1-ubyte`, each raw or `.gz`) directly or in `path/mnist/`; then
    `$JAXNET_LITE_DATA_DIR/mnist/`; then tensorflow-datasets' "mnist" (downloaded on first use).
    Otherwise a `DatasetNotFoundError` (a `FileNotFoundError`) names all three. Decoded IDX
    files are cached as `.npz` (see `jaxnet_lite.datasets._cache`), so later loads are fast.
    Through tfds the layout and dtypes are the same but the example order is tfds' own.
    """
    return load_mnist_format("mnist", path, tfds_name="mnist")
