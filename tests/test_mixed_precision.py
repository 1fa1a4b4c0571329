"""Mixed precision: dtype policies (params float32, compute bfloat16/float16, loss float32), per-layer
overrides, the global policy and its reset, dynamic loss scaling for float16, and the errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnet_lite as jnl
from jaxnet_lite import Sequential, TrainState, make_train_step, mixed_precision
from jaxnet_lite.core import LayerError
from jaxnet_lite.core import dtype_policy as dtype_policy_module
from jaxnet_lite.datasets import digits, iris
from jaxnet_lite.layers import (
    LSTM,
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Embedding,
    Flatten,
    GlobalAveragePooling1D,
    Lambda,
    LayerNormalization,
    MaxPooling2D,
    MultiHeadAttention,
    RMSNormalization,
)
from jaxnet_lite.loss_scaling import LossScaledTransformation
from jaxnet_lite.saving import load_model
from jaxnet_lite.utils import to_categorical


@pytest.fixture(autouse=True)
def reset_policy():
    """Every test starts and ends with the default float32 policy, whatever it sets or raises."""
    mixed_precision.set_global_policy("float32")
    yield
    mixed_precision.set_global_policy("float32")


def dtypes(tree):
    return {str(leaf.dtype) for leaf in jax.tree.leaves(tree)}


def recorder(seen):
    """A Lambda that records the dtype of what reaches it."""
    return Lambda(lambda x: (seen.append(x.dtype), x)[1])


def iris_data():
    (x, y), _ = iris.load_data()
    return x.astype(np.float32), to_categorical(y, 3)


# -- policies ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, compute, variable", [
    ("mixed_bfloat16", "bfloat16", "float32"), ("mixed_float16", "float16", "float32"),
    ("float32", "float32", "float32"), ("float64", "float64", "float64"), ("int32", "int32", "int32"),
])
def test_policy_dtypes(name, compute, variable):
    policy = mixed_precision.DTypePolicy(name)
    assert (policy.name, policy.compute_dtype, policy.variable_dtype) == (name, compute, variable)
    assert policy.is_mixed == (compute != variable)
    assert mixed_precision.Policy is mixed_precision.DTypePolicy
    assert mixed_precision.DTypePolicy.from_config(policy.get_config()) == policy


def test_mixed_bfloat16_params_float32_activations_bfloat16_loss_float32():
    mixed_precision.set_global_policy("mixed_bfloat16")
    assert mixed_precision.global_policy().name == "mixed_bfloat16"
    seen, losses_seen = [], []
    model = Sequential([Dense(16, activation="relu", input_shape=(4,)), recorder(seen), Dense(3, activation="softmax")])
    dense = model.layers[0]
    assert (dense.dtype_policy.name, dense.compute_dtype, dense.variable_dtype) == ("mixed_bfloat16", "bfloat16",
                                                                                  "float32")
    assert dense.dtype == jnp.float32  # what params are created in, as before
    params, state = model.init(jax.random.key(0))
    assert dtypes(params) == {"float32"}
    seen.clear()
    y, _ = jax.jit(model.apply)(params, state, jnp.ones((2, 4), jnp.float32))
    assert seen == [jnp.bfloat16] and y.dtype == jnp.bfloat16

    def loss(y_true, y_pred):  # a loss of our own: records what the step hands it
        losses_seen.append(y_pred.dtype)
        return jnp.sum((y_true - y_pred) ** 2, axis=-1)

    x, y = iris_data()
    step = make_train_step(model, loss, optax.sgd(0.1), metrics=["accuracy"])
    ts = TrainState.create(model, optax.sgd(0.1), input_shape=(4,))
    ts, logs = step(ts, (x[:32], y[:32]))
    assert losses_seen == [jnp.float32]  # predictions reach the loss in float32
    assert logs["loss"].dtype == jnp.float32 and logs["accuracy"].dtype == jnp.float32
    assert dtypes(ts.params) == {"float32"}  # gradients arrive in float32 and update float32 params
    assert np.isfinite(float(logs["loss"]))


def test_per_layer_override_computes_float32_inside_a_mixed_model():
    mixed_precision.set_global_policy("mixed_bfloat16")
    after_mixed, after_float32 = [], []
    model = Sequential([Dense(8, input_shape=(4,)), recorder(after_mixed), Dense(8, dtype="float32"),
                        recorder(after_float32), Dense(3), Activation("softmax", dtype="float32")])
    assert model.layers[2].dtype_policy.name == "float32"
    params, state = model.init(jax.random.key(0))
    after_mixed.clear(), after_float32.clear()
    y, _ = jax.jit(model.apply)(params, state, jnp.ones((2, 4)))
    assert after_mixed == [jnp.bfloat16]
    assert after_float32 == [jnp.bfloat16]  # the float32 Dense's output goes on into a mixed Lambda ...
    out, _ = jax.jit(model.layers[2].apply)(params["dense_1"], {}, jnp.ones((2, 8), jnp.bfloat16))
    assert out.dtype == jnp.float32  # ... but the Dense itself computed in float32, its input cast up
    assert y.dtype == jnp.float32  # Keras' advice: a float32 softmax at the output
    np.testing.assert_allclose(np.asarray(y).sum(-1), 1.0, rtol=1e-6)
    # containers do not cast: a float32 first layer of a mixed model sees its float32 input unrounded
    first = Sequential([Dense(4, dtype="float32", input_shape=(4,))])
    params, state = first.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3, 4))
    y, _ = jax.jit(first.apply)(params, state, x)
    np.testing.assert_array_equal(y, x @ params["dense"]["kernel"] + params["dense"]["bias"])


def test_reset_and_layers_keep_the_policy_they_were_built_with():
    mixed_precision.set_global_policy("mixed_bfloat16")
    mixed = Dense(4)
    assert mixed_precision.DTypePolicy().name == "mixed_bfloat16"
    mixed_precision.set_global_policy("float32")
    plain = Dense(4)
    assert mixed_precision.global_policy().name == "float32"
    assert (mixed.compute_dtype, plain.compute_dtype) == ("bfloat16", "float32")
    mixed_precision.set_global_policy(None)  # None resets too
    assert mixed_precision.global_policy().name == "float32"
    y, _ = plain.apply(plain.init(jax.random.key(0), (3,)).params, {}, jnp.ones((2, 3)))
    assert y.dtype == jnp.float32


def test_layers_without_policy_change_keep_today_s_dtypes():
    """float32 layers leave float64 inputs alone (x64 tests) and cast narrower floats up."""
    layer = Dense(2)
    params, _ = layer.init(jax.random.key(0), (3,))
    with jax.enable_x64(True):
        y, _ = layer.apply(jax.tree.map(lambda a: a.astype(jnp.float64), params), {}, jnp.ones((1, 3), jnp.float64))
        assert y.dtype == jnp.float64
    y, _ = layer.apply(params, {}, jnp.ones((1, 3), jnp.bfloat16))
    assert y.dtype == jnp.float32


@pytest.mark.parametrize("make", [BatchNormalization, LayerNormalization, RMSNormalization])
def test_normalization_statistics_run_in_float32(make):
    mixed_precision.set_global_policy("mixed_bfloat16")
    layer = make()
    x = jax.random.normal(jax.random.key(1), (8, 5), jnp.float32).astype(jnp.bfloat16) * 300 + 1000
    params, state = layer.init(jax.random.key(0), (5,))
    y, new_state = jax.jit(lambda p, s, x: layer.apply(p, s, x, training=True))(params, state, x)
    assert y.dtype == jnp.bfloat16 and dtypes(new_state) <= {"float32"}
    reference = make(dtype="float32")  # the same arithmetic in float32 on the same (bfloat16) values
    y32, state32 = jax.jit(lambda p, s, x: reference.apply(p, s, x, training=True))(params, state,
                                                                                   x.astype(jnp.float32))
    np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray(y32.astype(jnp.bfloat16), np.float32))
    jax.tree.map(np.testing.assert_array_equal, new_state, state32)


def test_integer_ids_are_never_cast():
    mixed_precision.set_global_policy("mixed_bfloat16")
    seen = []
    embedding = Embedding(50, 4)
    model = Sequential([Lambda(lambda ids: (seen.append(ids.dtype), ids)[1]), embedding])
    params, state = model.init(jax.random.key(0), (6,))
    seen.clear()
    y, _ = jax.jit(model.apply)(params, state, jnp.arange(12, dtype=jnp.int32).reshape(2, 6) * 4)
    assert seen == [jnp.int32] and y.dtype == jnp.bfloat16 and dtypes(params) == {"float32"}
    np.testing.assert_array_equal(np.asarray(y[0, 1], np.float32),
                                  np.asarray(params["embedding"]["embeddings"][4].astype(jnp.bfloat16), np.float32))


@pytest.mark.parametrize("make, shape", [
    (lambda: Sequential([Conv2D(4, 3, activation="relu"), MaxPooling2D(), Flatten(), Dense(3)]), (8, 8, 1)),
    (lambda: Sequential([LSTM(6, return_sequences=True), GlobalAveragePooling1D()]), (5, 3)),
    (lambda: MultiHeadAttention(num_heads=2, key_dim=4), [(5, 8), (5, 8)]),
])
def test_catalogue_under_mixed_bfloat16_matches_float32(make, shape):
    """Convolutions, recurrences and attention compute in bfloat16 and agree with float32 to its precision."""
    reference = make()
    mixed_precision.set_global_policy("mixed_bfloat16")
    mixed = make()
    params, state = reference.init(jax.random.key(0), shape)
    shapes = shape if isinstance(shape, list) else [shape]
    xs = [jax.random.normal(jax.random.key(i + 1), (2, *s)) for i, s in enumerate(shapes)]
    x = xs if isinstance(shape, list) else xs[0]
    y32, _ = jax.jit(reference.apply)(params, state, x)
    y16, _ = jax.jit(mixed.apply)(params, state, x)
    assert y32.dtype == jnp.float32 and y16.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y16, np.float32), np.asarray(y32), atol=0.05 * float(jnp.abs(y32).max()))


def test_cnn_trains_under_mixed_bfloat16_and_keeps_float32_params(tmp_path):
    (x, y), _ = digits.load_data()
    x, y = (x[:512, ..., None] / 16.0).astype(np.float32), to_categorical(y[:512], 10)
    mixed_precision.set_global_policy("mixed_bfloat16")
    model = Sequential([Conv2D(8, 3, activation="relu", input_shape=(8, 8, 1)), BatchNormalization(), Flatten(),
                        Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    assert not isinstance(model.trainer.optimizer, LossScaledTransformation)  # bfloat16 needs no loss scaling
    history = model.fit(x, y, batch_size=64, epochs=6, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 2
    assert history.history["accuracy"][-1] > 0.7
    assert {w.dtype for w in model.get_weights()} == {np.dtype("float32")}
    assert dtypes(model.trainer.train_state.opt_state) <= {"float32", "int32"}
    text = model.summary(return_text=True)
    assert "Total params" in text
    probs = model.predict(x[:5], verbose=0)
    assert probs.dtype == np.float32
    # the policy is in each layer's config, so the model reloads mixed under a float32 global policy
    assert model.layers[0].get_config()["dtype"] == "mixed_bfloat16"
    model.save(tmp_path / "m.keras")
    mixed_precision.set_global_policy("float32")
    loaded = load_model(tmp_path / "m.keras")
    assert [layer.dtype_policy.name for layer in loaded.layers] == ["mixed_bfloat16"] * 4
    np.testing.assert_array_equal(loaded.predict(x[:5], verbose=0), probs)


# -- loss scaling ------------------------------------------------------------------------------------
def test_loss_scale_wrapper_skips_non_finite_steps_and_grows_after_the_interval():
    opt = mixed_precision.LossScaleOptimizer(optax.adam(0.1), initial_scale=1024.0, dynamic_growth_steps=3)
    params = {"w": jnp.array([1.0, 2.0])}
    state = opt.init(params)
    updates, skipped = opt.update({"w": jnp.array([jnp.inf, 1.0])}, state, params)
    assert float(skipped.loss_scale) == 512.0 and int(skipped.finite_steps) == 0
    np.testing.assert_array_equal(optax.apply_updates(params, updates)["w"], params["w"])
    jax.tree.map(np.testing.assert_array_equal, skipped.inner_state, state.inner_state)  # Adam's moments too
    _, nan_step = opt.update({"w": jnp.array([jnp.nan, 1.0])}, skipped, params)
    assert float(nan_step.loss_scale) == 256.0
    scales, state = [], skipped
    reference, ref_state = optax.adam(0.1), optax.adam(0.1).init(params)
    for _ in range(7):
        scale = state.loss_scale
        updates, state = opt.update({"w": jnp.array([0.5, -1.0]) * scale}, state, params)
        expected, ref_state = reference.update({"w": jnp.array([0.5, -1.0])}, ref_state, params)
        np.testing.assert_allclose(updates["w"], expected["w"], rtol=1e-6)  # unscaled before Adam sees them
        scales.append(float(state.loss_scale))
    assert scales == [512.0, 512.0, 1024.0, 1024.0, 1024.0, 2048.0, 2048.0]
    assert mixed_precision.loss_scale_of((state, optax.EmptyState())) == 2048.0
    with pytest.raises(ValueError, match="already scales"):
        mixed_precision.LossScaleOptimizer(opt)
    with pytest.raises(ValueError, match="dynamic_growth_steps"):
        mixed_precision.LossScaleOptimizer("adam", dynamic_growth_steps=0)


def test_float16_overflow_in_a_train_step_skips_it_and_lowers_the_scale():
    """A real overflow: float16 tops out at 65504, so an input of 6e4 makes the forward pass infinite."""
    x, y = iris_data()
    x, y = x[:16], y[:16]

    def run(policy):
        mixed_precision.set_global_policy(policy)
        model = Sequential([Dense(8, activation="relu", input_shape=(4,)), Dense(3, activation="softmax")])
        opt = mixed_precision.LossScaleOptimizer("sgd", initial_scale=2.0**10, dynamic_growth_steps=2)
        ts = TrainState.create(model, opt, seed=0, input_shape=(4,))
        return model, ts, make_train_step(model, "categorical_crossentropy", opt, donate=False)

    _, ts32, step32 = run("float32")
    model, ts, step = run("mixed_float16")
    assert model.layers[0].compute_dtype == "float16"
    after32, _ = step32(ts32, (x, y))
    after, logs = step(ts, (x, y))
    assert np.isfinite(float(logs["loss"])) and float(after.opt_state.loss_scale) == 2.0**10
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-3), after.params, after32.params)
    huge = np.full_like(x, 6e4)
    skipped, logs = step(after, (huge, y))
    assert not np.isfinite(float(logs["loss"]))
    assert float(skipped.opt_state.loss_scale) == 2.0**9 and int(skipped.opt_state.finite_steps) == 0
    jax.tree.map(np.testing.assert_array_equal, skipped.params, after.params)  # the step was skipped
    grown, _ = step(step(skipped, (x, y))[0], (x, y))
    assert float(grown.opt_state.loss_scale) == 2.0**10  # two finite steps in a row double it


def test_compile_wraps_the_optimizer_under_mixed_float16(tmp_path):
    x, y = iris_data()
    mixed_precision.set_global_policy("mixed_float16")
    model = Sequential([Dense(16, activation="relu", input_shape=(4,)), Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    trainer = model.trainer
    assert isinstance(trainer.optimizer, LossScaledTransformation)
    assert float(mixed_precision.loss_scale_of(trainer.train_state.opt_state)) == 2.0**15  # Keras' initial scale
    history = model.fit(x, y, batch_size=16, epochs=15, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert trainer.learning_rate == pytest.approx(0.001)  # the learning rate is still reachable ...
    trainer.learning_rate = 0.01  # ... and settable through the wrapper
    assert trainer.learning_rate == pytest.approx(0.01)
    trainer.save_checkpoint(tmp_path / "ckpt")
    scale = float(mixed_precision.loss_scale_of(trainer.train_state.opt_state))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    trainer.restore_checkpoint(tmp_path / "ckpt")
    assert float(mixed_precision.loss_scale_of(trainer.train_state.opt_state)) == scale
    mixed_precision.set_global_policy("float32")  # a per-layer float16 policy is enough for compile to wrap
    per_layer = Sequential([Dense(3, input_shape=(4,), dtype="mixed_float16")])
    per_layer.compile(loss="mse", optimizer="sgd")
    assert isinstance(per_layer.trainer.optimizer, LossScaledTransformation)
    per_layer.compile(loss="mse", optimizer="sgd", auto_scale_loss=False)  # Keras' switch to opt out
    assert not isinstance(per_layer.trainer.optimizer, LossScaledTransformation)


# -- errors ------------------------------------------------------------------------------------------
def test_unknown_policy_names_are_refused():
    with pytest.raises(ValueError, match="unknown dtype policy 'mixed_bfloat61'"):
        mixed_precision.set_global_policy("mixed_bfloat61")
    assert mixed_precision.global_policy().name == "float32"
    with pytest.raises(LayerError, match="Dense 'head'.*'mixed_bfloat61'"):
        Dense(3, dtype="mixed_bfloat61", name="head")
    with pytest.raises(ValueError, match="must be floating"):
        mixed_precision.set_global_policy("int32")
    with pytest.raises(ValueError, match="policy name"):
        mixed_precision.set_global_policy(3)


def test_mixed_float16_on_a_backend_without_float16(monkeypatch):
    monkeypatch.setattr(dtype_policy_module, "_backend_runs", lambda dtype, backend: dtype != "float16")
    assert not mixed_precision.backend_supports("float16") and mixed_precision.backend_supports("bfloat16")
    mixed_precision.set_global_policy("mixed_float16")
    model = Sequential([Dense(3, name="head")])
    with pytest.raises(LayerError, match="Dense 'head'.*'mixed_float16'.*does not support float16"):
        model.init(jax.random.key(0), (4,))
    mixed_precision.set_global_policy("mixed_bfloat16")
    Sequential([Dense(3)]).init(jax.random.key(0), (4,))  # bfloat16 still runs


def test_every_shipped_backend_runs_float16():
    assert mixed_precision.backend_supports("float16")


def test_per_layer_dtypes_that_cannot_work():
    mixed_precision.set_global_policy("mixed_bfloat16")
    with pytest.raises(LayerError, match="Dense 'half'.*'float16'.*global policy 'mixed_bfloat16'.*mixed_float16"):
        Dense(3, dtype="float16", name="half")
    Dense(3, dtype="mixed_float16")  # float16 compute with float32 params is fine
    mixed_precision.set_global_policy("float32")
    with pytest.raises(LayerError, match="Dense 'ids'.*'int32'.*floating"):
        Dense(3, dtype="int32", name="ids").init(jax.random.key(0), (4,))
    Flatten(dtype="int32").init(jax.random.key(0), (2, 2))  # no params: an integer policy is fine
    assert jnl.mixed_precision is mixed_precision
