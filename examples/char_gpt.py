"""A character-level GPT on Tiny Shakespeare, built from the functional core: nanoGPT's recipe.

The model mirrors nanoGPT's `model.py`: learned token and position embeddings, pre-norm blocks
(LayerNorm -> causal self-attention -> residual; LayerNorm -> Dense(4d, gelu) -> Dense(d) -> residual),
a final LayerNorm and a head TIED to the token embedding (logits = h @ embeddings.T, one matrix for both,
as nanoGPT ties `lm_head.weight` to `wte.weight`). Init is nanoGPT's: normal(0, 0.02) everywhere, and
0.02 / sqrt(2 * n_layer) for the two residual output projections of each block. Bias-free Dense,
attention and LayerNorm by default, as nanoGPT's `train.py` (`bias = False`) trains; `--bias` adds them.
No dropout by default: nanoGPT's CPU command sets `--dropout=0.0`. With `--dropout p` (its GPU configuration
uses 0.2) it drops where nanoGPT does: after the embeddings, on the attention weights, and at the end of
each residual branch.

Training is nanoGPT's `config/train_shakespeare_char.py` with its README's CPU overrides (4 layers, 4
heads, 128 wide, context 64, batch 12, 2,000 iterations): AdamW (lr 1e-3, betas 0.9/0.99, weight decay
0.1 on matrices and embeddings only), 100 warm-up steps then cosine decay to 1e-4, gradient clipping at
1.0. Every `--eval-interval` steps it prints nanoGPT's estimate: the mean loss over `--eval-iters`
random batches of each split. With `--sample` it ends with generated text (one compiled loop).

Run: python examples/char_gpt.py [--iters N] [--sample] [--n-layer L --n-head H --n-embd D ...]
nanoGPT's GPU configuration: --n-layer 6 --n-head 6 --n-embd 384 --block-size 256 --batch-size 64
--iters 5000 --dropout 0.2 --eval-iters 200 --policy mixed_bfloat16
"""

from __future__ import annotations

import argparse
import math
import time
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxnet_lite import TrainState, make_eval_step, make_train_step, mixed_precision
from jaxnet_lite.data import RandomWindows
from jaxnet_lite.datasets import tinyshakespeare
from jaxnet_lite.host_allocator import tune_host_allocator
from jaxnet_lite.initializers import RandomNormal
from jaxnet_lite.layers import (
    Dense,
    Dropout,
    LayerNormalization,
    MultiHeadAttention,
    Serial,
    TokenAndPositionEmbedding,
    residual,
    serial,
)
from jaxnet_lite.layers.matmul import matmul_last_axis
from jaxnet_lite.losses import SparseCategoricalCrossentropy

# --------------------------------------------------------------------------------------------- model


def _dropped(rate: float, name: str) -> list:
    """`[Dropout(rate)]`, or nothing at rate 0 (so a model without dropout has no dropout layers at all)."""
    return [Dropout(rate, name=name)] if rate > 0.0 else []


def transformer_block(n_embd: int, n_head: int, n_layer: int, bias: bool = False, dropout: float = 0.0,
                      name: str | None = None) -> Serial:
    """One pre-norm GPT block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))` (nanoGPT's `Block`), with
    nanoGPT's dropout on the attention weights and at the end of each branch when `dropout > 0`."""
    normal = RandomNormal(stddev=0.02)
    projection = RandomNormal(stddev=0.02 / math.sqrt(2 * n_layer))  # nanoGPT's scaled `c_proj` init
    attention = MultiHeadAttention(n_head, n_embd // n_head, dropout=dropout, use_bias=bias,
                                   kernel_initializer=normal, name="attn")
    return serial(
        residual(LayerNormalization(epsilon=1e-5, center=bias, name="ln_1"),
                 attention.configured(use_causal_mask=True), *_dropped(dropout, "attn_drop"), name="attention"),
        residual(LayerNormalization(epsilon=1e-5, center=bias, name="ln_2"),
                 Dense(4 * n_embd, activation="gelu", use_bias=bias, kernel_initializer=normal, name="fc"),
                 Dense(n_embd, use_bias=bias, kernel_initializer=projection, name="proj"),
                 *_dropped(dropout, "mlp_drop"), name="mlp"),
        name=name,
    )


