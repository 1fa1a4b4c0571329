"""Trainer / compile / fit: correctness of the compiled paths, reproducibility, errors, streaming."""

import io
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnet_lite as jnl
from jaxnet_lite import Input, Model, Sequential, Trainer, TrainState, make_train_step
from jaxnet_lite.callbacks import Callback, EarlyStopping
from jaxnet_lite.datasets import iris
from jaxnet_lite.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from jaxnet_lite.testing import assert_trees_close
from jaxnet_lite.training.trainer import choose_steps_per_execution
from jaxnet_lite.utils import to_categorical


def iris_data():
    (x, y), (xt, yt) = iris.load_data()
    return x, to_categorical(y, 3), xt, to_categorical(yt, 3)


def mlp(dropout=0.0):
    layers = [Dense(32, input_shape=(4,), activation="relu"), Dense(32, activation="relu")]
    if dropout:
        layers.append(Dropout(dropout))
    return Sequential([*layers, Dense(3, activation="softmax")])


def test_iris_mlp_learns_with_compile_fit_evaluate():
    x, y, xt, yt = iris_data()
    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=60, validation_split=0.1, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epoch == list(range(60))
    assert history.history["loss"][-1] < history.history["loss"][0] / 3
    loss, acc = model.evaluate(xt, yt, verbose=0)
    assert acc >= 0.9
    as_dict = model.evaluate(xt, yt, verbose=0, return_dict=True)
    assert as_dict == {"accuracy": acc, "loss": loss}
    probs = model.predict(xt, verbose=0)
    assert probs.shape == (30, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert np.mean(probs.argmax(1) == yt.argmax(1)) == pytest.approx(acc)


def test_evaluate_matches_numpy_over_a_short_last_batch():
    x, y, xt, yt = iris_data()
    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    loss, acc = model.evaluate(xt, yt, batch_size=7, verbose=0)  # 30 = 4*7 + 2: a padded, masked last batch
    probs = np.asarray(model.predict(xt, batch_size=11, verbose=0), np.float64)
    ref_loss = -np.mean(np.sum(yt * np.log(np.clip(probs, 1e-7, 1 - 1e-7)), axis=1))
    assert loss == pytest.approx(ref_loss, rel=1e-4)
    assert acc == pytest.approx(np.mean(probs.argmax(1) == yt.argmax(1)))


@pytest.mark.parametrize("batch_size", [1, 7, 30, 64])
def test_predict_matches_apply_for_every_batching(batch_size):
    """Batches cut on the device, a padded last batch, NumPy or JAX input: the same rows as one `apply`."""
    _, _, xt, _ = iris_data()
    model = mlp()
    params, state = model.variables
    expected = np.asarray(model.apply(params, state, jnp.asarray(xt))[0])
    for x in (xt, jnp.asarray(xt)):
        got = model.predict(x, batch_size=batch_size, verbose=0)
        assert isinstance(got, np.ndarray) and got.shape == (30, 3)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_predict_refuses_empty_input_clearly():
    with pytest.raises(ValueError, match=r"predict: x holds no examples \(shapes \[\(0, 4\)\]\)"):
        mlp().predict(np.zeros((0, 4), np.float32), verbose=0)


def test_predict_multi_input_multi_output_graph():
    a, b = Input((3,), name="a"), Input((5,), name="b")
    merged = jnl.layers.Concatenate()([Dense(4, activation="tanh")(a), b])
    model = Model(inputs=[a, b], outputs=[Dense(2)(merged), Dense(1)(merged)])
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(9, 3)).astype(np.float32), rng.normal(size=(9, 5)).astype(np.float32)
    params, state = model.variables
    ref1, ref2 = model.apply(params, state, [jnp.asarray(xa), jnp.asarray(xb)])[0]
    out1, out2 = model.predict({"a": xa, "b": xb}, batch_size=4, verbose=0)  # 9 = 2 * 4 + 1
    assert out1.shape == (9, 2) and out2.shape == (9, 1)
    np.testing.assert_allclose(out1, np.asarray(ref1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out2, np.asarray(ref2), rtol=1e-5, atol=1e-6)


def test_fit_is_reproducible_and_seed_matters():
    x, y, _, _ = iris_data()

    def run(seed):
        model = mlp(dropout=0.3)
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"], seed=seed)
        h = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
        return h.history, model.variables

    h1, v1 = run(0)
    h2, v2 = run(0)
    h3, _ = run(1)
    assert h1 == h2
    assert_trees_close(v1, v2, atol=0, rtol=0)
    assert h1 != h3


@pytest.mark.parametrize("model_fn,shape", [(lambda: mlp(dropout=0.2), (4,)), (None, (8, 8, 1))])
def test_fast_path_matches_step_by_step(model_fn, shape):
    """The chunked on-device epoch equals one `make_train_step` call per batch in a Python loop."""
    if model_fn is None:
        model_fn = lambda: Sequential([Conv2D(4, 3, activation="relu"), MaxPooling2D(), Flatten(),  # noqa: E731
                                       Dropout(0.3), Dense(3, activation="softmax")])
    rng = np.random.default_rng(0)
    n, batch = 50, 8  # 7 batches, the last one short
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    y = to_categorical(rng.integers(0, 3, n), 3)
    results = {}
    for k in (1, 4, "auto"):
        model = model_fn()
        trainer = Trainer(model, "categorical_crossentropy", optax.adam(1e-2), metrics=["accuracy"],
                          seed=3, steps_per_execution=k)
        trainer.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        results[k] = trainer.train_state
    # Reference: the public pure step, one batch at a time.
    model = model_fn()
    ts = TrainState.create(model, optax.adam(1e-2), seed=3, input_shape=shape)
    step = make_train_step(model, "categorical_crossentropy", optax.adam(1e-2))
    for i in range(math.ceil(n / batch)):
        ts, _ = step(ts, (x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]))
    for k, got in results.items():
        assert int(got.step) == int(ts.step) == 7
        assert_trees_close(got.params, ts.params, atol=2e-5, rtol=2e-5, what=f"steps_per_execution={k}")


