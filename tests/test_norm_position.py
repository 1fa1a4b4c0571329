"""LayerNormalization(rms_scaling=True), RMSNormalization, PositionEmbedding and TokenAndPositionEmbedding:
against NumPy formulas written here, against Keras 3 where it has the layer, float64 gradients, masks and
errors. Layers run jit-compiled (one compile per case instead of one per op)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet_lite import Input, Model
from jaxnet_lite import layers as L
from jaxnet_lite.core import LayerError, Masked
from jaxnet_lite.testing import check_layer_grads

RNG = np.random.default_rng(20240612)
KEY = jax.random.key(0)
TIGHT = {"rtol": 1e-10, "atol": 1e-10}
F32 = {"rtol": 1e-5, "atol": 1e-5}


def randn(*shape):
    return RNG.standard_normal(shape)


def apply64(layer, params, x):
    """`layer.apply` in float64, compiled whole."""
    with jax.enable_x64(True):
        as64 = lambda a: jnp.asarray(a, jnp.float64) if np.asarray(a).dtype.kind == "f" else jnp.asarray(a)
        y, _ = jax.jit(lambda p, xx: layer.apply(p, {}, xx))(jax.tree.map(as64, params), jax.tree.map(as64, x))
        return jax.tree.map(np.asarray, y)


def param_shapes(layer, input_shape):
    return jax.tree.map(lambda a: a.shape, jax.eval_shape(lambda k: layer.init(k, input_shape).params, KEY))


def random_params(layer, input_shape):
    return jax.tree.map(lambda s: randn(*s), param_shapes(layer, input_shape), is_leaf=lambda s: isinstance(s, tuple))



# ------------------------------------------------------------------------------- normalization


def rms_scaling_layer(**kwargs):
    with pytest.warns(UserWarning, match=r"rms_scaling=True\) is deprecated"):
        return L.LayerNormalization(rms_scaling=True, **kwargs)


def test_rms_scaling_is_kerass_formula_with_gamma_only():
    layer = rms_scaling_layer(epsilon=1e-3)
    assert param_shapes(layer, (3, 5)) == {"gamma": (5,)}  # no beta, though center=True
    assert param_shapes(rms_scaling_layer(scale=False), (5,)) == {"gamma": (5,)}
    params, x = random_params(layer, (3, 5)), randn(2, 3, 5)
    expected = x / np.sqrt(x.var(axis=-1, keepdims=True) + 1e-3) * params["gamma"]
    np.testing.assert_allclose(apply64(layer, params, x), expected, **TIGHT)


def test_layer_normalization_without_rms_scaling_is_unchanged():
    layer = L.LayerNormalization()
    assert param_shapes(layer, (5,)) == {"gamma": (5,), "beta": (5,)}
    params, x = random_params(layer, (5,)), randn(4, 5)
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(apply64(layer, params, x), expected * params["gamma"] + params["beta"], **TIGHT)


@pytest.mark.parametrize("axis", [-1, (1, 2)])
def test_rms_normalization_matches_numpy(axis):
    layer = L.RMSNormalization(axis=axis)
    assert layer.epsilon == 1e-6
    shape = (3, 4)
    params, x = random_params(layer, shape), randn(2, *shape)
    assert set(params) == {"scale"} and params["scale"].shape == ((4,) if axis == -1 else (3, 4))
    axes = (-1,) if axis == -1 else (1, 2)
    expected = x / np.sqrt(np.mean(x**2, axis=axes, keepdims=True) + 1e-6) * params["scale"]
    np.testing.assert_allclose(apply64(layer, params, x), expected, **TIGHT)


def test_rms_normalization_keeps_the_mask():
    layer = L.RMSNormalization()
    mask = np.array([[True, True, False]])
    y = apply64(layer, random_params(layer, (3, 4)), Masked(randn(1, 3, 4), mask))
    assert isinstance(y, Masked)
    np.testing.assert_array_equal(y.mask, mask)


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`:UserWarning")
def test_normalization_against_keras(keras):
    x = randn(2, 3, 5).astype(np.float32)
    gamma = randn(5).astype(np.float32)
    with pytest.warns(UserWarning):
        k_ln = keras.layers.LayerNormalization(rms_scaling=True)
    k_ln.build(x.shape)
    k_ln.gamma.assign(gamma)
    k_rms = keras.layers.RMSNormalization()
    k_rms.build(x.shape)
    k_rms.scale.assign(gamma)
    assert [w.path.split("/")[-1] for w in k_rms.weights] == ["scale"] and k_rms.epsilon == 1e-6
    ours = {"ln": (rms_scaling_layer(), {"gamma": gamma}, k_ln), "rms": (L.RMSNormalization(), {"scale": gamma}, k_rms)}
    for layer, params, k_layer in ours.values():
        y, _ = jax.jit(lambda p, xx, layer=layer: layer.apply(p, {}, xx))(params, x)
        np.testing.assert_allclose(np.asarray(y), np.asarray(jax.jit(k_layer)(x)), **F32)


def test_normalization_gradients():
    check_layer_grads(rms_scaling_layer(), (3, 4))
    check_layer_grads(L.RMSNormalization(), (3, 4))


def test_rms_normalization_errors():
    with pytest.raises(LayerError, match=r"^RMSNormalization: epsilon must be > 0, got 0"):
        L.RMSNormalization(epsilon=0)
    layer = L.RMSNormalization()
    with pytest.raises(LayerError, match="^" + re.escape(
            "RMSNormalization 'rms_normalization' expects (4,) features on axis -1 (its scale), got input (2, 3)")):
        layer.apply({"scale": jnp.ones(4)}, {}, jnp.ones((2, 3)))
    with pytest.raises(LayerError, match=re.escape("axis 3 is out of range for input of rank 2")):
        L.RMSNormalization(axis=3).init(KEY, (3, 4))


# ------------------------------------------------------------------------------ position embedding


@pytest.mark.parametrize("length", [4, 6])
def test_position_embedding_returns_the_first_vectors_broadcast(length):
    layer = L.PositionEmbedding(sequence_length=6)
    assert param_shapes(layer, (length, 5)) == {"embeddings": (6, 5)}
    params, x = random_params(layer, (length, 5)), randn(3, length, 5)
    y = apply64(layer, params, x)
    np.testing.assert_allclose(y, np.broadcast_to(params["embeddings"][:length], x.shape), **TIGHT)


def test_position_embedding_keeps_the_mask_and_has_gradients():
    layer = L.PositionEmbedding(4)
    mask = np.array([[True, False, False]])
    y = apply64(layer, random_params(layer, (3, 2)), Masked(randn(1, 3, 2), mask))
    np.testing.assert_array_equal(y.mask, mask)
    check_layer_grads(layer, (3, 2))


def test_position_embedding_errors_name_the_layer_and_both_lengths():
    layer = L.PositionEmbedding(sequence_length=4)
    message = ("PositionEmbedding 'position_embedding' has sequence_length=4 but got an input of length 6 "
               "(shape (6, 8)); make sequence_length at least 6")
    with pytest.raises(LayerError, match="^" + re.escape(message)):
        layer.init(KEY, (6, 8))
    with pytest.raises(LayerError, match="^" + re.escape(message.replace("(6, 8)", "(2, 6, 8)"))):
        layer.apply({"embeddings": jnp.zeros((4, 8))}, {}, jnp.zeros((2, 6, 8)))
    with pytest.raises(LayerError, match=re.escape("expects input of rank >= 2 (..., time, features), got (8,)")):
        layer.init(KEY, (8,))
    with pytest.raises(LayerError, match="^PositionEmbedding: sequence_length must be a positive integer, got 0"):
        L.PositionEmbedding(0)


def test_token_and_position_embedding():
    layer = L.TokenAndPositionEmbedding(vocabulary_size=7, sequence_length=5, embedding_dim=3, mask_zero=True)
    assert param_shapes(layer, (4,)) == {"token_embedding": {"embeddings": (7, 3)},
                                         "position_embedding": {"embeddings": (5, 3)}}
    assert layer.output_shape((4,)) == (4, 3)
    params = random_params(layer, (4,))
    ids = np.array([[1, 6, 2, 0], [3, 0, 0, 0]])
    y = apply64(layer, params, ids)
    expected = params["token_embedding"]["embeddings"][ids] + params["position_embedding"]["embeddings"][:4]
    np.testing.assert_allclose(y.values, expected, **TIGHT)
    np.testing.assert_array_equal(y.mask, ids != 0)
    with pytest.raises(LayerError, match=re.escape("has sequence_length=5 but got an input of length 6")):
        layer.init(KEY, (6,))


def test_a_tiny_gpt_builds_and_predicts():
    """Token and position embeddings, causal self-attention with a residual, RMS norm, logits."""
    ids = Input((6,), dtype="int32")
    x = L.TokenAndPositionEmbedding(11, 8, 16)(ids)
    h = L.RMSNormalization()(x)
    x = L.Add()([x, L.MultiHeadAttention(2, 8)(h, h, use_causal_mask=True)])
    logits = L.Dense(11)(L.LayerNormalization()(x))
    model = Model(ids, logits)
    abstract = jax.eval_shape(lambda k: model.init(k), KEY)
    model.variables = jax.tree.map(lambda a: jnp.asarray(randn(*a.shape) * 0.1, a.dtype), abstract)
    out = model.predict(np.array([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 0, 0]]), verbose=0)
    assert out.shape == (2, 6, 11) and np.isfinite(out).all()
