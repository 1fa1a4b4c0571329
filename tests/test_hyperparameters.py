"""Hyper-parameters given as NumPy scalars: every layer of the catalogue takes `np.int64(8)` or
`np.float32(0.5)` wherever it takes the Python number, stores the Python number and computes the same
output; bools, non-integral or non-finite numbers, non-positive sizes and strings stay a `LayerError`
that names the layer and the argument."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import pytest

from jaxnet_lite import layers as L
from jaxnet_lite.core import Layer, LayerError

KEY = jax.random.key(0)
INT_TYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8]
FLOAT_TYPES = [np.float32, np.float64]


def double(x: Any) -> Any:
    return x * 2


#: Class name -> (positional args, keyword args, input shape): every int and float argument it takes.
CASES: dict[str, tuple[tuple, dict[str, Any], Any]] = {
    "Dense": ((3,), {}, (4,)),
    "Reshape": (((2, -1),), {}, (6,)),
    "Lambda": ((double,), {"output_shape": (4,)}, (4,)),
    "Embedding": ((10, 4), {}, (5,)),
    "Dropout": ((0.3,), {"noise_shape": (None, 1, 4), "seed": 7}, (3, 4)),
    "BatchNormalization": ((), {"axis": -1, "momentum": 0.9, "epsilon": 1e-3}, (3, 4)),
    "LayerNormalization": ((), {"axis": (1, 2), "epsilon": 1e-5}, (3, 4)),
    "Concatenate": ((), {"axis": -1}, [(3,), (2,)]),
    "FanOut": ((3,), {}, (4,)),
    "Conv1D": ((4, 3), {"strides": 2, "dilation_rate": 1, "groups": 2}, (9, 2)),
    "Conv2D": ((4, (3, 2)), {"strides": (2, 1), "dilation_rate": 1, "groups": 1}, (7, 6, 2)),
    "Conv3D": ((2, 2), {"strides": 1, "dilation_rate": (1, 2, 1)}, (4, 5, 4, 1)),
    "Conv1DTranspose": ((3, 3), {"strides": 2, "output_padding": 1}, (5, 2)),
    "Conv2DTranspose": ((3, (3, 2)), {"strides": (2, 2), "output_padding": (1, 0), "groups": 1}, (4, 4, 2)),
    "Conv3DTranspose": ((2, 2), {"strides": 2, "dilation_rate": 1}, (3, 3, 3, 1)),
    **{f"{kind}Pooling{rank}D": ((2,), {"strides": 1}, (5,) * rank + (2,))
       for kind in ("Max", "Average") for rank in (1, 2, 3)},
    "Masking": ((0.5,), {}, (3, 4)),
    "SimpleRNN": ((3,), {"dropout": 0.25, "unroll": 2}, (4, 2)),
    "LSTM": ((3,), {"recurrent_dropout": 0.25}, (4, 2)),
    "GRU": ((3,), {"dropout": 0.5}, (4, 2)),
    "MultiHeadAttention": ((2, 3), {"dropout": 0.25, "output_shape": 5}, (4, 6)),
    "RMSNormalization": ((), {"axis": -1, "epsilon": 1e-5}, (3, 4)),
    "PositionEmbedding": ((6,), {}, (4, 3)),
    "TokenAndPositionEmbedding": ((10, 6, 3), {}, (4,)),
}

#: Layers of the catalogue without an int or float argument (beyond `input_shape`).
NO_NUMBERS = {
    "Layer", "Container", "Serial", "Parallel", "Residual", "Activation", "Flatten", "Identity",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Bidirectional", "TimeDistributed",
    *(f"Global{kind}Pooling{rank}D" for kind in ("Max", "Average") for rank in (1, 2, 3)),
}


def catalogue() -> set[str]:
    """Names of the layer classes `jaxnet_lite.layers` exports (aliases folded into their class)."""
    exported = (getattr(L, name) for name in L.__all__)
    return {obj.__name__ for obj in exported if isinstance(obj, type) and issubclass(obj, Layer)}


def to_numpy(value: Any, kind: type) -> Any:
    """`value` with each Python number of `kind`'s family (int or float) as a `kind` scalar, in tuples too.

    Negative ints stay Python ints for unsigned kinds, which cannot hold them.
    """
    if isinstance(value, (tuple, list)):
        return type(value)(to_numpy(v, kind) for v in value)
    if isinstance(value, bool):
        return value
    family = int if np.issubdtype(kind, np.integer) else float
    if type(value) is family and not (value < 0 and np.issubdtype(kind, np.unsignedinteger)):
        return kind(value)
    return value


def has_numbers(value: Any, family: type) -> bool:
    if isinstance(value, (tuple, list)):
        return any(has_numbers(v, family) for v in value)
    return type(value) is family


def acceptance_cases() -> list[Any]:
    return [pytest.param(name, kind, id=f"{name}-{kind.__name__}")
            for name, (args, kwargs, _) in sorted(CASES.items())
            for kind in (*INT_TYPES, *FLOAT_TYPES)
            if has_numbers((args, tuple(kwargs.values())), int if kind in INT_TYPES else float)]


def run(layer: Layer) -> Any:
    """Init from the declared input shape and apply in training (Dropout's rate, BatchNorm's momentum count)."""
    variables = layer.init(KEY)
    shape = layer.declared_input_shape
    xs = [jax.random.uniform(jax.random.key(i + 1), (2, *s)) for i, s in enumerate(shape)] \
        if isinstance(shape, list) else jax.random.uniform(jax.random.key(1), (2, *shape))
    if isinstance(layer, (L.Embedding, L.TokenAndPositionEmbedding)):
        xs = (xs * 10).astype("int32")
    return variables, layer.apply(*variables, xs, rng=jax.random.key(2), training=True)


def test_the_catalogue_is_covered():
    assert catalogue() == set(CASES) | NO_NUMBERS


@pytest.mark.parametrize("name,kind", acceptance_cases())
def test_numpy_scalars_are_taken_like_python_numbers(name, kind):
    cls = getattr(L, name)
    args, kwargs, shape = CASES[name]
    python = cls(*args, input_shape=shape, **kwargs)
    numpy = cls(*to_numpy(args, kind), input_shape=to_numpy(shape, kind), **to_numpy(kwargs, kind))
    # The same configuration, held as Python numbers (repr tells np.int64(3) from 3).
    assert {k: repr(v) for k, v in vars(numpy).items()} == {k: repr(v) for k, v in vars(python).items()}
    for a, b in zip(jax.tree.leaves(run(python)), jax.tree.leaves(run(numpy))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_narrow_float_is_stored_as_the_decimal_it_spells():
    assert L.Dropout(np.float32(0.1)).rate == 0.1
    assert L.BatchNormalization(momentum=np.float32(0.99), epsilon=np.float32(1e-3)).epsilon == 1e-3


def test_numpy_int_arrays_of_sizes_are_taken_like_tuples():
    assert L.Conv2D(4, np.array([3, 2])).kernel_size == (3, 2)
    assert L.Reshape(np.array([2, -1])).target_shape == (2, -1)


#: (layer, argument, make a layer with the argument set to a value): each argument to refuse bad values for.
SIZE_ARGUMENTS: list[tuple[str, str, Callable[[Any], Layer]]] = [
    ("Dense", "units", lambda v: L.Dense(v)),
    ("Embedding", "input_dim", lambda v: L.Embedding(v, 4)),
    ("Embedding", "output_dim", lambda v: L.Embedding(10, v)),
    ("FanOut", "n", lambda v: L.FanOut(v)),
    ("Conv2D", "filters", lambda v: L.Conv2D(v, 3)),
    ("Conv1D", "groups", lambda v: L.Conv1D(4, 3, groups=v)),
    ("Conv2D", "kernel_size", lambda v: L.Conv2D(4, v)),
    ("Conv3D", "strides", lambda v: L.Conv3D(4, 3, strides=v)),
    ("Conv2D", "dilation_rate", lambda v: L.Conv2D(4, 3, dilation_rate=v)),
    ("Conv2DTranspose", "kernel_size", lambda v: L.Conv2DTranspose(4, v)),
    ("MaxPooling2D", "pool_size", lambda v: L.MaxPooling2D(v)),
    ("AveragePooling1D", "strides", lambda v: L.AveragePooling1D(2, strides=v)),
]
TUPLE_SIZES = {"kernel_size", "strides", "dilation_rate", "pool_size"}
NONE_MEANS_DEFAULT = {("AveragePooling1D", "strides")}  # a pooling's strides=None is its pool_size
BAD_SIZES = [True, np.True_, 3.5, np.float64(3.5), np.float32(3.0), 0, np.int64(0), -2, np.int8(-2), "3", None,
             np.float64("nan")]

FLOAT_ARGUMENTS: list[tuple[str, str, Callable[[Any], Layer], list[Any]]] = [
    ("Dropout", "rate", lambda v: L.Dropout(v), [1.0, np.float32(1.5), -0.1]),
    ("BatchNormalization", "momentum", lambda v: L.BatchNormalization(momentum=v), [1.5, np.float64(-0.1)]),
    ("BatchNormalization", "epsilon", lambda v: L.BatchNormalization(epsilon=v), [0.0, np.float32(-1e-3)]),
    ("LayerNormalization", "epsilon", lambda v: L.LayerNormalization(epsilon=v), [0, np.float64(0.0)]),
]
NOT_FINITE = [float("nan"), np.float32("nan"), float("inf"), np.float64("inf"), -np.inf, True, np.True_, "0.5",
              None]

OTHER_ARGUMENTS: list[tuple[str, str, Callable[[Any], Layer], list[Any]]] = [
    ("BatchNormalization", "axis", lambda v: L.BatchNormalization(axis=v), [True, 1.5, np.float32(1.0), "1", ()]),
    ("LayerNormalization", "axis", lambda v: L.LayerNormalization(axis=v), [(1, True), (1, 2.0)]),
    ("Concatenate", "axis", lambda v: L.Concatenate(axis=v), [True, np.float64(1.0), "1", (1,)]),
    ("Dropout", "seed", lambda v: L.Dropout(0.5, seed=v), [True, 1.5, "1"]),
    ("Dropout", "noise_shape", lambda v: L.Dropout(0.5, noise_shape=v),
     [(None, 0), (None, 2.5), (None, True), (None, np.float32(1.0)), 3]),
    ("Reshape", "target_shape", lambda v: L.Reshape(v), [(2, 2.5), (True, 4), "34", (0, 4), (2, np.float64(2.0))]),
    ("Lambda", "output_shape", lambda v: L.Lambda(double, output_shape=v), [(2.5,), (True,), (0,)]),
    ("Conv2DTranspose", "output_padding", lambda v: L.Conv2DTranspose(4, 3, strides=2, output_padding=v),
     [True, -1, 2, 1.0, np.float32(1.0), (1, True)]),
]


def refusal_cases() -> list[Any]:
    cases = []
    for owner, what, make in SIZE_ARGUMENTS:
        bad = BAD_SIZES + ([(3, True), (3, np.float32(2.5)), (3, np.int64(0))] if what in TUPLE_SIZES else [])
        cases += [(owner, what, make, v) for v in bad if not (v is None and (owner, what) in NONE_MEANS_DEFAULT)]
    cases += [(owner, what, make, v) for owner, what, make, bad in FLOAT_ARGUMENTS for v in bad + NOT_FINITE]
    cases += [(owner, what, make, v) for owner, what, make, bad in OTHER_ARGUMENTS for v in bad]
    return [pytest.param(*case, id=f"{case[0]}-{case[1]}-{case[3]!r}") for case in cases]


@pytest.mark.parametrize("owner,what,make,bad", refusal_cases())
def test_bad_values_are_refused_naming_the_layer_and_argument(owner, what, make, bad):
    with pytest.raises(LayerError, match=rf"^{re.escape(owner)}: {re.escape(what)} must ") as caught:
        make(bad)
    assert "np." not in str(caught.value)  # NumPy scalars are spelled as the numbers they hold


def test_the_message_spells_a_numpy_value_as_its_number():
    with pytest.raises(LayerError, match=r"^Dense: units must be a positive integer, got 3\.5$"):
        L.Dense(np.float64(3.5))
    with pytest.raises(LayerError, match=re.escape("Conv2D: kernel_size must be a positive int or a tuple of 2 "
                                                   "positive ints, got (3, 0)")):
        L.Conv2D(4, (np.int64(3), np.int8(0)))
