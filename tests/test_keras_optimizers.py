"""Keras 3's optimizers as Optax transformations (`jaxnet_lite.optimizers`).

Where Keras is installed, every optimizer by name (and with non-default arguments) runs five steps on the
same variables and gradients as Keras' own and must end on the same variables. The Keras-free tests write
Keras' formulas out by hand (from keras/src/optimizers/*.py) and check composition, schedules and refusals.
"""

from __future__ import annotations

import copy
import pickle
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnet_lite import optimizers

NAMES = ["adam", "adamw", "nadam", "lion", "rmsprop", "sgd", "adagrad", "adamax", "adadelta", "ftrl"]
CLASSES = {"adam": "Adam", "adamw": "AdamW", "nadam": "Nadam", "lion": "Lion", "rmsprop": "RMSprop", "sgd": "SGD",
           "adagrad": "Adagrad", "adamax": "Adamax", "adadelta": "Adadelta", "ftrl": "Ftrl"}
_rng = np.random.default_rng(0)
# Small variables, so that five steps at the default learning rates move them by a visible fraction.
INIT = {"w1": (_rng.normal(size=(3, 4)) * 0.01).astype(np.float32),
        "w2": (_rng.normal(size=(3, 4)) * 0.01).astype(np.float32)}  # one shape: fewer eager compilations
KEYS = sorted(INIT)


def gradients(scale: float, steps: int = 5, seed: int = 1) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{k: (rng.normal(size=v.shape) * scale).astype(np.float32) for k, v in INIT.items()}
            for _ in range(steps)]


def run_ours(opt: optax.GradientTransformation, grads: list[dict]) -> dict[str, np.ndarray]:
    params = {k: jnp.asarray(v) for k, v in INIT.items()}
    state = opt.init(params)
    for g in grads:
        updates, state = opt.update({k: jnp.asarray(v) for k, v in g.items()}, state, params)
        params = optax.apply_updates(params, updates)
    return {k: np.asarray(v) for k, v in params.items()}


def assert_same_variables(ours: dict, theirs: dict) -> None:
    """The variables to 2e-5 relative, and how far they moved to 2e-5 of the largest move."""
    for k in KEYS:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=2e-5, atol=0, err_msg=k)
        moved = theirs[k] - INIT[k]
        assert np.max(np.abs(moved)) > 0, f"{k} did not move: the comparison would prove nothing"
        np.testing.assert_allclose(ours[k] - INIT[k], moved, rtol=2e-5, atol=2e-5 * np.max(np.abs(moved)),
                                   err_msg=f"{k} displacement")


# -- against Keras 3 ----------------------------------------------------------------------------------
def run_keras(keras, name: str, kwargs: dict, grads: list[dict]) -> dict[str, np.ndarray]:
    variables = [keras.Variable(INIT[k].copy()) for k in KEYS]
    opt = getattr(keras.optimizers, CLASSES[name])(**kwargs)
    for g in grads:
        opt.apply_gradients(zip([jnp.asarray(g[k]) for k in KEYS], variables))
    return {k: np.asarray(v.value) for k, v in zip(KEYS, variables)}


@pytest.mark.parametrize("scale", [1e-1, 1e-4])
@pytest.mark.parametrize("name", NAMES)
def test_by_name_matches_keras(keras, name, scale):
    grads = gradients(scale)
    assert_same_variables(run_ours(optimizers.get(name), grads), run_keras(keras, name, {}, grads))


NON_DEFAULT = [
    ("adam", {"amsgrad": True}),
    ("adam", {"weight_decay": 0.05, "beta_1": 0.8}),
    ("adam", {"clipnorm": 0.01}),
    ("adamw", {"weight_decay": 0.1, "amsgrad": True}),
    ("adamw", {"learning_rate": 0.01, "gradient_accumulation_steps": 2}),
    ("nadam", {"global_clipnorm": 0.01, "weight_decay": 0.02}),
    ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("sgd", {"momentum": 0.5, "weight_decay": 0.1, "clipvalue": 0.05}),
    ("rmsprop", {"centered": True}),
    ("rmsprop", {"centered": True, "momentum": 0.9, "rho": 0.8}),
    ("lion", {"weight_decay": 0.3, "beta_2": 0.95}),
    ("adagrad", {"initial_accumulator_value": 0.5, "clipnorm": 0.05}),
    ("adamax", {"weight_decay": 0.2, "beta_2": 0.9}),
    ("adadelta", {"learning_rate": 1.0, "rho": 0.9}),
    ("ftrl", {"learning_rate": 0.1, "learning_rate_power": -0.7, "l1_regularization_strength": 0.01,
              "l2_regularization_strength": 0.02, "l2_shrinkage_regularization_strength": 0.1, "beta": 0.5}),
]


