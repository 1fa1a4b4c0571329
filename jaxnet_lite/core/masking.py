"""Masks over time steps, carried as data: `Masked(values, mask)`.

`Embedding(mask_zero=True)` and `Masking` return a `Masked` batch; the protocol's `Layer.apply` hands
the mask to layers that read it (recurrent layers, pooling, attention), keeps it on the outputs of
layers that map each step on its own (Dense, Dropout, normalization), and drops it, with a warning, at
layers that cannot keep it (Flatten, convolutions), as Keras 3 does. Because the mask is part of the
value, `apply` stays a pure function of its arguments: masks pass through `jit`, `grad`, `vmap` and
every combinator unchanged. Why this design and not an extra argument: docs/design-notes.md.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Masked(NamedTuple):
    """A batch `values` of shape (batch, time, ...) and its boolean `mask` of shape (batch, time).

    True marks a real step, False a padded one. Pass one to `apply` to give a model an explicit mask.
    """

    values: jax.Array
    mask: jax.Array


def is_masked(x: Any) -> bool:
    """True when `x`, or an entry of a list/tuple input, carries a mask."""
    if isinstance(x, Masked):
        return True
    return isinstance(x, list) and any(isinstance(v, Masked) for v in x)


def split_mask(x: Any) -> tuple[Any, Any]:
    """`(values, mask)` of one input, or `([values...], [mask or None...])` of a list of inputs."""
    if isinstance(x, Masked):
        return x.values, x.mask
    if isinstance(x, list):
        parts = [split_mask(v) for v in x]
        return [p[0] for p in parts], [p[1] for p in parts]
    return x, None


def with_mask(y: Any, mask: Any) -> Any:
    """`y` carrying `mask` (None: `y` as it is); a list of outputs takes a list of masks."""
    if isinstance(y, list):
        masks = mask if isinstance(mask, list) else [mask] + [None] * (len(y) - 1)
        return [with_mask(v, m) for v, m in zip(y, masks)]
    return y if mask is None else Masked(y, mask)


def strip_mask(y: Any) -> Any:
    """`y` without masks (outputs handed back to users by `predict`)."""
    return jax.tree.map(lambda v: v.values if isinstance(v, Masked) else v, y,
                        is_leaf=lambda v: isinstance(v, Masked))


def both_masks(masks: list[Any]) -> Any:
    """The steps real in every input that has a mask (None when none has one): how merges combine masks."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    out = present[0]
    for m in present[1:]:
        out = jnp.logical_and(out, m)
    return out


def as_bool_mask(mask: Any) -> jax.Array:
    """A mask as a boolean array (Keras accepts 0/1 numbers too)."""
    mask = jnp.asarray(mask)
    return mask if mask.dtype == jnp.bool_ else mask != 0
