"""Combinators build layers from layers: `serial`, `parallel`, `fan_out`, `residual` (stax/JaxNet style).

Each result obeys the layer protocol: params and state are dicts keyed by the children's unique names,
the rng is split deterministically (one key per child, in order) and state is threaded through.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jaxnet_lite.core import Layer, claim_names, shape_str, split_mask, split_rng, with_mask
from jaxnet_lite.core.masking import both_masks
from jaxnet_lite.layers.core import check_positive_int


class Container(Layer):
    """A layer made of named child layers; masked values reach the children as they are."""

    passes_masks = True
    autocast = False  # each child casts to its own compute dtype

    def __init__(self, layers: Iterable[Layer] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.layers: list[Layer] = list(layers)
        self.layer_names = claim_names(self.layers)
        if not self.trainable:
            self.trainable = False  # now that there are children to freeze

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return any(layer.stochastic for layer in self.layers)

    def children(self) -> list[tuple[str, Layer]]:
        return list(zip(self.layer_names, self.layers))

    def _apply(self, params, state, x, *, rng, training):
        self.check_child_variables(params, state, self.layer_names)
        return super()._apply(params, state, x, rng=rng, training=training)

    def get_config(self) -> dict[str, Any]:
        """The children as they are now (`add` may have appended some since construction)."""
        config = super().get_config()
        if "layers" in config:
            config["layers"] = list(self.layers)
        return config

    def replacing(self, replacements: Mapping[int, Layer]) -> Container:
        """A shallow copy whose children at the given positions are swapped for layers that keep their
        names and params layout (how `split_final_activation` builds the bare copy)."""
        new = copy.copy(self)
        new.layers = [replacements.get(i, layer) for i, layer in enumerate(self.layers)]
        new.layer_names = list(self.layer_names)
        return new


class Serial(Container):
    """Applies its layers one after the other."""

    def __init__(self, layers: Iterable[Layer] = (), **kwargs: Any) -> None:
        super().__init__(layers, **kwargs)

    def add(self, layer: Layer) -> None:
        """Append a layer (Keras' `Sequential.add`)."""
        self.layers.append(layer)
        self.layer_names = claim_names(self.layers)

    def layer_shapes(self, input_shape: Any) -> list[tuple[Any, Any]]:
        """`(input_shape, output_shape)` of every child, checking each on the way."""
        shapes = []
        for layer in self.layers:
            out = layer.output_shape(input_shape)
            shapes.append((input_shape, out))
            input_shape = out
        return shapes

    def check_input_shape(self, input_shape):
        if not self.layers:
            raise self.error("has no layers: add some before init")
        self.layer_shapes(input_shape)

    def make_variables(self, rng, input_shape):
        params, state = {}, {}
        for (name, layer), key in zip(self.children(), split_rng(rng, len(self.layers))):
            params[name], state[name] = layer.init(key, input_shape)
            input_shape = layer.output_shape(input_shape)
        return params, state

    def call(self, params, state, x, *, rng=None, training=False):
        new_state = {}
        for (name, layer), key in zip(self.children(), split_rng(rng, len(self.layers))):
            x, new_state[name] = layer.apply(params[name], state[name], x, rng=key, training=training)
        return x, new_state

    def compute_output_shape(self, input_shape):
        return self.layer_shapes(input_shape)[-1][1]

    def check_input_values(self, x: Any) -> None:
        if self.layers:
            self.layers[0].check_input_values(x)

    def split_final_activation(self) -> tuple[Layer, str] | None:
        """The output is the last layer's: split that one."""
        found = self.layers[-1].split_final_activation() if self.layers else None
        if found is None:
            return None
        bare, activation = found
        return self.replacing({len(self.layers) - 1: bare}), activation


class Parallel(Container):
    """Applies layer `i` to input `i` of a list; returns the list of outputs."""

    def check_input_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) != len(self.layers):
            raise self.error(f"expects a list of {len(self.layers)} inputs, got {shape_str(input_shape)}")
        for layer, shape in zip(self.layers, input_shape):
            layer.output_shape(shape)

    def make_variables(self, rng, input_shape):
        params, state = {}, {}
        for (name, layer), key, shape in zip(self.children(), split_rng(rng, len(self.layers)), input_shape):
            params[name], state[name] = layer.init(key, shape)
        return params, state

    def call(self, params, state, x, *, rng=None, training=False):
        if not isinstance(x, (list, tuple)) or len(x) != len(self.layers):
            raise self.error(f"expects a list of {len(self.layers)} arrays, got {type(x).__name__}")
        ys, new_state = [], {}
        for (name, layer), key, xi in zip(self.children(), split_rng(rng, len(self.layers)), x):
            y, new_state[name] = layer.apply(params[name], state[name], xi, rng=key, training=training)
            ys.append(y)
        return ys, new_state

    def compute_output_shape(self, input_shape):
        return [layer.output_shape(s) for layer, s in zip(self.layers, input_shape)]

    def split_final_activation(self) -> tuple[Layer, str] | None:
        """Every output ends in the same activation: split each branch (else None)."""
        found = [layer.split_final_activation() for layer in self.layers]
        names = {f[1] for f in found if f is not None}
        if not found or None in found or len(names) != 1:
            return None
        return self.replacing({i: bare for i, (bare, _) in enumerate(found)}), names.pop()