@pytest.mark.parametrize("name, kwargs", NON_DEFAULT, ids=[f"{n}-{'-'.join(k)}" for n, k in NON_DEFAULT])
def test_non_default_arguments_match_keras(keras, name, kwargs):
    grads = gradients(1e-1)
    assert_same_variables(run_ours(optimizers.get(name, **kwargs), grads), run_keras(keras, name, kwargs, grads))


def test_a_schedule_as_learning_rate_matches_keras(keras):
    """The schedule is read at Keras' `iterations` (0 for the first update), for the step and the decay."""
    grads = gradients(1e-1)
    ours = optimizers.Adam(optax.exponential_decay(0.01, transition_steps=2, decay_rate=0.5), weight_decay=0.1)
    theirs = {"learning_rate": keras.optimizers.schedules.ExponentialDecay(0.01, 2, 0.5), "weight_decay": 0.1}
    assert_same_variables(run_ours(ours, grads), run_keras(keras, "adam", theirs, grads))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' own get_config reads its variable
@pytest.mark.parametrize("name", NAMES)
def test_constructor_defaults_are_keras_defaults(keras, name):
    ours = optimizers.get(name).get_config()
    theirs = getattr(keras.optimizers, CLASSES[name])().get_config()
    theirs.pop("name")
    assert {k: ours[k] for k in theirs} == pytest.approx(theirs)


# -- Keras' formulas by hand ----------------------------------------------------------------------------
PARAMS = {"w": jnp.asarray([1.0, -2.0, 3.0]), "b": jnp.asarray([0.5])}
TINY = {"w": jnp.asarray([1e-6, -2e-6, 0.5]), "b": jnp.asarray([-0.25])}  # tiny gradients expose epsilon


def test_adam_follows_keras_formula_not_optax():
    """keras/src/optimizers/adam.py: alpha = lr * sqrt(1 - b2^t) / (1 - b1^t); var -= m * alpha / (sqrt(v) + eps)."""
    opt = optimizers.get("adam")
    state = opt.init(PARAMS)
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-7
    m = {k: np.zeros(v.shape) for k, v in PARAMS.items()}
    v = {k: np.zeros(v.shape) for k, v in PARAMS.items()}
    for t in (1, 2):
        updates, state = opt.update(TINY, state, PARAMS)
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        for k in PARAMS:
            g = np.asarray(TINY[k], np.float64)
            m[k] += (g - m[k]) * (1 - b1)
            v[k] += (g**2 - v[k]) * (1 - b2)
            np.testing.assert_allclose(np.asarray(updates[k]), -m[k] * alpha / (np.sqrt(v[k]) + eps), rtol=1e-4)
    ref = optax.adam(1e-3, eps=1e-7)
    ref_updates, _ = ref.update(TINY, ref.init(PARAMS), PARAMS)
    ours, _ = opt.update(TINY, opt.init(PARAMS), PARAMS)
    assert abs(float(ours["w"][0]) / float(ref_updates["w"][0]) - 1) > 0.5  # Optax's epsilon sits elsewhere


def test_nadam_has_keras_momentum_schedule():
    """keras/src/optimizers/nadam.py, first step: u_t = b1 (1 - 0.5 * 0.96^t), u_product = u_1."""
    opt = optimizers.get("nadam")
    updates, state = opt.update(TINY, opt.init(PARAMS), PARAMS)
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-7
    u1, u2 = b1 * (1 - 0.5 * 0.96), b1 * (1 - 0.5 * 0.96**2)
    for k in PARAMS:
        g = np.asarray(TINY[k], np.float64)
        m, v = (1 - b1) * g, (1 - b2) * g**2
        m_hat = u2 * m / (1 - u1 * u2) + (1 - u1) * g / (1 - u1)
        v_hat = v / (1 - b2)
        np.testing.assert_allclose(np.asarray(updates[k]), -lr * m_hat / (np.sqrt(v_hat) + eps), rtol=1e-5)
    assert float(state.inner_state.shared["u_product"]) == pytest.approx(u1, rel=1e-6)


