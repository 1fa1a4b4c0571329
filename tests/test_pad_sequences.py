"""Tests for jaxnet_lite.utils.pad_sequences (Keras' `keras.utils.pad_sequences`).

Expected values come from Keras' documented examples and from a plain statement of the rule
(pad with `value` before or after, cut at the start or the end); when Keras is installed, random
ragged inputs are also compared with Keras' own function.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxnet_lite
from jaxnet_lite.utils import pad_sequences

MORE = max(40, settings.default.max_examples)  # each example costs microseconds

ragged = st.lists(st.lists(st.integers(-1000, 1000), max_size=8), min_size=1, max_size=6)
options = st.fixed_dictionaries(
    {
        "maxlen": st.none() | st.integers(1, 10),
        "padding": st.sampled_from(["pre", "post"]),
        "truncating": st.sampled_from(["pre", "post"]),
        "value": st.integers(-5, 5) | st.integers(-5, 5).map(float),
    }
)


def expected_row(seq: list, maxlen: int, padding: str, truncating: str, value) -> list:
    """The documented rule for one sequence."""
    kept = seq[-maxlen:] if truncating == "pre" and len(seq) > maxlen else seq[:maxlen]
    fill = [value] * (maxlen - len(kept))
    return fill + kept if padding == "pre" else kept + fill


@pytest.fixture(scope="module")
def keras_pad():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    return keras.utils.pad_sequences


def test_is_exported_with_to_categorical():
    assert "pad_sequences" in jaxnet_lite.utils.__all__ and jaxnet_lite.utils.pad_sequences is pad_sequences


def test_keras_documented_examples():
    sequence = [[1], [2, 3], [4, 5, 6]]
    got = pad_sequences(sequence)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(sequence, value=-1), [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(sequence, padding="post"), [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(sequence, maxlen=2), [[0, 1], [2, 3], [5, 6]])


def test_truncating_post_and_both_sides():
    got = pad_sequences([[1, 2, 3, 4], [5]], maxlen=3, truncating="post", padding="post", value=9)
    np.testing.assert_array_equal(got, [[1, 2, 3], [5, 9, 9]])


def test_empty_sequences_and_all_empty():
    got = pad_sequences([[], [7, 8], []], value=-2)
    np.testing.assert_array_equal(got, [[-2, -2], [7, 8], [-2, -2]])
    assert pad_sequences([[], []]).shape == (2, 0)
    assert pad_sequences([], maxlen=4).shape == (0, 4)


def test_per_sample_feature_arrays():
    a, b = np.arange(6).reshape(3, 2), np.arange(10, 12).reshape(1, 2)
    got = pad_sequences([a, np.zeros((0, 2)), b], maxlen=2, dtype="float32", value=-1.0)
    assert got.shape == (3, 2, 2) and got.dtype == np.float32
    np.testing.assert_array_equal(got[0], a[1:])
    np.testing.assert_array_equal(got[1], -np.ones((2, 2)))
    np.testing.assert_array_equal(got[2], [[-1, -1], [10, 11]])


def test_float_and_object_dtypes():
    got = pad_sequences([[0.5, 1.25], [2.0]], dtype="float32", value=0.75)
    np.testing.assert_array_equal(got, np.array([[0.5, 1.25], [0.75, 2.0]], dtype=np.float32))
    words = pad_sequences([["a", "b"], ["c"]], dtype=object, value="<pad>")
    assert words.tolist() == [["a", "b"], ["<pad>", "c"]]
    # whole-number floats are integers, so they are accepted with an integer dtype
    np.testing.assert_array_equal(pad_sequences([np.array([1.0, 2.0])]), [[1, 2]])


def test_rectangular_array_input():
    np.testing.assert_array_equal(pad_sequences(np.arange(6).reshape(2, 3), maxlen=2), [[1, 2], [4, 5]])


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"sequences": [[1]], "padding": "middle"}, "padding.*'middle'"),
        ({"sequences": [[1]], "truncating": "both"}, "truncating.*'both'"),
        ({"sequences": [[]], "padding": "left"}, "padding.*'left'"),  # checked even with nothing to pad
        ({"sequences": [[1], 5]}, "sequence 1 is not one: 5"),
        ({"sequences": [[1], "ab"]}, "sequence 1 is not one"),
        ({"sequences": 7}, "list .* of sequences, got int"),
        ({"sequences": [[1, 2.5]]}, "sequence 0 holds 2.5.*truncate"),
        ({"sequences": [[1], [float("nan")]]}, "sequence 1 holds nan"),
        ({"sequences": [["a", "b"]]}, "sequence 0 holds strings"),
        ({"sequences": [[1]], "value": "x"}, "value holds strings.*dtype=object"),
        ({"sequences": [[1]], "value": 0.5}, "value holds 0.5"),
        ({"sequences": [[300]], "dtype": "int8"}, "300.*int8"),
        ({"sequences": [[-1]], "dtype": "uint8"}, "-1.*uint8"),
        ({"sequences": [[1]], "maxlen": 0}, "maxlen.*0"),
        ({"sequences": [[1]], "maxlen": -3}, "maxlen.*-3"),
        ({"sequences": [[1]], "maxlen": 2.0}, "maxlen.*2.0"),
        ({"sequences": [[1]], "maxlen": True}, "maxlen.*True"),
        ({"sequences": []}, "empty.*maxlen"),
        ({"sequences": [[1, 2], [[3, 4]]]}, r"sequence 1 has values of shape \(2,\)"),
    ],
)
def test_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        pad_sequences(**kwargs)


@settings(max_examples=MORE)
@given(ragged, options)
def test_follows_the_documented_rule(sequences, opts):
    got = pad_sequences(sequences, **opts)
    maxlen = opts["maxlen"] or max(len(s) for s in sequences)
    want = [expected_row(s, maxlen, opts["padding"], opts["truncating"], opts["value"]) for s in sequences]
    assert got.shape == (len(sequences), maxlen) and got.dtype == np.int32
    assert got.tolist() == want


@settings(max_examples=MORE)
@given(ragged, options, st.sampled_from(["int32", "int64", "float32"]))
def test_equals_keras(keras_pad, sequences, opts, dtype):
    got, want = pad_sequences(sequences, dtype=dtype, **opts), keras_pad(sequences, dtype=dtype, **opts)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@settings(max_examples=MORE)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=5),
    st.integers(1, 3),
    options,
    st.floats(-10, 10, width=32),
)
def test_equals_keras_with_features_and_float_values(keras_pad, lengths, features, opts, fill):
    rng = np.random.default_rng(sum(lengths) + features)
    sequences = [rng.normal(size=(n, features)).astype(np.float32) for n in lengths]
    opts = {**opts, "value": fill}
    got = pad_sequences(sequences, dtype="float32", **opts)
    want = keras_pad(sequences, dtype="float32", **opts)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
