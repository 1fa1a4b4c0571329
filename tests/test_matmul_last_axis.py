"""Dense and attention projections fold the leading axes of their input into one 2-D matmul: the same
values and gradients as `jnp.matmul`, and a backward pass without transposed copies on XLA:CPU."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet_lite.layers import Dense, MultiHeadAttention, attention
from jaxnet_lite.layers.matmul import matmul_last_axis


@pytest.mark.parametrize("x_shape, kernel_shape", [((5, 3), (3, 4)), ((2, 5, 3), (3, 4)), ((2, 3, 5, 3), (3, 4)),
                                                    ((2, 5, 3), (3, 2, 4))])
def test_values_and_gradients_equal_the_plain_contraction(x_shape, kernel_shape) -> None:
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.normal(size=x_shape))
        kernel = jnp.asarray(rng.normal(size=kernel_shape))
        plain = lambda x, k: jnp.tensordot(x, k, axes=1)  # noqa: E731
        np.testing.assert_allclose(matmul_last_axis(x, kernel), plain(x, kernel), rtol=1e-12)
        loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))  # noqa: E731
        for ours, theirs in zip(jax.grad(loss(matmul_last_axis), (0, 1))(x, kernel),
                                jax.grad(loss(plain), (0, 1))(x, kernel)):
            np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def _optimized_ops(layer, input_shape) -> list[str]:
    params, state = layer.init(jax.random.key(0), input_shape)
    x = jnp.ones((4, *input_shape))

    def loss(p, x):
        y, _ = layer.apply(p, state, x)
        return jnp.sum(jnp.tanh(y))

    text = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, x).compile().as_text()
    return re.findall(r"= \S+ (\w+)\(", text)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="a property of XLA:CPU's compiled program")
def test_sequence_dense_gradient_has_no_transposed_copies() -> None:
    ops = _optimized_ops(Dense(32), (16, 8))
    assert "dot" in ops and "transpose" not in ops and "copy" not in ops


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="a property of XLA:CPU's compiled program")
def test_attention_projections_as_2d_matmuls_need_fewer_copies(monkeypatch) -> None:
    """The same attention with its projections written as 3-D contractions compiles to more transposes
    and copies: folding to 2-D is what removes them."""
    mha = MultiHeadAttention(num_heads=2, key_dim=4, implementation="einsum")
    count = lambda ops: ops.count("transpose") + ops.count("copy")  # noqa: E731
    folded = count(_optimized_ops(_SelfAttention(mha), (6, 8)))
    monkeypatch.setattr(attention, "matmul_last_axis", lambda x, k: jnp.tensordot(x, k, axes=1))
    assert folded < count(_optimized_ops(_SelfAttention(mha), (6, 8)))


class _SelfAttention:
    """`mha(x, x)` as a one-input layer for `_optimized_ops`."""

    def __init__(self, mha) -> None:
        self.mha = mha

    def init(self, rng, input_shape):
        return self.mha.init(rng, [input_shape, input_shape])

    def apply(self, params, state, x):
        return self.mha.apply(params, state, [x, x])
