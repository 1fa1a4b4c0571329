"""UCI optical handwritten digits (E. Alpaydin, C. Kaynak, 1998; CC BY 4.0), shipped with the package.

1,797 images of 8x8 pixels with values 0-16, labels 0-9: a tiny stand-in for MNIST with the
same layout, so code written for one runs on the other in seconds.
"""

from __future__ import annotations

import numpy as np

from jaxnet_lite.datasets._errors import DatasetError
from jaxnet_lite.datasets._packaged import text_stream
from jaxnet_lite.datasets._split import stratified_split

__all__ = ["load_data"]

_FILE = "digits.csv.gz"
_NUM_EXAMPLES = 1797


def load_data(
    test_size: float = 0.2, seed: int = 0
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return `(x_train, y_train), (x_test, y_test)`, split by class and deterministic in `seed`.

    Like `mnist.load_data`: x is uint8 of shape (N, 8, 8) (values 0-16, not 0-255: divide
    by 16 to scale to [0, 1]) and y is uint8 of shape (N,) with labels 0-9. The split is
    stratified (see `_split.stratified_split`): with the defaults, 1438 train and 359 test.
    """
    x, y = _read()
    return stratified_split(x, y, test_size, seed)


def _read() -> tuple[np.ndarray, np.ndarray]:
    """All rows in file order: 64 pixel values, then the label."""
    table = np.loadtxt(text_stream(_FILE), delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape != (_NUM_EXAMPLES, 65):
        raise DatasetError(f"{_FILE}: expected {_NUM_EXAMPLES} rows of 65 values, got {table.shape}")
    pixels, labels = table[:, :64], table[:, 64]
    if pixels.min() < 0 or pixels.max() > 16 or labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"{_FILE}: pixels must be 0..16 and labels 0..9")
    return pixels.reshape(-1, 8, 8).astype(np.uint8), labels.astype(np.uint8)
