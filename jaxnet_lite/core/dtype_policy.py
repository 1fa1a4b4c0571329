"""Dtype policies, as Keras 3 names them: which dtype a layer keeps its variables in and computes in.

`DTypePolicy("mixed_bfloat16")` keeps params in float32 and computes in bfloat16; `"mixed_float16"`
computes in float16 (train it with loss scaling); any dtype name (`"float32"`, `"float64"`, `"int32"`)
means both. A layer takes its policy from `dtype=` or, when none is given, from the global policy at
the time it is built (`set_global_policy`), as in Keras. The casting itself happens in one place, the
base `Layer.apply`, with the helpers below.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

MIXED = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
LOW_PRECISION = ("float16", "bfloat16")


class DTypePolicy:
    """A layer's dtypes: `variable_dtype` for its params and state, `compute_dtype` for its arithmetic.

    `DTypePolicy()` is the global policy; `DTypePolicy("mixed_bfloat16")` has compute dtype bfloat16 and
    variable dtype float32. A name that is neither a mixed policy nor a dtype is a `ValueError`.
    """

    def __init__(self, name: str | None = None) -> None:
        if name is None:
            name = global_policy().name
        if not isinstance(name, str):
            raise TypeError(f"DTypePolicy: name must be a string such as 'mixed_bfloat16', got {name!r} "
                            f"(of type {type(name).__name__})")
        self._name = name
        self._compute_dtype, self._variable_dtype = _parse(name)

    @property
    def name(self) -> str:
        return self._name

    @property
    def compute_dtype(self) -> str:
        """The dtype a layer computes in (its inputs and params are cast to it in `apply`)."""
        return self._compute_dtype

    @property
    def variable_dtype(self) -> str:
        """The dtype a layer creates its params and state in."""
        return self._variable_dtype

    @property
    def is_mixed(self) -> bool:
        """True when computing in a dtype other than the variables' (params cast down in `apply`)."""
        return self._compute_dtype != self._variable_dtype

    def get_config(self) -> dict[str, Any]:
        return {"name": self._name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DTypePolicy:
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DTypePolicy) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self._name)

    def __repr__(self) -> str:
        return f'<DTypePolicy "{self._name}">'


def _parse(name: str) -> tuple[str, str]:
    if name in MIXED:
        return MIXED[name], "float32"
    try:
        dtype = jnp.dtype(name).name
    except TypeError:
        raise ValueError(f"unknown dtype policy {name!r}: expected 'mixed_float16', 'mixed_bfloat16' or the name "
                         "of a dtype such as 'float32'") from None
    return dtype, dtype


_global_policy: DTypePolicy | None = None


def global_policy() -> DTypePolicy:
    """The policy layers built without `dtype=` take (float32 unless `set_global_policy` changed it)."""
    return _global_policy if _global_policy is not None else DTypePolicy("float32")


def set_global_policy(policy: str | DTypePolicy | None) -> None:
    """Set the policy of every layer built from now on without `dtype=` (None resets it to float32).

    Layers already built keep theirs, as in Keras: set the policy before building the model.
    """
    global _global_policy
    if policy is None:
        _global_policy = None
        return
    if isinstance(policy, str):
        policy = DTypePolicy(policy)
    if not isinstance(policy, DTypePolicy):
        raise ValueError(f"set_global_policy expects a policy name such as 'mixed_bfloat16' or a DTypePolicy, "
                         f"got {policy!r} (of type {type(policy).__name__})")
    if not jnp.issubdtype(jnp.dtype(policy.compute_dtype), jnp.floating):
        raise ValueError(f"set_global_policy: the global policy must be floating, got {policy.name!r} (give "
                         "integer dtypes to the layers that take integers, e.g. Input(dtype='int32'))")
    _global_policy = policy


def as_policy(dtype: Any) -> DTypePolicy:
    """A policy from what a layer's `dtype=` may hold: None (the global policy), a policy, a policy name,
    or any dtype (`jnp.float32`, `np.dtype("float64")`)."""
    if dtype is None:
        return global_policy()
    if isinstance(dtype, DTypePolicy):
        return dtype
    if isinstance(dtype, str):
        return DTypePolicy(dtype)
    try:
        name = jnp.dtype(dtype).name
    except TypeError:
        raise ValueError(f"unknown dtype policy {dtype!r}: expected 'mixed_float16', 'mixed_bfloat16', a dtype "
                         "name such as 'float32' or a DTypePolicy") from None
    return DTypePolicy(name)


def is_floating(dtype: Any) -> bool:
    return jnp.issubdtype(jnp.dtype(dtype), jnp.floating)


def cast_floating(tree: Any, dtype: Any, *, narrow: bool = True) -> Any:
    """`tree` with each floating array cast to `dtype`; integer and boolean leaves (ids, masks) as they are.

    With `narrow=False` only narrower floats are cast up (a bfloat16 activation reaching a float32 layer);
    wider ones (float64 under `jax.enable_x64`) stay as they are.
    """
    dtype = jnp.dtype(dtype)

    def cast(leaf: Any) -> Any:
        leaf_dtype = getattr(leaf, "dtype", None)
        if leaf_dtype is None or leaf_dtype == dtype or not jnp.issubdtype(leaf_dtype, jnp.floating):
            return leaf
        if not narrow and jnp.dtype(leaf_dtype).itemsize >= dtype.itemsize:
            return leaf
        return leaf.astype(dtype) if hasattr(leaf, "astype") else jnp.asarray(leaf, dtype)

    return jax.tree.map(cast, tree)


@functools.lru_cache(maxsize=None)
def _backend_runs(dtype_name: str, backend: str) -> bool:
    """Whether the default backend (`backend`, the cache key) compiles a matmul in `dtype_name`."""
    a = jax.ShapeDtypeStruct((2, 2), jnp.dtype(dtype_name))
    try:
        jax.jit(lambda x: x @ x).lower(a).compile()
    except Exception:  # noqa: BLE001 - any failure to compile means the dtype cannot be used there
        return False
    return True


def backend_supports(dtype_name: str) -> bool:
    """True when JAX's default backend can compute in `dtype_name`.

    Every backend JAX ships (CPU, CUDA, ROCm, TPU) runs float16 and bfloat16; the check compiles one
    small matmul, so a plugin backend without the dtype is refused with a clear error instead of a crash.
    """
    return _backend_runs(jnp.dtype(dtype_name).name, jax.default_backend())
