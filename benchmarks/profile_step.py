"""`python -m benchmarks.profile_step`: where a contender's training time goes, from a `jax.profiler` trace.

    python -m benchmarks.profile_step --workload mlp --contenders jnl_fit,jnl_fit_dev,jnl_step,ref_jit,ref_scan
    python -m benchmarks.profile_step --workload cnn --contenders jnl_fit,ref_jit --epochs 1 --keep traces/

Each contender (the benchmark harness's JAX ones, in its own process) trains one window to compile and warm
up, one timed without the profiler, then one under `jax.profiler.trace`. The trace's events are summed by name:

- host side, on the Python thread: how many programs were dispatched (`PjitFunction` calls) and the time
  spent launching them;
- device side (XLA:CPU's worker threads, or a GPU's streams): the time of each kernel or fusion, top first.

So a gap between two contenders shows up as more dispatches, more launch time, copies, or slower kernels.
Perfetto (ui.perfetto.dev) opens the kept `*.trace.json.gz` files for a timeline.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
JAX_CONTENDERS = ("jnl_fit", "jnl_fit_dev", "jnl_step", "ref_jit", "ref_scan")
# Bookkeeping events of XLA's thread pools and runtime: not work, left out of the device-side table.
_RUNTIME_EVENTS = ("ThreadpoolListener", "ThunkExecutor", "end: ", "TfrtCpuExecutable", "PjRt", "Pjrt")


def summarize(trace_path: Path) -> dict[str, Any]:
    """Dispatches, host time and per-kernel device time (ms) from a Perfetto `*.trace.json.gz`."""
    with gzip.open(trace_path, "rt") as f:
        doc = json.load(f)
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    threads, processes = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
        elif e.get("ph") == "M" and e.get("name") == "process_name":
            processes[e["pid"]] = e["args"]["name"]
    host: collections.Counter = collections.Counter()
    host_ms: collections.Counter = collections.Counter()
    device_ms: collections.Counter = collections.Counter()  # self time: a loop's own, without its body's kernels
    device_calls: collections.Counter = collections.Counter()
    by_thread: dict[Any, list] = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X":
            by_thread[(e["pid"], e["tid"])].append(e)
    for key, thread_events in by_thread.items():
        thread = threads.get(key, "")
        on_device = "device:" in processes.get(key[0], "") or thread.startswith("tf_XLA")
        if not on_device:
            if "python" in thread.lower():
                outer_end = -1.0  # a jitted call shows as nested PjitFunction events: count the outer one
                for e in sorted(thread_events, key=lambda e: (e["ts"], -e.get("dur", 0.0))):
                    if e["name"].startswith("PjitFunction"):
                        if e["ts"] < outer_end:
                            continue
                        outer_end = e["ts"] + e.get("dur", 0.0)
                    host[e["name"]] += 1
                    host_ms[e["name"]] += float(e.get("dur", 0.0)) / 1e3
            continue
        work = sorted((e for e in thread_events if not e["name"].startswith(_RUNTIME_EVENTS)),
                      key=lambda e: (e["ts"], -e.get("dur", 0.0)))
        stack: list[tuple[str, float]] = []  # (name, end time) of the enclosing events
        for e in work:
            start, dur = float(e["ts"]), float(e.get("dur", 0.0))
            while stack and stack[-1][1] <= start:
                stack.pop()
            if stack:
                device_ms[stack[-1][0]] -= dur / 1e3  # the parent's self time excludes this child
            device_ms[e["name"]] += dur / 1e3
            device_calls[e["name"]] += 1
            stack.append((e["name"], start + dur))
    dispatches = sum(v for k, v in host.items() if k.startswith("PjitFunction"))
    launch_ms = sum(v for k, v in host_ms.items() if k.startswith("CommonPjRtLoadedExecutable::Execute"))
    kernels = [{"name": k, "ms": round(v, 3), "calls": device_calls[k]} for k, v in device_ms.most_common()]
    return {"dispatches": dispatches, "launch_ms": round(launch_ms, 3),
            "device_ms": round(sum(device_ms.values()), 3), "kernels": kernels}


def _worker(contender: str, workload_name: str, data_dir: str, epochs: int, trace_dir: str, quick: bool) -> None:
    """In the child: build the contender, warm it up with one window, time the next, trace a third, print
    the summary."""
    import jax

    from benchmarks import contenders, workloads

    workload = workloads.get(workload_name, quick)
    x, y, x_test, y_test = workloads.load(Path(data_dir), workload.name)
    arrays = (x[:workload.n_train], y[:workload.n_train], x_test[:workload.n_test], y_test[:workload.n_test])
    trainer = contenders.ALL[contender].load()(workload, arrays, 0)
    window = epochs * workload.epochs_per_window
    trainer.train(window)  # compiles and warms up
    start = time.perf_counter()
    trainer.train(window)  # timed without the profiler, which slows the host side
    seconds = time.perf_counter() - start
    options = jax.profiler.ProfileOptions()
    options.python_tracer_level = 0  # Python function events would swamp the trace (and the timing)
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True, profiler_options=options):
        trainer.train(window)
    trace = next(Path(trace_dir).rglob("*.trace.json.gz"))
    steps = window * workload.steps_per_epoch
    print("PROFILE " + json.dumps({"contender": contender, "steps": steps, "wall_ms": round(seconds * 1e3, 3),
                                   "trace": str(trace), **summarize(trace)}), flush=True)


def profile(contender: str, workload_name: str, data_dir: Path, epochs: int, keep: Path | None,
            quick: bool) -> dict[str, Any]:
    trace_dir = (keep / contender) if keep else Path(tempfile.mkdtemp(prefix=f"profile-{contender}-"))
    code = (f"from benchmarks.profile_step import _worker; _worker({contender!r}, {workload_name!r}, "
            f"{str(data_dir)!r}, {epochs}, {str(trace_dir)!r}, {quick})")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROFILE ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{contender} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("PROFILE "):])


def report(results: list[dict[str, Any]], top: int) -> str:
    out = ["| contender | steps | wall ms (untraced) | µs/step | dispatches | launch ms | device ms | device µs/step |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        wall_us, device_us = (r[k] * 1e3 / r["steps"] for k in ("wall_ms", "device_ms"))
        out.append(f"| {r['contender']} | {r['steps']} | {r['wall_ms']:.1f} | {wall_us:.1f} | {r['dispatches']} | "
                   f"{r['launch_ms']:.1f} | {r['device_ms']:.1f} | {device_us:.1f} |")
    for r in results:
        out += ["", f"{r['contender']}: top kernels by device time", "| kernel | ms | calls |", "| --- | ---: | ---: |"]
        out += [f"| {k['name'][:70]} | {k['ms']:.2f} | {k['calls']} |" for k in r["kernels"][:top]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", default="mlp", help="cnn, mlp, wide, lstm or lstm_wide")
    parser.add_argument("--contenders", default="jnl_fit,jnl_fit_dev,jnl_step,ref_jit,ref_scan",
                        help=f"comma-separated, from {', '.join(JAX_CONTENDERS)}")
    parser.add_argument("--epochs", type=int, default=1, help="windows traced (after one of warm-up)")
    parser.add_argument("--quick", action="store_true", help="the harness's quick workload sizes")
    parser.add_argument("--top", type=int, default=12, help="kernels listed per contender")
    parser.add_argument("--keep", type=Path, default=None, help="keep the traces in this folder")
    parser.add_argument("--out", type=Path, default=None, help="write the summaries as JSON here")
    args = parser.parse_args(argv)
    names = [c for c in args.contenders.split(",") if c]
    unknown = [c for c in names if c not in JAX_CONTENDERS]
    if unknown:
        parser.error(f"unknown or non-JAX contenders {unknown}; choose from {', '.join(JAX_CONTENDERS)}")
    from benchmarks import workloads

    with tempfile.TemporaryDirectory() as data_dir:
        workloads.prepare(workloads.get(args.workload, args.quick), Path(data_dir))
        results = [profile(c, args.workload, Path(data_dir), args.epochs, args.keep, args.quick) for c in names]
    import jax

    print(f"{args.workload} on {jax.devices()[0].device_kind} ({jax.default_backend()}), one traced window each\n")
    print(report(results, args.top))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
