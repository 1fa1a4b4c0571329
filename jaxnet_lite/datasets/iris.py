"""Fisher's Iris (UCI ML Repository; R. A. Fisher, 1936; CC BY 4.0), shipped with the package.

150 flowers, 4 features in cm (sepal length, sepal width, petal length, petal width),
3 classes of 50. Small enough for a first classifier that trains in a second.
"""

from __future__ import annotations

import numpy as np

from jaxnet_lite.datasets._errors import DatasetError
from jaxnet_lite.datasets._packaged import read_text
from jaxnet_lite.datasets._split import stratified_split

__all__ = ["class_names", "feature_names", "load_data"]

class_names: tuple[str, ...] = ("setosa", "versicolor", "virginica")
feature_names: tuple[str, ...] = (
    "sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)",
)  # fmt: skip
_FILE = "iris.csv"


def load_data(
    test_size: float = 0.2, seed: int = 0
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return `(x_train, y_train), (x_test, y_test)` from the shipped CSV, split by class.

    x is float32 of shape (N, 4); y is int32 of shape (N,) with labels 0..2 naming
    `class_names` (int32 is JAX's default integer, so moving y to a device changes nothing).
    The split is stratified and deterministic in `seed` (see `_split.stratified_split`):
    with the defaults, 40 of each class train (120) and 10 of each test (30), both shuffled.
    """
    x, y = _read()
    return stratified_split(x, y, test_size, seed)


def _read() -> tuple[np.ndarray, np.ndarray]:
    """All 150 rows in file order; the header line is `count,features,class names...`."""
    header, *rows = read_text(_FILE).strip().splitlines()
    count, n_features, *names = header.split(",")
    if tuple(names) != class_names or int(n_features) != len(feature_names):
        raise DatasetError(f"{_FILE}: unexpected header {header!r}")
    table = np.array([row.split(",") for row in rows], dtype=np.float64)
    if table.shape != (int(count), len(feature_names) + 1):
        raise DatasetError(
            f"{_FILE}: expected {count} rows of {len(feature_names) + 1} values, got {table.shape}"
        )
    x = table[:, :-1].astype(np.float32)
    y = table[:, -1].astype(np.int32)
    if not np.array_equal(y, table[:, -1]) or y.min() < 0 or y.max() >= len(class_names):
        raise DatasetError(f"{_FILE}: labels must be integers 0..{len(class_names) - 1}")
    return x, y
