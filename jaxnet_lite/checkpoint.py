"""Pickle-free, atomic checkpoints for pytrees of arrays.

A checkpoint is an uncompressed NumPy ``.npz`` (a zip of ``.npy`` files) with one
entry per leaf, named by the leaf's key path (``params/dense/kernel``,
``opt_state/0/mu/dense/kernel``), plus one ``__jaxnet_lite_metadata__`` entry: a
uint8 array holding JSON with the format version, each leaf's key, dtype and
shape, a description of the tree structure and the user's metadata dict.

* Key paths join the path entries (dict key, sequence index, attribute name)
  with ``/``; inside an entry ``~`` is written ``~0`` and ``/`` is written ``~1``
  (as in JSON Pointer), so the key string is reversible and keys cannot collide.
* Typed PRNG keys are stored as ``jax.random.key_data`` plus the impl name;
  bfloat16 and other ml_dtypes arrays as a same-width unsigned view plus the
  dtype name. Everything loads with ``allow_pickle=False``; pickle is never used.
* The file is written exactly at the path given (no ``.npz`` is appended),
  atomically: temp file in the same directory, fsync, ``os.replace``.
* ``restore(path)`` returns plain containers (see ``restore``);
  ``restore(path, target)`` checks names, shapes and dtypes against ``target``
  and rebuilds the target's exact tree structure; ``only=`` reads a few
  top-level entries (e.g. the params of a training state) and nothing else.
* ``read_metadata`` and ``read_entries`` read the JSON header only.

The same tree can be written as an Orbax checkpoint directory instead (``checkpoint_orbax``): the same
header and the same checks, but each process writes the shards of the arrays it holds and reads arrays
straight into the target's shardings. ``save`` chooses it when asked (``format="orbax"``, or a path that
ends with ``/`` or is an Orbax checkpoint already) and whenever an array is sharded over several
processes, which an ``.npz`` file could only hold by gathering it onto one host. With several processes
(``jax.distributed``) every process calls ``save`` and ``restore``; only process 0 writes the file (or
renames the directory), and all return once it is complete.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import zipfile
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import ml_dtypes
import numpy as np
from jax.experimental import multihost_utils

from jaxnet_lite import checkpoint_orbax
from jaxnet_lite._version import __version__
from jaxnet_lite.files import atomic_open

__all__ = ["CheckpointError", "CheckpointMismatchError", "save", "restore", "read_metadata", "read_entries"]

FORMAT = "jaxnet_lite.checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "__jaxnet_lite_metadata__"

_MAX_LISTED = 10
_UINT_OF_WIDTH = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_PY_SCALAR_KINDS = {bool: "b", int: "iu", float: "f", complex: "c"}
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members / an empty zip
_FORMATS = ("npz", "orbax")


class CheckpointError(ValueError):
    """A checkpoint cannot be written, read, or does not match the target."""


class CheckpointMismatchError(CheckpointError):
    """The stored leaves differ from the target's; ``problems`` says how, one line each."""

    def __init__(self, path: Path, problems: list[str], message: str | None = None) -> None:
        self.path, self.problems = path, problems
        super().__init__(message or f"Checkpoint '{path}' does not match the target: {self.listing()}")

    def listing(self) -> str:
        """``N mismatch(es):`` and the first few problems, one indented line each."""
        lines = [f"  - {p}" for p in self.problems[:_MAX_LISTED]]
        if len(self.problems) > _MAX_LISTED:
            lines.append(f"  ... and {len(self.problems) - _MAX_LISTED} more")
        return f"{len(self.problems)} mismatch(es):\n" + "\n".join(lines)


# --------------------------------------------------------------------- keys


def _entry_name(entry: Any) -> Any:
    """The raw name of one key-path entry: dict key, index or attribute name."""
    for cls, attr in ((jtu.DictKey, "key"), (jtu.SequenceKey, "idx"),
                      (jtu.GetAttrKey, "name"), (jtu.FlattenedIndexKey, "key")):
        if isinstance(entry, cls):
            return getattr(entry, attr)
    return entry


