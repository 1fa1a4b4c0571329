"""Fashion-MNIST (H. Xiao, K. Rasul, R. Vollgraf / Zalando, 2017; MIT), as Keras loads it."""

from __future__ import annotations

import os

import numpy as np

from jaxnet_lite.datasets._sources import load_mnist_format

__all__ = ["class_names", "load_data"]

class_names: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def load_data(
    path: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return `(x_train, y_train), (x_test, y_test)`: (60000, 28, 28), (60000,), (10000, 28, 28), (10000,), uint8.

    Same sources and cache as `mnist.load_data`, with the same IDX file names: `path` (directly
    or `path/fashion_mnist/`), then `$JAXNET_LITE_DATA_DIR/fashion_mnist/`, then
    tensorflow-datasets' "fashion_mnist". Label `i` is the garment `class_names[i]`.
    """
    return load_mnist_format("fashion_mnist", path, tfds_name="fashion_mnist")
