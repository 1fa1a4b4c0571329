"""Keras-style `summary()` tables, with FLOPs per example from XLA's cost analysis as an extra column."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxnet_lite.core import Layer
from jaxnet_lite.core.layer import ACTIVITY_LOSS
from jaxnet_lite.training.trainable import trainable_mask


def _shape_text(shape: Any) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(_shape_text(s) for s in shape) + "]"
    return "(" + ", ".join(["None", *map(str, shape)]) + ")"


def readable_size(num_bytes: float) -> str:
    """Keras' `readable_memory_size`: 9484 -> '9.26 KB'."""
    units = ["B", "KB", "MB", "GB", "TB", "PB"]
    scale = 1024.0
    for unit in units:
        if num_bytes / scale < 1:
            return f"{num_bytes:.2f} {unit}"
        num_bytes /= scale
    return f"{num_bytes:.2f} {units[-1]}"


def _abstract_variables(layer: Layer, input_shape: Any) -> Any:
    return jax.eval_shape(lambda k: layer.init(k, input_shape), jax.random.key(0))


def _sizes(tree: Any, keep: Any = None) -> tuple[int, int]:
    """Element count and bytes of the leaves of `tree` (those `keep`, a like-shaped tree of bools, marks);
    an activity regularizer's last penalty is state but not a weight, so it is not counted."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    marks = jax.tree.leaves(keep) if keep is not None else [True] * len(flat)
    leaves = [leaf for (path, leaf), mark in zip(flat, marks)
              if mark and getattr(path[-1] if path else None, "key", None) != ACTIVITY_LOSS]
    return sum(leaf.size for leaf in leaves), sum(leaf.size * jnp.dtype(leaf.dtype).itemsize for leaf in leaves)


def flops_per_example(layer: Layer, input_shape: Any, variables: Any = None) -> float | None:
    """FLOPs of one inference `apply` on a batch of one, from XLA's cost analysis (None if unavailable)."""
    if input_shape is None:
        return 0.0
    variables = variables if variables is not None else _abstract_variables(layer, input_shape)

    def struct(shape):
        return jax.ShapeDtypeStruct((1, *shape), layer.dtype)

    x = [struct(s) for s in input_shape] if isinstance(input_shape, list) else struct(input_shape)
    return xla_flops(lambda p, s, xx: layer.apply(p, s, xx)[0], variables.params, variables.state, x)


def xla_flops(fn: Any, *args: Any) -> float | None:
    """XLA's FLOP count of `jit(fn)(*args)`, read before compiling (None if unavailable).

    Accelerator plugins such as CUDA's do not analyse uncompiled programs (the count came back empty on an
    H200), so then the same program is lowered for the host CPU: the FLOPs are the model's, not the chip's.
    XLA leaves zero counts out, so the CPU's analysis of a program without arithmetic (a reshape, an
    identity) has no "flops" at all: that is 0, not unknown.
    """
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), a.dtype), args)
    for platform in (None, "cpu"):
        cost = _cost_analysis(fn, abstract, platform)
        if cost is None:
            continue
        flops = float(cost.get("flops", 0.0))
        if flops > 0 or platform == "cpu":  # only the CPU's empty answer is known to mean "no arithmetic"
            return flops
    return None


def _cost_analysis(fn: Any, abstract: Any, platform: str | None) -> dict[str, float] | None:
    """XLA's cost analysis of `jit(fn)` lowered for `platform` (None: the default), or None if it gave none."""
    try:
        device = jax.devices(platform)[0] if platform else None
        with jax.default_device(device):
            cost = jax.jit(fn).lower(*abstract).cost_analysis()
    except Exception:  # noqa: BLE001 - a summary must never fail over an optional column
        return None
    if isinstance(cost, list):
        cost = cost[0] if cost else None
    return cost if isinstance(cost, dict) else None


def param_counts(model: Layer) -> list[int]:
    """Parameter counts (trainable and non-trainable, as Keras' `Param #`) per summary row."""
    return [_sizes(_abstract_variables(layer, inp))[0] if inp is not None else 0
            for _, layer, inp, _, _ in model.summary_rows()]