def _key_string(path: tuple) -> str:
    """``(DictKey('params'), DictKey('a/b'))`` -> ``'params/a~1b'`` (reversible)."""
    return "/".join(
        str(_entry_name(e)).replace("~", "~0").replace("/", "~1") for e in path
    )


def _unique_keys(paths: list[tuple], what: str) -> list[str]:
    """Key strings for ``paths``, refusing collisions and the reserved name."""
    seen: dict[str, tuple] = {}
    for path in paths:
        key = _key_string(path)
        if key == METADATA_KEY:
            raise CheckpointError(f"{what}: leaf name {key!r} is reserved for metadata.")
        if key in seen:
            raise CheckpointError(
                f"{what}: leaves {jtu.keystr(seen[key])} and {jtu.keystr(path)} "
                f"both map to the key {key!r}."
            )
        seen[key] = path
    return list(seen)


def _dtype_name(dtype: Any) -> str:
    """A dtype's stable name: ``float32``, ``bfloat16``, ``key<fry>``."""
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return str(dtype)
    return np.dtype(dtype).name


# ---------------------------------------------------------------- structure

_NAMED_CHILDREN = {"dict": "keys", "namedtuple": "fields", "node": "entries"}  # where the names are


def _describe(node: Any, path: tuple, leaves: list) -> dict:
    """JSON description of ``node``; appends ``(path, leaf)`` in flatten order."""
    if node is None:
        return {"type": "none"}
    # Flatten exactly one level: every child counts as a leaf.
    children, _ = jtu.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)
    if len(children) == 1 and children[0][0] == ():
        leaves.append((path, node))
        return {"type": "leaf", "key": _key_string(path)}
    entries = [p[0] for p, _ in children]
    desc: dict[str, Any]
    if type(node) in (dict, OrderedDict, defaultdict):
        keys = [_entry_name(e) for e in entries]
        desc = {"type": "dict", "keys": [k if type(k) in (str, int) else str(k) for k in keys]}
    elif isinstance(node, tuple) and hasattr(node, "_fields"):
        desc = {"type": "namedtuple", "name": type(node).__name__, "fields": list(node._fields)}
    elif type(node) in (list, tuple):
        desc = {"type": type(node).__name__}
    else:
        desc = {"type": "node", "name": type(node).__qualname__,
                "entries": [str(_entry_name(e)) for e in entries]}
    desc["children"] = [_describe(c, path + p, leaves) for p, c in children]
    return desc


def _rebuild(desc: dict, values: dict[str, jax.Array]) -> Any:
    """Inverse of ``_describe`` with plain containers (NamedTuples -> dicts)."""
    kind = desc["type"]
    if kind == "leaf":
        return values[desc["key"]]
    if kind == "none":
        return None
    children = [_rebuild(c, values) for c in desc["children"]]
    if kind == "list":
        return children
    if kind == "tuple":
        return tuple(children)
    return dict(zip(desc[_NAMED_CHILDREN[kind]], children, strict=True))


# ------------------------------------------------------------------- leaves


def _encode(where: str, path: tuple, leaf: Any) -> tuple[np.ndarray, dict]:
    """Stored array and metadata for one leaf; refuses (``where: ...``) what cannot round-trip."""
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        data = np.asarray(jax.random.key_data(leaf))
        return data, {"dtype": str(leaf.dtype), "shape": list(leaf.shape),
                      "encoding": "prng_key", "key_impl": str(jax.random.key_impl(leaf))}
    if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, *_PY_SCALAR_KINDS)):
        raise CheckpointError(
            f"{where}: leaf {jtu.keystr(path) or '<root>'} is of type "
            f"{type(leaf).__qualname__}; only arrays and Python/NumPy scalars are stored."
        )
    arr = np.asarray(leaf)
    dtype = arr.dtype
    info = {"dtype": dtype.name, "shape": list(arr.shape), "encoding": "array"}
    if dtype.kind in "biufc" and np.dtype(dtype.str) == dtype:  # a builtin NumPy dtype
        return arr, info
    if dtype.itemsize in _UINT_OF_WIDTH and getattr(ml_dtypes, dtype.name, None) is dtype.type:
        return arr.view(_UINT_OF_WIDTH[dtype.itemsize]), {**info, "encoding": "view"}
    raise CheckpointError(
        f"{where}: leaf {jtu.keystr(path) or '<root>'} has dtype {dtype}, which cannot be "
        "stored without pickle."
    )


