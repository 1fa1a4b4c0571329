"""Sample weights, class weights and weighted metrics, reduced as Keras 3 reduces them.

Keras' `sum_over_batch_size`: a batch's loss is the sum of its weighted example losses over the batch
size, zero weights included; plain metrics ignore the weights and `weighted_metrics` average with them.
"""

from __future__ import annotations


import jax
import numpy as np
import pytest

import jaxnet_lite as jnl
from jaxnet_lite.layers import Dense

RNG = np.random.default_rng(5)


def data(n=24):
    x = RNG.normal(size=(n, 4)).astype(np.float32)
    y = RNG.integers(0, 3, size=n)
    return x, y


def model():
    m = jnl.Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    m.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"],
              weighted_metrics=["accuracy"], seed=0)
    return m


def per_example_ce(m, x, y):
    p = np.asarray(m.predict(x, verbose=0), np.float64)
    return -np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1.0)), np.argmax(p, -1) == y


def test_evaluate_reduces_as_keras():
    x, y = data()
    m = model()
    w = RNG.uniform(0, 2, size=len(y))
    w[:5] = 0
    logs = m.evaluate(x, y, sample_weight=w, batch_size=8, verbose=0, return_dict=True)
    losses, hits = per_example_ce(m, x, y)
    assert logs["loss"] == pytest.approx((losses * w).sum() / len(y), rel=1e-5)
    assert logs["accuracy"] == pytest.approx(hits.mean(), abs=1e-6)
    assert logs["weighted_accuracy"] == pytest.approx((hits * w).sum() / w.sum(), abs=1e-6)


def test_class_weight_is_sample_weight_by_label():
    x, y = data()
    table = {0: 0.5, 1: 2.0}  # class 2 missing: weight 1, as Keras
    a, b = model(), model()
    ha = a.fit(x, y, batch_size=8, epochs=2, class_weight=table, shuffle=False, verbose=0)
    hb = b.fit(x, y, batch_size=8, epochs=2, sample_weight=np.array([table.get(int(c), 1.0) for c in y]),
               shuffle=False, verbose=0)
    assert ha.history == hb.history
    for u, v in zip(jax.tree.leaves(a.get_weights()), jax.tree.leaves(b.get_weights())):
        np.testing.assert_array_equal(u, v)
    onehot = np.eye(3, dtype=np.float32)[y]
    c = jnl.Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    c.compile(loss="categorical_crossentropy", optimizer="sgd", seed=0)
    hc = c.fit(x, onehot, batch_size=8, epochs=2, class_weight=table, shuffle=False, verbose=0)
    np.testing.assert_allclose(hc.history["loss"], ha.history["loss"], rtol=1e-5)


def test_weights_follow_the_validation_split_and_streams():
    x, y = data(40)
    w = RNG.uniform(0.5, 1.5, size=len(y))
    split = model().fit(x, y, batch_size=8, epochs=1, sample_weight=w, validation_split=0.25, shuffle=False,
                        verbose=0)
    given = model().fit(x[:30], y[:30], batch_size=8, epochs=1, sample_weight=w[:30], shuffle=False, verbose=0,
                        validation_data=(x[30:], y[30:], w[30:]))
    assert split.history == given.history
    stream = [(x[i:min(i + 8, 30)], y[i:min(i + 8, 30)], w[i:min(i + 8, 30)]) for i in range(0, 30, 8)]
    streamed = model().fit(stream, epochs=1, verbose=0, validation_data=(x[30:], y[30:], w[30:]))
    np.testing.assert_allclose(streamed.history["loss"], given.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(streamed.history["val_loss"], given.history["val_loss"], rtol=1e-5)


def test_bad_weights_are_named_errors():
    x, y = data()
    m = model()
    with pytest.raises(ValueError, match=r"fit: sample_weight must hold one weight per example, shape \(24,\)"):
        m.fit(x, y, sample_weight=np.ones(5), verbose=0)
    with pytest.raises(ValueError, match="finite and not negative"):
        m.fit(x, y, sample_weight=-np.ones(24), verbose=0)
    with pytest.raises(ValueError, match="not both"):
        m.fit(x, y, sample_weight=np.ones(24), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="class_weight must be a dict"):
        m.fit(x, y, class_weight=[1.0, 2.0], verbose=0)
    with pytest.raises(ValueError, match=r"carries its weights in each batch, \(x, y, sample_weight\)"):
        m.fit([(x, y)], sample_weight=np.ones(24), verbose=0)
    with pytest.raises(ValueError, match="lacks sample weights, unlike the first batch"):
        m.fit([(x[:8], y[:8], np.ones(8)), (x[8:16], y[8:16])], verbose=0)


def test_masked_sequence_output_weighs_loss_by_its_mask():
    """Keras: the loss of a masked output is the mean over its real steps."""
    from jaxnet_lite.layers import LSTM, Embedding, TimeDistributed

    ids = np.array([[0, 0, 3, 4], [1, 2, 3, 0], [5, 6, 7, 8]])
    labels = ids % 3
    m = jnl.Sequential([Embedding(10, 4, mask_zero=True, input_shape=(4,)), LSTM(5, return_sequences=True),
                        TimeDistributed(Dense(3, activation="softmax"))])
    m.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    logs = m.evaluate(ids, labels, verbose=0, return_dict=True)
    p = np.asarray(m.predict(ids, verbose=0), np.float64)
    steps = -np.log(np.take_along_axis(p, labels[..., None], -1)[..., 0])
    real = ids != 0
    assert logs["loss"] == pytest.approx(steps[real].mean(), rel=1e-5)
    assert logs["accuracy"] == pytest.approx((np.argmax(p, -1) == labels)[real].mean(), abs=1e-6)


# ----------------------------------------------------------------------------------- Keras 3 oracle



@pytest.mark.parametrize("how", ["sample_weight", "class_weight"])
def test_fit_and_evaluate_match_keras(keras, how):
    x, y = data(32)
    w = RNG.uniform(0, 2, size=len(y)).astype(np.float32)
    kwargs = {"sample_weight": w} if how == "sample_weight" else {"class_weight": {0: 0.25, 1: 3.0, 2: 1.0}}
    ours = model()
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    theirs.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(0.01),
                   metrics=["accuracy"], weighted_metrics=["accuracy"])
    theirs.set_weights([np.asarray(a) for a in ours.get_weights()])
    h_ours = ours.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25, **kwargs)
    h_theirs = theirs.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25, **kwargs)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)
    assert sorted(h_ours.history) == sorted(h_theirs.history)
    for key in h_theirs.history:
        np.testing.assert_allclose(h_ours.history[key], h_theirs.history[key], rtol=2e-5, atol=2e-6, err_msg=key)
    ev_w = w if how == "sample_weight" else None
    # Dicts: Keras' list form repeats a metric that is both plain and weighted ([loss, acc, acc, weighted_acc]).
    ours_logs = ours.evaluate(x, y, sample_weight=ev_w, verbose=0, return_dict=True)
    theirs_logs = theirs.evaluate(x, y, sample_weight=ev_w, verbose=0, return_dict=True)
    assert sorted(ours_logs) == sorted(theirs_logs)
    for key in theirs_logs:
        assert ours_logs[key] == pytest.approx(float(theirs_logs[key]), rel=2e-5), key
