"""Recurrent layers against a NumPy loop written here (float64) and against Keras 3 with copied weights.

The NumPy reference follows Keras 3's cells and its JAX backend's masked scan: at a padded step the
states keep their values and the output repeats the previous output (or zeros); `go_backwards` returns
the outputs in the order they were computed.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet_lite as jnl
from jaxnet_lite import layers as L
from jaxnet_lite.core import LayerError, Masked
from jaxnet_lite.testing import check_layer_grads

RNG = np.random.default_rng(7)
B, T, D, U = 3, 5, 4, 6


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def np_cell(kind, p, x_t, states, reset_after=True):
    """One step of Keras' cell in NumPy; returns (output, states)."""
    k, r, b = p["kernel"], p["recurrent_kernel"], p.get("bias")
    if kind == "simple":
        (h,) = states
        out = np.tanh(x_t @ k + h @ r + (0 if b is None else b))
        return out, (out,)
    if kind == "lstm":
        h, c = states
        z = x_t @ k + h @ r + (0 if b is None else b)
        i, f, g, o = np.split(z, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        return h, (h, c)
    (h,) = states
    b_in = b[0] if (b is not None and reset_after) else b
    xz, xr, xh = np.split(x_t @ k + (0 if b_in is None else b_in), 3, axis=-1)
    if reset_after:
        inner = h @ r + (0 if b is None else b[1])
        rz, rr, rh = np.split(inner, 3, axis=-1)
        z, rg = sigmoid(xz + rz), sigmoid(xr + rr)
        hh = np.tanh(xh + rg * rh)
    else:
        rz, rr = np.split(h @ r[:, : 2 * U], 2, axis=-1)
        z, rg = sigmoid(xz + rz), sigmoid(xr + rr)
        hh = np.tanh(xh + (rg * h) @ r[:, 2 * U:])
    out = z * h + (1 - z) * hh
    return out, (out,)


def np_rnn(kind, p, x, mask=None, go_backwards=False, initial=None, zero_output=False, reset_after=True):
    """Outputs (B, T, U) in computed order and final states, Keras' masked-scan semantics."""
    n = 2 if kind == "lstm" else 1
    states = tuple(np.zeros((x.shape[0], U)) for _ in range(n)) if initial is None else tuple(initial)
    order = range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])
    outs = []
    for t in order:
        out, new = np_cell(kind, p, x[:, t], states, reset_after)
        if mask is not None:
            m = mask[:, t][:, None]
            new = tuple(np.where(m, a, s) for a, s in zip(new, states))
            out = np.where(m, out, 0 * out if zero_output else states[0])
        states = new
        outs.append(out)
    return np.stack(outs, axis=1), states


LAYERS = {"simple": L.SimpleRNN, "lstm": L.LSTM, "gru": L.GRU}


def random_params(layer, shape=(T, D), dtype=np.float64):
    params, _ = layer.init(jax.random.key(0), shape)
    return jax.tree.map(lambda a: RNG.standard_normal(a.shape).astype(dtype) * 0.5, params)


def run64(layer, params, x, **kw):
    values = x.values if isinstance(x, Masked) else x
    shape = [tuple(v.shape[1:]) for v in values] if isinstance(values, list) else tuple(values.shape[1:])
    state = layer.init(jax.random.key(0), shape).state
    with jax.enable_x64(True):
        y, _ = layer.apply(jax.tree.map(jnp.asarray, params), state, x, **kw)
        return jax.tree.map(np.asarray, y)


def padded_mask():
    mask = np.ones((B, T), bool)
    mask[0, :2] = False  # pre-padding
    mask[1, 3:] = False  # post-padding
    mask[2, 2] = False  # a hole in the middle
    return mask


# Every option against every other at least once (pairwise), for each cell.
PAIRWISE = [(False, False, False), (True, False, True), (False, True, True), (True, True, False)]
CASES = [(kind, *options) for kind in ("simple", "lstm", "gru") for options in PAIRWISE]


