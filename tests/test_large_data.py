"""Training from a `.npy` file larger than the memory it may use: a 2 GiB file, a 1 GiB RSS budget.

One child process writes the file in chunks (plain writes, so its pages never enter the process), then
trains a small model on shuffled batches drawn from the whole file and reports its peak RSS. A second
child checks that a memory-mapped source trains on 4 simulated devices exactly as the same arrays do,
and two processes under `jax.distributed`, each reading its half of every batch, train as one process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FILE_BYTES = 2 << 30  # 2 GiB of float32 features
RSS_BUDGET = 1 << 30
# 8 KiB rows: 300 MiB read is 40k rows, few enough random reads when the file is not in the page cache
FEATURES = 2048
FREE_DISK_NEEDED = 6 << 30

LARGE = textwrap.dedent("""
    import faulthandler, json, resource, sys
    import numpy as np
    faulthandler.dump_traceback_later(540, exit=True)  # a hang shows where it hangs, before the parent's timeout

    def peak_rss():
        # VmHWM is this process's own high-water mark. Not ru_maxrss: Linux carries that across exec, so a
        # child of a large pytest process would report the parent's peak.
        try:
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    x_path, y_path, features = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rows = int(sys.argv[4]) // (4 * features)
    # Row i holds (i % 997) / 997 in every column and label i % 10: any misplaced read shows.
    header = np.lib.format.open_memmap(x_path, mode="w+", dtype=np.float32, shape=(rows, features))
    offset = header.offset
    del header
    with open(x_path, "r+b") as f:
        f.seek(offset)
        chunk = (32 << 20) // (4 * features)  # 32 MiB at a time
        for start in range(0, rows, chunk):
            ids = np.arange(start, min(start + chunk, rows))
            f.write(np.repeat(((ids % 997) / 997).astype(np.float32)[:, None], features, axis=1).tobytes())
    np.save(y_path, (np.arange(rows) % 10).astype(np.int32))

    from jaxnet_lite import Sequential
    from jaxnet_lite.data import MemmapSource
    from jaxnet_lite.layers import Dense

    class Watched(MemmapSource):
        def read_sorted(self, indices):
            seen.append(indices.copy())
            x, y = super().read_sorted(indices)
            assert np.array_equal(x[:, 0], ((indices % 997) / 997).astype(np.float32)), "misplaced rows"
            assert np.array_equal(y, indices % 10), "misplaced labels"
            return x, y

    seen = []
    source = Watched(x_path, y_path)
    before = peak_rss()
    model = Sequential([Dense(32, input_shape=(features,), activation="relu"), Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(source, batch_size=256, epochs=2, steps_per_epoch=80, verbose=0)
    peak = peak_rss()
    read = np.concatenate(seen)
    print(json.dumps({"rows": rows, "peak_rss": peak, "rss_before_fit": before, "history": history.history,
                      "rows_read": int(read.size), "bytes_read": int(read.size) * features * 4,
                      "distinct": int(np.unique(read).size), "low": int(read.min()), "high": int(read.max())}))
""")

SHARDED = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from jaxnet_lite import Sequential
    from jaxnet_lite.data import MemmapSource
    from jaxnet_lite.layers import Dense

    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 6)).astype(np.float32)
    y = rng.integers(0, 3, 150).astype(np.int32)
    np.save(sys.argv[1] + "/x.npy", x)
    np.save(sys.argv[1] + "/y.npy", y)

    def run(data):
        model = Sequential([Dense(8, input_shape=(6,), activation="relu"), Dense(3, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"], seed=1)
        h = model.fit(*data, batch_size=30, epochs=2, shuffle=False, verbose=0)  # 30 rows padded to 32 on 4
        return h.history, [np.asarray(a).tolist() for a in jax.tree.leaves(model.variables.params)]

    source = MemmapSource(sys.argv[1] + "/x.npy", sys.argv[1] + "/y.npy")
    print(json.dumps({"devices": jax.device_count(), "arrays": run((x, y)), "source": run((source,))}))
""")


PROCESSES = textwrap.dedent("""
    import json, sys
    import jax
    process, count, address, folder, shuffle = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    if count > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(address, count, process)
    import numpy as np
    from jaxnet_lite import Sequential
    from jaxnet_lite.data import MemmapSource
    from jaxnet_lite.layers import Dense

    source = MemmapSource(folder + "/x.npy", folder + "/y.npy")
    model = Sequential([Dense(8, input_shape=(6,), activation="relu"), Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"], seed=1)
    h = model.fit(source, batch_size=30, epochs=2, shuffle=shuffle == "1", verbose=0, validation_data=source)
    print(json.dumps({"devices": jax.device_count(), "processes": jax.process_count(), "history": h.history,
                      "evaluate": model.evaluate(source, verbose=0), "predict": model.predict(source, verbose=0).tolist(),
                      "weights": [np.asarray(w).tolist() for w in model.get_weights()]}))
""")


def _env(devices: int) -> dict:
    # Small models: compiling is most of their time, so XLA's backend optimisations are off (same numbers).
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT), JAX_PLATFORMS="cpu",
                XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0")


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def _child(script: str, *args: str, devices: int = 1, timeout: int = 300) -> dict:
    try:
        out = subprocess.run([sys.executable, "-c", script, *args], env=_env(devices), capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the child ran past {e.timeout} s; its stderr: {(e.stderr or b'')[-3000:]!r}")
    assert out.returncode == 0, out.stderr[-3000:]
    return _last_json(out.stdout)


def test_training_from_a_2gib_file_stays_under_1gib_rss(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    if free < FREE_DISK_NEEDED:
        pytest.skip(f"needs {FREE_DISK_NEEDED >> 30} GiB free in {tmp_path} for a 2 GiB file, has {free / 2**30:.1f}")
    x_path, y_path = tmp_path / "x.npy", tmp_path / "y.npy"
    try:
        result = _child(LARGE, str(x_path), str(y_path), str(FEATURES), str(FILE_BYTES), timeout=600)
    finally:
        for path in (x_path, y_path):
            path.unlink(missing_ok=True)
    assert result["rows"] * FEATURES * 4 == FILE_BYTES
    assert result["rows_read"] == (1 + 2 * 80) * 256  # the first batch, checked up front, then 2 x 80 steps
    assert result["bytes_read"] >= 300 << 20
    assert result["distinct"] > 0.9 * result["rows_read"]  # new rows each epoch (about 4% repeat by chance)
    assert result["low"] < 0.01 * result["rows"] and result["high"] > 0.99 * result["rows"]  # the whole file
    assert all(np.isfinite(result["history"]["loss"])) and len(result["history"]["loss"]) == 2
    print(f"peak RSS {result['peak_rss'] / 2**20:.0f} MiB, {result['rss_before_fit'] / 2**20:.0f} MiB before fit, "
          f"{result['bytes_read'] / 2**20:.0f} MiB read")
    assert result["peak_rss"] < RSS_BUDGET, (
        f"peak RSS {result['peak_rss'] / 2**20:.0f} MiB (before fit {result['rss_before_fit'] / 2**20:.0f} MiB) "
        f"is over the {RSS_BUDGET >> 20} MiB budget")


def test_memmap_source_on_four_devices_trains_as_the_arrays_do(tmp_path):
    result = _child(SHARDED, str(tmp_path), devices=4)
    assert result["devices"] == 4
    (h_arrays, p_arrays), (h_source, p_source) = result["arrays"], result["source"]
    for key in h_arrays:
        np.testing.assert_allclose(h_source[key], h_arrays[key], rtol=1e-5, atol=1e-6)
    for a, b in zip(p_arrays, p_source):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("jaxnet_lite.distributed") is None,
                    reason="placing a train state across processes comes with jaxnet_lite.distributed")
def test_two_processes_each_reading_half_of_every_batch_train_as_one(tmp_path):
    shuffle = "1"  # both processes must draw the same order from the seed
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(150, 6)).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.integers(0, 3, 150).astype(np.int32))
    with socket.socket() as s:
        s.bind(("localhost", 0))
        address = f"localhost:{s.getsockname()[1]}"
    children = [subprocess.Popen([sys.executable, "-c", PROCESSES, str(p), "2", address, str(tmp_path), shuffle],
                                 env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for p in range(2)]
    alone = _child(PROCESSES, "0", "1", "", str(tmp_path), shuffle, devices=2)  # one process, the same 2 devices
    results = []
    for child in children:
        stdout, stderr = child.communicate(timeout=300)
        assert child.returncode == 0, stderr[-3000:]
        results.append(_last_json(stdout))
    for result in results:
        assert (result["processes"], result["devices"]) == (2, 2)
        for key in alone["history"]:
            np.testing.assert_allclose(result["history"][key], alone["history"][key], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result["evaluate"], alone["evaluate"], rtol=1e-5)
        np.testing.assert_allclose(result["predict"], alone["predict"], rtol=1e-5, atol=1e-6)
        for a, b in zip(result["weights"], alone["weights"]):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
