"""Losses, metrics, the train/eval steps and the optimizer names, against independent NumPy references.

Every reference below is written from Keras 3's documented semantics in float64 NumPy (never by calling
the library): probabilities are clipped to [1e-7, 1 - 1e-7] (and renormalised first for the categorical
losses), each loss gives one value per example (mean over the last axis for elementwise losses), and
"accuracy" resolves to binary / sparse / categorical from the label and output shapes as Keras does.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxnet_lite as jl
from jaxnet_lite import Input, Model, losses, metrics, optimizers
from jaxnet_lite.layers import Activation, Dense, Lambda
from jaxnet_lite.training import TrainState, make_eval_step, make_train_step
from jaxnet_lite.training.step import Objective

EPS = 1e-7
RTOL, ATOL = 2e-5, 2e-6  # float32 library vs float64 reference


# -- NumPy references (Keras 3 semantics, float64) ------------------------------------------------
def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _log_softmax(z):
    z = _f64(z)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def _log_sigmoid(z):
    z = _f64(z)
    return -np.logaddexp(0.0, -z)


def ref_cce(y, p, from_logits=False, label_smoothing=0.0):
    y, p = _f64(y), _f64(p)
    if label_smoothing:
        y = y * (1 - label_smoothing) + label_smoothing / y.shape[-1]
    if from_logits:
        logp = _log_softmax(p)
    else:
        p = p / p.sum(axis=-1, keepdims=True)
        logp = np.log(np.clip(p, EPS, 1 - EPS))
    return -(y * logp).sum(axis=-1)


def ref_sparse_cce(labels, p, from_logits=False):
    labels = np.asarray(labels).astype(np.int64)
    p = _f64(p)
    if labels.ndim == p.ndim:
        labels = labels[..., 0]
    onehot = np.eye(p.shape[-1])[labels]
    return ref_cce(onehot, p, from_logits)


def ref_bce(y, p, from_logits=False, label_smoothing=0.0):
    y, p = _f64(y), _f64(p)
    if label_smoothing:
        y = y * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        v = -(y * _log_sigmoid(p) + (1 - y) * _log_sigmoid(-p))
    else:
        p = np.clip(p, EPS, 1 - EPS)
        v = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return v.mean(axis=-1)


def ref_mse(y, p):
    return ((_f64(p) - _f64(y)) ** 2).mean(axis=-1)


def ref_mae(y, p):
    return np.abs(_f64(p) - _f64(y)).mean(axis=-1)


def ref_huber(y, p, delta=1.0):
    err = np.abs(_f64(p) - _f64(y))
    return np.where(err <= delta, 0.5 * err**2, delta * err - 0.5 * delta**2).mean(axis=-1)


def close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol)


def _rng(seed):
    return np.random.default_rng(seed)


def _probs(rng, n, c):
    z = rng.normal(size=(n, c))
    e = np.exp(z - z.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def _onehot(rng, n, c):
    return np.eye(c, dtype=np.float32)[rng.integers(0, c, size=n)]


# -- the losses ---------------------------------------------------------------------------------
# few distinct shapes: every new shape costs an XLA compile of each eager op
@given(seed=st.integers(0, 2**31 - 1), n=st.sampled_from([1, 4]), c=st.sampled_from([2, 5]),
       ls=st.sampled_from([0.0, 0.1, 0.3]))
def test_categorical_crossentropy_matches_numpy(seed, n, c, ls):
    rng = _rng(seed)
    y = _onehot(rng, n, c)
    logits = (rng.normal(size=(n, c)) * 3).astype(np.float32)
    p = _probs(rng, n, c)
    close(losses.categorical_crossentropy(y, jnp.asarray(logits), from_logits=True, label_smoothing=ls),
          ref_cce(y, logits, True, ls))
    close(losses.categorical_crossentropy(y, jnp.asarray(p), label_smoothing=ls), ref_cce(y, p, False, ls))
    # the class and the string name give the same per-example values
    close(losses.CategoricalCrossentropy(from_logits=True, label_smoothing=ls)(y, jnp.asarray(logits)),
          ref_cce(y, logits, True, ls))
    close(losses.get("categorical_crossentropy")(y, jnp.asarray(p)), ref_cce(y, p))


def test_categorical_crossentropy_renormalises_and_clips_probabilities():
    y = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], np.float32)
    # unnormalised rows (Keras divides by the sum first) and saturated rows (clipped to 1e-7)
    p = np.array([[2.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    out = losses.categorical_crossentropy(y, jnp.asarray(p))
    expected = ref_cce(y, p)
    close(out, expected, atol=1e-5)
    np.testing.assert_allclose(expected, [math.log(4.0), -math.log(1 - EPS), -math.log(EPS)], rtol=1e-12)
    assert np.all(np.isfinite(np.asarray(out)))


def test_soft_labels_in_categorical_crossentropy():
    y = np.array([[0.25, 0.75, 0.0], [0.5, 0.25, 0.25]], np.float32)
    p = np.array([[0.5, 0.25, 0.25], [0.125, 0.125, 0.75]], np.float32)
    close(losses.categorical_crossentropy(y, jnp.asarray(p)), ref_cce(y, p))
    close(losses.categorical_crossentropy(y, jnp.asarray(p), label_smoothing=0.2), ref_cce(y, p, False, 0.2))


@pytest.mark.parametrize("label_shape", ["flat", "column"])
@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_categorical_crossentropy_matches_numpy(label_shape, from_logits):
    rng = _rng(3)
    n, c = 7, 5
    labels = rng.integers(0, c, size=n)
    y = labels if label_shape == "flat" else labels[:, None]
    p = (rng.normal(size=(n, c)) * 2).astype(np.float32) if from_logits else _probs(rng, n, c)
    expected = ref_sparse_cce(labels, p, from_logits)
    close(losses.sparse_categorical_crossentropy(y, jnp.asarray(p), from_logits=from_logits), expected)
    close(losses.SparseCategoricalCrossentropy(from_logits=from_logits)(y, jnp.asarray(p)), expected)
    # integer labels given as floats (as a NumPy array loaded from disk often is)
    close(losses.sparse_categorical_crossentropy(y.astype(np.float32), jnp.asarray(p), from_logits=from_logits),
          expected)
    # equals the categorical loss on one-hot labels
    close(losses.categorical_crossentropy(np.eye(c, dtype=np.float32)[labels], jnp.asarray(p),
                                          from_logits=from_logits), expected)


def test_sparse_categorical_crossentropy_on_sequences_is_mean_over_time():
    rng = _rng(4)
    n, t, c = 3, 4, 5
    labels = rng.integers(0, c, size=(n, t))
    logits = rng.normal(size=(n, t, c)).astype(np.float32)
    per_step = ref_sparse_cce(labels.reshape(-1), logits.reshape(-1, c), True).reshape(n, t)
    close(losses.sparse_categorical_crossentropy(labels, jnp.asarray(logits), from_logits=True),
          per_step.mean(axis=1))


@given(seed=st.integers(0, 2**31 - 1), n=st.sampled_from([1, 4]), k=st.sampled_from([1, 3]),
       ls=st.sampled_from([0.0, 0.2]))
def test_binary_crossentropy_matches_numpy(seed, n, k, ls):
    rng = _rng(seed)
    y = rng.integers(0, 2, size=(n, k)).astype(np.float32)
    logits = (rng.normal(size=(n, k)) * 3).astype(np.float32)
    p = rng.uniform(0.01, 0.99, size=(n, k)).astype(np.float32)
    close(losses.binary_crossentropy(y, jnp.asarray(logits), from_logits=True, label_smoothing=ls),
          ref_bce(y, logits, True, ls))
    close(losses.binary_crossentropy(y, jnp.asarray(p), label_smoothing=ls), ref_bce(y, p, False, ls))
    close(losses.BinaryCrossentropy(from_logits=True, label_smoothing=ls)(y, jnp.asarray(logits)),
          ref_bce(y, logits, True, ls))
    close(losses.get("binary_crossentropy")(y, jnp.asarray(p)), ref_bce(y, p))


def test_binary_crossentropy_clips_saturated_probabilities():
    y = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    p = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    out = np.asarray(losses.binary_crossentropy(y, jnp.asarray(p)))
    assert np.all(np.isfinite(out))
    # Keras clips in the float32 compute dtype: the bounds are float32(1e-7) and float32(1 - 1e-7)
    lo, hi = float(np.float32(EPS)), float(np.float32(1 - EPS))
    wrong = (-math.log(lo) - math.log(1 - hi)) / 2  # both entries confidently wrong
    right = -math.log(hi)                             # both entries confidently right
    np.testing.assert_allclose(out, [wrong, right], rtol=1e-5, atol=1e-7)
    assert wrong > 15.0


@pytest.mark.parametrize("name", ["mse", "mean_squared_error", "MSE", "mae", "mean_absolute_error", "huber"])
def test_elementwise_losses_by_name(name):
    rng = _rng(5)
    y = rng.normal(size=(6, 3)).astype(np.float32)
    p = (y + rng.normal(size=(6, 3)) * 1.5).astype(np.float32)  # errors both below and above delta=1
    ref = {"mse": ref_mse, "mean_squared_error": ref_mse, "mae": ref_mae, "mean_absolute_error": ref_mae,
           "huber": ref_huber}[name.lower()]
    close(losses.get(name)(y, jnp.asarray(p)), ref(y, p))


@pytest.mark.parametrize("delta", [0.5, 1.0, 2.0])
def test_huber_with_delta(delta):
    y = np.zeros((2, 4), np.float32)
    p = np.array([[0.25, -0.5, 1.5, -3.0], [2.0, 0.0, -1.0, 0.75]], np.float32)
    expected = ref_huber(y, p, delta)
    close(losses.huber(y, jnp.asarray(p), delta=delta), expected)
    close(losses.Huber(delta=delta)(y, jnp.asarray(p)), expected)
    # hand-checked: |err| = 3 is beyond every delta here, so that entry is linear
    expected_row0_entry3 = delta * 3.0 - 0.5 * delta**2
    close(losses.huber(y[:1, 3:], jnp.asarray(p[:1, 3:]), delta=delta), [expected_row0_entry3])


def test_elementwise_loss_functions_and_classes():
    y = np.array([[1.0, 2.0], [3.0, -1.0]], np.float32)
    p = np.array([[1.5, 0.0], [3.0, 1.0]], np.float32)
    close(losses.mean_squared_error(y, jnp.asarray(p)), [(0.25 + 4.0) / 2, (0.0 + 4.0) / 2])
    close(losses.mse(y, jnp.asarray(p)), ref_mse(y, p))
    close(losses.MeanSquaredError()(y, jnp.asarray(p)), ref_mse(y, p))
    close(losses.mean_absolute_error(y, jnp.asarray(p)), [(0.5 + 2.0) / 2, (0.0 + 2.0) / 2])
    close(losses.mae(y, jnp.asarray(p)), ref_mae(y, p))
    close(losses.MeanAbsoluteError()(y, jnp.asarray(p)), ref_mae(y, p))
    # a single-output regression: (N, 1) labels and predictions give one value per example
    close(losses.mean_squared_error(y[:, :1], jnp.asarray(p[:, :1])), [0.25, 0.0])


def test_elementwise_losses_align_flat_labels_with_single_unit_outputs():
    # validation._check_labels explicitly accepts labels of shape (N,) for a model output (N, 1) with
    # mse/mae/huber; Keras aligns the ranks, so a perfect prediction must give zero loss.
    y = np.array([0.0, 1.0, 2.0], np.float32)
    p = jnp.asarray(y[:, None])
    close(losses.mean_squared_error(y, p), [0.0, 0.0, 0.0])
    close(losses.mean_absolute_error(y, p), [0.0, 0.0, 0.0])
    close(losses.huber(y, p), [0.0, 0.0, 0.0])


def test_loss_get_resolution():
    cce = losses.get("categorical_crossentropy")
    assert isinstance(cce, losses.Loss) and cce.name == "categorical_crossentropy"
    assert cce.from_logits is False and cce.logits_activation == "softmax"
    assert losses.get(cce) is cce
    # the plain functions map to their Loss (so the trainer can still compute them from logits)
    assert losses.get(losses.sparse_categorical_crossentropy).logits_activation == "softmax"
    assert losses.get(losses.binary_crossentropy).logits_activation == "sigmoid"
    assert losses.get("mse").logits_activation is None and losses.get("mse").name == "mean_squared_error"
    assert losses.get("mae").name == "mean_absolute_error"
    assert losses.get("huber").kwargs == (("delta", 1.0),)

    def my_loss(y_true, y_pred):
        return jnp.sum(jnp.abs(y_pred - y_true), axis=-1)

    custom = losses.get(my_loss)
    assert custom.name == "my_loss" and custom.logits_activation is None
    close(custom(np.ones((2, 2), np.float32), jnp.zeros((2, 2))), [2.0, 2.0])


@pytest.mark.parametrize("bad", ["categorical_crossentropyy", "rmse"])
def test_unknown_loss_name_raises(bad):
    with pytest.raises(ValueError, match=bad):
        losses.get(bad)


def test_non_callable_loss_raises():
    with pytest.raises(ValueError):
        losses.get(3)


# -- saturated outputs: finite losses and gradients from logits ------------------------------------
def test_losses_from_saturated_logits_are_finite_with_finite_grads():
    z = jnp.asarray([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]])
    y = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    v = losses.categorical_crossentropy(y, z, from_logits=True)
    close(v, [2000.0, 0.0], rtol=1e-6, atol=1e-4)
    g = jax.grad(lambda q: losses.categorical_crossentropy(y, q, from_logits=True).sum())(z)
    # d/dz of -log softmax(z)[k] is softmax(z) - onehot(k)
    np.testing.assert_allclose(np.asarray(g), [[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]], atol=1e-6)

    labels = np.array([1, 0])
    close(losses.sparse_categorical_crossentropy(labels, z, from_logits=True), [2000.0, 2000.0], rtol=1e-6)
    gs = jax.grad(lambda q: losses.sparse_categorical_crossentropy(labels, q, from_logits=True).sum())(z)
    assert np.all(np.isfinite(np.asarray(gs)))
    np.testing.assert_allclose(np.asarray(gs), [[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0]], atol=1e-6)

    zb = jnp.asarray([[1000.0, -1000.0], [-1000.0, 1000.0]])
    yb = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    close(losses.binary_crossentropy(yb, zb, from_logits=True), [1000.0, 0.0], rtol=1e-6, atol=1e-4)
    gb = jax.grad(lambda q: losses.binary_crossentropy(yb, q, from_logits=True).sum())(zb)
    # d/dz mean_k bce = (sigmoid(z) - y) / k
    np.testing.assert_allclose(np.asarray(gb), [[0.5, -0.5], [0.0, 0.0]], atol=1e-6)


def _scale_params(params, factor):
    return jax.tree.map(lambda a: a * factor, params)


def _dense_logits(params, x):
    """float64 logits of a single Dense layer from its params."""
    (layer,) = [v for v in params.values() if "kernel" in v]
    return _f64(x) @ _f64(layer["kernel"]) + _f64(layer["bias"])


def test_objective_computes_softmax_crossentropy_from_logits():
    model = jl.Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    params, state = model.init(jax.random.key(0))
    obj = Objective.create(model, "categorical_crossentropy")
    assert obj.from_logits is True and obj.loss.from_logits is True
    # the original model is untouched: it still outputs probabilities
    assert model.layers[-1].activation_name == "softmax"

    rng = _rng(0)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    y = _onehot(rng, 5, 3)

    # non-saturated: the logits path equals the naive probability-space loss
    out, _ = obj.apply(params, state, jnp.asarray(x))
    probs, _ = model.apply(params, state, jnp.asarray(x))
    close(obj.to_predictions(out), np.asarray(probs, np.float64), rtol=1e-5, atol=1e-6)
    close(obj.loss(y, out), np.asarray(losses.categorical_crossentropy(y, probs), np.float64), rtol=1e-4, atol=1e-5)
    close(obj.loss(y, out), ref_cce(y, _dense_logits(params, x), from_logits=True), rtol=1e-4, atol=1e-5)

    # saturated: scale the kernel so the softmax is 0/1 in float32
    big = _scale_params(params, 1000.0)
    xs = x * 10
    probs_big, _ = model.apply(big, state, jnp.asarray(xs))
    assert np.any(np.asarray(probs_big) == 0.0), "the setup should saturate the softmax"

    def loss_fn(p):
        o, _ = obj.apply(p, state, jnp.asarray(xs))
        return obj.loss(y, o).mean()

    value, grads = jax.value_and_grad(loss_fn)(big)
    expected = ref_cce(y, _dense_logits(big, xs), from_logits=True).mean()
    assert np.isfinite(float(value))
    assert float(value) == pytest.approx(expected, rel=1e-4)
    leaves = [np.asarray(g) for g in jax.tree.leaves(grads)]
    assert all(np.all(np.isfinite(g)) for g in leaves)
    assert any(np.any(g != 0) for g in leaves)


@pytest.mark.parametrize("loss_name", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_objective_from_logits_for_functional_model(loss_name):
    inp = Input((4,))
    hidden = Dense(5, activation="tanh")(inp)
    out = Dense(3, activation="softmax")(hidden)
    model = Model(inp, out)
    params, state = model.init(jax.random.key(1))
    obj = Objective.create(model, loss_name)
    assert obj.from_logits is True

    rng = _rng(1)
    x = rng.normal(size=(4, 4)).astype(np.float32)
    labels = rng.integers(0, 3, size=4)
    y = labels if loss_name.startswith("sparse") else np.eye(3, dtype=np.float32)[labels]

    logits, _ = obj.apply(params, state, jnp.asarray(x))
    probs, _ = model.apply(params, state, jnp.asarray(x))
    close(jax.nn.softmax(logits), np.asarray(probs, np.float64), rtol=1e-5, atol=1e-6)
    naive = np.asarray(losses.get(loss_name)(y, probs), np.float64)
    close(obj.loss(y, logits), naive, rtol=1e-4, atol=1e-5)

    # saturate the last layer: finite loss and grads
    first = next(k for k, v in params.items() if v["kernel"].shape == (4, 5))
    last = next(k for k, v in params.items() if v["kernel"].shape == (5, 3))
    big = dict(params)
    big[last] = _scale_params(params[last], 1e4)

    def loss_fn(p):
        o, _ = obj.apply(p, state, jnp.asarray(x))
        return obj.loss(y, o).mean()

    value, grads = jax.value_and_grad(loss_fn)(big)
    probs_big, _ = model.apply(big, state, jnp.asarray(x))
    assert np.any(np.asarray(probs_big) == 0.0), "the setup should saturate the softmax"
    h = np.tanh(_f64(x) @ _f64(params[first]["kernel"]) + _f64(params[first]["bias"]))
    ref_logits = h @ _f64(big[last]["kernel"]) + _f64(big[last]["bias"])
    expected = ref_sparse_cce(labels, ref_logits, True).mean()
    assert np.isfinite(float(value)) and float(value) == pytest.approx(expected, rel=1e-3)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))


def test_objective_from_logits_for_sigmoid_output():
    model = jl.Sequential([Dense(1, activation="sigmoid", input_shape=(3,))])
    params, state = model.init(jax.random.key(2))
    obj = Objective.create(model, "binary_crossentropy")
    assert obj.from_logits is True

    rng = _rng(2)
    x = rng.normal(size=(6, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=(6, 1)).astype(np.float32)
    logits, _ = obj.apply(params, state, jnp.asarray(x))
    probs, _ = model.apply(params, state, jnp.asarray(x))
    close(obj.to_predictions(logits), np.asarray(probs, np.float64), rtol=1e-5, atol=1e-6)
    close(obj.loss(y, logits), np.asarray(losses.binary_crossentropy(y, probs), np.float64), rtol=1e-4, atol=1e-5)

    big = _scale_params(params, 1e4)
    probs_big, _ = model.apply(big, state, jnp.asarray(x))
    assert np.any((np.asarray(probs_big) == 0.0) | (np.asarray(probs_big) == 1.0))

    def loss_fn(p):
        o, _ = obj.apply(p, state, jnp.asarray(x))
        return obj.loss(y, o).mean()

    value, grads = jax.value_and_grad(loss_fn)(big)
    expected = ref_bce(y, _dense_logits(big, x), from_logits=True).mean()
    assert np.isfinite(float(value)) and float(value) == pytest.approx(expected, rel=1e-4)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))


def test_objective_keeps_label_smoothing_and_strips_activation_layers():
    model = jl.Sequential([Dense(3, input_shape=(2,)), Activation("softmax")])
    params, state = model.init(jax.random.key(3))
    obj = Objective.create(model, losses.CategoricalCrossentropy(label_smoothing=0.2))
    assert obj.from_logits is True
    x = np.array([[0.5, -1.0], [2.0, 0.25]], np.float32)
    y = np.array([[1, 0, 0], [0, 0, 1]], np.float32)
    logits, _ = obj.apply(params, state, jnp.asarray(x))
    close(obj.loss(y, logits), ref_cce(y, _dense_logits(params, x), True, 0.2), rtol=1e-4, atol=1e-5)


def test_objective_leaves_non_probabilistic_losses_alone():
    model = jl.Sequential([Dense(3, activation="softmax", input_shape=(2,))])
    assert Objective.create(model, "mse").from_logits is False
    # a loss already declared on logits is used as given (the user asked for it)
    assert Objective.create(model, losses.CategoricalCrossentropy(from_logits=True)).from_logits is False
    # no final softmax: nothing to strip
    plain = jl.Sequential([Dense(3, activation="relu", input_shape=(2,))])
    assert Objective.create(plain, "categorical_crossentropy").from_logits is False


# -- metrics ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "y_true_shape, y_pred_shape, loss_name, expected",
    [
        ((1,), (1,), None, "binary_accuracy"),          # one output unit
        ((), (1,), None, "binary_accuracy"),
        ((), (5,), None, "sparse_categorical_accuracy"),  # integer labels (lower rank)
        ((1,), (5,), None, "sparse_categorical_accuracy"),  # (N, 1) integer labels
        ((5,), (5,), None, "categorical_accuracy"),      # one-hot labels
        ((4, 5), (4, 5), None, "categorical_accuracy"),
        ((4,), (4, 5), None, "sparse_categorical_accuracy"),
        ((3,), (3,), "binary_crossentropy", "binary_accuracy"),  # multi-label sigmoid
        ((5,), (5,), "sparse_categorical_crossentropy", "sparse_categorical_accuracy"),
        ((5,), (5,), "categorical_crossentropy", "categorical_accuracy"),
    ],
)
def test_accuracy_resolution_follows_keras(y_true_shape, y_pred_shape, loss_name, expected):
    for alias in ("accuracy", "acc", "Accuracy"):
        m = metrics.get(alias, y_true_shape=y_true_shape, y_pred_shape=y_pred_shape, loss_name=loss_name)
        assert m.name == alias
        assert m.fn is getattr(metrics, expected)


def _ref_argmax_hits(a, b):
    return (np.argmax(a, -1) == np.argmax(b, -1)).astype(np.float64)


def test_categorical_accuracy_matches_numpy():
    rng = _rng(6)
    y = _onehot(rng, 20, 4)
    p = _probs(rng, 20, 4)
    close(metrics.categorical_accuracy(y, jnp.asarray(p)), _ref_argmax_hits(y, p), atol=0)
    close(metrics.get("categorical_accuracy")(y, jnp.asarray(p)), _ref_argmax_hits(y, p), atol=0)
    # "accuracy" on one-hot labels
    acc = metrics.get("accuracy", y_true_shape=(4,), y_pred_shape=(4,))
    close(acc(y, jnp.asarray(p)), _ref_argmax_hits(y, p), atol=0)
    # hand-written values
    y2 = np.array([[0, 1, 0], [1, 0, 0]], np.float32)
    p2 = np.array([[0.1, 0.7, 0.2], [0.2, 0.5, 0.3]], np.float32)
    close(metrics.categorical_accuracy(y2, jnp.asarray(p2)), [1.0, 0.0], atol=0)


@pytest.mark.parametrize("column", [False, True])
def test_sparse_categorical_accuracy_matches_numpy(column):
    rng = _rng(7)
    labels = rng.integers(0, 4, size=20)
    p = _probs(rng, 20, 4)
    y = labels[:, None] if column else labels
    expected = (np.argmax(p, -1) == labels).astype(np.float64)
    assert 0 < expected.sum() < 20
    close(metrics.sparse_categorical_accuracy(y, jnp.asarray(p)), expected, atol=0)
    close(metrics.sparse_categorical_accuracy(y.astype(np.float32), jnp.asarray(p)), expected, atol=0)
    acc = metrics.get("accuracy", y_true_shape=y.shape[1:], y_pred_shape=(4,))
    close(acc(y, jnp.asarray(p)), expected, atol=0)


def test_binary_accuracy_threshold():
    y = np.array([[1.0], [0.0], [1.0], [0.0], [1.0]], np.float32)
    p = np.array([[0.9], [0.2], [0.5], [0.5], [0.51]], np.float32)  # 0.5 is not > 0.5: predicted 0
    close(metrics.binary_accuracy(y, jnp.asarray(p)), [1.0, 1.0, 0.0, 1.0, 1.0], atol=0)
    close(metrics.binary_accuracy(y, jnp.asarray(p), threshold=0.7), [1.0, 1.0, 0.0, 1.0, 0.0], atol=0)
    # multi-label: mean over the last axis
    ym = np.array([[1, 0, 1, 1], [0, 0, 0, 1]], np.float32)
    pm = np.array([[0.8, 0.6, 0.4, 0.9], [0.1, 0.2, 0.3, 0.4]], np.float32)
    close(metrics.binary_accuracy(ym, jnp.asarray(pm)), [0.5, 0.75], atol=0)
    acc = metrics.get("accuracy", y_true_shape=(1,), y_pred_shape=(1,))
    close(acc(y, jnp.asarray(p)), [1.0, 1.0, 0.0, 1.0, 1.0], atol=0)


def test_binary_accuracy_with_flat_labels_and_single_unit_output():
    y = np.array([0.0, 1.0, 1.0], np.float32)
    p = jnp.asarray([[0.2], [0.9], [0.7]])
    close(metrics.binary_accuracy(y, p), [1.0, 1.0, 1.0], atol=0)


def _ref_in_top_k(labels, p, k):
    top = np.argsort(-_f64(p), axis=-1)[:, :k]
    return np.array([lab in row for lab, row in zip(labels, top)], np.float64)


@pytest.mark.parametrize("k", [None, 1, 2, 5])
def test_top_k_categorical_accuracy_matches_numpy(k):
    rng = _rng(8)
    n, c = 30, 8
    labels = rng.integers(0, c, size=n)
    p = rng.permuted(np.tile(np.arange(c, dtype=np.float32), (n, 1)), axis=1) / c  # distinct scores
    kk = 5 if k is None else k
    expected = _ref_in_top_k(labels, p, kk)
    assert 0 < expected.sum() < n
    kw = {} if k is None else {"k": k}
    y = np.eye(c, dtype=np.float32)[labels]
    close(metrics.top_k_categorical_accuracy(y, jnp.asarray(p), **kw), expected, atol=0)
    close(metrics.sparse_top_k_categorical_accuracy(labels, jnp.asarray(p), **kw), expected, atol=0)
    close(metrics.sparse_top_k_categorical_accuracy(labels[:, None], jnp.asarray(p), **kw), expected, atol=0)
    if k is None:
        close(metrics.get("top_k_categorical_accuracy")(y, jnp.asarray(p)), expected, atol=0)


def test_regression_metrics_match_numpy():
    rng = _rng(9)
    y = rng.normal(size=(5, 3)).astype(np.float32)
    p = rng.normal(size=(5, 3)).astype(np.float32)
    for name, ref in [("mse", ref_mse), ("mean_squared_error", ref_mse), ("mae", ref_mae),
                      ("mean_absolute_error", ref_mae)]:
        m = metrics.get(name)
        assert m.name == name
        close(m(y, jnp.asarray(p)), ref(y, p))


def test_metric_get_passes_metrics_and_callables_through():
    def my_metric(y_true, y_pred):
        return jnp.abs(y_true - y_pred).max(axis=-1)

    m = metrics.get(my_metric)
    assert m.name == "my_metric"
    close(m(np.array([[1.0, 2.0]], np.float32), jnp.zeros((1, 2))), [2.0])
    assert metrics.get(m) is m


@pytest.mark.parametrize("bad", ["accuracyy", "f1_score", "top_5"])
def test_unknown_metric_names_raise(bad):
    with pytest.raises(ValueError, match=bad):
        metrics.get(bad)
    with pytest.raises(ValueError, match=bad):
        metrics.check_name(bad)
    with pytest.raises(ValueError, match=bad):
        make_eval_step(jl.Sequential([Dense(2, input_shape=(2,))]), "mse", metrics=[bad])


def test_check_name_accepts_known_names():
    for name in ("accuracy", "acc", "mse", "mae", "categorical_accuracy", "binary_accuracy"):
        metrics.check_name(name)  # no exception


# -- train / eval steps with sample weights --------------------------------------------------------
def _softmax_model():
    return jl.Sequential([Dense(3, activation="softmax", input_shape=(4,))])


def _ref_softmax_ce_and_grad(params, x, labels):
    """float64 mean sparse CE of a softmax Dense layer, its accuracy and gradients wrt kernel and bias."""
    logits = _dense_logits(params, x)
    p = np.exp(_log_softmax(logits))
    onehot = np.eye(p.shape[-1])[labels]
    n = len(labels)
    loss = ref_sparse_cce(labels, logits, True).mean()
    acc = (np.argmax(logits, -1) == labels).mean()
    d = (p - onehot) / n
    return loss, acc, _f64(x).T @ d, d.sum(0)


def test_eval_step_sample_weights_reduce_as_keras():
    """Keras' `sum_over_batch_size`: weighted losses summed over the batch size (zero weights count);
    plain metrics ignore the weights, `weighted_metrics` average with them."""
    model = _softmax_model()
    params, state = model.init(jax.random.key(0))
    rng = _rng(10)
    x = rng.normal(size=(4, 4)).astype(np.float32)
    y = np.array([0, 2, 1, 1])
    step = make_eval_step(model, "sparse_categorical_crossentropy", metrics=["accuracy"],
                          weighted_metrics=["accuracy"])
    masked = step(params, state, (jnp.asarray(x), jnp.asarray(y), jnp.asarray([1.0, 1.0, 0.0, 0.0])))
    first_two = step(params, state, (jnp.asarray(x[:2]), jnp.asarray(y[:2])))
    assert set(masked) == {"loss", "accuracy", "weighted_accuracy"}
    assert float(masked["loss"]) == pytest.approx(float(first_two["loss"]) * 2 / 4, rel=1e-6)
    assert float(masked["weighted_accuracy"]) == pytest.approx(float(first_two["accuracy"]), abs=1e-7)
    loss, acc, _, _ = _ref_softmax_ce_and_grad(params, x[:2], y[:2])
    assert float(masked["loss"]) == pytest.approx(loss / 2, rel=1e-5)
    assert float(masked["weighted_accuracy"]) == pytest.approx(acc, abs=1e-7)
    _, acc_all, _, _ = _ref_softmax_ce_and_grad(params, x, y)
    assert float(masked["accuracy"]) == pytest.approx(acc_all, abs=1e-7)
    # the full, unweighted batch differs (so the mask really did something)
    full_loss, _, _, _ = _ref_softmax_ce_and_grad(params, x, y)
    full = step(params, state, (jnp.asarray(x), jnp.asarray(y)))
    assert float(full["loss"]) == pytest.approx(full_loss, rel=1e-5)
    assert abs(full_loss - loss) > 1e-3
    # non-uniform weights: weighted mean
    w = np.array([2.0, 1.0, 1.0, 0.0])
    per = ref_sparse_cce(y, _dense_logits(params, x), True)
    weighted = step(params, state, (jnp.asarray(x), jnp.asarray(y), jnp.asarray(w, jnp.float32)))
    assert float(weighted["loss"]) == pytest.approx((per * w).sum() / len(w), rel=1e-5)


def test_train_step_sample_weights_match_keras_reduction_and_numpy():
    model = _softmax_model()
    opt = optax.sgd(0.5)  # see test_keras_sgd_and_rmsprop_work_under_jit for the string names
    ts = TrainState.create(model, opt, seed=0)
    rng = _rng(11)
    x = rng.normal(size=(4, 4)).astype(np.float32)
    y = np.array([2, 0, 1, 1])
    step = make_train_step(model, "sparse_categorical_crossentropy", opt, metrics=["accuracy"], donate=False)
    ts_masked, logs_masked = step(ts, (jnp.asarray(x), jnp.asarray(y), jnp.asarray([1.0, 1.0, 0.0, 0.0])))
    assert int(ts_masked.step) == 1

    # independent reference: one SGD step on Keras' loss, the first two examples' CE summed over all four
    loss, _, g_kernel, g_bias = _ref_softmax_ce_and_grad(ts.params, x[:2], y[:2])
    _, acc_all, _, _ = _ref_softmax_ce_and_grad(ts.params, x, y)
    assert float(logs_masked["loss"]) == pytest.approx(loss / 2, rel=1e-5)  # logs are pre-update values
    assert float(logs_masked["accuracy"]) == pytest.approx(acc_all, abs=1e-7)  # plain metrics: unweighted
    (name,) = ts.params.keys()
    close(ts_masked.params[name]["kernel"], _f64(ts.params[name]["kernel"]) - 0.5 * g_kernel / 2, rtol=1e-5, atol=1e-6)
    close(ts_masked.params[name]["bias"], _f64(ts.params[name]["bias"]) - 0.5 * g_bias / 2, rtol=1e-5, atol=1e-6)


def test_train_step_is_jit_compiled_once_and_reduces_the_loss():
    traces = []

    def count(x):
        traces.append(1)
        return x

    model = jl.Sequential([Lambda(count, output_shape=(3,), input_shape=(3,)), Dense(1)])
    opt = optimizers.get("adam", learning_rate=0.1)
    ts = TrainState.create(model, opt, seed=0)
    rng = _rng(12)
    x = jnp.asarray(rng.normal(size=(16, 3)).astype(np.float32))
    y = x @ jnp.asarray([[1.0], [-2.0], [0.5]]) + 0.25
    step = make_train_step(model, "mse", opt)
    assert hasattr(step, "lower"), "make_train_step should return a jax.jit-compiled function"
    history = []
    ts, logs = step(ts, (x, y))
    history.append(float(logs["loss"]))
    after_first = len(traces)
    for _ in range(14):
        ts, logs = step(ts, (x, y))
        history.append(float(logs["loss"]))
    assert len(traces) == after_first, "the step was retraced: it is not running compiled"
    assert int(ts.step) == 15
    assert history[-1] < 0.2 * history[0]
    assert all(b <= a * 1.0001 for a, b in zip(history, history[1:]))

    # the un-jitted step computes the same thing
    eager = make_train_step(model, "mse", opt, jit=False)
    ts0 = TrainState.create(model, opt, seed=0)
    jitted = make_train_step(model, "mse", opt, donate=False)
    ts_a, logs_a = eager(ts0, (x, y))
    ts_b, logs_b = jitted(ts0, (x, y))
    assert float(logs_a["loss"]) == pytest.approx(float(logs_b["loss"]), rel=1e-5)
    for a, b in zip(jax.tree.leaves(ts_a.params), jax.tree.leaves(ts_b.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_eval_step_on_saturated_softmax_is_finite():
    model = _softmax_model()
    params, state = model.init(jax.random.key(5))
    big = _scale_params(params, 1e4)
    x = _rng(13).normal(size=(4, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    logs = make_eval_step(model, "categorical_crossentropy", metrics=["accuracy"])(
        big, state, (jnp.asarray(x), jnp.asarray(y)))
    logits = _dense_logits(big, x)
    assert np.isfinite(float(logs["loss"]))
    assert float(logs["loss"]) == pytest.approx(ref_cce(y, logits, True).mean(), rel=1e-4)
    assert float(logs["accuracy"]) == pytest.approx(_ref_argmax_hits(y, logits).mean())


def test_eval_step_with_flat_regression_targets():
    model = jl.Sequential([Dense(1, input_shape=(2,))])
    params, state = model.init(jax.random.key(0))
    x = jnp.asarray(_rng(14).normal(size=(5, 2)).astype(np.float32))
    out, _ = model.apply(params, state, x)
    y = out[:, 0]  # perfect predictions, labels shaped (N,) as in Keras regression tutorials
    logs = make_eval_step(model, "mse", metrics=["mae"])(params, state, (x, y))
    assert float(logs["loss"]) == pytest.approx(0.0, abs=1e-10)
    assert float(logs["mae"]) == pytest.approx(0.0, abs=1e-10)


# -- optimizers ---------------------------------------------------------------------------------
PARAMS = {"w": jnp.asarray([1.0, -2.0, 3.0]), "b": jnp.asarray([0.5])}
GRADS = {"w": jnp.asarray([1e-6, -2e-6, 0.5]), "b": jnp.asarray([-0.25])}  # tiny grads expose eps


@pytest.mark.parametrize("name, lr", [("adam", 1e-3), ("sgd", 1e-2), ("rmsprop", 1e-3), ("Adam", 1e-3),
                                      ("adamw", 1e-3), ("adagrad", 1e-3), ("nadam", 1e-3)])
def test_optimizer_default_learning_rates(name, lr):
    opt = optimizers.get(name)
    assert isinstance(opt, optax.GradientTransformation)
    assert float(optimizers.get_learning_rate(opt.init(PARAMS))) == pytest.approx(lr, rel=1e-6)


def test_adam_update_follows_keras_epsilon():
    opt = optimizers.get("adam")
    updates, _ = opt.update(GRADS, opt.init(PARAMS), PARAMS)
    for k in PARAMS:
        # Keras' first Adam step: m = 0.1 g, v = 0.001 g^2, alpha = lr * sqrt(1 - 0.999) / (1 - 0.9),
        # update = -m * alpha / (sqrt(v) + eps) = -lr * g / (|g| + eps / sqrt(0.001))
        g = _f64(GRADS[k])
        np.testing.assert_allclose(np.asarray(updates[k]), -1e-3 * g / (np.abs(g) + 1e-7 / np.sqrt(1e-3)),
                                   rtol=1e-5, atol=0)
    # Optax's Adam adds eps after the bias correction: a visibly different update for the tiny gradient
    ref_opt = optax.adam(1e-3, eps=1e-7)
    ref_updates, _ = ref_opt.update(GRADS, ref_opt.init(PARAMS), PARAMS)
    assert abs(float(updates["w"][0]) - float(ref_updates["w"][0])) > 5e-4


def test_sgd_and_rmsprop_updates_follow_keras():
    sgd = optimizers.get("sgd")
    up, _ = sgd.update(GRADS, sgd.init(PARAMS), PARAMS)
    for k in PARAMS:
        np.testing.assert_allclose(np.asarray(up[k]), -1e-2 * _f64(GRADS[k]), rtol=1e-6)
    rms = optimizers.get("rmsprop")
    up, _ = rms.update(GRADS, rms.init(PARAMS), PARAMS)
    for k in PARAMS:
        g = _f64(GRADS[k])
        # Keras 3 RMSprop: velocity = rho * 0 + (1 - rho) g^2; step = lr * g / sqrt(velocity + epsilon)
        np.testing.assert_allclose(np.asarray(up[k]), -1e-3 * g / np.sqrt(0.1 * g**2 + 1e-7), rtol=1e-5)


def test_optimizer_kwargs_and_factories():
    opt = optimizers.get("adam", learning_rate=0.05)
    assert float(optimizers.get_learning_rate(opt.init(PARAMS))) == pytest.approx(0.05)
    assert float(optimizers.get_learning_rate(optimizers.Adam(0.02).init(PARAMS))) == pytest.approx(0.02)
    assert float(optimizers.get_learning_rate(optimizers.SGD().init(PARAMS))) == pytest.approx(1e-2)
    assert float(optimizers.get_learning_rate(optimizers.RMSprop().init(PARAMS))) == pytest.approx(1e-3)
    momentum = optimizers.get("sgd", learning_rate=0.1, momentum=0.9)
    state = momentum.init(PARAMS)
    up1, state = momentum.update(GRADS, state, PARAMS)
    up2, _ = momentum.update(GRADS, state, PARAMS)
    g = _f64(GRADS["b"])
    np.testing.assert_allclose(np.asarray(up1["b"]), -0.1 * g, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(up2["b"]), -0.1 * (0.9 * g + g), rtol=1e-6)


def test_optax_objects_pass_through():
    tx = optax.adam(1e-3)
    assert optimizers.get(tx) is tx
    assert optimizers.get_learning_rate(tx.init(PARAMS)) is None
    with pytest.raises(ValueError):
        optimizers.set_learning_rate(tx.init(PARAMS), 0.1)


@pytest.mark.parametrize("bad", ["adamm", "momentum_sgd"])
def test_unknown_optimizer_raises(bad):
    with pytest.raises(ValueError, match=bad):
        optimizers.get(bad)


def test_non_optimizer_raises():
    with pytest.raises(ValueError):
        optimizers.get(0.01)


def test_set_learning_rate_changes_the_update():
    opt = optimizers.get("sgd")
    state = opt.init(PARAMS)
    new_state = optimizers.set_learning_rate(state, 0.5)
    assert float(optimizers.get_learning_rate(new_state)) == pytest.approx(0.5)
    assert float(optimizers.get_learning_rate(state)) == pytest.approx(1e-2)  # the old state is unchanged
    up, after = opt.update(GRADS, new_state, PARAMS)
    np.testing.assert_allclose(np.asarray(up["w"]), -0.5 * _f64(GRADS["w"]), rtol=1e-6)
    assert float(optimizers.get_learning_rate(after)) == pytest.approx(0.5)  # it sticks
    # the dtype is kept, so a jitted update does not retrace
    assert jnp.asarray(optimizers.get_learning_rate(new_state)).dtype == \
        jnp.asarray(optimizers.get_learning_rate(state)).dtype


@pytest.mark.parametrize("name", ["adam", "adamw", "nadam", "adamax", "adagrad", "adadelta", "lion"])
def test_named_optimizers_update_under_jit(name):
    opt = optimizers.get(name)
    state = opt.init(PARAMS)
    updates, _ = jax.jit(opt.update)(GRADS, state, PARAMS)
    eager, _ = opt.update(GRADS, state, PARAMS)
    for k in PARAMS:
        assert np.all(np.isfinite(np.asarray(updates[k])))
        np.testing.assert_allclose(np.asarray(updates[k]), np.asarray(eager[k]), rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("name", ["sgd", "rmsprop"])
def test_keras_sgd_and_rmsprop_work_under_jit(name):
    opt = optimizers.get(name)
    state = opt.init(PARAMS)
    updates, _ = jax.jit(opt.update)(GRADS, state, PARAMS)
    lr = 1e-2 if name == "sgd" else 1e-3
    g = _f64(GRADS["b"])
    expected = -lr * g if name == "sgd" else -lr * g / np.sqrt(0.1 * g**2 + 1e-7)
    np.testing.assert_allclose(np.asarray(updates["b"]), expected, rtol=1e-5)


def test_train_step_with_sgd_by_name():
    model = jl.Sequential([Dense(1, input_shape=(2,))])
    opt = optimizers.get("sgd", learning_rate=0.1)
    ts = TrainState.create(model, opt, seed=0)
    x = jnp.asarray(_rng(15).normal(size=(8, 2)).astype(np.float32))
    y = x @ jnp.asarray([[1.0], [-1.0]])
    step = make_train_step(model, "mse", opt)
    ts, first = step(ts, (x, y))
    for _ in range(5):
        ts, logs = step(ts, (x, y))
    assert float(logs["loss"]) < float(first["loss"])
