"""Data pipeline helpers: batching and Keras-style validation splits of in-memory arrays, batches cut on
the device inside the train step, random windows of a token sequence for language models, and
random-access sources for data larger than memory (`.npy` files, record sequences such as
`tfds.data_source`) with their sampler and prefetching."""

from jaxnet_lite.data.arrays import batches, check_consistent_length, num_batches, train_val_split
from jaxnet_lite.data.device_batches import DeviceBatches, RowBatch
from jaxnet_lite.data.prefetch import Prefetch
from jaxnet_lite.data.random_access import MemmapSource, RandomAccessSource, RecordSource
from jaxnet_lite.data.sampler import EpochSampler
from jaxnet_lite.data.windows import RandomWindows, random_windows

__all__ = ["DeviceBatches", "EpochSampler", "MemmapSource", "Prefetch", "RandomAccessSource", "RandomWindows",
           "RecordSource", "RowBatch", "batches", "check_consistent_length", "num_batches", "random_windows",
           "train_val_split"]