def _decode(arr: np.ndarray, info: dict) -> jax.Array:
    """Inverse of ``_encode``; checks the stored array against its metadata."""
    if info["encoding"] == "prng_key":
        value = jax.random.wrap_key_data(jnp.asarray(arr), impl=info["key_impl"])
    else:
        if info["encoding"] == "view":
            arr = arr.view(jnp.dtype(info["dtype"]))
        value = arr
    if list(value.shape) != info["shape"] or _dtype_name(value.dtype) != info["dtype"]:
        raise ValueError(f"entry {info['key']!r} does not match its recorded shape/dtype")
    return jnp.asarray(value)


def _sharded_over_processes(leaf: Any) -> bool:
    """A jax array whose values no single process holds whole."""
    return isinstance(leaf, jax.Array) and not leaf.is_fully_addressable and not leaf.is_fully_replicated


def _encode_in_place(where: str, path: tuple, leaf: Any) -> tuple[Any, dict]:
    """Like ``_encode``, but a jax array stays where it is (Orbax writes each shard from its process)."""
    if isinstance(leaf, jax.Array):
        is_key = jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
        data = jax.random.key_data(leaf) if is_key else leaf
        info = {"dtype": _dtype_name(leaf.dtype), "shape": list(leaf.shape),
                "encoding": "prng_key" if is_key else "array"}
        if is_key:
            info["key_impl"] = str(jax.random.key_impl(leaf))
    else:
        _, info = _encode(where, path, leaf)  # refuses what cannot be stored without pickle
        data = np.asarray(leaf)
        info["encoding"] = "array"  # Orbax stores bfloat16 and friends as they are: no uint view
    return data, {**info, "stored_shape": list(data.shape), "stored_dtype": _dtype_name(data.dtype)}


def _decode_in_place(value: jax.Array, info: dict) -> jax.Array:
    """Inverse of ``_encode_in_place`` for an array Orbax read back (already on its devices)."""
    if info["encoding"] == "prng_key":
        value = jax.random.wrap_key_data(value, impl=info["key_impl"])
    if list(value.shape) != info["shape"] or _dtype_name(value.dtype) != info["dtype"]:
        raise ValueError(f"entry {info['key']!r} does not match its recorded shape/dtype")
    return value


# ----------------------------------------------------------------- writing


def _write_array(fp: Any, arr: np.ndarray) -> None:
    """Write one ``.npy`` member (never pickled)."""
    np.lib.format.write_array(fp, arr, allow_pickle=False)


