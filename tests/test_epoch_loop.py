"""One epoch loop for every kind of data: the same hooks, validation, steps_per_epoch, Ctrl-C and input
checks for arrays and for iterables of batches; Keras arguments honoured or refused, never ignored."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import optax
import pytest

import jaxnet_lite as jnl
from jaxnet_lite import Input, Model, Sequential
from jaxnet_lite.callbacks import Callback
from jaxnet_lite.layers import Dense


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    return x, y


def mlp():
    model = Sequential([Dense(8, activation="relu", input_shape=(4,)), Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=optax.adam(1e-2), metrics=["accuracy"])
    return model


def batches_of(x, y, size):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


class Batches:
    """A re-iterable source of batches: each epoch's iteration is a fresh generator."""

    def __init__(self, x, y, size):
        self.x, self.y, self.size = x, y, size

    def __iter__(self):
        return (batch for batch in batches_of(self.x, self.y, self.size))


class Trace(Callback):
    """Records every hook with its epoch or batch number and the log keys it got."""

    def __init__(self, batch_hooks: bool = True):
        super().__init__()
        self.calls: list[tuple] = []
        self._batch_hooks = batch_hooks

    def wants_batch_hooks(self, phase="train"):
        return self._batch_hooks

    def _log(self, name, index=None, logs=None):
        self.calls.append((name, index, tuple(sorted(logs or {}))))

    def on_train_begin(self, logs=None): self._log("train_begin")
    def on_train_end(self, logs=None): self._log("train_end", None, logs)
    def on_epoch_begin(self, epoch, logs=None): self._log("epoch_begin", epoch)
    def on_epoch_end(self, epoch, logs=None): self._log("epoch_end", epoch, logs)
    def on_train_batch_begin(self, batch, logs=None): self._log("batch_begin", batch)
    def on_train_batch_end(self, batch, logs=None): self._log("batch_end", batch, logs)
    def on_test_begin(self, logs=None): self._log("test_begin")
    def on_test_end(self, logs=None): self._log("test_end", None, logs)


@pytest.mark.parametrize("batch_hooks", [True, False])
def test_arrays_and_a_generator_give_the_same_callback_trace_and_numbers(batch_hooks):
    x, y = data()
    xv, yv = data(20, seed=1)

    def run(train):
        trace = Trace(batch_hooks)
        model = mlp()
        history = model.fit(*train, epochs=4, verbose=0, callbacks=[trace], validation_data=(xv, yv),
                            validation_freq=2, **({"batch_size": 16, "shuffle": False} if len(train) == 2 else {}))
        return trace.calls, history.history

    array_calls, array_history = run((x, y))
    stream_calls, stream_history = run((Batches(x, y, 16),))
    assert array_calls == stream_calls
    assert [c[0] for c in array_calls].count("test_begin") == 2  # validation_freq=2 over 4 epochs
    if batch_hooks:
        assert ("batch_end", 2, ("accuracy", "loss")) in array_calls
    assert sorted(array_history) == sorted(stream_history)
    for key in array_history:
        np.testing.assert_allclose(array_history[key], stream_history[key], rtol=1e-4, err_msg=key)


def test_an_endless_generator_with_steps_per_epoch():
    x, y = data()

    def forever():
        while True:
            yield from batches_of(x, y, 16)

    model = mlp()
    history = model.fit(forever(), steps_per_epoch=3, epochs=3, verbose=0)
    ref = mlp()
    ref_history = ref.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], ref_history.history["loss"], rtol=1e-4)


def test_steps_per_epoch_with_arrays_takes_that_many_batches():
    x, y = data(64)
    trace = Trace(batch_hooks=True)
    mlp().fit(x, y, batch_size=16, epochs=2, steps_per_epoch=2, verbose=0, callbacks=[trace])
    assert [c[1] for c in trace.calls if c[0] == "batch_end"] == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="steps_per_epoch=5 asks for more batches"):
        mlp().fit(x, y, batch_size=16, steps_per_epoch=5, verbose=0)


def test_evaluate_on_a_generator_equals_evaluate_on_arrays():
    x, y = data(50)
    model = mlp()
    model.fit(x, y, epochs=2, verbose=0)
    on_arrays = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    on_stream = model.evaluate(iter(batches_of(x, y, 16)), verbose=0, return_dict=True)
    assert on_arrays.keys() == on_stream.keys()
    for key in on_arrays:
        assert on_stream[key] == pytest.approx(on_arrays[key], rel=1e-5)


