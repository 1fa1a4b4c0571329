"""Tests for jaxnet_lite.checkpoint: round trips, atomic writes and refusals."""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnet_lite import Sequential, checkpoint
from jaxnet_lite.callbacks import ModelCheckpoint
from jaxnet_lite.checkpoint import CheckpointError
from jaxnet_lite.layers import BatchNormalization, Dense

REPO_ROOT = Path(__file__).resolve().parents[1]


def _params() -> dict:
    k1, k2 = jax.random.split(jax.random.key(1))
    return {
        "dense": {"kernel": jax.random.normal(k1, (4, 3)), "bias": jnp.arange(3.0)},
        "embed": {"table": jax.random.normal(k2, (5, 2)).astype(jnp.bfloat16)},
        "counts": jnp.arange(6, dtype=jnp.int32).reshape(2, 3),
    }


def _assert_same(a: Any, b: Any) -> None:
    """Same treedef, and every leaf has the same dtype, shape and bits."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype and x.shape == y.shape
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        bits = lambda v: np.asarray(v).reshape(-1).view(np.uint8)  # noqa: E731
        np.testing.assert_array_equal(bits(x), bits(y))


def _temp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------- round trips


def test_params_round_trip_keeps_dtypes_and_bits(tmp_path):
    params = _params()
    path = checkpoint.save(tmp_path / "params.npz", params)
    assert path == tmp_path / "params.npz"
    restored = checkpoint.restore(path)
    _assert_same(restored, params)
    assert restored["embed"]["table"].dtype == jnp.bfloat16
    assert isinstance(restored["dense"]["kernel"], jax.Array)
    _assert_same(checkpoint.restore(path, target=params), params)


def test_float64_round_trip_under_x64(tmp_path):
    with jax.enable_x64(True):
        params = {"w": jnp.array([1 / 3, 1e-300, np.pi], dtype=jnp.float64), "n": jnp.int64(2**40)}
        checkpoint.save(tmp_path / "x64", params)
        restored = checkpoint.restore(tmp_path / "x64", target=params)
        assert restored["w"].dtype == jnp.float64 and restored["n"].dtype == jnp.int64
        _assert_same(restored, params)


def test_layer_state_round_trip(tmp_path):
    state = {
        "batch_norm": {"mean": jnp.full((8,), 0.5), "var": jnp.ones((8,))},
        "dropout": {},
        "dense": {},
    }
    checkpoint.save(tmp_path / "state", state)
    _assert_same(checkpoint.restore(tmp_path / "state"), state)
    _assert_same(checkpoint.restore(tmp_path / "state", target=state), state)


def test_optax_adam_state_round_trip_rebuilds_namedtuples(tmp_path):
    params = _params()
    params = {k: v for k, v in params.items() if k != "counts"}  # adam needs floats
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    _, opt_state = opt.update(grads, opt_state, params)
    checkpoint.save(tmp_path / "opt", opt_state)

    target = opt.init(params)
    restored = checkpoint.restore(tmp_path / "opt", target=target)
    assert type(restored[0]) is optax.ScaleByAdamState
    assert type(restored[1]) is optax.EmptyState
    assert int(restored[0].count) == 1
    _assert_same(restored, opt_state)

    plain = checkpoint.restore(tmp_path / "opt")  # NamedTuples come back as dicts
    assert set(plain[0]) == {"count", "mu", "nu"} and plain[1] == {}
    mu = opt_state[0].mu["dense"]["kernel"]
    np.testing.assert_array_equal(plain[0]["mu"]["dense"]["kernel"], mu)


class TrainState(NamedTuple):
    step: Any
    params: Any
    opt_state: Any
    rng: Any


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class DataclassState:
    step: Any
    rng: Any
    params: Any


def test_train_state_with_typed_prng_key_and_step(tmp_path):
    params = {"w": jnp.ones((2, 2))}
    state = TrainState(
        step=jnp.asarray(7, jnp.int32),
        params=params,
        opt_state=optax.adam(1e-3).init(params),
        rng=jax.random.key(0),
    )
    checkpoint.save(tmp_path / "train", state)
    restored = checkpoint.restore(tmp_path / "train", target=state)
    assert isinstance(restored, TrainState)
    _assert_same(restored, state)
    assert jax.random.key_impl(restored.rng) == jax.random.key_impl(state.rng)
    draw = lambda key: jax.random.normal(key, (3,))  # noqa: E731
    np.testing.assert_array_equal(draw(restored.rng), draw(state.rng))

    # An abstract target works too, and Python-int steps accept any stored int width.
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    _assert_same(checkpoint.restore(tmp_path / "train", target=abstract), state)


def test_registered_dataclass_with_key_batch_and_python_step(tmp_path):
    keys = jax.random.split(jax.random.key(0), 4)
    state = DataclassState(step=3, rng=keys, params={"b": jnp.zeros(2)})
    checkpoint.save(tmp_path / "dc", state)
    target = DataclassState(step=0, rng=keys, params=state.params)
    restored = checkpoint.restore(tmp_path / "dc", target=target)
    assert isinstance(restored, DataclassState) and int(restored.step) == 3
    np.testing.assert_array_equal(jax.random.key_data(restored.rng), jax.random.key_data(state.rng))
    plain = checkpoint.restore(tmp_path / "dc")
    assert set(plain) == {"step", "rng", "params"} and plain["rng"].shape == (4,)


def test_restore_without_target_rebuilds_plain_containers(tmp_path):
    tree = {
        "a": [jnp.zeros(1), (jnp.ones(2), None)],
        "empty": {},
        "nested": {"e": {}, "t": ()},
        "ints": {3: 1.5},
    }
    checkpoint.save(tmp_path / "plain", tree)
    restored = checkpoint.restore(tmp_path / "plain")
    assert isinstance(restored["a"], list) and isinstance(restored["a"][1], tuple)
    assert restored["a"][1][1] is None
    assert restored["empty"] == {} and restored["nested"] == {"e": {}, "t": ()}
    assert float(restored["ints"][3]) == 1.5  # int dict keys stay ints
    _assert_same(restored, jax.tree.map(jnp.asarray, tree))


def test_keys_are_readable_and_do_not_collide(tmp_path):
    tree = {"a/b": jnp.zeros(1), "a": {"b": jnp.ones(1)}, "~1": jnp.full(1, 2.0)}
    checkpoint.save(tmp_path / "keys", tree)
    names = zipfile.ZipFile(tmp_path / "keys").namelist()
    assert {"a~1b.npy", "a/b.npy", "~01.npy", "__jaxnet_lite_metadata__.npy"} == set(names)
    _assert_same(checkpoint.restore(tmp_path / "keys"), tree)
    _assert_same(checkpoint.restore(tmp_path / "keys", target=tree), tree)


def test_file_is_a_plain_npz_loadable_without_pickle(tmp_path):
    checkpoint.save(tmp_path / "ck", _params())
    with np.load(tmp_path / "ck", allow_pickle=False) as npz:
        assert npz["dense/kernel"].dtype == np.float32
        assert npz["embed/table"].dtype == np.uint16  # bfloat16 stored as its bits
        assert npz["__jaxnet_lite_metadata__"].dtype == np.uint8


def test_path_is_kept_exactly_and_parents_are_created(tmp_path):
    path = checkpoint.save(str(tmp_path / "deep" / "dir" / "ckpt"), {"w": jnp.ones(2)})
    assert path == tmp_path / "deep" / "dir" / "ckpt" and path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt"]


def test_metadata_round_trip(tmp_path):
    meta = {"epoch": 3, "loss": 0.25, "tags": ["a", "b"], "nested": {"lr": 1e-3}}
    checkpoint.save(tmp_path / "m", {"w": jnp.ones(1)}, metadata=meta)
    assert checkpoint.read_metadata(tmp_path / "m") == meta
    checkpoint.save(tmp_path / "none", {"w": jnp.ones(1)})
    assert checkpoint.read_metadata(tmp_path / "none") == {}
    with pytest.raises(CheckpointError, match="JSON"):
        checkpoint.save(tmp_path / "bad", {"w": jnp.ones(1)}, metadata={"x": object()})
    assert not (tmp_path / "bad").exists()


def test_save_refuses_leaves_it_cannot_store(tmp_path):
    with pytest.raises(CheckpointError, match=r"\['layer'\]\['name'\].*str"):
        checkpoint.save(tmp_path / "s", {"layer": {"name": "dense", "w": jnp.ones(1)}})
    with pytest.raises(CheckpointError, match=r"\['obj'\]"):
        checkpoint.save(tmp_path / "s", {"obj": np.array([{"x": 1}], dtype=object)})
    assert not (tmp_path / "s").exists() and _temp_files(tmp_path) == []
    # Python and NumPy scalars are fine (0-d arrays).
    checkpoint.save(tmp_path / "s", {"i": 1, "f": 2.5, "b": True, "n": np.float16(0.5)})
    restored = checkpoint.restore(tmp_path / "s")
    assert restored["n"].dtype == jnp.float16 and bool(restored["b"]) is True


# ------------------------------------------------------------- atomicity


def test_failed_array_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"w": jnp.zeros(4), "b": jnp.zeros(2)})
    real_write, calls = checkpoint._write_array, []

    def crash_midway(fp, arr):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        real_write(fp, arr)

    monkeypatch.setattr(checkpoint, "_write_array", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, {"w": jnp.ones(4), "b": jnp.ones(2)})
    assert len(calls) == 2
    np.testing.assert_array_equal(checkpoint.restore(path)["w"], np.zeros(4))
    assert _temp_files(tmp_path) == []


def test_failed_replace_leaves_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck"
    checkpoint.save(path, {"w": jnp.zeros(3)})

    def boom(src, dst):
        raise OSError("crash before rename")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="crash before rename"):
        checkpoint.save(path, {"w": jnp.ones(3)})
    monkeypatch.undo()
    np.testing.assert_array_equal(checkpoint.restore(path)["w"], np.zeros(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


_WRITER = """
import sys, time
import numpy as np
from jaxnet_lite import checkpoint

