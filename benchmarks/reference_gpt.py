"""The hand-written JAX GPT ("ref_gpt"): nanoGPT's model as pure functions, one jitted step, Optax.

It deliberately does NOT import jaxnet_lite. Same shapes, init, optimizer and schedule as the example
(`examples/char_gpt.py`) and the PyTorch contender: params in a dict, one fused qkv matrix per block,
`jax.nn.dot_product_attention(is_causal=True)`, exact GELU, the head tied to the token embedding. The text
lives on the device; each step draws its random windows inside the jitted step (`fold_in(key, step)`)
and donates the params and optimizer state. With dropout (nanoGPT's GPU configuration) the attention is
written out (the fused op has no dropout) and drops where nanoGPT does; under "mixed_bfloat16" the
params are cast to bfloat16 for the forward pass, with the norms' statistics and the loss in float32.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.workloads import COMPUTE_DTYPES


def init_params(key: jax.Array, vocab: int, block: int, n_layer: int, n_embd: int, bias: bool) -> dict:
    """normal(0, 0.02) matrices, 0.02 / sqrt(2 * n_layer) for the residual projections, unit norms."""
    keys = iter(jax.random.split(key, 2 + 4 * n_layer))
    normal = lambda shape, std=0.02: std * jax.random.normal(next(keys), shape, jnp.float32)  # noqa: E731
    proj_std = 0.02 / math.sqrt(2 * n_layer)

    def norm() -> dict:
        return {"scale": jnp.ones(n_embd), **({"bias": jnp.zeros(n_embd)} if bias else {})}

    def linear(n_in: int, n_out: int, std: float = 0.02) -> dict:
        return {"kernel": normal((n_in, n_out), std), **({"bias": jnp.zeros(n_out)} if bias else {})}

    blocks = [{"ln_1": norm(), "qkv": linear(n_embd, 3 * n_embd), "proj": linear(n_embd, n_embd, proj_std),
               "ln_2": norm(), "fc": linear(n_embd, 4 * n_embd), "out": linear(4 * n_embd, n_embd, proj_std)}
              for _ in range(n_layer)]
    return {"wte": normal((vocab, n_embd)), "wpe": normal((block, n_embd)), "blocks": blocks, "ln_f": norm()}


def _norm(p: dict, x: jax.Array) -> jax.Array:
    wide = x.astype(jnp.float32)
    mean = wide.mean(-1, keepdims=True)
    y = ((wide - mean) * jax.lax.rsqrt(jnp.square(wide - mean).mean(-1, keepdims=True) + 1e-5)).astype(x.dtype)
    y = y * p["scale"]
    return y + p["bias"] if "bias" in p else y


def _dropout(key: jax.Array | None, rate: float, x: jax.Array) -> jax.Array:
    if key is None or rate == 0.0:
        return x
    return jnp.where(jax.random.bernoulli(key, 1.0 - rate, x.shape), x / (1.0 - rate), 0.0).astype(x.dtype)


def _attention(q: jax.Array, k: jax.Array, v: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Causal attention over `(batch, time, heads, head_dim)`; dropout on the weights when training."""
    if key is None or rate == 0.0:
        return jax.nn.dot_product_attention(q, k, v, is_causal=True)
    t = q.shape[1]
    logits = jnp.einsum("btnh,bsnh->bnts", q, k).astype(jnp.float32) / math.sqrt(q.shape[-1])
    logits = jnp.where(jnp.tril(jnp.ones((t, t), bool)), logits, -jnp.inf)
    weights = _dropout(key, rate, jax.nn.softmax(logits, axis=-1)).astype(v.dtype)
    return jnp.einsum("bnts,bsnh->btnh", weights, v)


def _linear(p: dict, x: jax.Array) -> jax.Array:
    y = x @ p["kernel"]
    return y + p["bias"] if "bias" in p else y


def forward(params: dict, ids: jax.Array, n_head: int, dropout: float = 0.0, key: jax.Array | None = None,
            dtype: Any = jnp.float32) -> jax.Array:
    """Logits `(batch, time, vocab)` for ids `(batch, time)`, computed in `dtype`; dropout when given a key."""
    params = jax.tree.map(lambda w: w.astype(dtype), params)
    keys = iter(jax.random.split(key, 1 + 3 * len(params["blocks"])) if key is not None else [])
    drop = lambda x: _dropout(next(keys, None), dropout, x)  # noqa: E731
    b, t = ids.shape
    x = drop(params["wte"][ids] + params["wpe"][:t])
    for p in params["blocks"]:
        q, k, v = jnp.split(_linear(p["qkv"], _norm(p["ln_1"], x)), 3, axis=-1)
        heads = lambda z: z.reshape(b, t, n_head, -1)  # noqa: E731
        y = _attention(heads(q), heads(k), heads(v), dropout, next(keys, None))
        x = x + drop(_linear(p["proj"], y.reshape(b, t, -1)))
        x = x + drop(_linear(p["out"], jax.nn.gelu(_linear(p["fc"], _norm(p["ln_2"], x)), approximate=False)))
    return _norm(params["ln_f"], x) @ params["wte"].T


