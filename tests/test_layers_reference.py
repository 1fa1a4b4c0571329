"""Layers against independent NumPy reference implementations (float64, plain loops).

The references are written from the Keras/TensorFlow definitions (output sizes, 'same' padding split
`left = total // 2`, transposed convolution as a scatter-add, Keras' average pooling over real elements),
never from the library's own code. Layers run under `jax.enable_x64(True)` with float64 parameters drawn
here, so tolerances are tight.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet_lite import activations, initializers
from jaxnet_lite import layers as L
from jaxnet_lite.core import LayerError

RNG = np.random.default_rng(20240601)


def randn(*shape):
    return RNG.standard_normal(shape)


def run(layer, params, state, x, **kwargs):
    """Apply `layer` in float64 with the given NumPy params/state/inputs; returns NumPy outputs."""
    with jax.enable_x64(True):
        to64 = lambda a: jnp.asarray(a, jnp.float64) if np.asarray(a).dtype.kind == "f" else jnp.asarray(a)
        p = jax.tree.map(to64, params)
        s = jax.tree.map(to64, state)
        xx = [to64(a) for a in x] if isinstance(x, list) else to64(x)
        y, new_state = layer.apply(p, s, xx, **kwargs)
        return jax.tree.map(np.asarray, y), jax.tree.map(np.asarray, new_state)


def init_shapes(layer, input_shape):
    """Shapes of the params the layer creates (to draw our own float64 values of the same shapes)."""
    params, state = layer.init(jax.random.key(0), input_shape)
    return jax.tree.map(lambda a: a.shape, params), jax.tree.map(lambda a: a.shape, state)


def random_params(layer, input_shape):
    pshapes, sshapes = init_shapes(layer, input_shape)
    is_shape = lambda t: isinstance(t, tuple) and all(isinstance(d, int) for d in t)
    params = jax.tree.map(lambda s: randn(*s), pshapes, is_leaf=is_shape)
    return params, jax.tree.map(lambda s: np.zeros(s), sshapes, is_leaf=is_shape)


TIGHT = dict(rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------------------------ Dense


@pytest.mark.parametrize("shape", [(5,), (2, 5)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_matches_numpy(shape, use_bias):
    layer = L.Dense(3, use_bias=use_bias)
    params, state = random_params(layer, shape)
    assert params["kernel"].shape == (shape[-1], 3)
    x = randn(4, *shape)
    y, _ = run(layer, params, state, x)
    ref = np.zeros((4, *shape[:-1], 3))
    for idx in itertools.product(*map(range, x.shape[:-1])):
        for u in range(3):
            ref[idx + (u,)] = sum(x[idx + (i,)] * params["kernel"][i, u] for i in range(shape[-1]))
            if use_bias:
                ref[idx + (u,)] += params["bias"][u]
    np.testing.assert_allclose(y, ref, **TIGHT)


# ----------------------------------------------------------------------------------- convolutions


def same_pads(n, k_eff, s):
    """TensorFlow/Keras 'same': output ceil(n/s), total padding split with the smaller half on the left."""
    out = -(-n // s)
    total = max((out - 1) * s + k_eff - n, 0)
    return out, total // 2


def ref_conv(x, kernel, bias, strides, padding, dilation, groups=1):
    """Direct convolution: y[o] = sum_a x[o*s + a*d - pad_left] @ K[a] (+ bias)."""
    rank = x.ndim - 2
    ks = kernel.shape[:rank]
    cin_g, filters = kernel.shape[-2], kernel.shape[-1]
    outs, lefts = [], []
    for n, k, s, d in zip(x.shape[1:-1], ks, strides, dilation):
        k_eff = (k - 1) * d + 1
        if padding == "valid":
            outs.append((n - k_eff) // s + 1)
            lefts.append(0)
        elif padding == "causal":
            outs.append(-(-n // s))
            lefts.append(k_eff - 1)
        else:
            o, left = same_pads(n, k_eff, s)
            outs.append(o)
            lefts.append(left)
    y = np.zeros((x.shape[0], *outs, filters))
    f_per_g = filters // groups
    for o in itertools.product(*map(range, outs)):
        acc = np.zeros((x.shape[0], filters))
        for a in itertools.product(*map(range, ks)):
            pos = [oi * s + ai * d - left for oi, ai, s, d, left in zip(o, a, strides, dilation, lefts)]
            if any(p < 0 or p >= n for p, n in zip(pos, x.shape[1:-1])):
                continue  # zero padding
            xv = x[(slice(None), *pos, slice(None))]
            for g in range(groups):
                acc[:, g * f_per_g:(g + 1) * f_per_g] += (
                    xv[:, g * cin_g:(g + 1) * cin_g] @ kernel[a][:, g * f_per_g:(g + 1) * f_per_g]
                )
        y[(slice(None), *o, slice(None))] = acc + (0 if bias is None else bias)
    return y


CONV_CASES = [
    # cls, input_shape, kwargs
    (L.Conv1D, (9, 2), dict(filters=3, kernel_size=3)),
    (L.Conv1D, (9, 2), dict(filters=3, kernel_size=3, strides=2, padding="same")),
    (L.Conv1D, (10, 2), dict(filters=2, kernel_size=4, strides=2, padding="same")),
    (L.Conv1D, (9, 2), dict(filters=2, kernel_size=2, dilation_rate=2)),
    (L.Conv1D, (8, 3), dict(filters=2, kernel_size=3, dilation_rate=2, padding="same")),
    (L.Conv1D, (8, 2), dict(filters=2, kernel_size=3, dilation_rate=2, padding="causal")),
    (L.Conv1D, (7, 2), dict(filters=2, kernel_size=2, strides=3, use_bias=False)),
    (L.Conv2D, (6, 5, 2), dict(filters=3, kernel_size=3)),
    (L.Conv2D, (6, 5, 2), dict(filters=3, kernel_size=3, strides=2, padding="same")),
    (L.Conv2D, (6, 7, 2), dict(filters=2, kernel_size=(2, 3), strides=(2, 1), padding="same")),
    (L.Conv2D, (7, 6, 2), dict(filters=2, kernel_size=(3, 2), strides=(1, 2))),
    (L.Conv2D, (7, 7, 1), dict(filters=2, kernel_size=3, dilation_rate=2)),
    (L.Conv2D, (6, 6, 2), dict(filters=2, kernel_size=(2, 3), dilation_rate=(2, 1), padding="same")),
    (L.Conv2D, (5, 5, 4), dict(filters=4, kernel_size=3, groups=2, padding="same")),
    (L.Conv3D, (4, 5, 4, 2), dict(filters=2, kernel_size=2)),
    (L.Conv3D, (5, 4, 5, 1), dict(filters=2, kernel_size=(3, 2, 3), strides=2, padding="same")),
    (L.Conv3D, (5, 5, 4, 1), dict(filters=2, kernel_size=2, dilation_rate=(2, 1, 2), strides=(1, 2, 1))),
]


@pytest.mark.parametrize("cls,shape,kwargs", CONV_CASES,
                         ids=[f"{c.__name__}-{s}-{sorted(k.items())}" for c, s, k in CONV_CASES])
def test_conv_matches_direct_loop(cls, shape, kwargs):
    layer = cls(**kwargs)
    rank = len(shape) - 1
    params, state = random_params(layer, shape)
    x = randn(2, *shape)
    y, _ = run(layer, params, state, x)
    ref = ref_conv(
        x, params["kernel"], params.get("bias"),
        strides=layer.strides, padding=kwargs.get("padding", "valid"),
        dilation=layer.dilation_rate, groups=kwargs.get("groups", 1),
    )
    assert y.shape == ref.shape
    assert layer.output_shape(shape) == ref.shape[1:]
    np.testing.assert_allclose(y, ref, **TIGHT)
    assert params["kernel"].shape == (*layer.kernel_size, shape[-1] // kwargs.get("groups", 1), kwargs["filters"])
    assert rank == layer.rank


def keras_deconv_length(n, k, s, d, padding, output_padding):
    """Keras' `deconv_output_length` (keras/src/utils/conv_utils.py)."""
    k_eff = (k - 1) * d + 1
    if output_padding is None:
        return n * s + max(k_eff - s, 0) if padding == "valid" else n * s
    pad = 0 if padding == "valid" else k_eff // 2
    return (n - 1) * s + k_eff - 2 * pad + output_padding


