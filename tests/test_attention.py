"""MultiHeadAttention: against Keras 3 with copied weights, against a NumPy reference written here, the
two XLA formulations against each other, causality, gradients, the functional graph, and every error.

The NumPy reference follows Keras' definition (projections, scores scaled by 1/sqrt(key_dim), masked
softmax, output projection), never the library's code. A query row with nothing to attend to gets
Keras' answer: the mean of the values on its default path, zeros where it returns scores.
All cases share a few shapes, so eager ops compile once.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads

from jaxnet_lite import Input, Model, constraints, regularizers
from jaxnet_lite import layers as L
from jaxnet_lite.core import Layer, LayerError, Masked, Variables
from jaxnet_lite.layers.attention import MultiHeadAttention
from jaxnet_lite.models import load_model
from jaxnet_lite.testing import check_layer_grads

RNG = np.random.default_rng(20240611)
KEY = jax.random.key(0)
TIGHT = {"rtol": 1e-10, "atol": 1e-10}
F32 = {"rtol": 1e-5, "atol": 1e-5}
B, T, S, DQ, DV, DK, HEADS, KEY_DIM = 2, 4, 6, 6, 5, 3, 2, 3
NAME = "MultiHeadAttention 'multi_head_attention' "


def randn(*shape):
    return RNG.standard_normal(shape)


# ------------------------------------------------------------------------------ NumPy reference


def np_attention(params, query, value, key=None, allowed=None, causal=False, zero_masked=False):
    """Keras' multi-head attention in float64 NumPy; `allowed` is a boolean (B, T, S) mask or None."""
    key = value if key is None else key

    def project(p, x):
        y = np.einsum("btd,dnh->btnh", x, p["kernel"])
        return y + p["bias"] if "bias" in p else y

    q, k, v = project(params["query"], query), project(params["key"], key), project(params["value"], value)
    b, t, n, h = q.shape
    s = k.shape[1]
    mask = np.ones((b, t, s), bool) if allowed is None else np.asarray(allowed, bool).copy()
    if causal:
        mask &= np.tril(np.ones((t, s), bool))[None]
    weights = np.zeros((b, n, t, s))
    for bi in range(b):
        for ni in range(n):
            for ti in range(t):
                logits = np.array([q[bi, ti, ni] @ k[bi, si, ni] / np.sqrt(h) for si in range(s)])
                keep = mask[bi, ti]
                if not keep.any():
                    weights[bi, ni, ti] = 0.0 if zero_masked else 1.0 / s
                    continue
                e = np.where(keep, np.exp(logits - logits[keep].max()), 0.0)
                weights[bi, ni, ti] = e / e.sum()
    o = np.einsum("bnts,bsnh->btnh", weights, v)
    out = params["attention_output"]
    y = np.einsum("btnh,nh...->bt...", o, out["kernel"])
    return (y + out["bias"] if "bias" in out else y), weights


def param_shapes(layer, input_shape):
    """Shapes of the params `init` makes, traced abstractly (nothing compiled)."""
    return jax.tree.map(lambda a: a.shape, jax.eval_shape(lambda k: layer.init(k, input_shape).params, KEY))


def random_params(layer, input_shape, dtype=np.float64):
    shapes = param_shapes(layer, input_shape)
    return jax.tree.map(lambda s: randn(*s).astype(dtype), shapes, is_leaf=lambda s: isinstance(s, tuple))


class Jitted(Layer):
    """`layer`'s own `apply`, compiled whole instead of op by op; `init` draws its params here in NumPy
    (so no random-number program is compiled). Only compile time is saved: the functions checked are
    the layer's."""

    def __init__(self, layer):
        super().__init__(name=layer.name)
        self.layer = layer
        self._apply = {flag: jax.jit(lambda p, s, x, rng, flag=flag: layer.apply(p, s, x, rng=rng, training=flag))
                       for flag in (False, True)}

    def init(self, rng, input_shape=None):
        params = jax.tree.map(jnp.asarray, random_params(self.layer, input_shape, np.float32))
        state = jax.eval_shape(lambda k: self.layer.init(k, input_shape).state, KEY)
        return Variables(params, jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), state))

    def apply(self, params, state, x, *, rng=None, training=False):
        return self._apply[bool(training)](params, state, x, rng)

    def output_shape(self, input_shape):
        return self.layer.output_shape(input_shape)


