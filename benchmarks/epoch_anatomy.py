"""`python -m benchmarks.epoch_anatomy`: an epoch of `fit` split into a cost per epoch and a cost per step.

The tutorial MLP trains on Iris repeated `r` times (8·r steps of 16 per epoch) for several `r`. A
least-squares line through the seconds per epoch against the steps per epoch splits each contender's
time into a fixed cost per epoch (dispatch, host work, waits) and a cost per step (the compiled step).
On the H200, `fit` took 120 µs per MLP step against the hand-written scan's 37 (benchmarks/RESULTS.md,
"GPU"); this says which of the two costs that gap is in. Contenders alternate round by round in one
process; each figure is the median over rounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import jax
import numpy as np

from benchmarks import workloads
from benchmarks.jnl_contenders import JnlFit, JnlFitDevice
from benchmarks.reference_jax import ReferenceScan

CONTENDERS = {"jnl_fit": JnlFit, "jnl_fit_dev": JnlFitDevice, "ref_scan": ReferenceScan}


def iris_repeated(r: int) -> tuple[workloads.Workload, tuple[np.ndarray, ...]]:
    """The mlp workload on Iris's 120 training rows repeated `r` times (the test set unchanged)."""
    from jaxnet_lite.datasets import iris

    (x, y), (xt, yt) = iris.load_data()
    x, xt = x.astype(np.float32), xt.astype(np.float32)
    x, y = np.tile(x, (r, 1)), np.tile(y, r)
    w = dataclasses.replace(workloads.get("mlp", quick=False), n_train=len(x))
    one_hot = np.eye(w.classes, dtype=np.float32)
    return w, (x, one_hot[y], xt, one_hot[yt])


def fit_line(steps: list[int], seconds: list[float]) -> tuple[float, float]:
    """`(per_epoch_s, per_step_s)`: intercept and slope of seconds per epoch against steps per epoch."""
    slope, intercept = np.polyfit(np.asarray(steps, float), np.asarray(seconds, float), 1)
    return float(intercept), float(slope)


def measure(repeats: list[int], rounds: int, steps_per_block: int) -> dict:
    """Median seconds per epoch for each contender and repeat count, then the fitted split."""
    per_epoch: dict[str, dict[int, float]] = {name: {} for name in CONTENDERS}
    steps_of: dict[int, int] = {}
    for r in repeats:
        workload, arrays = iris_repeated(r)
        steps_of[r] = workload.steps_per_epoch
        epochs = max(2, steps_per_block // workload.steps_per_epoch)
        runners = {name: cls(workload, arrays, seed=0) for name, cls in CONTENDERS.items()}
        for runner in runners.values():
            runner.train(epochs)  # compile and warm up
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(rounds):
            for name, runner in runners.items():
                start = time.perf_counter()
                runner.train(epochs)  # returns a float: every contender waits for its device here
                times[name].append((time.perf_counter() - start) / epochs)
        for name in runners:
            per_epoch[name][r] = statistics.median(times[name])
    split = {}
    for name, by_r in per_epoch.items():
        fixed, step = fit_line([steps_of[r] for r in repeats], [by_r[r] for r in repeats])
        split[name] = {"per_epoch_us": fixed * 1e6, "per_step_us": step * 1e6,
                       "seconds_per_epoch": {str(r): by_r[r] for r in repeats}}
    return {"device": str(jax.devices()[0].device_kind), "platform": jax.default_backend(),
            "steps_per_epoch": {str(r): steps_of[r] for r in repeats}, "contenders": split}


def table(doc: dict) -> str:
    lines = [f"device: {doc['platform']} ({doc['device']})",
             f"{'contender':<12} {'per epoch us':>12} {'per step us':>12}  seconds per epoch at steps "
             + ", ".join(map(str, doc["steps_per_epoch"].values()))]
    for name, c in doc["contenders"].items():
        secs = ", ".join(f"{s * 1e3:.2f} ms" for s in c["seconds_per_epoch"].values())
        lines.append(f"{name:<12} {c['per_epoch_us']:>12.1f} {c['per_step_us']:>12.2f}  {secs}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.epoch_anatomy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", default="1,8,64", help="Iris repeat counts (8 steps per epoch each)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000, help="training steps per timed block")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON document here")
    args = parser.parse_args(argv)
    doc = measure([int(r) for r in args.repeats.split(",")], args.rounds, args.steps)
    print(table(doc))
    if args.out:
        args.out.write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
