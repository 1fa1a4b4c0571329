"""Run an iterator ahead in a background thread, so the next items are ready while the current one is used.

    with Prefetch(read(i) for i in steps) as items:   # at most `size` items wait, one more is being made
        for item in items: ...

Leaving the `with` block (the loop ended, `break`, an exception, Ctrl-C) stops the thread; an error
raised while making an item is raised again in the consumer, at that item.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["Prefetch"]

_POLL_SECONDS = 0.05  # how often a blocked producer looks whether it was asked to stop
_JOIN_SECONDS = 5.0  # how long closing waits for a producer stuck in one item (a slow read) before leaving it


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


class Prefetch:
    """Iterates `items` in a daemon thread, keeping at most `size` finished items in a queue."""

    def __init__(self, items: Iterable[Any], size: int = 2, *, name: str = "jaxnet_lite-prefetch") -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"Prefetch: size must be an integer >= 1, got {size!r}")
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self._started = False

    def _put(self, value: Any) -> bool:
        """Queue `value`, waiting for room; False once asked to stop."""
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            self._put(_Raised(error))
            return
        self._put(_DONE)

    def __iter__(self) -> Iterator[Any]:
        if self._started:
            raise RuntimeError("Prefetch: iterate it once; make a new Prefetch for another pass")
        self._started = True
        self._thread.start()
        while True:
            value = self._queue.get()
            if value is _DONE:
                return
            if isinstance(value, _Raised):
                raise value.error
            yield value

    def close(self) -> None:
        """Stop the producer and drop what it made; waits briefly for it to finish its current item."""
        self._stop.set()
        while True:  # free the queue so a producer blocked in `put` sees the stop
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._started and self._thread is not threading.current_thread():
            self._thread.join(_JOIN_SECONDS)

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