def _write_npz(f: Any, entries: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in entries.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                _write_array(member, arr)


def _library_version() -> str:
    return __version__


def _choose_format(given: str | os.PathLike, leaves: list[tuple[tuple, Any]], format: str | None,
                   where: str) -> str:
    """``"npz"`` or ``"orbax"``: as asked, else Orbax for a directory path or arrays sharded over processes."""
    if format is not None and format not in _FORMATS:
        raise CheckpointError(f"{where}: format must be 'npz', 'orbax' or None (chosen from the path), got {format!r}.")
    sharded = [jtu.keystr(p) for p, leaf in leaves if _sharded_over_processes(leaf)]
    if format == "npz" and sharded:
        raise CheckpointError(f"{where}: leaf {sharded[0]} is sharded over several processes, and an .npz file "
                              "would gather it onto one host; save it with format='orbax' (a directory).")
    if format is not None:
        return format
    text = os.fspath(given)
    directory = text.endswith(os.sep) or (os.altsep is not None and text.endswith(os.altsep))
    return "orbax" if sharded or directory or checkpoint_orbax.is_orbax_checkpoint(Path(text)) else "npz"


def _barrier(name: str) -> None:
    """With several processes, wait until all reach ``name`` (process 0 has finished writing)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def save(path: str | os.PathLike, tree: Any, metadata: Mapping[str, Any] | None = None, *,
         format: str | None = None) -> Path:
    """Atomically write ``tree`` (a pytree of arrays) to ``path``; return the path.

    ``path`` is used exactly as given (no ``.npz`` suffix is added) and its parent
    directories are created. ``metadata`` is a JSON-serialisable dict, returned
    by ``read_metadata``. Leaves must be arrays or Python/NumPy scalars. Errors
    name ``path``; an OSError keeps its class (see ``files.atomic_open``, which
    also removes temporaries left by saves of ``path`` that were killed).
    ``format`` is ``"npz"`` (one file), ``"orbax"`` (a directory, written shard by
    shard; needs orbax-checkpoint) or None: Orbax when ``path`` ends with ``/`` or
    holds an Orbax checkpoint, or when an array is sharded over several processes.
    """
    given, path = path, Path(path)
    where = f"Cannot save to '{path}'"
    if metadata is not None and not isinstance(metadata, Mapping):
        raise CheckpointError(f"{where}: metadata must be a dict, got {type(metadata).__name__}.")
    leaves: list[tuple[tuple, Any]] = []
    structure = _describe(tree, (), leaves)
    keys = _unique_keys([p for p, _ in leaves], where)
    in_place = _choose_format(given, leaves, format, where) == "orbax"
    encode = _encode_in_place if in_place else _encode
    arrays, infos = {}, []
    for key, (leaf_path, leaf) in zip(keys, leaves):
        arrays[key], info = encode(where, leaf_path, leaf)
        infos.append({"key": key, **info})
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "jaxnet_lite_version": _library_version(),
        "leaves": infos,
        "structure": structure,
        "metadata": dict(metadata or {}),
    }
    try:
        blob = json.dumps(header).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: metadata is not JSON-serialisable ({e}).") from e
    if in_place:
        if path.exists() and not path.is_dir():
            raise CheckpointError(f"{where}: an Orbax checkpoint is a directory, and this path is a file.")
        if path.is_dir() and any(path.iterdir()) and not checkpoint_orbax.is_orbax_checkpoint(path):
            raise CheckpointError(f"{where}: it is a directory holding other files, not a checkpoint; it is "
                                  "left as it is (save to a new or empty directory).")
        header["container"] = "orbax"
        checkpoint_orbax.write(path, {checkpoint_orbax.leaf_name(i): arrays[k] for i, k in enumerate(keys)}, header)
        return path
    arrays[METADATA_KEY] = np.frombuffer(blob, dtype=np.uint8)
    if jax.process_index() == 0:  # several processes: one writes, all return once the file is whole
        with atomic_open(path) as f:
            _write_npz(f, arrays)
    _barrier("jaxnet_lite checkpoint saved")
    return path


# ----------------------------------------------------------------- reading


def _not_a_checkpoint(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"'{path}' is not a jaxnet_lite checkpoint: {why}.")


@contextlib.contextmanager
def _corruption_guard(path: Path):
    """Turn low-level read errors into a CheckpointError naming ``path``."""
    try:
        yield
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError,
            TypeError, struct.error) as e:
        raise CheckpointError(
            f"Checkpoint '{path}' is corrupted or truncated ({type(e).__name__}: {e})."
        ) from e


def _refuse_pickles(path: Path, zf: zipfile.ZipFile) -> None:
    """Check every member is a plain ``.npy`` array by reading headers only."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    for name in zf.namelist():
        if not name.endswith(".npy"):
            raise _not_a_checkpoint(path, f"unexpected entry {name!r}")
        with zf.open(name) as member:
            reader = readers.get(np.lib.format.read_magic(member))
            if reader is None:
                raise _not_a_checkpoint(path, f"entry {name!r} has an unsupported .npy version")
            _, _, dtype = reader(member)
        if dtype.hasobject:
            raise CheckpointError(
                f"'{path}' contains pickled Python objects (entry {name[:-4]!r}); "
                "pickled data is refused and never loaded."
            )


def _read_member(zf: zipfile.ZipFile, key: str) -> np.ndarray:
    # zf.read verifies the CRC, so flipped bytes are detected.
    return np.lib.format.read_array(io.BytesIO(zf.read(key + ".npy")), allow_pickle=False)


def _every_key(key: str) -> bool:
    """Read every leaf."""
    return True


def _no_key(key: str) -> bool:
    """Read the header only."""
    return False


def _load(path: str | os.PathLike,
          wanted: Callable[[str], bool] = _every_key) -> tuple[dict, dict[str, np.ndarray]]:
    """Read the JSON header and the leaf arrays whose keys are ``wanted``; other leaves stay unread."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint file at '{path}'.")
    if path.is_dir():
        if not checkpoint_orbax.is_orbax_checkpoint(path):
            raise _not_a_checkpoint(path, "it is a directory, and not an Orbax checkpoint written by save")
        with _corruption_guard(path):
            return _checked_header(path, checkpoint_orbax.read_header(path)), {}  # arrays: `_read_in_place`
    with _corruption_guard(path):
        with open(path, "rb") as f:
            if f.read(4) not in _ZIP_MAGICS:
                raise _not_a_checkpoint(path, "not an .npz (zip) archive")
        with zipfile.ZipFile(path) as zf:
            _refuse_pickles(path, zf)
            if METADATA_KEY + ".npy" not in zf.namelist():
                raise _not_a_checkpoint(path, f"no {METADATA_KEY!r} entry")
            header = _checked_header(path, json.loads(_read_member(zf, METADATA_KEY).tobytes().decode("utf-8")))
            keys = [i["key"] for i in header["leaves"] if wanted(i["key"])]
            arrays = {key: _read_member(zf, key) for key in keys}
    return header, arrays


def _checked_header(path: Path, header: Any) -> dict:
    """``header`` when it is one this version reads; else a clear error."""
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _not_a_checkpoint(path, "bad format tag")
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"Checkpoint '{path}' has format_version {header.get('format_version')!r}; "
            f"this jaxnet_lite reads version {FORMAT_VERSION}."
        )
    return header


def _read_in_place(path: Path, header: dict, infos: dict[str, dict], targets: dict[str, Any]) -> dict[str, Any]:
    """The leaves ``infos`` of an Orbax checkpoint, each read into its target's sharding (this process's
    first device for a target that has none), decoded."""
    index = {info["key"]: i for i, info in enumerate(header["leaves"])}
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = {}
    for key, info in infos.items():
        sharding = getattr(targets.get(key), "sharding", None) or local
        abstract[checkpoint_orbax.leaf_name(index[key])] = jax.ShapeDtypeStruct(
            tuple(info["stored_shape"]), jnp.dtype(info["stored_dtype"]), sharding=sharding)
    read = checkpoint_orbax.read_arrays(path, abstract)
    return {key: _decode_in_place(read[checkpoint_orbax.leaf_name(index[key])], info) for key, info in infos.items()}


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The user ``metadata`` dict stored by ``save`` (leaf data is not read)."""
    return _load(path, _no_key)[0]["metadata"]


