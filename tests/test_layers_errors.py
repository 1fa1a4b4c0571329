"""Every error path of the layers: a `LayerError` (a ValueError) whose message names the layer (type,
and its name once it has one), the argument at fault and the shapes involved.

Constructor errors name the layer type and the argument (the final name is only fixed when a container
claims it); init/apply errors name `Type 'name'` and the shapes.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet_lite import layers as L
from jaxnet_lite.core import LayerError

KEY = jax.random.key(0)


def test_layer_error_is_a_value_error():
    assert issubclass(LayerError, ValueError)
    with pytest.raises(ValueError):
        L.Dense(0)


# ------------------------------------------------------------------------------------- wrong rank


def test_conv2d_wrong_rank_message_is_exact():
    with pytest.raises(LayerError, match=r"^" + re.escape("Conv2D 'conv2d' expects input of rank 3 (H, W, C), "
                                                          "got (28, 28)") + r"$"):
        L.Conv2D(32, 3).init(KEY, (28, 28))


@pytest.mark.parametrize(
    "layer,shape,expected",
    [
        (L.Conv2D(4, 3, name="conv2d_1"), (28, 28), "Conv2D 'conv2d_1' expects input of rank 3 (H, W, C), got (28, 28)"),
        (L.Conv1D(4, 3), (5, 4, 3), "Conv1D 'conv1d' expects input of rank 2 (W, C), got (5, 4, 3)"),
        (L.Conv3D(4, 3), (5, 5, 3), "Conv3D 'conv3d' expects input of rank 4 (D, H, W, C), got (5, 5, 3)"),
        (L.Conv2DTranspose(4, 3), (8,), "Conv2DTranspose 'conv2d_transpose' expects input of rank 3 (H, W, C), "
                                        "got (8,)"),
        (L.Conv1DTranspose(4, 3), (8, 8, 8), "Conv1DTranspose 'conv1d_transpose' expects input of rank 2 (W, C), "
                                             "got (8, 8, 8)"),
        (L.Conv3DTranspose(4, 3), (8, 8, 8), "Conv3DTranspose 'conv3d_transpose' expects input of rank 4 "
                                             "(D, H, W, C), got (8, 8, 8)"),
        (L.MaxPooling2D(), (28, 28), "MaxPooling2D 'max_pooling2d' expects input of rank 3 (H, W, C), got (28, 28)"),
        (L.MaxPooling1D(), (28,), "MaxPooling1D 'max_pooling1d' expects input of rank 2 (W, C), got (28,)"),
        (L.AveragePooling3D(), (4, 4, 4), "AveragePooling3D 'average_pooling3d' expects input of rank 4 "
                                          "(D, H, W, C), got (4, 4, 4)"),
        (L.GlobalAveragePooling2D(), (7, 3), "GlobalAveragePooling2D 'global_average_pooling2d' expects input of "
                                             "rank 3 (H, W, C), got (7, 3)"),
        (L.GlobalMaxPooling1D(name="gmp"), (7,), "GlobalMaxPooling1D 'gmp' expects input of rank 2 (W, C), got (7,)"),
        (L.Dense(3), (), "Dense 'dense' expects input of rank >= 1 (..., features), got ()"),
        (L.BatchNormalization(), (), "BatchNormalization 'batch_normalization' expects input of rank >= 1"),
        (L.LayerNormalization(), (), "LayerNormalization 'layer_normalization' expects input of rank >= 1"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_wrong_rank_at_init_and_output_shape(layer, shape, expected):
    with pytest.raises(LayerError, match=re.escape(expected)):
        layer.init(KEY, shape)
    with pytest.raises(LayerError, match=re.escape(expected)):
        layer.output_shape(shape)


def test_wrong_rank_at_apply_pooling():
    layer = L.MaxPooling2D()
    with pytest.raises(LayerError, match=re.escape("MaxPooling2D 'max_pooling2d' expects input of rank 4 with the "
                                                   "batch axis (batch, H, W, C), got (2, 4, 4)")):
        layer.apply({}, {}, jnp.zeros((2, 4, 4)))
    layer = L.GlobalAveragePooling1D()
    with pytest.raises(LayerError, match=re.escape("GlobalAveragePooling1D 'global_average_pooling1d' expects input "
                                                   "of rank 3 with the batch axis, got (2, 4)")):
        layer.apply({}, {}, jnp.zeros((2, 4)))


def test_multi_input_shape_given_to_single_input_layer():
    with pytest.raises(LayerError, match=re.escape("Conv2D 'conv2d' expects input of rank 3 (H, W, C), "
                                                   "got [(4, 4, 1), (4, 4, 1)]")):
        L.Conv2D(2, 3).init(KEY, [(4, 4, 1), (4, 4, 1)])
    with pytest.raises(LayerError, match=re.escape("Flatten 'flatten' expects one input, got shapes [(3,), (3,)]")):
        L.Flatten().init(KEY, [(3,), (3,)])
    with pytest.raises(LayerError, match=re.escape("Embedding 'embedding' expects one input of integer ids, "
                                                   "got shapes [(3,), (3,)]")):
        L.Embedding(5, 2).init(KEY, [(3,), (3,)])


# -------------------------------------------------------------------------- input too small / shapes


def test_input_too_small_for_kernel():
    with pytest.raises(LayerError, match=re.escape("Conv2D 'conv2d' input (3, 3, 1) is too small for kernel_size "
                                                   "(5, 5) with dilation_rate (1, 1) and padding 'valid'")):
        L.Conv2D(2, 5).init(KEY, (3, 3, 1))
    with pytest.raises(LayerError, match=r"Conv1D 'conv1d' input \(5, 1\) is too small for kernel_size \(3,\) "
                                         r"with dilation_rate \(3,\)"):
        L.Conv1D(2, 3, dilation_rate=3).init(KEY, (5, 1))
    with pytest.raises(LayerError, match=re.escape("MaxPooling2D 'max_pooling2d' input (2, 5, 1) is smaller than "
                                                   "pool_size (3, 3)")):
        L.MaxPooling2D(3).init(KEY, (2, 5, 1))


def test_init_without_input_shape():
    with pytest.raises(LayerError, match=re.escape("Dense 'dense' needs an input shape")):
        L.Dense(3).init(KEY)


@pytest.mark.parametrize("bad,expected", [((3, -1), "positive dimensions, got (3, -1)"),
                                          ((0,), "positive dimensions, got (0,)"),
                                          ((3, "a"), "must be a tuple of ints"),
                                          (2.5, "must be a tuple of ints"),
                                          ((True, 3), "(without the batch axis), got (True, 3)"),
                                          ((np.float32(4.0),), "(without the batch axis), got (4.0,)"),
                                          (np.int64(0), "positive dimensions, got (0,)")])
def test_bad_input_shape(bad, expected):
    with pytest.raises(LayerError, match=re.escape(expected)):
        L.Dense(3).init(KEY, bad)


def test_numpy_ints_are_input_shapes():
    assert L.Dense(3, input_shape=np.int64(4)).declared_input_shape == (4,)
    assert L.Dense(3, input_dim=np.uint8(4)).init(KEY).params["kernel"].shape == (4, 3)
    assert L.Add().output_shape([(np.int32(2), np.int8(3)), [2, np.int16(3)]]) == (2, 3)


def test_declared_input_shape_is_used_and_validated():
    assert L.Dense(3, input_shape=(4,)).init(KEY).params["kernel"].shape == (4, 3)
    with pytest.raises(LayerError, match=re.escape("positive dimensions, got (-4,)")):
        L.Dense(3, input_shape=(-4,))


# ------------------------------------------------------------------------------ mismatched at apply


def test_dense_kernel_in_dim_vs_input():
    layer = L.Dense(3)
    params, state = layer.init(KEY, (4,))
    with pytest.raises(LayerError, match=re.escape("Dense 'dense' expects input of shape (batch, ..., 4) to match "
                                                   "its kernel (4, 3), got (2, 5)")):
        layer.apply(params, state, jnp.zeros((2, 5)))
    with pytest.raises(LayerError, match=re.escape("Dense 'dense' expects input of shape (batch, ..., 4) to match "
                                                   "its kernel (4, 3), got (4,)")):
        layer.apply(params, state, jnp.zeros((4,)))  # forgot the batch axis


def test_conv_channels_vs_kernel_names_shapes():
    layer = L.Conv2D(4, 3, name="c1")
    params, state = layer.init(KEY, (5, 5, 3))
    with pytest.raises(LayerError, match=r"Conv2D 'c1' expects input of shape .*3\).*to match its kernel "
                                         r"\(3, 3, 3, 4\), got \(2, 5, 5, 2\)"):
        layer.apply(params, state, jnp.zeros((2, 5, 5, 2)))
    with pytest.raises(LayerError, match=r"Conv2D 'c1' .*rank 4 with the batch axis.*got \(5, 5, 3\)"):
        layer.apply(params, state, jnp.zeros((5, 5, 3)))
    t = L.Conv2DTranspose(4, 3)
    tp, ts = t.init(KEY, (5, 5, 3))
    with pytest.raises(LayerError, match=r"Conv2DTranspose 'conv2d_transpose' expects .*to match its kernel "
                                         r"\(3, 3, 4, 3\), got \(2, 5, 5, 4\)"):
        t.apply(tp, ts, jnp.zeros((2, 5, 5, 4)))


# Regression: the message once read "(batch, H, W, , 3)" (a bad slice of the axes description).
@pytest.mark.parametrize("cls,shape,x_shape,expected", [
    (L.Conv2D, (5, 5, 3), (2, 5, 5, 2), "expects input of shape (batch, H, W, 3)"),
    (L.Conv1D, (5, 3), (2, 5, 2), "expects input of shape (batch, W, 3)"),
    (L.Conv3D, (4, 4, 4, 3), (2, 4, 4, 4, 2), "expects input of shape (batch, D, H, W, 3)"),
])
def test_conv_apply_mismatch_message_is_well_formed(cls, shape, x_shape, expected):
    layer = cls(4, 3)
    params, state = layer.init(KEY, shape)
    with pytest.raises(LayerError, match=re.escape(expected)):
        layer.apply(params, state, jnp.zeros(x_shape))


def test_batch_normalization_features_vs_input():
    layer = L.BatchNormalization()
    params, state = layer.init(KEY, (4,))
    with pytest.raises(LayerError, match=re.escape("BatchNormalization 'batch_normalization' expects (4,) features "
                                                   "on axis -1, got input (2, 5)")):
        layer.apply(params, state, jnp.zeros((2, 5)))


# Regression: a mismatch once surfaced as a bare TypeError from reshape.
def test_layer_normalization_features_vs_input():
    layer = L.LayerNormalization()
    params, state = layer.init(KEY, (4,))
    with pytest.raises(LayerError, match=r"^LayerNormalization 'layer_normalization' .*\(4,\).*\(2, 5\)"):
        layer.apply(params, state, jnp.zeros((2, 5)))


def test_reshape_at_apply_with_wrong_size():
    layer = L.Reshape((2, 3))
    layer.init(KEY, (6,))
    with pytest.raises(LayerError, match=re.escape("Reshape 'reshape' cannot reshape input (7,) (7 values) to "
                                                   "target_shape (2, 3) (6 values)")):
        layer.apply({}, {}, jnp.zeros((2, 7)))


# ------------------------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize("units", [0, -3, 2.5, True, "8", None])
def test_dense_bad_units(units):
    with pytest.raises(LayerError, match=re.escape(f"Dense: units must be a positive integer, got {units!r}")):
        L.Dense(units)


@pytest.mark.parametrize("cls", [L.Conv1D, L.Conv2D, L.Conv3D, L.Conv2DTranspose])
@pytest.mark.parametrize("filters", [0, -1])
def test_conv_bad_filters(cls, filters):
    with pytest.raises(LayerError, match=re.escape(f"{cls.__name__}: filters must be a positive integer, "
                                                   f"got {filters!r}")):
        cls(filters, 3)


@pytest.mark.parametrize("input_dim,output_dim,what,bad", [(0, 3, "input_dim", 0), (5, -2, "output_dim", -2)])
def test_embedding_bad_dims(input_dim, output_dim, what, bad):
    with pytest.raises(LayerError, match=re.escape(f"Embedding: {what} must be a positive integer, got {bad!r}")):
        L.Embedding(input_dim, output_dim)


@pytest.mark.parametrize("make,owner", [
    (lambda: L.Dense(3, activation="relux"), "Dense"),
    (lambda: L.Conv2D(3, 3, activation="sigmoidd"), "Conv2D"),
    (lambda: L.Activation("Softmaxx"), "Activation"),
    (lambda: L.Activation(42), "Activation"),
])
def test_unknown_activation(make, owner):
    with pytest.raises(LayerError, match=rf"^{owner}: activation: .*(unknown activation|must be a name)"):
        make()


@pytest.mark.parametrize("make,owner,expected", [
    (lambda: L.Conv2D(3, 3, padding="full"), "Conv2D", "padding must be one of ['valid', 'same'], got 'full'"),
    (lambda: L.Conv2D(3, 3, padding="causal"), "Conv2D", "padding must be one of ['valid', 'same'], got 'causal'"),
    (lambda: L.Conv1D(3, 3, padding="reflect"), "Conv1D",
     "padding must be one of ['valid', 'same', 'causal'], got 'reflect'"),
    (lambda: L.Conv2DTranspose(3, 3, padding="causal"), "Conv2DTranspose",
     "padding must be one of ['valid', 'same'], got 'causal'"),
    (lambda: L.MaxPooling2D(padding="full"), "MaxPooling2D", "padding must be 'valid' or 'same', got 'full'"),
    (lambda: L.AveragePooling1D(padding=1), "AveragePooling1D", "padding must be 'valid' or 'same', got 1"),
])
def test_unknown_padding(make, owner, expected):
    with pytest.raises(LayerError, match=re.escape(f"{owner}: {expected}")):
        make()


@pytest.mark.parametrize("make,expected", [
    (lambda: L.Conv2D(3, 0), "Conv2D: kernel_size must be a positive int or a tuple of 2 positive ints, got (0, 0)"),
    (lambda: L.Conv2D(3, -1), "Conv2D: kernel_size must be a positive int or a tuple of 2 positive ints, got (-1, -1)"),
    (lambda: L.Conv2D(3, (3,)), "Conv2D: kernel_size must be a positive int or a tuple of 2 positive ints, got (3,)"),
    (lambda: L.Conv2D(3, (3, 0)), "Conv2D: kernel_size must be a positive int or a tuple of 2 positive ints, "
                                  "got (3, 0)"),
    (lambda: L.Conv3D(3, (3, 3)), "Conv3D: kernel_size must be a positive int or a tuple of 3 positive ints, "
                                  "got (3, 3)"),
    (lambda: L.Conv2D(3, 3, strides=0), "Conv2D: strides must be a positive int or a tuple of 2 positive ints"),
    (lambda: L.Conv2D(3, 3, dilation_rate=(1, 0)), "Conv2D: dilation_rate must be a positive int or a tuple of 2"),
    (lambda: L.MaxPooling2D(pool_size=0), "MaxPooling2D: pool_size must be a positive int or a tuple of 2"),
    (lambda: L.AveragePooling1D(2, strides=-1), "AveragePooling1D: strides must be a positive int or a tuple of 1"),
])
def test_bad_kernel_size_strides_dilation_pool(make, expected):
    with pytest.raises(LayerError, match=re.escape(expected)):
        make()


# Regression: a float or None once raised a bare TypeError from tuple(value).
@pytest.mark.parametrize("bad", [2.5, None])
def test_kernel_size_not_int_nor_tuple(bad):
    with pytest.raises(LayerError, match=r"Conv2D: kernel_size must be a positive int or a tuple of 2 positive ints"):
        L.Conv2D(3, bad)


def test_kernel_size_as_a_string_is_rejected():
    with pytest.raises(LayerError, match=r"^Conv1D: kernel_size must be a positive int or a tuple of 1 positive "
                                         r"ints, got .*'3'"):
        L.Conv1D(3, "3")


@pytest.mark.parametrize("rate", [1.0, 1.5, -0.1, "0.5", None])
def test_dropout_rate_outside_range(rate):
    with pytest.raises(LayerError, match=re.escape(f"Dropout: rate must be a float in [0, 1), got {rate!r}")):
        L.Dropout(rate)


def test_dropout_rate_edges_are_accepted():
    assert L.Dropout(0.0).rate == 0.0
    assert L.Dropout(0.999).rate == 0.999


@pytest.mark.parametrize("target", [(0,), (-1, -1), (-2, 3), (3, 0, 2)])
def test_reshape_bad_target(target):
    with pytest.raises(LayerError, match=re.escape(f"Reshape: target_shape must hold positive ints and at most one "
                                                   f"-1, got {target}")):
        L.Reshape(target)


@pytest.mark.parametrize("target,shape,expected", [
    ((4,), (2, 3), "Reshape 'reshape' cannot reshape input (2, 3) (6 values) to target_shape (4,) (4 values)"),
    ((-1, 4), (2, 3), "Reshape 'reshape' cannot reshape input (2, 3) to target_shape (-1, 4)"),
    ((5, -1), (2, 3, 2), "Reshape 'reshape' cannot reshape input (2, 3, 2) to target_shape (5, -1)"),
])
def test_reshape_impossible_target(target, shape, expected):
    with pytest.raises(LayerError, match=re.escape(expected)):
        L.Reshape(target).init(KEY, shape)
    with pytest.raises(LayerError, match=re.escape(expected)):
        L.Reshape(target).output_shape(shape)


@pytest.mark.parametrize("make,expected", [
    (lambda: L.Conv2DTranspose(3, 3, strides=2, output_padding=2),
     "Conv2DTranspose: output_padding must be 2 ints each >= 0 and < the stride (2, 2), got (2, 2)"),
    (lambda: L.Conv2DTranspose(3, 3, output_padding=1),
     "Conv2DTranspose: output_padding must be 2 ints each >= 0 and < the stride (1, 1), got (1, 1)"),
    (lambda: L.Conv1DTranspose(3, 3, strides=2, output_padding=(1, 1)),
     "Conv1DTranspose: output_padding must be 1 ints each >= 0 and < the stride (2,), got (1, 1)"),
    (lambda: L.Conv2DTranspose(4, 3, groups=2), "Conv2DTranspose: groups is not supported"),
    (lambda: L.Conv2D(3, 3, groups=2), "Conv2D: filters (3) must be divisible by groups (2)"),
    (lambda: L.Conv2D(4, 3, groups=0), "Conv2D: groups must be a positive integer, got 0"),
    (lambda: L.Conv2D(3, 3, data_format="channels_first"),
     "Conv2D: only data_format='channels_last' is supported, got 'channels_first'"),
    (lambda: L.MaxPooling2D(data_format="channels_first"),
     "MaxPooling2D: only data_format='channels_last' is supported, got 'channels_first'"),
    (lambda: L.BatchNormalization(momentum=1.5), "BatchNormalization: momentum must be in [0, 1], got 1.5"),
    (lambda: L.BatchNormalization(epsilon=0.0), "BatchNormalization: epsilon must be > 0, got 0.0"),
    (lambda: L.LayerNormalization(epsilon=-1e-3), "LayerNormalization: epsilon must be > 0, got -0.001"),
    (lambda: L.Lambda("not callable"), "Lambda: function must be callable, got 'not callable'"),
    (lambda: L.fan_out(0), "FanOut: n must be a positive integer, got 0"),
    (lambda: L.Dense(3, name="a/b"), "Dense: name must be a non-empty string without '/', got 'a/b'"),
    (lambda: L.Dense(3, name=""), "Dense: name must be a non-empty string without '/', got ''"),
    (lambda: L.Dense(3, bias_initializer="nope"), "Dense: bias_initializer: unknown initializer 'nope'"),
    (lambda: L.Embedding(5, 3, embeddings_initializer="nope"), "Embedding: embeddings_initializer: unknown "
                                                               "initializer 'nope'"),
])
def test_other_bad_arguments(make, expected):
    with pytest.raises(LayerError, match=re.escape(expected)):
        make()


def test_groups_must_divide_input_channels():
    with pytest.raises(LayerError, match=re.escape("Conv2D 'conv2d' input channels (3) must be divisible by "
                                                   "groups (2)")):
        L.Conv2D(4, 3, groups=2).init(KEY, (5, 5, 3))


@pytest.mark.parametrize("make,shape,expected", [
    (lambda: L.BatchNormalization(axis=3), (4,),
     "BatchNormalization 'batch_normalization' axis 3 is out of range for input of rank 1 (batch axis excluded)"),
    (lambda: L.BatchNormalization(axis=0), (4, 2),
     "BatchNormalization 'batch_normalization' axis 0 is out of range for input of rank 2 (batch axis excluded)"),
    (lambda: L.LayerNormalization(axis=-3), (4, 2),
     "LayerNormalization 'layer_normalization' axis -3 is out of range for input of rank 2 (batch axis excluded)"),
    (lambda: L.Concatenate(axis=0), [(3,), (3,)],
     "Concatenate 'concatenate' axis 0 is out of range for inputs of rank 1 (batch axis excluded)"),
    (lambda: L.Concatenate(axis=3), [(3, 2), (3, 2)],
     "Concatenate 'concatenate' axis 3 is out of range for inputs of rank 2 (batch axis excluded)"),
])
def test_axis_out_of_range(make, shape, expected):
    with pytest.raises(LayerError, match=re.escape(expected)):
        make().init(KEY, shape)


# ------------------------------------------------------------------------- stochastic without a key


def test_dropout_training_without_rng():
    layer = L.Dropout(0.5)
    with pytest.raises(LayerError, match=r"^Dropout 'dropout' needs a random key when training=True"):
        layer.apply({}, {}, jnp.ones((2, 3)), training=True)
    # Inference needs no key, and a layer seed stands in for a missing key.
    layer.apply({}, {}, jnp.ones((2, 3)), training=False)
    L.Dropout(0.5, seed=3).apply({}, {}, jnp.ones((2, 3)), training=True)


def test_dropout_inside_serial_without_rng_names_the_dropout():
    model = L.serial(L.Dense(4), L.Dropout(0.3, name="drop"), L.Dense(2))
    params, state = model.init(KEY, (3,))
    assert model.stochastic
    with pytest.raises(LayerError, match=r"Dropout 'drop' needs a random key when training=True"):
        model.apply(params, state, jnp.ones((2, 3)), training=True)
    model.apply(params, state, jnp.ones((2, 3)), training=True, rng=jax.random.key(1))


def test_dropout_bad_noise_shape():
    layer = L.Dropout(0.5, noise_shape=(None, 3))
    with pytest.raises(LayerError, match=re.escape("Dropout 'dropout' noise_shape (None, 3) must have rank 3 like "
                                                   "input (2, 4, 3)")):
        layer.apply({}, {}, jnp.ones((2, 4, 3)), training=True, rng=KEY)


# ------------------------------------------------------------------------------------ merge layers


@pytest.mark.parametrize("cls", [L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum])
def test_merge_incompatible_shapes(cls):
    name = cls.default_name()
    expected = f"{cls.__name__} '{name}' expects inputs of the same shape, or shapes that broadcast, got [(3,), (4,)]"
    with pytest.raises(LayerError, match=re.escape(expected)):
        cls().init(KEY, [(3,), (4,)])
    with pytest.raises(LayerError, match=re.escape(expected)):
        cls().output_shape([(3,), (4,)])
    with pytest.raises(LayerError, match=re.escape(expected)):
        cls().apply({}, {}, [jnp.zeros((2, 3)), jnp.zeros((2, 4))])


@pytest.mark.parametrize("cls", [L.Add, L.Multiply, L.Concatenate])
def test_merge_needs_a_list_of_two(cls):
    name = cls.default_name()
    with pytest.raises(LayerError, match=re.escape(f"{cls.__name__} '{name}' expects a list of at least 2 inputs, "
                                                   f"got (3,)")):
        cls().init(KEY, (3,))
    with pytest.raises(LayerError, match=re.escape(f"{cls.__name__} '{name}' expects a list of at least 2 inputs, "
                                                   f"got [(3,)]")):
        cls().init(KEY, [(3,)])
    with pytest.raises(LayerError, match=re.escape(f"{cls.__name__} '{name}' expects a list of at least 2 arrays, "
                                                   f"got ArrayImpl")):
        cls().apply({}, {}, jnp.zeros((2, 3)))


def test_subtract_takes_exactly_two():
    with pytest.raises(LayerError, match=re.escape("Subtract 'subtract' expects exactly 2 inputs, "
                                                   "got [(3,), (3,), (3,)]")):
        L.Subtract().init(KEY, [(3,), (3,), (3,)])


def test_concatenate_incompatible_shapes():
    with pytest.raises(LayerError, match=re.escape("Concatenate 'concatenate' expects inputs that match except on "
                                                   "axis -1, got [(3, 2), (4, 3)]")):
        L.Concatenate().init(KEY, [(3, 2), (4, 3)])
    with pytest.raises(LayerError, match=re.escape("Concatenate 'concatenate' expects inputs of the same rank, "
                                                   "got [(3, 2), (3,)]")):
        L.Concatenate().init(KEY, [(3, 2), (3,)])
    with pytest.raises(LayerError, match=re.escape("Concatenate 'cat' expects inputs that match except on axis 1, "
                                                   "got [(3, 2), (4, 3)]")):
        L.Concatenate(axis=1, name="cat").apply({}, {}, [jnp.zeros((1, 3, 2)), jnp.zeros((1, 4, 3))])


# ------------------------------------------------------------------------------------- combinators


def test_residual_with_mismatched_shapes():
    with pytest.raises(LayerError, match=re.escape("Residual 'residual' body output (3,) does not match the shortcut "
                                                   "(4,) for input (4,)")):
        L.residual(L.Dense(3)).init(KEY, (4,))
    with pytest.raises(LayerError, match=re.escape("Residual 'res' body output (3,) does not match the shortcut "
                                                   "(5,) for input (4,)")):
        L.residual(L.Dense(3), shortcut=L.Dense(5), name="res").init(KEY, (4,))
    with pytest.raises(LayerError, match=re.escape("Residual 'residual' body output (2, 2, 4) does not match the "
                                                   "shortcut (4, 4, 4)")):
        L.residual(L.Conv2D(4, 3)).output_shape((4, 4, 4))


def test_duplicate_explicit_names_in_serial():
    with pytest.raises(LayerError, match=re.escape("two different layers are named 'fc' (Dense and Dense); layer "
                                                   "names must be unique within a model")):
        L.serial(L.Dense(3, name="fc"), L.Dense(2, name="fc"))
    with pytest.raises(LayerError, match=re.escape("two different layers are named 'dense' (Dense and Conv2D)")):
        L.serial(L.Dense(3), L.Conv2D(2, 3, name="dense"))
    model = L.serial(L.Dense(3, name="fc"))
    with pytest.raises(LayerError, match=re.escape("two different layers are named 'fc' (Dense and Activation)")):
        model.add(L.Activation("relu", name="fc"))


def test_shared_layer_is_not_a_duplicate():
    shared = L.Dense(3, name="fc")
    model = L.serial(shared, L.Activation("tanh"), shared)
    assert model.layer_names == ["fc", "activation", "fc"]


def test_serial_errors():
    with pytest.raises(LayerError, match=re.escape("Serial 'serial' has no layers")):
        L.serial().init(KEY, (3,))
    with pytest.raises(LayerError, match=r"expected a jaxnet_lite Layer, got str: 'relu'"):
        L.serial(L.Dense(3), "relu")
    # A child's shape error surfaces from the serial's init, naming the child.
    with pytest.raises(LayerError, match=re.escape("Conv2D 'conv2d' expects input of rank 3 (H, W, C), got (5,)")):
        L.serial(L.Dense(5), L.Conv2D(2, 3)).init(KEY, (4,))


def test_variables_of_another_model_are_refused_by_name():
    """A container given params without an entry per child says which are missing, instead of a KeyError."""
    small = L.serial(L.Dense(3, name="fc"))
    grown = L.serial(L.Dense(3, name="fc"), L.Dropout(0.1, name="drop"), name="grown")
    params, state = small.init(KEY, (4,))
    x = jnp.zeros((2, 4))
    with pytest.raises(LayerError, match=re.escape("Serial 'grown' params has no entry for its layers ['drop'] "
                                                   "(it has ['fc']): were these variables made by this model's init?")):
        grown.apply(params, state, x)
    residual = L.residual(L.Dense(4), name="res")
    with pytest.raises(LayerError, match=re.escape("Residual 'res' expects state as a dict with an entry per layer "
                                                   "['body'], got list")):
        residual.apply(residual.init(KEY, (4,)).params, [], x)
    from jaxnet_lite.models import Input, Model

    inputs = Input((4,))
    model = Model(inputs, L.Dense(2, name="head")(L.Dense(5, name="hidden")(inputs)))
    params, state = model.init(KEY)
    with pytest.raises(LayerError, match=re.escape("params has no entry for its layers ['head']")):
        model.apply({"hidden": params["hidden"]}, state, x)


def test_parallel_errors():
    layer = L.parallel(L.Dense(2), L.Dense(3))
    with pytest.raises(LayerError, match=re.escape("Parallel 'parallel' expects a list of 2 inputs, got (3,)")):
        layer.init(KEY, (3,))
    with pytest.raises(LayerError, match=re.escape("Parallel 'parallel' expects a list of 2 inputs, "
                                                   "got [(3,), (3,), (3,)]")):
        layer.init(KEY, [(3,), (3,), (3,)])
    params, state = layer.init(KEY, [(3,), (4,)])
    with pytest.raises(LayerError, match=re.escape("Parallel 'parallel' expects a list of 2 arrays, got ArrayImpl")):
        layer.apply(params, state, jnp.zeros((2, 3)))


# ------------------------------------------------------------- a list given to a single-input layer


def test_reshape_given_a_list_of_shapes():
    with pytest.raises(LayerError, match=re.escape("Reshape 'reshape' expects one input, got shapes "
                                                   "[(2, 3), (2, 3)]")):
        L.Reshape((6,)).init(KEY, [(2, 3), (2, 3)])


def test_dense_apply_given_a_list():
    layer = L.Dense(3)
    params, state = layer.init(KEY, (4,))
    with pytest.raises(LayerError, match=r"^Dense 'dense' expects .*"):
        layer.apply(params, state, [jnp.zeros((2, 4))])
