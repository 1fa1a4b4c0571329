"""Property-based tests for every layer and combinator in `jaxnet_lite.layers`.

Each test draws hyper-parameters (units, kernel sizes, strides, padding, dilation, ...) and an input
seed with Hypothesis, then runs the protocol checks of `jaxnet_lite.testing.check_layer` (output shape vs
`output_shape`, jit vs eager, vmap per example vs batch, determinism, state structure) and the float64
finite-difference gradient checks of `check_layer_grads` (params and inputs).

Kinks (relu, max pooling, Maximum/Minimum): inputs are continuous random normals, so a central difference
with eps=1e-6 straddles a kink (or a near-tie of two maxima) with negligible probability; the default
tolerances are kept everywhere unless a comment says otherwise.

Also here: the fast pooling path agrees with the general `lax.reduce_window` path (values and
gradients), and layers compute in the dtype of their inputs and params (float64 under x64).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxnet_lite import layers as L
from jaxnet_lite.testing import assert_trees_close, check_layer, check_layer_grads, make_input
from jaxnet_lite.testing.strategies import (
    ALL_ACTIVATIONS,
    conv_cases,
    dense_cases,
    pool_cases,
    seeds,
    shapes,
)

# Drawn input seeds (the arrays themselves come from `make_input`: reproducible standard normals).
SEEDS = seeds()

CONV = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}
CONV_T = {1: L.Conv1DTranspose, 2: L.Conv2DTranspose, 3: L.Conv3DTranspose}
MAXPOOL = {1: L.MaxPooling1D, 2: L.MaxPooling2D, 3: L.MaxPooling3D}
AVGPOOL = {1: L.AveragePooling1D, 2: L.AveragePooling2D, 3: L.AveragePooling3D}
GMAX = {1: L.GlobalMaxPooling1D, 2: L.GlobalMaxPooling2D, 3: L.GlobalMaxPooling3D}
GAVG = {1: L.GlobalAveragePooling1D, 2: L.GlobalAveragePooling2D, 3: L.GlobalAveragePooling3D}


def scaled(fraction: float) -> settings:
    """Fewer examples for a slow (compile-heavy) case, relative to the active profile (ci: 8, dev: 60).

    Every new shape or hyper-parameter costs XLA compilations of each op, eager and jitted, float32 and
    float64; these settings keep the three layer test files within their time budget on 2 CPU cores.
    """
    return settings(max_examples=max(2, math.ceil(settings.default.max_examples * fraction)))


def check_all(layer, input_shape, seed, *, training=False):
    """Protocol checks plus float64 gradient checks (params and inputs) on the same drawn case."""
    variables, y = check_layer(layer, input_shape, seed=seed % 1000, training=training)
    check_layer_grads(layer, input_shape, seed=seed % 1000, training=training)
    return variables, y


# ------------------------------------------------------------------------------------------- core


@scaled(0.375)
@given(case=dense_cases(), seed=SEEDS)
def test_dense(case, seed):
    kwargs, shape = case
    layer = L.Dense(**kwargs)
    variables, y = check_all(layer, shape, seed)
    assert variables.params["kernel"].shape == (shape[-1], kwargs["units"])
    assert ("bias" in variables.params) == kwargs["use_bias"]
    assert y.shape[1:] == (*shape[:-1], kwargs["units"])


# Elementwise layers: the shape matters little and every new shape costs compilations, so shapes come from
# a small set and the drawn seeds (new inputs, already compiled shapes) are nearly free.
FEW_SHAPES = st.sampled_from([(2, 3), (4,)])


@pytest.mark.parametrize("name", ALL_ACTIVATIONS)
@scaled(0.375)
@given(shape=st.just((2, 3)), seed=SEEDS)
def test_activation_each_name(name, shape, seed):
    layer = L.Activation(name)
    _, y = check_all(layer, shape, seed)
    assert y.shape[1:] == shape


@scaled(0.5)
@given(rank=st.integers(1, 3), data=st.data(), seed=SEEDS)
def test_flatten(rank, data, seed):
    shape = data.draw(shapes(rank, max_side=4))
    _, y = check_all(L.Flatten(), shape, seed)
    assert y.shape[1:] == (math.prod(shape),)


@scaled(0.5)
@given(rank=st.integers(1, 3), data=st.data(), seed=SEEDS)
def test_reshape(rank, data, seed):
    shape = data.draw(shapes(rank, max_side=4))
    size = math.prod(shape)
    target = data.draw(
        st.sampled_from([(size,), (-1,), tuple(reversed(shape)), (shape[0], -1), (-1, shape[-1]), (1, size, 1)])
    )
    layer = L.Reshape(target)
    _, y = check_all(layer, shape, seed)
    assert math.prod(y.shape[1:]) == size
    expected = tuple(size // math.prod(d for d in target if d != -1) if d == -1 else d for d in target)
    assert y.shape[1:] == expected
    x = make_input(shape, 3, seed % 1000)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x).reshape(3, *expected))


@given(shape=shapes(2, max_side=4), seed=SEEDS)
def test_identity(shape, seed):
    _, y = check_all(L.Identity(), shape, seed)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(make_input(shape, 3, seed % 1000)))


@scaled(0.5)
@given(shape=shapes(2, max_side=4), seed=SEEDS, declared=st.booleans())
def test_lambda(shape, seed, declared):
    layer = L.Lambda(lambda x: jnp.sin(x) * x[..., :1], output_shape=shape if declared else None)
    _, y = check_all(layer, shape, seed)
    x = np.asarray(make_input(shape, 3, seed % 1000))
    np.testing.assert_allclose(np.asarray(y), np.sin(x) * x[..., :1], rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------- convolutions


def _check_conv(rank, data, seed):
    kwargs, shape = data.draw(conv_cases(rank=rank, max_side=(6, 5, 4)[rank - 1]))
    layer = CONV[rank](**kwargs)
    variables, y = check_all(layer, shape, seed)
    assert variables.params["kernel"].shape == (*kwargs["kernel_size"], shape[-1], kwargs["filters"])
    for n, k, s, d, o in zip(shape[:-1], kwargs["kernel_size"], kwargs["strides"], kwargs["dilation_rate"],
                             y.shape[1:-1]):
        k_eff = (k - 1) * d + 1
        assert o == (-(-n // s) if kwargs["padding"] == "same" else (n - k_eff) // s + 1)


@scaled(0.375)
@given(data=st.data(), seed=SEEDS)
def test_conv1d(data, seed):
    _check_conv(1, data, seed)


@scaled(0.25)
@given(data=st.data(), seed=SEEDS)
def test_conv2d(data, seed):
    _check_conv(2, data, seed)


@scaled(0.25)
@given(data=st.data(), seed=SEEDS)
def test_conv3d(data, seed):
    _check_conv(3, data, seed)


@scaled(0.375)
@given(data=st.data(), seed=SEEDS)
def test_conv1d_causal(data, seed):
    kwargs, shape = data.draw(conv_cases(rank=1))
    kwargs["padding"] = "causal"
    layer = L.Conv1D(**kwargs)
    _, y = check_all(layer, shape, seed)
    assert y.shape[1] == -(-shape[0] // kwargs["strides"][0])
    # Causality: output step t does not depend on input steps after t*stride.
    params, state = layer.init(jax.random.key(0), shape)
    x = make_input(shape, 1, seed % 1000)
    t = y.shape[1] - 1
    cut = t * kwargs["strides"][0] + 1
    if cut < shape[0]:
        x2 = x.at[:, cut:].set(100.0)
        y1 = layer.apply(params, state, x)[0]
        y2 = layer.apply(params, state, x2)[0]
        np.testing.assert_allclose(np.asarray(y1[:, t]), np.asarray(y2[:, t]), rtol=1e-5, atol=1e-5)


@st.composite
def conv_transpose_cases(draw, rank):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    strides = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    dilated = draw(st.booleans())
    dilation = tuple(draw(st.integers(1, 2)) if dilated else 1 for _ in range(rank))
    padding = draw(st.sampled_from(["valid", "same"]))
    use_op = draw(st.booleans())
    output_padding = tuple(draw(st.integers(0, s - 1)) for s in strides) if use_op else None
    # At least 2 steps per axis so that 'same' with output_padding never yields an empty output.
    spatial = tuple(draw(st.integers(2, 4 if rank < 3 else 3)) for _ in range(rank))
    kwargs = {
        "filters": draw(st.integers(1, 3)),
        "kernel_size": kernel,
        "strides": strides,
        "padding": padding,
        "output_padding": output_padding,
        "dilation_rate": dilation,
        "use_bias": draw(st.booleans()),
    }
    return kwargs, (*spatial, draw(st.integers(1, 3)))


def keras_transpose_length(n, k, s, d, padding, op):
    """Keras' `deconv_output_length` (the documented formula, independent of the layer's own code)."""
    k_eff = (k - 1) * d + 1
    if op is None:
        return n * s + max(k_eff - s, 0) if padding == "valid" else n * s
    pad = 0 if padding == "valid" else k_eff // 2
    return (n - 1) * s + k_eff - 2 * pad + op


def _check_conv_transpose(rank, data, seed):
    kwargs, shape = data.draw(conv_transpose_cases(rank))
    layer = CONV_T[rank](**kwargs)
    variables, y = check_all(layer, shape, seed)
    assert variables.params["kernel"].shape == (*kwargs["kernel_size"], kwargs["filters"], shape[-1])
    ops = kwargs["output_padding"] or (None,) * rank
    expected = tuple(
        keras_transpose_length(n, k, s, d, kwargs["padding"], op)
        for n, k, s, d, op in zip(shape[:-1], kwargs["kernel_size"], kwargs["strides"], kwargs["dilation_rate"], ops)
    )
    assert y.shape[1:] == (*expected, kwargs["filters"])


@scaled(0.375)
@given(data=st.data(), seed=SEEDS)
def test_conv1d_transpose(data, seed):
    _check_conv_transpose(1, data, seed)


@scaled(0.25)
@given(data=st.data(), seed=SEEDS)
def test_conv2d_transpose(data, seed):
    _check_conv_transpose(2, data, seed)


@scaled(0.25)
@given(data=st.data(), seed=SEEDS)
def test_conv3d_transpose(data, seed):
    _check_conv_transpose(3, data, seed)


# ---------------------------------------------------------------------------------------- pooling


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("rank", [1, 2, 3])
@scaled(0.25)
@given(data=st.data(), seed=SEEDS)
def test_pooling(kind, rank, data, seed):
    kwargs, shape = data.draw(pool_cases(rank=rank, max_side=(6, 5, 4)[rank - 1]))
    layer = (MAXPOOL if kind == "max" else AVGPOOL)[rank](**kwargs)
    _, y = check_all(layer, shape, seed)
    strides = kwargs["strides"] or kwargs["pool_size"]
    for n, p, s, o in zip(shape[:-1], kwargs["pool_size"], strides, y.shape[1:-1]):
        assert o == (-(-n // s) if kwargs["padding"] == "same" else (n - p) // s + 1)
    if kind == "max":
        # Every output is one of the inputs, and never more than the global max.
        x = np.asarray(make_input(shape, 3, seed % 1000))
        assert np.isin(np.asarray(y), x).all()
    else:
        x = np.asarray(make_input(shape, 3, seed % 1000))
        assert np.asarray(y).max() <= x.max() + 1e-6 and np.asarray(y).min() >= x.min() - 1e-6


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("rank", [1, 2, 3])
@scaled(0.25)
@given(data=st.data(), seed=SEEDS, keepdims=st.booleans())
def test_global_pooling(kind, rank, data, seed, keepdims):
    shape = data.draw(st.sampled_from([(3, 2, 4, 2)[-(rank + 1):], (2, 3, 1, 3)[-(rank + 1):]]))
    layer = (GMAX if kind == "max" else GAVG)[rank](keepdims=keepdims)
    _, y = check_all(layer, shape, seed)
    x = np.asarray(make_input(shape, 3, seed % 1000))
    axes = tuple(range(1, rank + 1))
    ref = x.max(axis=axes, keepdims=keepdims) if kind == "max" else x.mean(axis=axes, keepdims=keepdims)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("rank", [1, 2, 3])
@scaled(0.25)
@given(data=st.data(), seed=SEEDS)
def test_pool_fast_path_matches_reduce_window(kind, rank, data, seed):
    """Non-overlapping windows: crop+reshape+reduce == lax.reduce_window, values and gradients.

    Sizes are drawn freely, so most are not multiples of the pool size (the fast path must crop the tail).
    """
    pool = tuple(data.draw(st.integers(1, 3)) for _ in range(rank))
    spatial = tuple(data.draw(st.integers(p, 2 * p + 2)) for p in pool)
    shape = (*spatial, data.draw(st.integers(1, 3)))
    layer = (MAXPOOL if kind == "max" else AVGPOOL)[rank](pool_size=pool)
    assert layer.uses_fast_path
    with jax.enable_x64(True):
        x = make_input(shape, 2, seed % 1000, "float64")
        fast, vjp_fast = jax.vjp(layer.pool_fast, x)
        general, vjp_general = jax.vjp(layer.pool_general, x)
        assert fast.dtype == general.dtype == jnp.float64
        assert fast.shape == general.shape == (2, *layer.output_shape(shape))
        np.testing.assert_allclose(np.asarray(fast), np.asarray(general), rtol=1e-12, atol=1e-12)
        cot = make_input(layer.output_shape(shape), 2, seed % 1000 + 1, "float64")
        (g_fast,), (g_general,) = vjp_fast(cot), vjp_general(cot)
        np.testing.assert_allclose(np.asarray(g_fast), np.asarray(g_general), rtol=1e-12, atol=1e-12)
        # The cropped tail gets no gradient.
        for axis, (n, p) in enumerate(zip(spatial, pool)):
            if n % p:
                idx = [slice(None)] * (rank + 2)
                idx[axis + 1] = slice((n // p) * p, None)
                assert not np.asarray(g_fast)[tuple(idx)].any()
    # And the layer's own apply takes the fast path (same values as the general one).
    y, _ = layer.apply({}, {}, make_input(shape, 2, seed % 1000))
    np.testing.assert_allclose(np.asarray(y), np.asarray(layer.pool_general(make_input(shape, 2, seed % 1000))),
                               rtol=1e-6, atol=1e-6)


@scaled(0.25)
@given(rank=st.integers(1, 2), data=st.data(), seed=SEEDS)
def test_pool_fast_path_with_ties(rank, data, seed):
    """Tied maxima (quantized inputs, zeros after a relu): values agree, and the gradient goes to the first
    maximum of each window on both paths, as `reduce_window`'s select_and_scatter (and Keras) does."""
    pool = tuple(data.draw(st.integers(2, 3)) for _ in range(rank))
    spatial = tuple(data.draw(st.integers(p, 2 * p + 1)) for p in pool)
    shape = (*spatial, 2)
    layer = MAXPOOL[rank](pool_size=pool)
    x = jnp.round(jax.nn.relu(make_input(shape, 2, seed % 1000)))  # many exact ties (zeros, ones)
    fast, vjp_fast = jax.vjp(layer.pool_fast, x)
    general, vjp_general = jax.vjp(layer.pool_general, x)
    np.testing.assert_array_equal(np.asarray(fast), np.asarray(general))
    cot = make_input(layer.output_shape(shape), 2, seed % 1000 + 1)
    (g_fast,), (g_general,) = vjp_fast(cot), vjp_general(cot)
    np.testing.assert_array_equal(np.asarray(g_fast), np.asarray(g_general))
    np.testing.assert_allclose(np.asarray(_window_sums(g_fast, pool)), np.asarray(cot), rtol=1e-5, atol=1e-6)