def read_entries(path: str | os.PathLike) -> list[Any]:
    """Names of the saved tree's top-level entries (dict keys, NamedTuple fields), leaf data unread.

    Empty when the tree is a leaf, a list or a tuple. Lets a reader tell what a file holds
    (``["params", "state"]``, or a training state's fields) before restoring it.
    """
    structure = _load(path, _no_key)[0]["structure"]
    return list(structure.get(_NAMED_CHILDREN.get(structure["type"], ""), []))


def _expected(leaf: Any) -> tuple[tuple[int, ...], str, Callable[[str], bool]] | None:
    """(shape, dtype description, dtype check) of a target leaf, or None if unusable."""
    kind = _PY_SCALAR_KINDS.get(type(leaf))
    if kind is not None:  # Python scalars are weakly typed: accept any width.
        return (), f"Python {type(leaf).__name__}", lambda saved: _kind(saved) in kind
    if not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")):
        return None
    name = _dtype_name(leaf.dtype)
    return tuple(leaf.shape), name, lambda saved: saved == name


def _kind(dtype_name: str) -> str:
    try:
        return np.dtype(dtype_name).kind
    except TypeError:
        return "?"


def _mismatches(saved: dict[str, dict], target: dict[str, Any]) -> list[str]:
    problems = []
    for key, leaf in target.items():
        spec = _expected(leaf)
        if spec is None:
            kind = type(leaf).__qualname__
            problems.append(f"{key!r}: target leaf of type {kind} is not an array/ShapeDtypeStruct")
            continue
        shape, dtype, dtype_ok = spec
        info = saved.get(key)
        if info is None:
            problems.append(f"missing from checkpoint: {key!r} (expected shape {shape}, {dtype})")
            continue
        saved_shape = tuple(info["shape"])
        if saved_shape != shape:
            problems.append(f"{key!r}: shape {saved_shape} in checkpoint vs {shape} expected")
        if not dtype_ok(info["dtype"]):
            problems.append(f"{key!r}: dtype {info['dtype']} in checkpoint vs {dtype} expected")
    for key, info in saved.items():
        if key not in target:
            shape = tuple(info["shape"])
            problems.append(f"unexpected in checkpoint: {key!r} (shape {shape}, {info['dtype']})")
    return problems


