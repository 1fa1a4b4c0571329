"""Keras 3-style progress output: a live bar per epoch (verbose=1) or one line per epoch (verbose=2)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from jaxnet_lite.training.processes import several_processes

BAR_WIDTH = 20


def resolve_verbose(verbose: Any, stream: TextIO | None = None) -> int:
    """Keras' "auto": 1 (live bar) in a terminal, 2 (one line per epoch) otherwise."""
    if verbose == "auto":
        stream = stream or sys.stdout
        return 1 if hasattr(stream, "isatty") and stream.isatty() else 2
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def format_value(value: float) -> str:
    return f"{value:.4f}" if abs(value) > 1e-3 or value == 0 else f"{value:.4e}"


def format_time_per_step(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def format_logs(logs: dict[str, float]) -> str:
    return "".join(f" - {k}: {format_value(v)}" for k, v in logs.items())


class Progbar:
    """Prints `422/422 ━━━━━━━━━━━━━━━━━━━━ 3s 7ms/step - accuracy: 0.9800 - loss: 0.0500`."""

    def __init__(self, target: int, verbose: int = 1, stream: TextIO | None = None) -> None:
        self.target, self.verbose = target, verbose
        self.stream = stream or sys.stdout
        self.start = time.perf_counter()
        # Several processes run the same dispatches only if none redraws a live bar (`StepWatch.watched`).
        self.dynamic = hasattr(self.stream, "isatty") and self.stream.isatty() and not several_processes()
        self._last_len = 0

    def update(self, current: int, logs: dict[str, float] | None = None, finalize: bool = False) -> None:
        if self.verbose == 0 or (self.verbose == 2 and not finalize) or (not self.dynamic and not finalize):
            return
        elapsed = time.perf_counter() - self.start
        per_step = elapsed / max(current, 1)
        logs_text = format_logs(logs or {})
        width = len(str(self.target))
        if self.verbose == 2:
            line = f"{current}/{self.target} - {elapsed:.0f}s - {format_time_per_step(per_step)}{logs_text}"
        else:
            filled = int(BAR_WIDTH * current / max(self.target, 1))
            bar = "━" * filled + ("\x1b[2m" + "━" * (BAR_WIDTH - filled) + "\x1b[0m" if self.dynamic and filled
                                  < BAR_WIDTH else " " * (BAR_WIDTH - filled))
            shown = elapsed if finalize else per_step * (self.target - current)
            line = f"{current:>{width}}/{self.target} {bar} {shown:.0f}s {format_time_per_step(per_step)}{logs_text}"
        if self.dynamic and self.verbose == 1:
            pad = max(self._last_len - len(line), 0)
            self.stream.write("\r" + line + " " * pad)
            self._last_len = len(line)
            if finalize:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
