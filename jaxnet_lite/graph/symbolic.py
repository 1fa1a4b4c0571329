"""Symbolic tensors: `Input` makes one, calling a layer on them records a `Node`.

    inputs = Input((4,)); x = Dense(32, activation="relu")(inputs); outputs = Dense(3)(x)

The protocol's `Layer.__call__` forwards here (`register_symbolic_call`): the graph sits above the
protocol, so the protocol never imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp

from jaxnet_lite.core import Layer, LayerError, normalize_shape, register_symbolic_call


class SymbolicTensor:
    """A placeholder for a batch flowing through the graph; `.shape` has `None` for the batch axis like Keras."""

    def __init__(self, shape: tuple[int, ...], dtype: Any, node: Node, index: int = 0) -> None:
        self.item_shape = tuple(shape)
        self.dtype = jnp.dtype(dtype)
        self.node = node
        self.index = index

    @property
    def shape(self) -> tuple[int | None, ...]:
        return (None, *self.item_shape)

    @property
    def name(self) -> str:
        return self.node.layer.name

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape={self.shape} dtype={self.dtype.name} from {self.node.layer.describe()}>"


@dataclass(eq=False)
class Node:
    """One call of a layer: its input tensors (one or a list) and its output tensors."""

    layer: Layer
    inputs: Any  # SymbolicTensor | list[SymbolicTensor] | None (for Input)
    outputs: list[SymbolicTensor] = field(default_factory=list)
    #: The layer that runs this call: `layer` itself, or a copy configured by the call's options
    #: (`Layer.bind_call`), which shares `layer`'s name and params.
    runner: Layer | None = None
    #: The call as written, `(inputs, args, kwargs)`, so a saved model can replay it.
    call: tuple | None = None

    def __post_init__(self) -> None:
        if self.runner is None:
            self.runner = self.layer

    def input_list(self) -> list[SymbolicTensor]:
        if self.inputs is None:
            return []
        return list(self.inputs) if isinstance(self.inputs, (list, tuple)) else [self.inputs]


class InputLayer(Layer):
    """The layer behind `Input(shape)`: it holds the shape and dtype of one model input."""

    autocast = False  # its dtype is the data's, not a compute policy: inputs pass as they are

    def __init__(self, shape: Sequence[int], dtype: Any = "float32", name: str | None = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.shape = normalize_shape(shape, what="Input shape")

    def call(self, params, state, x, *, rng=None, training=False):
        return x, state

    def compute_output_shape(self, input_shape):
        return self.shape


def Input(shape: Sequence[int] | int, dtype: Any = "float32", name: str | None = None,
          batch_size: int | None = None) -> SymbolicTensor:
    """A symbolic model input of `shape` (no batch axis), as `keras.Input`."""
    if isinstance(shape, int):
        shape = (shape,)
    if shape is None or any(d is None for d in shape):
        raise LayerError(f"Input: shape must be fully known (no None except the batch axis), got {shape!r}")
    layer = InputLayer(shape, dtype, name)
    node = Node(layer, None)
    node.outputs = [SymbolicTensor(layer.shape, dtype, node)]
    return node.outputs[0]


def call_layer(layer: Layer, inputs: Any, *args: Any, **kwargs: Any) -> Any:
    """`layer(symbolic_inputs)`: check shapes now (errors name the layer), record a node, return its outputs."""
    call_inputs = inputs
    inputs, runner = layer.bind_call(inputs, *args, **kwargs)
    flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if not flat or not all(isinstance(t, SymbolicTensor) for t in flat):
        raise LayerError(
            f"{layer.describe()} was called on {type(inputs).__name__}: calling a layer builds a functional "
            "graph from Input(...) tensors. To compute on arrays, use "
            "`variables = layer.init(rng, input_shape)` and `layer.apply(params, state, x)`"
        )
    in_shape = [t.item_shape for t in flat] if isinstance(inputs, (list, tuple)) else flat[0].item_shape
    out_shape = runner.output_shape(in_shape)
    node = Node(layer, list(inputs) if isinstance(inputs, (list, tuple)) else inputs, runner=runner,
                call=(call_inputs, args, kwargs))
    dtype = jnp.result_type(*[t.dtype for t in flat]) if not isinstance(layer, InputLayer) else flat[0].dtype
    if isinstance(out_shape, list):
        node.outputs = [SymbolicTensor(s, dtype, node, i) for i, s in enumerate(out_shape)]
        return list(node.outputs)
    node.outputs = [SymbolicTensor(out_shape, dtype, node)]
    return node.outputs[0]


register_symbolic_call(call_layer)
