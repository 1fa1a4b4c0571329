"""Dropout masks from the unrolled threefry hash: equal to `jax.random.bernoulli`, bit for bit, and no loop.

`jaxnet_lite.core.threefry.bernoulli` is what Dropout, attention dropout and recurrent dropout draw
their masks with. Equality with JAX's own sampler (every shape, rate, key and precision drawn here, under
jit and vmap) means a seed gives the same mask it gave before, so dropout's statistics and reproducibility
are JAX's; the compiled program must not contain the `while` loop the change removes. The same holds for
the initializers, which draw through `unrolled` keys.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxnet_lite as jnl
from jaxnet_lite import initializers
from jaxnet_lite import layers as L
from jaxnet_lite.core.threefry import bernoulli, fold_in, random_bits, split, unrolled

SHAPES = st.lists(st.integers(1, 9), min_size=0, max_size=4).map(tuple)
RATES = st.floats(0.0, 1.0, allow_nan=False)


@given(shape=SHAPES, p=RATES, seed=st.integers(0, 2**31 - 1))
def test_mask_equals_jax_bernoulli(shape, p, seed):
    both = jax.jit(lambda k, q: (bernoulli(k, q, shape), jax.random.bernoulli(k, q, shape)))  # one compile
    mine, theirs = both(jax.random.key(seed), p)
    np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("width", [32, 64])
def test_bits_equal_jax_bits(width):
    dtype = {32: jnp.uint32, 64: jnp.uint64}[width]
    with jax.enable_x64(width == 64):
        for seed, shape in [(0, (7,)), (123, (3, 5, 2)), (2**31 - 1, (1,))]:
            key = jax.random.key(seed)
            np.testing.assert_array_equal(random_bits(key, shape, width), jax.random.bits(key, shape, dtype))


def test_float64_rates_draw_64_bit_uniforms_as_jax_does():
    with jax.enable_x64(True):
        key = jax.random.key(5)
        for p in (0.3, np.float64(0.7), jnp.asarray(0.5, jnp.float64)):
            np.testing.assert_array_equal(bernoulli(key, p, (4, 33)), jax.random.bernoulli(key, p, (4, 33)))


def test_equal_under_jit_vmap_and_with_a_traced_rate():
    keys = jax.random.split(jax.random.key(11), 4)
    mine = jax.jit(jax.vmap(lambda k, p: bernoulli(k, p, (6, 5))))(keys, jnp.linspace(0.1, 0.9, 4))
    theirs = jax.vmap(lambda k, p: jax.random.bernoulli(k, p, (6, 5)))(keys, jnp.linspace(0.1, 0.9, 4))
    np.testing.assert_array_equal(mine, theirs)


def _data(keys):
    return np.asarray(jax.random.key_data(keys))


@pytest.mark.parametrize("num", [1, 2, 3, 8])
def test_split_equals_jax_split(num):
    for key in (jax.random.key(0), jax.random.key(2**31 - 1)):
        np.testing.assert_array_equal(_data(split(key, num)), _data(jax.random.split(key, num)))
    keys = jax.random.split(jax.random.key(4), 3)
    np.testing.assert_array_equal(_data(jax.jit(jax.vmap(lambda k: split(k, num)))(keys)),
                                  _data(jax.vmap(lambda k: jax.random.split(k, num))(keys)))


def test_fold_in_equals_jax_fold_in():
    key = jax.random.key(9)
    for data in (0, 1, 12345, 2**31 - 1, np.int32(-3), jnp.uint32(7), jnp.int32(2**30)):
        np.testing.assert_array_equal(_data(fold_in(key, data)), _data(jax.random.fold_in(key, data)))
    steps = jnp.arange(5)
    np.testing.assert_array_equal(_data(jax.jit(jax.vmap(lambda s: fold_in(key, s)))(steps)),
                                  _data(jax.vmap(lambda s: jax.random.fold_in(key, s))(steps)))


def test_other_keys_are_split_and_folded_by_jax():
    key = jax.random.key(3, impl="rbg")
    np.testing.assert_array_equal(_data(split(key, 3)), _data(jax.random.split(key, 3)))
    np.testing.assert_array_equal(_data(fold_in(key, 4)), _data(jax.random.fold_in(key, 4)))


@pytest.mark.parametrize("case", ["rbg key", "float16 rate", "empty shape"])
def test_other_keys_and_rates_are_left_to_jax(case):
    key = jax.random.key(3, impl="rbg") if case == "rbg key" else jax.random.key(3)
    p = jnp.asarray(0.4, jnp.float16) if case == "float16 rate" else 0.4
    shape = (0, 3) if case == "empty shape" else (5, 8)
    np.testing.assert_array_equal(bernoulli(key, p, shape), jax.random.bernoulli(key, p, shape))


def test_frequency_matches_the_rate():
    """Over a million draws the kept fraction is within five standard errors of `p`."""
    n = 1 << 20
    for i, p in enumerate((0.1, 0.5, 0.8)):
        kept = float(jnp.mean(bernoulli(jax.random.key(i), p, (n,))))
        assert abs(kept - p) < 5 * np.sqrt(p * (1 - p) / n), (p, kept)


def test_dropout_keeps_its_statistics_and_is_reproducible():
    layer = L.Dropout(0.3)
    x = jnp.ones((256, 512))
    y1, _ = layer.apply({}, {}, x, rng=jax.random.key(0), training=True)
    y2, _ = layer.apply({}, {}, x, rng=jax.random.key(0), training=True)
    y3, _ = layer.apply({}, {}, x, rng=jax.random.key(1), training=True)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, y3)
    kept = np.asarray(y1) != 0
    assert set(np.unique(np.asarray(y1))) == {0.0, np.float32(1 / 0.7)}  # inverted dropout's scaling
    assert abs(kept.mean() - 0.7) < 5 * np.sqrt(0.21 / kept.size)
    assert abs(float(jnp.mean(y1)) - 1.0) < 0.01  # the expectation is unchanged


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the rolled threefry loop is XLA:CPU's lowering")
def test_a_train_step_with_dropout_compiles_without_a_loop():
    model = jnl.Sequential([L.Dense(8, activation="relu", input_shape=(4,)), L.Dropout(0.5), L.Dense(8),
                            L.Dropout(0.2), L.Dense(3)])
    step = jnl.make_train_step(model, "mse", optax.sgd(0.1))
    ts = jnl.TrainState.create(model, optax.sgd(0.1), 0, input_shape=(4,))
    batch = (jnp.ones((16, 4)), jnp.ones((16, 3)))
    assert "while" not in step.lower(ts, batch).compile().as_text()  # nor a small one turned into a call
    reference = jax.jit(lambda x, k: jnp.where(jax.random.bernoulli(k, 0.5, x.shape), 2 * x, 0))
    assert " while(" in reference.lower(jnp.ones((32, 64)), jax.random.key(0)).compile().as_text()  # it can fail


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="a check of XLA:CPU's fusion decisions")
def test_the_mask_is_hashed_once_per_step():
    """Left to fusion, XLA recomputes the hash inside the backward pass's pooling-gradient kernel too."""
    model = jnl.Sequential([L.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)), L.MaxPooling2D(2),
                            L.Flatten(), L.Dropout(0.5), L.Dense(3)])
    step = jnl.make_train_step(model, "mse", optax.sgd(0.1))
    ts = jnl.TrainState.create(model, optax.sgd(0.1), 0, input_shape=(8, 8, 1))
    hlo = step.lower(ts, (jnp.ones((16, 8, 8, 1)), jnp.ones((16, 3)))).compile().as_text()
    computations = hlo.split("\n\n")
    hashing = [c for c in computations if "u32[16,36]" in c and "shift-left" in c and "ENTRY" not in c]
    assert len(hashing) == 1, [c.splitlines()[0] for c in hashing]