def as64(tree):
    is_float = lambda a: np.asarray(a).dtype.kind == "f"
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64) if is_float(a) else jnp.asarray(a), tree)


def run64(layer, params, x):
    with jax.enable_x64(True):
        y, _ = Jitted(layer).apply(as64(params), {}, as64(x))
        return jax.tree.map(np.asarray, y)


def padding_mask(b=B, t=T, s=S, empty_row=True):
    """A (B, T, S) mask with a shorter key sequence and, optionally, one query row that sees nothing."""
    m = np.ones((b, t, s), bool)
    m[0, :, s - 2:] = False
    if empty_row:
        m[-1, 1, :] = False
    return m


def lengths_mask(b, t, lengths):
    return np.arange(t)[None, :] < np.asarray(lengths)[:, None]


# name -> (layer kwargs, call options, inputs present, explicit mask). Self-attention passes the query twice.
CASES = {
    "self_causal": ({}, {"use_causal_mask": True}, ("query", "query"), False),
    "cross_padding": ({}, {}, ("query", "value"), True),
    "key_causal_scores": ({}, {"use_causal_mask": True, "return_attention_scores": True},
                          ("query", "value", "key"), True),
    "value_dim_output_shape": ({"value_dim": 4, "output_shape": (3, 2), "use_bias": False},
                               {"return_attention_scores": True}, ("query", "value"), True),
}
DATA = {"query": randn(B, T, DQ), "value": randn(B, S, DV), "key": randn(B, S, DK)}
SHAPES = {"query": (T, DQ), "value": (S, DV), "key": (S, DK)}


def build_case(name, **overrides):
    kwargs, options, present, explicit = CASES[name]
    options = {**options, **overrides}
    layout = ("query", "value", "key")[: len(present)]
    x = [DATA[p] for p in present]
    shapes = [SHAPES[p] for p in present]
    length = T if present[1] == "query" else S
    mask = padding_mask(s=length) if explicit else None
    if explicit:
        x, shapes, layout = x + [mask], shapes + [(T, length)], (*layout, "attention_mask")
    runner = MultiHeadAttention(HEADS, KEY_DIM, **kwargs).configured(input_layout=layout, **options)
    key = DATA["key"] if "key" in present else None
    return runner, x, shapes, (x[0], x[1], key, mask), options


def reference(name, params, **overrides):
    *_, (query, value, key, mask), options = build_case(name, **overrides)
    return np_attention(params, query, value, key, mask, options.get("use_causal_mask", False),
                        zero_masked=options.get("return_attention_scores", False))


@pytest.mark.parametrize("name,overrides", [*((n, {}) for n in CASES),
                                            ("value_dim_output_shape", {"return_attention_scores": False})])
def test_matches_numpy_reference(name, overrides):
    runner, x, shapes, _, options = build_case(name, **overrides)
    params = random_params(runner, shapes)
    assert params["query"]["kernel"].shape == (DQ, HEADS, KEY_DIM)
    y = run64(runner, params, x)
    ref, weights = reference(name, params, **overrides)
    if options.get("return_attention_scores"):
        y, scores = y
        assert scores.shape == (B, HEADS, T, x[1].shape[1])
        np.testing.assert_allclose(scores, weights, **TIGHT)
    np.testing.assert_allclose(y, ref, **TIGHT)


