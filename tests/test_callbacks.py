"""Keras callbacks driven by scripted metric sequences and fake models.

The expected epochs were worked out by hand from Keras 3's `keras/src/callbacks/early_stopping.py` and
`reduce_lr_on_plateau.py`: at each epoch end EarlyStopping increments `wait`, then an improvement
(`current - min_delta < best` in "min" mode, `current - min_delta > best` in "max") stores `best` and
resets `wait` only when the baseline is also beaten; otherwise it stops once `wait >= patience` and
`epoch > 0`. Values are dyadic fractions (0.5, 0.25, ...) so that the `min_delta` comparisons are exact.
"""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

from jaxnet_lite.callbacks import (
    Callback,
    CallbackList,
    CSVLogger,
    EarlyStopping,
    History,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)


# -- fakes -------------------------------------------------------------------------------------------
class FakeTrainer:
    """Exposes `learning_rate` as a property (like `Trainer`) and records checkpoints and lr writes."""

    def __init__(self, lr: float = 1.0) -> None:
        self._lr = lr
        self.lr_writes: list[float] = []
        self.checkpoints: list[tuple[str, int | None]] = []

    @property
    def learning_rate(self) -> float:
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._lr = float(value)
        self.lr_writes.append(float(value))

    def save_checkpoint(self, path, epoch=None):
        self.checkpoints.append((path, epoch))


class FakeModel:
    """What a callback sees as `self.model`: weights tagged with the epoch that produced them."""

    def __init__(self, lr: float = 1.0) -> None:
        self.stop_training = False
        self.weights = [np.zeros(2), np.zeros(())]
        self.restored: list[list[np.ndarray]] = []
        self.get_calls = 0
        self.saved: list[str] = []
        self.trainer = FakeTrainer(lr)

    def get_weights(self):
        self.get_calls += 1
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.restored.append([np.array(w) for w in weights])
        self.weights = [np.array(w) for w in weights]

    def save_weights(self, path):
        self.saved.append(path)


def run_early_stopping(values, monitor="val_loss", model=None, callback=None, **kwargs):
    """Feed `values` as epoch-end logs until the callback stops; returns (stop epoch or None, model, cb)."""
    model = model or FakeModel()
    cb = callback or EarlyStopping(monitor=monitor, **kwargs)
    cb.set_model(model)
    model.stop_training = False
    cb.on_train_begin()
    stopped = None
    for epoch, value in enumerate(values):
        model.weights = [np.full(2, float(epoch)), np.array(float(epoch))]  # "training" changes the weights
        logs = {} if value is None else {monitor: value}
        cb.on_epoch_end(epoch, logs)
        if model.stop_training:
            stopped = epoch
            break
    cb.on_train_end()
    return stopped, model, cb


def restored_epoch(model):
    assert len(model.restored) == 1, f"expected exactly one set_weights call, got {len(model.restored)}"
    weights = model.restored[0]
    epoch = float(weights[1])
    np.testing.assert_array_equal(weights[0], np.full(2, epoch))
    return int(epoch)


# -- EarlyStopping: patience -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "patience, values, expected",
    [
        (0, [1.0, 0.5, 0.5, 0.25], 2),           # first non-improvement stops
        (0, [1.0, 0.5, 0.25, 0.125], None),      # always improving
        (1, [1.0, 0.5, 0.5, 0.25, 0.25], 2),     # wait is incremented before the check: 1 >= 1
        (2, [1.0, 0.5, 0.5, 0.25, 0.5, 0.5, 0.5], 5),  # the improvement at 3 resets the count
        (2, [1.0, 0.5, 0.75, 0.625, 0.5], 3),    # 0.625 < 0.75 but not < best 0.5: no improvement
        (3, [1.0, 1.0, 1.0, 1.0, 1.0], 3),       # Keras' doc example: patience=3 runs 4 epochs
    ],
)
def test_early_stopping_patience(patience, values, expected):
    stopped, model, cb = run_early_stopping(values, patience=patience)
    assert stopped == expected
    assert cb.stopped_epoch == (expected or 0)
    assert model.stop_training is (expected is not None)