def ref_conv_transpose(x, kernel, bias, strides, padding, dilation, output_padding=None):
    """Scatter-add: full[i*s + a*d] += K[a] @ x[i]; then TensorFlow's crop for the Keras output size.

    The full (uncropped) transposed convolution has length (n-1)*s + k_eff; Keras asks for length L;
    'same' crops `max(full - L, 0) // 2` on the left (TF's conv2d_transpose), 'valid' crops nothing,
    and missing positions on the right are zeros.
    """
    rank = x.ndim - 2
    ks = kernel.shape[:rank]
    filters = kernel.shape[-2]
    ns = x.shape[1:-1]
    ops = output_padding or (None,) * rank
    full = [(n - 1) * s + (k - 1) * d + 1 for n, k, s, d in zip(ns, ks, strides, dilation)]
    yfull = np.zeros((x.shape[0], *full, filters))
    for i in itertools.product(*map(range, ns)):
        xi = x[(slice(None), *i, slice(None))]
        for a in itertools.product(*map(range, ks)):
            pos = tuple(ii * s + ai * d for ii, ai, s, d in zip(i, a, strides, dilation))
            yfull[(slice(None), *pos, slice(None))] += xi @ kernel[a].T  # kernel[a]: (filters, in)
    lengths = [keras_deconv_length(n, k, s, d, padding, op) for n, k, s, d, op in zip(ns, ks, strides, dilation, ops)]
    crops = [0 if padding == "valid" else max(f - length, 0) // 2 for f, length in zip(full, lengths)]
    y = np.zeros((x.shape[0], *lengths, filters))
    for o in itertools.product(*map(range, lengths)):
        src = tuple(oi + c for oi, c in zip(o, crops))
        if all(p < f for p, f in zip(src, full)):
            y[(slice(None), *o, slice(None))] = yfull[(slice(None), *src, slice(None))]
    return y + (0 if bias is None else bias)


TRANSPOSE_CASES = [
    (L.Conv2DTranspose, (3, 4, 2), dict(filters=2, kernel_size=3)),
    (L.Conv2DTranspose, (3, 4, 2), dict(filters=2, kernel_size=3, strides=2)),
    (L.Conv2DTranspose, (3, 3, 2), dict(filters=3, kernel_size=2, strides=2)),
    (L.Conv2DTranspose, (3, 3, 1), dict(filters=2, kernel_size=1, strides=2)),
    (L.Conv2DTranspose, (3, 4, 2), dict(filters=2, kernel_size=3, padding="same")),
    (L.Conv2DTranspose, (3, 4, 2), dict(filters=2, kernel_size=3, strides=2, padding="same")),
    (L.Conv2DTranspose, (3, 3, 2), dict(filters=2, kernel_size=4, strides=2, padding="same")),
    (L.Conv2DTranspose, (3, 4, 2), dict(filters=2, kernel_size=(3, 2), strides=(2, 1), padding="same")),
    (L.Conv2DTranspose, (3, 3, 2), dict(filters=2, kernel_size=2, strides=1, padding="same")),
    (L.Conv2DTranspose, (3, 3, 2), dict(filters=2, kernel_size=3, strides=2, output_padding=1)),
    (L.Conv2DTranspose, (3, 3, 2), dict(filters=2, kernel_size=3, strides=2, padding="same", output_padding=1)),
    (L.Conv2DTranspose, (3, 3, 2), dict(filters=2, kernel_size=4, strides=2, padding="same", output_padding=(1, 0))),
    (L.Conv2DTranspose, (3, 3, 1), dict(filters=2, kernel_size=2, dilation_rate=2)),
    (L.Conv2DTranspose, (3, 3, 1), dict(filters=2, kernel_size=2, dilation_rate=2, padding="same")),
    (L.Conv1DTranspose, (4, 2), dict(filters=3, kernel_size=3, strides=2, padding="same")),
    (L.Conv1DTranspose, (4, 2), dict(filters=3, kernel_size=2, strides=3)),
    (L.Conv3DTranspose, (2, 3, 2, 2), dict(filters=2, kernel_size=(2, 3, 2), strides=(2, 1, 2), padding="same")),
    (L.Conv3DTranspose, (2, 2, 2, 1), dict(filters=2, kernel_size=2, strides=2, use_bias=False)),
]


@pytest.mark.parametrize("cls,shape,kwargs", TRANSPOSE_CASES,
                         ids=[f"{c.__name__}-{s}-{sorted(k.items())}" for c, s, k in TRANSPOSE_CASES])
def test_conv_transpose_matches_scatter_add(cls, shape, kwargs):
    layer = cls(**kwargs)
    params, state = random_params(layer, shape)
    assert params["kernel"].shape == (*layer.kernel_size, kwargs["filters"], shape[-1])  # Keras layout
    x = randn(2, *shape)
    y, _ = run(layer, params, state, x)
    ref = ref_conv_transpose(x, params["kernel"], params.get("bias"), layer.strides,
                             kwargs.get("padding", "valid"), layer.dilation_rate, layer.output_padding)
    assert y.shape == ref.shape, (y.shape, ref.shape)
    assert layer.output_shape(shape) == ref.shape[1:]
    np.testing.assert_allclose(y, ref, **TIGHT)


@pytest.mark.parametrize("n,k,s", [(4, 3, 1), (4, 3, 2), (5, 2, 2), (3, 1, 2), (3, 5, 2), (2, 2, 3)])
def test_conv2d_transpose_keras_output_sizes(n, k, s):
    """Keras: valid n*s + max(k - s, 0); same n*s."""
    for padding, expected in (("valid", n * s + max(k - s, 0)), ("same", n * s)):
        layer = L.Conv2DTranspose(2, k, strides=s, padding=padding)
        assert layer.output_shape((n, n + 1, 3)) == (expected, (n + 1) * s + (max(k - s, 0) if padding == "valid"
                                                                             else 0), 2)


# ---------------------------------------------------------------------------------------- pooling


def ref_pool(x, pool, strides, padding, kind):
    """Max / average over each window's real elements (padding contributes nothing, as in Keras)."""
    outs, lefts = [], []
    for n, p, s in zip(x.shape[1:-1], pool, strides):
        if padding == "valid":
            outs.append((n - p) // s + 1)
            lefts.append(0)
        else:
            o, left = same_pads(n, p, s)
            outs.append(o)
            lefts.append(left)
    y = np.zeros((x.shape[0], *outs, x.shape[-1]))
    for o in itertools.product(*map(range, outs)):
        ranges = []
        for oi, p, s, left, n in zip(o, pool, strides, lefts, x.shape[1:-1]):
            start = oi * s - left
            ranges.append([j for j in range(start, start + p) if 0 <= j < n])
        vals = np.stack([x[(slice(None), *pos, slice(None))] for pos in itertools.product(*ranges)])
        y[(slice(None), *o, slice(None))] = vals.max(0) if kind == "max" else vals.mean(0)
    return y


POOL_CASES = [
    (1, (7, 2), dict()),
    (1, (7, 2), dict(pool_size=3, strides=1)),
    (1, (8, 2), dict(pool_size=3, strides=2, padding="same")),
    (1, (7, 1), dict(pool_size=2, padding="same")),
    (1, (6, 2), dict(pool_size=4, strides=1, padding="same")),
    (2, (5, 7, 2), dict()),
    (2, (6, 6, 2), dict(pool_size=3, strides=2)),
    (2, (6, 7, 2), dict(pool_size=3, strides=2, padding="same")),
    (2, (5, 5, 1), dict(pool_size=(3, 2), strides=(1, 2))),
    (2, (5, 6, 2), dict(pool_size=(2, 3), strides=(2, 1), padding="same")),
    (2, (4, 4, 1), dict(pool_size=2, strides=1, padding="same")),
]
POOL_CLASSES = {("max", 1): L.MaxPooling1D, ("max", 2): L.MaxPooling2D,
                ("avg", 1): L.AveragePooling1D, ("avg", 2): L.AveragePooling2D}


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("rank,shape,kwargs", POOL_CASES,
                         ids=[f"{r}d-{s}-{sorted(k.items())}" for r, s, k in POOL_CASES])
def test_pooling_matches_loops(kind, rank, shape, kwargs):
    layer = POOL_CLASSES[kind, rank](**kwargs)
    x = randn(3, *shape)
    y, _ = run(layer, {}, {}, x)
    pool = layer.pool_size
    strides = layer.strides
    assert pool == ((kwargs.get("pool_size", 2),) * rank if isinstance(kwargs.get("pool_size", 2), int)
                    else kwargs["pool_size"])
    if "strides" not in kwargs:
        assert strides == pool  # Keras: strides default to pool_size
    ref = ref_pool(x, pool, strides, kwargs.get("padding", "valid"), kind)
    assert y.shape == ref.shape
    assert layer.output_shape(shape) == ref.shape[1:]
    np.testing.assert_allclose(y, ref, **TIGHT)


def test_average_pooling_same_edges_average_real_elements_only():
    """Keras: a 'same' window hanging over the edge averages only the elements it covers."""
    layer = L.AveragePooling1D(pool_size=3, strides=1, padding="same")
    x = np.arange(1.0, 5.0).reshape(1, 4, 1)  # 1 2 3 4
    y, _ = run(layer, {}, {}, x)
    np.testing.assert_allclose(y[0, :, 0], [1.5, 2.0, 3.0, 3.5], **TIGHT)
    layer = L.MaxPooling1D(pool_size=3, strides=1, padding="same")
    y, _ = run(layer, {}, {}, -x)
    np.testing.assert_allclose(y[0, :, 0], [-1.0, -1.0, -2.0, -3.0], **TIGHT)  # padding is not a zero


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_matches_numpy(rank, kind, keepdims):
    cls = {("max", 1): L.GlobalMaxPooling1D, ("max", 2): L.GlobalMaxPooling2D, ("max", 3): L.GlobalMaxPooling3D,
           ("avg", 1): L.GlobalAveragePooling1D, ("avg", 2): L.GlobalAveragePooling2D,
           ("avg", 3): L.GlobalAveragePooling3D}[kind, rank]
    shape = (4, 3, 2, 5)[-(rank + 1):]
    layer = cls(keepdims=keepdims)
    x = randn(2, *shape)
    y, _ = run(layer, {}, {}, x)
    ref = np.zeros((2, shape[-1]))
    for b in range(2):
        for c in range(shape[-1]):
            vals = x[b, ..., c].ravel()
            ref[b, c] = vals.max() if kind == "max" else sum(vals) / len(vals)
    if keepdims:
        ref = ref.reshape(2, *(1,) * rank, shape[-1])
    np.testing.assert_allclose(y, ref, **TIGHT)
    assert layer.output_shape(shape) == ref.shape[1:]


# ---------------------------------------------------------------------------------- normalization


@pytest.mark.parametrize("shape,axis", [((5,), -1), ((3, 4), -1), ((3, 4), 1), ((2, 3, 2), 2)])
def test_batch_normalization_training_and_moving_update(shape, axis):
    momentum, eps = 0.9, 1e-3
    layer = L.BatchNormalization(axis=axis, momentum=momentum, epsilon=eps)
    feat_axis = (len(shape) if axis == -1 else axis)
    nf = shape[feat_axis - 1]
    params = {"gamma": randn(nf), "beta": randn(nf)}
    state = {"moving_mean": randn(nf), "moving_variance": np.abs(randn(nf)) + 0.5}
    x = 2.0 * randn(6, *shape) + 1.0
    y, new_state = run(layer, params, state, x, training=True)
    ref = np.zeros_like(x)
    batch_mean, batch_var = np.zeros(nf), np.zeros(nf)
    for f in range(nf):
        vals = np.take(x, f, axis=feat_axis)
        m = vals.sum() / vals.size
        v = ((vals - m) ** 2).sum() / vals.size  # biased variance
        batch_mean[f], batch_var[f] = m, v
        idx = [slice(None)] * x.ndim
        idx[feat_axis] = f
        ref[tuple(idx)] = params["gamma"][f] * (vals - m) / math.sqrt(v + eps) + params["beta"][f]
    np.testing.assert_allclose(y, ref, **TIGHT)
    np.testing.assert_allclose(new_state["moving_mean"], state["moving_mean"] * momentum
                               + batch_mean * (1 - momentum), **TIGHT)
    np.testing.assert_allclose(new_state["moving_variance"], state["moving_variance"] * momentum
                               + batch_var * (1 - momentum), **TIGHT)


@pytest.mark.parametrize("shape,axis", [((5,), -1), ((3, 4), -1), ((3, 4), 1)])
def test_batch_normalization_inference_uses_moving_statistics(shape, axis):
    eps = 1e-3
    layer = L.BatchNormalization(axis=axis, epsilon=eps)
    feat_axis = (len(shape) if axis == -1 else axis)
    nf = shape[feat_axis - 1]
    params = {"gamma": randn(nf), "beta": randn(nf)}
    state = {"moving_mean": randn(nf), "moving_variance": np.abs(randn(nf)) + 0.5}
    x = randn(4, *shape)
    y, new_state = run(layer, params, state, x, training=False)
    bshape = [1] * x.ndim
    bshape[feat_axis] = nf
    r = lambda v: v.reshape(bshape)
    ref = r(params["gamma"]) * (x - r(state["moving_mean"])) / np.sqrt(r(state["moving_variance"]) + eps) \
        + r(params["beta"])
    np.testing.assert_allclose(y, ref, **TIGHT)
    for k in state:
        np.testing.assert_array_equal(new_state[k], state[k])
    # And the result does not depend on the batch (one example alone gives the same row).
    y0, _ = run(layer, params, state, x[:1], training=False)
    np.testing.assert_allclose(y0, y[:1], **TIGHT)


def test_batch_normalization_keras_defaults():
    layer = L.BatchNormalization()
    assert (layer.momentum, layer.epsilon) == (0.99, 1e-3)
    params, state = layer.init(jax.random.key(0), (3, 4))
    np.testing.assert_array_equal(params["gamma"], np.ones(4))
    np.testing.assert_array_equal(params["beta"], np.zeros(4))
    np.testing.assert_array_equal(state["moving_mean"], np.zeros(4))
    np.testing.assert_array_equal(state["moving_variance"], np.ones(4))


@pytest.mark.parametrize("shape,axis", [((6,), -1), ((3, 4), -1), ((3, 4), (1, 2)), ((3, 4), 1)])
def test_layer_normalization_matches_numpy(shape, axis):
    eps = 1e-3
    layer = L.LayerNormalization(axis=axis, epsilon=eps)
    axes = (len(shape),) if axis == -1 else ((axis,) if isinstance(axis, int) else axis)
    pshape = tuple(shape[a - 1] for a in axes)
    params = {"gamma": randn(*pshape), "beta": randn(*pshape)}
    x = 3.0 * randn(4, *shape) - 1.0
    y, _ = run(layer, params, {}, x)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    bshape = [1] * x.ndim
    for a in axes:
        bshape[a] = x.shape[a]
    ref = (x - mean) / np.sqrt(var + eps) * params["gamma"].reshape(bshape) + params["beta"].reshape(bshape)
    np.testing.assert_allclose(y, ref, **TIGHT)
    assert layer.epsilon == 1e-3  # Keras default


# ---------------------------------------------------------------------------------------- Dropout


def test_dropout_inference_is_identity():
    layer = L.Dropout(0.5)
    x = randn(4, 6)
    y, _ = run(layer, {}, {}, x, training=False)
    np.testing.assert_array_equal(y, x)
    y, _ = run(layer, {}, {}, x, training=False, rng=jax.random.key(0))
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.8])
def test_dropout_training_statistics(rate):
    layer = L.Dropout(rate)
    n = 200 * 500
    x = np.ones((200, 500), np.float32)
    y, _ = layer.apply({}, {}, jnp.asarray(x), rng=jax.random.key(7), training=True)
    y = np.asarray(y)
    dropped = (y == 0).mean()
    sigma = math.sqrt(rate * (1 - rate) / n)
    assert abs(dropped - rate) < 5 * sigma, (dropped, rate)
    np.testing.assert_allclose(y[y != 0], 1.0 / (1.0 - rate), rtol=1e-6)
    # Inverted dropout keeps the expectation: the mean stays 1 within the statistical tolerance.
    assert abs(y.mean() - 1.0) < 5 * sigma / (1 - rate)
    # On varied inputs the kept ones are exactly x / (1 - rate).
    xr = RNG.standard_normal((64, 64)).astype(np.float32) + 3.0
    yr = np.asarray(layer.apply({}, {}, jnp.asarray(xr), rng=jax.random.key(3), training=True)[0])
    kept = yr != 0
    np.testing.assert_allclose(yr[kept], xr[kept] / (1 - rate), rtol=1e-6)
    assert abs(yr.mean() - xr.mean()) < 0.15


