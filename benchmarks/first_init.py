"""`python -m benchmarks.first_init`: how long a model's first `init` takes in a fresh process.

    python -m benchmarks.first_init                       # the tutorial CNN and MLP, the wide MLP, the LSTM
    python -m benchmarks.first_init --workloads cnn --repeats 5

Each measurement is a new Python process without JAX's persistent compilation cache, so every program is
compiled, as on a user's first run: the benchmark workload's model `init`, once as the library does it
("unrolled": the initializers draw their bits through `core.threefry.unrolled`) and once with the
initializers handed the threefry key itself ("threefry": `jax.random`'s own lowering, a compiled loop on
CPU). The weights are the same either way. Medians over the repeats, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = ("cnn", "mlp", "wide", "lstm")

_CHILD = """
import json, sys, time
import jax
import jaxnet_lite.initializers
from benchmarks import workloads
from benchmarks.jnl_contenders import build_model
if sys.argv[2] == "threefry":
    jaxnet_lite.initializers.unrolled = lambda key: key  # the key as it is: jax.random's own lowering
spec = workloads.FULL[sys.argv[1]]
model = build_model(spec)
start = time.perf_counter()
jax.block_until_ready(model.init(jax.random.key(0), spec.input_shape))
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def measure(workload: str, how: str) -> float:
    """Seconds of one first `init` (`how` = "unrolled" or "threefry") in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    done = subprocess.run([sys.executable, "-c", _CHILD, workload, how], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{workload} {how}: {done.stderr.strip().splitlines()[-1:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated, from {WORKLOADS}")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per workload and contender")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    unknown = sorted(set(names) - set(WORKLOADS))
    if unknown or args.repeats < 1:
        parser.error(f"unknown workloads {unknown}; choose from {WORKLOADS}" if unknown else "--repeats must be >= 1")
    print("| workload | first init s, unrolled | first init s, threefry | ratio |\n| --- | ---: | ---: | ---: |")
    for name in names:
        ours, theirs = [], []
        for _ in range(args.repeats):  # alternated, so the machine's drift falls on both
            ours.append(measure(name, "unrolled"))
            theirs.append(measure(name, "threefry"))
        mine, ref = float(np.median(ours)), float(np.median(theirs))
        spread = lambda xs: f"[{min(xs):.2f}–{max(xs):.2f}]"  # noqa: E731
        print(f"| {name} | {mine:.2f} {spread(ours)} | {ref:.2f} {spread(theirs)} | {mine / ref:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
