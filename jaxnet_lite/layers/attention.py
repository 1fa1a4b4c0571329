"""MultiHeadAttention with Keras 3's arguments, weight layout and mask rules, on two XLA formulations.

The attention itself is a pure function of projected `(batch, time, heads, head_dim)` arrays, written
twice: as explicit einsums and softmax (`einsum_attention`, which also returns the weights and applies
dropout to them) and as `jax.nn.dot_product_attention` (`fused_attention`). Both give the same values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxnet_lite.core import Layer, LayerError, shape_str
from jaxnet_lite.core.shapes import as_int, as_ints, spell
from jaxnet_lite.core.threefry import bernoulli
from jaxnet_lite.layers.core import (
    check_float,
    check_int,
    check_positive_int,
    get_initializer,
)
from jaxnet_lite.layers.matmul import matmul_last_axis

_TENSORS = ("query", "value", "key")
_MASKS = ("attention_mask", "query_mask", "value_mask", "key_mask")
_IMPLEMENTATIONS = (None, "einsum", "dot_product_attention")


# --------------------------------------------------------------------------------- pure attention


def causal_mask(query_length: int, key_length: int) -> jax.Array:
    """`(T, S)` boolean mask, True where query step t may see key step s (s <= t), as Keras builds it."""
    return jnp.tril(jnp.ones((query_length, key_length), jnp.bool_))


def _large_negative(dtype: Any) -> jax.Array:
    """What masked logits become: finite, so a row with nothing to attend to gives uniform weights."""
    return jnp.asarray(-0.7 * jnp.finfo(dtype).max, dtype)


def einsum_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array | None = None,
    *,
    scale: float,
    causal: bool = False,
    zero_masked: bool = False,
    dropout: float = 0.0,
    rng: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Attention as explicit einsums: `(output (B, T, N, Hv), weights (B, N, T, S))`.

    `mask` (boolean, broadcastable to (B, N, T, S)) and `causal` remove key steps; the logits and softmax
    are at least float32. `zero_masked` sets masked weights to zero afterwards (Keras' masked softmax: a query
    row with no key left then attends to nothing). With `rng`, a `dropout` fraction of the weights is
    dropped (the returned weights are the ones before dropout, as Keras returns them).
    """
    wide = jnp.promote_types(query.dtype, jnp.float32)
    logits = jnp.einsum("btnh,bsnh->bnts", query, key, preferred_element_type=wide) * jnp.asarray(scale, wide)
    mask = _with_causal(mask, causal, query.shape[1], key.shape[1])
    if mask is not None:
        logits = jnp.where(mask, logits, _large_negative(logits.dtype))
    weights = jax.nn.softmax(logits, axis=-1)
    if mask is not None and zero_masked:
        weights = jnp.where(mask, weights, jnp.zeros((), weights.dtype))
    weights = weights.astype(query.dtype)
    used = weights
    if rng is not None and dropout > 0.0:
        keep = bernoulli(rng, 1.0 - dropout, weights.shape)
        used = jnp.where(keep, weights / jnp.asarray(1.0 - dropout, weights.dtype), jnp.zeros((), weights.dtype))
    return jnp.einsum("bnts,bsnh->btnh", used, value), weights


def fused_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array | None = None,
    *,
    scale: float,
    causal: bool = False,
) -> jax.Array:
    """The same attention (without `zero_masked`, dropout or weights) as `jax.nn.dot_product_attention`."""
    if mask is not None:
        mask = jnp.broadcast_to(mask, (*mask.shape[:-2], query.shape[1], key.shape[1]))
    return jax.nn.dot_product_attention(query, key, value, mask=mask, scale=scale, is_causal=causal)


def _with_causal(mask: jax.Array | None, causal: bool, t: int, s: int) -> jax.Array | None:
    if not causal:
        return mask
    tri = causal_mask(t, s)[None, None]
    return tri if mask is None else jnp.logical_and(mask, tri)


# ----------------------------------------------------------------------------------------- layer


