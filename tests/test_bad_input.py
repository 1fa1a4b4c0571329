"""Bad input, systematically: every refusal is a ValueError/TypeError (or NotImplementedError for a Keras
argument not supported) that names the argument; never an IndexError, ZeroDivisionError, AttributeError
or a JAX internal error; and every accepted input trains to finite weights."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxnet_lite import Sequential
from jaxnet_lite.layers import Dense

N = 8
GOOD_X = np.linspace(-1, 1, N * 4, dtype=np.float32).reshape(N, 4)
GOOD_Y = np.arange(N) % 3

ALLOWED = (ValueError, TypeError, NotImplementedError)  # LayerError is a ValueError


def _x_variants():
    ragged = [[1.0, 2.0, 3.0, 4.0]] * (N - 1) + [[1.0, 2.0]]
    return {
        "wrong width": GOOD_X[:, :3],
        "no feature axis": GOOD_X[:, 0],
        "extra axis": GOOD_X[..., None],
        "objects": GOOD_X.astype(object),
        "strings": np.array([["a"] * 4] * N),
        "complex": GOOD_X.astype(np.complex64),
        "nan": np.where(GOOD_X > 0.5, np.nan, GOOD_X).astype(np.float32),
        "inf": np.where(GOOD_X > 0.5, np.inf, GOOD_X).astype(np.float32),
        "-inf": np.where(GOOD_X > 0.5, -np.inf, GOOD_X).astype(np.float32),
        "huge": GOOD_X * np.float32(1e30),
        "negative": -np.abs(GOOD_X),
        "empty": GOOD_X[:0],
        "ragged list": ragged,
        "nested list": GOOD_X.tolist(),  # fine: becomes an array
        "numpy scalar": np.float32(1.0),
        "python scalar": 3.0,
        "string": "x",
        "float64": GOOD_X.astype(np.float64),
        "ints": (GOOD_X * 10).astype(np.int32),
        "bools": GOOD_X > 0,
        "wrong length": GOOD_X[:-1],
    }


def _y_variants():
    return {
        "fractional": GOOD_Y + 0.5,
        "negative": GOOD_Y - 1,
        "too large": GOOD_Y + 3,
        "nan": np.where(GOOD_Y > 1, np.nan, GOOD_Y),
        "inf": np.where(GOOD_Y > 1, np.inf, GOOD_Y),
        "strings": np.array(["a"] * N),
        "objects": GOOD_Y.astype(object),
        "one-hot for sparse": np.eye(3)[GOOD_Y],
        "wrong length": GOOD_Y[:-1],
        "list": GOOD_Y.tolist(),  # fine
        "column": GOOD_Y[:, None],  # fine: (N, 1) sparse labels
        "float whole numbers": GOOD_Y.astype(np.float32),  # fine
        "numpy scalar": np.int64(1),
    }


ARG_VALUES = {
    "batch_size": [0, -1, 2.5, "a", np.int64(4), N + 1, True],
    "epochs": [2.5, -1, "a", np.int32(1), None],
    "verbose": [3, "x", -1],
    "validation_split": [1.5, -0.1, "a", 1.0],
    "steps_per_epoch": [0, 2.5, -3],
    "initial_epoch": [-1, 0.5],
    "validation_freq": [0, 1.5],
}
X_VARIANTS, Y_VARIANTS = _x_variants(), _y_variants()


def _model() -> Sequential:
    model = Sequential([Dense(5, activation="relu", input_shape=(4,)), Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


MODEL = _model()  # shared: compiled programs are cached, so examples stay fast


@st.composite
def calls(draw):
    """`(method, kwargs, the name the error must mention)`, each with one thing wrong (or nothing)."""
    kind = draw(st.sampled_from(["x", "y", "arg", "evaluate_x", "predict_x", "predict_batch", "evaluate_batch"]))
    if kind == "x":
        label = draw(st.sampled_from(sorted(X_VARIANTS)))
        return "fit", {"x": X_VARIANTS[label], "y": GOOD_Y}, "x"
    if kind == "y":
        label = draw(st.sampled_from(sorted(Y_VARIANTS)))
        return "fit", {"x": GOOD_X, "y": Y_VARIANTS[label]}, "y"
    if kind == "arg":
        arg = draw(st.sampled_from(sorted(ARG_VALUES)))
        value = draw(st.sampled_from(ARG_VALUES[arg]))
        return "fit", {"x": GOOD_X, "y": GOOD_Y, arg: value}, arg
    if kind == "evaluate_x":
        label = draw(st.sampled_from(sorted(X_VARIANTS)))
        return "evaluate", {"x": X_VARIANTS[label], "y": GOOD_Y}, "x"
    if kind == "predict_x":
        label = draw(st.sampled_from(sorted(X_VARIANTS)))
        return "predict", {"x": X_VARIANTS[label]}, "x"
    value = draw(st.sampled_from(ARG_VALUES["batch_size"]))
    if kind == "predict_batch":
        return "predict", {"x": GOOD_X, "batch_size": value}, "batch_size"
    return "evaluate", {"x": GOOD_X, "y": GOOD_Y, "batch_size": value}, "batch_size"


def _message_names(error: BaseException, name: str) -> bool:
    text = str(error)
    aliases = {"x": ("x", "input", "expects input"), "y": ("y", "label")}.get(name, (name,))
    return any(a in text for a in aliases)


def _check_call(call):
    method, kwargs, name = call
    kwargs = dict(kwargs)
    kwargs.setdefault("verbose", 0)
    if method == "fit":
        kwargs.setdefault("epochs", 1)
    try:
        result = getattr(MODEL, method)(**kwargs)
    except ALLOWED as error:
        assert _message_names(error, name), f"{method}({name}=...) refused without naming it: {error!r}"
        return
    except Exception as error:  # noqa: BLE001 - the point of the test
        pytest.fail(f"{method}({name}=...) raised {type(error).__name__}: {error}")
    for leaf in jax.tree.leaves(MODEL.variables):
        assert np.all(np.isfinite(np.asarray(leaf))), f"{method}({name}=...) was accepted but gave non-finite weights"
    if method == "predict" and np.all(np.isfinite(np.asarray(kwargs["x"], np.float64))):
        assert np.all(np.isfinite(result)), "finite inputs gave non-finite predictions"  # NaN in, NaN out is fine


@settings(max_examples=20, deadline=None, derandomize=True)
@given(calls())
def test_bad_input_is_refused_by_name_or_trains_to_finite_weights(call):
    _check_call(call)


@pytest.mark.parametrize("label", sorted(X_VARIANTS))
def test_every_x_variant_in_fit(label):
    _check_call(("fit", {"x": X_VARIANTS[label], "y": GOOD_Y}, "x"))


@pytest.mark.parametrize("label", sorted(Y_VARIANTS))
def test_every_y_variant_in_fit(label):
    _check_call(("fit", {"x": GOOD_X, "y": Y_VARIANTS[label]}, "y"))


@pytest.mark.parametrize("arg, value", [(a, v) for a, values in sorted(ARG_VALUES.items()) for v in values],
                         ids=lambda v: repr(v))
def test_every_argument_value_in_fit(arg, value):
    _check_call(("fit", {"x": GOOD_X, "y": GOOD_Y, arg: value}, arg))


@pytest.mark.parametrize("path_kind", ["missing", "directory", "text file", "npz without header"])
def test_load_weights_refuses_what_is_not_a_weights_file_by_name(tmp_path, path_kind):
    path = tmp_path / "weights.npz"
    if path_kind == "directory":
        path.mkdir()
    elif path_kind == "text file":
        path.write_text("not weights")
    elif path_kind == "npz without header":
        np.savez(path, a=np.zeros(3))
    with pytest.raises(ALLOWED + (FileNotFoundError, IsADirectoryError)) as error:
        _model().load_weights(path)
    assert "weights.npz" in str(error.value)
