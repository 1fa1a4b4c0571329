"""Keras 3's `keras.distribution`: split the batch (`DataParallel`) or the parameters too (`ModelParallel`
with a `LayoutMap`) over a `DeviceMesh`.

    mesh = DeviceMesh((2, 4), ("batch", "model"))
    layout_map = LayoutMap(mesh)
    layout_map["dense.*kernel"] = (None, "model")
    model.compile(..., distribution=ModelParallel(layout_map=layout_map))   # or set_distribution(...)
"""

from jaxnet_lite.training.distribution import (
    DataParallel,
    DeviceMesh,
    Distribution,
    LayoutMap,
    ModelParallel,
    get_distribution,
    list_devices,
    set_distribution,
)

distribution = get_distribution  # Keras' name: `keras.distribution.distribution()`

__all__ = [
    "DataParallel",
    "DeviceMesh",
    "Distribution",
    "LayoutMap",
    "ModelParallel",
    "distribution",
    "get_distribution",
    "list_devices",
    "set_distribution",
]