def _window_sums(g, pool):
    """Sum each non-overlapping window (cropping the tail) of a (batch, *spatial, C) array."""
    out = [n // p for n, p in zip(g.shape[1:-1], pool)]
    g = g[(slice(None), *(slice(0, o * p) for o, p in zip(out, pool)), slice(None))]
    split = [g.shape[0]]
    for o, p in zip(out, pool):
        split += [o, p]
    return g.reshape(*split, g.shape[-1]).sum(axis=tuple(2 + 2 * i for i in range(len(pool))))


# ------------------------------------------------------------------------ regularization / norms


@scaled(0.375)
@given(rate=st.sampled_from([0.0, 0.1, 0.5, 0.9]), shape=FEW_SHAPES, seed=SEEDS)
def test_dropout_training(rate, shape, seed):
    layer = L.Dropout(rate)
    _, y = check_all(layer, shape, seed, training=True)
    x = np.asarray(make_input(shape, 3, seed % 1000))
    y = np.asarray(y)
    kept = y != 0
    # Kept units are x / (1 - rate); dropped ones are zero.
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), rtol=1e-6)
    if rate == 0.0:
        np.testing.assert_array_equal(y, x)


@given(rate=st.sampled_from([0.1, 0.5, 0.9]), shape=FEW_SHAPES, seed=SEEDS)
def test_dropout_inference_is_identity(rate, shape, seed):
    layer = L.Dropout(rate)
    _, y = check_all(layer, shape, seed, training=False)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(make_input(shape, 3, seed % 1000)))