def test_early_stopping_never_stops_at_epoch_zero():
    # NaN (or inf) is never an improvement over the initial best of +inf; with patience 0 the wait is
    # exceeded at once, but Keras only stops when epoch > 0.
    stopped, _, cb = run_early_stopping([float("nan"), float("nan")], patience=0)
    assert stopped == 1 and cb.stopped_epoch == 1
    stopped, model, _ = run_early_stopping([float("inf")], patience=0)
    assert stopped is None and model.stop_training is False


# -- EarlyStopping: min_delta ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "min_delta, patience, values, expected",
    [
        (0.25, 1, [1.0, 0.75, 0.5], 1),                 # a drop of exactly min_delta is no improvement
        (0.25, 2, [1.0, 0.75, 0.5, 0.5, 0.5], 4),       # 0.5 beats best 1.0 by more than 0.25 at epoch 2
        (0.25, 2, [1.0, 0.875, 0.75, 0.625], 2),        # best stays 1.0: small steps never count
        (-0.25, 2, [1.0, 0.875, 0.75, 0.625], 2),       # the sign of min_delta is ignored
        (0.0, 1, [1.0, 0.875, 0.75, 0.625], None),      # without min_delta every drop counts
        (0.125, 1, [1.0, 0.75, 0.5, 0.25], None),       # drops of 0.25 > 0.125 all count
    ],
)
def test_early_stopping_min_delta_min_mode(min_delta, patience, values, expected):
    stopped, _, _ = run_early_stopping(values, patience=patience, min_delta=min_delta)
    assert stopped == expected


@pytest.mark.parametrize(
    "min_delta, values, expected",
    [
        (0.25, [0.25, 0.5, 0.75], 1),       # a rise of exactly min_delta is no improvement
        (0.25, [0.25, 0.625, 1.0], None),   # rises of 0.375 count
        (0.0, [0.25, 0.5, 0.5], 2),
        (0.0, [0.5, 0.25], 1),              # lower is worse in max mode
    ],
)
def test_early_stopping_min_delta_max_mode(min_delta, values, expected):
    stopped, _, _ = run_early_stopping(values, monitor="val_auc_like", mode="max", patience=0,
                                       min_delta=min_delta)
    assert stopped == expected


def test_early_stopping_tutorial_case():
    # EarlyStopping(min_delta=0.0005, patience=2) on val_loss, as in the MNIST tutorial
    values = [0.30, 0.25, 0.2494, 0.2492, 0.2491, 0.2490]
    # 0: first value; 1: drop 0.05; 2: drop 0.0006 > 0.0005 (best 0.2494); 3: drop 0.0002 (wait 1);
    # 4: drop 0.0003 from best (wait 2) -> stop at epoch 4
    stopped, _, cb = run_early_stopping(values, min_delta=0.0005, patience=2)
    assert stopped == 4
    assert cb.best == pytest.approx(0.2494)
    assert cb.wait == 2


# -- EarlyStopping: mode --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "monitor, values, expected",
    [
        ("val_loss", [1.0, 0.5, 0.75], 2),
        ("loss", [1.0, 0.5, 0.75], 2),
        ("val_accuracy", [0.5, 0.75, 0.625], 2),
        ("accuracy", [0.5, 0.25], 1),
        ("val_sparse_categorical_accuracy", [0.5, 0.75, 0.625], 2),
        ("val_binary_accuracy", [0.5, 0.75, 1.0], None),
        ("val_mse", [1.0, 0.5, 0.75], 2),
        ("val_mae", [1.0, 0.5, 0.25], None),
    ],
)
def test_early_stopping_auto_mode(monitor, values, expected):
    stopped, _, _ = run_early_stopping(values, monitor=monitor, patience=0)
    assert stopped == expected


def test_early_stopping_explicit_mode_overrides_the_name():
    # mode="max" on a loss: a rising loss is an improvement
    assert run_early_stopping([1.0, 2.0, 3.0], monitor="val_loss", mode="max")[0] is None
    assert run_early_stopping([1.0, 2.0, 1.5], monitor="val_loss", mode="max")[0] == 2
    # mode="min" on an accuracy
    assert run_early_stopping([0.5, 0.25, 0.5], monitor="val_accuracy", mode="min")[0] == 2


def test_early_stopping_auto_mode_unknown_metric_raises():
    cb = EarlyStopping(monitor="val_f1ish", patience=1)
    cb.set_model(FakeModel())
    cb.on_train_begin()
    with pytest.raises(ValueError, match="val_f1ish"):
        cb.on_epoch_end(0, {"val_f1ish": 0.5})