@pytest.mark.parametrize("kind,return_sequences,go_backwards,masked", CASES)
def test_matches_numpy_loop(kind, return_sequences, go_backwards, masked):
    layer = LAYERS[kind](U, return_sequences=return_sequences, go_backwards=go_backwards, return_state=True)
    p = random_params(layer)
    x = RNG.standard_normal((B, T, D))
    mask = padded_mask() if masked else None
    ys = run64(layer, p, Masked(x, mask) if masked else x)
    outs, final = np_rnn(kind, p, x, mask, go_backwards)
    expected = outs if return_sequences else outs[:, -1]
    got = ys[0].values if isinstance(ys[0], Masked) else ys[0]
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    for a, b in zip(ys[1:], final):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    assert isinstance(ys[0], Masked) == (masked and return_sequences)


# The cost hints pick how the scan computes, never what: every combination must give the same numbers.
HINTS = [(in_loop, joint, policy) for in_loop in (True, False) for joint in (True, False)
         for policy in (None, jax.checkpoint_policies.dots_saveable)]


@pytest.mark.parametrize("kind", ["simple", "lstm", "gru"])
def test_cost_hints_change_neither_values_nor_gradients(kind):
    x = RNG.standard_normal((B, T, D))
    mask = padded_mask()
    results = []
    for in_loop, joint, policy in HINTS:
        layer = LAYERS[kind](U, return_sequences=True)
        layer.project_inputs_in_loop, layer.joint_matmul, layer.step_checkpoint_policy = in_loop, joint, policy
        p = random_params(layer) if not results else results[0][0]
        state = layer.init(jax.random.key(0), (T, D)).state

        def loss(params, x):
            y, _ = layer.apply(params, state, Masked(x, mask))
            return jnp.sum(jnp.sin(y.values))

        with jax.enable_x64(True):
            value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(jax.tree.map(jnp.asarray, p),
                                                                              jnp.asarray(x))
        results.append((p, float(value), jax.tree.map(np.asarray, grads)))
    _, value0, grads0 = results[0]
    for _, value, grads in results[1:]:
        np.testing.assert_allclose(value, value0, rtol=1e-10)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12), grads, grads0)


@pytest.mark.parametrize("reset_after,use_bias", [(False, True), (True, False), (False, False)])
def test_gru_variants_match_numpy(reset_after, use_bias):
    layer = L.GRU(U, reset_after=reset_after, use_bias=use_bias, return_sequences=True)
    p = random_params(layer)
    x = RNG.standard_normal((B, T, D))
    np.testing.assert_allclose(run64(layer, p, x), np_rnn("gru", p, x, reset_after=reset_after)[0],
                               rtol=1e-10, atol=1e-10)


def test_initial_state_and_unroll_match_numpy():
    layer = L.LSTM(U, return_sequences=True, unroll=True)
    p = random_params(layer)
    x = RNG.standard_normal((B, T, D))
    h0, c0 = RNG.standard_normal((B, U)), RNG.standard_normal((B, U))
    np.testing.assert_allclose(run64(layer, p, [x, h0, c0]), np_rnn("lstm", p, x, initial=(h0, c0))[0],
                               rtol=1e-10, atol=1e-10)