real_write = checkpoint._write_array

def slow_disk(fp, arr):  # on the 3rd save, stall after the first array is written
    real_write(fp, arr)
    if arr.dtype == np.float32 and arr[0] == 3:
        print("mid-write", flush=True)
        time.sleep(30)

checkpoint._write_array = slow_disk
for i in range(1, 10):
    tree = {"a": np.full(1 << 20, i, np.float32), "b": np.full(1 << 19, i, np.int32)}
    checkpoint.save(sys.argv[1], tree)
    print(f"saved {i}", flush=True)
"""


def test_sigkill_while_writing_leaves_a_complete_checkpoint(tmp_path):
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"a": np.zeros(1 << 20, np.float32), "b": np.zeros(1 << 19, np.int32)})
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or lines[-1] != "mid-write":
            line = proc.stdout.readline()
            assert line, f"writer died early: {proc.stderr.read()}"
            lines.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert lines == ["saved 1", "saved 2", "mid-write"]
    assert _temp_files(tmp_path), "the kill should have landed mid-write"
    restored = checkpoint.restore(path)  # save 2, complete; save 3 never landed
    np.testing.assert_array_equal(restored["a"], np.full(1 << 20, 2, np.float32))
    np.testing.assert_array_equal(restored["b"], np.full(1 << 19, 2, np.int32))


def _assert_names_path_not_temporary(err: BaseException, path: Path) -> None:
    assert f"'{path}'" in str(err) and ".tmp" not in str(err), str(err)


def test_save_errors_name_the_path_not_the_temporary(tmp_path, monkeypatch):
    tree = {"w": jnp.ones(3)}
    (tmp_path / "a_dir").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        checkpoint.save(tmp_path / "a_dir", tree)
    _assert_names_path_not_temporary(info.value, tmp_path / "a_dir")

    path = tmp_path / "ck.npz"

    def read_only_dir(dir, prefix, suffix):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, prefix + "abc" + suffix))

    monkeypatch.setattr(tempfile, "mkstemp", read_only_dir)
    with pytest.raises(PermissionError) as info:
        checkpoint.save(path, tree)
    _assert_names_path_not_temporary(info.value, path)
    monkeypatch.undo()

    def disk_full(fp, arr):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write_array", disk_full)
    with pytest.raises(OSError, match="No space left on device") as info:
        checkpoint.save(path, tree)
    assert info.value.errno == errno.ENOSPC
    _assert_names_path_not_temporary(info.value, path)
    monkeypatch.undo()

    with pytest.raises(CheckpointError, match=r"\['name'\]") as info:
        checkpoint.save(path, {"name": "dense"})
    _assert_names_path_not_temporary(info.value, path)
    assert _temp_files(tmp_path) == [] and not path.exists()


_KILLED_WRITER = """
import sys, time
import numpy as np
from jaxnet_lite import checkpoint

