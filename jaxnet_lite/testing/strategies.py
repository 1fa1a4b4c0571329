"""Hypothesis strategies for layer tests: input shapes, seeds and drawn hyper-parameters.

Arrays are generated from a drawn seed (normal values) rather than drawn element by element: gradient
checks want well-scaled inputs away from float edge cases, and shrinking a seed is cheap.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from jaxnet_lite import activations

SMOOTH_ACTIVATIONS = ("linear", "sigmoid", "tanh", "softplus", "silu", "gelu", "elu", "selu", "softmax")
ALL_ACTIVATIONS = tuple(sorted(activations._BY_NAME))


def seeds() -> st.SearchStrategy[int]:
    return st.integers(0, 2**31 - 1)


def shapes(rank: int, min_side: int = 1, max_side: int = 6) -> st.SearchStrategy[tuple[int, ...]]:
    """Input shapes (no batch axis) of the given rank."""
    return st.tuples(*[st.integers(min_side, max_side)] * rank)


def activation_names(smooth_only: bool = False) -> st.SearchStrategy[str]:
    """Activation names; `smooth_only` avoids kinks (relu...) that finite differences may straddle."""
    return st.sampled_from(SMOOTH_ACTIVATIONS if smooth_only else ALL_ACTIVATIONS)


@st.composite
def dense_cases(draw: Any, max_units: int = 6) -> tuple[dict, tuple[int, ...]]:
    """`(Dense kwargs, input_shape)`."""
    kwargs = {
        "units": draw(st.integers(1, max_units)),
        "use_bias": draw(st.booleans()),
        "activation": draw(activation_names(smooth_only=True)),
    }
    shape = draw(shapes(draw(st.integers(1, 3)), max_side=4))
    return kwargs, shape


@st.composite
def conv_cases(draw: Any, rank: int = 2, max_side: int = 7, transpose: bool = False) -> tuple[dict, tuple[int, ...]]:
    """`(Conv kwargs, input_shape)` with kernel sizes, strides, padding and dilation that fit the input."""
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dilated = draw(st.booleans())
    dilation = tuple(draw(st.integers(1, 2)) if dilated else 1 for _ in range(rank))
    strides = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    padding = draw(st.sampled_from(["valid", "same"]))
    spatial = tuple(
        draw(st.integers((k - 1) * d + 1, max(max_side, (k - 1) * d + 1))) for k, d in zip(kernel, dilation)
    )
    channels = draw(st.integers(1, 3))
    kwargs = {
        "filters": draw(st.integers(1, 3)),
        "kernel_size": kernel,
        "strides": strides,
        "padding": padding,
        "dilation_rate": dilation,
        "use_bias": draw(st.booleans()),
    }
    return kwargs, (*spatial, channels)


@st.composite
def pool_cases(draw: Any, rank: int = 2, max_side: int = 7) -> tuple[dict, tuple[int, ...]]:
    """`(Pooling kwargs, input_shape)`: default, overlapping and 'same'-padded windows."""
    pool = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    strides = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * rank)))
    padding = draw(st.sampled_from(["valid", "same"]))
    spatial = tuple(draw(st.integers(p, max_side)) for p in pool)
    return {"pool_size": pool, "strides": strides, "padding": padding}, (*spatial, draw(st.integers(1, 3)))
