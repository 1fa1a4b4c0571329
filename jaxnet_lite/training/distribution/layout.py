"""`LayoutMap`: regex patterns on parameter paths to `PartitionSpec`s over a `DeviceMesh` (Keras 3's idea).

A parameter's path is its keys in the params tree joined by '/' (`dense_1/kernel`,
`multi_head_attention/query/kernel`). Lookup is an exact key first, then the first pattern, in the order
they were added, that `re.search` finds in the path; a path no pattern finds stays replicated. A spec
names, per dimension, the mesh axis (or tuple of axes) that dimension is split over, or None.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any

import jax
from jax.sharding import PartitionSpec

from jaxnet_lite.training.distribution.mesh import DeviceMesh

SpecLike = PartitionSpec | Sequence[Any]


def path_string(keypath: Sequence[Any]) -> str:
    """A tree key path as the '/'-joined string layouts match against (`dense/kernel`, `0/mu/dense/bias`)."""

    def name(entry: Any) -> str:
        for attr in ("key", "idx", "name"):
            if hasattr(entry, attr):
                return str(getattr(entry, attr))
        return str(entry)

    return "/".join(name(e) for e in keypath)


def as_partition_spec(value: SpecLike | None, where: str) -> PartitionSpec:
    """`value` (a `PartitionSpec`, or a tuple/list of axis names, tuples of names and None) as a `PartitionSpec`."""
    if value is None:
        return PartitionSpec()
    if isinstance(value, (str, bytes)) or not isinstance(value, (PartitionSpec, tuple, list)):
        raise TypeError(f"{where}: a layout is a PartitionSpec or a tuple of mesh axis names and None (one entry "
                        f"per dimension), got {value!r}")
    entries = []
    for entry in value:
        names = entry if isinstance(entry, (tuple, list)) else (entry,)
        if entry is not None and not all(isinstance(n, str) and n for n in names):
            raise TypeError(f"{where}: each entry of layout {tuple(value)!r} must be None, a mesh axis name or a "
                            f"tuple of axis names, got {entry!r}")
        entries.append(tuple(entry) if isinstance(entry, list) else entry)
    return PartitionSpec(*entries)


def spec_axes(spec: PartitionSpec) -> list[str]:
    """Every mesh axis name a spec uses, in order."""
    return [n for entry in spec if entry is not None for n in (entry if isinstance(entry, tuple) else (entry,))]


def check_axes(spec: PartitionSpec, mesh: DeviceMesh, where: str) -> None:
    """Every axis `spec` names is an axis of `mesh`, used once."""
    axes = spec_axes(spec)
    unknown = [a for a in axes if a not in mesh.axis_names]
    if unknown:
        raise ValueError(f"{where}: layout {spec} names axes {unknown} that {mesh} does not have")
    if len(set(axes)) != len(axes):
        raise ValueError(f"{where}: layout {spec} uses a mesh axis twice; each axis may split one dimension only")


def check_fits(path: str, shape: Sequence[int], spec: PartitionSpec, mesh: DeviceMesh) -> None:
    """`spec` has one entry per dimension of the parameter (or none: replicated), and each split dimension
    divides evenly over the devices of its axes; otherwise a ValueError naming the path, shape, spec and mesh."""
    shape = tuple(shape)
    where = f"LayoutMap: parameter '{path}' of shape {shape} with layout {spec} on {mesh}"
    check_axes(spec, mesh, where)
    if len(spec) == 0:
        return
    if len(spec) != len(shape):
        raise ValueError(f"{where}: the layout has {len(spec)} entries but the parameter has {len(shape)} "
                         "dimensions; give one entry per dimension (None for a dimension not split)")
    for dim, (size, entry) in enumerate(zip(shape, spec)):
        if entry is None:
            continue
        names = entry if isinstance(entry, tuple) else (entry,)
        parts = math.prod(mesh.axis_size(n) for n in names)
        if size % parts:
            raise ValueError(f"{where}: dimension {dim} (size {size}) does not split evenly over {parts} devices "
                             f"of axis {entry!r}")


class LayoutMap(MutableMapping):
    """Ordered `pattern -> PartitionSpec` rules for parameter paths on one `DeviceMesh`, as Keras 3's:

        layout_map = LayoutMap(DeviceMesh((2, 4), ("batch", "model")))
        layout_map["dense.*kernel"] = (None, "model")
        layout_map["dense.*bias"] = ("model",)
        layout_map["dense_1/kernel"]        # PartitionSpec(None, 'model'); None where no pattern matches

    Values may be a `PartitionSpec` or a tuple of axis names and None; they are stored as `PartitionSpec`s.
    """

    def __init__(self, device_mesh: DeviceMesh) -> None:
        if not isinstance(device_mesh, DeviceMesh):
            raise TypeError(f"LayoutMap: device_mesh must be a DeviceMesh, got {type(device_mesh).__name__}")
        self._device_mesh = device_mesh
        self._rules: dict[str, tuple[re.Pattern, PartitionSpec]] = {}

    @property
    def device_mesh(self) -> DeviceMesh:
        return self._device_mesh

    def __setitem__(self, pattern: str, layout: SpecLike) -> None:
        where = f"LayoutMap[{pattern!r}]"
        if not isinstance(pattern, str):
            raise TypeError(f"LayoutMap: keys are regex patterns (str), got {pattern!r}")
        if pattern in self._rules:
            raise ValueError(f"{where} is already set to {self._rules[pattern][1]}; each pattern may be set once")
        try:
            compiled = re.compile(pattern)
        except re.error as e:
            raise ValueError(f"{where}: not a valid regular expression ({e})") from None
        spec = as_partition_spec(layout, where)
        check_axes(spec, self._device_mesh, where)
        self._rules[pattern] = (compiled, spec)

    def __getitem__(self, path: str) -> PartitionSpec | None:
        """The spec of `path`: an exact key, else the first pattern (in insertion order) that `re.search`
        finds in it, else None (replicated)."""
        if path in self._rules:
            return self._rules[path][1]
        for compiled, spec in self._rules.values():
            if compiled.search(path):
                return spec
        return None

    def __delitem__(self, pattern: str) -> None:
        del self._rules[pattern]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def spec_for(self, path: str, shape: Sequence[int]) -> PartitionSpec:
        """The checked spec of the parameter at `path` with `shape` (`PartitionSpec()` when none matches)."""
        spec = self[path]
        if spec is None:
            return PartitionSpec()
        check_fits(path, shape, spec, self._device_mesh)
        return spec

    def specs(self, tree: Any) -> Any:
        """A tree like `tree` (arrays or `jax.ShapeDtypeStruct`s) of each leaf's checked `PartitionSpec`."""
        return jax.tree_util.tree_map_with_path(lambda kp, leaf: self.spec_for(path_string(kp), leaf.shape), tree)

    def __repr__(self) -> str:
        rules = ", ".join(f"{p!r}: {s}" for p, (_, s) in self._rules.items())
        return f"LayoutMap({self._device_mesh}, {{{rules}}})"