def loss_fn(params: dict, x: jax.Array, y: jax.Array, n_head: int, dropout: float = 0.0,
            key: jax.Array | None = None, dtype: Any = jnp.float32) -> jax.Array:
    logits = forward(params, x, n_head, dropout, key, dtype).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def optimizer(cfg: Any) -> optax.GradientTransformation:
    """Clip at `grad_clip`, then AdamW with nanoGPT's schedule, decaying matrices (ndim >= 2) only."""

    def schedule(it: jax.Array) -> jax.Array:
        it = it.astype(jnp.float32)
        ratio = jnp.clip((it - cfg.warmup_iters) / max(cfg.iters - cfg.warmup_iters, 1), 0.0, 1.0)
        cosine = cfg.min_lr + 0.5 * (1.0 + jnp.cos(jnp.pi * ratio)) * (cfg.lr - cfg.min_lr)
        warm = cfg.lr * (it + 1) / (cfg.warmup_iters + 1)
        return jnp.where(it < cfg.warmup_iters, warm, jnp.where(it > cfg.iters, cfg.min_lr, cosine))

    mask = lambda params: jax.tree.map(lambda w: w.ndim >= 2, params)  # noqa: E731
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip),
                       optax.adamw(schedule, b1=0.9, b2=cfg.beta2, eps=1e-8, weight_decay=cfg.weight_decay, mask=mask))


class Contender:
    """The hand-written training loop cut into `run(k)` calls, so the race can alternate contenders."""

    def __init__(self, cfg: Any, train_ids: np.ndarray, val_ids: np.ndarray, eval_starts: np.ndarray,
                 vocab_size: int) -> None:
        block, batch, n_head, rate = cfg.block_size, cfg.batch_size, cfg.n_head, cfg.dropout
        if cfg.policy not in COMPUTE_DTYPES:
            raise ValueError(f"ref_gpt: policy must be one of {sorted(COMPUTE_DTYPES)}, got {cfg.policy!r}")
        dtype = jnp.dtype(COMPUTE_DTYPES[cfg.policy])
        tx = optimizer(cfg)
        self.params = init_params(jax.random.key(cfg.seed), vocab_size, block, cfg.n_layer, cfg.n_embd, cfg.bias)
        self.opt_state = tx.init(self.params)
        self.data, self.val = jnp.asarray(train_ids, jnp.int32), jnp.asarray(val_ids, jnp.int32)
        self.eval_starts = [jnp.asarray(s, jnp.int32) for s in eval_starts]
        self.it, self.loss = 0, jnp.nan
        base_key, drop_key = jax.random.key(cfg.seed + 1), jax.random.key(cfg.seed + 2)
        span = jnp.arange(block + 1)

        def train_step(params, opt_state, data, it):
            starts = jax.random.randint(jax.random.fold_in(base_key, it), (batch,), 0, data.shape[0] - block)
            dropout_key = jax.random.fold_in(drop_key, it)
            rows = data[starts[:, None] + span]
            loss, grads = jax.value_and_grad(loss_fn)(params, rows[:, :-1], rows[:, 1:], n_head, rate, dropout_key,
                                                      dtype)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        def eval_loss(params, val, starts):
            rows = val[starts[:, None] + span]
            return loss_fn(params, rows[:, :-1], rows[:, 1:], n_head, dtype=dtype)

        self.step = jax.jit(train_step, donate_argnums=(0, 1))
        self.eval_loss = jax.jit(eval_loss)
        self.n_params = sum(w.size for w in jax.tree.leaves(self.params))
        self.device = str(jax.devices()[0])

    def run(self, steps: int) -> None:
        """`steps` training steps, one dispatch each; returns when the last one is done."""
        for _ in range(steps):
            self.params, self.opt_state, self.loss = self.step(self.params, self.opt_state, self.data, self.it)
            self.it += 1
        jax.block_until_ready(self.params)

    def evaluate(self) -> float:
        """The mean loss over the shared validation windows."""
        return float(np.mean([float(self.eval_loss(self.params, self.val, s)) for s in self.eval_starts]))
