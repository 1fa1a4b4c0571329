"""Sequential and functional models: construction, naming, equivalence, graphs, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet_lite import Input, Model, Sequential
from jaxnet_lite.core import LayerError
from jaxnet_lite.layers import (
    Add,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
)
from jaxnet_lite.apps.runs import iris_mlp as tutorial_mlp_sequential
from jaxnet_lite.apps.runs import mnist_cnn as tutorial_cnn
from jaxnet_lite.testing import assert_trees_close, check_layer, check_layer_grads


def tutorial_mlp_functional():
    input = Input((4,))
    x = Dense(32, activation="relu")(input)
    x = Dense(32, activation="relu")(x)
    x = Dense(32, activation="relu")(x)
    output = Dense(3, activation="softmax")(x)
    return Model(inputs=[input], outputs=[output])


def test_tutorial_mlp_both_ways_same_params_and_outputs():
    seq, fun = tutorial_mlp_sequential(), tutorial_mlp_functional()
    assert seq.count_params() == fun.count_params() == 2371
    p_seq, s_seq = seq.init(jax.random.key(0))
    p_fun, s_fun = fun.init(jax.random.key(1))
    assert jax.tree.map(jnp.shape, p_seq) == jax.tree.map(jnp.shape, p_fun)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 4)), jnp.float32)
    y_seq, _ = seq.apply(p_seq, s_seq, x)
    y_fun, _ = fun.apply(p_seq, s_fun, x)  # the Sequential's params, applied by the functional model
    np.testing.assert_allclose(np.asarray(y_seq), np.asarray(y_fun), rtol=1e-6)
    # A hand computation with the same params agrees too.
    h = np.asarray(x)
    for name in ["dense", "dense_1", "dense_2"]:
        h = np.maximum(h @ np.asarray(p_seq[name]["kernel"]) + np.asarray(p_seq[name]["bias"]), 0)
    logits = h @ np.asarray(p_seq["dense_3"]["kernel"]) + np.asarray(p_seq["dense_3"]["bias"])
    probs = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(np.asarray(y_seq), probs / probs.sum(1, keepdims=True), rtol=1e-5)


def test_tutorial_cnn_param_count_and_forward():
    model = tutorial_cnn()
    assert model.count_params() == 34826
    params, state = model.init(jax.random.key(0))
    assert params["conv2d"]["kernel"].shape == (3, 3, 1, 32)
    assert params["conv2d_1"]["kernel"].shape == (3, 3, 32, 64)
    assert params["dense"]["kernel"].shape == (1600, 10)
    y, _ = model.apply(params, state, jnp.zeros((2, 28, 28, 1)))
    assert y.shape == (2, 10)


def test_sequential_list_and_input_first_element():
    a = Sequential([Input((4,)), Dense(8, activation="relu"), Dense(2)])
    b = Sequential([Dense(8, activation="relu", input_shape=(4,)), Dense(2)])
    c = Sequential([Dense(8, activation="relu"), Dense(2)])
    pa, _ = a.init(jax.random.key(3))
    pb, _ = b.init(jax.random.key(3))
    pc, _ = c.init(jax.random.key(3), (4,))
    assert_trees_close(pa, pb, atol=0, rtol=0)
    assert_trees_close(pa, pc, atol=0, rtol=0)


def test_models_are_layers_and_reinitialisable():
    model = tutorial_mlp_sequential()
    check_layer(model, (4,))
    check_layer_grads(model, (4,))
    v1, v2 = model.init(jax.random.key(0)), model.init(jax.random.key(0))
    assert_trees_close(v1, v2, atol=0, rtol=0)
    v3 = model.init(jax.random.key(1))
    assert not np.allclose(v1.params["dense"]["kernel"], v3.params["dense"]["kernel"])


def test_user_names_are_kept():
    model = Sequential([Dense(4, name="hidden", input_shape=(3,)), Dense(2, name="out")])
    params, _ = model.init(jax.random.key(0))
    assert set(params) == {"hidden", "out"}


def test_multi_input_multi_output_graph():
    a, b = Input((3,), name="a"), Input((5,), name="b")
    ha = Dense(4, activation="tanh")(a)
    hb = Dense(4, activation="tanh")(b)
    merged = Add()([ha, hb])
    joined = Concatenate()([merged, hb])
    out1 = Dense(2, name="head1")(joined)
    out2 = Dense(1, name="head2")(merged)
    model = Model(inputs=[a, b], outputs=[out1, out2])
    assert model.output_shape([(3,), (5,)]) == [(2,), (1,)]
    check_layer(model, [(3,), (5,)])
    check_layer_grads(model, [(3,), (5,)])
    params, state = model.init(jax.random.key(0))
    xa, xb = jnp.ones((2, 3)), jnp.ones((2, 5))
    (y1, y2), _ = model.apply(params, state, [xa, xb])
    by_name, _ = model.apply(params, state, {"a": xa, "b": xb})
    np.testing.assert_allclose(np.asarray(y1), np.asarray(by_name[0]))
    # Reference computation by hand.
    h_a = np.tanh(np.asarray(xa) @ params["dense"]["kernel"] + params["dense"]["bias"])
    h_b = np.tanh(np.asarray(xb) @ params["dense_1"]["kernel"] + params["dense_1"]["bias"])
    joined_ref = np.concatenate([h_a + h_b, h_b], axis=1)
    np.testing.assert_allclose(np.asarray(y1), joined_ref @ params["head1"]["kernel"] + params["head1"]["bias"],
                               rtol=1e-5)
    np.testing.assert_allclose(np.asarray(y2), (h_a + h_b) @ params["head2"]["kernel"] + params["head2"]["bias"],
                               rtol=1e-5)


def test_shared_layer_shares_params():
    inp = Input((4,))
    shared = Dense(4, activation="tanh")
    out = shared(shared(inp))
    model = Model(inp, out)
    params, state = model.init(jax.random.key(0))
    assert list(params) == ["dense"]
    x = jnp.ones((2, 4))
    y, _ = model.apply(params, state, x)
    k, b = params["dense"]["kernel"], params["dense"]["bias"]
    np.testing.assert_allclose(np.asarray(y), np.tanh(np.tanh(x @ k + b) @ k + b), rtol=1e-6)
    check_layer_grads(model, (4,))


def test_nested_models():
    inner = Sequential([Dense(6, activation="tanh"), Dense(3)], name="inner")
    inp = Input((5,))
    out = Dense(2)(inner(inp))
    model = Model(inp, out)
    params, _ = model.init(jax.random.key(0))
    assert set(params) == {"inner", "dense"} and set(params["inner"]) == {"dense", "dense_1"}
    check_layer(model, (5,))
    check_layer_grads(model, (5,))
    outer = Sequential([model, Dense(1)])
    check_layer(outer, (5,))


def test_state_threads_through_models():
    model = Sequential([Dense(4, input_shape=(3,)), BatchNormalization(), Dense(1)])
    params, state = model.init(jax.random.key(0))
    _, new_state = model.apply(params, state, jnp.arange(12.0).reshape(4, 3), training=True)
    assert not np.allclose(new_state["batch_normalization"]["moving_mean"], state["batch_normalization"]["moving_mean"])
    _, same = model.apply(params, state, jnp.ones((4, 3)), training=False)
    assert_trees_close(same, state, atol=0, rtol=0)


def test_dropout_rng_split_per_call_is_deterministic():
    model = Sequential([Dense(16, input_shape=(4,)), Dropout(0.5), Dense(16), Dropout(0.5)])
    params, state = model.init(jax.random.key(0))
    x = jnp.ones((3, 4))
    y1, _ = model.apply(params, state, x, rng=jax.random.key(5), training=True)
    y2, _ = model.apply(params, state, x, rng=jax.random.key(5), training=True)
    y3, _ = model.apply(params, state, x, rng=jax.random.key(6), training=True)
    np.testing.assert_array_equal(np.asarray(y1), np.asarray(y2))
    assert not np.allclose(np.asarray(y1), np.asarray(y3))
    with pytest.raises(LayerError, match="Dropout 'dropout' needs a random key"):
        model.apply(params, state, x, training=True)


# -- errors --------------------------------------------------------------------------------------
def test_outputs_not_depending_on_inputs():
    a, b = Input((3,)), Input((3,))
    out = Dense(2)(a)
    with pytest.raises(LayerError, match="not connected to any output"):
        Model(inputs=[a, b], outputs=out)


def test_input_not_listed():
    a, b = Input((3,)), Input((3,), name="extra")
    out = Add()([a, b])
    with pytest.raises(LayerError, match="'extra'.*not listed in inputs"):
        Model(inputs=a, outputs=out)


def test_layer_called_on_incompatible_shapes():
    a, b = Input((3,)), Input((4,))
    with pytest.raises(LayerError, match=r"Add 'add' expects inputs of the same shape, or shapes that broadcast, got \[\(3,\), \(4,\)\]"):
        Add()([a, b])
    img = Input((28, 28))
    with pytest.raises(LayerError, match=r"Conv2D 'conv2d' expects input of rank 3 \(H, W, C\), got \(28, 28\)"):
        Conv2D(4, 3)(img)


def test_sequential_add_checks_shapes_early():
    model = Sequential([Input((28, 28))])
    with pytest.raises(LayerError, match=r"Conv2D .* expects input of rank 3"):
        model.add(Conv2D(4, 3))
    assert model.layers == []


def test_duplicate_names():
    with pytest.raises(LayerError, match="two different layers are named 'x'"):
        Sequential([Dense(2, name="x", input_shape=(3,)), Dense(2, name="x")])
    a = Input((3,))
    with pytest.raises(LayerError, match="named 'x'"):
        Model(a, Dense(2, name="x")(Dense(2, name="x")(a)))


def test_sequential_without_input_shape():
    model = Sequential([Dense(3), Dense(1)])
    with pytest.raises(LayerError, match="Sequential 'sequential' has no input shape"):
        model.init(jax.random.key(0))


def test_calling_a_layer_on_arrays_explains_the_protocol():
    with pytest.raises(LayerError, match=r"layer.init\(rng, input_shape\)"):
        Dense(3)(jnp.ones((2, 3)))


def test_model_input_shape_mismatch_at_init():
    model = tutorial_mlp_functional()
    with pytest.raises(LayerError, match=r"expects input shape \(4,\), got \(5,\)"):
        model.init(jax.random.key(0), (5,))
