"""Stride-1 convolution as patches + matmul ("im2col"), with XLA's convolution for the input gradient.

On XLA:CPU the three passes of a convolution run at very different speeds. Measured on the tutorial's
second convolution (13x13x32 -> 64, batch 128, 2 cores; benchmarks/RESULTS.md): the forward pass and the
kernel gradient as matmuls over a patch matrix beat XLA's convolutions (5.6 vs 7.6 ms and 7.6 vs 13.2 ms),
while XLA's transposed convolution is the fastest input gradient. With a single input channel XLA's
forward convolution is the faster one, so it is used there. `conv_im2col` combines the three: its
custom JVP is `conv(x_dot, kernel) + patches(x) @ kernel_dot`, so reverse mode transposes the first term
into XLA's input gradient and the second into `patches(x)^T @ dy`, reusing the forward pass's patches.
Being a JVP rule (not a VJP), it keeps forward mode and higher derivatives working.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jaxnet_lite.layers.matmul import matmul_last_axis

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


def dimension_numbers(rank: int) -> tuple[str, str, str]:
    """Channels-last `lax.conv_general_dilated` dimension numbers for `rank` spatial axes."""
    s = _SPATIAL[rank]
    return f"N{s}C", f"{s}IO", f"N{s}C"


def same_padding(window: Sequence[int], padding: str) -> list[tuple[int, int]]:
    """Per-axis (before, after) zero padding that turns 'same'/'causal' into a 'valid' convolution."""
    if padding == "causal":
        return [(k - 1, 0) for k in window]
    if padding == "same":
        return [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in window]
    return [(0, 0) for _ in window]


def patches(x: jax.Array, window: Sequence[int]) -> jax.Array:
    """`(batch, *out, prod(window) * channels)`: every 'valid' window of `x`, offsets major, channels minor.

    One gather with indices fixed at trace time; the order matches a kernel reshaped to
    `(prod(window) * in_channels, filters)`. Measured against concatenated shifted slices (which XLA:CPU
    materializes one by one before concatenating) it built the tutorial's conv2 patches faster and made
    a (26, 26, 16) forward pass 2.8x faster.
    """
    spatial, channels = x.shape[1:-1], x.shape[-1]
    out = [n - k + 1 for n, k in zip(spatial, window)]
    positions = np.stack(np.meshgrid(*(np.arange(o) for o in out), indexing="ij"), axis=-1)  # (*out, rank)
    offsets = np.array(list(itertools.product(*(range(k) for k in window))))  # (prod(window), rank)
    coords = positions[..., None, :] + offsets  # (*out, prod(window), rank)
    flat = np.ravel_multi_index(tuple(np.moveaxis(coords, -1, 0)), spatial).astype(np.int32)
    cols = jnp.take(x.reshape(x.shape[0], -1, channels), jnp.asarray(flat.reshape(-1)), axis=1)
    return cols.reshape(x.shape[0], *out, len(offsets) * channels)


def _patches_matmul(cols: jax.Array, kernel: jax.Array) -> jax.Array:
    return matmul_last_axis(cols, kernel.reshape(-1, kernel.shape[-1]))


def conv_xla(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """XLA's stride-1, undilated 'valid' convolution, channels-last."""
    rank = x.ndim - 2
    return lax.conv_general_dilated(x, kernel, (1,) * rank, "VALID", dimension_numbers=dimension_numbers(rank))


def _forward(x: jax.Array, kernel: jax.Array, cols: jax.Array) -> jax.Array:
    # One input channel: XLA's convolution measured faster than the matmul (K = 9: 0.84 vs 1.41 ms).
    return conv_xla(x, kernel) if kernel.shape[-2] == 1 else _patches_matmul(cols, kernel)


@jax.custom_jvp
def conv_im2col_valid(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Stride-1, undilated 'valid' convolution as one matmul over the patch matrix (see the module doc)."""
    return _forward(x, kernel, patches(x, kernel.shape[:-2]))


def _conv_im2col_jvp(primals, tangents):
    x, kernel = primals
    x_dot, kernel_dot = tangents
    cols = patches(x, kernel.shape[:-2])
    y = _forward(x, kernel, cols)
    terms = []
    if not isinstance(x_dot, SymbolicZero):
        terms.append(conv_xla(x_dot, kernel))
    if not isinstance(kernel_dot, SymbolicZero):
        terms.append(_patches_matmul(cols, kernel_dot))
    y_dot = sum(terms[1:], terms[0]) if terms else jnp.zeros_like(y)
    return y, y_dot


conv_im2col_valid.defjvp(_conv_im2col_jvp, symbolic_zeros=True)


def conv_im2col(x: jax.Array, kernel: jax.Array, padding: str) -> jax.Array:
    """Stride-1, undilated convolution with 'valid', 'same' or 'causal' padding, as `conv_im2col_valid`."""
    pads = same_padding(kernel.shape[:-2], padding)
    if any(p != (0, 0) for p in pads):
        x = jnp.pad(x, [(0, 0), *pads, (0, 0)])
    return conv_im2col_valid(x, kernel)


def patch_bytes(input_shape: Sequence[int], window: Sequence[int], itemsize: int) -> int:
    """Bytes of the patch matrix `conv_im2col` builds (and keeps for the backward pass) for this input."""
    batch, *spatial, channels = input_shape
    count = batch * channels
    for n, k in zip(spatial, window):
        count *= n * k  # 'same' output length n (valid is smaller): an upper bound either way
    return count * itemsize
