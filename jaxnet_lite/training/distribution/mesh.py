"""`DeviceMesh`: devices arranged in a grid with named axes, Keras 3's face over `jax.sharding.Mesh`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh


def list_devices(device_type: str | None = None) -> list[Any]:
    """The devices JAX sees (of `device_type`, "cpu"/"gpu"/"tpu", when given), as Keras' `list_devices`."""
    return list(jax.devices(device_type.lower()) if device_type else jax.devices())


class DeviceMesh:
    """Devices laid out as `shape`, each axis named (`DeviceMesh((2, 4), ("batch", "model"))`).

    The names are what layouts refer to: the batch is split over the batch axis and a layout map splits
    parameters over the others. `devices` defaults to every device JAX sees; their count must be the
    product of `shape`. `backend_mesh` is the `jax.sharding.Mesh` itself.
    """

    def __init__(self, shape: Sequence[int], axis_names: Sequence[str], devices: Sequence[Any] | None = None) -> None:
        shape, axis_names = tuple(shape or ()), tuple(axis_names or ())
        if not shape or not axis_names:
            raise ValueError(f"DeviceMesh: shape and axis_names must not be empty, got shape={shape}, "
                             f"axis_names={axis_names}")
        if len(shape) != len(axis_names):
            raise ValueError(f"DeviceMesh: shape {shape} and axis_names {axis_names} must have the same length")
        if len(set(axis_names)) != len(axis_names) or not all(isinstance(a, str) and a for a in axis_names):
            raise ValueError(f"DeviceMesh: axis_names must be distinct non-empty strings, got {axis_names}")
        if not all(isinstance(s, (int, np.integer)) and s >= 1 for s in shape):
            raise ValueError(f"DeviceMesh: shape must hold positive integers, got {shape}")
        devices = np.asarray(list_devices() if devices is None else list(devices), dtype=object)
        if math.prod(shape) != devices.size:
            raise ValueError(f"DeviceMesh: shape {shape} needs {math.prod(shape)} devices, got {devices.size}")
        self.backend_mesh = Mesh(devices.reshape(shape), axis_names)

    @classmethod
    def from_backend_mesh(cls, mesh: Mesh) -> DeviceMesh:
        """A `DeviceMesh` over an existing `jax.sharding.Mesh`."""
        return cls(tuple(mesh.devices.shape), tuple(mesh.axis_names), mesh.devices.flat)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.backend_mesh.devices.shape)

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(self.backend_mesh.axis_names)

    @property
    def devices(self) -> np.ndarray:
        return self.backend_mesh.devices

    def axis_size(self, name: str) -> int:
        return int(self.backend_mesh.shape[name])

    def __repr__(self) -> str:
        return f"DeviceMesh(shape={self.shape}, axis_names={self.axis_names})"
