"""Keras' functional `Model`: the graph from `jaxnet_lite.graph` with the training surface on top.

    inputs = Input((4,)); x = Dense(32, activation="relu")(inputs); outputs = Dense(3)(x)
    model = Model(inputs=inputs, outputs=outputs)      # a Layer: model.init(rng), model.apply(...)
"""

from __future__ import annotations

from typing import Any

from jaxnet_lite.core import Layer
from jaxnet_lite.graph import Functional, InputLayer
from jaxnet_lite.models.saving import register_serializable
from jaxnet_lite.models.surface import KerasSurface


@register_serializable
class Model(KerasSurface, Functional):
    """A functional model: `Functional`'s pure `init`/`apply`, plus `compile`/`fit`/`summary`.

    Several inputs or outputs are passed and returned as lists, in the order given here. A layer called
    more than once shares its params; a model can be called on tensors inside another model.
    """

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
            # The runner: the layer as this call configured it (attention's mask inputs, an initial state).
            rows.append((node.layer.name, node.runner, in_shape, shapes[0] if len(shapes) == 1 else shapes, connected))
        return rows

    def is_sequential_like(self) -> bool:
        return all(len(n.input_list()) <= 1 and len(n.outputs) == 1 for n in self.nodes) and len(self.outputs) == 1