def test_dropout_keys():
    layer = L.Dropout(0.5)
    x = jnp.ones((16, 32))
    a = layer.apply({}, {}, x, rng=jax.random.key(1), training=True)[0]
    b = layer.apply({}, {}, x, rng=jax.random.key(1), training=True)[0]
    c = layer.apply({}, {}, x, rng=jax.random.key(2), training=True)[0]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a) == 0, np.asarray(c) == 0)


def test_dropout_training_without_rng_names_the_layer():
    layer = L.Dropout(0.5, name="drop_in")
    with pytest.raises(LayerError, match=r"Dropout 'drop_in'.*random key.*training=True"):
        layer.apply({}, {}, jnp.ones((2, 3)), training=True)


def test_dropout_noise_shape_broadcasts_the_mask():
    layer = L.Dropout(0.5, noise_shape=(None, 1, 6))
    x = jnp.ones((4, 5, 6))
    y = np.asarray(layer.apply({}, {}, x, rng=jax.random.key(0), training=True)[0])
    for b in range(4):
        for t in range(5):
            np.testing.assert_array_equal(y[b, t], y[b, 0])
    assert 0 < (y == 0).mean() < 1


# -------------------------------------------------------------------------------------- Embedding


def test_embedding_looks_up_rows():
    layer = L.Embedding(7, 3)
    params, state = random_params(layer, (4,))
    assert params["embeddings"].shape == (7, 3)
    ids = np.array([[0, 6, 2, 2], [5, 1, 0, 3]], np.int32)
    y, _ = run(layer, params, state, ids)
    ref = np.array([[params["embeddings"][i] for i in row] for row in ids])
    np.testing.assert_array_equal(y, ref)
    ids2 = RNG.integers(0, 7, size=(2, 3, 2)).astype(np.int32)
    y2, _ = run(layer, params, state, ids2)
    assert y2.shape == (2, 3, 2, 3)
    np.testing.assert_array_equal(y2[1, 2, 0], params["embeddings"][ids2[1, 2, 0]])


