"""Several processes, one program: 2 CPU processes (gloo collectives over loopback, started by the package's
own launcher) train like one process on 2 simulated devices, only process 0 prints and writes, and
checkpoints move between the two set-ups in both directions.

Two subprocess runs serve every check here: one process with 2 devices (A), then 2 processes with 1 device
each (B), which also resumes A's checkpoint; this test process resumes B's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# Data, model and the per-process block of rows, shared by the subprocess script and this test process.
SETUP = textwrap.dedent("""
    import numpy as np
    from jaxnet_lite import Sequential
    from jaxnet_lite.layers import Dense

    N, HALVES = 150, (slice(0, 75), slice(75, 150))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, N)]
    x_val, y_val = x[:37] * 0.5, y[:37]

    def build(seed=0):
        model = Sequential([Dense(8, input_shape=(4,), activation="relu"), Dense(3, activation="softmax")])
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        return model

    def stream(blocks):
        # Step i: the i-th 8-row batch of each block, one after the other (2 processes: one block each).
        return [(np.concatenate([x[b][i:i + 8] for b in blocks]), np.concatenate([y[b][i:i + 8] for b in blocks]))
                for i in range(0, 75, 8)]
""")

SCRIPT = SETUP + textwrap.dedent("""
    import json, os, sys
    import jaxnet_lite as jnl
    joined = jnl.distributed.initialize()
    import jax
    from jaxnet_lite.callbacks import CSVLogger, EarlyStopping, ModelCheckpoint

    out, resume_from = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None
    index = jax.process_index()
    rows, val_rows = jnl.distributed.process_rows(N), jnl.distributed.process_rows(len(x_val))
    os.makedirs(out, exist_ok=True)
    leaves = lambda tree: [np.asarray(a).tolist() for a in jax.tree.leaves(tree)]

    model = build()
    history = model.fit(x[rows], y[rows], batch_size=16, epochs=2, verbose=2, validation_data=(x_val[val_rows],
                        y_val[val_rows]), callbacks=[
                            CSVLogger(os.path.join(out, f"log{index}.csv")),
                            ModelCheckpoint(os.path.join(out, f"p{index}", "ckpt.npz")),  # paths differ on purpose
                            ModelCheckpoint(os.path.join(out, "ckpt_orbax") + "/"),
                            EarlyStopping(monitor="val_loss", patience=5)])
    result = {"joined": joined, "index": index, "count": jax.process_count(), "devices": jax.device_count(),
              "history": history.history, "params": leaves(model.trainer.train_state.params),
              "evaluate": model.evaluate(x_val[val_rows], y_val[val_rows], verbose=2),
              "predict": np.asarray(model.predict(x[rows][:3], verbose=0)).tolist()}

    try:  # process 1 passes 3 features instead of 4: every process gets the error, none waits for the others
        model.evaluate(x[rows] if index == 0 else x[rows][:, :3], y[rows], verbose=0)
    except ValueError as error:
        result["mismatch"] = str(error)

    if jax.process_count() == 2:  # an array no process holds whole: saved shard by shard, read back the same way
        from jax.sharding import Mesh, NamedSharding, PartitionSpec
        block = np.arange(6, dtype=np.float32).reshape(3, 2) + 10 * index
        spread = jax.make_array_from_process_local_data(
            NamedSharding(Mesh(np.array(jax.devices()), ("batch",)), PartitionSpec("batch")), block)
        saved = jnl.checkpoint.save(os.path.join(out, "spread"), {"w": spread})  # no slash, no format given
        back = jnl.checkpoint.restore(saved, target={"w": spread})["w"]
        result["spread"] = {"is_dir": os.path.isdir(saved), "mine": np.asarray(back.addressable_data(0)).tolist(),
                            "same_sharding": back.sharding == spread.sharding}

    streamed = build()
    blocks = [HALVES[index]] if jax.process_count() == 2 else list(HALVES)
    result["stream_history"] = streamed.fit(stream(blocks), epochs=2, verbose=0).history
    result["stream_params"] = leaves(streamed.trainer.train_state.params)

    if resume_from:
        again = build()
        epoch = again.trainer.restore_checkpoint(resume_from)
        result["restored_epoch"], result["restored"] = epoch, leaves(again.trainer.train_state.params)
        again.fit(x[rows], y[rows], batch_size=16, epochs=3, initial_epoch=epoch, verbose=0)
        result["resumed"] = leaves(again.trainer.train_state.params)
    print("RESULT " + json.dumps(result), flush=True)
