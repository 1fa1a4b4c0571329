"""What may happen between the dispatches of an epoch: batch callbacks, a live progress bar, Ctrl-C.

Data sources run the steps; they call `StepWatch.begin`/`end` around each dispatch and stop when
`stopped` is set, so every kind of data gets the same hooks, bar and interrupt handling.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from jaxnet_lite.training.callbacks import CallbackList
from jaxnet_lite.training.engine import read_logs
from jaxnet_lite.training.processes import several_processes
from jaxnet_lite.training.progress import Progbar

_BAR_REFRESH_SECONDS = 0.2


class Interrupt:
    """Turns Ctrl-C during `fit` into a flag checked between dispatches, so no step is cut in half."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> Interrupt:
        # With several processes a flag seen by one alone would leave the others waiting in a collective:
        # Ctrl-C keeps its default there (the launcher stops every process).
        if threading.current_thread() is threading.main_thread() and not several_processes():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True
        print("\nInterrupted: stopping after the current steps (Ctrl-C again to abort).", flush=True)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class StepWatch:
    """Batch hooks, the live bar and the interrupt flag of one epoch (or one evaluation)."""

    def __init__(self, bar: Progbar | None = None, callbacks: CallbackList | None = None,
                 interrupt: Interrupt | None = None, batch_hooks: bool = False, phase: str = "train") -> None:
        self.bar, self.callbacks, self.interrupt = bar, callbacks, interrupt
        self.batch_hooks = batch_hooks and callbacks is not None
        self.phase = phase
        self._last_shown = time.perf_counter()

    @property
    def live(self) -> bool:
        """A bar redrawn in a terminal while the steps run."""
        return self.bar is not None and self.bar.dynamic and self.bar.verbose == 1

    @property
    def each_step(self) -> bool:
        """Whether the host must see every step (per-batch callbacks)."""
        return self.batch_hooks

    @property
    def watched(self) -> bool:
        """Whether anyone looks between dispatches (then an epoch runs in chunks, not in one dispatch)."""
        return self.batch_hooks or self.live

    @property
    def stopped(self) -> bool:
        return self.interrupt is not None and self.interrupt.requested

    def begin(self, step: int) -> None:
        if self.batch_hooks:
            getattr(self.callbacks, f"on_{self.phase}_batch_begin")(step)

    def end(self, steps_done: int, sums: dict) -> None:
        """After a dispatch that brought the epoch to `steps_done` steps, with the running `sums`."""
        logs = read_logs(sums) if self.batch_hooks else None  # one host read serves hook and bar
        if self.batch_hooks:
            getattr(self.callbacks, f"on_{self.phase}_batch_end")(steps_done - 1, logs)
        if self.live and time.perf_counter() - self._last_shown > _BAR_REFRESH_SECONDS:
            self.bar.update(steps_done, logs if logs is not None else read_logs(sums))
            self._last_shown = time.perf_counter()