@scaled(0.375)
@given(rank=st.integers(1, 3), data=st.data(), seed=SEEDS, training=st.booleans(),
       center=st.booleans(), scale=st.booleans())
def test_batch_normalization(rank, data, seed, training, center, scale):
    shape = data.draw(shapes(rank, max_side=3))
    axis = data.draw(st.sampled_from([-1, *range(1, rank + 1)]))
    layer = L.BatchNormalization(axis=axis, center=center, scale=scale, momentum=0.9)
    variables, y = check_all(layer, shape, seed, training=training)
    feat = shape[axis - 1] if axis > 0 else shape[-1]
    assert variables.state["moving_mean"].shape == (feat,)
    assert set(variables.params) == {k for k, on in (("gamma", scale), ("beta", center)) if on}
    _, new_state = layer.apply(variables.params, variables.state, make_input(shape, 3, seed % 1000),
                               training=training)
    if training:
        assert not np.allclose(np.asarray(new_state["moving_variance"]), 1.0)
    else:
        assert_trees_close(new_state, variables.state, atol=0, rtol=0)


@scaled(0.25)
@given(rank=st.integers(1, 3), data=st.data(), seed=SEEDS, center=st.booleans(), scale=st.booleans())
def test_layer_normalization(rank, data, seed, center, scale):
    shape = data.draw(shapes(rank, max_side=3))
    axis = data.draw(st.sampled_from([-1, tuple(range(1, rank + 1))]))
    layer = L.LayerNormalization(axis=axis, center=center, scale=scale)
    _, y = check_all(layer, shape, seed)
    if not center and not scale:
        axes = (rank,) if axis == -1 else axis
        y = np.asarray(y, np.float64)
        np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-5)


