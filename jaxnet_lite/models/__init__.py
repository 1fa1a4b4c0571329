"""Models: `Sequential`, the functional `Input`/`Model`, and `summary()`; every model is a `Layer`."""

from jaxnet_lite.models.functional import Input, InputLayer, Model, SymbolicTensor
from jaxnet_lite.models.sequential import Sequential

__all__ = ["Input", "InputLayer", "Model", "Sequential", "SymbolicTensor"]
