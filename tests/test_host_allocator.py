"""The host allocator tuning: freed large blocks stay in the process (checked on RSS, in subprocesses)."""

import os
import subprocess
import sys
import textwrap

import pytest

from jaxnet_lite import host_allocator

pytestmark = pytest.mark.skipif(not host_allocator.is_glibc(), reason="the tuning applies to glibc only")

# Allocates, touches and frees 64 MiB (above glibc's largest adaptive mmap threshold, 32 MiB) and prints
# how much the resident size fell on `free`: ~64 MiB when the block was a fresh mmap, ~0 when it was kept.
SCRIPT = textwrap.dedent("""
    import ctypes, os, sys
    mode = sys.argv[1]
    from jaxnet_lite import host_allocator
    if mode == "tune":
        print("tuned", host_allocator.tune_host_allocator())
    elif mode == "make_train_step":  # the pure pieces never change the process
        import jax, numpy as np
        from jaxnet_lite import Sequential, TrainState, make_train_step
        from jaxnet_lite.layers import Dense
        model = Sequential([Dense(2, input_shape=(3,))])
        optimizer = __import__("optax").sgd(0.1)
        step = make_train_step(model, "mse", optimizer)
        ts = TrainState.create(model, optimizer)
        ts, logs = step(ts, (np.ones((4, 3), np.float32), np.ones((4, 2), np.float32)))
        model.apply(*model.init(jax.random.key(0)), np.ones((4, 3), np.float32))
        jax.block_until_ready(logs)
    elif mode == "fit":
        import numpy as np
        from jaxnet_lite import Sequential
        from jaxnet_lite.layers import Dense
        model = Sequential([Dense(2, input_shape=(3,))])
        model.compile(loss="mse", optimizer="sgd")
        model.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32), epochs=1, verbose=0)
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    page = os.sysconf("SC_PAGE_SIZE")
    rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page
    n = 64 << 20
    block = libc.malloc(n)
    ctypes.memset(block, 1, n)
    held = rss()
    libc.free(block)
    print("released_mb", (held - rss()) / 2**20)
""")


def run(mode: str, **env: str) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "JAX_PLATFORMS": "cpu", **env}, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def test_untuned_glibc_returns_large_blocks_to_the_kernel():
    assert float(run("none")["released_mb"]) > 48


def test_tuning_keeps_freed_blocks_for_reuse():
    result = run("tune")
    assert result["tuned"] == "True"
    assert float(result["released_mb"]) < 8


def test_make_train_step_and_apply_leave_the_allocator_alone():
    assert float(run("make_train_step")["released_mb"]) > 48


def test_fit_tunes_on_cpu():
    assert float(run("fit")["released_mb"]) < 8


def test_fit_respects_the_opt_out():
    assert float(run("fit", JAXNET_LITE_TUNE_MALLOC="0")["released_mb"]) > 48


def test_environment_variable_opts_out():
    result = run("tune", JAXNET_LITE_TUNE_MALLOC="0")
    assert result["tuned"] == "False"
    assert float(result["released_mb"]) > 48


def test_tune_for_backend_leaves_accelerator_runs_alone():
    assert host_allocator.tune_for_backend("gpu") is False
