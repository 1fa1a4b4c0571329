"""Checkpoints as Orbax directories, for parameters sharded over several processes.

Orbax (`orbax-checkpoint`, the JAX ecosystem's checkpoint engine) writes each array shard by shard from
the process that holds it (TensorStore, OCDBT), so no array is ever gathered onto one host, and reads each
array straight into the shardings the caller asks for, so a checkpoint written by 2 processes restores in
1 and the other way round. `jaxnet_lite.checkpoint` keeps the format's promises (names, mismatch lists, no
pickle) and calls this module for the I/O only; Orbax is imported on first use, so `.npz` checkpoints work
without it.

A checkpoint directory holds two Orbax items: `arrays` (a flat dict of arrays, `leaf_<i>`, in the order of
the header's leaves) and `header` (JSON: the same header an `.npz` checkpoint carries). Every process
must call `write` and `read_arrays` (they are collective); process 0 alone renames directories.
"""

from __future__ import annotations

import glob
import json
import shutil
from pathlib import Path
from typing import Any

import jax
from jax.experimental import multihost_utils

__all__ = ["is_orbax_checkpoint", "write", "read_header", "read_arrays", "leaf_name"]

_ITEMS = ("arrays", "header")
_HEADER_FILE = "metadata"  # the file name Orbax's JsonCheckpointHandler writes an item to


def _orbax() -> Any:
    try:
        import orbax.checkpoint as ocp
    except ImportError as e:
        raise ImportError("Orbax checkpoints (a directory path, format='orbax', or parameters sharded over several "
                          "processes) need orbax-checkpoint: pip install 'jaxnet_lite[distributed]'") from e
    return ocp


def leaf_name(index: int) -> str:
    """The Orbax item key of the header's `index`-th leaf (our key paths may hold `/` and `.`, Orbax's own)."""
    return f"leaf_{index}"


def is_orbax_checkpoint(path: Path) -> bool:
    """Whether `path` is a directory laid out as this module writes it."""
    return path.is_dir() and all((path / item).is_dir() for item in _ITEMS)


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write(path: Path, arrays: dict[str, Any], header: dict) -> None:
    """Write `arrays` (jax arrays keep their shardings) and the JSON `header` as the directory `path`.

    Orbax writes into a temporary directory and renames it when every process has finished (an atomic
    rename on a local or POSIX file system); that finished directory is a hidden sibling of `path`, which
    process 0 then renames over `path`. A reader sees the previous checkpoint or the new one whole, never
    a partial one (while an existing checkpoint is replaced, for the instant between two renames, none).
    """
    ocp = _orbax()
    staging = path.parent / f".{path.name}.orbax-staging"
    previous = path.parent / f".{path.name}.orbax-previous"
    if jax.process_index() == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Left by a save that was killed: our two names, and Orbax's own temporary beside the staging one.
        for leftover in (previous, *path.parent.glob(f"{glob.escape(staging.name)}*")):
            _remove(leftover)
    _barrier("jaxnet_lite orbax save begins")
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        checkpointer.save(staging, ocp.args.Composite(arrays=ocp.args.PyTreeSave(arrays),
                                                      header=ocp.args.JsonSave(header)))
    _barrier("jaxnet_lite orbax save written")
    if jax.process_index() == 0:
        if path.exists() or path.is_symlink():
            path.rename(previous)
        staging.rename(path)
        _remove(previous)
    _barrier("jaxnet_lite orbax save done")


def read_header(path: Path) -> dict:
    """The JSON header of the checkpoint directory `path` (no array is read).

    Read as the plain JSON file Orbax's `JsonCheckpointHandler` wrote, not through `Checkpointer.restore`,
    which waits for every process at a barrier: one process alone may ask what a checkpoint holds.
    """
    return json.loads((path / "header" / _HEADER_FILE).read_text(encoding="utf-8"))


def read_arrays(path: Path, abstract: dict[str, jax.ShapeDtypeStruct]) -> dict[str, jax.Array]:
    """The arrays named in `abstract`, each read straight into its `ShapeDtypeStruct`'s sharding."""
    ocp = _orbax()
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        # Orbax reads whole items: unwanted leaves are left out by a partial restore of the dict.
        restored = checkpointer.restore(path, ocp.args.Composite(
            arrays=ocp.args.PyTreeRestore(item=abstract, restore_args=jax.tree.map(_restore_args, abstract),
                                          partial_restore=True)))
    return dict(restored["arrays"])


def _restore_args(leaf: jax.ShapeDtypeStruct) -> Any:
    return _orbax().ArrayRestoreArgs(sharding=leaf.sharding, global_shape=leaf.shape, dtype=leaf.dtype)
