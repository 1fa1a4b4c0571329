"""Find and load an MNIST-format dataset: a `path`, then `$JAXNET_LITE_DATA_DIR`, then tfds.

Shared by `mnist` and `fashion_mnist`, which differ only in their names. Whatever the source,
the result is Keras' layout: `(x_train, y_train), (x_test, y_test)`, images (N, 28, 28) uint8,
labels (N,) uint8. IDX files are decoded once and then read from the `.npz` cache (`_cache`),
one entry per dataset, keyed by the files' content.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import numpy as np

from jaxnet_lite.datasets import _cache, idx
from jaxnet_lite.datasets import tfds as tfds_arrays
from jaxnet_lite.datasets._errors import DatasetError, DatasetNotFoundError

DATA_DIR_ENV = "JAXNET_LITE_DATA_DIR"
# (images, labels) stems of the four standard IDX files, per split.
IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_ALL_STEMS = tuple(stem for pair in IDX_STEMS.values() for stem in pair)
_KEYS = ("x_train", "y_train", "x_test", "y_test")
_IMAGE_SHAPE = (28, 28)
_NUM_CLASSES = 10

Split = tuple[np.ndarray, np.ndarray]


def load_mnist_format(name: str, path: str | os.PathLike | None, *, tfds_name: str) -> tuple[Split, Split]:
    """Load dataset `name` from `path`, `$JAXNET_LITE_DATA_DIR/<name>/`, or tfds `tfds_name`."""
    if path is not None:
        return _load_idx_dir(name, _explicit_dir(name, Path(path).expanduser()))

    env = os.environ.get(DATA_DIR_ENV, "")
    if env:
        directory = Path(env).expanduser() / name
        if directory.is_dir():
            return _load_idx_dir(name, directory)
        env_note = f"{DATA_DIR_ENV}={env!r} has no {name}/ subdirectory"
    else:
        env_note = f"{DATA_DIR_ENV} is not set"

    try:
        tfds_arrays.import_tfds()
    except ImportError:
        _not_found(name, env_note, "tensorflow-datasets is not installed", cause=None)
    try:
        x_train, y_train = tfds_arrays.load(tfds_name, "train")
        x_test, y_test = tfds_arrays.load(tfds_name, "test")
    except DatasetNotFoundError as err:  # not prepared locally, and no network to download it
        _not_found(name, env_note, f"tensorflow-datasets: {err}", cause=err)
    except Exception as err:  # tfds fails in many ways offline (download, prepare, imports)
        _not_found(name, env_note, f"tensorflow-datasets failed: {type(err).__name__}: {err}", cause=err)
    where = f"tensorflow-datasets {tfds_name!r}"
    return (
        _checked(x_train, _labels_uint8(y_train, f"{where} train labels"), f"{where} train"),
        _checked(x_test, _labels_uint8(y_test, f"{where} test labels"), f"{where} test"),
    )


def _explicit_dir(name: str, path: Path) -> Path:
    """The directory holding the IDX files: `path` itself, or `path/<name>/`."""
    if not path.is_dir():
        raise DatasetNotFoundError(_not_a_directory(name, path))
    if any(idx.find_idx_file(path, stem) for stem in _ALL_STEMS) or not (path / name).is_dir():
        return path
    return path / name


def _not_a_directory(name: str, path: Path) -> str:
    """Why `path` cannot be the `path=` argument, and what that argument must name."""
    where = f"{name}.load_data(path={str(path)!r})"
    expected = (
        f"expected a directory holding {', '.join(_ALL_STEMS)} (each raw or .gz), directly or in DIR/{name}/"
    )
    if not path.exists():
        return f"{where}: no such directory; {expected}"
    if not path.is_file():
        return f"{where}: not a directory; {expected}"
    hint = ""
    if path.name.removesuffix(".gz") in _ALL_STEMS:
        hint = f"; pass the directory that holds it: path={str(path.parent)!r}"
    return f"{where}: is a file, not a directory; {expected}{hint}"


def _load_idx_dir(name: str, directory: Path) -> tuple[Split, Split]:
    """Read the four IDX files in `directory`, through the cache."""
    files = {}
    for stem in _ALL_STEMS:
        found = idx.find_idx_file(directory, stem)
        if found is None:
            raise DatasetNotFoundError(
                f"{name}: {directory} has no {stem} or {stem}.gz "
                f"(it needs {', '.join(_ALL_STEMS)}, each raw or .gz)"
            )
        files[stem] = found
    cache_file = _cache.cache_path(name, list(files.values()))
    cached = _cache.load(cache_file, _KEYS)
    if cached is not None:
        return (cached["x_train"], cached["y_train"]), (cached["x_test"], cached["y_test"])

    splits = []
    for images_stem, labels_stem in IDX_STEMS.values():
        images, labels = idx.load_idx_pair(files[images_stem], files[labels_stem])
        splits.append(_checked(images, labels, f"{files[images_stem]} / {files[labels_stem]}"))
    (x_train, y_train), (x_test, y_test) = splits
    _cache.save(cache_file, dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test))
    return (x_train, y_train), (x_test, y_test)


def _labels_uint8(labels: np.ndarray, where: str) -> np.ndarray:
    """tfds gives int64 labels; Keras' MNIST has uint8."""
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise DatasetError(f"{where}: labels outside 0..255 (min {labels.min()}, max {labels.max()})")
    return labels.astype(np.uint8)


def _checked(images: np.ndarray, labels: np.ndarray, where: str) -> Split:
    """Check the Keras MNIST layout: images (N, 28, 28) uint8, labels (N,) uint8 below 10."""
    if images.dtype != np.uint8 or images.shape[1:] != _IMAGE_SHAPE:
        raise DatasetError(
            f"{where}: images must be uint8 of shape (N, 28, 28), got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.shape != (images.shape[0],):
        raise DatasetError(
            f"{where}: labels must be uint8 of shape ({images.shape[0]},), got {labels.dtype} {labels.shape}"
        )
    if labels.size and labels.max() >= _NUM_CLASSES:
        raise DatasetError(f"{where}: label {labels.max()} is not below num_classes={_NUM_CLASSES}")
    return images, labels


def _not_found(name: str, env_note: str, tfds_note: str, cause: BaseException | None) -> NoReturn:
    """Raise the error that names all three ways to provide the data and why each failed."""
    stems = ", ".join(_ALL_STEMS)
    raise DatasetNotFoundError(
        f"{name}: no data found. Provide it in one of three ways:\n"
        f"  1. {name}.load_data(path=DIR), DIR holding {stems} (each raw or .gz), "
        f"directly or in DIR/{name}/;\n"
        f"  2. the environment variable {DATA_DIR_ENV}=DIR, DIR holding {name}/ with those files "
        f"({env_note});\n"
        f"  3. tensorflow-datasets (pip install tensorflow-datasets), which downloads and prepares "
        f"it on first use on a machine that is online ({tfds_note})."
    ) from cause
