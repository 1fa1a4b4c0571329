"""Distribution over several devices: a `DeviceMesh`, a `LayoutMap` of parameter-path patterns to
`PartitionSpec`s, and Keras 3's `DataParallel` / `ModelParallel`; XLA inserts the collectives."""

from jaxnet_lite.training.distribution.layout import LayoutMap, path_string
from jaxnet_lite.training.distribution.mesh import DeviceMesh, list_devices
from jaxnet_lite.training.distribution.placement import mirror_params, train_state_shardings
from jaxnet_lite.training.distribution.strategies import (
    DataParallel,
    Distribution,
    ModelParallel,
    get_distribution,
    set_distribution,
)

__all__ = [
    "DataParallel",
    "DeviceMesh",
    "Distribution",
    "LayoutMap",
    "ModelParallel",
    "get_distribution",
    "list_devices",
    "mirror_params",
    "path_string",
    "set_distribution",
    "train_state_shardings",
]
