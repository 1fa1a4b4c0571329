"""Tests for jaxnet_lite.utils.to_categorical (Keras' one-hot encoding)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxnet_lite.utils import to_categorical


def keras_reference(y, num_classes=None):
    """The algorithm of `keras.utils.to_categorical` (Keras 3, NumPy path), for valid labels."""
    y = np.array(y, dtype="int64")
    shape = y.shape
    if shape and shape[-1] == 1 and len(shape) > 1:
        shape = tuple(shape[:-1])
    y = y.reshape(-1)
    if not num_classes:
        num_classes = np.max(y) + 1
    out = np.zeros((y.shape[0], num_classes))
    out[np.arange(y.shape[0]), y] = 1
    return out.reshape(shape + (num_classes,))


def test_basic_and_inferred_num_classes():
    got = to_categorical([0, 2, 1, 2])
    np.testing.assert_array_equal(got, [[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]])
    assert got.dtype == np.float32


def test_column_of_labels_and_explicit_num_classes():
    got = to_categorical(np.array([[1], [0]], dtype=np.uint8), num_classes=4, dtype="int32")
    assert got.shape == (2, 4) and got.dtype == np.int32
    np.testing.assert_array_equal(got, [[0, 1, 0, 0], [1, 0, 0, 0]])


def test_other_shapes_and_whole_number_floats():
    assert to_categorical(np.zeros((2, 3), int), 5).shape == (2, 3, 5)
    assert to_categorical(3, 5).tolist() == [0, 0, 0, 1, 0]
    np.testing.assert_array_equal(to_categorical(np.array([1.0, 0.0])), [[0, 1], [1, 0]])
    assert to_categorical(np.array([], dtype=int), num_classes=3).shape == (0, 3)


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 9), min_size=1, max_size=30),
    extra=st.integers(0, 3),
    column=st.booleans(),
)
def test_matches_keras(labels, extra, column):
    y = np.array(labels).reshape(-1, 1) if column else np.array(labels)
    num_classes = max(labels) + 1 + extra
    np.testing.assert_array_equal(to_categorical(y, num_classes), keras_reference(y, num_classes))
    np.testing.assert_array_equal(to_categorical(y), keras_reference(y))


def test_label_not_below_num_classes():
    with pytest.raises(ValueError, match=r"to_categorical: y holds label 5, which is not below num_classes=3"):
        to_categorical([0, 5, 1], num_classes=3)


def test_negative_label():
    with pytest.raises(ValueError, match=r"to_categorical: y holds a negative label -2"):
        to_categorical([0, -2, 1])


@pytest.mark.parametrize(
    ("y", "num_classes", "message"),
    [
        ([0.5, 1.0], None, r"whole-number class labels, got 0.5"),
        ([np.nan], 2, r"whole-number class labels, got nan"),
        (["a", "b"], None, r"integer class labels, got dtype <U1"),
        ([True, False], None, r"integer class labels, got dtype bool"),
        ([], None, r"y is empty, so num_classes cannot be inferred"),
        ([0, 1], 0, r"num_classes must be a positive integer, got 0"),
        ([0, 1], 2.5, r"num_classes must be a positive integer, got 2.5"),
    ],
)
def test_bad_input(y, num_classes, message):
    with pytest.raises(ValueError, match=message):
        to_categorical(y, num_classes)
