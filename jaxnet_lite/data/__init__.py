"""Data pipeline helpers for in-memory arrays: batching and Keras-style validation splits."""

from jaxnet_lite.data.arrays import batches, check_consistent_length, num_batches, train_val_split

__all__ = ["batches", "check_consistent_length", "num_batches", "train_val_split"]
