"""The hand-written JAX reference's sequence model: Embedding -> masked LSTM -> Dense(1) logits.

Like `reference_jax.py` (which uses it for the `lstm` workloads) it does not import jaxnet_lite. It is the
LSTM a careful JAX user writes: the embedding is a gather, the input projection `x @ kernel + bias` runs
for all time steps at once before the loop (one large matmul), and the loop is one `lax.scan` whose body
is one `h @ recurrent_kernel` matmul plus the gate arithmetic (gates i, f, c, o, Keras' order). Token 0
is padding (Keras' `mask_zero=True`): at a padded step `h` and `c` stay as they were (two `where`s),
so it does the work of jaxnet_lite's and Keras' masked LSTM. Only the final `h` leaves the scan (no
per-step outputs are stacked). The sigmoid output is folded into the loss
(`optax.sigmoid_binary_cross_entropy` on the logit). Initialisation as Keras: embeddings uniform in
[-0.05, 0.05], Glorot-uniform kernels, orthogonal recurrent kernel, forget-gate bias 1, other biases 0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

EMBED_DIM = 32  # the example's Embedding(500, 32)


def _glorot(key: jax.Array, shape: tuple[int, int]) -> jax.Array:
    limit = math.sqrt(6.0 / sum(shape))
    return jax.random.uniform(key, shape, jnp.float32, -limit, limit)


def init_lstm(key: jax.Array, vocab: int, units: int, embed: int = EMBED_DIM) -> dict:
    """Parameters of Embedding(vocab, embed) -> LSTM(units) -> Dense(1), initialised as Keras does."""
    ke, kk, kr, kd = jax.random.split(key, 4)
    bias = jnp.concatenate([jnp.zeros(units), jnp.ones(units), jnp.zeros(2 * units)])
    return {
        "embed": jax.random.uniform(ke, (vocab, embed), jnp.float32, -0.05, 0.05),
        "lstm": {"kernel": _glorot(kk, (embed, 4 * units)),
                 "recurrent": jax.nn.initializers.orthogonal()(kr, (units, 4 * units), jnp.float32),
                 "bias": bias},
        "dense": {"w": _glorot(kd, (units, 1)), "b": jnp.zeros(1)},
    }


def lstm_final_state(p: dict, x: jax.Array, mask: jax.Array) -> jax.Array:
    """The last `h` of a masked LSTM over `x` (batch, time, features); `mask` (batch, time) is True at real steps."""
    batch, units = x.shape[0], p["recurrent"].shape[0]
    z = jnp.swapaxes(x @ p["kernel"] + p["bias"], 0, 1)  # (time, batch, 4 units): the hoisted projection
    m = jnp.swapaxes(mask, 0, 1)[..., None]

    def step(carry: tuple[jax.Array, jax.Array], inputs: tuple[jax.Array, jax.Array]) -> tuple[tuple, None]:
        h, c = carry
        z_t, m_t = inputs
        i, f, g, o = jnp.split(z_t + h @ p["recurrent"], 4, axis=-1)
        c_new = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
        return (jnp.where(m_t, h_new, h), jnp.where(m_t, c_new, c)), None

    zeros = jnp.zeros((batch, units), x.dtype)
    (h, _), _ = lax.scan(step, (zeros, zeros), (z, m))
    return h


def apply_lstm(params: dict, ids: jax.Array, key: jax.Array | None = None, training: bool = False) -> jax.Array:
    """Logits (batch, 1) for integer token ids (batch, time); no dropout, so `key` and `training` are unused."""
    ids = ids.astype(jnp.int32)
    x = jnp.take(params["embed"], ids, axis=0)
    h = lstm_final_state(params["lstm"], x, ids != 0)
    return h @ params["dense"]["w"] + params["dense"]["b"]


def matmul_flops_per_example(steps: int, units: int, embed: int = EMBED_DIM) -> float:
    """Inference FLOPs of one example, counted by hand: the LSTM's input and recurrent matmuls at every
    step plus the Dense(1) (gate arithmetic and the embedding gather left out). XLA's cost analysis
    counts a loop body once, not once per step, so it cannot give this figure."""
    return 2.0 * steps * (embed + units) * 4 * units + 2.0 * units
