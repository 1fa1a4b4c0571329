"""Deterministic key splitting: containers give each child its own key, in order."""

from __future__ import annotations

import jax

from jaxnet_lite.core import threefry


def split_rng(rng: jax.Array | None, n: int) -> list[jax.Array | None]:
    """Split a key into `n` children deterministically; `None` stays `None` for every child."""
    if rng is None:
        return [None] * n
    if n == 0:
        return []
    return list(threefry.split(rng, n))


# The seed the Keras surface starts from when none is given (`compile(seed=None)`, first `variables`).
# `utils.set_random_seed` sets it, as Keras' does; the pure `init`/`apply` never read it.
_default_seed = 0


def default_seed() -> int:
    """The seed models start from when none is given (0 unless `utils.set_random_seed` changed it)."""
    return _default_seed


def set_default_seed(seed: int) -> None:
    global _default_seed
    _default_seed = int(seed)
