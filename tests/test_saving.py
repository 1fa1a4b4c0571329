"""Whole-model saving: `model.save("m.keras")` and `load_model`, pickle-free, no code run from the file."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet_lite as jnl
from jaxnet_lite import layers as L
from jaxnet_lite.saving import SavingError, load_model, register_serializable

RNG = np.random.default_rng(3)


def tutorial_mlp():
    model = jnl.Sequential()
    model.add(L.Dense(32, input_shape=(4,), activation="relu"))
    model.add(L.Dense(3, activation="softmax"))
    return model


def tutorial_cnn():
    return jnl.Sequential([L.Conv2D(4, kernel_size=(3, 3), input_shape=(10, 10, 1), activation="relu"),
                           L.MaxPooling2D(pool_size=(2, 2)), L.Flatten(), L.Dropout(0.5),
                           L.Dense(10, activation="softmax")])


def assert_same_predictions(a, b, x):
    for u, v in zip(jnp.atleast_1d(a.predict(x, verbose=0)) if not isinstance(x, list) else a.predict(x, verbose=0),
                    jnp.atleast_1d(b.predict(x, verbose=0)) if not isinstance(x, list) else b.predict(x, verbose=0)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


@pytest.mark.parametrize("build,shape,classes", [(tutorial_mlp, (4,), 3), (tutorial_cnn, (10, 10, 1), 10)])
def test_tutorial_models_round_trip_with_their_optimizer(tmp_path, build, shape, classes):
    x = RNG.normal(size=(32, *shape)).astype(np.float32)
    y = np.eye(classes, dtype=np.float32)[RNG.integers(0, classes, 32)]
    model = build()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert type(loaded) is jnl.Sequential and [type(a) for a in loaded.layers] == [type(a) for a in model.layers]
    assert_same_predictions(model, loaded, x)
    # Compiled with the same loss, metrics and optimizer state: the next epoch is the same epoch.
    assert (loaded.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0).history ==
            model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0).history)


def test_functional_multi_input_model_with_a_shared_layer(tmp_path):
    a, b = jnl.Input((4,), name="a"), jnl.Input((3,), name="b")
    shared = L.Dense(5, activation="tanh", name="shared")
    merged = L.Concatenate()([shared(a), L.Dense(5)(b), shared(L.Dense(4)(a))])
    model = jnl.Model([a, b], [L.Dense(2, activation="softmax", name="out")(merged), L.Dense(1, name="aux")(merged)])
    model.save(tmp_path / "f.keras")
    loaded = load_model(tmp_path / "f.keras", compile=False)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded.input_names() == ["a", "b"] and loaded.output_names() == ["out", "aux"]
    assert_same_predictions(model, loaded, [RNG.normal(size=(6, 4)), RNG.normal(size=(6, 3))])


def test_recurrent_text_model_with_masks_round_trips(tmp_path):
    inputs = jnl.Input((7,), dtype="int32")
    x = L.Embedding(30, 8, mask_zero=True)(inputs)
    seq, h, c = L.LSTM(6, return_sequences=True, return_state=True)(x)
    x = L.Bidirectional(L.GRU(4, reset_after=False), merge_mode="ave")(seq)
    y = L.GRU(4, go_backwards=True)(seq, initial_state=[L.Dense(4)(h)])
    model = jnl.Model(inputs, L.Dense(1, activation="sigmoid")(L.Add()([x, y])))
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    ids = RNG.integers(0, 30, size=(5, 7))
    ids[:, :2] = 0
    model.save(tmp_path / "t.keras", include_optimizer=False)
    loaded = load_model(tmp_path / "t.keras")
    assert_same_predictions(model, loaded, ids)
    assert loaded.get_config()["layers"][2].merge_mode == "ave"


def test_lambda_needs_safe_mode_off_or_custom_objects(tmp_path):
    model = jnl.Sequential([L.Dense(3, input_shape=(2,)), L.Lambda(jnp.tanh)])
    model.save(tmp_path / "l.keras")
    with pytest.raises(SavingError, match=r"refers to the Python function .*tanh.*safe_mode=False"):
        load_model(tmp_path / "l.keras")
    x = RNG.normal(size=(4, 2))
    assert_same_predictions(model, load_model(tmp_path / "l.keras", safe_mode=False), x)
    assert_same_predictions(model, load_model(tmp_path / "l.keras", custom_objects={"tanh": jnp.tanh}), x)
    with pytest.raises(SavingError, match="no importable name"):
        jnl.Sequential([L.Dense(3, input_shape=(2,)), L.Lambda(lambda v: v * 2)]).save(tmp_path / "x.keras")


class Scale(jnl.Layer):
    """A user's own layer: `get_config` comes from its constructor arguments, with no code of its own."""

    def __init__(self, factor: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, params, state, x, *, rng=None, training=False):
        return x * self.factor, state


def test_custom_layers_load_only_when_named(tmp_path):
    model = jnl.Sequential([L.Dense(3, input_shape=(2,)), Scale(3.0, name="scale")])
    model.save(tmp_path / "c.keras")
    with pytest.raises(SavingError, match=r"names class 'Scale'.*custom_objects=\{'Scale': Scale\}"):
        load_model(tmp_path / "c.keras")
    loaded = load_model(tmp_path / "c.keras", custom_objects={"Scale": Scale})
    assert loaded.layers[1].factor == 3.0 and loaded.layers[1].name == "scale"
    assert_same_predictions(model, loaded, RNG.normal(size=(4, 2)))
    register_serializable(Scale)
    assert load_model(tmp_path / "c.keras").layers[1].factor == 3.0


def test_tampered_and_foreign_files_are_refused_without_running_anything(tmp_path):
    model = tutorial_mlp()
    path = tmp_path / "m.keras"
    model.save(path)
    # Rewrite the stored architecture so that it names a function that would run code on import.
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta_key = next(name for name in arrays if "metadata" in name)
    header = json.loads(arrays[meta_key].tobytes())
    assert header["metadata"]["kind"] == "model"
    dense = header["metadata"]["architecture"]["config"]["dict"]["layers"][1]["config"]["dict"]
    dense["activation"] = {"function": "os:system"}
    arrays[meta_key] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    tampered = tmp_path / "tampered.keras"
    with open(tampered, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(SavingError, match=r"os:system.*safe_mode=False"):
        load_model(tampered)
    # A pickle inside the file is refused before anything is unpickled.
    pickled = tmp_path / "pickled.keras"
    arrays["params/evil"] = np.array([object()], dtype=object)
    with open(pickled, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ValueError, match="(?i)pickle|not a jaxnet_lite checkpoint"):
        load_model(pickled)
    # A weights file is not a model file.
    model.save_weights(tmp_path / "w.weights.npz")
    with pytest.raises(SavingError, match="not a model saved by model.save.*load_weights"):
        load_model(tmp_path / "w.weights.npz")
    with pytest.raises(SavingError, match=r"must end in \.keras"):
        model.save(tmp_path / "m.h5")
    with pytest.raises(FileExistsError):
        model.save(path, overwrite=False)


def test_get_config_records_arguments_as_given():
    layer = L.Conv2D(8, (3, 3), strides=2, padding="same", activation="relu", name="c")
    assert layer.get_config() == {"filters": 8, "kernel_size": (3, 3), "strides": 2, "padding": "same",
                                  "activation": "relu", "name": "c"}
    clone = L.Conv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    frozen = L.Dense(2)
    frozen.trainable = False
    assert frozen.get_config()["trainable"] is False
