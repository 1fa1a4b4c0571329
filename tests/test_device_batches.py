"""`data.DeviceBatches`: batches cut from device-resident data inside the train step, one program per step
and no host transfer, training exactly as the same batches given as arrays."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from jaxnet_lite import TrainState, make_eval_step, make_train_step
from jaxnet_lite.data import DeviceBatches
from jaxnet_lite.layers import Dense, serial


def problem(n=50):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x.sum(axis=1) > 0).astype(np.int32)
    model = serial(Dense(8, activation="relu"), Dense(2))
    return model, x, y


def test_an_epoch_visits_every_example_once_in_a_seeded_order() -> None:
    _, x, y = problem()
    batches = DeviceBatches((x, y), batch_size=16, seed=3)
    first = [np.asarray(b.rows()[0]) for b in batches.epoch(0)]
    assert [len(b) for b in first] == [16, 16, 16, 2] and len(batches) == 4
    seen = np.concatenate(first)
    assert sorted(map(tuple, seen)) == sorted(map(tuple, x))  # a permutation of the rows
    again = np.concatenate([np.asarray(b.rows()[0]) for b in DeviceBatches((x, y), 16, seed=3).epoch(0)])
    np.testing.assert_array_equal(seen, again)
    other = np.concatenate([np.asarray(b.rows()[0]) for b in batches.epoch(1)])
    assert not np.array_equal(seen, other)
    in_order = DeviceBatches((x, y), 16, shuffle=False, drop_remainder=True)
    assert len(in_order) == 3
    np.testing.assert_array_equal(np.concatenate([np.asarray(b.rows()[0]) for b in in_order.epoch(5)]), x[:48])


def test_row_batches_train_exactly_as_the_same_rows_given_as_arrays() -> None:
    model, x, y = problem()
    loss = "sparse_categorical_crossentropy"
    step = make_train_step(model, loss, optax.adam(1e-2), metrics=["accuracy"], donate=False)
    batches = DeviceBatches((x, y, np.linspace(0.5, 1.5, len(x), dtype=np.float32)), batch_size=16, seed=1)
    ts_rows = ts_arrays = TrainState.create(model, optax.adam(1e-2), seed=0, input_shape=(3,))
    for batch in batches.epoch(0):
        ts_rows, logs_rows = step(ts_rows, batch)
        ts_arrays, logs_arrays = step(ts_arrays, batch.rows())
        assert float(logs_rows["loss"]) == pytest.approx(float(logs_arrays["loss"]), rel=1e-6)
    for a, b in zip(jax.tree.leaves(ts_rows.params), jax.tree.leaves(ts_arrays.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    evaluate = make_eval_step(model, loss, metrics=["accuracy"])
    whole = next(DeviceBatches((x, y), len(x), shuffle=False).epoch(0))
    assert float(evaluate(ts_rows.params, ts_rows.state, whole)["loss"]) == pytest.approx(
        float(evaluate(ts_rows.params, ts_rows.state, (x, y))["loss"]), rel=1e-6)


def test_a_steady_state_step_transfers_nothing_and_compiles_once_per_batch_size() -> None:
    model, x, y = problem(64)
    step = make_train_step(model, "sparse_categorical_crossentropy", optax.sgd(0.1))
    ts = TrainState.create(model, optax.sgd(0.1), seed=0, input_shape=(3,))
    batches = DeviceBatches((x, y), batch_size=16)
    for batch in batches.epoch(0):  # compiles
        ts, logs = step(ts, batch)
    with jax.transfer_guard("disallow"):  # no implicit transfer either way in a whole epoch of steps
        for batch in batches.epoch(1):
            ts, _ = step(ts, batch)
    assert step._cache_size() == 1  # one program for every batch of the epoch
    with pytest.raises(Exception, match="[Dd]isallowed"), jax.transfer_guard("disallow"):
        step(ts, (x[:16], y[:16]))  # NumPy batches would cross: the guard sees it


@pytest.mark.parametrize("data, batch_size, match", [
    ([np.zeros((4, 2)), np.zeros(4)], 2, "tuple"),
    ((np.zeros((4, 2)), np.zeros(3)), 2, "same number of examples"),
    ((np.zeros((4, 2)), np.zeros(4)), 5, r"batch_size must be an integer in \[1, 4\]"),
    ((np.zeros((4, 2)), np.zeros(4)), 0, "batch_size"),
])
def test_bad_arguments_are_named(data, batch_size, match) -> None:
    with pytest.raises(ValueError, match=match):
        DeviceBatches(data, batch_size)
