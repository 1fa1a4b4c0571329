"""`benchmarks.profile_step`: a trace's kernels get their own (self) time, a jitted call counts as one
dispatch, and a real trace of a tiny workload yields both."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.profile_step import summarize

REPO = Path(__file__).resolve().parents[1]


def _trace(path: Path, events: list[dict]) -> Path:
    meta = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/host:CPU"}},
            {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "python"}},
            {"ph": "M", "name": "thread_name", "pid": 1, "tid": 2, "args": {"name": "tf_XLAPjRtCpuClient/1"}}]
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": meta + events}, f)
    return path


def test_nested_kernels_count_once_and_loops_keep_only_their_own_time(tmp_path: Path) -> None:
    x = lambda tid, name, ts, dur: {"ph": "X", "pid": 1, "tid": tid, "name": name, "ts": ts, "dur": dur}  # noqa: E731
    events = [
        x(1, "PjitFunction(run)", 0, 100), x(1, "PjitFunction(run)", 1, 90),  # one call, shown twice
        x(1, "CommonPjRtLoadedExecutable::ExecuteHelper", 2, 30),
        x(1, "PjitFunction(run)", 200, 50),
        x(2, "while.1", 10, 1000), x(2, "dot.1", 20, 300), x(2, "dot.1", 400, 300),
        x(2, "ThreadpoolListener::Record", 30, 5000),  # runtime bookkeeping: left out
        x(2, "fusion", 2000, 100),
    ]
    summary = summarize(_trace(tmp_path / "t.trace.json.gz", events))
    kernels = {k["name"]: k for k in summary["kernels"]}
    assert summary["dispatches"] == 2
    assert kernels["while.1"]["ms"] == 0.4 and kernels["dot.1"]["ms"] == 0.6 and kernels["dot.1"]["calls"] == 2
    assert summary["device_ms"] == 1.1 and "ThreadpoolListener::Record" not in kernels
    assert summary["launch_ms"] == 0.03


def test_profile_of_a_tiny_workload(tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "benchmarks.profile_step", "--quick", "--workload", "mlp",
                           "--contenders", "jnl_fit_dev", "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = json.loads(out.read_text())
    # The quick mlp window is 10 epochs; fit runs each as one program on CPU.
    assert result["steps"] == 80 and result["dispatches"] == 10
    assert result["device_ms"] > 0 and any(k["name"].startswith("dot") for k in result["kernels"])
    assert "jnl_fit_dev" in done.stdout and "top kernels" in done.stdout