class FanOut(Layer):
    """Copies its input into a list of `n` (stax's `FanOut`)."""

    passes_masks = True
    autocast = False

    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n = check_positive_int("FanOut", "n", n)

    def call(self, params, state, x, *, rng=None, training=False):
        return [x] * self.n, state

    def compute_output_shape(self, input_shape):
        return [input_shape] * self.n


class Residual(Container):
    """`y = body(x) + shortcut(x)`: body is its layers in series; shortcut is the identity or a layer."""

    def __init__(self, layers: Iterable[Layer], shortcut: Layer | None = None, **kwargs: Any) -> None:
        self.body = Serial(layers, name="body")
        self.shortcut = shortcut
        children = [self.body] + ([shortcut] if shortcut is not None else [])
        super().__init__(children, **kwargs)

    def check_input_shape(self, input_shape):
        body = self.body.output_shape(input_shape)
        skip = self.shortcut.output_shape(input_shape) if self.shortcut is not None else input_shape
        if body != skip:
            raise self.error(
                f"body output {shape_str(body)} does not match the shortcut {shape_str(skip)} for input "
                f"{shape_str(input_shape)}; add a shortcut layer that projects the input"
            )

    def make_variables(self, rng, input_shape):
        params, state = {}, {}
        for (name, layer), key in zip(self.children(), split_rng(rng, len(self.layers))):
            params[name], state[name] = layer.init(key, input_shape)
        return params, state

    def call(self, params, state, x, *, rng=None, training=False):
        keys = split_rng(rng, len(self.layers))
        new_state = {}
        y, new_state["body"] = self.body.apply(params["body"], state["body"], x, rng=keys[0], training=training)
        skip = x
        if self.shortcut is not None:
            name = self.layer_names[1]
            skip, new_state[name] = self.shortcut.apply(params[name], state[name], x, rng=keys[1], training=training)
        (y, y_mask), (skip, skip_mask) = split_mask(y), split_mask(skip)
        return with_mask(y + skip, both_masks([y_mask, skip_mask])), new_state

    def compute_output_shape(self, input_shape):
        return self.body.output_shape(input_shape)


def serial(*layers: Layer, name: str | None = None) -> Serial:
    """Compose layers in series: `serial(Dense(32), Activation("relu"), Dense(10))`."""
    return Serial(_flatten_args(layers), name=name)


def parallel(*layers: Layer, name: str | None = None) -> Parallel:
    """Apply layer `i` to input `i` (stax's `parallel`)."""
    return Parallel(_flatten_args(layers), name=name)


def fan_out(n: int, name: str | None = None) -> FanOut:
    """Copy the input `n` times, to feed `parallel` branches."""
    return FanOut(n, name=name)


def residual(*layers: Layer, shortcut: Layer | None = None, name: str | None = None) -> Residual:
    """`x + serial(*layers)(x)`, or `shortcut(x) + ...` when the shapes differ."""
    return Residual(_flatten_args(layers), shortcut=shortcut, name=name)


def _flatten_args(layers: Sequence[Any]) -> list[Layer]:
    if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
        return list(layers[0])
    return list(layers)