def test_weight_layouts_are_keras():
    shapes = lambda layer: {k: v.shape for k, v in layer.init(jax.random.key(0), (T, D))[0].items()}
    assert shapes(L.LSTM(U)) == {"kernel": (D, 4 * U), "recurrent_kernel": (U, 4 * U), "bias": (4 * U,)}
    assert shapes(L.GRU(U)) == {"kernel": (D, 3 * U), "recurrent_kernel": (U, 3 * U), "bias": (2, 3 * U)}
    assert shapes(L.GRU(U, reset_after=False))["bias"] == (3 * U,)
    assert shapes(L.SimpleRNN(U, use_bias=False)) == {"kernel": (D, U), "recurrent_kernel": (U, U)}
    bias = L.LSTM(U).init(jax.random.key(0), (T, D))[0]["bias"]
    np.testing.assert_array_equal(bias, np.r_[np.zeros(U), np.ones(U), np.zeros(2 * U)])  # unit_forget_bias
    rk = np.asarray(L.SimpleRNN(U).init(jax.random.key(0), (T, D))[0]["recurrent_kernel"])
    np.testing.assert_allclose(rk.T @ rk, np.eye(U), atol=1e-5)  # orthogonal


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul", None])
def test_bidirectional_matches_numpy(merge_mode):
    layer = L.Bidirectional(L.GRU(U, return_sequences=True), merge_mode=merge_mode)
    params, _ = layer.init(jax.random.key(0), (T, D))
    p = jax.tree.map(lambda a: RNG.standard_normal(a.shape) * 0.5, params)
    assert set(p) == {"forward_gru", "backward_gru"}
    x, mask = RNG.standard_normal((B, T, D)), padded_mask()
    y = run64(layer, p, Masked(x, mask))
    fwd, _ = np_rnn("gru", p["forward_gru"], x, mask, zero_output=True)
    bwd, _ = np_rnn("gru", p["backward_gru"], x, mask, go_backwards=True, zero_output=True)
    bwd = bwd[:, ::-1]
    expected = {"concat": np.concatenate([fwd, bwd], -1), "sum": fwd + bwd, "ave": (fwd + bwd) / 2,
                "mul": fwd * bwd, None: [fwd, bwd]}[merge_mode]
    got = [v.values for v in y] if merge_mode is None else y.values
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_time_distributed_and_masked_pooling():
    x, mask = RNG.standard_normal((B, T, D)), padded_mask()
    td = L.TimeDistributed(L.Dense(3))
    p, _ = td.init(jax.random.key(1), (T, D))
    y = run64(td, p, Masked(x, mask))
    np.testing.assert_allclose(y.values, x @ np.asarray(p["dense"]["kernel"]) + np.asarray(p["dense"]["bias"]),
                               rtol=1e-6)
    np.testing.assert_array_equal(y.mask, mask)
    avg = run64(L.GlobalAveragePooling1D(), {}, Masked(x, mask))
    mx = run64(L.GlobalMaxPooling1D(), {}, Masked(x, mask))
    for i in range(B):
        np.testing.assert_allclose(avg[i], x[i][mask[i]].mean(0), rtol=1e-12)
        np.testing.assert_allclose(mx[i], x[i][mask[i]].max(0), rtol=1e-12)
    empty = run64(L.GlobalAveragePooling1D(), {}, Masked(x, np.zeros((B, T), bool)))
    np.testing.assert_array_equal(empty, 0)


def test_masks_from_embedding_and_masking_reach_the_lstm():
    ids = np.array([[0, 0, 3, 4, 5], [1, 2, 3, 0, 0]])
    emb = L.Embedding(10, D, mask_zero=True)
    e_params, _ = emb.init(jax.random.key(0), (T,))
    vectors, mask = emb.apply(e_params, {}, ids)[0]
    np.testing.assert_array_equal(mask, ids != 0)
    masking = L.Masking(0.0)
    x = np.asarray(vectors) * (ids != 0)[..., None]
    out = masking.apply({}, {}, x)[0]
    np.testing.assert_array_equal(out.mask, ids != 0)
    model = L.serial(L.Embedding(10, D, mask_zero=True), L.LSTM(U))
    params, state = model.init(jax.random.key(2), (T,))
    y = np.asarray(model.apply(params, state, ids)[0])
    # The padded steps change nothing: the same review without its padding gives the same final state.
    lstm_params = jax.tree.map(np.asarray, params["lstm"])
    table = np.asarray(params["embedding"]["embeddings"])
    for i in range(2):
        real = ids[i][ids[i] != 0]
        _, (h, _) = np_rnn("lstm", lstm_params, table[real][None].astype(np.float64))
        np.testing.assert_allclose(y[i], h[0], rtol=1e-5, atol=1e-6)


