"""Checkpoints in training: weights I/O, ModelCheckpoint, exact resume, Ctrl-C."""

import os
import signal
import threading

import jax
import numpy as np
import pytest

from jaxnet_lite import Sequential, checkpoint
from jaxnet_lite.callbacks import Callback, EarlyStopping, ModelCheckpoint
from jaxnet_lite.datasets import iris
from jaxnet_lite.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from jaxnet_lite.testing import assert_trees_close
from jaxnet_lite.utils import to_categorical


def data():
    (x, y), _ = iris.load_data()
    return x, to_categorical(y, 3)


def model_fn():
    model = Sequential([Dense(16, input_shape=(4,), activation="relu"), BatchNormalization(), Dropout(0.3),
                        Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"], seed=7)
    return model


def test_save_and_load_weights_round_trip(tmp_path):
    x, y = data()
    model = model_fn()
    model.fit(x, y, epochs=2, verbose=0)
    path = tmp_path / "weights.npz"
    model.save_weights(path)
    fresh = model_fn()
    fresh.load_weights(path)
    assert_trees_close(fresh.variables, model.variables, atol=0, rtol=0)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


def test_load_weights_of_another_model_names_mismatches(tmp_path):
    model = model_fn()
    model.save_weights(tmp_path / "w.npz")
    other = Sequential([Dense(8, input_shape=(4,)), Dense(3)])
    with pytest.raises(checkpoint.CheckpointError, match=r"(?s)w.npz.*dense/kernel.*\(4, 16\) in checkpoint vs \(4, 8\).*unexpected.*batch_normalization"):
        other.load_weights(tmp_path / "w.npz")


def test_tutorial_cnn_round_trip_with_optimizer_state(tmp_path):
    model = Sequential([Conv2D(32, (3, 3), input_shape=(28, 28, 1), activation="relu"), MaxPooling2D((2, 2)),
                        Conv2D(64, (3, 3), activation="relu"), MaxPooling2D((2, 2)), Flatten(), Dropout(0.5),
                        Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    trainer = model.trainer
    trainer.save_checkpoint(tmp_path / "ts.npz", epoch=0)
    restored = checkpoint.restore(tmp_path / "ts.npz", target=trainer.train_state)
    assert_trees_close(restored.params, trainer.train_state.params, atol=0, rtol=0)
    assert_trees_close(restored.opt_state, trainer.train_state.opt_state, atol=0, rtol=0)
    assert type(restored.opt_state) is type(trainer.train_state.opt_state)


def test_resume_equals_uninterrupted_run(tmp_path):
    x, y = data()
    full = model_fn()
    h_full = full.fit(x, y, batch_size=16, epochs=4, validation_split=0.2, verbose=0)

    first = model_fn()
    ckpt = ModelCheckpoint(str(tmp_path / "ckpt-{epoch}.npz"))
    h1 = first.fit(x, y, batch_size=16, epochs=2, validation_split=0.2, verbose=0, callbacks=[ckpt])
    assert sorted(os.listdir(tmp_path)) == ["ckpt-1.npz", "ckpt-2.npz"]

    resumed = model_fn()  # a new process would do exactly this
    epoch = resumed.trainer.restore_checkpoint(tmp_path / "ckpt-2.npz")
    assert epoch == 2
    h2 = resumed.fit(x, y, batch_size=16, epochs=4, validation_split=0.2, verbose=0, initial_epoch=epoch)
    assert h2.epoch == [2, 3]
    for key in h_full.history:
        assert h1.history[key] + h2.history[key] == h_full.history[key]  # bit for bit on CPU
    assert_trees_close(resumed.trainer.train_state, full.trainer.train_state, atol=0, rtol=0)


def test_model_checkpoint_save_best_only_and_weights_only(tmp_path):
    x, y = data()
    model = model_fn()
    cb = ModelCheckpoint(str(tmp_path / "best.npz"), monitor="val_accuracy", save_best_only=True,
                         save_weights_only=True)
    model.fit(x, y, epochs=3, validation_split=0.2, verbose=0, callbacks=[cb])
    restored = checkpoint.restore(tmp_path / "best.npz")
    assert set(restored) == {"params", "state"}


def test_early_stopping_restore_best_weights_keeps_best_in_memory(tmp_path):
    x, y = data()
    model = model_fn()
    snapshots = []

    class Snap(Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append((logs["val_loss"], jax.tree.map(np.asarray, model.variables)))

    es = EarlyStopping(patience=1, restore_best_weights=True)
    model.fit(x, y, epochs=6, validation_split=0.2, verbose=0, callbacks=[Snap(), es])
    best = min(snapshots, key=lambda s: s[0])[1]
    assert_trees_close(model.variables, best, atol=0, rtol=0)
    assert not list(tmp_path.iterdir())  # no files written


def test_ctrl_c_stops_cleanly_and_keeps_history(tmp_path):
    x, y = data()
    model = model_fn()

    class Interrupt(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    ckpt = ModelCheckpoint(str(tmp_path / "last.npz"))
    history = model.fit(x, y, epochs=10, verbose=0, validation_split=0.2, callbacks=[ckpt, Interrupt()])
    assert history.epoch == [0, 1]
    fresh = model_fn()
    assert fresh.trainer.restore_checkpoint(tmp_path / "last.npz") == 2
    assert_trees_close(fresh.trainer.train_state, model.trainer.train_state, atol=0, rtol=0)
