"""Datasets as NumPy arrays in Keras' layout: `(x_train, y_train), (x_test, y_test)`.

`iris` and `digits` ship with the package, and so do two text sets: `imdb` (a 6,000-review
subset of Keras' IMDB sentiment data, as lists of word indices) and `tinyshakespeare` (the
character-level corpus, with nanoGPT's split). `mnist` and `fashion_mnist` read the IDX files from
a directory you name, or come through tensorflow-datasets; `tfds` reads any tfds dataset.
"""

from jaxnet_lite.datasets import digits, fashion_mnist, idx, imdb, iris, mnist, tfds, tinyshakespeare
from jaxnet_lite.datasets._errors import DatasetError, DatasetNotFoundError

__all__ = [
    "DatasetError",
    "DatasetNotFoundError",
    "digits",
    "fashion_mnist",
    "idx",
    "imdb",
    "iris",
    "mnist",
    "tfds",
    "tinyshakespeare",
]