def test_a_query_row_with_nothing_to_attend_gets_the_mean_of_the_values():
    runner, x, shapes, _, _ = build_case("cross_padding")
    params = random_params(runner, shapes)
    y = run64(runner, params, x)
    values = np.einsum("bsd,dnh->bsnh", x[1], params["value"]["kernel"]) + params["value"]["bias"]
    out = params["attention_output"]
    expected = np.einsum("nh,nho->o", values[-1].mean(axis=0), out["kernel"]) + out["bias"]
    np.testing.assert_allclose(y[-1, 1], expected, **TIGHT)  # the row masked out in padding_mask
    y, scores = run64(runner.configured(return_attention_scores=True), params, x)
    np.testing.assert_allclose(scores[-1, :, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(y[-1, 1], out["bias"], **TIGHT)


def test_one_input_is_self_attention():
    layer = MultiHeadAttention(HEADS, KEY_DIM)
    params = random_params(layer, (T, DQ))
    q = DATA["query"]
    np.testing.assert_allclose(run64(layer, params, q), run64(layer, params, [q, q]), **TIGHT)


def test_query_and_value_masks_from_masked_inputs():
    layer = MultiHeadAttention(HEADS, KEY_DIM)
    params = random_params(layer, [(T, DQ), (S, DV)])
    q, v = DATA["query"], DATA["value"]
    q_mask, v_mask = lengths_mask(B, T, [4, 2]), lengths_mask(B, S, [3, 6])
    out = run64(layer, params, [Masked(q, q_mask), Masked(v, v_mask)])
    assert isinstance(out, Masked)
    np.testing.assert_array_equal(out.mask, q_mask)  # the output keeps the query's mask
    ref, _ = np_attention(params, q, v, allowed=q_mask[:, :, None] & v_mask[:, None, :])
    np.testing.assert_allclose(out.values, ref, **TIGHT)

    causal = layer.configured(use_causal_mask=True)  # self-attention: the one mask is query's and value's
    params = random_params(causal, (T, DQ))
    out = run64(causal, params, Masked(q, q_mask))
    ref, _ = np_attention(params, q, q, allowed=q_mask[:, :, None] & q_mask[:, None, :], causal=True)
    np.testing.assert_allclose(out.values, ref, **TIGHT)


def test_explicit_masks_combine_with_the_attention_mask():
    runner = MultiHeadAttention(HEADS, KEY_DIM).configured(
        input_layout=("query", "value", "attention_mask", "value_mask"))
    params = random_params(runner, [(T, DQ), (S, DV), (T, S), (S,)])
    q, v = DATA["query"], DATA["value"]
    attention, v_mask = padding_mask(empty_row=False), lengths_mask(B, S, [2, 5])
    y = run64(runner, params, [q, v, attention.astype(np.int32), v_mask])
    ref, _ = np_attention(params, q, v, allowed=attention & v_mask[:, None, :])
    np.testing.assert_allclose(y, ref, **TIGHT)


# ----------------------------------------------------------------------------- the two formulations


def both_paths(runner, params, x):
    x = [jnp.asarray(a, jnp.float32) if np.asarray(a).dtype.kind == "f" else jnp.asarray(a) for a in x]
    return [np.asarray(Jitted(runner.configured(implementation=impl)).apply(params, {}, x)[0])
            for impl in ("einsum", "dot_product_attention")]


@pytest.mark.parametrize("name", ["self_causal", "key_causal_scores"])
def test_fused_and_einsum_paths_agree(name):
    """Causal alone (the fused op's `is_causal`), and key != value with padding, an empty row and causal."""
    runner, x, shapes, _, _ = build_case(name, return_attention_scores=False)
    assert runner.configured(implementation="dot_product_attention")._use_fused(jnp.float32)
    einsum, fused = both_paths(runner, random_params(runner, shapes, np.float32), x)
    np.testing.assert_allclose(einsum, fused, **F32)


def test_fused_path_is_used_only_where_it_gives_kerass_values():
    fused = MultiHeadAttention(2, 3, implementation="dot_product_attention")
    assert fused._use_fused(jnp.float32) and fused._use_fused(jnp.bfloat16)
    assert not fused._use_fused(jnp.float64)  # its softmax runs in float32
    assert not fused.configured(return_attention_scores=True)._use_fused()
    assert not MultiHeadAttention(2, 3, dropout=0.1, implementation="dot_product_attention")._use_fused()
    assert not MultiHeadAttention(2, 3, value_dim=4, implementation="dot_product_attention")._use_fused()
    assert not MultiHeadAttention(2, 3, implementation="einsum")._use_fused()
    assert MultiHeadAttention(2, 3)._use_fused(jnp.float32)  # the default where it is valid


# ------------------------------------------------------------------------------------ causality

_CAUSAL = {}


def causal_apply(implementation):
    """One jitted causal self-attention per implementation, shared by the examples."""
    if implementation not in _CAUSAL:
        layer = MultiHeadAttention(HEADS, KEY_DIM, implementation=implementation).configured(use_causal_mask=True)
        params = random_params(layer, (T, DQ), np.float32)
        _CAUSAL[implementation] = jax.jit(lambda x: layer.apply(params, {}, x)[0])
    return _CAUSAL[implementation]


@given(cut=st.integers(1, T - 1), seed=st.integers(0, 2**16),
       implementation=st.sampled_from(["einsum", "dot_product_attention"]))
def test_causal_outputs_never_depend_on_later_steps(cut, seed, implementation):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, DQ)).astype(np.float32)
    changed = x.copy()
    changed[:, cut:] = rng.standard_normal(changed[:, cut:].shape) * 10
    f = causal_apply(implementation)
    y, y2 = np.asarray(f(x)), np.asarray(f(changed))
    np.testing.assert_allclose(y[:, :cut], y2[:, :cut], rtol=1e-6, atol=1e-6)
    assert not np.allclose(y[:, cut:], y2[:, cut:])


