"""`Sequential`: a stack of layers with Keras' face (`add`, `input_shape=` on the first layer, `summary`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jaxnet_lite.core import Layer, LayerError, claim_names
from jaxnet_lite.layers.combinators import Serial
from jaxnet_lite.graph import InputLayer, SymbolicTensor
from jaxnet_lite.models.saving import register_serializable
from jaxnet_lite.models.surface import KerasSurface


@register_serializable
class Sequential(KerasSurface, Serial):
    """Layers applied in order; a `Layer` like any other (`init`/`apply`), plus `compile`/`fit`/`summary`.

    The input shape comes from an `Input(shape)` first element, from `input_shape=` on the first layer
    (Keras 2 spelling), or from `init(rng, input_shape)`.
    """

    def __init__(self, layers: Iterable[Any] | None = None, name: str | None = None, **kwargs: Any) -> None:
        input_shape = kwargs.pop("input_shape", None)
        super().__init__([], name=name, **kwargs)
        self._input_from_input_layer = None if input_shape is None else tuple(input_shape)
        for layer in layers or ():
            self.add(layer)

    def get_config(self) -> dict[str, Any]:
        config = {"layers": list(self.layers), "name": self.name}
        if self._input_from_input_layer is not None:
            config["input_shape"] = tuple(self._input_from_input_layer)
        if not self.trainable:
            config["trainable"] = False
        return config

    def add(self, layer: Any) -> None:
        """Append a layer; with a known input shape, its shapes are checked now so errors come early."""
        if isinstance(layer, SymbolicTensor) and isinstance(layer.node.layer, InputLayer):
            if self.layers:
                raise LayerError(f"{self.describe()}: Input(...) can only be the first element")
            self._input_from_input_layer = layer.item_shape
            return
        if isinstance(layer, InputLayer):
            self._input_from_input_layer = layer.shape
            return
        if not isinstance(layer, Layer):
            raise LayerError(f"{self.describe()}.add expects a Layer, got {type(layer).__name__}: {layer!r}")
        self.layers.append(layer)
        try:
            self.layer_names = claim_names(self.layers)
        except LayerError:
            self.layers.pop()
            raise
        if self.declared_input_shape is not None:
            try:
                self.layer_shapes(self.declared_input_shape)
            except LayerError:
                self.layers.pop()
                self.layer_names.pop()
                raise
        self._on_structure_changed()

    @property
    def declared_input_shape(self) -> Any:  # type: ignore[override]
        if getattr(self, "_input_from_input_layer", None) is not None:
            return self._input_from_input_layer
        if getattr(self, "layers", None):
            return self.layers[0].declared_input_shape
        return None

    @declared_input_shape.setter
    def declared_input_shape(self, value: Any) -> None:
        if value is not None:
            self._input_from_input_layer = value

    def check_input_shape(self, input_shape):
        declared = self.declared_input_shape
        if declared is not None and tuple(input_shape) != tuple(declared):
            raise self.error(f"expects input shape {tuple(declared)} (without the batch axis), got {tuple(input_shape)}")
        super().check_input_shape(input_shape)

    def init(self, rng, input_shape=None):
        if input_shape is None and self.declared_input_shape is None:
            raise self.error(
                "has no input shape: give input_shape= to its first layer, start it with Input(shape), "
                "or call init(rng, input_shape)"
            )
        return super().init(rng, input_shape)

    def summary_rows(self) -> list[tuple[str, Layer, Any, Any, list[str]]]:
        """`(name, layer, input_shape, output_shape, connected_to)` per layer."""
        shape = self.declared_input_shape
        if shape is None:
            raise self.error("cannot summarise without an input shape (declare input_shape= on the first layer)")
        return [
            (name, layer, inp, out, [])
            for (name, layer), (inp, out) in zip(self.children(), self.layer_shapes(shape))
        ]

    def is_sequential_like(self) -> bool:
        return True
