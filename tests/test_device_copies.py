"""Data given to `fit` crosses to the device once: a second `fit`, validation on the same arrays and
`evaluate` reuse the copy, while an array changed in place is copied afresh (never a stale copy)."""

from __future__ import annotations

import gc

import jax
import numpy as np
import optax
import pytest

from jaxnet_lite import Sequential
from jaxnet_lite.layers import Dense
from jaxnet_lite.training.device_copies import DeviceCopies


class CountingPut:
    """A `put` that records the shape of every array it copies."""

    def __init__(self) -> None:
        self.shapes: list[tuple] = []

    def __call__(self, a: np.ndarray) -> jax.Array:
        self.shapes.append(a.shape)
        return jax.device_put(a)


def test_the_same_unchanged_array_is_copied_once() -> None:
    copies, put = DeviceCopies(), CountingPut()
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    first = copies.get(a, put)
    assert copies.get(a, put) is first
    assert copies.get(a[:2], put) is not first and put.shapes == [(4, 3), (2, 3)]  # a view of other rows
    assert copies.get(a[:2], put) is copies.get(a[:2], put)  # a fresh view of the same rows: no new copy
    assert len(put.shapes) == 2 and copies.copies_made == 2


def test_an_array_changed_in_place_is_copied_again() -> None:
    copies, put = DeviceCopies(), CountingPut()
    a = np.zeros((5, 2), np.float32)
    copies.get(a, put)
    a[3, 1] = 7.0
    assert np.asarray(copies.get(a, put))[3, 1] == 7.0
    a[[0, 3]] = a[[3, 0]]  # swapping rows keeps every byte value: the checksum still sees it
    assert np.asarray(copies.get(a, put))[0, 1] == 7.0
    assert len(put.shapes) == 3


def test_equal_contents_in_other_memory_and_strided_views_are_copied() -> None:
    copies, put = DeviceCopies(), CountingPut()
    a = np.ones((4, 4), np.float32)
    copies.get(a, put)
    copies.get(a.copy(), put)
    copies.get(a[:, ::2], put)  # not contiguous: copied every time, never kept
    copies.get(a[:, ::2], put)
    assert len(put.shapes) == 4 and copies.copies_made == 2


def test_a_copy_lives_as_long_as_its_array_and_the_capacity() -> None:
    copies, put = DeviceCopies(capacity=2), CountingPut()
    a = np.ones((3,), np.float32)
    copies.get(a[1:], put)  # kept while `a`, the owner of the memory, lives
    assert len(copies._entries) == 1
    del a
    gc.collect()
    assert len(copies._entries) == 0
    arrays = [np.full((2,), i, np.float32) for i in range(3)]
    for x in arrays:
        copies.get(x, put)
    assert len(copies._entries) == 2  # the oldest went
    copies.get(arrays[0], put)
    assert copies.copies_made == 5


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32)


def mlp():
    model = Sequential([Dense(8, activation="relu", input_shape=(4,)), Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optax.adam(1e-2), metrics=["accuracy"])
    return model


@pytest.fixture
def host_arrays_put(monkeypatch):
    """Shapes of the host (NumPy) arrays with at least one axis that `jax.device_put` is asked to copy."""
    shapes: list[tuple] = []
    real = jax.device_put

    def recording(x, *args, **kwargs):
        shapes.extend(np.shape(a) for a in jax.tree.leaves(x) if isinstance(a, np.ndarray) and np.ndim(a) > 0)
        return real(x, *args, **kwargs)

    monkeypatch.setattr(jax, "device_put", recording)
    return shapes


def test_a_second_fit_and_evaluate_make_no_host_to_device_transfer(host_arrays_put) -> None:
    x, y = data()
    x_val, y_val = data(32, seed=1)
    model = mlp()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, validation_data=(x_val, y_val))
    model.evaluate(x_val, y_val, verbose=0)
    copies = model._trainer.engine.device_copies
    assert copies.copies_made == 4  # x, y, x_val, y_val
    host_arrays_put.clear()
    with jax.transfer_guard_host_to_device("disallow"):  # implicit transfers (NumPy into jit, jnp.asarray) raise
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x_val, y_val))
        model.evaluate(x_val, y_val, verbose=0)
    assert host_arrays_put == [] and copies.copies_made == 4  # and explicit ones are not made
    assert len(history.history["val_loss"]) == 2
    x[0] += 1.0  # written in place: the next fit copies x again, and only x
    with pytest.raises(Exception, match="[Dd]isallowed host-to-device"), jax.transfer_guard_host_to_device("disallow"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert copies.copies_made == 5


def test_reused_copies_train_exactly_as_fresh_copies() -> None:
    x, y = data()
    reused, fresh = mlp(), mlp()
    for model, second in ((reused, x), (fresh, x.copy())):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=True)
        model.fit(second, y, batch_size=16, epochs=1, verbose=0, shuffle=True)
    for a, b in zip(jax.tree.leaves(reused.variables), jax.tree.leaves(fresh.variables)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