# -------------------------------------------------------------------------- protocol and gradients


def test_output_shapes_and_per_example_vmap():
    runner, x, shapes, _, _ = build_case("key_causal_scores")
    assert runner.output_shape(shapes) == [(T, DQ), (HEADS, T, S)]
    params = random_params(runner, shapes, np.float32)
    x = [jnp.asarray(a, jnp.float32) if a.dtype.kind == "f" else jnp.asarray(a) for a in x]
    y, scores = Jitted(runner).apply(params, {}, x)[0]
    assert y.shape == (B, T, DQ) and scores.shape == (B, HEADS, T, S)
    one = lambda xi: runner.apply(params, {}, [a[None] for a in xi])[0][0][0]
    np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(one))(x)), np.asarray(y), **F32)


def test_gradients_of_self_attention():
    check_layer_grads(Jitted(MultiHeadAttention(HEADS, KEY_DIM)), (T, DQ), x=DATA["query"])


def test_gradients_with_masks():
    causal = MultiHeadAttention(HEADS, KEY_DIM).configured(use_causal_mask=True)
    # The mask is boolean, so check_layer_grads differentiates the params only.
    check_layer_grads(Jitted(causal), (T, DQ), x=Masked(DATA["query"], lengths_mask(B, T, [4, 2])))
    runner, x, shapes, _, _ = build_case("cross_padding")
    with jax.enable_x64(True):  # and the inputs, with an attention mask (and an empty row) held fixed
        params = as64(random_params(runner, shapes))
        f = jax.jit(lambda q, v: runner.apply(params, {}, [q, v, jnp.asarray(x[2])])[0])
        check_grads(f, tuple(as64(x[:2])), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)


def test_dropout_needs_a_key_and_drops_weights_only_in_training():
    layer = MultiHeadAttention(HEADS, KEY_DIM, dropout=0.5).configured(return_attention_scores=True)
    assert layer.stochastic
    params = random_params(layer, (T, DQ), np.float32)
    x = jnp.asarray(DATA["query"], jnp.float32)
    with pytest.raises(LayerError, match="^" + re.escape(NAME + "needs a random key when training=True")):
        layer.apply(params, {}, x, training=True)
    rng = jax.random.key(1, impl="rbg")  # XLA's own generator: compiles much faster than threefry on CPU
    (y, scores), _ = Jitted(layer).apply(params, {}, x, training=True, rng=rng)
    y_inference, weights = np_attention(params, DATA["query"], DATA["query"], zero_masked=True)
    np.testing.assert_allclose(np.asarray(scores), weights, **F32)  # the scores are those before dropout
    assert not np.allclose(np.asarray(y), y_inference, atol=1e-3)


def test_kernel_and_bias_rules_apply_to_all_four_projections():
    layer = MultiHeadAttention(HEADS, KEY_DIM, kernel_regularizer=regularizers.L2(0.5),
                               bias_constraint=constraints.NonNeg())
    params = random_params(layer, (T, DQ))
    kernels = [params[k]["kernel"] for k in ("query", "key", "value", "attention_output")]
    assert float(layer.penalty(params)) == pytest.approx(0.5 * sum(np.sum(k**2) for k in kernels), rel=1e-5)
    constrained = layer.constrain(params)
    for key in params:
        assert np.all(np.asarray(constrained[key]["bias"]) >= 0)
        np.testing.assert_array_equal(constrained[key]["kernel"], params[key]["kernel"])
    assert float(MultiHeadAttention(2, 3).penalty(params)) == 0.0