def test_mask_travels_through_a_functional_model_and_dense():
    inputs = jnl.Input((T,), dtype="int32")
    x = L.Embedding(10, D, mask_zero=True)(inputs)
    x = L.Dense(D)(x)  # keeps the mask
    outputs = L.GRU(U)(x)
    model = jnl.Model(inputs, outputs)
    params, state = model.init(jax.random.key(0), (T,))
    ids = np.array([[0, 0, 1, 2, 3]])
    y_padded = model.apply(params, state, ids)[0]
    y_short = model.apply(params, state, np.array([[1, 2, 3, 4, 5]])[:, :3])[0] if False else None
    assert y_short is None
    # Changing what sits under the padding (the ids are 0 there) cannot change anything, but
    # changing a real id does.
    y_other = model.apply(params, state, np.array([[0, 0, 1, 2, 4]]))[0]
    assert not np.allclose(y_padded, y_other)


def test_flatten_drops_a_mask_with_a_warning():
    model = L.serial(L.Embedding(10, D, mask_zero=True), L.Flatten())
    params, state = model.init(jax.random.key(0), (T,))
    with pytest.warns(UserWarning, match="Flatten 'flatten' was given a masked input"):
        y, _ = model.apply(params, state, np.array([[0, 1, 2, 3, 4]]))
    assert not isinstance(y, Masked)


