"""Keras' naming rules: class names in snake case, de-duplicated with `_1`, `_2`, ..."""

from __future__ import annotations

import re


def snake_case(name: str) -> str:
    """`Conv2DTranspose` -> `conv2d_transpose`, `BatchNormalization` -> `batch_normalization` (Keras' rule)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str, taken: set[str]) -> str:
    """Keras-style de-duplication: `dense`, `dense_1`, `dense_2`, ..."""
    if base not in taken:
        return base
    i = 1
    while f"{base}_{i}" in taken:
        i += 1
    return f"{base}_{i}"
