"""An on-disk cache of decoded datasets as uncompressed `.npz`, so a second load skips gunzip.

An entry is keyed by the content of its source files (a blake2b digest of their bytes, about
0.05 s for MNIST's 11 MB of `.gz` files), so copies of the same data in different directories
share one entry and an edited file is never served stale. Each dataset keeps one entry: writing
a new one removes the older ones of that name. Writes are atomic. The cache directory is
`$JAXNET_LITE_CACHE_DIR`, else `$XDG_CACHE_HOME/jaxnet_lite`, else `~/.cache/jaxnet_lite`;
it is safe to delete at any time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from jaxnet_lite.files import atomic_open

CACHE_DIR_ENV = "JAXNET_LITE_CACHE_DIR"
_FORMAT_VERSION = 1  # bump when the layout of cached arrays changes
_DIGEST_BYTES = 10  # 20 hex digits in the file name
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """The directory for cache entries (not created here)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxnet_lite"


def cache_path(name: str, sources: Sequence[Path]) -> Path:
    """The cache file for dataset `name` decoded from `sources`, named by a digest of their content."""
    return cache_dir() / f"{name}-{content_digest(sources)}.npz"


def content_digest(sources: Sequence[Path]) -> str:
    """A blake2b digest of the format version and each source's length and bytes, in order."""
    digest = hashlib.blake2b(f"jaxnet_lite-cache-v{_FORMAT_VERSION}".encode(), digest_size=_DIGEST_BYTES)
    for source in sources:
        with open(source, "rb") as f:
            digest.update(os.fstat(f.fileno()).st_size.to_bytes(8, "big"))  # no two files' bytes run together
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def entries(name: str) -> list[Path]:
    """The cache files of dataset `name` (normally at most one)."""
    pattern = re.compile(rf"{re.escape(name)}-[0-9a-f]{{{2 * _DIGEST_BYTES}}}\.npz")
    with contextlib.suppress(OSError):
        return sorted(p for p in cache_dir().iterdir() if pattern.fullmatch(p.name))
    return []


def load(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The arrays in cache file `path`, or None when it is absent or unreadable (then rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in keys}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        warnings.warn(f"ignoring unreadable cache file {path} ({err}); it will be rewritten", stacklevel=3)
        return None


def save(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write `arrays` to `path` atomically, then remove the dataset's other entries; failures only warn."""
    try:
        with atomic_open(path) as f:
            np.savez(f, **arrays)
    except OSError as err:
        warnings.warn(
            f"could not write dataset cache {path} ({err}); set {CACHE_DIR_ENV} to a writable directory",
            stacklevel=3,
        )
        return
    _remove_others(path)


def _remove_others(path: Path) -> None:
    """Delete the entries of `path`'s dataset other than `path`: one entry per dataset."""
    name = path.name.rsplit("-", 1)[0]
    for old in entries(name):
        if old != path:
            with contextlib.suppress(OSError):  # another process may have removed it already
                old.unlink()