def test_early_stopping_unknown_mode_warns_and_falls_back_to_auto():
    with pytest.warns(UserWarning, match="unknown"):
        cb = EarlyStopping(monitor="val_accuracy", mode="bigger", patience=0)
    assert cb.mode == "auto"
    assert run_early_stopping([0.5, 0.75, 0.5], monitor="val_accuracy", callback=cb)[0] == 2


# -- EarlyStopping: baseline ---------------------------------------------------------------------------
def test_early_stopping_baseline_keeps_counting_until_beaten():
    # Without a baseline, constant values stop at epoch patience (2) ...
    assert run_early_stopping([1.0, 1.0, 1.0, 1.0], patience=2)[0] == 2
    # ... with a baseline of 0.5 the first epoch does not reset the wait, so it stops one epoch earlier.
    assert run_early_stopping([1.0, 1.0, 1.0, 1.0], patience=2, baseline=0.5)[0] == 1
    # Improvements that do not beat the baseline never reset the wait: 0.75 improves (no stop check),
    # then 0.75 again is the third epoch without beating the baseline.
    assert run_early_stopping([1.0, 0.75, 0.75], patience=2, baseline=0.5)[0] == 2
    assert run_early_stopping([1.0, 0.75, 0.75, 0.75], patience=2)[0] == 3


def test_early_stopping_baseline_reset_once_beaten():
    # 1.0, 0.75, 0.625 improve but miss the baseline (wait 1, 2, 3, no stop since each improves);
    # 0.375 beats it (wait 0); then two epochs without improvement stop at epoch 5.
    values = [1.0, 0.75, 0.625, 0.375, 0.5, 0.5, 0.5]
    stopped, _, cb = run_early_stopping(values, patience=2, baseline=0.5)
    assert stopped == 5
    assert cb.best == 0.375


def test_early_stopping_baseline_max_mode():
    # accuracy must exceed 0.75; it never does, so the run ends after `patience` epochs
    stopped, _, _ = run_early_stopping([0.5, 0.625, 0.6875, 0.625], monitor="val_accuracy", patience=3,
                                       baseline=0.75)
    assert stopped == 3  # epochs 0, 1, 2 improve (no stop check) but the wait reaches 4 at epoch 3
    assert run_early_stopping([0.5, 0.875, 0.875, 0.875, 0.875], monitor="val_accuracy", patience=3,
                              baseline=0.75)[0] == 4


# -- EarlyStopping: restore_best_weights ----------------------------------------------------------
def test_restore_best_weights_after_early_stop():
    stopped, model, cb = run_early_stopping([1.0, 0.5, 0.75, 0.875], patience=2, restore_best_weights=True)
    assert stopped == 3
    assert restored_epoch(model) == 1
    assert cb.best_epoch == 1


def test_restore_best_weights_without_early_stop():
    stopped, model, _ = run_early_stopping([1.0, 0.25, 0.5, 0.75], patience=10, restore_best_weights=True)
    assert stopped is None
    assert restored_epoch(model) == 1


def test_no_restore_without_the_flag():
    _, model, _ = run_early_stopping([1.0, 0.25, 0.5, 0.75], patience=1)
    assert model.restored == []
    assert model.get_calls == 0


def test_restore_first_epoch_weights_when_nothing_improves():
    # The first monitored value is always an improvement (Keras 3 starts from best=None), even NaN; no later
    # NaN beats it, and the first epoch with a monitor value stores its weights.
    stopped, model, cb = run_early_stopping([float("nan"), float("nan"), float("nan")], patience=1,
                                            restore_best_weights=True)
    assert stopped == 1
    assert restored_epoch(model) == 0
    assert cb.best_epoch == 0


def test_restore_first_weights_skip_epochs_without_the_monitor():
    with pytest.warns(UserWarning, match="val_loss"):
        stopped, model, _ = run_early_stopping([None, float("nan"), float("nan")], patience=2,
                                               restore_best_weights=True)
    assert stopped is None  # epoch 1 is the first monitored one (an improvement), epoch 2 waits once
    assert restored_epoch(model) == 1


