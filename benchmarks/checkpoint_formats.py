"""`python -m benchmarks.checkpoint_formats [--mb 1,64]`: save and restore times of one training-state-like
tree as an `.npz` file and as an Orbax directory, in one process (what `ModelCheckpoint` pays per epoch).

Prints, per size, the median of the repeats after the first and the first one alone (Orbax's first save
also imports and starts TensorStore).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet_lite import checkpoint


def state_of(megabytes: int) -> dict:
    """Params plus two Adam slots of `megabytes` in all, a step counter and a key, like a `TrainState`."""
    n = max(1, megabytes * (1 << 20) // 4 // 3)
    tree = {"params": {"w": jnp.ones((n,), jnp.float32)}, "mu": {"w": jnp.zeros((n,))}, "nu": {"w": jnp.zeros((n,))},
            "step": jnp.int32(3), "rng": jax.random.key(0)}
    return jax.block_until_ready(tree)


def measure(tree: dict, path: str, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"save": [], "restore": []}
    for _ in range(repeats):
        start = time.perf_counter()
        checkpoint.save(path, tree)
        times["save"].append(time.perf_counter() - start)
        start = time.perf_counter()
        jax.block_until_ready(checkpoint.restore(path, target=tree))
        times["restore"].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", default="1,64", help="tree sizes in MB, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="jnl-ckpt-"))
    try:
        for megabytes in (int(m) for m in args.mb.split(",")):
            tree = state_of(megabytes)
            for name, path in (("npz", str(folder / "state.npz")), ("orbax", str(folder / "state") + "/")):
                times = measure(tree, path, args.repeats)
                cells = [f"{kind} {1e3 * np.median(values[1:]):.0f} ms (first {1e3 * values[0]:.0f} ms)"
                         for kind, values in times.items()]
                print(f"{megabytes:>4} MB  {name:<5}  " + "  ".join(cells), flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