def test_an_overflowing_squared_gradient_stops_the_step_instead_of_poisoning_the_weights():
    """Keras' `v + (g^2 - v) * (1 - beta_2)` turns NaN once g^2 overflows (inf - inf); here v stays inf,
    so that parameter's step is 0 and the weights stay finite (Keras 3 itself gives NaN weights)."""
    for name in ("adam", "adamw", "nadam"):
        opt = optimizers.get(name)
        params = {"w": jnp.ones(2)}
        state = opt.init(params)
        for g in (1e30, 1.0):
            updates, state = opt.update({"w": jnp.full(2, g)}, state, params)
            params = optax.apply_updates(params, updates)
        assert np.all(np.isfinite(np.asarray(params["w"]))), name


def test_lion_has_no_weight_decay_unless_asked():
    updates, _ = optimizers.Lion().update(TINY, optimizers.Lion().init(PARAMS), PARAMS)
    for k in PARAMS:
        np.testing.assert_array_equal(np.asarray(updates[k]), -1e-3 * np.sign(np.asarray(TINY[k])))
    decayed, _ = optimizers.Lion(weight_decay=0.5).update(TINY, optimizers.Lion().init(PARAMS), PARAMS)
    np.testing.assert_allclose(np.asarray(decayed["w"]), -1e-3 * 0.5 * np.asarray(PARAMS["w"])
                               - 1e-3 * np.sign(np.asarray(TINY["w"])), rtol=1e-6)


def test_weight_decay_is_decoupled_and_scaled_by_the_learning_rate():
    """Keras' base optimizer: var -= var * weight_decay * lr, before the update step."""
    opt = optimizers.SGD(0.1, weight_decay=0.5)
    updates, _ = opt.update(TINY, opt.init(PARAMS), PARAMS)
    for k in PARAMS:
        p, g = np.asarray(PARAMS[k], np.float64), np.asarray(TINY[k], np.float64)
        np.testing.assert_allclose(np.asarray(updates[k]), -p * 0.5 * 0.1 - 0.1 * g, rtol=1e-6)


def test_clipping_follows_keras():
    grads = {"a": jnp.asarray([3.0, 4.0]), "b": jnp.asarray([0.0, 0.0]), "c": jnp.asarray([-12.0])}
    params = jax.tree.map(jnp.zeros_like, grads)

    def first_update(**kwargs):
        opt = optimizers.SGD(1.0, **kwargs)
        return {k: np.asarray(v) for k, v in opt.update(grads, opt.init(params), params)[0].items()}

    per_variable = first_update(clipnorm=1.0)  # each gradient to norm <= 1; a zero gradient stays zero
    np.testing.assert_allclose(per_variable["a"], [-0.6, -0.8], rtol=1e-6)
    np.testing.assert_array_equal(per_variable["b"], [0.0, 0.0])
    np.testing.assert_allclose(per_variable["c"], [1.0], rtol=1e-6)
    overall = first_update(global_clipnorm=6.5)  # the global norm is 13
    np.testing.assert_allclose(overall["a"], [-1.5, -2.0], rtol=1e-6)
    np.testing.assert_allclose(overall["c"], [6.0], rtol=1e-6)
    by_value = first_update(clipvalue=3.5)
    np.testing.assert_allclose(by_value["a"], [-3.0, -3.5])
    np.testing.assert_allclose(by_value["c"], [3.5])


def test_gradient_accumulation_applies_the_mean_every_n_calls():
    opt = optimizers.SGD(0.1, gradient_accumulation_steps=2)
    state = opt.init(PARAMS)
    other = jax.tree.map(lambda g: 3 * g, TINY)
    first, state = opt.update(TINY, state, PARAMS)
    assert all(not np.any(np.asarray(u)) for u in jax.tree.leaves(first))
    second, state = opt.update(other, state, PARAMS)
    for k in PARAMS:
        np.testing.assert_allclose(np.asarray(second[k]), -0.1 * (np.asarray(TINY[k]) * 4) / 2, rtol=1e-6)
    assert all(not np.any(np.asarray(a)) for a in jax.tree.leaves(state.inner_state.accumulators))


# -- Optax: composition, schedules, the learning rate ---------------------------------------------------
def test_every_name_is_an_optax_transformation_of_its_class():
    for name in NAMES:
        opt = optimizers.get(name)
        assert isinstance(opt, optax.GradientTransformation)
        assert type(opt) is getattr(optimizers, CLASSES[name])
    assert isinstance(optimizers.get("Adam"), optimizers.Adam)  # Keras' class names work as names too
    assert isinstance(optimizers.AdamW(), optimizers.Adam)  # as in Keras


