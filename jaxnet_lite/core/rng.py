"""Deterministic key splitting: containers give each child its own key, in order."""

from __future__ import annotations

import jax


def split_rng(rng: jax.Array | None, n: int) -> list[jax.Array | None]:
    """Split a key into `n` children deterministically; `None` stays `None` for every child."""
    if rng is None:
        return [None] * n
    if n == 0:
        return []
    return list(jax.random.split(rng, n))