real_write = checkpoint._write_array

def slow_disk(fp, arr):  # a slow disk: each array takes a while to land
    real_write(fp, arr)
    print("wrote", flush=True)
    time.sleep(30)

checkpoint._write_array = slow_disk
checkpoint.save(sys.argv[1], {f"layer{i}": np.full(1 << 21, i, np.float32) for i in range(8)})
print("saved", flush=True)
"""


def test_next_save_removes_the_temporary_of_a_killed_save(tmp_path):
    path = tmp_path / "big.npz"
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "wrote", proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    (orphan,) = _temp_files(tmp_path)
    assert (tmp_path / orphan).stat().st_size >= 8 << 20 and not path.exists()  # killed mid-write

    checkpoint.save(path, {"w": jnp.arange(3.0)})
    assert _temp_files(tmp_path) == []
    np.testing.assert_array_equal(checkpoint.restore(path)["w"], np.arange(3.0))


# ------------------------------------------------------------- refusals


@pytest.fixture
def saved(tmp_path) -> Path:
    path = tmp_path / "model.npz"
    checkpoint.save(path, {"dense": {"kernel": jnp.ones((128, 128)), "bias": jnp.zeros(128)}})
    return path


def test_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        checkpoint.restore(path)
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        checkpoint.read_metadata(path)


def test_flipped_bytes_are_detected(saved):
    data = bytearray(saved.read_bytes())
    middle = len(data) // 2  # inside the 64 KiB kernel
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted") as info:
        checkpoint.restore(saved)
    assert str(saved) in str(info.value)


def test_garbage_file_is_refused(saved):
    saved.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="not a jaxnet_lite checkpoint") as info:
        checkpoint.restore(saved)
    assert str(saved) in str(info.value)


def test_truncated_file_is_refused(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted or truncated") as info:
        checkpoint.restore(saved)
    assert str(saved) in str(info.value)


def test_pickled_npz_is_refused_and_never_unpickled(tmp_path, monkeypatch):
    path = tmp_path / "evil.npz"
    np.savez(path, a=np.array([{"x": 1}], dtype=object))
    import pickle

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle must never be used")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    for read in (checkpoint.restore, checkpoint.read_metadata):
        with pytest.raises(CheckpointError, match="pickled data is refused") as info:
            read(path)
        assert str(path) in str(info.value) and "'a'" in str(info.value)


def test_plain_npz_without_metadata_is_refused(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.ones(3))
    expected = "not a jaxnet_lite checkpoint: no '__jaxnet_lite_metadata__' entry"
    with pytest.raises(CheckpointError, match=expected) as info:
        checkpoint.restore(path)
    assert str(path) in str(info.value)


def test_non_zip_file_is_refused(tmp_path):
    path = tmp_path / "weights.npy"
    np.save(path, np.ones(3))
    with pytest.raises(CheckpointError, match="not an .npz") as info:
        checkpoint.restore(path)
    assert str(path) in str(info.value)


def test_mismatched_target_lists_every_problem(saved):
    target = {
        "dense": {"kernel": jnp.ones((128, 64)), "b": jnp.zeros(128)},  # shape; renamed bias
    }
    with pytest.raises(CheckpointError) as info:
        checkpoint.restore(saved, target=target)
    msg = str(info.value)
    assert str(saved) in msg and "3 mismatch" in msg
    assert "missing from checkpoint: 'dense/b'" in msg
    assert "unexpected in checkpoint: 'dense/bias'" in msg
    assert "'dense/kernel': shape (128, 128) in checkpoint vs (128, 64) expected" in msg

    target = {"dense": {
        "kernel": jax.ShapeDtypeStruct((128, 128), jnp.bfloat16),
        "bias": jnp.zeros(128, jnp.int32),
    }}
    with pytest.raises(CheckpointError) as info:
        checkpoint.restore(saved, target=target)
    msg = str(info.value)
    assert "'dense/kernel': dtype float32 in checkpoint vs bfloat16 expected" in msg
    assert "'dense/bias': dtype float32 in checkpoint vs int32 expected" in msg


def test_many_mismatches_are_capped_with_a_count(tmp_path):
    checkpoint.save(tmp_path / "big", {f"w{i:02d}": jnp.zeros(1) for i in range(15)})
    with pytest.raises(CheckpointError) as info:
        checkpoint.restore(tmp_path / "big", target={f"w{i:02d}": jnp.zeros(2) for i in range(15)})
    msg = str(info.value)
    assert "15 mismatch" in msg and "... and 5 more" in msg
    assert "'w09'" in msg and "'w10'" not in msg


def test_typed_key_restored_against_a_float_target_is_refused(tmp_path):
    checkpoint.save(tmp_path / "k", {"rng": jax.random.key(0)})
    with pytest.raises(CheckpointError, match=r"'rng': .*key<fry> in checkpoint vs float32"):
        checkpoint.restore(tmp_path / "k", target={"rng": jnp.zeros(())})


def test_reserved_name_and_directory_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="reserved"):
        checkpoint.save(tmp_path / "r", {"__jaxnet_lite_metadata__": jnp.ones(1)})
    with pytest.raises(CheckpointError, match="is a directory") as info:
        checkpoint.restore(tmp_path)
    assert str(tmp_path) in str(info.value)


# ------------------------------------------------------------- partial restore and load_weights


def test_restore_only_reads_the_named_entries(tmp_path, monkeypatch):
    params = {"w": jnp.ones((2, 2))}
    state = TrainState(step=jnp.asarray(3), params=params, opt_state=optax.adam(1e-3).init(params),
                       rng=jax.random.key(0))
    path = checkpoint.save(tmp_path / "train", state)
    assert checkpoint.read_entries(path) == ["step", "params", "opt_state", "rng"]
    read, real_read = [], checkpoint._read_member
    monkeypatch.setattr(checkpoint, "_read_member", lambda zf, key: read.append(key) or real_read(zf, key))

    restored = checkpoint.restore(path, target={"params": params}, only=["params"])
    _assert_same(restored, {"params": params})
    assert set(read) == {"__jaxnet_lite_metadata__", "params/w"}  # the optimizer state stays on disk
    assert int(checkpoint.restore(path, only=["step"])["step"]) == 3
    with pytest.raises(CheckpointError, match="no top-level entry 'nope'.*'step', 'params'"):
        checkpoint.restore(path, only=["nope"])


def _keras_model(seed: int, width: int = 8) -> Sequential:
    model = Sequential([Dense(width, input_shape=(4,), activation="relu"), BatchNormalization(),
                        Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", seed=seed)
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    return x, np.eye(3, dtype=np.float32)[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0)]


def test_load_weights_from_model_checkpoint_and_from_save_weights(tmp_path):
    x, y = _data()
    model = _keras_model(seed=0)
    best = tmp_path / "best.keras"
    model.fit(x, y, epochs=3, validation_split=0.25, verbose=0,
              callbacks=[ModelCheckpoint(str(best), save_best_only=True)])
    assert checkpoint.read_metadata(best)["kind"] == "train_state"
    expected = _keras_model(seed=2)
    expected.trainer.restore_checkpoint(best)  # the whole training state, the best epoch's weights

    fresh = _keras_model(seed=1)
    before = fresh.predict(x, verbose=0)
    fresh.load_weights(best)
    after = fresh.predict(x, verbose=0)
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, expected.predict(x, verbose=0))

    model.save_weights(tmp_path / "weights.npz")
    fresh.load_weights(tmp_path / "weights.npz")
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


def test_load_weights_mismatch_says_which_kind_of_file(tmp_path):
    big, small = _keras_model(seed=0), _keras_model(seed=0, width=5)
    big.trainer.save_checkpoint(tmp_path / "train.keras", epoch=4)
    big.save_weights(tmp_path / "weights.npz")
    differs = r"'params/dense/kernel': shape \(4, 8\) in checkpoint vs \(4, 5\) expected"

    with pytest.raises(CheckpointError, match=rf"(?s)train.keras.*a training checkpoint \(params, state, "
                       rf"optimizer state, step, rng; saved after epoch 4\).*{differs}") as info:
        small.load_weights(tmp_path / "train.keras")
    assert "opt_state" not in str(info.value) and "unexpected" not in str(info.value)

    with pytest.raises(CheckpointError, match=rf"(?s)weights.npz.*a weights file .*{differs}"):
        small.load_weights(tmp_path / "weights.npz")

    checkpoint.save(tmp_path / "other.npz", {"kernel": jnp.ones((4, 5))})
    with pytest.raises(CheckpointError, match="other.npz' holds no model weights.*'kernel'"):
        small.load_weights(tmp_path / "other.npz")