# ------------------------------------------------------------------------------------------ merge


@pytest.mark.parametrize("name,n", [(name, n) for name in ("Add", "Subtract", "Multiply", "Average", "Maximum",
                                                             "Minimum") for n in (2, 3) if (name, n) != ("Subtract", 3)])
def test_merge_matches_numpy(name, n):
    xs = [randn(3, 2, 4) for _ in range(n)]
    y, _ = run(getattr(L, name)(), {}, {}, xs)
    ref = np.empty_like(xs[0])
    for idx in itertools.product(*map(range, ref.shape)):
        vals = [x[idx] for x in xs]
        ref[idx] = {"Add": sum(vals), "Subtract": vals[0] - vals[-1], "Multiply": math.prod(vals),
                    "Average": sum(vals) / n, "Maximum": max(vals), "Minimum": min(vals)}[name]
    np.testing.assert_allclose(y, ref, **TIGHT)


@pytest.mark.parametrize("axis", [-1, 1, 2, -2])
def test_concatenate_matches_numpy(axis):
    base = [3, 4]
    ax = axis % 2 if axis < 0 else axis - 1
    shapes = []
    for width in (1, 2, 3):
        s = list(base)
        s[ax] = width
        shapes.append(tuple(s))
    xs = [randn(2, *s) for s in shapes]
    layer = L.Concatenate(axis=axis)
    y, _ = run(layer, {}, {}, xs)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=ax + 1))
    assert layer.output_shape(shapes) == y.shape[1:]