class MultiHeadAttention(Layer):
    """Keras 3's `MultiHeadAttention`: projections, scaled dot-product attention per head, output projection.

    Params, as Keras lays them out: `query`, `key`, `value` each `{"kernel": (d_in, heads, head_dim),
    "bias": (heads, head_dim)}` and `attention_output` `{"kernel": (heads, value_dim, *out), "bias": out}`,
    where `out` is `output_shape` or the query's feature size. Attention runs over the time axis of
    `(batch, time, features)` inputs; scores are scaled by `1 / sqrt(key_dim)`; `dropout` drops attention
    weights in training.

    Pure API: `x` is `query` (self-attention), `[query, value]` or `[query, value, key]`. Call options live
    on a configured copy that shares the params (`configured`, which the graph's call also uses)::

        y, _ = mha.apply(params, state, [q, v])
        causal = mha.configured(use_causal_mask=True)
        y, _ = causal.apply(params, state, q)
        with_mask = mha.configured(input_layout=("query", "value", "attention_mask"))
        y, _ = with_mask.apply(params, state, [q, v, mask])          # mask (B, T, S), True = attend
        both = mha.configured(return_attention_scores=True)
        (y, scores), _ = both.apply(params, state, [q, v])           # scores (B, heads, T, S)

    `input_layout` names the entries of the input list in order, from "query", "value", "key",
    "attention_mask", "query_mask", "value_mask", "key_mask". In a functional model,
    `mha(q, v, key=None, attention_mask=None, use_causal_mask=False, return_attention_scores=False)` builds
    the same configured node.

    Masks follow Keras: masks carried by the query, value and key (`Masked`, from `Embedding(mask_zero=True)`)
    or given as `*_mask` entries let query step t see key step s only where `query_mask[t] & value_mask[s]
    & key_mask[s]`, ANDed with `attention_mask` and the causal mask; the output keeps the query's mask. A
    query step with no key to attend to gets Keras' answer: the mean of the values on its default path,
    zeros where Keras returns scores or has dropout.

    `implementation`: None (the default) or "dot_product_attention" runs `jax.nn.dot_product_attention`
    (on CPU its forward pass measured faster than the einsums and a training step as fast) where it gives
    Keras' values: no returned scores, no dropout, `value_dim == key_dim`, float32 or narrower. Elsewhere,
    or with "einsum", the einsums run.
    """

    call_takes_mask = True
    supports_masking = True
    #: Keras' kernel_/bias_ regularizers and constraints apply to all four projections alike.
    weight_arguments = {"kernel": "kernel", "bias": "bias"}  # noqa: RUF012 - read-only, as on Layer
    #: Call options (set on a copy by `configured`; see the class docstring).
    use_causal_mask: bool = False
    return_attention_scores: bool = False
    input_layout: tuple[str, ...] | None = None

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        output_shape: int | Sequence[int] | None = None,
        attention_axes: int | Sequence[int] | None = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        seed: int | None = None,
        implementation: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        cls = "MultiHeadAttention"
        self.num_heads = check_positive_int(cls, "num_heads", num_heads)
        self.key_dim = check_positive_int(cls, "key_dim", key_dim)
        self.value_dim = self.key_dim if value_dim is None else check_positive_int(cls, "value_dim", value_dim)
        self.dropout = check_float(cls, "dropout", dropout, lambda r: 0.0 <= r < 1.0, "a float in [0, 1)")
        self.stochastic = self.dropout > 0.0
        self.use_bias = bool(use_bias)
        self._output_shape = _output_dims(output_shape)
        self.attention_axes = _check_attention_axes(attention_axes)
        self.kernel_initializer = get_initializer(cls, "kernel_initializer", kernel_initializer)
        self.bias_initializer = get_initializer(cls, "bias_initializer", bias_initializer)
        self.seed = None if seed is None else check_int(cls, "seed", seed)
        if implementation not in _IMPLEMENTATIONS:
            raise LayerError(f"{cls}: implementation must be one of {_IMPLEMENTATIONS}, got {spell(implementation)}")
        self.implementation = implementation

    # -- the functional API ---------------------------------------------------------------------
    def __call__(self, query: Any = None, value: Any = None, key: Any = None, **kwargs: Any) -> Any:
        """`mha(query, value, key=None, **options)` on symbolic tensors; `query=`/`value=` may be keywords."""
        if query is None:
            raise self.error("was called without a query")
        return super().__call__(query, value, key, **kwargs)

    def bind_call(
        self,
        query: Any,
        value: Any = None,
        key: Any = None,
        *,
        attention_mask: Any = None,
        use_causal_mask: bool = False,
        return_attention_scores: bool = False,
        training: Any = None,
        query_mask: Any = None,
        value_mask: Any = None,
        key_mask: Any = None,
    ) -> tuple[Any, Layer]:
        """Keras' call signature: the tensors given become the node's inputs, in `input_layout` order.

        `value=None` means self-attention on `query`. `training` is decided by the model's `apply`.
        """
        given = {"query": query, "value": value, "key": key, "attention_mask": attention_mask,
                 "query_mask": query_mask, "value_mask": value_mask, "key_mask": key_mask}
        if value is None and key is not None:
            raise self.error("was given a key without a value; pass value= too (key defaults to value)")
        layout = tuple(name for name in (*_TENSORS, *_MASKS) if given[name] is not None)
        for name in _MASKS:
            dtype = getattr(given[name], "dtype", None)
            if dtype is not None:
                self._check_mask_dtype(name, dtype)
        runner = self.configured(input_layout=layout, use_causal_mask=bool(use_causal_mask),
                                 return_attention_scores=bool(return_attention_scores))
        tensors = [given[name] for name in layout]
        return (tensors if len(tensors) > 1 else tensors[0]), runner

    # -- layout of the inputs -------------------------------------------------------------------
    def _layout(self, x: Any) -> tuple[str, ...]:
        """Names of the entries of `x` (an array or a list of arrays, or their shapes)."""
        single = not isinstance(x, list)
        count = 1 if single else len(x)
        layout = self.input_layout
        if layout is None:
            if single:
                return ("query",)
            if count not in (2, 3):
                raise self.error(f"expects query, [query, value] or [query, value, key], got {count} inputs")
            return _TENSORS[:count]
        layout = tuple(layout)
        known = (*_TENSORS, *_MASKS)
        if (not layout or layout[0] != "query" or len(set(layout)) != len(layout)
                or any(n not in known for n in layout) or ("key" in layout and "value" not in layout)):
            raise self.error(f"input_layout must start with 'query' and name distinct entries of {known} "
                             f"(a key needs a value), got {layout}")
        if count != len(layout) or (single and layout != ("query",)):
            raise self.error(f"expects {len(layout)} inputs {list(layout)}, got {count}")
        return layout

    def _parts(self, x: Any) -> dict[str, Any]:
        layout = self._layout(x)
        return dict(zip(layout, x if isinstance(x, list) else [x]))

    def _sequence_shapes(self, parts: dict[str, Any]) -> tuple[Any, Any, Any]:
        query = parts["query"]
        value = parts.get("value", query)
        return query, value, parts.get("key", value)

    # -- the protocol ---------------------------------------------------------------------------
    def check_input_shape(self, input_shape):
        parts = self._parts(input_shape)
        query, value, key = self._sequence_shapes(parts)
        for name, shape in (("query", query), ("value", value), ("key", key)):
            if len(shape) != 2:
                raise self.error(f"expects {name} of rank 2 (time, features), got {shape_str(shape)} in input "
                                 f"{shape_str(input_shape)}; attention runs over the time axis only")
        if key[0] != value[0]:
            raise self.error(f"expects key and value of the same length, got key {shape_str(key)} and "
                             f"value {shape_str(value)}")
        t, s = query[0], value[0]
        for name in _MASKS:
            if name in parts:
                self._check_mask_shape(name, (None, *parts[name]), t, s)

    def make_variables(self, rng, input_shape):
        query, value, key = self._sequence_shapes(self._parts(input_shape))
        keys = iter(jax.random.split(rng, 8))
        out = self._output_dims(query)
        shapes = {
            "query": ((query[-1], self.num_heads, self.key_dim), (self.num_heads, self.key_dim)),
            "key": ((key[-1], self.num_heads, self.key_dim), (self.num_heads, self.key_dim)),
            "value": ((value[-1], self.num_heads, self.value_dim), (self.num_heads, self.value_dim)),
            "attention_output": ((self.num_heads, self.value_dim, *out), out),
        }
        params = {}
        for name, (kernel_shape, bias_shape) in shapes.items():
            k_rng, b_rng = next(keys), next(keys)
            params[name] = {"kernel": self.kernel_initializer(k_rng, kernel_shape, self.dtype)}
            if self.use_bias:
                params[name]["bias"] = self.bias_initializer(b_rng, bias_shape, self.dtype)
        return params, {}

    def _output_dims(self, query_shape: Sequence[int]) -> tuple[int, ...]:
        return self._output_shape if self._output_shape is not None else (query_shape[-1],)

    def compute_output_shape(self, input_shape):
        query, value, _ = self._sequence_shapes(self._parts(input_shape))
        out = (query[0], *self._output_dims(query))
        if self.return_attention_scores:
            return [out, (self.num_heads, query[0], value[0])]
        return out

    def call(self, params, state, x, *, rng=None, training=False, mask=None):
        parts = self._parts(x)
        query, value, key = self._sequence_shapes(parts)
        for name, array in (("query", query), ("value", value), ("key", key)):
            kernel = params[name]["kernel"]
            if getattr(array, "ndim", None) != 3 or array.shape[-1] != kernel.shape[0]:
                raise self.error(
                    f"expects {name} of shape (batch, time, {kernel.shape[0]}) to match its {name} kernel "
                    f"{tuple(kernel.shape)}, got {_shape_of(array)}"
                )
        if key.shape[:2] != value.shape[:2] or query.shape[0] != value.shape[0]:
            raise self.error(f"expects query, value and key of one batch and key and value of one length, got "
                             f"query {tuple(query.shape)}, value {tuple(value.shape)}, key {tuple(key.shape)}")
        attend = self._combined_mask(parts, self._input_masks(parts, mask), query.shape[1], value.shape[1])

        q = self._project(params["query"], query)
        k = self._project(params["key"], key)
        v = self._project(params["value"], value)
        scale = 1.0 / math.sqrt(float(self.key_dim))
        dropping = training and self.dropout > 0.0
        if dropping and rng is None:
            if self.seed is None:
                raise self.error("needs a random key when training=True with dropout: pass "
                                 "apply(..., rng=jax.random.key(seed)) (Trainer and model.fit do this for you)")
            rng = jax.random.key(self.seed)
        if self._use_fused(q.dtype):
            o, scores = fused_attention(q, k, v, attend, scale=scale, causal=self.use_causal_mask), None
        else:
            o, scores = einsum_attention(
                q, k, v, attend, scale=scale, causal=self.use_causal_mask,
                zero_masked=self.return_attention_scores or self.dropout > 0.0,
                dropout=self.dropout, rng=rng if dropping else None,
            )
        out = params["attention_output"]
        kernel = out["kernel"]
        y = matmul_last_axis(o.reshape(*o.shape[:2], -1), kernel.reshape(-1, *kernel.shape[2:]))
        if self.use_bias:
            y = y + out["bias"]
        return ([y, scores] if self.return_attention_scores else y), state

    def compute_mask(self, x, mask):
        parts = self._parts(x)
        query_mask = self._input_masks(parts, mask)["query"]
        return [query_mask, None] if self.return_attention_scores else query_mask

    def penalty(self, params: Any) -> jax.Array:
        """The kernel and bias regularizers summed over the four projections (Keras' sublayers)."""
        total = jnp.zeros((), jnp.float32)
        if not self.trainable or not isinstance(params, dict):
            return total
        for projection in params.values():
            for name, regularizer in self.weight_regularizers.items():
                if name in projection:
                    total = total + regularizer(projection[name])
        return total

    def constrain(self, params: Any) -> Any:
        """Each projection's kernel and bias projected by the kernel and bias constraints."""
        if not self.weight_constraints or not isinstance(params, dict):
            return params
        rules = self.weight_constraints
        return {key: {name: rules[name](w) if name in rules else w for name, w in projection.items()}
                for key, projection in params.items()}

    # -- helpers --------------------------------------------------------------------------------
    def _use_fused(self, dtype: Any = jnp.float32) -> bool:
        """The fused op gives Keras' values without scores or dropout, for equal head sizes, and at most
        float32 (its softmax runs in float32, which would cut float64 short)."""
        if self.return_attention_scores or self.dropout > 0.0 or self.value_dim != self.key_dim:
            return False
        if jnp.dtype(dtype).itemsize > 4:
            return False
        return self.implementation in (None, "dot_product_attention")

    def _project(self, p: dict[str, jax.Array], x: jax.Array) -> jax.Array:
        y = matmul_last_axis(x, p["kernel"])
        return y + p["bias"] if self.use_bias else y

    def _input_masks(self, parts: dict[str, Any], mask: Any) -> dict[str, jax.Array | None]:
        """The query, value and key masks: an explicit `*_mask` entry, else the mask its input carries."""
        carried = dict(zip(parts, mask if isinstance(mask, list) else [mask]))
        query, value, _ = self._sequence_shapes(parts)
        found = {
            "query": parts.get("query_mask", carried.get("query")),
            "value": parts.get("value_mask", carried.get("value" if "value" in parts else "query")),
            "key": parts.get("key_mask", carried.get("key")),
        }
        out = {}
        for name, m in found.items():
            if m is not None:
                m = jnp.asarray(m)
                self._check_mask_dtype(f"{name}_mask", m.dtype)
                length = (query if name == "query" else value).shape[1]
                if m.shape != (query.shape[0], length):
                    raise self.error(f"expects {name}_mask of shape (batch, {length}) like its {name} "
                                     f"{tuple((query if name == 'query' else value).shape)}, got {m.shape}")
                m = m if m.dtype == jnp.bool_ else m != 0
            out[name] = m
        return out

    def _combined_mask(self, parts: dict[str, Any], masks: dict[str, Any], t: int, s: int) -> jax.Array | None:
        """Keras' mask of allowed (query, key) pairs, shaped to broadcast against (B, N, T, S); None: all."""
        combined = None

        def both(a, b):
            return b if a is None else jnp.logical_and(a, b)

        if masks["query"] is not None:
            combined = masks["query"][:, None, :, None]
        for name in ("value", "key"):
            if masks[name] is not None:
                combined = both(combined, masks[name][:, None, None, :])
        if "attention_mask" in parts:
            given = jnp.asarray(parts["attention_mask"])
            self._check_mask_dtype("attention_mask", given.dtype)
            self._check_mask_shape("attention_mask", given.shape, t, s)
            given = given if given.dtype == jnp.bool_ else given != 0
            combined = both(combined, given[:, None] if given.ndim == 3 else given)
        return combined

    def _check_mask_dtype(self, name: str, dtype: Any) -> None:
        dtype = jnp.dtype(dtype)
        if not (dtype == jnp.bool_ or jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)):
            raise self.error(f"expects {name} to be boolean (True = attend) or 0/1 numbers, got dtype {dtype}")

    def _check_mask_shape(self, name: str, shape: tuple, t: int, s: int) -> None:
        """`shape` has the batch axis first (None when unknown)."""
        if name == "attention_mask":
            rank = len(shape)
            fits = rank in (3, 4) and shape[-2] in (1, t) and shape[-1] in (1, s)
            if rank == 4:
                fits = fits and shape[1] in (1, self.num_heads)
            if not fits:
                raise self.error(f"expects attention_mask of shape (batch, {t}, {s}) (query steps, key steps), or "
                                 f"(batch, {self.num_heads}, {t}, {s}), got {_spell_batch(shape)}")
            return
        length = t if name == "query_mask" else s
        if len(shape) != 2 or shape[1] != length:
            raise self.error(f"expects {name} of shape (batch, {length}), got {_spell_batch(shape)}")


def _output_dims(value: Any) -> tuple[int, ...] | None:
    """Keras' `output_shape`: None (the query's features), an int, or a tuple of positive ints."""
    if value is None:
        return None
    single = as_int(value)
    dims = (single,) if single is not None else as_ints(value)
    if not dims or any(d <= 0 for d in dims):
        raise LayerError(f"MultiHeadAttention: output_shape must be a positive int or a tuple of positive ints, "
                         f"got {spell(value)}")
    return dims


def _check_attention_axes(value: Any) -> tuple[int, ...] | None:
    """Only the time axis of (batch, time, features) inputs is supported: None, 1 or -2 (or a 1-tuple)."""
    if value is None:
        return None
    single = as_int(value)
    axes = (single,) if single is not None else as_ints(value)
    if axes not in ((1,), (-2,)):
        raise LayerError(
            f"MultiHeadAttention: attention_axes={spell(value)} is not supported; only None or the time axis "
            "(1 or -2) of (batch, time, features) inputs is, so attention runs over time"
        )
    return (1,)


def _shape_of(x: Any) -> Any:
    return tuple(x.shape) if hasattr(x, "shape") else type(x).__name__


def _spell_batch(shape: tuple) -> str:
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"