@scaled(0.25)
@given(input_dim=st.integers(10, 16), output_dim=st.integers(1, 5), shape=shapes(1, max_side=5), seed=SEEDS)
def test_embedding(input_dim, output_dim, shape, seed):
    layer = L.Embedding(input_dim, output_dim)
    variables, y = check_layer(layer, shape, seed=seed % 1000, input_dtype="int32")
    assert y.shape[1:] == (*shape, output_dim)
    ids = make_input(shape, 2, seed % 1000, "int32")
    np.testing.assert_array_equal(np.asarray(y)[:2], np.asarray(variables.params["embeddings"])[np.asarray(ids)])
    # Integer ids: gradients with respect to the params only.
    check_layer_grads(layer, shape, x=ids, seed=seed % 1000, wrt=("params",))
    check_layer_grads(layer, shape, x=ids, seed=seed % 1000)  # inputs are skipped for integer ids


# ------------------------------------------------------------------------------------------ merge


MERGES = [L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum]
MERGE_OPS = {
    L.Add: lambda xs: sum(xs),
    L.Subtract: lambda xs: xs[0] - xs[1],
    L.Multiply: lambda xs: np.prod(xs, axis=0),
    L.Average: lambda xs: sum(xs) / len(xs),
    L.Maximum: lambda xs: np.max(xs, axis=0),
    L.Minimum: lambda xs: np.min(xs, axis=0),
}


