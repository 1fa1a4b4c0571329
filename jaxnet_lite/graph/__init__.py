"""The symbolic graph: `Input`, nodes recorded by calling layers, and `Functional`, the DAG as a `Layer`."""

from jaxnet_lite.graph.functional import Functional
from jaxnet_lite.graph.symbolic import Input, InputLayer, Node, SymbolicTensor, call_layer

__all__ = ["Functional", "Input", "InputLayer", "Node", "SymbolicTensor", "call_layer"]
