"""The layer protocol: `Layer`, `Variables`, naming, rng splitting and shapes. Imports nothing else of
the package; everything else imports it."""

from jaxnet_lite.core.layer import (
    Array,
    Layer,
    PyTree,
    Variables,
    claim_names,
    iter_layers,
    register_symbolic_call,
)
from jaxnet_lite.core.masking import Masked, is_masked, split_mask, strip_mask, with_mask
from jaxnet_lite.core.naming import snake_case, unique_name
from jaxnet_lite.core.rng import split_rng
from jaxnet_lite.core.shapes import SPATIAL_AXES, LayerError, Shape, as_tuple, normalize_shape, shape_str

__all__ = [
    "SPATIAL_AXES",
    "Array",
    "Layer",
    "LayerError",
    "Masked",
    "PyTree",
    "Shape",
    "Variables",
    "as_tuple",
    "claim_names",
    "is_masked",
    "iter_layers",
    "normalize_shape",
    "register_symbolic_call",
    "shape_str",
    "snake_case",
    "split_mask",
    "split_rng",
    "strip_mask",
    "unique_name",
    "with_mask",
]
