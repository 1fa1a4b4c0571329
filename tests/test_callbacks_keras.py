"""Callbacks as Keras 3 runs them: reuse across `fit` calls, `ModelCheckpoint` without its monitor, and
`History` after every other callback.

Where Keras is installed, the same callbacks of both libraries are driven with the same scripted epoch logs
(`on_train_begin`, `on_epoch_end(epoch, logs)`, `on_train_end`) over fake models, and their traces (stop
epochs, best values, restored weights, learning rates, saved files, history) must agree. The Keras-free
tests check each behaviour on its own, and `History` in a real `fit`.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import optax
import pytest

from jaxnet_lite import optimizers
from jaxnet_lite.callbacks import (
    CallbackList,
    EarlyStopping,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
)


class FakeOptimizer:
    def __init__(self, lr: float) -> None:
        self.learning_rate = lr


class FakeModel:
    """Enough of a model for both libraries' callbacks: weights tagged by epoch, a learning rate, saves."""

    def __init__(self, lr: float = 1.0) -> None:
        self.stop_training = False
        self.weights = [np.zeros(2)]
        self.restored: list[int] = []
        self.saved: list[str] = []
        self.optimizer = FakeOptimizer(lr)  # Keras reads and writes `model.optimizer.learning_rate`
        self.trainer = self                 # jaxnet_lite reads and writes `model.trainer.learning_rate`

    @property
    def learning_rate(self) -> float:
        return self.optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.optimizer.learning_rate = float(value)

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.restored.append(int(weights[0][0]))

    def save_weights(self, path, overwrite=True):
        self.saved.append(os.path.basename(path))


def drive(callback, model: FakeModel, runs: list[list[float | None]], monitor: str = "val_loss") -> list[dict]:
    """Feed each run of values as one `fit` (until the callback stops it); return a trace per epoch."""
    callback.set_model(model)
    trace = []
    for run, values in enumerate(runs):
        model.stop_training = False
        callback.on_train_begin()
        for epoch, value in enumerate(values):
            model.weights = [np.full(2, 10 * run + epoch)]
            logs = {"loss": 1.0} if value is None else {"loss": 1.0, monitor: value}
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                callback.on_epoch_end(epoch, logs)
            trace.append({"run": run, "epoch": epoch, "logs": logs, "stop": model.stop_training,
                          "best": getattr(callback, "best", None), "wait": getattr(callback, "wait", None),
                          "lr": model.learning_rate, "warned": sorted(str(w.message)[:30] for w in caught)})
            if model.stop_training:
                break
        callback.on_train_end()
        trace.append({"run": run, "restored": list(model.restored), "saved": list(model.saved),
                      "stopped_epoch": getattr(callback, "stopped_epoch", None)})
    return trace


def assert_same_trace(ours: list[dict], theirs: list[dict]) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], float) or isinstance(b[k], float):
                np.testing.assert_equal(a[k], b[k], err_msg=f"{k} in {a}")  # NaN-aware
            else:
                assert a[k] == b[k], f"{k}: ours {a[k]!r}, Keras {b[k]!r} (at {a})"


# -- against Keras 3 ------------------------------------------------------------------------------------
NAN = float("nan")
EARLY_STOPPING = [
    ({"patience": 1}, [[0.5, 0.25, 0.25, 0.25], [1.0, 1.0, 0.75]]),  # reused: the second fit starts afresh
    ({"patience": 2, "min_delta": 0.1}, [[1.0, 0.95, 0.8, 0.75, 0.72, 0.7], [0.75, 0.5]]),
    ({"patience": 2, "restore_best_weights": True}, [[1.0, 0.5, 0.75, 0.875], [2.0, 3.0, 4.0]]),
    ({"patience": 3, "baseline": 0.5, "restore_best_weights": True}, [[1.0, 0.75, 0.875, 0.9375, 0.6]]),
    ({"patience": 1, "start_from_epoch": 2}, [[0.125, 0.25, 1.0, 2.0, 3.0], [0.5, 0.5, 0.5, 0.5]]),
    ({"patience": 1, "restore_best_weights": True}, [[None, NAN, NAN, 1.0], [NAN, 0.5, 0.5]]),
    ({"patience": 1, "monitor": "val_accuracy", "mode": "max"}, [[0.5, 0.75, 0.75, 0.5], [0.25, 0.5]]),
]