def test_functional_initial_state_and_explicit_mask():
    seq, h0 = jnl.Input((T, D)), jnl.Input((U,))
    m = jnl.Input((T,), dtype="bool")
    a = L.GRU(U, return_sequences=True)(seq, initial_state=[h0])
    b = L.SimpleRNN(U)(seq, mask=m)
    model = jnl.Model([seq, h0, m], [a, b])
    params, state = model.init(jax.random.key(0), [(T, D), (U,), (T,)])
    x, h, mask = RNG.standard_normal((B, T, D)), RNG.standard_normal((B, U)), padded_mask()
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), params)
        ya, yb = model.apply(p64, state, [x, h, mask])[0]
    pa = jax.tree.map(np.asarray, p64["gru"])
    pb = jax.tree.map(np.asarray, p64["simple_rnn"])
    np.testing.assert_allclose(ya, np_rnn("gru", pa, x, initial=(h,))[0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(yb, np_rnn("simple", pb, x, mask)[0][:, -1], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["simple", "lstm", "gru"])
def test_gradients_float64_through_the_mask(kind):
    layer = LAYERS[kind](2, return_sequences=True)
    mask = np.array([[True, False, True], [False, True, True]])
    check_layer_grads(layer, (3, 2), x=Masked(RNG.standard_normal((2, 3, 2)), mask))


def test_gradients_of_wrappers_and_pooling():
    check_layer_grads(L.Bidirectional(L.SimpleRNN(2, return_sequences=True)), (2, 2))
    check_layer_grads(L.TimeDistributed(L.Dense(2)), (2, 2))
    check_layer_grads(L.GlobalMaxPooling1D(), (3, 2), x=Masked(RNG.standard_normal((2, 3, 2)),
                                                              np.array([[1, 0, 1], [1, 1, 0]], bool)))


def test_dropout_is_reproducible_and_fixed_across_time():
    layer = L.SimpleRNN(4, dropout=0.5, return_sequences=True, activation=None, use_bias=False)
    params, _ = layer.init(jax.random.key(0), (T, 1))
    params = {"kernel": jnp.ones((1, 4)), "recurrent_kernel": jnp.zeros((4, 4))}
    x = jnp.ones((B, T, 1))
    key = jax.random.key(3)
    y1 = layer.apply(params, {}, x, rng=key, training=True)[0]
    y2 = layer.apply(params, {}, x, rng=key, training=True)[0]
    np.testing.assert_array_equal(y1, y2)
    # One mask per sequence, reused at every step: all steps of an example are equal, values in {0, 2}.
    np.testing.assert_array_equal(y1, jnp.broadcast_to(y1[:, :1], y1.shape))
    assert set(np.unique(np.asarray(y1))) <= {0.0, 2.0}
    np.testing.assert_array_equal(layer.apply(params, {}, x)[0], 1.0)  # inference: no dropout
    with pytest.raises(LayerError, match="needs an rng key"):
        layer.apply(params, {}, x, training=True)


def test_errors_name_the_layer_and_shapes():
    with pytest.raises(LayerError, match=r"LSTM 'lstm'.*\(timesteps, features\).*\(8,\).*add a time axis"):
        L.LSTM(4).init(jax.random.key(0), (8,))
    layer = L.GRU(4)
    params, _ = layer.init(jax.random.key(0), (T, D))
    with pytest.raises(LayerError, match=r"GRU 'gru' got a mask of shape \(3, 4\) for input \(3, 5, 4\)"):
        layer.apply(params, {}, Masked(jnp.ones((B, T, D)), jnp.ones((B, 4), bool)))
    with pytest.raises(LayerError, match=r"expects 4 features per step"):
        layer.apply(params, {}, jnp.ones((B, T, 3)))
    with pytest.raises(LayerError, match=r"initial_state must be 2 array\(s\) of shape \(3, 4\)"):
        L.LSTM(4).apply(L.LSTM(4).init(jax.random.key(0), (T, D))[0], {}, [jnp.ones((B, T, D)), jnp.ones((B, 4))])
    with pytest.raises(NotImplementedError, match="stateful=True"):
        L.LSTM(4, stateful=True)
    with pytest.raises(LayerError, match="Bidirectional: layer must be a recurrent layer"):
        L.Bidirectional(L.Dense(3))
    with pytest.raises(LayerError, match="merge_mode"):
        L.Bidirectional(L.LSTM(3), merge_mode="max")
    with pytest.raises(LayerError, match="dropout must be a number in"):
        L.GRU(3, dropout=1.5)
    emb = L.Embedding(5, 2)
    e_params, _ = emb.init(jax.random.key(0), (3,))
    with pytest.raises(LayerError, match=r"Embedding 'embedding' got id 7 at index \(0, 1\).*\[0, 5\)"):
        emb.apply(e_params, {}, np.array([[1, 7, 2]]))
    # Compiled code cannot raise: an out-of-range id gives NaN, never a silently clipped row.
    y = jax.jit(lambda ids: emb.apply(e_params, {}, ids)[0])(np.array([[1, 7, 2]]))
    assert np.isnan(np.asarray(y[0, 1])).all() and not np.isnan(np.asarray(y[0, 0])).any()


# ----------------------------------------------------------------------------------- Keras 3 oracle



def _keras_weights(params):
    return [np.asarray(params[k]) for k in ("kernel", "recurrent_kernel", "bias") if k in params]


KERAS_CASES = [
    ("SimpleRNN", dict(return_sequences=True)),
    ("SimpleRNN", dict(go_backwards=True, activation="relu")),
    ("LSTM", dict()),
    ("LSTM", dict(return_sequences=True, return_state=True, go_backwards=True)),
    ("LSTM", dict(return_sequences=True, unroll=True, use_bias=False)),
    ("GRU", dict(return_sequences=True)),
    ("GRU", dict(reset_after=False, return_state=True)),
    ("GRU", dict(go_backwards=True, return_sequences=True, recurrent_activation="hard_sigmoid")),
]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("name,options", KERAS_CASES)
def test_matches_keras(keras, name, options, masked):
    ours = getattr(L, name)(U, **options)
    theirs = getattr(keras.layers, name)(U, **options)
    params = random_params(ours, dtype=np.float32)
    x = RNG.standard_normal((B, T, D)).astype(np.float32)
    mask = padded_mask() if masked else None
    theirs.build((B, T, D))
    theirs.set_weights(_keras_weights(params))
    expected = theirs(x, mask=mask)
    got, _ = ours.apply(params, {}, Masked(x, mask) if masked else x)
    got = got if isinstance(got, list) else [got]
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    for a, b in zip(got, expected):
        a = a.values if isinstance(a, Masked) else a
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("merge_mode", ["concat", "ave"])
def test_bidirectional_matches_keras(keras, merge_mode):
    ours = L.Bidirectional(L.LSTM(U, return_sequences=True), merge_mode=merge_mode)
    theirs = keras.layers.Bidirectional(keras.layers.LSTM(U, return_sequences=True), merge_mode=merge_mode)
    params, state = ours.init(jax.random.key(0), (T, D))
    params = jax.tree.map(lambda a: (RNG.standard_normal(a.shape) * 0.5).astype(np.float32), params)
    x, mask = RNG.standard_normal((B, T, D)).astype(np.float32), padded_mask()
    theirs.build((B, T, D))
    theirs.set_weights(_keras_weights(params["forward_lstm"]) + _keras_weights(params["backward_lstm"]))
    np.testing.assert_allclose(np.asarray(ours.apply(params, state, Masked(x, mask))[0].values),
                               np.asarray(theirs(x, mask=mask)), rtol=1e-5, atol=1e-5)


def test_embedding_lstm_model_matches_keras(keras):
    ids = np.array([[0, 0, 3, 4, 5], [1, 2, 3, 0, 0], [6, 0, 7, 8, 9]], np.int32)
    ours = jnl.Sequential([L.Embedding(10, D, mask_zero=True), L.LSTM(U, return_sequences=True),
                           L.GlobalAveragePooling1D(), L.Dense(1, activation="sigmoid")])
    params, state = ours.init(jax.random.key(0), (T,))
    theirs = keras.Sequential([keras.Input((T,), dtype="int32"), keras.layers.Embedding(10, D, mask_zero=True),
                               keras.layers.LSTM(U, return_sequences=True), keras.layers.GlobalAveragePooling1D(),
                               keras.layers.Dense(1, activation="sigmoid")])
    theirs.set_weights([np.asarray(params["embedding"]["embeddings"]), *_keras_weights(params["lstm"]),
                        np.asarray(params["dense"]["kernel"]), np.asarray(params["dense"]["bias"])])
    np.testing.assert_allclose(np.asarray(ours.apply(params, state, ids)[0]), np.asarray(theirs(ids)),
                               rtol=1e-5, atol=1e-6)


def test_imdb_recipe_trains_as_keras_does(keras):
    """Same initial weights and batch order: Keras' IMDB recipe trains to the same history and weights.

    So any accuracy difference between the two over seeds comes from the random streams (initial
    weights, shuffling), which the engines draw differently, not from the training arithmetic.
    """
    from jaxnet_lite.datasets import imdb
    from jaxnet_lite.utils import pad_sequences

    (x, y), _ = imdb.load_data(num_words=500)
    x, y = pad_sequences(x[:192], maxlen=40), y[:192].astype("float32")
    ours = jnl.Sequential([jnl.Input((40,), dtype="int32"), L.Embedding(500, 16, mask_zero=True), L.LSTM(8),
                           L.Dense(1, activation="sigmoid")])
    theirs = keras.Sequential([keras.Input((40,), dtype="int32"), keras.layers.Embedding(500, 16, mask_zero=True),
                               keras.layers.LSTM(8), keras.layers.Dense(1, activation="sigmoid")])
    for model in (ours, theirs):
        model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    theirs.set_weights(ours.get_weights())
    fits = [model.fit(x, y, batch_size=32, epochs=2, shuffle=False, validation_split=0.25, verbose=0)
            for model in (ours, theirs)]
    assert fits[0].history.keys() == fits[1].history.keys()
    for key, values in fits[0].history.items():
        np.testing.assert_allclose(values, fits[1].history[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