# ------------------------------------------------------------------------------------ activations


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


ELEMENTWISE = {
    "linear": lambda v: v,
    "relu": lambda v: max(v, 0.0),
    "sigmoid": _sigmoid,
    "tanh": math.tanh,
    "gelu": lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))),  # exact (erf) GELU, Keras 3 default
    "elu": lambda v: v if v > 0 else math.exp(v) - 1.0,
    "selu": lambda v: 1.0507009873554805 * (v if v > 0 else 1.6732632423543772 * (math.exp(v) - 1.0)),
    "leaky_relu": lambda v: v if v > 0 else 0.2 * v,  # Keras' default negative_slope is 0.2
    "softplus": lambda v: math.log1p(math.exp(v)),
    "silu": lambda v: v * _sigmoid(v),
    "swish": lambda v: v * _sigmoid(v),
    "hard_sigmoid": lambda v: min(max(v / 6.0 + 0.5, 0.0), 1.0),  # Keras 3: relu6(x + 3) / 6
    "softsign": lambda v: v / (1.0 + abs(v)),
    "relu6": lambda v: min(max(v, 0.0), 6.0),
    "exponential": math.exp,
}


def ref_activation(name, x):
    if name in ELEMENTWISE:
        return np.vectorize(ELEMENTWISE[name])(x)
    out = np.empty_like(x)
    for idx in itertools.product(*map(range, x.shape[:-1])):
        row = x[idx]
        m = max(row)
        exps = [math.exp(v - m) for v in row]
        total = sum(exps)
        out[idx] = [e / total for e in exps] if name == "softmax" else [v - m - math.log(total) for v in row]
    return out


