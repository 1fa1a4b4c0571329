"""The Keras face: `Sequential`, the functional `Model`, `summary()`, `compile`/`fit`/... and weights I/O."""

from jaxnet_lite.graph import Input, InputLayer, SymbolicTensor
from jaxnet_lite.models.model import Model
from jaxnet_lite.models.saving import SavingError, load_model, register_serializable
from jaxnet_lite.models.sequential import Sequential

__all__ = ["Input", "InputLayer", "Model", "SavingError", "Sequential", "SymbolicTensor", "load_model",
           "register_serializable"]