def _top_entry(key: str) -> str:
    """``'params/dense/kernel'`` -> ``'params'`` (``/`` inside a name is escaped, so this is exact)."""
    return key.split("/", 1)[0]


def _only_entries(structure: dict, only: Collection[Any], path: Path) -> dict:
    """A dict structure with just the top-level entries named in ``only``; refuses absent names."""
    names = structure.get(_NAMED_CHILDREN.get(structure["type"], ""), [])
    children = dict(zip(names, structure.get("children", [])))
    missing = [name for name in only if name not in children]
    if missing:
        raise CheckpointError(
            f"Checkpoint '{path}' has no top-level entry {', '.join(map(repr, missing))} "
            f"(its entries: {', '.join(map(repr, names)) or 'none'})."
        )
    return {"type": "dict", "keys": list(only), "children": [children[name] for name in only]}


def restore(path: str | os.PathLike, target: Any = None, *,
            only: Collection[Any] | None = None) -> Any:
    """Read a checkpoint written by ``save``; leaves come back as jax arrays.

    Without ``target``: dicts, lists, tuples and None are rebuilt as saved;
    NamedTuples (e.g. Optax states) and other custom nodes come back as dicts of
    their fields. With ``target`` (same structure; leaves are arrays, scalars or
    ``jax.ShapeDtypeStruct``s): every key, shape and dtype is checked, and the
    result has the target's exact treedef. Mismatches raise
    ``CheckpointMismatchError``. ``only`` names top-level entries (dict keys,
    NamedTuple fields) to restore, e.g. ``("params", "state")`` of a training
    state: the other entries are neither read nor compared, and without
    ``target`` the result is a dict of just those entries.
    Float64/int64 values follow JAX's x64 setting when converted to jax arrays.
    An Orbax checkpoint (a directory) is read the same way; each array goes straight into the sharding of
    its target leaf (a jax array or a ``ShapeDtypeStruct`` with a sharding), so a checkpoint written by
    any number of processes restores into the current run's devices.
    """
    path = Path(path)
    if isinstance(only, str):
        only = (only,)
    tops = None if only is None else {_key_string((name,)) for name in only}
    wanted = _every_key if tops is None else (lambda key: _top_entry(key) in tops)
    header, arrays = _load(path, wanted)
    with _corruption_guard(path):
        infos = {i["key"]: i for i in header["leaves"] if wanted(i["key"])}
        if target is None:
            structure = header["structure"]
            if only is not None:
                structure = _only_entries(structure, only, path)
            if header.get("container") == "orbax":
                values = _read_in_place(path, header, infos, {})
            else:
                values = {k: _decode(arrays[k], i) for k, i in infos.items()}
            return _rebuild(structure, values)
    flat, treedef = jtu.tree_flatten_with_path(target)
    keys = _unique_keys([p for p, _ in flat], f"Cannot restore '{path}'")
    problems = _mismatches(infos, dict(zip(keys, (leaf for _, leaf in flat))))
    if problems:
        raise CheckpointMismatchError(path, problems)
    with _corruption_guard(path):
        if header.get("container") == "orbax":
            values = _read_in_place(path, header, infos, dict(zip(keys, (leaf for _, leaf in flat))))
            return jtu.tree_unflatten(treedef, [values[k] for k in keys])
        return jtu.tree_unflatten(treedef, [_decode(arrays[k], infos[k]) for k in keys])
