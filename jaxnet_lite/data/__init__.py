"""Data pipeline helpers: batching and Keras-style validation splits of in-memory arrays, and random
windows of a token sequence for language models."""

from jaxnet_lite.data.arrays import batches, check_consistent_length, num_batches, train_val_split
from jaxnet_lite.data.windows import RandomWindows, random_windows

__all__ = ["RandomWindows", "batches", "check_consistent_length", "num_batches", "random_windows", "train_val_split"]