def test_composes_with_optax_chain_and_the_learning_rate_stays_settable():
    chained = optax.chain(optax.scale(2.0), optimizers.SGD(0.1, momentum=0.5))
    state = chained.init(PARAMS)
    assert float(optimizers.get_learning_rate(state)) == pytest.approx(0.1)
    state = optimizers.set_learning_rate(state, 0.25)
    updates, state = jax.jit(chained.update)(TINY, state, PARAMS)
    for k in PARAMS:
        np.testing.assert_allclose(np.asarray(updates[k]), -0.25 * 2.0 * np.asarray(TINY[k]), rtol=1e-6)
    assert float(optimizers.get_learning_rate(state)) == pytest.approx(0.25)
    # and inside freeze's chain, as the trainer builds it for frozen layers
    frozen = optimizers.freeze(optimizers.Adam(), {"w": False, "b": True})
    updates, _ = frozen.update(TINY, frozen.init(PARAMS), PARAMS)
    assert not np.any(np.asarray(updates["w"])) and np.all(np.asarray(updates["b"]) != 0)


def test_a_schedule_as_learning_rate_is_read_per_update_and_cannot_be_set():
    schedule = optax.exponential_decay(0.1, transition_steps=1, decay_rate=0.5)
    opt = optimizers.SGD(schedule)
    state = opt.init(PARAMS)
    for t in range(3):
        updates, state = opt.update(TINY, state, PARAMS)
        np.testing.assert_allclose(np.asarray(updates["b"]), -0.1 * 0.5**t * np.asarray(TINY["b"]), rtol=1e-6)
    with pytest.raises(TypeError, match="schedule"):
        optimizers.set_learning_rate(state, 0.01)


def test_optax_objects_pass_through_as_they_are():
    tx = optax.adam(1e-3)
    assert optimizers.get(tx) is tx
    ours = optimizers.Adam()
    assert optimizers.get(ours) is ours
    with pytest.raises(ValueError, match="name"):
        optimizers.get(tx, learning_rate=0.1)


def test_config_repr_copy_and_pickle():
    opt = optimizers.Adam(0.01, amsgrad=True, clipnorm=1.0)
    assert repr(opt) == ("Adam(learning_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-07, amsgrad=True, "
                         "clipnorm=1.0)")
    config = opt.get_config()
    assert config["name"] == "adam" and config["weight_decay"] is None and config["amsgrad"] is True
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt)), optimizers.Adam.from_config(config)):
        assert type(clone) is optimizers.Adam and clone.get_config() == config
        assert run_ours(clone, gradients(1e-1, steps=2))["w2"].tolist() == \
            run_ours(opt, gradients(1e-1, steps=2))["w2"].tolist()


@pytest.mark.parametrize("make, error, match", [
    (lambda: optimizers.Adam(use_ema=True), NotImplementedError, "use_ema"),
    (lambda: optimizers.SGD(loss_scale_factor=128.0), NotImplementedError, "loss_scale_factor"),
    (lambda: optimizers.Adam(clipnorm=1.0, clipvalue=1.0), ValueError, "Only one of"),
    (lambda: optimizers.Adam(gradient_accumulation_steps=1), ValueError, "gradient_accumulation_steps"),
    (lambda: optimizers.AdamW(weight_decay=None), ValueError, "weight_decay"),
    (lambda: optimizers.Adam(lr=0.1), TypeError, "lr"),
    (lambda: optimizers.Adam(learning_rate="fast"), ValueError, "learning_rate"),
    (lambda: optimizers.Lion(beta_1=0.0), ValueError, "beta_1"),
    (lambda: optimizers.SGD(momentum=1.5), ValueError, "momentum"),
    (lambda: optimizers.Ftrl(l1_regularization_strength=-1.0), ValueError, "l1_regularization_strength"),
    (lambda: optimizers.Ftrl(learning_rate_power=0.5), ValueError, "learning_rate_power"),
    (lambda: optimizers.get("adamz"), ValueError, "unknown optimizer 'adamz'"),
    (lambda: optimizers.Optimizer(), TypeError, "Adam, SGD"),
])
def test_refusals(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_decay_is_ignored_with_keras_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt = optimizers.SGD(0.1, decay=1e-6)
    assert any("`decay` is no longer supported" in str(w.message) for w in caught)
    assert "decay" not in opt.get_config()
