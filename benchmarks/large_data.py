"""Reading a `.npy` file larger than memory wants to be: resident memory and time per batch or step.

    python -m benchmarks.large_data [--gib 2] [--dir /tmp] [--steps 150] [--batch 1024] [--width 256]

Writes an N x 512 float32 file of `--gib` GiB (plain writes, in chunks) and its labels, then runs each
case in a fresh process, so that each peak RSS (`ru_maxrss`) is its own:

- `mmap-index`: fancy-indexing `np.load(mmap_mode="r")` with each sorted, shuffled batch;
- `source-read`: `MemmapSource` reading the same batches (positional reads);
- `fit-prefetch`: `fit` from the source, a Dense(width)-Dense(10) model, batches read ahead in a thread;
- `fit-inline`: the same with the prefetch thread replaced by reading in the loop (the ablation).

The file is read from the page cache when the machine has the memory for it (it was just written);
deleting it is left to `--keep` (off: the files are removed at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

FEATURES = 512

CASE = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np
    case, x_path, y_path, steps, batch, width = sys.argv[1:7]
    steps, batch, width = int(steps), int(batch), int(width)
    from jaxnet_lite.data import EpochSampler, MemmapSource
    source = MemmapSource(x_path, y_path)
    batches = [index for _, (index, _) in zip(range(steps), EpochSampler(len(source), batch, seed=0).batches(0))]
    if case in ("mmap-index", "source-read"):
        mapped = np.load(x_path, mmap_mode="r")
        start = time.perf_counter()
        for index in batches:
            rows = np.sort(index)
            _ = mapped[rows] if case == "mmap-index" else source[rows]
        per = (time.perf_counter() - start) / steps
    else:
        import jaxnet_lite.training.random_access as random_access
        from jaxnet_lite import Sequential
        from jaxnet_lite.layers import Dense
        if case == "fit-inline":
            class Inline:
                def __init__(self, items, size=2):
                    self.items = items
                def __enter__(self):
                    return self.items
                def __exit__(self, *exc):
                    pass
            random_access.Prefetch = Inline
        model = Sequential([Dense(width, input_shape=(source.x.shape[1],), activation="relu"),
                            Dense(10, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        model.fit(source, batch_size=batch, steps_per_epoch=2, verbose=0)  # compile outside the timing
        start = time.perf_counter()
        model.fit(source, batch_size=batch, steps_per_epoch=steps, verbose=0)
        per = (time.perf_counter() - start) / steps
    print(json.dumps({"case": case, "ms": per * 1e3,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def write_files(folder: Path, gib: float) -> tuple[Path, Path]:
    """An N x 512 float32 `.npy` of `gib` GiB and int32 labels, written in 64 MiB chunks."""
    rows = int(gib * (1 << 30)) // (4 * FEATURES)
    x_path, y_path = folder / "x.npy", folder / "y.npy"
    header = np.lib.format.open_memmap(x_path, mode="w+", dtype=np.float32, shape=(rows, FEATURES))
    offset = header.offset
    del header
    rng = np.random.default_rng(0)
    with open(x_path, "r+b") as f:
        f.seek(offset)
        for start in range(0, rows, 1 << 15):
            f.write(rng.random((min(1 << 15, rows - start), FEATURES), dtype=np.float32).tobytes())
    np.save(y_path, rng.integers(0, 10, rows).astype(np.int32))
    return x_path, y_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--dir", default=None, help="where to write the files (default: a temporary folder)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--keep", action="store_true", help="keep the files")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(dir=args.dir, prefix="large_data_"))
    x_path, y_path = write_files(folder, args.gib)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    try:
        print(f"{x_path} ({x_path.stat().st_size / 2**30:.2f} GiB), {args.steps} shuffled batches of {args.batch}")
        for case in ("mmap-index", "source-read", "fit-prefetch", "fit-inline"):
            out = subprocess.run([sys.executable, "-c", CASE, case, str(x_path), str(y_path), str(args.steps),
                                  str(args.batch), str(args.width)], env=env, capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{case:>13}: {result['ms']:7.2f} ms per batch, peak RSS {result['peak_mib']:6.0f} MiB")
    finally:
        if not args.keep:
            for path in (x_path, y_path):
                path.unlink(missing_ok=True)
            folder.rmdir()


if __name__ == "__main__":
    main()
