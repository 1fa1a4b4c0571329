"""One contender on one workload, in its own process, driven by the parent over a line protocol.

    python -m benchmarks.worker --contender ref_jit --workload '{"name": "cnn", ...}' --data DIR

Why a process per contender: peak RSS (`ru_maxrss`) is only meaningful per process, imports (Keras,
Flax) cannot leak into other contenders, and environment variables such as `KERAS_BACKEND` stay local.
The parent alternates windows between the workers; only one works at a time while the others block on
their stdin, so they do not compete for the cores.

Protocol: the worker answers one JSON line per request on the *original* stdout; anything the libraries
print goes to stderr (stdout is re-pointed there first). Requests: `{"cmd": "train", "epochs": E}`,
`{"cmd": "eval", "repeats": R}`, `{"cmd": "info"}`, `{"cmd": "stats"}`, `{"cmd": "quit"}`. Timings are
taken here, around the contender's blocking call, so pipe latency is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def _rss_peak_mb() -> float:
    """Peak RSS of this process: `VmHWM` on Linux. Not `ru_maxrss`, which Linux carries over `fork` + `exec`
    from the parent (it read the parent's 582 MB for every worker of a small workload)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    scale = 1024.0 if sys.platform != "darwin" else 1024.0**2  # KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def _rss_now_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return None


def _device_memory() -> dict | None:
    """Peak/in-use bytes on the device from `memory_stats()` (GPU/TPU); None on CPU."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001
        return None
    if not stats:
        return None
    keys = ("peak_bytes_in_use", "bytes_in_use", "bytes_limit")
    return {k: int(stats[k]) for k in keys if k in stats}


def _serve(contender: Any, reply: Any, requests: Any) -> None:
    for line in requests:
        request = json.loads(line)
        cmd = request["cmd"]
        if cmd == "quit":
            reply({"ok": True})
            return
        start = time.perf_counter()
        if cmd == "train":
            loss = contender.train(int(request["epochs"]))
            reply({"seconds": time.perf_counter() - start, "loss": loss})
        elif cmd == "eval":
            loss, acc = contender.evaluate(int(request.get("repeats", 1)))
            reply({"seconds": time.perf_counter() - start, "loss": loss, "accuracy": acc})
        elif cmd == "info":
            reply(contender.info() if hasattr(contender, "info") else {})
        elif cmd == "stats":
            reply({"rss_peak_mb": _rss_peak_mb(), "rss_now_mb": _rss_now_mb(), "device_memory": _device_memory()})
        else:
            reply({"error": f"unknown command {cmd!r}"})


def main(argv: list[str] | None = None) -> int:
    """Build the contender, say `ready` (with setup time and RSS), then serve requests until `quit`."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library prints (and C-level writes) go to stderr, never into the protocol
    sys.stdout = sys.stderr

    def reply(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--contender", required=True)
    p.add_argument("--workload", required=True, help="the Workload as JSON")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        start = time.perf_counter()
        from benchmarks import contenders, workloads

        spec = dict(json.loads(args.workload))
        spec.pop("steps_per_epoch", None)
        spec["input_shape"] = tuple(spec["input_shape"])
        workload = workloads.Workload(**spec)
        contender_spec = contenders.ALL[args.contender]
        os.environ.update(dict(contender_spec.env))  # e.g. KERAS_BACKEND, before the module imports keras
        cls = contender_spec.load()
        import jax

        jax.devices()  # backend start-up belongs to setup, not to the first step
        import_s = time.perf_counter() - start
        x, y, x_test, y_test = workloads.load(args.data, workload.name)
        arrays = (x[:workload.n_train], y[:workload.n_train], x_test[:workload.n_test], y_test[:workload.n_test])
        rss_data = _rss_now_mb()
        contender = cls(workload, arrays, args.seed)
        jax.effects_barrier()
        reply({"ready": True, "import_s": import_s, "setup_s": time.perf_counter() - start,
               "rss_after_data_mb": rss_data, "rss_after_setup_mb": _rss_now_mb(), "pid": os.getpid()})
        _serve(contender, reply, sys.stdin)
    except Exception as err:  # noqa: BLE001 - the parent reports it and goes on with the others
        reply({"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