@pytest.mark.parametrize("cls", MERGES, ids=lambda c: c.__name__)
@scaled(0.375)
@given(shape=FEW_SHAPES, seed=SEEDS, data=st.data())
def test_merge(cls, shape, seed, data):
    n = 2 if cls is L.Subtract else data.draw(st.integers(2, 3))
    in_shapes = [shape] * n
    _, y = check_all(cls(), in_shapes, seed)
    xs = [np.asarray(a, np.float64) for a in make_input(in_shapes, 3, seed % 1000)]
    np.testing.assert_allclose(np.asarray(y), MERGE_OPS[cls](xs), rtol=1e-5, atol=1e-6)


@scaled(0.375)
@given(rank=st.integers(1, 3), data=st.data(), seed=SEEDS)
def test_concatenate(rank, data, seed):
    base = list(data.draw(shapes(rank, max_side=4)))
    axis = data.draw(st.sampled_from([-1, *range(1, rank + 1)]))
    ax = rank - 1 if axis == -1 else axis - 1
    n = data.draw(st.integers(2, 3))
    in_shapes = []
    for _ in range(n):
        s = list(base)
        s[ax] = data.draw(st.integers(1, 4))
        in_shapes.append(tuple(s))
    _, y = check_all(L.Concatenate(axis=axis), in_shapes, seed)
    xs = [np.asarray(a) for a in make_input(in_shapes, 3, seed % 1000)]
    np.testing.assert_array_equal(np.asarray(y), np.concatenate(xs, axis=ax + 1))


