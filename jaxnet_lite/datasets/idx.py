"""Read and write IDX files, the format of the original MNIST and Fashion-MNIST distributions.

An IDX file is a big-endian header -- two zero bytes, a type code, the number of dimensions,
then one uint32 size per dimension -- followed by the array's bytes in C order. Files may be
gzip-compressed; the reader tells that from the content, not from the file name.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from jaxnet_lite.files import atomic_open
from jaxnet_lite.datasets._errors import DatasetError, DatasetNotFoundError

__all__ = ["IMAGES_MAGIC", "LABELS_MAGIC", "find_idx_file", "load_idx_pair", "read_idx", "write_idx"]

IMAGES_MAGIC = 0x00000803  # 2051: uint8, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 0x00000801  # 2049: uint8, 1 dimension (count)

_CODE_TO_DTYPE = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped if it starts with the gzip magic."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetNotFoundError(f"IDX file not found: {path}") from None
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as err:
        raise DatasetError(f"{path}: corrupt or truncated gzip data ({err})") from None


def read_idx(path: str | os.PathLike, *, expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (raw or gzip) into a writable NumPy array in native byte order.

    `expected_magic` (e.g. `IMAGES_MAGIC`) makes any other magic number an error, so an
    images file passed as labels is caught here rather than as a strange shape later.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetError(f"{path}: truncated IDX header: {len(data)} bytes, need at least 4")
    magic = int.from_bytes(data[:4], "big")
    code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or code not in _CODE_TO_DTYPE:
        raise DatasetError(f"{path}: not an IDX file: bad magic number {magic} (0x{magic:08x})")
    if expected_magic is not None and magic != expected_magic:
        raise DatasetError(
            f"{path}: wrong magic number {magic} (0x{magic:08x}), expected {expected_magic} "
            f"(0x{expected_magic:08x}); is this the right file?"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DatasetError(
            f"{path}: truncated IDX header: {len(data)} bytes, need {header_size} for {ndim} dimensions"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _CODE_TO_DTYPE[code]
    expected = math.prod(shape) * dtype.itemsize
    actual = len(data) - header_size
    if actual < expected:
        raise DatasetError(
            f"{path}: truncated: header says shape {shape} ({expected} bytes of data) "
            f"but only {actual} bytes follow"
        )
    if actual > expected:
        raise DatasetError(
            f"{path}: {actual - expected} unexpected bytes after the data of shape {shape}"
        )
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header_size)
    return array.reshape(shape).astype(dtype.newbyteorder("="))  # astype copies: writable


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write `array` as an IDX file, gzip-compressed when `path` ends in `.gz`; atomically."""
    path = Path(path)
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in _CODE_TO_DTYPE.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DatasetError(
            f"write_idx({path}): dtype {array.dtype} has no IDX type code; "
            f"use one of {sorted(str(dt) for dt in codes)}"
        )
    if not 1 <= array.ndim <= 255:
        raise DatasetError(
            f"write_idx({path}): array must have 1 to 255 dimensions, got shape {array.shape}"
        )
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(_CODE_TO_DTYPE[code], copy=False).tobytes(order="C")
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    with atomic_open(path) as f:
        f.write(data)


def find_idx_file(directory: str | os.PathLike, stem: str) -> Path | None:
    """The file `stem.gz` or `stem` in `directory` (gzip preferred), or None when neither exists."""
    directory = Path(directory)
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def load_idx_pair(
    images_path: str | os.PathLike, labels_path: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """Read an images file and its labels file; check magic numbers and that the counts agree."""
    images = read_idx(images_path, expected_magic=IMAGES_MAGIC)
    labels = read_idx(labels_path, expected_magic=LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"count mismatch: {images_path} holds {images.shape[0]} images of shape "
            f"{images.shape[1:]} but {labels_path} holds {labels.shape[0]} labels"
        )
    return images, labels