def _table(headers: list[str], rows: list[list[str]], widths: list[int], align: list[str]) -> list[str]:
    def cell(text: str, w: int, a: str) -> str:
        return text.rjust(w) if a == "r" else text.ljust(w)

    def rule(left: str, mid: str, right: str, fill: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right

    lines = [rule("┏", "┳", "┓", "━")]
    lines.append("┃" + "┃".join(f" {cell(h, w, a)} " for h, w, a in zip(headers, widths, align)) + "┃")
    lines.append(rule("┡", "╇", "┩", "━"))
    for i, row in enumerate(rows):
        height = max(len(c.split("\n")) for c in row)
        for k in range(height):
            parts = []
            for c, w, a in zip(row, widths, align):
                sub = c.split("\n")
                parts.append(f" {cell(sub[k] if k < len(sub) else '', w, a)} ")
            lines.append("│" + "│".join(parts) + "│")
        if i < len(rows) - 1:
            lines.append(rule("├", "┼", "┤", "─"))
    lines.append(rule("└", "┴", "┘", "─"))
    return lines


def summary_text(model: Any, *, show_flops: bool = True, line_length: int | None = None) -> str:
    """The full summary as text: `Model: "name"`, the table, and the parameter totals."""
    rows_in = model.summary_rows()
    connected = not model.is_sequential_like()
    headers = ["Layer (type)", "Output Shape", "Param #"]
    align = ["l", "l", "r"]
    if show_flops:
        headers.append("FLOPs")
        align.append("r")
    if connected:
        headers.append("Connected to")
        align.append("l")
    trainable = non_trainable = trainable_bytes = non_trainable_bytes = 0
    total_flops: float | None = 0.0
    rows = []
    for name, layer, inp, out, links in rows_in:
        variables = _abstract_variables(layer, inp) if inp is not None else None
        p_count, p_bytes = _sizes(variables.params) if variables is not None else (0, 0)
        s_count, s_bytes = _sizes(variables.state) if variables is not None else (0, 0)
        mask = trainable_mask(layer, variables.params) if variables is not None else None
        t_count, t_bytes = _sizes(variables.params, mask) if variables is not None else (0, 0)
        trainable, trainable_bytes = trainable + t_count, trainable_bytes + t_bytes
        non_trainable, non_trainable_bytes = non_trainable + p_count - t_count, non_trainable_bytes + p_bytes - t_bytes
        non_trainable, non_trainable_bytes = non_trainable + s_count, non_trainable_bytes + s_bytes
        row = [f"{name} ({type(layer).__name__})", _shape_text(out), f"{p_count + s_count:,}"]
        if show_flops:
            flops = flops_per_example(layer, inp, variables)
            row.append("?" if flops is None else f"{int(flops):,}")
            total_flops = None if flops is None or total_flops is None else total_flops + flops
        if connected:
            row.append("\n".join(links) if links else "-")
        rows.append(row)
    widths = [max([31, 22, 13, 13, 20][i] if i < 5 else 10, len(headers[i]),
                  *(max(len(s) for s in r[i].split("\n")) for r in rows)) for i in range(len(headers))]
    if line_length is not None:
        widths[0] = max(widths[0], line_length - sum(w + 3 for w in widths[1:]) - 4)
    lines = [f'Model: "{model.name}"', *_table(headers, rows, widths, align)]
    total, total_bytes = trainable + non_trainable, trainable_bytes + non_trainable_bytes
    lines.append(f" Total params: {total:,} ({readable_size(total_bytes)})")
    lines.append(f" Trainable params: {trainable:,} ({readable_size(trainable_bytes)})")
    lines.append(f" Non-trainable params: {non_trainable:,} ({readable_size(non_trainable_bytes)})")
    if show_flops:
        flops_text = "?" if total_flops is None else f"{int(total_flops):,}"
        lines.append(f" FLOPs per example (inference): {flops_text}")
    return "\n".join(lines)
