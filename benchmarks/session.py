"""Drive the workers of one workload: start them, alternate their windows, collect raw figures.

Order of events for a workload (see README.md for why):
1. every contender's worker starts in parallel (imports, data, model) and reports `ready`;
2. one at a time, each evaluates the untrained model (loss before; compiles its eval step);
3. round 0: each trains one window, which includes compilation (time to first step);
4. rounds 1..W: each trains one window, the order rotated every round, so slow drift of a busy
   machine (other jobs, thermal) lands on all contenders alike;
5. evaluation rounds, alternated the same way; then `stats` (peak RSS) and `quit`;
6. (`cold_start`) one at a time, a fresh worker per contender trains 2 steps (mlp: 1 epoch) twice: the
   first call is compilation + the first steps, measured with nothing else starting on the machine. On a
   busy machine a whole first window minus a steady window is too noisy for this (seconds of compile
   against +-30% of a 30 s epoch).
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.workloads import Workload

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUEST_TIMEOUT_S = 3600.0


class WorkerError(RuntimeError):
    pass


def worker_env() -> dict:
    """Environment of every worker: the repo on the path, Keras on JAX, no GPU memory preallocation
    (several workers share one device; each would otherwise grab 75% of it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["KERAS_BACKEND"] = "jax"
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


class Worker:
    """A contender's process and its request/answer pipe."""

    def __init__(self, contender: str, workload: Workload, data_dir: Path, seed: int = 0) -> None:
        self.name = contender
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"bench-{workload.name}-{contender}-", suffix=".log",
                                               delete=False)
        cmd = [sys.executable, "-m", "benchmarks.worker", "--contender", contender,
               "--workload", json.dumps(workload.to_json()), "--data", str(data_dir), "--seed", str(seed)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, env=worker_env(), cwd=REPO_ROOT)

    def read(self, timeout: float = REQUEST_TIMEOUT_S) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            raise WorkerError(f"{self.name}: no answer (exit code {self.proc.poll()}); log tail:\n{self.log_tail()}")
        answer = json.loads(line)
        if "error" in answer:
            raise WorkerError(f"{self.name}: {answer['error']}\n{answer.get('traceback', '')}")
        return answer

    def ask(self, cmd: str, **kwargs: Any) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kwargs}) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def log_tail(self, chars: int = 3000) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-chars:]

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.ask("quit")
            self.proc.wait(timeout=60)
        except Exception:  # noqa: BLE001
            self.proc.kill()
        self.log.close()
        os.unlink(self.log.name)


def _rotated(names: list[str], r: int) -> list[str]:
    k = r % len(names) if names else 0
    return names[k:] + names[:k]


def measure(workload: Workload, names: list[str], data_dir: Path, eval_windows: int = 3,
            progress: Any = print) -> dict[str, dict]:
    """Raw figures per contender: `ready`, eval before, first window, steady windows, eval windows, stats."""
    raw: dict[str, dict] = {n: {"windows": [], "eval_windows": []} for n in names}
    workers: dict[str, Worker] = {}
    alive: list[str] = []

    def fail(name: str, err: Exception) -> None:
        raw[name]["error"] = str(err)
        progress(f"  {name}: FAILED: {str(err).splitlines()[0]}")
        if name in alive:
            alive.remove(name)

    try:
        for n in names:
            workers[n] = Worker(n, workload, data_dir)
        for n in names:  # all started in parallel; now wait for each
            try:
                raw[n]["ready"] = workers[n].read()
                alive.append(n)
            except WorkerError as err:
                fail(n, err)
        for n in list(alive):
            try:
                raw[n]["eval_before"] = workers[n].ask("eval", repeats=1)
            except WorkerError as err:
                fail(n, err)
        for r in range(workload.windows + 1):
            for n in _rotated(list(alive), r):
                try:
                    answer = workers[n].ask("train", epochs=workload.epochs_per_window)
                except WorkerError as err:
                    fail(n, err)
                    continue
                if r == 0:
                    raw[n]["first_window"] = answer
                else:
                    raw[n]["windows"].append(answer)
                progress(f"  {workload.label} round {r}/{workload.windows} {n:<10} {answer['seconds']:8.3f} s  "
                         f"loss {answer['loss']:.4f}")
        for r in range(eval_windows):
            for n in _rotated(list(alive), r):
                try:
                    raw[n]["eval_windows"].append(workers[n].ask("eval", repeats=workload.eval_repeats))
                except WorkerError as err:
                    fail(n, err)
        for n in list(alive):
            try:
                raw[n]["info"] = workers[n].ask("info")
                raw[n]["stats"] = workers[n].ask("stats")
            except WorkerError as err:
                fail(n, err)
    finally:
        for w in workers.values():
            w.close()
    return raw


def cold_start(workload: Workload, names: list[str], data_dir: Path, progress: Any = print) -> dict[str, dict]:
    """Per contender, in a fresh process: `{"first_s": compile + first steps, "again_s": the same steps warm,
    "steps": how many}`; first step = first_s - again_s * (steps - 1) / steps."""
    if workload.name == "mlp":
        cold = dataclasses.replace(workload, epochs_per_window=1)
    else:
        cold = dataclasses.replace(workload, n_train=min(workload.n_train, 2 * workload.batch_size),
                                   epochs_per_window=1)
    out: dict[str, dict] = {}
    for n in names:
        worker = Worker(n, cold, data_dir)
        try:
            worker.read()
            first = worker.ask("train", epochs=1)["seconds"]
            again = worker.ask("train", epochs=1)["seconds"]
            steps = cold.steps_per_epoch
            out[n] = {"first_s": first, "again_s": again, "steps": steps,
                      "first_step_s": first - again * (steps - 1) / steps}
            progress(f"  {workload.label} cold start {n:<10} first {steps} steps {first:7.3f} s, again {again:7.3f} s")
        except WorkerError as err:
            out[n] = {"error": str(err)}
        finally:
            worker.close()
    return out