ALL_NAMES = sorted(list(ELEMENTWISE) + ["softmax", "log_softmax"])


def test_activation_names_are_all_covered():
    assert set(ALL_NAMES) == set(activations._BY_NAME)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_activation_by_string_matches_formula(name):
    x = 3.0 * randn(3, 5)
    x[0, :3] = [-20.0, 0.5, 25.0]  # tails
    ref = ref_activation(name, x)
    with jax.enable_x64(True):
        fn = activations.get(name)
        np.testing.assert_allclose(np.asarray(fn(jnp.asarray(x))), ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(activations.get(name.upper())(jnp.asarray(x))), ref,
                                   rtol=1e-9, atol=1e-12)
    y, _ = run(L.Activation(name), {}, {}, x)
    np.testing.assert_allclose(y, ref, rtol=1e-9, atol=1e-12)
    # Through Dense(activation=name) with an identity kernel and zero bias.
    dense = L.Dense(5, activation=name)
    y, _ = run(dense, {"kernel": np.eye(5), "bias": np.zeros(5)}, {}, x)
    np.testing.assert_allclose(y, ref, rtol=1e-9, atol=1e-12)
    assert dense.activation_name in (name, "silu" if name == "swish" else name)


def test_activation_get_none_callable_and_unknown():
    assert activations.get(None)(jnp.asarray(-2.0)) == -2.0
    fn = lambda v: v * 3
    assert activations.get(fn) is fn
    with pytest.raises(ValueError, match="unknown activation 'nope'"):
        activations.get("nope")
    with pytest.raises(ValueError):
        activations.get(3)


