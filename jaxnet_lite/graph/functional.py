"""`Functional`: a DAG of symbolic nodes, from `Input`s to outputs, compiled into one `Layer`."""

from __future__ import annotations

import copy
from typing import Any

from jaxnet_lite.core import Layer, LayerError, claim_names, normalize_shape, shape_str, split_rng
from jaxnet_lite.graph.symbolic import Input, InputLayer, Node, SymbolicTensor


def _as_list(value: Any, what: str) -> tuple[list[SymbolicTensor], bool]:
    single = isinstance(value, SymbolicTensor)
    items = [value] if single else list(value.values()) if isinstance(value, dict) else list(value)
    if not items or not all(isinstance(t, SymbolicTensor) for t in items):
        raise LayerError(f"Model: {what} must be Input(...) tensors or tensors built from them, got {value!r}")
    return items, single


class Functional(Layer):
    """The DAG from `inputs` to `outputs`, compiled into the pure `init`/`apply` pair (Keras' `Model` adds
    its training surface on top).

    Several inputs or outputs are passed and returned as lists, in the order given here. A layer called
    more than once shares its params; a model can be called on tensors inside another model.
    """

    passes_masks = True
    autocast = False  # each layer of the graph casts to its own compute dtype

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
        if not self.trainable:
            self.trainable = False  # now that there are layers to freeze
        self.declared_input_shape = self._input_shapes()

    @classmethod
    def default_name(cls) -> str:
        return "functional"

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return any(layer.stochastic for layer in self.layers)

    def children(self) -> list[tuple[str, Layer]]:
        return list(zip(self.layer_names, self.layers))

    def input_names(self) -> list[str]:
        return [t.node.layer.name for t in self.inputs]

    def output_names(self) -> list[str]:
        return [t.node.layer.name for t in self.outputs]

    def split_final_activation(self) -> tuple[Layer, str] | None:
        """Every output comes from a layer called once that ends in the same activation: split those."""
        swaps: dict[int, Layer] = {}
        names = set()
        for t in self.outputs:
            node = t.node
            if len(node.outputs) != 1 or sum(n.layer is node.layer for n in self.nodes) != 1:
                return None
            found = node.runner.split_final_activation()
            if found is None:
                return None
            swaps[id(node.layer)], activation = found
            names.add(activation)
        if len(names) != 1:
            return None
        bare = copy.copy(self)
        bare.nodes = [Node(swaps[id(n.layer)], n.inputs, n.outputs) if id(n.layer) in swaps else n
                      for n in self.nodes]
        bare.layers = [swaps.get(id(layer), layer) for layer in self.layers]
        bare.layer_names = list(self.layer_names)
        return bare, names.pop()

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
            params[name], state[name] = node.runner.init(key, self._node_input_shape(node))
        return params, state

    def _name_of(self, layer: Layer) -> str:
        return next(n for n, known in zip(self.layer_names, self.layers) if known is layer)

    @staticmethod
    def _node_input_shape(node: Node) -> Any:
        ins = node.input_list()
        return [t.item_shape for t in ins] if isinstance(node.inputs, (list, tuple)) else ins[0].item_shape

    def call(self, params, state, x, *, rng=None, training=False):
        self.check_child_variables(params, state, [name for name, layer in self.children()
                                                   if not isinstance(layer, InputLayer)])
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
            y, new_state[name] = node.runner.apply(params[name], new_state[name], arg, rng=key, training=training)
            ys = y if len(node.outputs) > 1 or isinstance(y, list) else [y]
            for t, v in zip(node.outputs, ys):
                values[id(t)] = v
        outs = [values[id(t)] for t in self.outputs]
        return (outs[0] if self._single_output else outs), new_state

    def check_input_values(self, x: Any) -> None:
        """Ask every layer that reads a model input directly (and takes that input alone)."""
        given = {id(t): v for t, v in zip(self.inputs, self._bind_inputs(x))}
        for node in self.nodes:
            if isinstance(node.layer, InputLayer) or isinstance(node.inputs, (list, tuple)):
                continue
            if id(node.inputs) in given:
                node.runner.check_input_values(given[id(node.inputs)])

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

    # -- configuration --------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The graph as data: its layers, each call (`nodes`, tensors as `{"tensor": [node, output]}`),
        and which tensors are the inputs and outputs. `from_config` replays the calls."""
        index = {id(node): i for i, node in enumerate(self.nodes)}

        def ref(value: Any) -> Any:
            if isinstance(value, SymbolicTensor):
                return {"tensor": [index[id(value.node)], value.index]}
            if isinstance(value, (list, tuple)):
                return type(value)(ref(v) for v in value)
            if isinstance(value, dict):
                return {k: ref(v) for k, v in value.items()}
            return value

        layers = [layer for layer in self.layers if not isinstance(layer, InputLayer)]
        nodes = []
        for node in self.nodes:
            if isinstance(node.layer, InputLayer):
                nodes.append({"input": {"shape": tuple(node.layer.shape), "dtype": node.layer.dtype.name,
                                        "name": node.layer.name}})
                continue
            inputs, args, kwargs = node.call if node.call is not None else (node.inputs, (), {})
            nodes.append({"layer": next(i for i, known in enumerate(layers) if known is node.layer),
                          "inputs": ref(inputs), "args": ref(list(args)),
                          "kwargs": ref(dict(kwargs))})
        config: dict[str, Any] = {
            "name": self.name, "layers": layers, "nodes": nodes,
            "inputs": [ref(t) for t in self.inputs] if not self._single_input or len(self.inputs) > 1
            else ref(self.inputs[0]),
            "outputs": ref(self.outputs[0]) if self._single_output and len(self.outputs) == 1
            else [ref(t) for t in self.outputs],
        }
        if not self.trainable:
            config["trainable"] = False
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Functional:
        """Rebuild the graph `get_config` describes by calling its layers again on new `Input`s."""
        layers = config["layers"]
        made: list[list[SymbolicTensor]] = []

        def resolve(value: Any) -> Any:
            if isinstance(value, dict) and set(value) == {"tensor"}:
                node, out = value["tensor"]
                return made[node][out]
            if isinstance(value, (list, tuple)):
                return type(value)(resolve(v) for v in value)
            if isinstance(value, dict):
                return {k: resolve(v) for k, v in value.items()}
            return value

        for node in config["nodes"]:
            if "input" in node:
                spec = node["input"]
                made.append([Input(tuple(spec["shape"]), dtype=spec["dtype"], name=spec["name"])])
                continue
            out = layers[node["layer"]](resolve(node["inputs"]), *resolve(node["args"]), **resolve(node["kwargs"]))
            made.append(list(out) if isinstance(out, list) else [out])
        model = cls(inputs=resolve(config["inputs"]), outputs=resolve(config["outputs"]), name=config.get("name"))
        model.trainable = config.get("trainable", True)
        return model
