"""The layer protocol: `Variables` and the `Layer` base class.

Every layer, combinator and model is a `Layer`: its constructor holds configuration only, and its two
methods are pure functions of their arguments::

    params, state = layer.init(rng, input_shape)          # input_shape has no batch axis
    y, state = layer.apply(params, state, x, rng=None, training=False)

What training needs to know about a model it asks through methods here (`children`,
`split_final_activation`, `slow_in_cpu_loops`), never by testing classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnet_lite.core.naming import snake_case, unique_name
from jaxnet_lite.core.shapes import SPATIAL_AXES, LayerError, normalize_shape, shape_str

PyTree = Any
Array = jax.Array

# Calling a layer on symbolic tensors builds a graph node. The graph sits above the protocol, so it
# registers the function that does this here (`register_symbolic_call`) instead of being imported.
_symbolic_call: Callable[..., Any] | None = None


def register_symbolic_call(fn: Callable[..., Any]) -> None:
    """Install what `layer(symbolic_inputs)` does; the functional graph registers it on import."""
    global _symbolic_call
    _symbolic_call = fn


class Variables(NamedTuple):
    """What `init` returns: trainable `params` and non-trainable `state` (both pytrees of arrays)."""

    params: PyTree
    state: PyTree


class Layer:
    """Base class of every layer: configuration on the object, pure `init`/`apply` functions.

    Subclasses implement `make_variables(rng, input_shape) -> (params, state)` (default: no variables),
    `call(params, state, x, rng, training) -> (y, state)` and, where cheap, `compute_output_shape`.
    `input_shape=` (and `input_dim=`) may be given as in Keras 2 to declare a model's input.
    """

    #: True for layers that draw random numbers when `training=True` (Dropout).
    stochastic: bool = False
    #: Cost hint: True for layers whose gradients XLA:CPU compiles poorly inside loop bodies (convolutions,
    #: poolings); on CPU the trainer then runs one step per dispatch instead of a loop of steps.
    slow_in_cpu_loops: bool = False

    def __init__(
        self,
        *,
        name: str | None = None,
        input_shape: Sequence[int] | None = None,
        input_dim: int | None = None,
        dtype: Any = None,
        trainable: bool = True,
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise LayerError(f"{type(self).__name__}: name must be a non-empty string without '/', got {name!r}")
        self._name = name
        if input_dim is not None:
            input_shape = (input_dim,)
        self.declared_input_shape = normalize_shape(input_shape) if input_shape is not None else None
        self.dtype = jnp.dtype(dtype or "float32")
        self.trainable = trainable

    # -- naming ---------------------------------------------------------------------------------
    @classmethod
    def default_name(cls) -> str:
        return snake_case(cls.__name__)

    @property
    def name(self) -> str:
        return self._name if self._name is not None else self.default_name()

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def describe(self) -> str:
        """`Conv2D 'conv2d_1'`: how error messages refer to this layer."""
        return f"{type(self).__name__} '{self.name}'"

    def error(self, message: str) -> LayerError:
        return LayerError(f"{self.describe()} {message}")

    # -- the protocol ---------------------------------------------------------------------------
    def init(self, rng: Array, input_shape: Any = None) -> Variables:
        """Create `(params, state)` for inputs of `input_shape` (no batch axis)."""
        if input_shape is None:
            input_shape = self.declared_input_shape
            if input_shape is None:
                raise self.error("needs an input shape: call init(rng, input_shape) or declare input_shape=")
        shape = normalize_shape(input_shape)
        self.check_input_shape(shape)
        params, state = self.make_variables(rng, shape)
        return Variables(params, state)

    def apply(
        self,
        params: PyTree,
        state: PyTree,
        x: Any,
        *,
        rng: Array | None = None,
        training: bool = False,
    ) -> tuple[Any, PyTree]:
        """Run the layer on a batch `x`; returns `(y, new_state)`."""
        return self.call(params, state, x, rng=rng, training=training)

    def output_shape(self, input_shape: Any) -> Any:
        """Output shape (no batch axis) for inputs of `input_shape`; raises on incompatible shapes."""
        shape = normalize_shape(input_shape)
        self.check_input_shape(shape)
        return self.compute_output_shape(shape)

    def expect_spatial_rank(self, input_shape: Any, rank: int) -> None:
        """Raise unless `input_shape` is one channels-last input with `rank` spatial axes."""
        if isinstance(input_shape, list) or len(input_shape) != rank + 1:
            raise self.error(f"expects input of rank {rank + 1} {SPATIAL_AXES[rank]}, got {shape_str(input_shape)}")

    # -- what subclasses implement --------------------------------------------------------------
    def check_input_shape(self, input_shape: Any) -> None:
        """Raise a `LayerError` naming the layer and the shape when `input_shape` cannot work."""

    def make_variables(self, rng: Array, input_shape: Any) -> tuple[PyTree, PyTree]:
        return {}, {}

    def call(self, params, state, x, *, rng=None, training=False):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    def compute_output_shape(self, input_shape: Any) -> Any:
        """Default: trace `init` and `apply` abstractly with `jax.eval_shape` (no FLOPs spent)."""

        def run(rng):
            params, state = self.make_variables(rng, input_shape)
            x = _abstract_batch(input_shape, self.dtype)
            return self.call(params, state, x, rng=None, training=False)[0]

        out = jax.eval_shape(run, jax.random.key(0))
        return jax.tree.map(lambda s: tuple(s.shape[1:]), out)

    # -- what training asks a layer (containers override) -----------------------------------------
    def children(self) -> list[tuple[str, Layer]]:
        """`(name, layer)` of each direct sublayer, keyed as in `params`; none for a leaf layer."""
        return []

    def split_final_activation(self) -> tuple[Layer, str] | None:
        """`(bare, activation)` when this layer's output is `activation(bare(x))` with the same params.

        Losses that take logits use it: the trainer differentiates `bare` and applies `activation`
        ("softmax", "sigmoid") only for the metrics. None when the output does not end in a named activation.
        """
        return None

    def input_names(self) -> list[str] | None:
        """Names of the inputs, in order, for layers that take a dict of named inputs; else None."""
        return None

    def output_names(self) -> list[str] | None:
        """Names of the outputs, in order, for layers whose outputs are named (per-output loss weights)."""
        return None

    # -- the functional API ---------------------------------------------------------------------
    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """Call on symbolic tensors (from `Input`) to build a functional `Model` graph."""
        if _symbolic_call is None:
            raise self.error("was called, but the functional graph is not loaded (import jaxnet_lite first)")
        return _symbolic_call(self, inputs, *args, **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def _abstract_batch(shape: Any, dtype: Any) -> Any:
    if isinstance(shape, list):
        return [jnp.zeros((1, *s), dtype) for s in shape]
    return jnp.zeros((1, *shape), dtype)


def iter_layers(layer: Layer) -> Iterator[Layer]:
    """`layer` and every sublayer below it, depth first, through `children()`."""
    yield layer
    for _, child in layer.children():
        if child is not layer:
            yield from iter_layers(child)


def claim_names(layers: Sequence[Layer]) -> list[str]:
    """Give each distinct child a name unique within its container and fix it on the layer.

    An unnamed layer takes the first free `snake_case(ClassName)[_k]`; a named one keeps its name, and two
    different layers with the same explicit name are an error. The same layer object listed twice (a shared
    layer) keeps one name.
    """
    names: list[str] = []
    taken: dict[str, Layer] = {}
    for layer in layers:
        if not isinstance(layer, Layer):
            raise LayerError(f"expected a jaxnet_lite Layer, got {type(layer).__name__}: {layer!r}")
        if layer._name is None:
            layer._name = unique_name(layer.default_name(), set(taken))
        owner = taken.get(layer.name)
        if owner is not None and owner is not layer:
            raise LayerError(
                f"two different layers are named {layer.name!r} ({type(owner).__name__} and "
                f"{type(layer).__name__}); layer names must be unique within a model"
            )
        taken[layer.name] = layer
        names.append(layer.name)
    return names
