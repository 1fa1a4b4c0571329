"""Several processes, one program: what `fit` needs to know about the other processes of a run.

Under `jax.distributed` every process runs the same script on its own devices, and the devices of all
processes form one global mesh. Each process hands `fit` its own block of rows; the blocks are gathered
here so that every process holds the same data, the same train state and the same logs, and compiled
programs run in lockstep. With one process every function here is the identity or plain `device_put`.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec, Sharding

__all__ = ["is_primary", "several_processes", "gather_rows", "put", "local_copy", "barrier", "primary_output",
           "global_batch", "agree_on_batch"]


def several_processes() -> bool:
    """Whether this program runs as several processes (`jax.distributed`)."""
    return jax.process_count() > 1


def is_primary() -> bool:
    """Whether this is process 0, the one that prints and writes files."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier `name` (nothing with one process)."""
    if several_processes():
        multihost_utils.sync_global_devices(name)


@contextlib.contextmanager
def primary_output() -> Iterator[None]:
    """Discard what is printed to stdout inside the block on every process but process 0."""
    if is_primary():
        yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def _signature(tree: Any) -> int:
    """A number naming the tree's structure and each leaf's example shape and dtype (not its row count)."""
    leaves, treedef = jax.tree.flatten(tree)
    text = repr((str(treedef), [(np.shape(a)[1:], np.asarray(a).dtype.str) for a in leaves]))
    return zlib.crc32(text.encode())


def gather_rows(tree: Any, where: str) -> Any:
    """The global arrays, on every process: each process's block of rows, concatenated in process order.

    Every leaf's first axis indexes examples. Blocks may differ in length; the example shapes, dtypes
    and the tree structure must agree, else a clear error names the processes' row counts and shapes.
    """
    if not several_processes() or tree is None:
        return tree
    tree = jax.tree.map(np.asarray, tree)
    leaves, treedef = jax.tree.flatten(tree)
    if not leaves:  # nothing passed: the caller's own checks say so
        return tree
    rows = {int(np.shape(a)[0]) if np.ndim(a) else -1 for a in leaves}
    local_rows = rows.pop() if len(rows) == 1 else -1
    info = multihost_utils.process_allgather(np.array([local_rows, _signature(tree)], np.int64))
    counts, signatures = info[:, 0].tolist(), set(info[:, 1].tolist())
    if min(counts) < 0:
        raise ValueError(f"{where}: with several processes every array passed must have one row count on each "
                         f"process (rows per process: {counts}); this process has shapes "
                         f"{[np.shape(a) for a in leaves]}")
    if len(signatures) > 1:
        raise ValueError(f"{where}: the processes passed arrays of different example shapes or dtypes; this "
                         f"process (index {jax.process_index()}) has shapes {[np.shape(a) for a in leaves]} and "
                         f"dtypes {[a.dtype.name for a in leaves]} (rows per process: {counts})")
    longest = max(counts)
    padded = [np.concatenate([a, np.zeros((longest - a.shape[0], *a.shape[1:]), a.dtype)]) for a in leaves]
    stacked = multihost_utils.process_allgather(padded)  # each leaf: (processes, longest, ...)
    merged = [np.concatenate([s[p, :count] for p, count in enumerate(counts)]) for s in stacked]
    return jax.tree.unflatten(treedef, merged)


def _is_key(a: Any) -> bool:
    return isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)


def put(tree: Any, sharding: Any) -> Any:
    """`jax.device_put(tree, sharding)` (one sharding, or a tree of them matching `tree`); with several
    processes, also for arrays committed to this process's devices (which `device_put` refuses to move onto
    other processes' devices). Every process must pass the same values: each contributes its devices' part,
    nothing is checked or sent between processes."""
    if not several_processes():
        return jax.device_put(tree, sharding)

    def one(a: Any, sharding: Sharding) -> Any:
        if isinstance(a, jax.Array) and a.sharding.device_set == sharding.device_set:
            return jax.device_put(a, sharding)
        if _is_key(a):
            return jax.random.wrap_key_data(one(jax.random.key_data(a), sharding), impl=jax.random.key_impl(a))
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    if isinstance(sharding, Sharding):
        return jax.tree.map(lambda a: one(a, sharding), tree)
    return jax.tree.map(one, tree, sharding)


def local_copy(tree: Any) -> Any:
    """Replicated global arrays as arrays on this process's first device, for work without collectives
    (`predict` on this process's own rows)."""
    if not several_processes():
        return tree
    device = jax.local_devices()[0]

    def one(a: Any) -> Any:
        if not isinstance(a, jax.Array) or a.is_fully_addressable:
            return a
        if not a.is_fully_replicated:
            raise ValueError("predict with several processes needs the model's variables replicated on every "
                             f"device; one has shape {a.shape} and sharding {a.sharding}")
        return jax.device_put(a.addressable_data(0), device)

    return jax.tree.map(one, tree)


def global_batch(tree: Any, mesh: Mesh) -> Any:
    """This process's rows of a batch, as the global batch (every process's rows, in process order),
    split over the mesh's batch axis."""
    sharding = NamedSharding(mesh, PartitionSpec("batch"))
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), tree)


def agree_on_batch(rows: int | None) -> list[int | None]:
    """Every process's row count of its next batch (None: its data ran out), so all stop together."""
    counts = multihost_utils.process_allgather(np.int64(-1 if rows is None else rows)).tolist()
    return [None if c < 0 else int(c) for c in counts]
