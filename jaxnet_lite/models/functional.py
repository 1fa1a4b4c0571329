"""The functional API: `Input` makes symbolic tensors, calling layers records nodes, `Model` compiles the DAG.

    inputs = Input((4,)); x = Dense(32, activation="relu")(inputs); outputs = Dense(3)(x)
    model = Model(inputs=inputs, outputs=outputs)      # a Layer: model.init(rng), model.apply(...)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp

from jaxnet_lite.core import Layer, LayerError, claim_names, normalize_shape, shape_str, split_rng
from jaxnet_lite.models.surface import KerasSurface


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

    def input_list(self) -> list[SymbolicTensor]:
        if self.inputs is None:
            return []
        return list(self.inputs) if isinstance(self.inputs, (list, tuple)) else [self.inputs]


class InputLayer(Layer):
    """The layer behind `Input(shape)`: it holds the shape and dtype of one model input."""

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
    if args or set(kwargs) - {"training"}:
        raise LayerError(f"{layer.describe()} was called with extra arguments {args or kwargs}; pass only inputs")
    flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if not flat or not all(isinstance(t, SymbolicTensor) for t in flat):
        raise LayerError(
            f"{layer.describe()} was called on {type(inputs).__name__}: calling a layer builds a functional "
            "graph from Input(...) tensors. To compute on arrays, use "
            "`variables = layer.init(rng, input_shape)` and `layer.apply(params, state, x)`"
        )
    in_shape = [t.item_shape for t in flat] if isinstance(inputs, (list, tuple)) else flat[0].item_shape
    out_shape = layer.output_shape(in_shape)
    node = Node(layer, list(inputs) if isinstance(inputs, (list, tuple)) else inputs)
    dtype = jnp.result_type(*[t.dtype for t in flat]) if not isinstance(layer, InputLayer) else flat[0].dtype
    if isinstance(out_shape, list):
        node.outputs = [SymbolicTensor(s, dtype, node, i) for i, s in enumerate(out_shape)]
        return list(node.outputs)
    node.outputs = [SymbolicTensor(out_shape, dtype, node)]
    return node.outputs[0]


def _as_list(value: Any, what: str) -> tuple[list[SymbolicTensor], bool]:
    single = isinstance(value, SymbolicTensor)
    items = [value] if single else list(value.values()) if isinstance(value, dict) else list(value)
    if not items or not all(isinstance(t, SymbolicTensor) for t in items):
        raise LayerError(f"Model: {what} must be Input(...) tensors or tensors built from them, got {value!r}")
    return items, single


class Model(KerasSurface, Layer):
    """A functional model: the DAG from `inputs` to `outputs`, compiled into the pure `init`/`apply` pair.

    Several inputs or outputs are passed and returned as lists, in the order given here. A layer called
    more than once shares its params; a model can be called on tensors inside another model.
    """

    def __init__(self, inputs: Any, outputs: Any, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.inputs, self._single_input = _as_list(inputs, "inputs")
        self.outputs, self._single_output = _as_list(outputs, "outputs")
        if len(self.inputs) == 1 and not isinstance(inputs, SymbolicTensor):
            self._single_input = True  # Keras accepts `inputs=[x]` and then a bare array.
        if len(self.outputs) == 1 and not isinstance(outputs, SymbolicTensor):
            self._single_output = True
        for t in self.inputs:
            if not isinstance(t.node.layer, InputLayer):
                raise LayerError(f"Model: every entry of inputs must come from Input(...), got {t!r}")
        self.nodes = self._topological_nodes()
        self.layers: list[Layer] = []
        for node in self.nodes:
            if not any(node.layer is known for known in self.layers):
                self.layers.append(node.layer)
        self.layer_names = claim_names(self.layers)
        self.declared_input_shape = self._input_shapes()

    @classmethod
    def default_name(cls) -> str:
        return "functional"

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return any(layer.stochastic for layer in self.layers)

    # -- graph compilation ----------------------------------------------------------------------
    def _topological_nodes(self) -> list[Node]:
        """Nodes from inputs to outputs in execution order; checks every input is used and reachable."""
        order: list[Node] = []
        state: dict[int, str] = {}

        def visit(node: Node) -> None:
            mark = state.get(id(node))
            if mark == "done":
                return
            if mark == "active":  # pragma: no cover - symbolic tensors cannot form cycles
                raise LayerError(f"Model: the graph has a cycle through {node.layer.describe()}")
            state[id(node)] = "active"
            for t in node.input_list():
                visit(t.node)
            state[id(node)] = "done"
            order.append(node)

        for t in self.outputs:
            visit(t.node)
        reached_inputs = {id(n) for n in order if isinstance(n.layer, InputLayer)}
        declared = {id(t.node) for t in self.inputs}
        for n in order:
            if isinstance(n.layer, InputLayer) and id(n) not in declared:
                raise LayerError(
                    f"Model: the outputs depend on Input {n.outputs[0].shape} ('{n.layer.name}') that is not "
                    "listed in inputs; add it to inputs=[...]"
                )
        for t in self.inputs:
            if id(t.node) not in reached_inputs:
                raise LayerError(
                    f"Model: input {t.shape} ('{t.node.layer.name}') is not connected to any output: the outputs "
                    "do not depend on it"
                )
        return order

    def _input_shapes(self) -> Any:
        shapes = [t.item_shape for t in self.inputs]
        return shapes[0] if self._single_input else shapes

    # -- the layer protocol ---------------------------------------------------------------------
    def check_input_shape(self, input_shape):
        expected = self._input_shapes()
        if normalize_shape(input_shape) != expected:
            raise self.error(f"expects input shape {shape_str(expected)}, got {shape_str(input_shape)}")

    def make_variables(self, rng, input_shape):
        params, state, done = {}, {}, set()
        keys = split_rng(rng, len(self.nodes))
        for node, key in zip(self.nodes, keys):
            layer = node.layer
            if id(layer) in done or isinstance(layer, InputLayer):
                continue
            done.add(id(layer))
            name = self._name_of(layer)
            params[name], state[name] = layer.init(key, self._node_input_shape(node))
        return params, state

    def _name_of(self, layer: Layer) -> str:
        return next(n for n, known in zip(self.layer_names, self.layers) if known is layer)

    @staticmethod
    def _node_input_shape(node: Node) -> Any:
        ins = node.input_list()
        return [t.item_shape for t in ins] if isinstance(node.inputs, (list, tuple)) else ins[0].item_shape

    def call(self, params, state, x, *, rng=None, training=False):
        xs = self._bind_inputs(x)
        values: dict[int, Any] = {}
        for t, v in zip(self.inputs, xs):
            values[id(t)] = v
        new_state = dict(state)
        keys = split_rng(rng, len(self.nodes))
        for node, key in zip(self.nodes, keys):
            layer = node.layer
            if isinstance(layer, InputLayer):
                continue
            name = self._name_of(layer)
            ins = [values[id(t)] for t in node.input_list()]
            arg = ins if isinstance(node.inputs, (list, tuple)) else ins[0]
            y, new_state[name] = layer.apply(params[name], new_state[name], arg, rng=key, training=training)
            ys = y if len(node.outputs) > 1 or isinstance(y, list) else [y]
            for t, v in zip(node.outputs, ys):
                values[id(t)] = v
        outs = [values[id(t)] for t in self.outputs]
        return (outs[0] if self._single_output else outs), new_state

    def _bind_inputs(self, x: Any) -> list[Any]:
        if isinstance(x, dict):
            names = [t.node.layer.name for t in self.inputs]
            missing = [n for n in names if n not in x]
            if missing:
                raise self.error(f"got inputs {sorted(x)}, missing {missing}")
            return [x[n] for n in names]
        if self._single_input:
            if isinstance(x, (list, tuple)) and len(x) == 1:
                return [x[0]]
            return [x]
        if not isinstance(x, (list, tuple)) or len(x) != len(self.inputs):
            raise self.error(f"expects a list of {len(self.inputs)} inputs, got {type(x).__name__}")
        return list(x)

    def compute_output_shape(self, input_shape):
        shapes = [t.item_shape for t in self.outputs]
        return shapes[0] if self._single_output else shapes

    # -- introspection for summary() ------------------------------------------------------------
    def summary_rows(self) -> list[tuple[str, Layer, Any, Any, list[str]]]:
        """`(name, layer, input_shape, output_shape, connected_to)` per layer, at its first call."""
        rows, seen = [], set()
        for node in self.nodes:
            if id(node.layer) in seen:
                continue
            seen.add(id(node.layer))
            shapes = [t.item_shape for t in node.outputs]
            in_shape = None if isinstance(node.layer, InputLayer) else self._node_input_shape(node)
            connected = [f"{t.node.layer.name}[0][{t.index}]" for t in node.input_list()]
            rows.append((node.layer.name, node.layer, in_shape, shapes[0] if len(shapes) == 1 else shapes, connected))
        return rows

    def is_sequential_like(self) -> bool:
        return all(len(n.input_list()) <= 1 and len(n.outputs) == 1 for n in self.nodes) and len(self.outputs) == 1