@pytest.mark.parametrize("kwargs, runs", EARLY_STOPPING)
def test_early_stopping_traces_match_keras(keras, kwargs, runs):
    monitor = kwargs.get("monitor", "val_loss")
    ours = drive(EarlyStopping(**kwargs), FakeModel(), runs, monitor)
    theirs = drive(keras.callbacks.EarlyStopping(**kwargs), FakeModel(), runs, monitor)
    assert_same_trace(ours, theirs)


PLATEAU = [
    ({"factor": 0.5, "patience": 2}, [[1.0] * 6, [1.0, 0.5, 0.5, 0.5]]),  # reused: wait and best reset
    ({"factor": 0.5, "patience": 1, "min_delta": 0.25}, [[1.0, 0.875, 0.5, 0.5]]),
    ({"factor": 0.5, "patience": 2, "cooldown": 2}, [[1.0] * 9]),
    ({"factor": 0.5, "patience": 1, "min_lr": 0.3}, [[1.0] * 6]),
    ({"factor": 0.5, "patience": 1, "monitor": "val_accuracy", "mode": "max"}, [[0.5, 0.75, 0.75, 0.875, 0.5]]),
    ({"factor": 0.5, "patience": 0}, [[1.0, None, 1.0]]),
]


@pytest.mark.parametrize("kwargs, runs", PLATEAU)
def test_reduce_lr_on_plateau_traces_match_keras(keras, kwargs, runs):
    monitor = kwargs.get("monitor", "val_loss")
    ours = drive(ReduceLROnPlateau(**kwargs), FakeModel(), runs, monitor)
    theirs = drive(keras.callbacks.ReduceLROnPlateau(**kwargs), FakeModel(), runs, monitor)
    assert_same_trace(ours, theirs)


@pytest.mark.parametrize("kwargs", [{"save_best_only": True}, {},
                                    {"save_best_only": True, "monitor": "val_accuracy", "mode": "max"},
                                    {"save_best_only": True, "initial_value_threshold": 0.6}])
def test_model_checkpoint_traces_match_keras(keras, kwargs, tmp_path):
    monitor = kwargs.get("monitor", "val_loss")
    runs = [[0.7, 0.5, None, 0.75, 0.25, 0.25, None]]
    path = str(tmp_path / "w-{epoch}.weights.h5")
    ours = drive(ModelCheckpoint(path, save_weights_only=True, **kwargs), FakeModel(), runs, monitor)
    theirs = drive(keras.callbacks.ModelCheckpoint(path, save_weights_only=True, **kwargs), FakeModel(), runs,
                   monitor)
    assert_same_trace(ours, theirs)


def test_history_records_what_other_callbacks_log_as_in_keras(keras):
    """Keras' fit passes the user's callbacks and appends its own History; here fit lists History first."""
    def epochs(callbacks):
        callbacks.on_train_begin()
        for epoch in range(3):
            callbacks.on_epoch_end(epoch, {"loss": 1.0, "val_loss": 1.0})

    theirs = keras.callbacks.CallbackList([keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=1)],
                                          add_history=True, model=FakeModel(0.5))
    epochs(theirs)
    history = History()
    ours = CallbackList([history, ReduceLROnPlateau(factor=0.5, patience=1)])
    ours.set_model(FakeModel(0.5))
    epochs(ours)
    assert history.history == theirs._history.history
    assert history.history["learning_rate"] == [0.5, 0.5, 0.25]


def test_auto_mode_refuses_an_unknown_metric_as_keras(keras):
    for ours, theirs in [(ReduceLROnPlateau(monitor="val_f1"), keras.callbacks.ReduceLROnPlateau(monitor="val_f1")),
                         (EarlyStopping(monitor="val_f1"), keras.callbacks.EarlyStopping(monitor="val_f1"))]:
        for callback in (ours, theirs):
            callback.set_model(FakeModel())
            callback.on_train_begin()
            with pytest.raises(ValueError, match="val_f1"):
                callback.on_epoch_end(0, {"val_f1": 0.5})


