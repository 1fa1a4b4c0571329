"""Distributions, as Keras 3 names them: `DataParallel` (params replicated, batch split) and `ModelParallel`
(params split by a `LayoutMap`, batch split over one mesh axis), and the global `set_distribution`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import jax
from jax.sharding import PartitionSpec

from jaxnet_lite.training.distribution.layout import LayoutMap
from jaxnet_lite.training.distribution.mesh import DeviceMesh, list_devices


class Distribution:
    """How variables and batches lie on a `DeviceMesh`: the batch's first axis is split over `batch_dim_name`."""

    def __init__(self, device_mesh: DeviceMesh, batch_dim_name: str | None = None) -> None:
        if not isinstance(device_mesh, DeviceMesh):
            raise TypeError(f"{type(self).__name__}: device_mesh must be a DeviceMesh, "
                            f"got {type(device_mesh).__name__}")
        batch_dim_name = device_mesh.axis_names[0] if batch_dim_name is None else batch_dim_name
        if batch_dim_name not in device_mesh.axis_names:
            raise ValueError(f"{type(self).__name__}: batch_dim_name {batch_dim_name!r} is not an axis of "
                             f"{device_mesh}")
        self.device_mesh = device_mesh
        self.batch_dim_name = batch_dim_name

    @property
    def num_model_replicas(self) -> int:
        """Devices along the batch axis: the batch is padded to a multiple of this."""
        return self.device_mesh.axis_size(self.batch_dim_name)

    @property
    def shards_variables(self) -> bool:
        """Whether some variable may be split (then the train state is created directly in its layout)."""
        return False

    def variable_specs(self, tree: Any) -> Any:
        """A `PartitionSpec` for each variable in `tree` (arrays or shape structs); replicated by default."""
        return jax.tree.map(lambda _: PartitionSpec(), tree)

    @contextlib.contextmanager
    def scope(self) -> Iterator[Distribution]:
        """`with distribution.scope():` models compiled inside use this distribution (Keras' spelling)."""
        previous = get_distribution()
        set_distribution(self)
        try:
            yield self
        finally:
            set_distribution(previous)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.device_mesh}, batch_dim_name={self.batch_dim_name!r})"


class DataParallel(Distribution):
    """Params replicated on every device, the batch split across them (a 1-D mesh named "batch").

    `devices` defaults to every device. Over a given `device_mesh`, the batch is split over its axis named
    "batch" if it has one, else over its first axis.
    """

    def __init__(self, device_mesh: DeviceMesh | None = None, devices: Sequence[Any] | None = None) -> None:
        if device_mesh is not None and devices is not None:
            raise ValueError("DataParallel: pass device_mesh or devices, not both")
        if device_mesh is None:
            devices = list_devices() if devices is None else list(devices)
            device_mesh = DeviceMesh((len(devices),), ("batch",), devices)
        batch = "batch" if isinstance(device_mesh, DeviceMesh) and "batch" in device_mesh.axis_names else None
        super().__init__(device_mesh, batch)


class ModelParallel(Distribution):
    """Variables split as `layout_map` says (unmatched ones replicated), the batch split over `batch_dim_name`
    (default: the mesh's first axis). The mesh is the layout map's; XLA inserts the collectives."""

    def __init__(self, *, layout_map: LayoutMap, batch_dim_name: str | None = None) -> None:
        if not isinstance(layout_map, LayoutMap):
            raise TypeError(f"ModelParallel: layout_map must be a LayoutMap, got {type(layout_map).__name__}")
        super().__init__(layout_map.device_mesh, batch_dim_name)
        self.layout_map = layout_map

    @property
    def shards_variables(self) -> bool:
        return len(self.layout_map) > 0

    def variable_specs(self, tree: Any) -> Any:
        return self.layout_map.specs(tree)


_current: Distribution | None = None


def set_distribution(value: Distribution | None) -> None:
    """Make `value` the distribution of models compiled from now on (None: back to the default)."""
    global _current
    if value is not None and not isinstance(value, Distribution):
        raise TypeError(f"set_distribution: expected a Distribution (DataParallel, ModelParallel) or None, "
                        f"got {type(value).__name__}")
    _current = value


def get_distribution() -> Distribution | None:
    """The distribution set by `set_distribution` (or a `scope()`), None when none is."""
    return _current