# ------------------------------------------------------------------------------------ combinators


@scaled(0.25)
@given(case=dense_cases(max_units=4), units=st.integers(1, 4), seed=SEEDS)
def test_serial(case, units, seed):
    kwargs, shape = case
    layer = L.serial(L.Dense(**kwargs), L.Activation("tanh"), L.Dense(units))
    variables, y = check_all(layer, shape, seed)
    assert list(variables.params) == ["dense", "activation", "dense_1"]
    assert y.shape[1:] == (*shape[:-1], units)


@scaled(0.25)
@given(d=st.integers(1, 4), units=st.integers(1, 4), seed=SEEDS, data=st.data())
def test_parallel(d, units, seed, data):
    conv_shape = data.draw(shapes(2, max_side=5))
    layer = L.parallel(L.Dense(units, activation="tanh"), L.Conv1D(units, 1))
    _, y = check_all(layer, [(d,), conv_shape], seed)
    assert [a.shape[1:] for a in y] == [(units,), (conv_shape[0], units)]


@given(n=st.integers(1, 3), shape=shapes(2, max_side=4), seed=SEEDS)
def test_fan_out(n, shape, seed):
    _, y = check_all(L.fan_out(n), shape, seed)
    assert len(y) == n
    x = np.asarray(make_input(shape, 3, seed % 1000))
    for yi in y:
        np.testing.assert_array_equal(np.asarray(yi), x)


@scaled(0.375)
@given(d=st.integers(1, 4), units=st.integers(1, 4), seed=SEEDS,
       merge=st.sampled_from([L.Add, L.Concatenate, L.Multiply, L.Maximum]))
def test_fan_out_parallel_merge(d, units, seed, merge):
    layer = L.serial(L.fan_out(2), L.parallel(L.Dense(units), L.Dense(units, activation="sigmoid")), merge())
    _, y = check_all(layer, (d,), seed)
    assert y.shape[1:] == ((2 * units,) if merge is L.Concatenate else (units,))


@scaled(0.5)
@given(d=st.integers(1, 4), seed=SEEDS)
def test_residual_identity_shortcut(d, seed):
    body = [L.Dense(d, activation="tanh"), L.Dense(d)]
    layer = L.residual(*body)
    variables, y = check_all(layer, (d,), seed)
    # y == x + body(x)
    x = make_input((d,), 3, seed % 1000)
    body_y, _ = layer.body.apply(variables.params["body"], variables.state["body"], x)
    np.testing.assert_allclose(np.asarray(y), np.asarray(x + body_y), rtol=1e-6, atol=1e-6)


