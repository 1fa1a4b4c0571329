"""An on-disk cache of decoded datasets as uncompressed `.npz`, so a second load skips gunzip.

Entries are keyed by the source files' resolved paths, sizes and modification times: editing or
replacing a source file makes a new key, so a stale entry is never read. Writes are atomic.
The cache directory is `$JAXNET_LITE_CACHE_DIR`, else `$XDG_CACHE_HOME/jaxnet_lite`, else
`~/.cache/jaxnet_lite`; it is safe to delete at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from jaxnet_lite.files import atomic_open

CACHE_DIR_ENV = "JAXNET_LITE_CACHE_DIR"
_FORMAT_VERSION = 1  # bump when the layout of cached arrays changes


def cache_dir() -> Path:
    """The directory for cache entries (not created here)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxnet_lite"


def cache_path(name: str, sources: Sequence[Path]) -> Path:
    """The cache file for dataset `name` decoded from `sources` (path, size and mtime of each)."""
    stats = []
    for source in sources:
        st = source.stat()
        stats.append([str(source.resolve()), st.st_size, st.st_mtime_ns])
    blob = json.dumps({"name": name, "version": _FORMAT_VERSION, "sources": stats}).encode()
    return cache_dir() / f"{name}-{hashlib.sha256(blob).hexdigest()[:20]}.npz"


def load(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The arrays in cache file `path`, or None when it is absent or unreadable (then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in keys}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        warnings.warn(f"ignoring unreadable cache file {path} ({err}); it will be rewritten", stacklevel=3)
        return None


def save(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write `arrays` to `path` atomically; a cache that cannot be written only warns."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as f:
            np.savez(f, **arrays)
    except OSError as err:
        warnings.warn(
            f"could not write dataset cache {path} ({err}); set {CACHE_DIR_ENV} to a writable directory",
            stacklevel=3,
        )
