"""The layer protocol: `Variables` and the `Layer` base class.

Every layer, combinator and model is a `Layer`: its constructor holds configuration only, and its two
methods are pure functions of their arguments::

    params, state = layer.init(rng, input_shape)          # input_shape has no batch axis
    y, state = layer.apply(params, state, x, rng=None, training=False)

What training needs to know about a model it asks through methods here (`children`,
`split_final_activation`, `slow_in_cpu_loops`), never by testing classes.

Mixed precision is applied here, once for every layer: `apply` casts floating inputs and params to the
layer's compute dtype (`dtype_policy`, core/dtype_policy.py) before `call`.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnet_lite.core.config import RecordsArguments
from jaxnet_lite.core.dtype_policy import (
    LOW_PRECISION,
    DTypePolicy,
    as_policy,
    backend_supports,
    cast_floating,
    global_policy,
    is_floating,
)
from jaxnet_lite.core.masking import split_mask, strip_mask, with_mask
from jaxnet_lite.core.naming import snake_case, unique_name
from jaxnet_lite.core.shapes import SPATIAL_AXES, LayerError, normalize_shape, shape_str
from jaxnet_lite.core.weight_rules import get_constraint, get_regularizer

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


class Layer(RecordsArguments):
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
    #: Masks (core/masking.py), as Keras 3 names them: a layer that `supports_masking` keeps its input's
    #: mask on its output (it maps each time step on its own); one that `call_takes_mask` reads it in
    #: `call(..., mask=)`; containers set `passes_masks` and hand masked values to their children as
    #: they are. Every other layer drops a mask it is given, with a warning.
    supports_masking: bool = False
    call_takes_mask: bool = False
    passes_masks: bool = False
    #: Keras' `<prefix>_regularizer=` / `<prefix>_constraint=` arguments this layer takes, prefix -> param
    #: name (Dense: kernel, bias; LSTM: kernel, recurrent -> recurrent_kernel, bias).
    weight_arguments: dict[str, str] = {}
    #: Mixed precision (core/dtype_policy.py): a layer that `autocast`s gets its floating inputs and params
    #: cast to its policy's compute dtype in `apply` (integer inputs, such as ids, never); containers turn it
    #: off, since each child casts for itself. A layer that `computes_in_float32` (normalization statistics)
    #: runs in its variable dtype under a mixed policy and casts its output to the compute dtype.
    autocast: bool = True
    computes_in_float32: bool = False

    def __init__(
        self,
        *,
        name: str | None = None,
        input_shape: Sequence[int] | None = None,
        input_dim: int | None = None,
        dtype: Any = None,
        trainable: bool = True,
        activity_regularizer: Any = None,
        **weight_rules: Any,
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise LayerError(f"{type(self).__name__}: name must be a non-empty string without '/', got {name!r}")
        self.weight_regularizers: dict[str, Any] = {}
        self.weight_constraints: dict[str, Any] = {}
        for key, value in weight_rules.items():
            prefix, _, kind = key.rpartition("_")
            if kind not in ("regularizer", "constraint") or prefix not in self.weight_arguments:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {key!r}")
            if value is not None:
                table = self.weight_regularizers if kind == "regularizer" else self.weight_constraints
                table[self.weight_arguments[prefix]] = _weight_rule(type(self).__name__, key, value, kind)
        self.activity_regularizer = _weight_rule(type(self).__name__, "activity_regularizer",
                                                 activity_regularizer, "regularizer")
        self._name = name
        if input_dim is not None:
            input_shape = (input_dim,)
        self.declared_input_shape = normalize_shape(input_shape) if input_shape is not None else None
        self.dtype_policy = dtype
        if dtype is not None and self.autocast:
            self._check_policy_against_global()
        self._trainable = bool(trainable)

    # -- dtypes -----------------------------------------------------------------------------------
    @property
    def dtype_policy(self) -> DTypePolicy:
        """Keras' dtype policy: `dtype=` given to the constructor, else the global policy when it was built."""
        return self._dtype_policy

    @dtype_policy.setter
    def dtype_policy(self, value: Any) -> None:
        try:
            policy = as_policy(value)
        except (TypeError, ValueError) as e:
            raise self.error(f"got dtype={value!r}: {e}") from None
        self._dtype_policy = policy
        self.dtype = jnp.dtype(policy.variable_dtype)  # what params are created in

    @property
    def compute_dtype(self) -> str:
        """The dtype this layer computes in (its policy's; bfloat16 under "mixed_bfloat16")."""
        return self._dtype_policy.compute_dtype

    @property
    def variable_dtype(self) -> str:
        """The dtype this layer keeps its params and state in (float32 under a mixed policy)."""
        return self._dtype_policy.variable_dtype

    def _check_policy_against_global(self) -> None:
        """Params in float16/bfloat16 (`dtype="bfloat16"`) cannot join a model whose global policy is mixed:
        there the optimizer updates float32 params, and half-precision updates would round away."""
        policy, default = self._dtype_policy, global_policy()
        if default.is_mixed and policy.variable_dtype in LOW_PRECISION:
            raise self.error(
                f"has dtype policy {policy.name!r}, which keeps its params in {policy.variable_dtype}, but the "
                f"global policy {default.name!r} keeps params in {default.variable_dtype}: pass "
                f"dtype='mixed_{policy.variable_dtype}' to compute in {policy.variable_dtype} with "
                f"{default.variable_dtype} params, or dtype='float32'")

    def _check_policy_at_init(self) -> None:
        """The policy must run on this backend (float16 on a backend without it is refused)."""
        policy = self._dtype_policy
        if self.autocast and policy.compute_dtype in LOW_PRECISION and not backend_supports(policy.compute_dtype):
            raise self.error(
                f"has dtype policy {policy.name!r}, which computes in {policy.compute_dtype}, but the "
                f"{jax.default_backend()!r} backend does not support {policy.compute_dtype}: use "
                "'mixed_bfloat16' or 'float32'")

    def _autocast(self, params: PyTree, x: Any) -> tuple[PyTree, Any, Any]:
        """`(params, x, output dtype or None)` as this layer's policy computes: under a mixed policy inputs
        and params go down to the compute dtype (or, for `computes_in_float32`, inputs up to the variable
        dtype and the output back down); otherwise narrower floating inputs go up to the compute dtype."""
        policy = self._dtype_policy
        if not self.autocast or not is_floating(policy.compute_dtype):
            return params, x, None
        if policy.is_mixed and self.computes_in_float32:
            return params, cast_floating(x, policy.variable_dtype, narrow=False), policy.compute_dtype
        if policy.is_mixed:
            return cast_floating(params, policy.compute_dtype), cast_floating(x, policy.compute_dtype), None
        return params, cast_floating(x, policy.compute_dtype, narrow=False), None

    @property
    def trainable(self) -> bool:
        """False freezes this layer's params and every sublayer's (Keras 3: setting it sets it on every
        sublayer, and a frozen BatchNormalization normalises with its moving statistics)."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        try:
            children = self.children()
        except AttributeError:  # a container still being constructed: it propagates when it has children
            children = []
        for _, child in children:
            if child is not self:
                child.trainable = value

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

    def check_child_variables(self, params: Any, state: Any, names: Sequence[str]) -> None:
        """Refuse `params`/`state` without an entry per child `name`: variables of another model (or of
        this one before a layer was added) would otherwise fail deep inside `apply` with a bare KeyError."""
        for what, tree in (("params", params), ("state", state)):
            if not isinstance(tree, Mapping):
                raise self.error(f"expects {what} as a dict with an entry per layer {list(names)}, "
                                 f"got {type(tree).__name__}")
            missing = [name for name in names if name not in tree]
            if missing:
                raise self.error(f"{what} has no entry for its layers {missing} (it has {sorted(tree)}): "
                                 "were these variables made by this model's init?")

    # -- the protocol ---------------------------------------------------------------------------
    def init(self, rng: Array, input_shape: Any = None) -> Variables:
        """Create `(params, state)` for inputs of `input_shape` (no batch axis)."""
        if input_shape is None:
            input_shape = self.declared_input_shape
            if input_shape is None:
                raise self.error("needs an input shape: call init(rng, input_shape) or declare input_shape=")
        shape = normalize_shape(input_shape)
        self.check_input_shape(shape)
        self._check_policy_at_init()
        params, state = self._make_checked_variables(rng, shape)
        if self.activity_regularizer is not None:
            state = {**state, ACTIVITY_LOSS: jnp.zeros((), jnp.float32)}
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
        """Run the layer on a batch `x`; returns `(y, new_state)`.

        `x` may carry a mask (`Masked`, from `Embedding(mask_zero=True)` or `Masking`); the layer reads,
        keeps or drops it as its mask attributes say, and its output carries `compute_mask`'s result.
        """
        params, x, out_dtype = self._autocast(params, x)
        y, new_state = self._apply(params, state, x, rng=rng, training=training)
        if out_dtype is not None:
            y = cast_floating(y, out_dtype)
        if self.activity_regularizer is not None:
            new_state = {**new_state, ACTIVITY_LOSS: self._activity_loss(y)}
        return y, new_state

    def _make_checked_variables(self, rng: Array, shape: Any) -> tuple[PyTree, PyTree]:
        """`make_variables`, refusing a non-floating policy (`dtype="int32"`) on a layer with params."""
        if is_floating(self.dtype):
            return self.make_variables(rng, shape)
        try:
            params, state = self.make_variables(rng, shape)
        except (TypeError, ValueError):
            params = None
        if params is None or jax.tree.leaves(params):
            raise self.error(f"has dtype policy {self._dtype_policy.name!r}, but its params must be floating "
                             "to be trained: pass a floating dtype such as 'float32' or 'mixed_bfloat16'")
        return params, state

    def _apply(self, params, state, x, *, rng, training):
        if self.passes_masks:
            return self.call(params, state, x, rng=rng, training=training)
        values, mask = split_mask(x)
        has_mask = mask is not None and (not isinstance(mask, list) or any(m is not None for m in mask))
        if has_mask and self.call_takes_mask:
            y, state = self.call(params, state, values, rng=rng, training=training, mask=mask)
        else:
            y, state = self.call(params, state, values, rng=rng, training=training)
        out_mask = self.compute_mask(values, mask if has_mask else None)
        if has_mask and out_mask is None and not (self.supports_masking or self.call_takes_mask):
            warnings.warn(
                f"{self.describe()} was given a masked input but does not support masking: the mask is "
                "dropped here and layers after it will not see it", stacklevel=2,
            )
        return with_mask(y, out_mask), state

    def _activity_loss(self, y: Any) -> jax.Array:
        """Keras' activity penalty: the regularizer of each output over its batch size."""
        total = jnp.zeros((), jnp.float32)
        for leaf in jax.tree.leaves(strip_mask(y)):
            if jnp.issubdtype(leaf.dtype, jnp.floating):
                loss = self.activity_regularizer(cast_floating(leaf, jnp.float32, narrow=False))
                total = total + (loss / leaf.shape[0] if leaf.ndim and leaf.shape[0] else loss)
        return total

    def penalty(self, params: PyTree) -> jax.Array:
        """The weight penalty of `params` (this layer's regularizers and every sublayer's), a pure
        function: what `fit` adds to the loss, and what a hand-written loss adds to train the same.
        Frozen layers (`trainable=False`) add nothing, as in Keras."""
        total = jnp.zeros((), jnp.float32)
        if not self.trainable or not isinstance(params, dict):
            return total
        for name, regularizer in self.weight_regularizers.items():
            if name in params:
                total = total + regularizer(params[name])
        for name, child in self.children():
            if child is not self and name in params:
                total = total + child.penalty(params[name])
        return total

    def constrain(self, params: PyTree) -> PyTree:
        """`params` projected by this layer's constraints and every sublayer's (what `fit` applies after
        each update); params without a constraint are returned as they are."""
        if not isinstance(params, dict) or not (self.weight_constraints or self.children()):
            return params
        out = dict(params)
        for name, constraint in self.weight_constraints.items():
            if name in out:
                out[name] = constraint(out[name])
        for name, child in self.children():
            if child is not self and name in out:
                out[name] = child.constrain(out[name])
        return out

    def compute_mask(self, x: Any, mask: Any) -> Any:
        """The mask of this layer's output for input `x` with `mask` (None: unmasked output).

        Default: the input's mask when the layer `supports_masking`, else none. Layers that make a mask
        (Embedding, Masking) or change the time axis (a recurrent layer without `return_sequences`) override.
        """
        return mask if self.supports_masking else None

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

        out = strip_mask(jax.eval_shape(run, jax.random.key(0)))
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

    def check_input_values(self, x: Any) -> None:
        """Raise a `LayerError` when the values of concrete inputs `x` cannot work (an id outside an
        Embedding's vocabulary): compiled code cannot raise, so `fit`, `evaluate` and `predict` ask
        before they start. Containers ask the layers that read their inputs; default: nothing to check."""

    def input_names(self) -> list[str] | None:
        """Names of the inputs, in order, for layers that take a dict of named inputs; else None."""
        return None

    def output_names(self) -> list[str] | None:
        """Names of the outputs, in order, for layers whose outputs are named (per-output loss weights)."""
        return None

    # -- the functional API ---------------------------------------------------------------------
    def bind_call(self, inputs: Any, *args: Any, **kwargs: Any) -> tuple[Any, Layer]:
        """What `layer(inputs, *args, **kwargs)` on symbolic tensors records: `(node_inputs, runner)`.

        `node_inputs` is a tensor or a list of tensors that become the graph node's inputs, and `runner`
        the layer that runs the node: `self`, or a copy configured by the call's options that shares this
        layer's params (`configured`). Layers whose call takes more than their inputs (attention's value and
        mask, a recurrent layer's initial state) override this; the default takes inputs only.
        """
        if args or set(kwargs) - {"training"}:
            extra = ", ".join([*(repr(a) for a in args), *sorted(set(kwargs) - {"training"})])
            raise self.error(f"was called with extra arguments ({extra}); it takes only its inputs")
        return inputs, self

    def configured(self, **options: Any) -> Layer:
        """A copy of this layer with call options set as attributes; it shares this layer's params."""
        view = copy.copy(self)
        for key, value in options.items():
            setattr(view, key, value)
        return view

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """Call on symbolic tensors (from `Input`) to build a functional `Model` graph."""
        if _symbolic_call is None:
            raise self.error("was called, but the functional graph is not loaded (import jaxnet_lite first)")
        return _symbolic_call(self, inputs, *args, **kwargs)

    def get_config(self) -> dict[str, Any]:
        """The arguments this layer was built with (as given; `RecordsArguments`), plus its current name
        and trainability: `type(layer).from_config(layer.get_config())` builds the same layer."""
        config = self.init_arguments()
        config["name"] = self.name
        if isinstance(config.get("dtype"), DTypePolicy):
            config["dtype"] = config["dtype"].name
        elif config.get("dtype") is None and self._dtype_policy.name != "float32" and _takes_dtype(type(self)):
            config["dtype"] = self._dtype_policy.name  # a model built under a global policy reloads with it
        if not self.trainable:
            config["trainable"] = False
        return config

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


ACTIVITY_LOSS = "activity_loss"  # the state entry of a layer with an activity regularizer


def activity_losses(state: PyTree) -> jax.Array:
    """The sum of every layer's activity penalty recorded in `state` by its last `apply`."""
    total = jnp.zeros((), jnp.float32)
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if path and getattr(path[-1], "key", None) == ACTIVITY_LOSS:
            total = total + leaf
    return total


def _weight_rule(owner: str, what: str, identifier: Any, kind: str) -> Any:
    try:
        return (get_regularizer if kind == "regularizer" else get_constraint)(identifier)
    except ValueError as e:
        raise LayerError(f"{owner}: {what}: {e}") from None


def _takes_dtype(cls: type) -> bool:
    """Whether `cls(dtype=...)` is accepted (a user's layer may list its arguments without `**kwargs`)."""
    params = inspect.signature(cls.__init__).parameters.values()
    return any(p.name == "dtype" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


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