def test_leaky_relu_default_slope_is_keras():
    np.testing.assert_allclose(np.asarray(activations.leaky_relu(jnp.asarray([-1.0, 2.0]))), [-0.2, 2.0])


# ----------------------------------------------------------------------------------- initializers


FAN_IN, FAN_OUT = 400, 300


def sample(init, shape=(FAN_IN, FAN_OUT), seed=0):
    return np.asarray(init(jax.random.key(seed), shape, jnp.float32), np.float64)


def test_dense_default_initializers_are_keras():
    layer = L.Dense(FAN_OUT)
    params, _ = layer.init(jax.random.key(0), (FAN_IN,))
    w = np.asarray(params["kernel"], np.float64)
    limit = math.sqrt(6.0 / (FAN_IN + FAN_OUT))  # glorot_uniform
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.99 * limit
    assert abs(w.var() / (limit**2 / 3) - 1) < 0.03
    assert abs(w.mean()) < 0.01 * limit
    np.testing.assert_array_equal(np.asarray(params["bias"]), np.zeros(FAN_OUT))


def test_conv_default_initializer_uses_receptive_field_fans():
    layer = L.Conv2D(32, 3)
    params, _ = layer.init(jax.random.key(1), (8, 8, 16))
    w = np.asarray(params["kernel"], np.float64)
    fan_in, fan_out = 3 * 3 * 16, 3 * 3 * 32
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.98 * limit
    assert abs(w.var() / (limit**2 / 3) - 1) < 0.06
    np.testing.assert_array_equal(np.asarray(params["bias"]), np.zeros(32))


TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


