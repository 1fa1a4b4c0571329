"""Host allocator tuning for training on XLA:CPU (glibc only).

XLA:CPU allocates each step's activations and temporaries with `malloc`. glibc serves blocks above its
mmap threshold (adaptive, at most 32 MiB) with fresh `mmap`s and gives freed heap tops back to the
kernel, so every step page-faults its large buffers in again: writing a fresh 46 MB array ran at
6 GB/s against 38 GB/s once freed memory was kept for reuse, and the tutorial CNN's train step went
from 47 to 30 ms on 2 cores (benchmarks/RESULTS.md). Raising the mmap and trim thresholds keeps freed
memory in the process instead, the same trade PyTorch users make with jemalloc: faster steps, and a
resident size that stays at its peak instead of shrinking between steps.

`Trainer.fit` (and so `model.fit`) calls `tune_for_backend`, which tunes when JAX runs on the CPU; the
pure pieces (`make_train_step`, `TrainState`, `layer.apply`) never change the process, so a hand-written
loop calls `tune_host_allocator()` itself if it wants the same. Set the environment variable
`JAXNET_LITE_TUNE_MALLOC=0` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

ENV_VAR = "JAXNET_LITE_TUNE_MALLOC"
#: Requests up to this size come from the heap, not from a fresh mmap (`M_MMAP_THRESHOLD`).
MMAP_THRESHOLD = 1 << 30
#: Freed memory at the top of the heap is kept unless more than this is free (`M_TRIM_THRESHOLD`).
TRIM_THRESHOLD = 2**31 - 1
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h> parameter numbers

_tuned = False


def is_glibc() -> bool:
    """Whether this process runs on glibc (the only allocator these knobs apply to)."""
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def tune_host_allocator() -> bool:
    """Keep freed host memory for reuse instead of returning it to the kernel after every step.

    Idempotent. Returns whether the tuning is in effect; False off glibc or when `JAXNET_LITE_TUNE_MALLOC=0`.
    """
    global _tuned
    if _tuned:
        return True
    if os.environ.get(ENV_VAR, "1").strip().lower() in ("0", "false", "no", "off") or not is_glibc():
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    _tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _tuned


def tune_for_backend(backend: str) -> bool:
    """`tune_host_allocator()` when training runs on the CPU backend (elsewhere the device holds the buffers)."""
    return tune_host_allocator() if backend == "cpu" else False
