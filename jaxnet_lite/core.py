"""The layer protocol: `Variables`, the `Layer` base class, shapes, names and rng splitting.

Every layer, combinator and model is a `Layer`: its constructor holds configuration only, and its two
methods are pure functions of their arguments::

    params, state = layer.init(rng, input_shape)          # input_shape has no batch axis
    y, state = layer.apply(params, state, x, rng=None, training=False)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Shape = tuple[int, ...]
PyTree = Any
Array = jax.Array


class Variables(NamedTuple):
    """What `init` returns: trainable `params` and non-trainable `state` (both pytrees of arrays)."""

    params: PyTree
    state: PyTree


class LayerError(ValueError):
    """A layer was configured or called wrongly; the message names the layer, argument and shapes."""


def snake_case(name: str) -> str:
    """`Conv2DTranspose` -> `conv2d_transpose`, `BatchNormalization` -> `batch_normalization` (Keras' rule)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def normalize_shape(shape: Any, *, what: str = "input_shape") -> Shape | list[Shape]:
    """Turn an int, tuple or list of ints (or a list of such, for multi-input layers) into tuples."""
    if isinstance(shape, int):
        return (shape,)
    if isinstance(shape, (list, tuple)) and shape and all(isinstance(s, (list, tuple)) for s in shape):
        return [normalize_shape(s, what=what) for s in shape]
    if isinstance(shape, (list, tuple)) and all(isinstance(d, (int,)) or hasattr(d, "__index__") for d in shape):
        dims = tuple(int(d) for d in shape)
        if any(d < 1 for d in dims):
            raise LayerError(f"{what} must have positive dimensions, got {dims}")
        return dims
    raise LayerError(f"{what} must be a tuple of ints (without the batch axis), got {shape!r}")


def split_rng(rng: Array | None, n: int) -> list[Array | None]:
    """Split a key into `n` children deterministically; `None` stays `None` for every child."""
    if rng is None:
        return [None] * n
    if n == 0:
        return []
    return list(jax.random.split(rng, n))


def unique_name(base: str, taken: set[str]) -> str:
    """Keras-style de-duplication: `dense`, `dense_1`, `dense_2`, ..."""
    if base not in taken:
        return base
    i = 1
    while f"{base}_{i}" in taken:
        i += 1
    return f"{base}_{i}"


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


#: How errors spell the axes of channels-last inputs of each spatial rank (without the batch axis).
SPATIAL_AXES = {1: "(W, C)", 2: "(H, W, C)", 3: "(D, H, W, C)"}


def shape_str(shape: Any) -> str:
    return str(tuple(shape)) if not isinstance(shape, list) else "[" + ", ".join(map(shape_str, shape)) + "]"


class Layer:
    """Base class of every layer: configuration on the object, pure `init`/`apply` functions.

    Subclasses implement `make_variables(rng, input_shape) -> (params, state)` (default: no variables),
    `call(params, state, x, rng, training) -> (y, state)` and, where cheap, `compute_output_shape`.
    `input_shape=` (and `input_dim=`) may be given as in Keras 2 to declare a model's input.
    """

    #: True for layers that draw random numbers when `training=True` (Dropout).
    stochastic: bool = False

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

    # -- the functional API ---------------------------------------------------------------------
    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """Call on symbolic tensors (from `Input`) to build a functional `Model` graph."""
        from jaxnet_lite.models.functional import call_layer

        return call_layer(self, inputs, *args, **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def _abstract_batch(shape: Any, dtype: Any) -> Any:
    if isinstance(shape, list):
        return [jnp.zeros((1, *s), dtype) for s in shape]
    return jnp.zeros((1, *shape), dtype)


def trainable_mask(layer: Layer, params: PyTree) -> PyTree:
    """A tree of bools like `params`: False under every layer with `trainable = False` (recursively)."""
    if not getattr(layer, "trainable", True):
        return jax.tree.map(lambda _: False, params)
    children = dict(zip(getattr(layer, "layer_names", []), getattr(layer, "layers", [])))
    if children and isinstance(params, dict):
        return {k: trainable_mask(children[k], v) if k in children else jax.tree.map(lambda _: True, v)
                for k, v in params.items()}
    return jax.tree.map(lambda _: True, params)


def as_tuple(value: Any, n: int, what: str, owner: str) -> tuple[int, ...]:
    """Keras' int-or-tuple arguments (`kernel_size=3` -> `(3, 3)`), validated as positive ints."""
    if isinstance(value, int) or hasattr(value, "__index__") and not isinstance(value, (tuple, list)):
        value = (int(value),) * n
    if not isinstance(value, (tuple, list)):
        raise LayerError(f"{owner}: {what} must be a positive int or a tuple of {n} positive ints, got {value!r}")
    value = tuple(value)
    if len(value) != n or not all(isinstance(v, int) and v > 0 for v in value):
        raise LayerError(f"{owner}: {what} must be a positive int or a tuple of {n} positive ints, got {value!r}")
    return value
