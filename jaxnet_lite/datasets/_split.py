"""A stratified, seeded train/test split for the small datasets shipped with the package."""

from __future__ import annotations

import math

import numpy as np

Split = tuple[np.ndarray, np.ndarray]


def stratified_split(x: np.ndarray, y: np.ndarray, test_size: float, seed: int) -> tuple[Split, Split]:
    """Split `(x, y)` so each class keeps its share in both parts; deterministic in `seed`.

    With `rng = np.random.default_rng(seed)`: for each class in increasing label order, its
    examples (in file order) are permuted by `rng` and the first `round(test_size * n_class)`
    (halves round up) go to the test set. Then the train and test indices are each shuffled
    by `rng`, so neither part is ordered by class.
    """
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float, np.floating)) or not 0 < test_size < 1:
        raise ValueError(f"test_size must be a float strictly between 0 and 1, got {test_size!r}")
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_test = math.floor(test_size * len(members) + 0.5)
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    train = rng.permutation(np.concatenate(train_parts))
    test = rng.permutation(np.concatenate(test_parts))
    return (x[train], y[train]), (x[test], y[test])