# ------------------------------------------------------------------------------- functional graph


def test_functional_model_builds_predicts_and_summarises():
    inputs = Input((T, 16))
    x = L.MultiHeadAttention(num_heads=2, key_dim=8)(inputs, inputs, use_causal_mask=True)
    model = Model(inputs, L.Dense(4)(x))
    model.variables = Jitted(model).init(KEY, (T, 16))  # params drawn in NumPy: nothing to compile
    assert model.predict(randn(3, T, 16).astype(np.float32), verbose=0).shape == (3, T, 4)
    text = model.summary(show_flops=False, return_text=True)
    row = next(line for line in text.split("\n") if "multi_head_attention (MultiHeadAttention)" in line)
    assert f"(None, {T}, 16)" in row and "1,088" in row  # Keras' count: 4 x (16*2*8 + 16)
    assert "Total params: 1,156" in text


def test_functional_call_with_a_mask_input_scores_and_keywords(tmp_path):
    q, v, m = Input((T, DQ)), Input((S, DV)), Input((T, S), dtype="bool")
    y, scores = L.MultiHeadAttention(HEADS, KEY_DIM)(query=q, value=v, attention_mask=m, use_causal_mask=True,
                                                     return_attention_scores=True)
    assert y.shape == (None, T, DQ) and scores.shape == (None, HEADS, T, S)
    model = Model([q, v, m], [y, scores])
    model.variables = Jitted(model).init(KEY, [(T, DQ), (S, DV), (T, S)])
    data = [DATA["query"].astype(np.float32), DATA["value"].astype(np.float32), padding_mask(empty_row=False)]
    out, s = model.predict(data, verbose=0)
    assert out.shape == (B, T, DQ)
    np.testing.assert_allclose(s.sum(-1), 1.0, rtol=1e-5)
    assert np.all(s[0, :, :, S - 2:] == 0) and np.all(np.triu(s[1, 0], 1) == 0)  # padding and causal
    model.save(tmp_path / "attention.keras")  # the call's options are part of the saved graph
    again = load_model(tmp_path / "attention.keras")
    for a, b in zip(again.predict(data, verbose=0), (out, s)):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("kwargs,message", [
    ({"num_heads": 0, "key_dim": 4}, "MultiHeadAttention: num_heads must be a positive integer, got 0"),
    ({"num_heads": 2.0, "key_dim": 4}, "MultiHeadAttention: num_heads must be a positive integer, got 2.0"),
    ({"num_heads": 2, "key_dim": -1}, "MultiHeadAttention: key_dim must be a positive integer, got -1"),
    ({"num_heads": 2, "key_dim": "8"}, "MultiHeadAttention: key_dim must be a positive integer, got '8'"),
    ({"num_heads": 2, "key_dim": 4, "value_dim": 0}, "MultiHeadAttention: value_dim must be a positive integer"),
    ({"num_heads": 2, "key_dim": 4, "dropout": 1.0}, "MultiHeadAttention: dropout must be a float in [0, 1)"),
    ({"num_heads": 2, "key_dim": 4, "output_shape": (3, 0)}, "MultiHeadAttention: output_shape must be"),
    ({"num_heads": 2, "key_dim": 4, "attention_axes": (1, 2)},
     "MultiHeadAttention: attention_axes=(1, 2) is not supported; only None or the time axis (1 or -2)"),
    ({"num_heads": 2, "key_dim": 4, "attention_axes": 2}, "MultiHeadAttention: attention_axes=2 is not supported"),
    ({"num_heads": 2, "key_dim": 4, "implementation": "flash"}, "MultiHeadAttention: implementation must be"),
])
def test_constructor_errors(kwargs, message):
    with pytest.raises(LayerError, match="^" + re.escape(message)):
        MultiHeadAttention(**kwargs)


def test_the_time_axis_is_accepted_as_attention_axes():
    for axes in (None, 1, -2, (1,), [-2]):
        assert MultiHeadAttention(2, 4, attention_axes=axes).attention_axes in (None, (1,))