# ------------------------------------------------------------------------- unrolled keys, the initializers

_JAX_INITIALIZERS = {
    "glorot_uniform": jax.nn.initializers.glorot_uniform(),
    "glorot_normal": jax.nn.initializers.glorot_normal(),
    "he_uniform": jax.nn.initializers.he_uniform(),
    "he_normal": jax.nn.initializers.he_normal(),
    "lecun_uniform": jax.nn.initializers.lecun_uniform(),
    "lecun_normal": jax.nn.initializers.lecun_normal(),
    "orthogonal": jax.nn.initializers.orthogonal(),
    "random_normal": lambda k, s, d: 0.05 * jax.random.normal(k, s, d) + 0.0,
    "random_uniform": lambda k, s, d: jax.random.uniform(k, s, d, -0.05, 0.05),
    "truncated_normal": lambda k, s, d: 0.05 * jax.random.truncated_normal(k, -2.0, 2.0, s, d) + 0.0,
}


@pytest.mark.parametrize("name", sorted(_JAX_INITIALIZERS))
def test_every_random_initializer_gives_jax_values(name):
    """Same key, same values as `jax.nn.initializers` and `jax.random`, in every float width (8- and
    16-bit draws included: bfloat16 and float16 take fewer bits per value; LAPACK's QR, which orthogonal
    needs, has no half precision)."""
    mine, theirs = initializers.get(name), _JAX_INITIALIZERS[name]
    widths = (jnp.float32,) if name == "orthogonal" else (jnp.float32, jnp.bfloat16, jnp.float16)
    for seed, shape in [(0, (3, 4)), (7, (5, 7, 6)), (2**31 - 1, (3, 3, 2, 8))]:
        key = jax.random.key(seed)
        for dtype in widths:
            np.testing.assert_array_equal(mine(key, shape, dtype), theirs(key, shape, dtype), f"{shape} {dtype}")
    with jax.enable_x64(True):
        key = jax.random.key(3)
        np.testing.assert_array_equal(mine(key, (6, 5), jnp.float64), theirs(key, (6, 5), jnp.float64))


def test_an_unrolled_key_draws_what_the_key_draws_under_jit_and_vmap():
    keys = jax.random.split(jax.random.key(4), 3)
    draw = lambda k: (jax.random.normal(k, (4, 9)), jax.random.bits(k, (5,)), jax.random.split(k))  # noqa: E731
    mine = jax.jit(jax.vmap(lambda k: draw(unrolled(k))))(keys)
    theirs = jax.vmap(draw)(keys)
    np.testing.assert_array_equal(mine[0], theirs[0])
    np.testing.assert_array_equal(mine[1], theirs[1])
    np.testing.assert_array_equal(_data(mine[2]), _data(theirs[2]))


def test_other_keys_are_not_unrolled():
    key = jax.random.key(3, impl="rbg")
    assert unrolled(key) is key
    assert str(jax.random.key_impl(unrolled(jax.random.key(3)))) != "threefry2x32"


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the rolled threefry loop is XLA:CPU's lowering")
def test_an_initializer_compiles_without_a_loop():
    for init, expect in ((initializers.get("glorot_uniform"), False), (_JAX_INITIALIZERS["glorot_uniform"], True)):
        text = jax.jit(lambda k, init=init: init(k, (16, 8), jnp.float32)).lower(jax.random.key(0)).compile().as_text()
        assert (" while(" in text) is expect  # the reference's loop shows the check can fail
