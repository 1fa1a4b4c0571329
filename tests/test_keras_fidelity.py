"""Keras behaviours beyond the tutorial: merge broadcasting, Keras' weight order, one seed for a script."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet_lite as jnl
from jaxnet_lite import layers as L

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("shapes", [[(3, 4), (1, 4)], [(3, 4), (4,)], [(2, 1, 5), (1, 3, 5), (5,)], [(3, 1), (1, 4)]])
@pytest.mark.parametrize("cls,op", [(L.Add, np.add), (L.Multiply, np.multiply), (L.Maximum, np.maximum),
                                    (L.Subtract, np.subtract), (L.Average, None)])
def test_merges_broadcast_as_numpy_after_the_batch_axis(shapes, cls, op):
    if cls is L.Subtract and len(shapes) != 2:
        return
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(2, *s)) for s in shapes]
    layer = cls()
    rank = max(len(s) for s in shapes)
    aligned = [x.reshape((2, *(1,) * (rank - x.ndim + 1), *x.shape[1:])) for x in xs]
    expected = sum(aligned) / len(aligned) if op is None else aligned[0]
    if op is not None:
        for a in aligned[1:]:
            expected = op(expected, a)
    y, _ = layer.apply({}, {}, [jnp.asarray(x) for x in xs])
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-6)
    assert layer.output_shape(shapes) == expected.shape[1:]


def test_incompatible_merge_shapes_name_the_layer():
    with pytest.raises(jnl.layers.LayerError, match=r"Add 'add' expects .* broadcast, got \[\(3, 4\), \(2, 4\)\]"):
        L.Add().output_shape([(3, 4), (2, 4)])


def test_get_weights_is_in_keras_order():
    model = jnl.Sequential([L.Dense(3, input_shape=(4,))] + [L.Dense(2) for _ in range(10)] +
                           [L.BatchNormalization()])
    shapes = [w.shape for w in model.get_weights()]
    assert shapes[:4] == [(4, 3), (3,), (3, 2), (2,)]  # kernel before bias; dense_1 before dense_10
    assert shapes[-4:] == [(2,)] * 4  # gamma, beta, moving_mean, moving_variance
    weights = model.get_weights()
    weights[0] = weights[0] + 1
    model.set_weights(weights)
    np.testing.assert_array_equal(model.get_weights()[0], weights[0])
    with pytest.raises(ValueError, match=r"set_weights: array 1 \(dense/bias\) has shape \(4, 3\), expected \(3,\)"):
        model.set_weights([weights[0]] * len(weights))


def test_get_weights_fit_keras_models(keras):
    ours = jnl.Sequential([L.Embedding(20, 4, input_shape=(5,)), L.LSTM(3, return_sequences=True),
                           L.BatchNormalization(), L.GlobalAveragePooling1D(), L.Dense(2)])
    theirs = keras.Sequential([keras.Input((5,)), keras.layers.Embedding(20, 4),
                               keras.layers.LSTM(3, return_sequences=True), keras.layers.BatchNormalization(),
                               keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    theirs.set_weights(ours.get_weights())
    ids = np.random.default_rng(0).integers(0, 20, size=(3, 5))
    np.testing.assert_allclose(ours.predict(ids, verbose=0), np.asarray(theirs(ids)), rtol=1e-5, atol=1e-6)


def test_set_random_seed_makes_a_script_repeatable():
    script = textwrap.dedent("""
        import numpy as np
        import jaxnet_lite as keras
        from jaxnet_lite.layers import Dense, Dropout
        keras.utils.set_random_seed(7)
        x = np.random.normal(size=(64, 4)).astype("float32")
        y = (x.sum(1) > 0).astype("float32")
        model = keras.Sequential([Dense(8, activation="relu", input_shape=(4,)), Dropout(0.3),
                                  Dense(1, activation="sigmoid")])
        model.compile(loss="binary_crossentropy", optimizer="adam")
        print(model.fit(x, y, epochs=3, batch_size=16, verbose=0, validation_split=0.25).history)
    """)
    run = lambda: subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                                 timeout=300)
    first, second = run(), run()
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout == second.stdout and "val_loss" in first.stdout
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        jnl.utils.set_random_seed(-1)


def test_set_random_seed_changes_the_default_initialisation():
    try:
        jnl.utils.set_random_seed(1)
        a = jnl.Sequential([L.Dense(3, input_shape=(4,))]).get_weights()[0]
        jnl.utils.set_random_seed(2)
        b = jnl.Sequential([L.Dense(3, input_shape=(4,))]).get_weights()[0]
        jnl.utils.set_random_seed(1)
        c = jnl.Sequential([L.Dense(3, input_shape=(4,))]).get_weights()[0]
    finally:
        jnl.utils.set_random_seed(0)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_frozen_batch_normalization_runs_in_inference_mode():
    bn = L.BatchNormalization(trainable=False)
    params, state = bn.init(jax.random.key(0), (3,))
    state = {"moving_mean": jnp.array([1.0, 2.0, 3.0]), "moving_variance": jnp.array([4.0, 1.0, 0.25])}
    x = jnp.asarray(np.random.default_rng(1).normal(size=(8, 3)), jnp.float32)
    y_train, new_state = bn.apply(params, state, x, training=True)
    y_infer, _ = bn.apply(params, state, x)
    np.testing.assert_array_equal(y_train, y_infer)
    assert new_state is state or all(np.array_equal(new_state[k], state[k]) for k in state)
    bn.trainable = True
    y_batch, moved = bn.apply(params, state, x, training=True)
    assert not np.allclose(y_batch, y_infer) and not np.allclose(moved["moving_mean"], state["moving_mean"])


def test_freezing_a_model_freezes_every_sublayer_and_summary_follows(capsys):
    inner = jnl.Sequential([L.Dense(4, input_shape=(3,)), L.BatchNormalization()])
    model = jnl.Sequential([inner, L.Dense(2)])
    inner.trainable = False
    assert not inner.layers[1].trainable and not inner.layers[0].trainable and model.layers[1].trainable
    model.summary()
    out = capsys.readouterr().out
    assert "Trainable params: 10" in out and "Non-trainable params: 32" in out  # 16 + 8 frozen, 8 BN stats
    before = model.get_weights()
    model.compile(loss="mse", optimizer="sgd")
    x = np.random.default_rng(2).normal(size=(16, 3)).astype(np.float32)
    model.fit(x, np.ones((16, 2), np.float32), epochs=2, batch_size=8, verbose=0)
    after = model.get_weights()
    for a, b in zip(before[:6], after[:6]):  # the frozen Dense and BatchNormalization, statistics included
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(before[6], after[6])


def test_frozen_batch_normalization_fit_matches_keras(keras):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(32, 5)).astype(np.float32), rng.normal(size=(32, 1)).astype(np.float32)
    ours = jnl.Sequential([L.Dense(4, input_shape=(5,)), L.BatchNormalization(trainable=False), L.Dense(1)])
    theirs = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), keras.layers.BatchNormalization(trainable=False),
                               keras.layers.Dense(1)])
    weights = ours.get_weights()
    weights[4] = rng.normal(size=4).astype(np.float32)  # moving_mean
    weights[5] = rng.uniform(0.5, 2, size=4).astype(np.float32)  # moving_variance
    ours.set_weights(weights)
    theirs.set_weights(weights)
    ours.compile(loss="mse", optimizer="sgd")
    theirs.compile(loss="mse", optimizer=keras.optimizers.SGD(0.01))
    h_ours = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    h_theirs = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h_ours.history["loss"], h_theirs.history["loss"], rtol=2e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=2e-5, atol=2e-6)


def test_regularizers_and_constraints_by_hand():
    from jaxnet_lite import constraints, regularizers

    layer = L.Dense(3, kernel_regularizer=regularizers.L1L2(l1=0.1, l2=0.2), bias_regularizer="l2",
                    kernel_constraint="non_neg", activity_regularizer=regularizers.L1(0.5))
    params, state = layer.init(jax.random.key(0), (4,))
    params = {"kernel": jnp.asarray(np.arange(-6, 6, dtype=np.float32).reshape(4, 3)), "bias": jnp.ones(3)}
    k = np.arange(-6, 6, dtype=np.float64)
    assert float(layer.penalty(params)) == pytest.approx(0.1 * np.abs(k).sum() + 0.2 * (k ** 2).sum() + 0.01 * 3)
    np.testing.assert_array_equal(layer.constrain(params)["kernel"], np.maximum(params["kernel"], 0))
    x = jnp.ones((2, 4))
    y, new_state = layer.apply(params, state, x)
    assert float(new_state["activity_loss"]) == pytest.approx(0.5 * float(jnp.abs(y).sum()) / 2, rel=1e-6)
    frozen = jnl.Sequential([layer])
    frozen.trainable = False
    assert float(frozen.penalty({"dense": params})) == 0.0  # Keras: frozen weights are not penalised
    w = jnp.asarray([[3.0, 0.1], [4.0, 0.1]])
    np.testing.assert_allclose(constraints.MaxNorm(2.0)(w)[:, 0], [1.2, 1.6], rtol=1e-6)
    np.testing.assert_allclose(constraints.UnitNorm()(w)[:, 0], [0.6, 0.8], rtol=1e-6)
    with pytest.raises(TypeError, match=r"Dropout\(\) got an unexpected keyword argument 'kernel_regularizer'"):
        L.Dropout(0.5, kernel_regularizer="l2")
    with pytest.raises(jnl.LayerError, match=r"Dense: kernel_regularizer: unknown regularizer 'l3'"):
        L.Dense(2, kernel_regularizer="l3")


@pytest.mark.parametrize("which", ["weights", "activity_and_constraint"])
def test_regularized_fit_matches_keras(keras, which):
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(32, 5)).astype(np.float32), rng.normal(size=(32, 1)).astype(np.float32)
    if which == "weights":
        ours_kw = dict(kernel_regularizer=jnl.regularizers.L1L2(0.01, 0.02), bias_regularizer="l2")
        theirs_kw = dict(kernel_regularizer=keras.regularizers.L1L2(0.01, 0.02), bias_regularizer="l2")
    else:
        ours_kw = dict(activity_regularizer=jnl.regularizers.L2(0.05), kernel_constraint=jnl.constraints.MaxNorm(0.3))
        theirs_kw = dict(activity_regularizer=keras.regularizers.L2(0.05),
                         kernel_constraint=keras.constraints.MaxNorm(0.3))
    ours = jnl.Sequential([L.Dense(4, activation="tanh", input_shape=(5,), **ours_kw), L.Dense(1)])
    theirs = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh", **theirs_kw),
                               keras.layers.Dense(1)])
    theirs.set_weights(ours.get_weights())
    ours.compile(loss="mse", optimizer="sgd")
    theirs.compile(loss="mse", optimizer=keras.optimizers.SGD(0.01))
    h_ours = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    h_theirs = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h_ours.history["loss"], h_theirs.history["loss"], rtol=2e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=2e-5, atol=2e-6)
    assert ours.evaluate(x, y, verbose=0) == pytest.approx(float(theirs.evaluate(x, y, verbose=0)), rel=2e-5)


def test_merge_broadcasting_matches_keras(keras):
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(2, 3, 4)).astype(np.float32), rng.normal(size=(2, 1, 4)).astype(np.float32)
    for ours, theirs in [(L.Add(), keras.layers.Add()), (L.Multiply(), keras.layers.Multiply()),
                         (L.Maximum(), keras.layers.Maximum()), (L.Subtract(), keras.layers.Subtract())]:
        got, _ = ours.apply({}, {}, [jnp.asarray(a), jnp.asarray(b)])
        np.testing.assert_allclose(np.asarray(got), np.asarray(theirs([a, b])), rtol=1e-6)
        assert ours.output_shape([(3, 4), (1, 4)]) == tuple(theirs.compute_output_shape([(2, 3, 4), (2, 1, 4)])[1:])


@pytest.mark.parametrize("mode", ["rows", "columns"])
def test_orthogonal_regularizer_matches_keras(keras, mode):
    w = np.random.default_rng(9).normal(size=(5, 3)).astype(np.float32)
    ours = jnl.regularizers.OrthogonalRegularizer(factor=0.3, mode=mode)(jnp.asarray(w))
    theirs = keras.regularizers.OrthogonalRegularizer(factor=0.3, mode=mode)(keras.ops.convert_to_tensor(w))
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