def test_projection_size_mismatch_names_the_layer_and_shapes():
    layer = MultiHeadAttention(2, 3)
    params = random_params(layer, [(4, 6), (5, 7)], np.float32)
    with pytest.raises(LayerError, match="^" + re.escape(
            NAME + "expects query of shape (batch, time, 6) to match its query kernel (6, 2, 3), got (2, 4, 5)")):
        layer.apply(params, {}, [jnp.zeros((2, 4, 5)), jnp.zeros((2, 5, 7))])
    with pytest.raises(LayerError, match="^" + re.escape(
            NAME + "expects value of shape (batch, time, 7) to match its value kernel (7, 2, 3), got (2, 5, 6)")):
        layer.apply(params, {}, [jnp.zeros((2, 4, 6)), jnp.zeros((2, 5, 6))])


def test_wrong_rank_and_lengths_are_refused_at_init():
    with pytest.raises(LayerError, match="^" + re.escape(
            NAME + "expects query of rank 2 (time, features), got (4, 4, 8)")):
        MultiHeadAttention(2, 3).init(KEY, (4, 4, 8))
    with pytest.raises(LayerError, match="^" + re.escape(
            NAME + "expects key and value of the same length, got key (6, 3) and value (5, 7)")):
        MultiHeadAttention(2, 3).init(KEY, [(4, 6), (5, 7), (6, 3)])
    with pytest.raises(LayerError, match="^" + re.escape(
            NAME + "expects query, [query, value] or [query, value, key], got 4 inputs")):
        MultiHeadAttention(2, 3).init(KEY, [(4, 8)] * 4)


def test_attention_mask_of_wrong_shape_or_dtype():
    layer = MultiHeadAttention(2, 3).configured(input_layout=("query", "value", "attention_mask"))
    params = random_params(layer, [(4, 6), (5, 6), (4, 5)], np.float32)
    q, v = jnp.zeros((2, 4, 6)), jnp.zeros((2, 5, 6))
    with pytest.raises(LayerError, match="^" + re.escape(
            NAME + "expects attention_mask of shape (batch, 4, 5) (query steps, key steps), or (batch, 2, 4, 5), "
                   "got (2, 4, 6)")):
        layer.apply(params, {}, [q, v, jnp.ones((2, 4, 6), bool)])
    with pytest.raises(LayerError, match="^" + re.escape(
            NAME + "expects attention_mask to be boolean (True = attend) or 0/1 numbers, got dtype complex64")):
        layer.apply(params, {}, [q, v, jnp.ones((2, 4, 5), jnp.complex64)])
    with pytest.raises(LayerError, match=re.escape("got (batch, 4, 6)")):
        layer.init(KEY, [(4, 6), (5, 6), (4, 6)])


def test_carried_mask_of_wrong_shape():
    layer = MultiHeadAttention(2, 3)
    params = random_params(layer, (4, 6), np.float32)
    with pytest.raises(LayerError, match="^" + re.escape(
            NAME + "expects query_mask of shape (batch, 4) like its query (2, 4, 6), got (2, 3)")):
        layer.apply(params, {}, Masked(jnp.zeros((2, 4, 6)), jnp.ones((2, 3), bool)))


def test_graph_errors_name_the_layer_and_shapes():
    q, v = Input((4, 8)), Input((5, 8))
    with pytest.raises(LayerError, match="^" + re.escape(NAME + "expects attention_mask of shape (batch, 4, 5)")):
        MultiHeadAttention(2, 3)(q, v, attention_mask=Input((4, 6), dtype="bool"))
    with pytest.raises(LayerError, match="^" + re.escape(NAME + "expects attention_mask to be boolean")):
        MultiHeadAttention(2, 3)(q, v, attention_mask=Input((4, 5), dtype="complex64"))
    with pytest.raises(LayerError, match="^" + re.escape(NAME + "was given a key without a value")):
        MultiHeadAttention(2, 3)(q, key=v)
    with pytest.raises(LayerError, match="^" + re.escape(NAME + "expects query of rank 2 (time, features)")):
        MultiHeadAttention(2, 3)(Input((2, 4, 8)))


# -------------------------------------------------------------------------------- against Keras 3



def keras_params(layer):
    out = {}
    for w in layer.weights:
        sub, leaf = w.path.split("/")[-2:]
        out.setdefault(sub, {})[leaf] = jnp.asarray(w.value)
    return out