# -- Keras-free -----------------------------------------------------------------------------------------
def test_early_stopping_reused_starts_afresh():
    cb = EarlyStopping(patience=1, restore_best_weights=True)
    trace = drive(cb, FakeModel(), [[0.25, 0.125, 0.5, 0.5], [1.0, 0.75, 0.875, 0.875]])
    first, second = [t for t in trace if "restored" in t]
    assert first["stopped_epoch"] == 2 and first["restored"] == [1]
    # The second fit's values are all worse than the first fit's best (0.125), yet 0.75 is its best: it
    # stops one epoch later and restores its own epoch 1 (weights tagged 11). Keeping the old best would
    # stop at epoch 1 and restore epoch 0.
    assert second["stopped_epoch"] == 2 and second["restored"] == [1, 11]
    assert cb.best == 0.75 and cb.best_epoch == 1


def test_model_checkpoint_without_its_monitor_warns_and_saves(tmp_path):
    model = FakeModel()
    cb = ModelCheckpoint(str(tmp_path / "{epoch}.weights.h5"), save_best_only=True, save_weights_only=True)
    cb.set_model(model)
    cb.on_epoch_end(0, {"val_loss": 0.5})
    with pytest.warns(UserWarning, match="Can save best model only with val_loss available."):
        cb.on_epoch_end(1, {"loss": 1.0})
    cb.on_epoch_end(2, {"val_loss": 0.75})  # no improvement on 0.5: not saved
    with pytest.warns(UserWarning, match="scalar"):
        cb.on_epoch_end(3, {"val_loss": np.array([0.1, 0.2])})
    assert model.saved == ["1.weights.h5", "2.weights.h5", "4.weights.h5"]
    assert cb.best == 0.5


def test_callback_list_runs_history_last():
    order = []

    class Logger(ReduceLROnPlateau):
        def on_epoch_end(self, epoch, logs=None):
            order.append("plateau")
            super().on_epoch_end(epoch, logs)

    class Recorder(History):
        def on_epoch_end(self, epoch, logs=None):
            order.append("history")
            super().on_epoch_end(epoch, logs)

    history = Recorder()
    callbacks = CallbackList([history, Logger(patience=5)])
    assert callbacks.callbacks[-1] is history
    callbacks.set_model(FakeModel(0.25))
    callbacks.on_train_begin()
    callbacks.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.0})
    assert order == ["plateau", "history"]
    assert history.history["learning_rate"] == [0.25]


def test_fit_history_has_the_learning_rate_other_callbacks_log():
    import jaxnet_lite as jl
    from jaxnet_lite.layers import Dense

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 2)).astype(np.float32)
    y = x @ np.array([[1.0], [-1.0]], np.float32)
    model = jl.Sequential([Dense(1, input_shape=(2,))])
    model.compile(loss="mse", optimizer=optimizers.SGD(0.01))
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, validation_data=(x, y),
                        callbacks=[LearningRateScheduler(lambda epoch, lr: 0.01 / (epoch + 1)),
                                   ReduceLROnPlateau(patience=10)])
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.005, 0.01 / 3], rel=1e-6)
    assert history.epoch == [0, 1, 2]


def test_reduce_lr_on_plateau_with_a_scheduled_learning_rate_says_why_it_cannot():
    import jaxnet_lite as jl
    from jaxnet_lite.layers import Dense

    trainer = jl.Trainer(jl.Sequential([Dense(1, input_shape=(2,))]), "mse",
                         optimizer=optimizers.SGD(optax.constant_schedule(0.1)))
    model = FakeModel()
    model.trainer = trainer
    cb = ReduceLROnPlateau(patience=0)
    cb.set_model(model)
    cb.on_train_begin()
    logs = {"val_loss": 1.0}
    cb.on_epoch_end(0, logs)
    assert logs["learning_rate"] == pytest.approx(0.1)
    with pytest.raises(TypeError, match="schedule as its `learning_rate`"):
        cb.on_epoch_end(1, {"val_loss": 1.0})
