"""`x @ kernel` over the last axis of an input of any rank, written as one 2-D matmul.

For a 3-D input (a sequence), `jnp.matmul(x, kernel)` contracts one axis but its kernel gradient
contracts two (batch and time), and XLA:CPU rearranges such a dot by materialising a transposed copy of
the activation gradient first. Folding the leading axes into one, `(B*T, C) @ (C, F)`, gives the same
values with plain 2-D matmuls in both directions, which take transposed operands as they are.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def matmul_last_axis(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """`x (..., K) @ kernel (K, *out)` -> `(..., *out)`, as a matmul of `x` folded to 2-D."""
    k, out = kernel.shape[0], kernel.shape[1:]
    flat = jnp.matmul(x.reshape(-1, k), kernel.reshape(k, -1))
    return flat.reshape(*x.shape[:-1], *out)
