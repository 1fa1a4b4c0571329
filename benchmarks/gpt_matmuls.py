"""`python -m benchmarks.gpt_matmuls`: the character GPT's matrix products, one engine against another.

    python -m benchmarks.gpt_matmuls                      # the race's CPU configuration
    python -m benchmarks.gpt_matmuls --repeats 9 --out matmuls.json

Every matrix product of one training step of the race's model (`benchmarks/char_gpt.py`, nanoGPT's CPU
size), forward and backward, timed alone: in XLA (a jitted `dot_general` on JAX's default device, as the
step compiles it), in NumPy's BLAS, and in PyTorch (when installed, with its default thread count). Each
shape is timed in loops of calls (the best of `--repeats` loops), and "per step" multiplies its time by
the number of such products in a step. The sum says how long a step's products take in each engine when
run one at a time; the ratio says how much of a step's time the product kernels alone decide.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def shapes(batch: int = 12, block: int = 64, n_layer: int = 4, n_head: int = 4, n_embd: int = 128,
           vocab: int = 65) -> list[dict[str, Any]]:
    """`(batch, m, k, n)` products of one step and how many of each: `batch` independent `m x k @ k x n`."""
    tokens, width, head_dim = batch * block, 4 * n_embd, n_embd // n_head
    heads = batch * n_head
    rows = []

    def linear(name: str, fan_in: int, fan_out: int, count: int) -> None:
        rows.extend([
            dict(name=f"{name} forward", b=1, m=tokens, k=fan_in, n=fan_out, per_step=count),
            dict(name=f"{name} input grad", b=1, m=tokens, k=fan_out, n=fan_in, per_step=count),
            dict(name=f"{name} kernel grad", b=1, m=fan_in, k=tokens, n=fan_out, per_step=count),
        ])

    linear("attention projections", n_embd, n_embd, 4 * n_layer)
    linear("mlp up", n_embd, width, n_layer)
    linear("mlp down", width, n_embd, n_layer)
    linear("tied head", n_embd, vocab, 1)
    # Attention: scores (t x d @ d x t), weighted values (t x t @ t x d), and their four gradients.
    rows.append(dict(name="attention scores-like", b=heads, m=block, k=head_dim, n=block, per_step=2 * n_layer))
    rows.append(dict(name="attention values-like", b=heads, m=block, k=block, n=head_dim, per_step=4 * n_layer))
    return rows


def _best(call: Callable[[], Any], sync: Callable[[Any], Any], loops: int, repeats: int) -> float:
    """Seconds per call: the best of `repeats` loops of `loops` calls (after two warm-up calls)."""
    sync(call())
    sync(call())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            out = call()
        sync(out)
        best = min(best, (time.perf_counter() - start) / loops)
    return best


def engines() -> dict[str, Callable[[np.ndarray, np.ndarray], Callable[[], Any]]]:
    """Per engine: given NumPy operands, a zero-argument call computing their (batched) product."""
    import jax
    import jax.numpy as jnp

    product = jax.jit(jnp.matmul)

    def xla(a, b):
        a, b = jnp.asarray(a), jnp.asarray(b)
        return lambda: product(a, b)

    found = {"xla": (xla, jax.block_until_ready), "numpy": (lambda a, b: lambda: a @ b, lambda out: out)}
    try:
        import torch
    except ImportError:
        return found
    found["torch"] = (lambda a, b: (lambda ta, tb: lambda: ta @ tb)(torch.from_numpy(a), torch.from_numpy(b)),
                      lambda out: out)
    return found


def measure(repeats: int = 5, loops: int = 50) -> list[dict[str, Any]]:
    """Each shape's GFLOP/s and milliseconds per step in every engine."""
    rng = np.random.default_rng(0)
    found = engines()
    rows = []
    for row in shapes():
        lead = (row["b"],) if row["b"] > 1 else ()
        a = rng.standard_normal((*lead, row["m"], row["k"]), dtype=np.float32)
        b = rng.standard_normal((*lead, row["k"], row["n"]), dtype=np.float32)
        flops = 2 * row["b"] * row["m"] * row["k"] * row["n"]
        for engine, (make, sync) in found.items():
            seconds = _best(make(a, b), sync, loops, repeats)
            row[engine] = {"gflops": flops / seconds / 1e9, "ms_per_step": seconds * row["per_step"] * 1e3}
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: GFLOP/s per shape and engine, then each engine's milliseconds per step."""
    names = [e for e in ("xla", "numpy", "torch") if e in rows[0]]
    lines = ["| product | batch x m x k x n | per step | " + " | ".join(f"{e} GFLOP/s" for e in names) + " |",
             "| --- | --- | ---: | " + " | ".join("---:" for _ in names) + " |"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['b']} x {r['m']} x {r['k']} x {r['n']} | {r['per_step']} | "
                     + " | ".join(f"{r[e]['gflops']:.0f}" for e in names) + " |")
    totals = {e: sum(r[e]["ms_per_step"] for r in rows) for e in names}
    lines.append("| **all products of a step, ms** | | | " + " | ".join(f"**{totals[e]:.1f}**" for e in names) + " |")
    lines.append("")
    lines += [f"xla ÷ {e}: {totals['xla'] / totals[e]:.2f} (the step's products alone, one at a time)"
              for e in names[1:]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed loops per shape and engine (the best counts)")
    parser.add_argument("--loops", type=int, default=50, help="calls per timed loop")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.loops < 1:
        parser.error("--repeats and --loops must be at least 1")
    rows = measure(args.repeats, args.loops)
    print(table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
