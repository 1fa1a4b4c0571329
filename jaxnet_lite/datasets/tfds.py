"""NumPy arrays from any tensorflow-datasets data source, without TensorFlow.

`tfds.data_source` gives random access to a prepared dataset (ArrayRecord files; it downloads
and prepares them on first use, which needs a machine that is online). This module reads such a
source into NumPy arrays or batches of them (`load`), or wraps it as a random-access source that
`fit` reads batch by batch, shuffled and sharded per process (`source`, `TfdsSource`), for data
larger than memory. tensorflow-datasets is imported only when used.
A dataset that is not prepared locally while its download host does not answer fails at once
(see `_network`), instead of after tfds' minutes of download retries.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from jaxnet_lite.data.random_access import RecordSource
from jaxnet_lite.datasets import _network
from jaxnet_lite.datasets._errors import DatasetError, DatasetNotFoundError

__all__ = ["TfdsSource", "import_tfds", "load", "source"]

Batch = tuple[np.ndarray, ...]
# Probed when a builder names no download URL of its own: tfds' storage host.
_DEFAULT_DOWNLOAD_URL = "https://storage.googleapis.com/"


def import_tfds() -> ModuleType:
    """The `tensorflow_datasets` module, or an ImportError that says how to install it."""
    try:
        import tensorflow_datasets
    except ImportError as err:
        raise ImportError(
            "jaxnet_lite.datasets.tfds needs tensorflow-datasets: "
            "pip install tensorflow-datasets  (or: pip install 'jaxnet_lite[data]')"
        ) from err
    return tensorflow_datasets


def load(
    name: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    as_iterator: bool = False,
    batch_size: int | None = None,
    keys: Sequence[str] = ("image", "label"),
) -> Batch | Iterator[Batch]:
    """Read tfds dataset `name`, `split` as a tuple of NumPy arrays, one per entry of `keys`.

    With `as_iterator=True` it returns a generator of such tuples instead: batches of
    `batch_size` examples (the last one may be shorter), or single examples when `batch_size`
    is None. A grayscale `"image"` of shape (H, W, 1) is squeezed to (H, W), as Keras' loaders
    give it, so MNIST from tfds has the layout of MNIST from the IDX files (in tfds' example
    order, which tfds shuffles when preparing). Other features keep tfds' shape and dtype
    (labels are int64). A dataset not prepared locally whose download host does not answer
    (checked once per process) raises `DatasetNotFoundError` at once.
    """
    if not isinstance(split, str):
        raise TypeError(f"tfds.load({name!r}): split must be a string such as 'train', got {split!r}")
    keys = (keys,) if isinstance(keys, str) else tuple(keys)
    if not keys:
        raise ValueError(f"tfds.load({name!r}): keys must name at least one feature")
    if batch_size is not None:
        if not as_iterator:
            raise ValueError(f"tfds.load({name!r}): batch_size={batch_size} needs as_iterator=True")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(
                f"tfds.load({name!r}): batch_size must be a positive integer, got {batch_size!r}"
            )

    tfds = import_tfds()
    data_dir = None if data_dir is None else os.fspath(data_dir)
    _check_obtainable(tfds, name, data_dir)
    source = tfds.data_source(name, split=split, data_dir=data_dir)
    where = f"tfds {name!r} split {split!r}"
    if as_iterator:
        return _iterate(source, keys, batch_size, where)
    examples = [_pick(source[i], keys, where) for i in range(len(source))]
    return _stack(examples, keys, where)


def source(
    name: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    keys: Sequence[str] = ("image", "label"),
) -> TfdsSource:
    """tfds dataset `name`, `split` as a random-access `(x, y)` source for `fit`/`evaluate`/`predict`.

    Nothing is read up front: `fit(source, batch_size=...)` reads each batch's examples by index from
    the ArrayRecord files. `keys` names the features taken as x and y; examples look as `load` gives
    them (a grayscale image squeezed to (H, W)). A dataset neither prepared locally nor downloadable
    now raises `DatasetNotFoundError` at once.
    """
    if not isinstance(split, str):
        raise TypeError(f"tfds.source({name!r}): split must be a string such as 'train', got {split!r}")
    tfds = import_tfds()
    data_dir = None if data_dir is None else os.fspath(data_dir)
    _check_obtainable(tfds, name, data_dir)
    return TfdsSource(tfds.data_source(name, split=split, data_dir=data_dir), keys,
                      where=f"tfds {name!r} split {split!r}")


class TfdsSource(RecordSource):
    """A `tfds.data_source(...)` (or any sequence of feature dicts) as a random-access `(x, y)` source.

    The features `keys=(x_key, y_key)` of each record are x and y, with a grayscale `"image"` squeezed
    as `load` does; batches are read with the data source's `__getitems__` when it has one.
    """

    def __init__(self, data_source: Any, keys: Sequence[str] = ("image", "label"), *, where: str = "tfds source"
                 ) -> None:
        super().__init__(data_source, keys)
        self.where = where

    def pick(self, record: Any) -> tuple[Any, Any]:
        if not isinstance(record, dict):
            raise DatasetError(f"{self.where}: records must be dicts of features, got {type(record).__name__}")
        return _pick(record, self.keys, self.where)

    def __repr__(self) -> str:
        return f"TfdsSource({self.where}, {len(self)} examples, keys={self.keys})"


def _check_obtainable(tfds: ModuleType, name: str, data_dir: str | None) -> None:
    """Raise DatasetNotFoundError when `name` is neither prepared in `data_dir` nor downloadable now.

    Prepared data needs no network, so it is looked for first; only then is the download host
    probed (once per process), so that offline the error comes in seconds, not after retries.
    """
    builder = tfds.builder(name, data_dir=data_dir)
    if builder.is_prepared():
        return
    url = getattr(builder, "URL", None)
    reason = _network.unreachable(url if isinstance(url, str) and "://" in url else _DEFAULT_DOWNLOAD_URL)
    if reason is not None:
        raise DatasetNotFoundError(
            f"tfds {name!r} is not prepared in {builder.data_dir_root} and cannot be downloaded: {reason}"
        )


def _pick(example: dict[str, Any], keys: tuple[str, ...], where: str) -> Batch:
    """The features `keys` of one example, as arrays, with a grayscale image squeezed."""
    missing = [k for k in keys if k not in example]
    if missing:
        raise DatasetError(f"{where}: no feature {missing}; it has {sorted(example)}")
    out = []
    for key in keys:
        value = np.asarray(example[key])
        if key == "image" and value.ndim == 3 and value.shape[-1] == 1:
            value = value[..., 0]
        out.append(value)
    return tuple(out)


def _stack(examples: list[Batch], keys: tuple[str, ...], where: str) -> Batch:
    """Stack per-example tuples into one array per key."""
    if not examples:
        raise DatasetError(f"{where}: the split is empty")
    out = []
    for i, key in enumerate(keys):
        try:
            out.append(np.stack([ex[i] for ex in examples]))
        except ValueError:
            shapes = sorted({ex[i].shape for ex in examples})[:5]
            raise DatasetError(
                f"{where}: feature {key!r} has examples of different shapes (e.g. {shapes}); "
                "read it with as_iterator=True and batch_size=None"
            ) from None
    return tuple(out)


def _iterate(source: Any, keys: tuple[str, ...], batch_size: int | None, where: str) -> Iterator[Batch]:
    """Yield single examples or batches from `source` in its order.

    Examples are read one index at a time: `__getitems__` is not supported by every source
    (tfds' mock sources reject it), and ArrayRecord's random access makes this cheap.
    """
    n = len(source)
    if batch_size is None:
        for i in range(n):
            yield _pick(source[i], keys, where)
        return
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield _stack([_pick(source[i], keys, where) for i in range(start, stop)], keys, where)