def test_evaluate_and_predict_call_their_callbacks():
    x, y = data()
    model = mlp()
    trace, predicted = Trace(batch_hooks=False), []

    class Predict(Callback):
        def on_predict_begin(self, logs=None): predicted.append("begin")
        def on_predict_end(self, logs=None): predicted.append("end")
        def on_predict_batch_end(self, batch, logs=None): predicted.append((batch, logs["outputs"].shape))

    model.evaluate(x, y, verbose=0, callbacks=[trace])
    model.predict(x, batch_size=32, verbose=0, callbacks=[Predict()])
    assert [c[0] for c in trace.calls] == ["test_begin", "test_end"]
    assert trace.calls[-1][2] == ("accuracy", "loss")
    assert predicted == ["begin", (0, (32, 3)), (1, (32, 3)), "end"]


def test_streamed_batches_are_checked_like_arrays():
    x, y = data()
    bad_shape = [(x[:16], y[:16]), (x[16:32, :3], y[16:32])]
    with pytest.raises(ValueError, match=r"fit: batch 1 has example shapes x \(3,\)"):
        mlp().fit(bad_shape, verbose=0)
    with_nan = x.copy()
    with_nan[20, 1] = np.nan
    with pytest.raises(ValueError, match=r"fit: batch 1: x contains NaN"):
        mlp().fit(batches_of(with_nan, y, 16), verbose=0)
    with pytest.raises(ValueError, match=r"one-hot width"):
        mlp().fit([(x[:16], y[:16, :2])], verbose=0)
    with pytest.raises(ValueError, match="leave batch_size out"):
        mlp().fit(batches_of(x, y, 16), batch_size=16, verbose=0)


def _interrupt_at(batch_index: int, x, y):
    """A stream that sends this process SIGINT (Ctrl-C) when it reaches batch `batch_index` of epoch 2."""
    def epoch_batches():
        for i, batch in enumerate(batches_of(x, y, 8)):
            if i == batch_index:
                os.kill(os.getpid(), signal.SIGINT)
            yield batch
    return epoch_batches


def test_ctrl_c_during_a_streamed_fit_returns_the_history(capsys):
    x, y = data()
    calls = {"epochs": 0}

    class Stream:
        def __iter__(self):
            calls["epochs"] += 1
            if calls["epochs"] == 2:
                return _interrupt_at(3, x, y)()
            return iter(batches_of(x, y, 8))

    model = mlp()
    history = model.fit(Stream(), epochs=10, verbose=0)
    assert history.epoch == [0]  # the interrupted second epoch is not recorded
    assert "Epoch 2 interrupted after" in capsys.readouterr().out
    assert np.all(np.isfinite(model.predict(x, verbose=0)))


def test_ctrl_c_in_the_unwatched_fast_mode_returns_the_history():
    """verbose=0 and no callbacks: epochs are queued without a read, yet Ctrl-C stops within an epoch."""
    x, y = data(2048)
    model = mlp()
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        history = model.fit(x, y, batch_size=32, epochs=100_000, verbose=0)
    finally:
        timer.cancel()
    assert 0 < len(history.epoch) < 100_000
    assert history.epoch == list(range(len(history.epoch)))


def test_compile_refuses_what_it_cannot_honour():
    model = Sequential([Dense(3, input_shape=(4,))])
    with pytest.raises(NotImplementedError, match="run_eagerly=True"):
        model.compile(loss="mse", run_eagerly=True)
    with pytest.raises(NotImplementedError, match="jit_compile=False"):
        model.compile(loss="mse", jit_compile=False)
    with pytest.raises(TypeError):
        model.compile(loss="mse", not_an_argument=1)
    model.compile(loss="mse", run_eagerly=False, jit_compile=True, weighted_metrics=None)  # Keras' defaults


def test_unknown_keyword_arguments_to_evaluate_and_predict_are_errors():
    x, y = data()
    model = mlp()
    with pytest.raises(TypeError, match="foo"):
        model.evaluate(x, y, foo=1)
    with pytest.raises(TypeError, match="foo"):
        model.predict(x, foo=1)
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    plain = model.evaluate(x, y, verbose=0)
    assert model.evaluate(x, y, sample_weight=np.ones(len(x)), verbose=0) == pytest.approx(plain, rel=1e-6)
    assert model.evaluate(x, y, sample_weight=np.zeros(len(x)), verbose=0) == 0.0  # Keras: sum over batch size


