"""The machine, in a process of its own: device, versions, settings and the float32 matmul peak.

    python -m benchmarks.probe [--peak-only] [--quick]     # prints one JSON object

The matmul peak is the denominator of every "% of peak" figure: a large float32 `a @ b` under `jax.jit`
at the default precision (what the models use; on recent NVIDIA GPUs that may mean TF32), median of
several timed runs after a warm-up.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict:
    """Versions of Python and of every package a contender may use (None when not installed), plus a
    digest of jaxnet_lite's source, since its version number does not change with every edit."""
    names = ("jax", "jaxlib", "optax", "numpy", "jaxnet_lite", "keras", "flax", "psutil")
    return {"python": platform.python_version(), **{n: _version(n) for n in names},
            "jaxnet_lite_source_sha256": source_digest()}


def source_digest(package: str = "jaxnet_lite") -> str | None:
    """First 16 hex digits of a SHA-256 over the package's `.py` files (paths and contents), unimported."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def matmul_peak(n: int | None = None, reps: int = 10) -> dict:
    """Median and best GFLOP/s of an n x n float32 matmul (n = 2048 on CPU, 8192 on accelerators)."""
    import jax
    import jax.numpy as jnp

    n = (n or 2048) if jax.default_backend() == "cpu" else max(n or 0, 8192)
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (n, n), jnp.float32)
    b = jax.random.normal(kb, (n, n), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    f(a, b).block_until_ready()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        f(a, b).block_until_ready()
        times.append(time.perf_counter() - start)
    flops = 2.0 * n**3
    return {"n": n, "reps": reps, "gflops_median": flops / statistics.median(times) / 1e9,
            "gflops_best": flops / min(times) / 1e9}


def device() -> dict:
    import jax

    dev = jax.devices()[0]
    return {"platform": dev.platform, "device_kind": dev.device_kind, "device_count": jax.device_count(),
            "default_backend": jax.default_backend()}


def settings() -> dict:
    """CPU count and the environment variables that change JAX's speed."""
    keys = ("XLA_FLAGS", "JAX_PLATFORMS", "JAX_ENABLE_X64", "XLA_PYTHON_CLIENT_PREALLOCATE",
            "XLA_PYTHON_CLIENT_MEM_FRACTION", "OMP_NUM_THREADS", "JAXNET_LITE_DATA_DIR", "KERAS_BACKEND")
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"cpu_count": os.cpu_count(), "cpu_affinity": affinity, "load_average": load,
            "machine": platform.machine(), "processor": _cpu_model(), "env": {k: os.environ.get(k) for k in keys}}


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def main() -> int:
    only_peak = "--peak-only" in sys.argv
    quick = "--quick" in sys.argv
    out = {"matmul_peak": matmul_peak(1024, 5) if quick else matmul_peak()}
    if not only_peak:
        out = {"device": device(), "versions": versions(), "settings": settings(), **out}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