@pytest.mark.parametrize(
    "name,variance,bound",
    [
        ("glorot_normal", 2.0 / (FAN_IN + FAN_OUT), 2 * math.sqrt(2.0 / (FAN_IN + FAN_OUT)) / TRUNC_STD),
        ("glorot_uniform", 2.0 / (FAN_IN + FAN_OUT), math.sqrt(6.0 / (FAN_IN + FAN_OUT))),
        ("he_normal", 2.0 / FAN_IN, 2 * math.sqrt(2.0 / FAN_IN) / TRUNC_STD),
        ("he_uniform", 2.0 / FAN_IN, math.sqrt(6.0 / FAN_IN)),
        ("lecun_normal", 1.0 / FAN_IN, 2 * math.sqrt(1.0 / FAN_IN) / TRUNC_STD),
        ("lecun_uniform", 1.0 / FAN_IN, math.sqrt(3.0 / FAN_IN)),
        ("random_normal", 0.05**2, None),
        ("normal", 0.05**2, None),
        ("random_uniform", 0.05**2 / 3, 0.05),
        ("uniform", 0.05**2 / 3, 0.05),
        ("truncated_normal", (0.05 * TRUNC_STD) ** 2, 0.1),
    ],
)
def test_initializer_statistics(name, variance, bound):
    w = sample(initializers.get(name))
    n = w.size
    # Relative standard error of a sample variance is about sqrt(2/n) (~0.4% here); allow 3%.
    assert abs(w.var() / variance - 1) < 0.03, (name, w.var(), variance)
    assert abs(w.mean()) < 5 * math.sqrt(variance / n)
    if bound is not None:
        assert np.abs(w).max() <= bound * (1 + 1e-6)
        assert np.abs(w).max() > 0.9 * bound
    # The string and the module attribute give the same function.
    assert initializers.get(name) is initializers._BY_NAME[name]
    # Different keys give different draws; the same key the same.
    np.testing.assert_array_equal(sample(initializers.get(name), (5, 4), 1), sample(initializers.get(name), (5, 4), 1))
    assert not np.array_equal(sample(initializers.get(name), (5, 4), 1), sample(initializers.get(name), (5, 4), 2))


@pytest.mark.parametrize("shape", [(50, 30), (30, 50), (3, 3, 4, 6)])
def test_orthogonal_initializer(shape):
    w = sample(initializers.get("orthogonal"), shape)
    m = w.reshape(-1, shape[-1])
    if m.shape[0] >= m.shape[1]:
        np.testing.assert_allclose(m.T @ m, np.eye(m.shape[1]), atol=1e-5)
    else:
        np.testing.assert_allclose(m @ m.T, np.eye(m.shape[0]), atol=1e-5)


def test_constant_initializers():
    np.testing.assert_array_equal(sample(initializers.get("zeros"), (3, 2)), np.zeros((3, 2)))
    np.testing.assert_array_equal(sample(initializers.get("ones"), (3, 2)), np.ones((3, 2)))
    np.testing.assert_allclose(sample(initializers.Constant(0.7), (3, 2)), np.full((3, 2), 0.7), rtol=1e-6)


def test_initializers_as_functions_and_strings_in_layers():
    assert initializers.get(initializers.he_normal) is initializers.he_normal
    calls = []

    def custom(key, shape, dtype=jnp.float32):
        calls.append(shape)
        return jnp.full(shape, 0.25, dtype)

    layer = L.Dense(3, kernel_initializer=custom, bias_initializer="ones")
    params, _ = layer.init(jax.random.key(0), (4,))
    assert calls == [(4, 3)]
    np.testing.assert_array_equal(np.asarray(params["kernel"]), np.full((4, 3), 0.25))
    np.testing.assert_array_equal(np.asarray(params["bias"]), np.ones(3))
    he = L.Dense(FAN_OUT, kernel_initializer="he_normal").init(jax.random.key(0), (FAN_IN,)).params["kernel"]
    assert abs(np.asarray(he, np.float64).var() / (2.0 / FAN_IN) - 1) < 0.03
    conv = L.Conv2D(8, 3, kernel_initializer=initializers.RandomNormal(stddev=0.5)).init(jax.random.key(0), (5, 5, 2))
    assert 0.3 < float(np.std(np.asarray(conv.params["kernel"]))) < 0.7
    emb = L.Embedding(50, 20).init(jax.random.key(0), (3,)).params["embeddings"]
    assert float(np.abs(np.asarray(emb)).max()) <= 0.05  # Keras' Embedding default: uniform(-0.05, 0.05)


def test_unknown_initializer_names_raise():
    with pytest.raises(ValueError, match="unknown initializer 'he_nromal'"):
        initializers.get("he_nromal")
    with pytest.raises(ValueError, match="initializer must be a name or a callable"):
        initializers.get(42)
    with pytest.raises(LayerError, match=r"Dense.*kernel_initializer.*unknown initializer 'bogus'"):
        L.Dense(3, kernel_initializer="bogus")
    with pytest.raises(LayerError, match=r"Conv2D.*bias_initializer.*unknown initializer 'bogus'"):
        L.Conv2D(3, 3, bias_initializer="bogus")
