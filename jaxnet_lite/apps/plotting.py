"""Learning-curve plots (matplotlib, the optional `[plot]` extra)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


class PlottingUnavailable(ImportError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PlottingUnavailable(
            "plotting needs matplotlib: pip install 'jaxnet_lite[plot]' (or pip install matplotlib)"
        ) from e
    return plt


def _as_dict(history: Any) -> dict[str, list[float]]:
    return history.history if hasattr(history, "history") else dict(history)


def plot_histories(runs: Sequence[tuple[str, Any, dict[str, int | None]]], path: str | os.PathLike | None = None
                   ) -> Any:
    """One row per `(title, history, marks)`: loss on the left, the first metric on the right.

    `marks` holds 1-based epochs: `"stopped"` (training stopped early there) and `"best"` (the epoch whose
    weights were restored); either may be None or absent.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(len(runs), 2, figsize=(10, 3.4 * len(runs)), squeeze=False)
    for row, (title, history, marks) in enumerate(runs):
        logs = _as_dict(history)
        metric = next((k for k in logs if not k.startswith("val_") and k != "loss" and k != "learning_rate"), None)
        for col, name in enumerate(["loss", metric]):
            ax = axes[row][col]
            if name is None or name not in logs:
                ax.set_visible(False)
                continue
            epochs = range(1, len(logs[name]) + 1)
            ax.plot(epochs, logs[name], marker="o", markersize=3, label=f"train {name}")
            if f"val_{name}" in logs:
                ax.plot(epochs, logs[f"val_{name}"], marker="o", markersize=3, label=f"validation {name}")
            if marks.get("stopped") is not None:
                ax.axvline(marks["stopped"], color="grey", linestyle="--", label=f"stopped early at {marks['stopped']}")
            if marks.get("best") is not None:
                ax.axvline(marks["best"], color="green", linestyle=":", label=f"best epoch {marks['best']} (restored)")
            ax.set_xlabel("epoch")
            ax.set_ylabel(name)
            ax.set_title(f"{title} {name}".strip())
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=100)
        plt.close(fig)
    return fig