class GPT(Serial):
    """`serial(embeddings, blocks..., final LayerNorm)` and then the tied head: logits = h @ E.T, where E is
    the token embedding matrix in this model's own params, so one matrix learns from both ends.

    Input `(batch, time)` integer ids with `time <= block_size` (declared as `(block_size,)`, so `init` and
    `Trainer` need no shape); output `(batch, time, vocab_size)` logits.
    """

    def __init__(self, vocab_size: int, block_size: int, n_layer: int = 4, n_head: int = 4, n_embd: int = 128,
                 bias: bool = False, dropout: float = 0.0, name: str | None = None) -> None:
        if n_embd % n_head:
            raise ValueError(f"GPT: n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"GPT: dropout must be in [0, 1), got {dropout}")
        self.vocab_size, self.block_size, self.n_layer = vocab_size, block_size, n_layer
        embedding = TokenAndPositionEmbedding(vocab_size, block_size, n_embd,
                                              embeddings_initializer=RandomNormal(stddev=0.02), name="embedding")
        blocks = [transformer_block(n_embd, n_head, n_layer, bias, dropout, name=f"block_{i}") for i in range(n_layer)]
        final_norm = LayerNormalization(epsilon=1e-5, center=bias, name="ln_f")
        super().__init__([embedding, *_dropped(dropout, "embedding_drop"), *blocks, final_norm], name=name,
                         input_shape=(block_size,))

    def make_variables(self, rng, input_shape):
        params, state = super().make_variables(rng, input_shape)
        # MultiHeadAttention takes one kernel initializer for its four projections: scale the output one.
        scale = 1.0 / math.sqrt(2 * self.n_layer)
        return jax.tree_util.tree_map_with_path(
            lambda path, w: w * scale if "attention_output" in jax.tree_util.keystr(path) and path[-1].key == "kernel"
            else w, params), state

    def call(self, params, state, x, *, rng=None, training=False):
        h, state = super().call(params, state, x, rng=rng, training=training)
        embeddings = params["embedding"]["token_embedding"]["embeddings"]
        # One 2-D matmul over the folded (batch * time) axis: its gradients need no transposed copies on CPU.
        return matmul_last_axis(h, embeddings.T), state

    def compute_output_shape(self, input_shape):
        return (*super().compute_output_shape(input_shape)[:-1], self.vocab_size)


# ------------------------------------------------------------------------------------ optimisation


def nanogpt_schedule(learning_rate: float = 1e-3, min_lr: float = 1e-4, warmup_iters: int = 100,
                     lr_decay_iters: int = 2000) -> optax.Schedule:
    """nanoGPT's `get_lr(it)`: linear warm-up `lr * (it + 1) / (warmup + 1)`, cosine decay to `min_lr` at
    `lr_decay_iters`, then `min_lr`."""

    def schedule(it: jax.Array) -> jax.Array:
        it = jnp.asarray(it, jnp.float32)
        warm = learning_rate * (it + 1) / (warmup_iters + 1)
        ratio = jnp.clip((it - warmup_iters) / max(lr_decay_iters - warmup_iters, 1), 0.0, 1.0)
        cosine = min_lr + 0.5 * (1.0 + jnp.cos(jnp.pi * ratio)) * (learning_rate - min_lr)
        return jnp.where(it < warmup_iters, warm, jnp.where(it > lr_decay_iters, min_lr, cosine))

    return schedule


def decays(params: Any) -> Any:
    """True for the params nanoGPT weight-decays (matmul kernels and embeddings), False for biases and norms."""
    return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key in ("kernel", "embeddings"), params)


def nanogpt_optimizer(iters: int = 2000, learning_rate: float = 1e-3, min_lr: float = 1e-4, warmup_iters: int = 100,
                      weight_decay: float = 0.1, beta2: float = 0.99, grad_clip: float = 1.0
                      ) -> optax.GradientTransformation:
    """AdamW as nanoGPT configures it (decoupled decay on matrices only), after global-norm clipping."""
    schedule = nanogpt_schedule(learning_rate, min_lr, warmup_iters, iters)
    return optax.chain(optax.clip_by_global_norm(grad_clip),
                       optax.adamw(schedule, b1=0.9, b2=beta2, eps=1e-8, weight_decay=weight_decay, mask=decays))


LOSS = SparseCategoricalCrossentropy(from_logits=True)  # mean over every (batch, time) position


# --------------------------------------------------------------------------------------- generation