""")


def _results(stdout: str) -> dict[int, dict]:
    found = {}
    for line in stdout.splitlines():
        if "RESULT " in line:
            result = json.loads(line.split("RESULT ", 1)[1])
            found[result["index"]] = result
    return found


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COORDINATOR", "JAXNET_LITE_NUM",
                                                                     "JAXNET_LITE_PROCESS"))}
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])), JAX_PLATFORMS="cpu",
               **extra)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run A (1 process, 2 devices), then B (2 processes via the launcher, resuming A's Orbax checkpoint)."""
    pytest.importorskip("orbax.checkpoint", reason="the Orbax checkpoints need orbax-checkpoint (the test extra)")
    from jax._src.lib import _jax

    if not hasattr(_jax, "make_gloo_tcp_collectives"):
        pytest.skip("this jaxlib has no gloo CPU collectives, which CPU processes need to talk to each other")
    tmp = tmp_path_factory.mktemp("multiprocess")
    script = tmp / "train.py"
    script.write_text(SCRIPT)
    one = _run([sys.executable, str(script), str(tmp / "a")],
               _env(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    two = _run([sys.executable, "-m", "jaxnet_lite.launch", "-n", "2", "--cpu-devices", "1", "--",
                sys.executable, str(script), str(tmp / "b"), str(tmp / "a" / "ckpt_orbax")], _env())
    return {"dir": tmp, "a": _results(one.stdout)[0], "b": _results(two.stdout), "b_stdout": two.stdout,
            "a_stdout": one.stdout}


def _close(actual, expected, tol=1e-5):
    for a, b in zip(actual, expected, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


def test_two_processes_train_like_one_process_on_two_devices(runs):
    a, b = runs["a"], runs["b"]
    assert not a["joined"] and a["count"] == 1 and a["devices"] == 2
    assert sorted(b) == [0, 1] and all(r["joined"] and r["count"] == 2 and r["devices"] == 2 for r in b.values())
    # Every process sees the same logs (they are reductions over the global batch), equal to one process's.
    assert b[0]["history"] == b[1]["history"] and b[0]["evaluate"] == b[1]["evaluate"]
    assert b[0]["params"] == b[1]["params"]
    for key, values in a["history"].items():
        _close(b[0]["history"][key], values)
    _close(b[0]["params"], a["params"])
    _close(b[0]["evaluate"], a["evaluate"])
    # A dataset of batches: each process yields its own rows; step i trains on both processes' i-th batches.
    assert b[0]["stream_history"] == b[1]["stream_history"]
    for key, values in a["stream_history"].items():
        _close(b[0]["stream_history"][key], values)
    _close(b[0]["stream_params"], a["stream_params"])
    # predict: each process gets the predictions of its own rows.
    _close(b[0]["predict"], a["predict"])
    assert not np.allclose(b[1]["predict"], b[0]["predict"])


def test_arrays_that_differ_between_processes_are_an_error_on_every_process(runs):
    assert "mismatch" not in runs["a"]
    for result in runs["b"].values():
        assert "evaluate: the processes passed arrays of different example shapes" in result["mismatch"]
        assert "rows per process: [75, 75]" in result["mismatch"]


def test_only_process_zero_prints_and_writes(runs):
    out, stdout = runs["dir"] / "b", runs["b_stdout"]
    epoch_lines = [line for line in stdout.splitlines() if "Epoch 1/2" in line]
    assert epoch_lines == ["[0] Epoch 1/2"]
    printed = [line for line in stdout.splitlines() if "RESULT" not in line and "loss" in line]
    assert printed and all(line.startswith("[0] ") for line in printed)  # epochs and evaluate: process 0 only
    assert (out / "log0.csv").read_text().count("\n") == 3  # header and two epochs
    assert not (out / "log1.csv").exists() and not (out / "p1").exists()
    assert (out / "p0" / "ckpt.npz").is_file() and (out / "ckpt_orbax").is_dir()
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") or "tmp" in p.name]
    assert leftovers == []


def test_arrays_sharded_over_processes_are_written_shard_by_shard(runs):
    from jaxnet_lite import checkpoint

    for index, result in runs["b"].items():
        spread = result["spread"]
        assert spread["is_dir"] and spread["same_sharding"]  # chosen automatically: an Orbax directory
        assert spread["mine"] == (np.arange(6).reshape(3, 2) + 10 * index).tolist()
    whole = checkpoint.restore(runs["dir"] / "b" / "spread")["w"]  # one process reads the whole array
    np.testing.assert_array_equal(whole, np.concatenate([np.arange(6).reshape(3, 2) + 10 * i for i in (0, 1)]))


def test_checkpoints_resume_across_process_counts(runs, tmp_path):
    import jax

    from jaxnet_lite import checkpoint

    a, b = runs["a"], runs["b"]
    # 1 process -> 2 processes: B restored A's Orbax checkpoint exactly, at the epoch it was saved.
    assert b[0]["restored_epoch"] == 2 and b[0]["restored"] == a["params"] == b[1]["restored"]
    # 2 processes -> 1 process (this one, one device): both of B's checkpoints restore B's params exactly.
    namespace: dict = {}
    exec(SETUP, namespace)
    for path in (runs["dir"] / "b" / "ckpt_orbax", runs["dir"] / "b" / "p0" / "ckpt.npz"):
        model = namespace["build"]()
        epoch = model.trainer.restore_checkpoint(path)
        assert epoch == 2 and checkpoint.read_metadata(path)["epoch"] == 2
        assert [np.asarray(p).tolist() for p in jax.tree.leaves(model.trainer.train_state.params)] == b[0]["params"]
        # ... and training on from there gives what B gave training on from A's checkpoint.
        model.fit(namespace["x"], namespace["y"], batch_size=16, epochs=3, initial_epoch=epoch, verbose=0)
        _close(jax.tree.leaves(model.trainer.train_state.params), b[0]["resumed"])
    # predict: what process 1 predicted for its own rows.
    restored = namespace["build"]()
    restored.trainer.restore_checkpoint(runs["dir"] / "b" / "ckpt_orbax")
    _close(restored.predict(namespace["x"][namespace["HALVES"][1]][:3], verbose=0), b[1]["predict"])