def test_loss_weights_scale_each_output():
    x, y = data()
    inp = Input((4,))
    hidden = Dense(8, activation="relu", name="hidden")(inp)
    model = Model(inp, [Dense(3, activation="softmax", name="a")(hidden),
                        Dense(3, activation="softmax", name="b")(hidden)])

    def loss_with(weights):
        model.compile(loss="categorical_crossentropy", optimizer="adam", loss_weights=weights)
        return model.evaluate(x, [y, y], verbose=0)

    both, first_only, second_only = loss_with(None), loss_with([1.0, 0.0]), loss_with({"b": 1.0, "a": 0.0})
    assert both == pytest.approx(first_only + second_only, rel=1e-5)
    assert loss_with([2.0, 0.0]) == pytest.approx(2 * first_only, rel=1e-5)
    assert first_only != pytest.approx(second_only, rel=1e-3)
    with pytest.raises(ValueError, match=r"loss_weights names \['c'\]"):
        model.compile(loss="categorical_crossentropy", loss_weights={"c": 1.0})
    with pytest.raises(ValueError, match="loss_weights has 3 entries"):
        model.compile(loss="categorical_crossentropy", loss_weights=[1, 2, 3])


def test_fit_argument_errors_name_the_argument():
    x, y = data()
    with pytest.raises(ValueError, match="fit: epochs must be an integer"):
        mlp().fit(x, y, epochs=2.5, verbose=0)
    with pytest.raises(ValueError, match="evaluate: batch_size must be an integer >= 1, got 0"):
        mlp().evaluate(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="predict: batch_size must be an integer >= 1, got -1"):
        mlp().predict(x, batch_size=-1, verbose=0)
    with pytest.raises(ValueError, match="predict: x must be an array"):
        mlp().predict("not data", verbose=0)
    assert jnl.Trainer(mlp(), "categorical_crossentropy").fit(x, y, epochs=0, verbose=0).epoch == []


def test_batch_hooks_fire_even_when_the_epoch_is_one_step():
    x, y = data(16)
    trace = Trace(batch_hooks=True)
    mlp().fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[trace])
    mlp().fit(batches_of(x, y, 16), epochs=2, verbose=0, callbacks=[trace])
    assert [c[:2] for c in trace.calls if c[0].startswith("batch")] == [("batch_begin", 0), ("batch_end", 0)] * 4


def test_validation_data_as_arrays_or_as_batches_gives_the_same_logs():
    x, y = data()
    xv, yv = data(24, seed=3)
    with_arrays = mlp().fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=[xv, yv])
    with_batches = mlp().fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=batches_of(xv, yv, 8))
    np.testing.assert_allclose(with_arrays.history["val_loss"], with_batches.history["val_loss"], rtol=1e-5)
    ones = mlp().fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(xv, yv, np.ones(len(xv))))
    np.testing.assert_allclose(ones.history["val_loss"], with_arrays.history["val_loss"], rtol=1e-5)
    halves = mlp().fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(xv, yv, np.full(len(xv), 0.5)))
    np.testing.assert_allclose(halves.history["val_loss"], np.array(with_arrays.history["val_loss"]) / 2, rtol=1e-5)
    with pytest.raises(ValueError, match="validation_data must be a tuple"):
        mlp().fit(x, y, verbose=0, validation_data=(xv,))


def test_adding_a_layer_after_compile_asks_for_compile_again():
    x, y = data()
    model = Sequential([Dense(8, activation="relu", input_shape=(4,))])
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    model.add(Dense(3, activation="softmax"))
    with pytest.raises(RuntimeError, match=r"changed after compile \(a layer was added\): call model.compile"):
        model.fit(x, y, verbose=0)
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    assert len(model.fit(x, y, epochs=1, verbose=0).epoch) == 1


@pytest.mark.parametrize("method", ["evaluate", "predict"])
@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_evaluate_and_predict_check_batch_size(method, batch_size):
    x, y = data()
    args = (x, y) if method == "evaluate" else (x,)
    with pytest.raises(ValueError, match=f"{method}: batch_size must be an integer >= 1"):
        getattr(mlp(), method)(*args, batch_size=batch_size, verbose=0)
    with pytest.raises(ValueError, match="predict: batch_size must be an integer >= 1"):  # uncompiled too
        Sequential([Dense(3, input_shape=(4,))]).predict(x, batch_size=batch_size, verbose=0)
