"""Convolutions, channels-last like Keras: Conv1D/2D/3D and Conv1D/2D/3DTranspose.

Kernels are `(*kernel_size, in_channels, filters)` for convolutions and, as in Keras,
`(*kernel_size, filters, in_channels)` for transposed convolutions.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxnet_lite.core import SPATIAL_AXES, Layer, LayerError, as_tuple, shape_str
from jaxnet_lite.core.shapes import as_int, as_ints, spell
from jaxnet_lite.layers.core import ActivationMixin, check_positive_int, get_initializer
from jaxnet_lite.layers.im2col import conv_im2col, dimension_numbers, patch_bytes

#: On CPU in training, "auto" takes the im2col path while its patch matrix stays under this size (memory).
IM2COL_MAX_PATCH_BYTES = 128 * 2**20


def conv_output_length(n: int, k: int, stride: int, padding: str, dilation: int) -> int:
    """Keras' `compute_conv_output_shape` for one spatial axis."""
    k_eff = (k - 1) * dilation + 1
    if padding == "same":
        return -(-n // stride)
    if padding == "causal":
        return -(-n // stride)
    return max((n - k_eff) // stride + 1, 0)


class _Conv(ActivationMixin, Layer):
    rank: int = 2
    slow_in_cpu_loops = True  # XLA:CPU compiles convolution gradients poorly inside loop bodies
    weight_arguments = {"kernel": "kernel", "bias": "bias"}
    paddings: tuple[str, ...] = ("valid", "same")

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        implementation: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        if implementation not in ("auto", "xla", "im2col"):
            raise LayerError(f"{cls}: implementation must be 'auto', 'xla' or 'im2col', got {implementation!r}")
        self.implementation = implementation
        self.filters = check_positive_int(cls, "filters", filters)
        self.kernel_size = as_tuple(kernel_size, self.rank, "kernel_size", cls)
        self.strides = as_tuple(strides, self.rank, "strides", cls)
        self.dilation_rate = as_tuple(dilation_rate, self.rank, "dilation_rate", cls)
        if not isinstance(padding, str) or padding.lower() not in self.paddings:
            raise LayerError(f"{cls}: padding must be one of {list(self.paddings)}, got {padding!r}")
        self.padding = padding.lower()
        if data_format not in (None, "channels_last"):
            raise LayerError(f"{cls}: only data_format='channels_last' is supported, got {data_format!r}")
        self.groups = check_positive_int(cls, "groups", groups)
        if self.filters % self.groups:
            raise LayerError(f"{cls}: filters ({self.filters}) must be divisible by groups ({self.groups})")
        self._set_activation(activation)
        self.use_bias = use_bias
        self.kernel_initializer = get_initializer(cls, "kernel_initializer", kernel_initializer)
        self.bias_initializer = get_initializer(cls, "bias_initializer", bias_initializer)

    def check_input_shape(self, input_shape):
        self.expect_spatial_rank(input_shape, self.rank)
        if input_shape[-1] % self.groups:
            raise self.error(f"input channels ({input_shape[-1]}) must be divisible by groups ({self.groups})")
        out = self.compute_output_shape(input_shape)
        if any(d <= 0 for d in out[:-1]):
            raise self.error(
                f"input {shape_str(input_shape)} is too small for kernel_size {self.kernel_size} "
                f"with dilation_rate {self.dilation_rate} and padding '{self.padding}' (output would be {out})"
            )

    def kernel_shape(self, in_channels: int) -> tuple[int, ...]:
        return (*self.kernel_size, in_channels // self.groups, self.filters)

    def make_variables(self, rng, input_shape):
        k_rng, b_rng = jax.random.split(rng)
        params = {"kernel": self.kernel_initializer(k_rng, self.kernel_shape(input_shape[-1]), self.dtype)}
        if self.use_bias:
            params["bias"] = self.bias_initializer(b_rng, (self.filters,), self.dtype)
        return params, {}

    def _check_call_input(self, x, kernel, channels_axis: int) -> None:
        expected = kernel.shape[channels_axis] * (self.groups if channels_axis == -2 else 1)
        if x.ndim != self.rank + 2 or x.shape[-1] != expected:
            raise self.error(
                f"expects input of shape (batch, {SPATIAL_AXES[self.rank][1:-4]}, {expected}) "
                f"(rank {self.rank + 2} with the batch axis) to match its kernel {tuple(kernel.shape)}, "
                f"got {tuple(x.shape)}"
            )

    def _lax_padding(self):
        if self.padding == "causal":
            return [((self.kernel_size[0] - 1) * self.dilation_rate[0], 0)]
        return self.padding.upper()

    def uses_im2col(self, input_shape: tuple[int, ...], training: bool = True, itemsize: int = 4) -> bool:
        """Whether `call` takes the patches + matmul path (`layers/im2col.py`) for this input.

        "auto" takes it in training on CPU for stride-1, undilated, ungrouped convolutions whose patch
        matrix fits `IM2COL_MAX_PATCH_BYTES`: it won there for 8 of 9 measured shapes and made the tutorial
        CNN's train step 1.4x faster. Forward-only, XLA's convolution is as fast or faster.
        """
        if self.implementation == "xla":
            return False
        simple = self.strides == (1,) * self.rank and self.dilation_rate == (1,) * self.rank and self.groups == 1
        if self.implementation == "im2col":
            if not simple:
                raise self.error("implementation='im2col' supports only strides 1, dilation_rate 1 and groups 1")
            return True
        return (simple and training and jax.default_backend() == "cpu"
                and patch_bytes(input_shape, self.kernel_size, itemsize) <= IM2COL_MAX_PATCH_BYTES)

    def call(self, params, state, x, *, rng=None, training=False):
        kernel = params["kernel"]
        self._check_call_input(x, kernel, -2)
        dtype = jnp.result_type(x, kernel)
        x, kernel = x.astype(dtype), kernel.astype(dtype)
        if self.uses_im2col(x.shape, training, x.dtype.itemsize):
            y = conv_im2col(x, kernel, self.padding)
        else:
            y = lax.conv_general_dilated(
                x,
                kernel,
                window_strides=self.strides,
                padding=self._lax_padding(),
                rhs_dilation=self.dilation_rate,
                dimension_numbers=dimension_numbers(self.rank),
                feature_group_count=self.groups,
            )
        if self.use_bias:
            y = y + params["bias"]
        return self.activation(y), state

    def compute_output_shape(self, input_shape):
        spatial = tuple(
            conv_output_length(n, k, s, self.padding, d)
            for n, k, s, d in zip(input_shape[:-1], self.kernel_size, self.strides, self.dilation_rate)
        )
        return (*spatial, self.filters)


class Conv1D(_Conv):
    """1D convolution over `(W, C)` inputs; `padding` may also be `"causal"`."""

    rank = 1
    paddings = ("valid", "same", "causal")


class Conv2D(_Conv):
    """2D convolution over `(H, W, C)` inputs."""

    rank = 2


class Conv3D(_Conv):
    """3D convolution over `(D, H, W, C)` inputs."""

    rank = 3


def transpose_padding(k: int, stride: int, dilation: int, padding: str, output_padding: int | None):
    """Keras' JAX-backend padding for a transposed convolution along one axis: `(left, right)`."""
    k_eff = (k - 1) * dilation + 1
    if padding == "valid":
        output_padding = max(k_eff, stride) - k_eff if output_padding is None else output_padding
        return k_eff - 1, k_eff - 1 + output_padding
    pad_len = stride + k_eff - 2 if output_padding is None else k_eff + k_eff % 2 - 2 + output_padding
    left = min(pad_len // 2 + pad_len % 2, k_eff - 1)
    return left, pad_len - left


class _ConvTranspose(_Conv):
    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 output_padding: Any = None, **kwargs: Any) -> None:
        if as_int(kwargs.get("groups", 1)) != 1:
            raise LayerError(f"{type(self).__name__}: groups is not supported")
        super().__init__(filters, kernel_size, strides, padding, **kwargs)
        self.output_padding = None if output_padding is None else self._check_output_padding(output_padding)

    def _check_output_padding(self, value: Any) -> tuple[int, ...]:
        """Keras' `output_padding`: an int or `rank` ints, each >= 0 and below the stride on its axis."""
        single = as_int(value)
        pads = (single,) * self.rank if single is not None else as_ints(value)
        if pads is None or len(pads) != self.rank or any(not 0 <= p < s for p, s in zip(pads, self.strides)):
            raise LayerError(
                f"{type(self).__name__}: output_padding must be {self.rank} ints each >= 0 and < the stride "
                f"{self.strides}, got {spell(value if pads is None else pads)}"
            )
        return pads

    def kernel_shape(self, in_channels: int) -> tuple[int, ...]:
        return (*self.kernel_size, self.filters, in_channels)

    def _pads(self):
        ops = self.output_padding or (None,) * self.rank
        return [
            transpose_padding(k, s, d, self.padding, op)
            for k, s, d, op in zip(self.kernel_size, self.strides, self.dilation_rate, ops)
        ]

    def call(self, params, state, x, *, rng=None, training=False):
        kernel = params["kernel"]
        self._check_call_input(x, kernel, -1)
        dtype = jnp.result_type(x, kernel)
        y = lax.conv_transpose(
            x.astype(dtype),
            kernel.astype(dtype),
            strides=self.strides,
            padding=self._pads(),
            rhs_dilation=self.dilation_rate,
            dimension_numbers=dimension_numbers(self.rank),
            transpose_kernel=True,
        )
        if self.use_bias:
            y = y + params["bias"]
        return self.activation(y), state

    def compute_output_shape(self, input_shape):
        spatial = tuple(
            (n - 1) * s + left + right - ((k - 1) * d + 1) + 2
            for n, k, s, d, (left, right) in zip(
                input_shape[:-1], self.kernel_size, self.strides, self.dilation_rate, self._pads()
            )
        )
        return (*spatial, self.filters)


class Conv1DTranspose(_ConvTranspose):
    rank = 1


class Conv2DTranspose(_ConvTranspose):
    """Transposed 2D convolution ("deconvolution"); kernel `(kh, kw, filters, in_channels)` as in Keras."""

    rank = 2


class Conv3DTranspose(_ConvTranspose):
    rank = 3

