"""Tests for jaxnet_lite.data: batches, num_batches, train_val_split, check_consistent_length."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxnet_lite.data import batches, check_consistent_length, num_batches, train_val_split


def data(n=10):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n) * 10
    return x, y


# --- batches ----------------------------------------------------------------------------------


def test_batches_in_order_with_a_short_last_batch():
    x, y = data(10)
    got = list(batches(x, y, batch_size=4))
    assert [len(xb) for xb, _ in got] == [4, 4, 2]
    np.testing.assert_array_equal(got[2][0], x[8:])
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in got]), y)
    assert all(isinstance(xb, np.ndarray) and xb.dtype == np.float32 for xb, _ in got)


def test_batches_drop_remainder():
    x, y = data(10)
    got = list(batches(x, y, batch_size=4, drop_remainder=True))
    assert [len(yb) for _, yb in got] == [4, 4]
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in got]), y[:8])


def test_batches_without_y_yields_x_only():
    x, _ = data(5)
    got = list(batches(x, batch_size=2))
    assert [b.shape for b in got] == [(2, 3), (2, 3), (1, 3)]


def test_batches_of_pytrees_keep_their_structure():
    n = 7
    x = {"image": np.zeros((n, 2, 2)), "extra": (np.arange(n), [np.arange(n) * 2])}
    y = [np.arange(n), {"w": np.ones(n)}]
    got = list(batches(x, y, batch_size=3, shuffle=True, seed=1))
    assert len(got) == 3
    xb, yb = got[-1]
    assert set(xb) == {"image", "extra"} and xb["image"].shape == (1, 2, 2)
    assert isinstance(xb["extra"], tuple) and isinstance(yb, list) and set(yb[1]) == {"w"}
    # every leaf was sliced with the same rows
    for xb, yb in got:
        np.testing.assert_array_equal(xb["extra"][0], yb[0])
        np.testing.assert_array_equal(xb["extra"][1][0], 2 * yb[0])
    assert sorted(np.concatenate([yb[0] for _, yb in got]).tolist()) == list(range(n))


def test_shuffle_is_reproducible_from_the_seed():
    x, y = data(50)

    def order(seed):
        return np.concatenate([yb for _, yb in batches(x, y, 8, shuffle=True, seed=seed)])

    first, again, other = order(0), order(0), order(1)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, y), "shuffle=True should change the order"
    assert sorted(first.tolist()) == y.tolist()
    for xb, yb in batches(x, y, 8, shuffle=True, seed=5):  # pairs stay together
        np.testing.assert_array_equal(xb[:, 0] / 3 * 10, yb)


def test_batches_accept_jax_arrays_and_give_numpy():
    x = jnp.arange(6.0).reshape(3, 2)
    (xb,) = list(batches(x, batch_size=3))
    assert isinstance(xb, np.ndarray)
    np.testing.assert_array_equal(xb, np.arange(6.0).reshape(3, 2))


def test_batches_reject_bad_input():
    x, y = data(10)
    with pytest.raises(ValueError, match=r"x has 10 \(shape \(10, 3\)\) but y has 9 \(shape \(9,\)\)"):
        list(batches(x, y[:9]))
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        list(batches(x, y, batch_size=0))
    with pytest.raises(ValueError, match=r"x\[0\] has no sample axis"):
        list(batches([1, 2, 3]))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 60), batch_size=st.integers(1, 20), drop=st.booleans())
def test_num_batches_counts_what_batches_yields(n, batch_size, drop):
    got = list(batches(np.arange(n), batch_size=batch_size, drop_remainder=drop))
    assert num_batches(n, batch_size, drop) == len(got)
    expected = n // batch_size if drop else math.ceil(n / batch_size)
    assert len(got) == expected
    assert sum(len(b) for b in got) == (expected * batch_size if drop else n)


def test_num_batches_examples_and_errors():
    assert num_batches(10, 4) == 3 and num_batches(10, 4, drop_remainder=True) == 2
    assert num_batches(8, 4) == 2 and num_batches(0, 4) == 0
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        num_batches(10, -1)
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        num_batches(-1, 4)


# --- train_val_split --------------------------------------------------------------------------


def test_validation_is_the_last_fraction():
    x, y = data(10)
    (x_train, y_train), (x_val, y_val) = train_val_split(x, y, 0.2)
    np.testing.assert_array_equal(x_train, x[:8])
    np.testing.assert_array_equal(y_val, y[8:])
    np.testing.assert_array_equal(x_val, x[8:])


def test_split_point_uses_floor_as_keras_3():
    # Keras 3 `train_validation_split`: split_at = floor(n * (1 - validation_split)).
    # 10 * 0.75 = 7.5 -> 7 training samples (a ceil would give 8).
    x, y = data(10)
    (x_train, _), (_, y_val) = train_val_split(x, y, 0.25)
    assert len(x_train) == 7
    np.testing.assert_array_equal(y_val, y[7:])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 500), split=st.floats(0.01, 0.99))
def test_split_matches_the_keras_formula(n, split):
    split_at = int(math.floor(n * (1.0 - split)))
    x = np.arange(n)
    if split_at in (0, n):
        with pytest.raises(ValueError, match="too few to split"):
            train_val_split(x, None, split)
        return
    (x_train, y_train), (x_val, y_val) = train_val_split(x, None, split)
    assert y_train is None and y_val is None
    np.testing.assert_array_equal(x_train, x[:split_at])
    np.testing.assert_array_equal(x_val, x[split_at:])


def test_split_of_pytrees():
    x = {"a": np.arange(5), "b": np.arange(10).reshape(5, 2)}
    y = (np.arange(5) * 2,)
    (x_train, y_train), (x_val, y_val) = train_val_split(x, y, 0.4)
    assert x_train["b"].shape == (3, 2) and x_val["a"].tolist() == [3, 4]
    assert isinstance(y_val, tuple) and y_val[0].tolist() == [6, 8] and y_train[0].tolist() == [0, 2, 4]


def test_split_errors():
    x, y = data(10)
    for bad in (0, 1, 1.2, -0.1, True):
        with pytest.raises(ValueError, match="validation_split must be a float strictly between 0 and 1"):
            train_val_split(x, y, bad)
    with pytest.raises(ValueError, match=r"1 samples are too few to split with validation_split=0.5"):
        train_val_split(x[:1], y[:1], 0.5)
    with pytest.raises(ValueError, match="inconsistent number of samples"):
        train_val_split(x, y[:3], 0.5)


# --- check_consistent_length ------------------------------------------------------------------


def test_check_consistent_length():
    assert check_consistent_length(np.zeros((4, 2)), np.zeros(4)) == 4
    assert check_consistent_length({"a": np.zeros(3), "b": [np.zeros((3, 1))]}) == 3
    with pytest.raises(ValueError, match=r"x\['a'\] has 3 \(shape \(3,\)\) but x\['b'\]\[0\] has 2"):
        check_consistent_length({"a": np.zeros(3), "b": [np.zeros(2)]})
    with pytest.raises(ValueError, match=r"x has 4 \(shape \(4, 2\)\) but y has 5 \(shape \(5,\)\)"):
        check_consistent_length(np.zeros((4, 2)), np.zeros(5))
    with pytest.raises(ValueError, match="x holds no arrays"):
        check_consistent_length({})