@scaled(0.5)
@given(d=st.integers(1, 4), units=st.integers(1, 4), seed=SEEDS)
def test_residual_projection_shortcut(d, units, seed):
    shortcut = L.Dense(units, use_bias=False)
    layer = L.residual(L.Dense(units, activation="tanh"), shortcut=shortcut)
    variables, y = check_all(layer, (d,), seed)
    x = make_input((d,), 3, seed % 1000)
    body_y, _ = layer.body.apply(variables.params["body"], variables.state["body"], x)
    name = layer.layer_names[1]
    skip = x @ variables.params[name]["kernel"]
    np.testing.assert_allclose(np.asarray(y), np.asarray(body_y + skip), rtol=1e-5, atol=1e-5)


@scaled(0.375)
@given(d=st.integers(1, 4), units=st.integers(1, 3), seed=SEEDS, training=st.booleans())
def test_nested_combinators(d, units, seed, training):
    """Combinators inside combinators, with state (BatchNormalization) and randomness (Dropout) threaded."""
    model = L.serial(
        L.residual(L.Dense(d), L.BatchNormalization(), L.Activation("tanh")),
        L.Dropout(0.3),
        L.serial(
            L.fan_out(2),
            L.parallel(L.Dense(units), L.residual(L.Dense(d, activation="tanh"), shortcut=L.Dense(d, use_bias=False))),
            L.Concatenate(),
        ),
        L.Dense(3),
        L.Activation("softmax"),
    )
    variables, y = check_all(model, (d,), seed, training=training)
    assert y.shape[1:] == (3,)
    np.testing.assert_allclose(np.asarray(y).sum(-1), 1.0, rtol=1e-5)
    bn_state = variables.state["residual"]["body"]["batch_normalization"]
    assert set(bn_state) == {"moving_mean", "moving_variance"}
    assert list(variables.params) == ["residual", "dropout", "serial", "dense", "activation"]


@scaled(0.5)
@given(seed=SEEDS, shape=shapes(1, min_side=2, max_side=6))
def test_serial_splits_rng_per_dropout(seed, shape):
    """Two dropout layers in a serial get different keys: their masks differ (almost surely)."""
    layer = L.serial(L.Dropout(0.5), L.Dropout(0.5))
    x = jnp.ones((64, *shape))
    key = jax.random.key(seed % 1000)
    y, _ = layer.apply({"dropout": {}, "dropout_1": {}}, {"dropout": {}, "dropout_1": {}}, x, rng=key,
                       training=True)
    y1, _ = L.serial(L.Dropout(0.5)).apply({"dropout": {}}, {"dropout": {}}, x, rng=key, training=True)
    # Same as the first child's mask alone would be only if both children used the same key.
    assert set(np.unique(np.asarray(y)).round(4)) <= {0.0, 4.0}
    assert not np.array_equal(np.asarray(y) > 0, np.asarray(y1) > 0)


# ----------------------------------------------------------------------------------------- dtypes


DTYPE_LAYERS = {
    "dense": (lambda **kw: L.Dense(3, activation="tanh", **kw), (4,)),
    "conv2d": (lambda **kw: L.Conv2D(2, 3, padding="same", **kw), (5, 5, 2)),
    "conv2d_transpose": (lambda **kw: L.Conv2DTranspose(2, 3, strides=2, **kw), (3, 3, 2)),
    "max_pool_fast": (lambda **kw: L.MaxPooling2D(2, **kw), (5, 5, 2)),
    "max_pool_general": (lambda **kw: L.MaxPooling2D(3, strides=1, padding="same", **kw), (5, 5, 2)),
    "avg_pool_fast": (lambda **kw: L.AveragePooling2D(2, **kw), (5, 5, 2)),
    "avg_pool_general": (lambda **kw: L.AveragePooling2D(3, strides=2, padding="same", **kw), (5, 5, 2)),
    "global_avg_pool": (lambda **kw: L.GlobalAveragePooling2D(**kw), (5, 5, 2)),
    "batch_norm": (lambda **kw: L.BatchNormalization(**kw), (3, 4)),
    "layer_norm": (lambda **kw: L.LayerNormalization(**kw), (3, 4)),
    "dropout": (lambda **kw: L.Dropout(0.5, **kw), (6,)),
}