def test_restore_best_weights_with_unbeaten_baseline():
    # Keras: "If no epoch improves on baseline, training will run for patience epochs and restore weights
    # from the best epoch in that set."
    stopped, model, _ = run_early_stopping([1.0, 0.75, 0.875, 0.9375], patience=3, baseline=0.5,
                                           restore_best_weights=True)
    assert stopped == 2
    assert restored_epoch(model) == 1


# -- EarlyStopping: start_from_epoch, missing monitor, reuse ----------------------------------------
def test_start_from_epoch_ignores_the_warm_up():
    assert run_early_stopping([1.0, 2.0, 3.0, 4.0], patience=0)[0] == 1
    stopped, _, cb = run_early_stopping([1.0, 2.0, 3.0, 4.0], patience=0, start_from_epoch=2)
    assert stopped == 3
    assert cb.best == 3.0


def test_start_from_epoch_restores_only_monitored_epochs():
    stopped, model, _ = run_early_stopping([0.125, 0.25, 1.0, 2.0, 3.0], patience=1, start_from_epoch=2,
                                           restore_best_weights=True)
    assert stopped == 3
    assert restored_epoch(model) == 2


def test_missing_monitor_warns_and_does_nothing():
    model = FakeModel()
    cb = EarlyStopping(monitor="val_loss", patience=0, restore_best_weights=True)
    cb.set_model(model)
    cb.on_train_begin()
    for epoch in range(3):
        with pytest.warns(UserWarning, match="val_loss") as rec:
            cb.on_epoch_end(epoch, {"loss": 1.0 + epoch, "accuracy": 0.5})
        assert "loss,accuracy" in str(rec[0].message)  # it lists what is available
    cb.on_train_end()
    assert model.stop_training is False
    assert cb.wait == 0 and cb.stopped_epoch == 0
    assert model.get_calls == 0 and model.restored == []


def test_early_stopping_reuse_starts_afresh():
    cb = EarlyStopping(patience=1)
    first, _, _ = run_early_stopping([0.5, 0.25], callback=cb)
    assert first is None and cb.best == 0.25
    # Keras 3's on_train_begin resets `best` too: 1.0 is the new fit's first value, hence its best
    second, model, _ = run_early_stopping([1.0, 1.0], callback=cb)
    assert second == 1
    assert cb.stopped_epoch == 1 and cb.best == 1.0


# -- History, LambdaCallback, CallbackList, TerminateOnNaN ----------------------------------------------
def test_history_records_logs_and_epochs():
    h = History()
    h.set_model(FakeModel())
    h.on_train_begin()
    h.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.5})
    h.on_epoch_end(1, {"loss": 0.5, "val_loss": 1.25})
    h.on_epoch_end(2, {"loss": 0.25, "val_loss": 1.0, "learning_rate": 0.1})
    assert h.epoch == [0, 1, 2]
    assert h.history["loss"] == [1.0, 0.5, 0.25]
    assert h.history["val_loss"] == [1.5, 1.25, 1.0]
    assert h.history["learning_rate"] == [0.1]
    # resumed training (initial_epoch=5) records the real epoch numbers
    h.on_train_begin()
    h.on_epoch_end(5, {"loss": 0.125})
    assert h.epoch == [5]


def test_lambda_callback_hooks_are_called():
    calls = []
    cb = LambdaCallback(
        on_train_begin=lambda logs: calls.append(("train_begin", logs)),
        on_epoch_begin=lambda epoch, logs: calls.append(("epoch_begin", epoch)),
        on_epoch_end=lambda epoch, logs: calls.append(("epoch_end", epoch, dict(logs))),
        on_train_batch_end=lambda batch, logs: calls.append(("batch_end", batch)),
        on_train_end=lambda logs: calls.append(("train_end", logs)),
    )
    assert cb.wants_batch_hooks() is True
    cbs = CallbackList([cb])
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    cbs.on_train_batch_end(0, {"loss": 2.0})
    cbs.on_train_batch_end(1, {"loss": 1.0})
    cbs.on_epoch_end(0, {"loss": 1.5})
    cbs.on_train_end({"loss": 1.5})
    assert calls == [("train_begin", None), ("epoch_begin", 0), ("batch_end", 0), ("batch_end", 1),
                     ("epoch_end", 0, {"loss": 1.5}), ("train_end", {"loss": 1.5})]
    # without batch hooks the trainer need not sync per batch
    assert LambdaCallback(on_epoch_end=lambda e, logs: None).wants_batch_hooks() is False
    assert cbs.wants_batch_hooks() is True


