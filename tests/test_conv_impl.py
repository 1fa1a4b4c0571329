"""The two convolution formulations (XLA's conv and patches + matmul) agree in values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jaxnet_lite.core import LayerError
from jaxnet_lite.layers import Conv1D, Conv2D, Conv3D
from jaxnet_lite.layers.conv import IM2COL_MAX_PATCH_BYTES
from jaxnet_lite.layers.im2col import conv_im2col, conv_xla, patch_bytes
from jaxnet_lite.testing import assert_trees_close, check_layer_grads, make_input

LAYERS = {1: Conv1D, 2: Conv2D, 3: Conv3D}


@st.composite
def cases(draw):
    rank = draw(st.sampled_from([1, 2, 3]))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(rank))  # even sizes exercise 'same' asymmetry
    paddings = ["valid", "same"] + (["causal"] if rank == 1 else [])
    padding = draw(st.sampled_from(paddings))
    spatial = tuple(draw(st.integers(k, k + 4)) for k in kernel)
    return rank, kernel, padding, (*spatial, draw(st.integers(1, 5))), draw(st.integers(1, 4))


@given(case=cases(), seed=st.integers(0, 2**31 - 1))
def test_im2col_matches_xla(case, seed):
    rank, kernel, padding, shape, filters = case
    xla = LAYERS[rank](filters, kernel, padding=padding, implementation="xla")
    im2col = LAYERS[rank](filters, kernel, padding=padding, implementation="im2col")
    params, state = xla.init(jax.random.key(seed), shape)
    x = make_input(shape, 2, seed)

    def outputs_and_grads(layer):  # one compiled program per layer and case (op by op compiled far more)
        loss = lambda p, xx: jnp.sum(jnp.sin(layer.apply(p, state, xx)[0]))  # noqa: E731
        return jax.jit(lambda p, xx: (layer.apply(p, state, xx)[0], jax.grad(loss, argnums=(0, 1))(p, xx)))(params, x)

    y_xla, g_xla = outputs_and_grads(xla)
    y_col, g_col = outputs_and_grads(im2col)
    np.testing.assert_allclose(np.asarray(y_col), np.asarray(y_xla), rtol=1e-5, atol=1e-5)
    assert_trees_close(g_col, g_xla, atol=1e-4, rtol=1e-4, what="gradients")


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_im2col_gradients_against_finite_differences(padding):
    check_layer_grads(Conv2D(3, (2, 3), padding=padding, implementation="im2col"), (5, 6, 2))


def test_auto_picks_im2col_in_cpu_training_while_the_patches_fit():
    if jax.default_backend() != "cpu":
        pytest.skip("the rule is for XLA:CPU")
    tutorial_conv2 = (128, 13, 13, 32)
    assert Conv2D(64, 3).uses_im2col(tutorial_conv2)
    assert not Conv2D(64, 3).uses_im2col(tutorial_conv2, training=False)  # forward-only, XLA's conv is as fast
    assert not Conv2D(64, 3, strides=2).uses_im2col(tutorial_conv2)
    assert not Conv2D(64, 3, dilation_rate=2).uses_im2col(tutorial_conv2)
    assert not Conv2D(64, 3, implementation="xla").uses_im2col(tutorial_conv2)
    big = (256, 64, 64, 64)  # 9 x 256 MB of patches: over IM2COL_MAX_PATCH_BYTES
    assert patch_bytes(big, (3, 3), 4) > IM2COL_MAX_PATCH_BYTES
    assert not Conv2D(64, 3).uses_im2col(big)
    assert Conv2D(64, 3, implementation="im2col").uses_im2col(big)  # asked for explicitly


def normal(shape, seed):
    return jax.random.normal(jax.random.key(seed), shape)


def primitives(fn, *args) -> set[str]:
    return {eqn.primitive.name for eqn in jax.make_jaxpr(fn)(*args).eqns}


def test_im2col_gradients_take_the_measured_formulations():
    """Kernel gradient: a matmul over the forward pass's patches; input gradient: XLA's convolution."""
    x, kernel = normal((2, 7, 7, 3), 0), normal((3, 3, 3, 4), 1)
    loss = lambda x, k: jnp.sum(conv_im2col(x, k, "valid") ** 2)
    kernel_grad = primitives(jax.grad(loss, argnums=1), x, kernel)
    assert "dot_general" in kernel_grad and "conv_general_dilated" not in kernel_grad
    assert "conv_general_dilated" in primitives(jax.grad(loss, argnums=0), x, kernel)


def test_im2col_supports_forward_mode_and_second_derivatives():
    x, kernel = normal((2, 6, 5, 2), 0), normal((2, 3, 2, 3), 1)
    x_dot, kernel_dot = normal(x.shape, 2), normal(kernel.shape, 3)
    xla = lambda x, k: conv_xla(x, k)
    col = lambda x, k: conv_im2col(x, k, "valid")
    _, t_xla = jax.jvp(xla, (x, kernel), (x_dot, kernel_dot))
    _, t_col = jax.jvp(col, (x, kernel), (x_dot, kernel_dot))
    np.testing.assert_allclose(np.asarray(t_col), np.asarray(t_xla), rtol=1e-5, atol=1e-5)
    hvp = lambda f: jax.jvp(jax.grad(lambda k: jnp.sum(jnp.tanh(f(x, k)))), (kernel,), (kernel_dot,))[1]
    np.testing.assert_allclose(np.asarray(hvp(col)), np.asarray(hvp(xla)), rtol=1e-4, atol=1e-5)


def test_im2col_refuses_strides():
    layer = Conv2D(2, 3, strides=2, implementation="im2col")
    params, state = layer.init(jax.random.key(0), (8, 8, 1))
    with pytest.raises(LayerError, match="im2col' supports only strides 1"):
        layer.apply(params, state, jnp.ones((1, 8, 8, 1)))
    with pytest.raises(LayerError, match="implementation must be"):
        Conv2D(2, 3, implementation="fast")
