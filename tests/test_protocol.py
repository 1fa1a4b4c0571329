"""What training asks a model through the layer protocol: the from-logits path for every container kind
(and a user-written one), the CPU loop cost hint, metric directions and the losses' own label checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnet_lite import Input, Layer, Model, Sequential, Trainer, losses
from jaxnet_lite.callbacks import EarlyStopping
from jaxnet_lite.core import split_rng
from jaxnet_lite.layers import (
    Activation,
    Container,
    Conv2D,
    Dense,
    Flatten,
    fan_out,
    parallel,
    residual,
    serial,
)
from jaxnet_lite.training.engine import choose_steps_per_execution
from jaxnet_lite.training.step import Objective

SCALE = 40.0  # logits this large saturate float32 softmax: probabilities hit exactly 0 and 1


class MyStack(Container):
    """A user-written container (not a Serial): its own call, and the one protocol method for logits."""

    def make_variables(self, rng, input_shape):
        params, state = {}, {}
        for (name, layer), key in zip(self.children(), split_rng(rng, len(self.layers))):
            params[name], state[name] = layer.init(key, input_shape)
            input_shape = layer.output_shape(input_shape)
        return params, state

    def call(self, params, state, x, *, rng=None, training=False):
        for name, layer in self.children():
            x, state[name] = layer.apply(params[name], state[name], x, training=training)
        return x, state

    def compute_output_shape(self, input_shape):
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def split_final_activation(self):
        found = self.layers[-1].split_final_activation()
        if found is None:
            return None
        return self.replacing({len(self.layers) - 1: found[0]}), found[1]


def _functional():
    inp = Input((4,))
    return Model(inp, Dense(3, activation="softmax")(Dense(8, activation="relu")(inp)))


CONTAINERS = {
    "dense": lambda: Dense(3, activation="softmax"),
    "activation_layer": lambda: serial(Dense(3), Activation("softmax")),
    "serial": lambda: serial(Dense(8, activation="relu"), Dense(3, activation="softmax")),
    "sequential": lambda: Sequential([Dense(8, activation="relu"), Dense(3, activation="softmax")]),
    "functional": _functional,
    "residual_then_dense": lambda: serial(residual(Dense(4, activation="relu")), Dense(3, activation="softmax")),
    "user_container": lambda: MyStack([Dense(8, activation="relu"), Dense(3, activation="softmax")]),
    "nested": lambda: Sequential([serial(Dense(8), MyStack([Dense(3, activation="softmax")]))]),
}


@pytest.mark.parametrize("kind", sorted(CONTAINERS))
def test_every_container_kind_takes_the_from_logits_path(kind):
    model = CONTAINERS[kind]()
    params, state = model.init(jax.random.key(0), (4,))
    objective = Objective.create(model, "categorical_crossentropy")
    assert objective.from_logits, kind
    x = SCALE * jax.random.normal(jax.random.key(1), (16, 4))
    y = jax.nn.one_hot(jnp.arange(16) % 3, 3)
    logits, _ = objective.apply(params, state, x)
    probs, _ = model.apply(params, state, x)
    np.testing.assert_allclose(jax.nn.softmax(logits), probs, rtol=1e-5, atol=1e-6)  # same params, same model
    expected = optax.softmax_cross_entropy(logits, y)
    np.testing.assert_allclose(objective.per_example_loss(y, logits), expected, rtol=1e-5)
    # the probability path clips at 1e-7: on saturated outputs the exact loss is far larger
    clipped = losses.categorical_crossentropy(y, probs)
    assert float(jnp.max(expected)) > float(jnp.max(clipped)) + 10


def test_parallel_outputs_all_ending_in_softmax_take_the_path_together():
    model = serial(fan_out(2), parallel(Dense(3, activation="softmax"), Dense(3, activation="softmax")))
    params, state = model.init(jax.random.key(0), (4,))
    objective = Objective.create(model, "categorical_crossentropy")
    assert objective.from_logits
    x = jax.random.normal(jax.random.key(1), (5, 4))
    logits, _ = objective.apply(params, state, x)
    probs, _ = model.apply(params, state, x)
    for lg, p in zip(logits, probs):
        np.testing.assert_allclose(jax.nn.softmax(lg), p, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", [
    residual(Dense(4, activation="softmax")),  # softmax(body) + x is not a softmax of anything
    serial(fan_out(2), parallel(Dense(3, activation="softmax"), Dense(3, activation="sigmoid"))),
    Dense(3, activation="relu"),
    serial(Dense(3, activation="softmax"), Dense(3)),
], ids=["residual", "mixed_parallel", "relu", "softmax_not_last"])
def test_outputs_that_do_not_end_in_the_activation_keep_the_model(model):
    assert not Objective.create(model, "categorical_crossentropy").from_logits


def test_a_shared_final_layer_keeps_the_model():
    inp = Input((4,))
    head = Dense(4, activation="softmax")
    model = Model(inp, head(head(inp)))
    assert not Objective.create(model, "categorical_crossentropy").from_logits


def test_user_container_trains_through_the_logits_path():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]
    trainer = Trainer(MyStack([Dense(8, activation="relu"), Dense(3, activation="softmax")]),
                      "categorical_crossentropy", optax.adam(1e-2))
    assert trainer.engine.objective.from_logits
    history = trainer.fit(x, y, batch_size=16, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


class ConvLookalike(Layer):
    """A user layer whose class name starts with "Conv" but which loops fine."""

    def call(self, params, state, x, *, rng=None, training=False):
        return x, state


class SlowUserLayer(ConvLookalike):
    slow_in_cpu_loops = True


def test_the_cpu_loop_choice_asks_the_layers_not_their_class_names():
    assert choose_steps_per_execution(serial(ConvLookalike(), Dense(2)), 100, backend="cpu") == 64
    assert choose_steps_per_execution(MyStack([Dense(2), SlowUserLayer()]), 100, backend="cpu") == 1
    assert choose_steps_per_execution(Sequential([Conv2D(2, 3), Flatten(), Dense(2)]), 100, backend="cpu") == 1
    assert choose_steps_per_execution(MyStack([Dense(2), SlowUserLayer()]), 100, backend="gpu") == 64


def _fit_with_early_stopping(metric, monitor, mode="auto"):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 32)]
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=[metric])
    stop = EarlyStopping(monitor=monitor, patience=50, mode=mode)
    model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y), callbacks=[stop])
    return stop


def test_metrics_carry_their_direction_to_the_callbacks():
    assert _fit_with_early_stopping("accuracy", "val_accuracy").monitor_op is np.greater
    assert _fit_with_early_stopping("mae", "val_mae").monitor_op is np.less

    def hit_rate(y_true, y_pred):
        return (jnp.argmax(y_true, -1) == jnp.argmax(y_pred, -1)).astype(jnp.float32)

    hit_rate.direction = "up"
    assert _fit_with_early_stopping(hit_rate, "val_hit_rate").monitor_op is np.greater

    def unknown(y_true, y_pred):
        return jnp.zeros(y_true.shape[0])

    with pytest.raises(ValueError, match="cannot tell whether it should be maximized or minimized"):
        _fit_with_early_stopping(unknown, "val_unknown")
    assert _fit_with_early_stopping(unknown, "val_unknown", mode="max").monitor_op is np.greater


@pytest.mark.parametrize("loss, out_shape, labels, message", [
    ("sparse_categorical_crossentropy", (3,), np.array([0, 3]), r"labels from 0 to 3.*3 classes"),
    ("sparse_categorical_crossentropy", (3,), np.zeros((2, 3)), r"expects integer labels of shape \(batch,\)"),
    ("categorical_crossentropy", (3,), np.zeros((2, 4)), r"one-hot width"),
    ("binary_crossentropy", (1,), np.zeros((2, 2)), r"expects y of shape \(batch, 1\)"),
    ("mse", (2,), np.zeros((2, 3)), r"mean_squared_error expects y of shape \(batch, 2\)"),
])
def test_losses_check_their_own_labels(loss, out_shape, labels, message):
    with pytest.raises(ValueError, match=message):
        losses.get(loss).check_labels(out_shape, labels, where="fit")


def test_label_checks_accept_good_labels_and_custom_losses_accept_any():
    losses.get("sparse_categorical_crossentropy").check_labels((3,), np.array([0, 2, 1]))
    losses.get("mse").check_labels((1,), np.zeros((4,)))
    losses.get(lambda y_true, y_pred: jnp.zeros(y_true.shape[0])).check_labels((3,), np.zeros((2, 7)))