def test_callback_list_order_and_type_check():
    order = []

    class Tagged(Callback):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag

        def on_epoch_end(self, epoch, logs=None):
            order.append((self.tag, epoch))

    model = FakeModel()
    cbs = CallbackList([Tagged("a"), Tagged("b")])
    cbs.set_model(model)
    cbs.set_params({"epochs": 3})
    assert all(cb.model is model and cb.params == {"epochs": 3} for cb in cbs.callbacks)
    cbs.on_epoch_end(4)
    assert order == [("a", 4), ("b", 4)]
    assert cbs.wants_batch_hooks() is False
    with pytest.raises(TypeError, match="Callback"):
        CallbackList([lambda epoch, logs: None])


def test_batch_hook_detection_on_subclasses():
    class PerBatch(Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    assert PerBatch().wants_batch_hooks() is True
    assert EarlyStopping().wants_batch_hooks() is False
    assert Callback().wants_batch_hooks() is False


@pytest.mark.parametrize("loss, stops", [(float("nan"), True), (float("inf"), True), (-float("inf"), True),
                                         (1.0, False), (None, False)])
def test_terminate_on_nan(loss, stops, capsys):
    model = FakeModel()
    cb = TerminateOnNaN()
    cb.set_model(model)
    cb.on_epoch_end(3, {} if loss is None else {"loss": loss})
    assert model.stop_training is stops
    if stops:
        assert "Epoch 4" in capsys.readouterr().out


# -- CSVLogger -------------------------------------------------------------------------------------
def _read_rows(path, sep=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=sep))


def test_csv_logger_writes_header_and_rows(tmp_path):
    path = tmp_path / "log.csv"
    cb = CSVLogger(path)
    cb.set_model(FakeModel())
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 0.5, "accuracy": 0.25, "val_loss": 0.75})
    cb.on_epoch_end(1, {"loss": 0.25, "accuracy": 0.5, "val_loss": 0.625})
    cb.on_train_end()
    rows = _read_rows(path)
    assert rows[0] == ["epoch", "accuracy", "loss", "val_loss"]  # Keras sorts the keys
    assert [float(v) for v in rows[1]] == [0, 0.25, 0.5, 0.75]
    assert [float(v) for v in rows[2]] == [1, 0.5, 0.25, 0.625]
    assert len(rows) == 3


def test_csv_logger_missing_values_and_separator(tmp_path):
    path = tmp_path / "log.tsv"
    cb = CSVLogger(str(path), separator="\t")
    cb.set_model(FakeModel())
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 0.5, "val_loss": 1.0})
    cb.on_epoch_end(1, {"loss": 0.25})
    cb.on_train_end()
    rows = _read_rows(path, "\t")
    assert rows == [["epoch", "loss", "val_loss"], ["0", "0.5", "1.0"], ["1", "0.25", "NA"]]


def test_csv_logger_append_and_overwrite(tmp_path):
    path = tmp_path / "log.csv"

    def train(append, epochs, start=0):
        cb = CSVLogger(path, append=append)
        cb.set_model(FakeModel())
        cb.on_train_begin()
        for e in range(start, start + epochs):
            cb.on_epoch_end(e, {"loss": 1.0 / (e + 1)})
        cb.on_train_end()

    train(append=False, epochs=2)
    train(append=True, epochs=2, start=2)  # resumed run: no second header
    rows = _read_rows(path)
    assert rows[0] == ["epoch", "loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2", "3"]
    assert sum(r == ["epoch", "loss"] for r in rows) == 1
    train(append=False, epochs=1)  # overwrite
    assert _read_rows(path) == [["epoch", "loss"], ["0", "1.0"]]
    # append to a file that does not exist yet writes the header
    other = tmp_path / "new.csv"
    cb = CSVLogger(other, append=True)
    cb.set_model(FakeModel())
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 0.5})
    cb.on_train_end()
    assert _read_rows(other) == [["epoch", "loss"], ["0", "0.5"]]


# -- ReduceLROnPlateau -------------------------------------------------------------------------------
def run_plateau(values, lr=1.0, monitor="val_loss", **kwargs):
    model = FakeModel(lr)
    cb = ReduceLROnPlateau(monitor=monitor, **kwargs)
    cb.set_model(model)
    cb.on_train_begin()
    lrs, logged = [], []
    for epoch, v in enumerate(values):
        logs = {monitor: v}
        cb.on_epoch_end(epoch, logs)
        logged.append(logs["learning_rate"])
        lrs.append(model.trainer.learning_rate)
    return lrs, logged, model