def randomise(layer):
    for w in layer.weights:
        w.assign(randn(*w.shape).astype(np.float32) * 0.5)


@pytest.mark.parametrize("name", list(CASES))
def test_matches_keras(keras, name):
    """Keras' own default paths; value_dim != key_dim only with scores (Keras 3.15 on JAX fails without)."""
    runner, x, shapes, (query, value, key, mask), options = build_case(name)
    kwargs = CASES[name][0]
    f32 = lambda a: None if a is None else np.asarray(a, np.float32)
    km = keras.layers.MultiHeadAttention(HEADS, KEY_DIM, kernel_initializer="zeros", **kwargs)
    km.build(query.shape, value.shape, None if key is None else key.shape)
    randomise(km)
    run = jax.jit(lambda q, v, k, m: km(q, v, k, attention_mask=m, **options))  # one compile, not op by op
    expected = run(f32(query), f32(value), f32(key), mask)
    params = keras_params(km)
    assert jax.tree.map(jnp.shape, params) == param_shapes(runner, shapes)
    y, _ = runner.apply(params, {}, [f32(a) if a.dtype.kind == "f" else a for a in x])
    if options.get("return_attention_scores"):
        np.testing.assert_allclose(np.asarray(y[1]), np.asarray(expected[1]), **F32)
        y, expected = y[0], expected[0]
    np.testing.assert_allclose(np.asarray(y), np.asarray(expected), **F32)


def test_dropout_layer_in_inference_matches_keras(keras):
    """With dropout > 0 Keras takes its einsum path even in inference: a row that sees nothing is zero."""
    runner, *_, (query, value, _, mask), _ = build_case("cross_padding")
    km = keras.layers.MultiHeadAttention(HEADS, KEY_DIM, dropout=0.3, kernel_initializer="zeros")
    km.build(query.shape, value.shape)
    randomise(km)
    q, v = query.astype(np.float32), value.astype(np.float32)
    layer = MultiHeadAttention(HEADS, KEY_DIM, dropout=0.3).configured(input_layout=runner.input_layout)
    y, _ = Jitted(layer).apply(keras_params(km), {}, [q, v, mask])
    expected = jax.jit(lambda q, v, m: km(q, v, attention_mask=m))(q, v, mask)
    np.testing.assert_allclose(np.asarray(y), np.asarray(expected), **F32)


def test_masks_from_embeddings_match_keras(keras):
    """Embedding(mask_zero=True) for query and value, causal attention: Keras' functional model and ours."""
    ids_q = np.array([[3, 1, 4, 0], [2, 7, 0, 0]])
    ids_v = np.array([[5, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    kq, kv = keras.Input((T,), dtype="int32"), keras.Input((S,), dtype="int32")
    emb_q, emb_v = (keras.layers.Embedding(9, DQ, mask_zero=True, embeddings_initializer="zeros") for _ in "qv")
    km = keras.layers.MultiHeadAttention(HEADS, KEY_DIM, kernel_initializer="zeros")
    kmodel = keras.Model([kq, kv], km(emb_q(kq), emb_v(kv), use_causal_mask=True))
    for layer in (emb_q, emb_v, km):
        randomise(layer)
    expected = np.asarray(jax.jit(lambda a, b: kmodel([a, b]))(ids_q, ids_v))

    q_in, v_in = Input((T,), dtype="int32"), Input((S,), dtype="int32")
    eq, ev = L.Embedding(9, DQ, mask_zero=True, name="eq"), L.Embedding(9, DQ, mask_zero=True, name="ev")
    model = Model([q_in, v_in], L.MultiHeadAttention(HEADS, KEY_DIM)(eq(q_in), ev(v_in), use_causal_mask=True))
    params = {"eq": {"embeddings": jnp.asarray(emb_q.embeddings.value)},
              "ev": {"embeddings": jnp.asarray(emb_v.embeddings.value)},
              "multi_head_attention": keras_params(km)}
    y, _ = Jitted(model).apply(params, {name: {} for name in params}, [jnp.asarray(ids_q), jnp.asarray(ids_v)])
    assert isinstance(y, Masked)
    np.testing.assert_array_equal(np.asarray(y.mask), ids_q != 0)
    np.testing.assert_allclose(np.asarray(y.values), expected, **F32)