def test_steps_per_execution_choice():
    conv = Sequential([Conv2D(2, 3, input_shape=(8, 8, 1)), Flatten(), Dense(2)])
    assert choose_steps_per_execution(conv, 100, backend="cpu") == 1
    assert choose_steps_per_execution(conv, 100, backend="gpu") == 64
    assert choose_steps_per_execution(mlp(), 8, backend="cpu") == 8


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_dispatch_plan_whole_epoch_unless_a_live_bar_watches(monkeypatch):
    """With "auto" and k > 1, an unwatched epoch is one dispatch; a live bar gets 64-step chunks and a tail
    chunk of its own size (not single steps), and both plans train the same weights."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70 * 4, 4)).astype(np.float32)  # 70 steps of 4: more than one 64-step chunk
    y = to_categorical(rng.integers(0, 3, len(x)), 3)
    plans, weights = {}, {}
    for verbose in (0, 1):
        monkeypatch.setattr("sys.stdout", _Terminal())
        trainer = Trainer(mlp(), "categorical_crossentropy", optax.adam(1e-2), seed=1)
        trainer.fit(x, y, batch_size=4, epochs=1, verbose=verbose)
        trainer.evaluate(x, y, batch_size=4, verbose=verbose)
        plans[verbose] = sorted(key[:2] for key in trainer.engine.compiled if key[0] in ("epoch", "train", "eval",
                                                                               "eval_all"))
        weights[verbose] = trainer.train_state.params
    assert plans[0] == [("epoch", 280), ("eval_all", 280)]
    assert plans[1] == [("eval", 6), ("eval", 64), ("train", 6), ("train", 64)]
    assert_trees_close(weights[0], weights[1], atol=1e-5, rtol=1e-5, what="one dispatch vs chunks")


def test_large_arrays_reach_the_device_in_one_copy(monkeypatch):
    """Arrays of 1 MiB and more go through `device_put` (jnp.asarray held two copies of MNIST at once);
    small ones through `jnp.asarray` (quicker per call). Both canonicalise float64 to float32."""
    from jaxnet_lite.training import engine as trainer_module

    put = []
    real_put = jax.device_put
    monkeypatch.setattr(trainer_module.jax, "device_put", lambda a, *args, **kw: put.append(np.shape(a)) or
                        real_put(a, *args, **kw))
    trainer = Trainer(mlp(), "categorical_crossentropy", "adam")
    big, small = np.ones((40000, 4)), np.ones((100, 4))  # float64: 1.28 MB and 3.2 KB
    big_dev, small_dev = trainer.engine.to_device(big), trainer.engine.to_device(small)
    assert put == [(40000, 4)]
    assert big_dev.dtype == small_dev.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(big_dev), big)


def test_output_shape_is_worked_out_once_per_input_shape(monkeypatch):
    model = mlp()
    trainer = Trainer(model, "categorical_crossentropy", "adam")
    walks = []
    real = model.output_shape
    monkeypatch.setattr(model, "output_shape", lambda shape: walks.append(shape) or real(shape))
    x, y = np.ones((6, 4), np.float32), np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    for _ in range(3):
        trainer.evaluate(x, y, verbose=0)
    assert walks == [(4,)]
    with pytest.raises(jnl.LayerError, match=r"expects input shape \(4,\)"):  # bad shapes still fail early
        trainer.evaluate(np.ones((6, 5), np.float32), y, verbose=0)


def test_sparse_labels_and_functional_model():
    x, y, xt, yt = iris_data()
    inp = Input((4,))
    out = Dense(3, activation="softmax")(Dense(16, activation="relu")(inp))
    model = Model(inp, out)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=jnl.optimizers.Adam(1e-2), metrics=["accuracy"])
    model.fit(x, y.argmax(1), batch_size=16, epochs=40, verbose=0)
    loss, acc = model.evaluate(xt, yt.argmax(1), verbose=0)
    assert acc >= 0.9


def test_multi_output_losses_sum():
    x, y, _, _ = iris_data()
    inp = Input((4,))
    h = Dense(8, activation="relu")(inp)
    model = Model(inp, [Dense(3, activation="softmax")(h), Dense(3, activation="softmax")(h)])
    trainer = Trainer(model, "categorical_crossentropy", "adam", seed=0)
    logs = trainer.evaluate(x, [y, y], verbose=0, return_dict=True)
    single = Trainer(Model(inp, model.outputs[0]), "categorical_crossentropy", "adam",
                     variables=None, seed=0)
    single.variables = (
        {k: v for k, v in trainer.variables.params.items() if k != "dense_2"},
        {k: v for k, v in trainer.variables.state.items() if k != "dense_2"},
    )
    first = single.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert logs["loss"] > first  # two heads: the sum of both losses


def test_streamed_batches_train_like_arrays():
    x, y, _, _ = iris_data()
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, len(x), 16)]
    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    h = model.fit(batches, epochs=30, verbose=0, validation_data=(x, y))
    assert h.history["loss"][-1] < h.history["loss"][0]
    ref = mlp()
    ref.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    h_ref = ref.fit(x, y, batch_size=16, epochs=30, shuffle=False, verbose=0)
    np.testing.assert_allclose(h.history["loss"], h_ref.history["loss"], rtol=1e-4)


def test_early_stopping_ends_fit_and_restores_best():
    x, y, _, _ = iris_data()
    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer=optax.sgd(0.0), metrics=["accuracy"])
    es = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    h = model.fit(x, y, epochs=30, validation_split=0.2, callbacks=[es], verbose=0)
    assert len(h.epoch) == 3  # lr 0: no improvement after epoch 0, patience 2 -> stops at epoch 2


def test_batch_hooks_are_called_per_step():
    x, y, _, _ = iris_data()

    class Count(Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append((batch, logs["loss"]))

    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    cb = Count()
    model.fit(x, y, batch_size=32, epochs=2, callbacks=[cb], verbose=0)
    assert [b for b, _ in cb.ends] == [0, 1, 2, 3] * 2


def test_verbose_outputs(capsys):
    x, y, _, _ = iris_data()
    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x, y, batch_size=16, epochs=2, validation_split=0.1, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[2] == "Epoch 2/2"
    assert out[1].startswith("7/7 - ") and "ms/step - accuracy: " in out[1] and " - val_loss: " in out[1]
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_learning_rate_is_adjustable_without_recompiling():
    x, y, _, _ = iris_data()
    trainer = Trainer(mlp(), "categorical_crossentropy", "adam")
    assert trainer.learning_rate == pytest.approx(1e-3)
    trainer.learning_rate = 0.0
    before = trainer.variables.params
    before = jax.tree.map(np.asarray, before)
    trainer.fit(x, y, epochs=1, verbose=0)
    assert_trees_close(before, trainer.variables.params, atol=0, rtol=0)


def test_train_state_is_one_pytree():
    trainer = Trainer(mlp(), "categorical_crossentropy", "adam", seed=1)
    ts = trainer.train_state
    assert isinstance(ts, TrainState)
    leaves = jax.tree.leaves(ts)
    assert any(jnp.issubdtype(a.dtype, jax.dtypes.prng_key) for a in leaves)


# -- errors, all before any compile -------------------------------------------------------------
@pytest.fixture
def compiled():
    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def test_fit_before_compile():
    with pytest.raises(RuntimeError, match=r"not compiled: call model.compile"):
        mlp().fit(np.zeros((4, 4)), np.zeros((4, 3)))


def test_mismatched_lengths(compiled):
    with pytest.raises(ValueError, match=r"x has 10 .* but y has 9"):
        compiled.fit(np.zeros((10, 4)), np.zeros((9, 3)), verbose=0)


def test_one_hot_width_mismatch(compiled):
    with pytest.raises(ValueError, match=r"expects y of shape \(batch, 3\).*got \(10, 4\).*to_categorical"):
        compiled.fit(np.zeros((10, 4)), np.zeros((10, 4)), verbose=0)


def test_sparse_labels_out_of_range():
    model = mlp()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    with pytest.raises(ValueError, match=r"labels from 0 to 5, but the model outputs 3 classes"):
        model.fit(np.zeros((6, 4)), np.arange(6), verbose=0)


def test_nan_inputs(compiled):
    x = np.zeros((10, 4))
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        compiled.fit(x, np.zeros((10, 3)), verbose=0)


@pytest.mark.parametrize("on_device", [False, True])
def test_nan_check_of_device_arrays_never_copies_them_to_the_host(compiled, monkeypatch, on_device):
    """fit on device-resident data must not pull x back to the host to look for NaNs (a full transfer per
    call on a GPU); the accelerator path is forced here by pretending the array lives off the CPU."""
    from jax._src.array import ArrayImpl

    from jaxnet_lite.training import validation

    x = jnp.zeros((10, 4)).at[3, 2].set(jnp.nan)
    clean = jnp.ones((10, 4))
    if on_device:
        monkeypatch.setattr(validation, "_on_accelerator", lambda a: True)

        def no_copy(self, *args, **kwargs):
            raise AssertionError("x was copied to the host")

        monkeypatch.setattr(ArrayImpl, "__array__", no_copy)
    assert validation.non_finite(x) == "NaN" and validation.non_finite(clean) is None
    assert validation.non_finite(jnp.arange(4)) is None  # integers hold no NaN
    assert validation.non_finite(clean.at[0, 0].set(-jnp.inf)) == "inf"
    with pytest.raises(ValueError, match="x contains NaN"):
        compiled.fit(x, np.zeros((10, 3)), verbose=0)


def test_batch_size_larger_than_data(compiled):
    with pytest.raises(ValueError, match="batch_size 64 is larger than the 10 training examples"):
        compiled.fit(np.zeros((10, 4)), np.zeros((10, 3)), batch_size=64, verbose=0)


def test_wrong_input_shape_names_the_layer(compiled):
    with pytest.raises(jnl.LayerError, match=r"Sequential 'sequential' expects input shape \(4,\) .*got \(5,\)"):
        compiled.fit(np.zeros((10, 5)), np.zeros((10, 3)), verbose=0)


@pytest.mark.parametrize("kwargs,match", [
    ({"loss": "nope"}, "unknown loss 'nope'"),
    ({"loss": "mse", "optimizer": "adamz"}, "unknown optimizer 'adamz'"),
    ({"loss": "mse", "metrics": ["acuracy"]}, "unknown metric 'acuracy'"),
])
def test_unknown_names(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mlp().compile(**kwargs)


def test_dict_inputs_for_a_multi_input_model_in_any_order():
    x, y, _, _ = iris_data()
    a, b = Input((2,), name="a"), Input((3,), name="b")
    h = jnl.layers.Concatenate()([Dense(8, activation="relu")(a), Dense(8, activation="relu")(b)])
    model = Model([a, b], Dense(3, activation="softmax")(h))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    inputs = {"b": x[:, 1:], "a": x[:, :2]}  # dict order differs from the model's inputs
    h1 = model.fit(inputs, y, batch_size=16, epochs=2, verbose=0)
    as_list = model.evaluate([x[:, :2], x[:, 1:]], y, verbose=0, return_dict=True)
    as_dict = model.evaluate(inputs, y, verbose=0, return_dict=True)
    assert as_list == pytest.approx(as_dict) and len(h1.epoch) == 2


def test_frozen_layers_do_not_move_and_lr_stays_adjustable():
    x, y, _, _ = iris_data()
    model = mlp()
    model.layers[0].trainable = False
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    before = jax.tree.map(np.asarray, model.variables.params)
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    after = model.variables.params
    assert_trees_close(after["dense"], before["dense"], atol=0, rtol=0, what="frozen layer")
    assert not np.allclose(after["dense_1"]["kernel"], before["dense_1"]["kernel"])
    assert model.trainer.learning_rate == pytest.approx(1e-3)
    model.trainer.learning_rate = 0.5
    assert model.trainer.learning_rate == pytest.approx(0.5)
    assert " Non-trainable params: 160 (640.00 B)" in model.summary(show_flops=False, return_text=True)


def test_streamed_fit_of_a_model_without_input_shape_respects_frozen_layers():
    """The streaming step is built after the training state, so a frozen layer stays frozen there too."""
    x, y, _, _ = iris_data()
    model = Sequential([Dense(8, activation="relu"), Dense(3, activation="softmax")])  # shape comes from data
    model.layers[0].trainable = False
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, len(x), 16)]
    model.fit(batches, epochs=1, verbose=0)
    first = jax.tree.map(np.asarray, model.variables.params)
    model.fit(batches, epochs=3, verbose=0)
    assert_trees_close(model.variables.params["dense"], first["dense"], atol=0, rtol=0, what="frozen layer")
    assert not np.allclose(model.variables.params["dense_1"]["kernel"], first["dense_1"]["kernel"])