def test_reduce_lr_after_patience():
    lrs, logged, _ = run_plateau([1.0] * 6, factor=0.5, patience=2)
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    # logs carry the learning rate in effect during the epoch (before any reduction)
    assert logged == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]


def test_reduce_lr_improvements_reset_the_wait():
    lrs, _, model = run_plateau([1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.25], factor=0.5, patience=2)
    assert lrs == [1.0] * 6 + [0.5]
    assert model.trainer.lr_writes == [0.5]


def test_reduce_lr_min_delta():
    # improvements must beat best - min_delta: 0.875 is not < 1.0 - 0.25
    lrs, _, _ = run_plateau([1.0, 0.875, 0.5, 0.5], factor=0.5, patience=1, min_delta=0.25)
    assert lrs == [1.0, 0.5, 0.5, 0.25]


def test_reduce_lr_cooldown():
    lrs, _, _ = run_plateau([1.0] * 9, factor=0.5, patience=2, cooldown=2)
    # reduce at 2; epochs 3 and 4 are cooldown (wait frozen at 0 then restarts at 4); reduce at 5 and 8
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]


def test_reduce_lr_min_lr():
    lrs, _, model = run_plateau([1.0] * 6, factor=0.5, patience=1, min_lr=0.3)
    assert lrs == [1.0, 0.5, 0.3, 0.3, 0.3, 0.3]
    assert model.trainer.lr_writes == [0.5, 0.3]  # nothing is written once at min_lr


def test_reduce_lr_max_mode_for_accuracy():
    lrs, _, _ = run_plateau([0.5, 0.75, 0.75, 0.875, 0.5], monitor="val_accuracy", factor=0.5, patience=1)
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25]
    # explicit mode="min" on an accuracy inverts it
    lrs, _, _ = run_plateau([0.5, 0.75], monitor="val_accuracy", mode="min", factor=0.5, patience=1)
    assert lrs == [1.0, 0.5]


def test_reduce_lr_missing_monitor_warns():
    model = FakeModel(1.0)
    cb = ReduceLROnPlateau(factor=0.5, patience=0)
    cb.set_model(model)
    cb.on_train_begin()
    logs = {"loss": 1.0}
    with pytest.warns(UserWarning, match="val_loss"):
        cb.on_epoch_end(0, logs)
    assert model.trainer.learning_rate == 1.0 and model.trainer.lr_writes == []
    assert logs["learning_rate"] == 1.0


def test_reduce_lr_rejects_factor_at_least_one():
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=1.0)


def test_reduce_lr_on_a_real_trainer():
    import jaxnet_lite as jl
    from jaxnet_lite.layers import Dense

    trainer = jl.Trainer(jl.Sequential([Dense(1, input_shape=(2,))]), "mse", optimizer="adam")
    model = FakeModel()
    model.trainer = trainer
    cb = ReduceLROnPlateau(factor=0.5, patience=1, min_lr=1e-4)
    cb.set_model(model)
    cb.on_train_begin()
    for epoch in range(3):
        cb.on_epoch_end(epoch, {"val_loss": 1.0})
    assert trainer.learning_rate == pytest.approx(1e-3 * 0.25, rel=1e-6)


# -- LearningRateScheduler ---------------------------------------------------------------------------
def test_learning_rate_scheduler_sets_lr_at_epoch_begin():
    model = FakeModel(lr=0.5)
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return lr if epoch < 2 else lr * 0.5

    cb = LearningRateScheduler(schedule)
    cb.set_model(model)
    cb.on_train_begin()
    logged = []
    for epoch in range(4):
        cb.on_epoch_begin(epoch)
        logs = {"loss": 1.0}
        cb.on_epoch_end(epoch, logs)
        logged.append(logs["learning_rate"])
    assert seen == [(0, 0.5), (1, 0.5), (2, 0.5), (3, 0.25)]
    assert logged == [0.5, 0.5, 0.25, 0.125]
    assert model.trainer.lr_writes == [0.5, 0.5, 0.25, 0.125]