DTYPE_CASES = [(name, False) for name in DTYPE_LAYERS] + [("batch_norm", True), ("dropout", True)]


@pytest.mark.parametrize("name,training", DTYPE_CASES)
def test_float64_params_and_inputs_give_float64(name, training):
    make, shape = DTYPE_LAYERS[name]
    with jax.enable_x64(True):
        # Both routes to float64 params: dtype= on the layer, and casting float32 params.
        for layer, cast in ((make(), True), (make(dtype="float64"), False)):
            params, state = layer.init(jax.random.key(0), shape)
            if cast:
                params, state = jax.tree.map(lambda a: a.astype(jnp.float64), (params, state))
            for leaf in jax.tree.leaves((params, state)):
                assert leaf.dtype == jnp.float64
            x = make_input(shape, 4, 0, "float64")
            y, new_state = layer.apply(params, state, x, rng=jax.random.key(1), training=training)
            assert y.dtype == jnp.float64, f"{name}: output {y.dtype}"
            for leaf in jax.tree.leaves(new_state):
                assert leaf.dtype == jnp.float64
            # float64 really carries float64 precision: x + 1e-12 changes a smooth layer's output.
            if name in ("dense", "conv2d", "avg_pool_fast", "global_avg_pool"):
                y2, _ = layer.apply(params, state, x + 1e-12, rng=jax.random.key(1), training=training)
                assert not np.array_equal(np.asarray(y), np.asarray(y2))


@pytest.mark.parametrize("name", ["dense", "conv2d", "batch_norm", "layer_norm", "avg_pool_general"])
def test_float32_default_dtype(name):
    make, shape = DTYPE_LAYERS[name]
    layer = make()
    params, state = layer.init(jax.random.key(0), shape)
    for leaf in jax.tree.leaves((params, state)):
        assert leaf.dtype == jnp.float32
    y, _ = layer.apply(params, state, make_input(shape, 2, 0))
    assert y.dtype == jnp.float32


@pytest.mark.parametrize("dtype", ["bfloat16"])
@pytest.mark.parametrize("name,training", DTYPE_CASES)
def test_low_precision_params_and_inputs_keep_their_dtype(name, training, dtype):
    make, shape = DTYPE_LAYERS[name]
    layer = make(dtype=dtype)
    params, state = layer.init(jax.random.key(0), shape)
    for leaf in jax.tree.leaves((params, state)):
        assert leaf.dtype == jnp.dtype(dtype)
    y, new_state = layer.apply(params, state, make_input(shape, 4, 0, dtype), rng=jax.random.key(1),
                               training=training)
    assert y.dtype == jnp.dtype(dtype), f"{name}: output {y.dtype}"
    for leaf in jax.tree.leaves(new_state):
        assert leaf.dtype == jnp.dtype(dtype)


@pytest.mark.parametrize("layer_fn", [
    lambda: L.MaxPooling2D(2, padding="same"),
    lambda: L.MaxPooling2D(3, strides=2),
    lambda: L.AveragePooling2D(2, padding="same"),
    lambda: L.AveragePooling2D(3, strides=1),
    lambda: L.MaxPooling1D(2, padding="same"),
    lambda: L.MaxPooling2D(2),
])
def test_pooling_gradients_under_jit_in_training(layer_fn):
    """Regression: a traced init value made reduce_window's gradient fail inside jit (as in fit)."""
    layer = layer_fn()
    shape = (6, 2) if layer.rank == 1 else (6, 6, 2)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, *shape)), jnp.float32)
    grad = jax.jit(jax.grad(lambda xx: jnp.sum(layer.apply({}, {}, xx, training=True)[0] ** 2)))(x)
    eager = jax.grad(lambda xx: jnp.sum(layer.apply({}, {}, xx, training=False)[0] ** 2))(x)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(eager), rtol=1e-5, atol=1e-6)