def generate(model: GPT, params: Any, state: Any, prompt: jax.Array, key: jax.Array, *, max_new_tokens: int,
             temperature: float = 1.0, top_k: int | None = None) -> jax.Array:
    """`prompt (batch, P)` ids followed by `max_new_tokens` sampled ones: `(batch, P + max_new_tokens)`.

    One compiled `fori_loop`. Each step runs the model on a fixed window of `model.block_size` ids (the
    last ones, or the first ones while the text is shorter: causal attention keeps the ids not yet written
    out of the logits read), divides the last logits by `temperature`, keeps the `top_k` largest and
    samples with `fold_in(key, step)`: the same key gives the same text. `temperature` and `top_k` are
    traced, so changing them does not recompile.
    """
    if not temperature > 0:
        raise ValueError(f"generate: temperature must be > 0, got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"generate: top_k must be a positive int or None, got {top_k!r}")
    return _generate(model, params, state, jnp.asarray(prompt, jnp.int32), key, max_new_tokens, temperature, top_k)


@partial(jax.jit, static_argnums=(0, 5))
def _generate(model, params, state, prompt, key, max_new_tokens, temperature, top_k):
    batch, length = prompt.shape
    block = model.block_size
    total = length + max_new_tokens
    tokens = jnp.zeros((batch, max(total, block)), jnp.int32).at[:, :length].set(prompt)

    def step(i, tokens):
        end = length + i  # ids written so far
        start = jnp.maximum(end - block, 0)
        window = jax.lax.dynamic_slice_in_dim(tokens, start, block, axis=1)
        logits, _ = model.apply(params, state, window)
        logits = jax.lax.dynamic_index_in_dim(logits, end - start - 1, axis=1, keepdims=False) / temperature
        if top_k is not None:  # the k-th largest logit, for a traced k
            vocab = logits.shape[-1]
            kth = jax.lax.dynamic_index_in_dim(jnp.sort(logits, axis=-1), vocab - jnp.minimum(top_k, vocab), axis=1)
            logits = jnp.where(logits < kth, -jnp.inf, logits)
        chosen = jax.random.categorical(jax.random.fold_in(key, i), logits).astype(jnp.int32)
        return jax.lax.dynamic_update_slice_in_dim(tokens, chosen[:, None], end, axis=1)

    return jax.lax.fori_loop(0, max_new_tokens, step, tokens)[:, :total]


# ----------------------------------------------------------------------------------------- training


def estimate_loss(eval_step: Any, params: Any, state: Any, windows: RandomWindows) -> float:
    """nanoGPT's `estimate_loss` for one split: the mean loss over the windows' batches (`steps` of them)."""
    losses = [eval_step(params, state, batch)["loss"] for batch in windows]
    return float(jnp.mean(jnp.stack(losses)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--iters", type=int, default=2000, help="training iterations (nanoGPT's max_iters; also lr_decay_iters)")
    add("--batch-size", type=int, default=12)
    add("--block-size", type=int, default=64, help="context length")
    add("--n-layer", type=int, default=4)
    add("--n-head", type=int, default=4)
    add("--n-embd", type=int, default=128)
    add("--bias", action="store_true", help="biases in Dense, attention and LayerNorm (nanoGPT's bias=True)")
    add("--dropout", type=float, default=0.0, help="dropout rate where nanoGPT drops (its GPU configuration: 0.2)")
    add("--policy", default="float32", choices=("float32", "mixed_bfloat16"),
        help="compute dtype policy (mixed_bfloat16: bfloat16 compute, float32 params, as nanoGPT's GPU autocast)")
    add("--lr", type=float, default=1e-3)
    add("--min-lr", type=float, default=1e-4)
    add("--warmup-iters", type=int, default=100)
    add("--eval-interval", type=int, default=250)
    add("--eval-iters", type=int, default=20, help="batches per loss estimate")
    add("--seed", type=int, default=0)
    add("--sample", action="store_true", help="print generated text after training")
    add("--sample-tokens", type=int, default=500)
    add("--temperature", type=float, default=0.8)
    add("--top-k", type=int, default=200)
    args = parser.parse_args(argv)
    if jax.default_backend() == "cpu":
        tune_host_allocator()  # what `fit` does on CPU: keep freed memory for the next step's buffers

    data = tinyshakespeare.load_data()
    mixed_precision.set_global_policy(args.policy)  # the layers take it as they are built
    model = GPT(data.vocab_size, args.block_size, args.n_layer, args.n_head, args.n_embd, bias=args.bias,
                dropout=args.dropout)
    optimizer = nanogpt_optimizer(args.iters, args.lr, args.min_lr, args.warmup_iters)
    ts = TrainState.create(model, optimizer, seed=args.seed, input_shape=(args.block_size,))
    print(f"GPT: {sum(w.size for w in jax.tree.leaves(ts.params)):,} parameters")
    train_step = make_train_step(model, LOSS, optimizer)
    eval_step = make_eval_step(model, LOSS)
    batches = RandomWindows(data.train, args.batch_size, args.block_size, seed=args.seed)
    splits = {name: RandomWindows(ids, args.batch_size, args.block_size, seed=args.seed + k, steps=args.eval_iters)
              for k, (name, ids) in enumerate([("train", data.train), ("val", data.val)], start=1)}

    start = time.perf_counter()
    for it, batch in zip(range(args.iters + 1), batches):
        if it % args.eval_interval == 0 or it == args.iters:
            losses = {name: estimate_loss(eval_step, ts.params, ts.state, w) for name, w in splits.items()}
            print(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f} "
                  f"({time.perf_counter() - start:.1f} s)")
        if it == args.iters:
            break
        ts, _ = train_step(ts, batch)

    if args.sample:
        prompt = jnp.asarray(data.encode("\n"))[None]  # nanoGPT's sample.py starts from a newline
        ids = generate(model, ts.params, ts.state, prompt, jax.random.key(args.seed), max_new_tokens=args.sample_tokens,
                       temperature=args.temperature, top_k=args.top_k)
        print(data.decode(ids[0]))


if __name__ == "__main__":
    main()