def test_learning_rate_scheduler_schedule_may_ignore_the_current_lr():
    model = FakeModel(lr=1.0)
    cb = LearningRateScheduler(lambda epoch, lr: 0.1 * (epoch + 1))
    cb.set_model(model)
    cb.on_epoch_begin(4)
    assert model.trainer.learning_rate == pytest.approx(0.5)


def test_learning_rate_scheduler_rejects_nan():
    model = FakeModel()
    cb = LearningRateScheduler(lambda epoch, lr: float("nan"))
    cb.set_model(model)
    with pytest.raises(ValueError):
        cb.on_epoch_begin(0)


# -- ModelCheckpoint ---------------------------------------------------------------------------------
def test_model_checkpoint_formats_epoch_and_metrics(tmp_path):
    model = FakeModel()
    pattern = str(tmp_path / "w.{epoch:02d}-{val_loss:.2f}.weights.h5")
    cb = ModelCheckpoint(pattern, save_weights_only=True)
    cb.set_model(model)
    cb.on_epoch_end(0, {"val_loss": 0.5, "loss": 1.0})
    cb.on_epoch_end(9, {"val_loss": 0.25, "loss": 0.75})
    assert model.saved == [str(tmp_path / "w.01-0.50.weights.h5"), str(tmp_path / "w.10-0.25.weights.h5")]
    assert model.trainer.checkpoints == []


def test_model_checkpoint_save_best_only_min(tmp_path):
    model = FakeModel()
    cb = ModelCheckpoint(str(tmp_path / "best-{epoch}"), save_best_only=True, save_weights_only=True)
    cb.set_model(model)
    for epoch, v in enumerate([0.5, 0.75, 0.25, 0.25, 0.125]):
        cb.on_epoch_end(epoch, {"val_loss": v})
    # equal values are not an improvement
    assert model.saved == [str(tmp_path / f"best-{e}") for e in (1, 3, 5)]
    assert cb.best == 0.125


def test_model_checkpoint_save_best_only_max_and_threshold(tmp_path):
    model = FakeModel()
    cb = ModelCheckpoint(str(tmp_path / "{epoch}"), monitor="val_accuracy", save_best_only=True,
                         save_weights_only=True, initial_value_threshold=0.6)
    cb.set_model(model)
    for epoch, v in enumerate([0.5, 0.625, 0.5, 0.75, 0.75]):
        cb.on_epoch_end(epoch, {"val_accuracy": v})
    assert model.saved == [str(tmp_path / "2"), str(tmp_path / "4")]


def test_model_checkpoint_full_state_uses_trainer(tmp_path):
    model = FakeModel()
    cb = ModelCheckpoint(str(tmp_path / "ckpt-{epoch:03d}"))
    cb.set_model(model)
    cb.on_epoch_end(0, {"val_loss": 1.0})
    cb.on_epoch_end(1, {"val_loss": 2.0})
    assert model.trainer.checkpoints == [(str(tmp_path / "ckpt-001"), 1), (str(tmp_path / "ckpt-002"), 2)]
    assert model.saved == []


def test_model_checkpoint_missing_monitor_and_bad_keys(tmp_path):
    model = FakeModel()
    cb = ModelCheckpoint(str(tmp_path / "{epoch}"), save_best_only=True, save_weights_only=True)
    cb.set_model(model)
    with pytest.warns(UserWarning, match="val_loss"):
        cb.on_epoch_end(0, {"loss": 1.0})
    assert model.saved == [str(tmp_path / "1")]  # Keras warns and saves anyway
    bad = ModelCheckpoint(str(tmp_path / "{val_auc}"), save_weights_only=True)
    bad.set_model(model)
    with pytest.raises(KeyError, match="val_auc"):
        bad.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(ValueError):
        ModelCheckpoint(str(tmp_path / "x"), save_freq=100)


def test_model_checkpoint_does_not_mutate_logs(tmp_path):
    model = FakeModel()
    cb = ModelCheckpoint(str(tmp_path / "{epoch}"), save_weights_only=True)
    cb.set_model(model)
    logs = {"val_loss": 1.0}
    cb.on_epoch_end(0, logs)
    assert logs == {"val_loss": 1.0}


def test_no_warnings_on_a_normal_early_stopping_run():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stopped, _, _ = run_early_stopping([1.0, 0.5, 0.5], patience=0)
    assert stopped == 2
