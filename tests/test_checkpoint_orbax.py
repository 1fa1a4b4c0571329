"""Orbax checkpoint directories behind `jaxnet_lite.checkpoint`: the same names, checks and promises as the
`.npz` files (no pickle, atomic, mismatches listed), in one process. tests/test_multiprocess.py writes
and reads them across 1 and 2 processes."""

from __future__ import annotations

import pickle
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet_lite import Sequential, checkpoint
from jaxnet_lite.callbacks import ModelCheckpoint
from jaxnet_lite.layers import Dense

ocp = pytest.importorskip("orbax.checkpoint", reason="Orbax checkpoints need orbax-checkpoint (the test extra)")


def _model(seed: int = 0) -> Sequential:
    model = Sequential([Dense(4, input_shape=(3,), activation="relu"), Dense(2)])
    model.compile(loss="mse", optimizer="adam")
    return model


def _tree() -> dict:
    return {"w": jnp.arange(6.0).reshape(2, 3), "half": jnp.ones(3, jnp.bfloat16), "key": jax.random.key(7),
            "n": np.int32(5), "nested": [jnp.zeros(2), (jnp.ones((1, 1)),)]}


def _leaves_equal(a, b) -> bool:
    def data(x):
        is_key = jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        return np.asarray(jax.random.key_data(x) if is_key else x)

    return all(np.array_equal(data(x), data(y)) and x.dtype == y.dtype for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_a_directory_path_round_trips_every_kind_of_leaf(tmp_path):
    path = checkpoint.save(str(tmp_path / "ckpt") + "/", _tree(), metadata={"epoch": 3})
    assert path.is_dir() and checkpoint.read_metadata(path) == {"epoch": 3}
    assert checkpoint.read_entries(path) == ["half", "key", "n", "nested", "w"]  # dict keys sorted, as JAX flattens
    target = _tree()
    restored = checkpoint.restore(path, target=target)
    assert jax.tree.structure(restored) == jax.tree.structure(target) and _leaves_equal(restored, target)
    plain = checkpoint.restore(path)  # no target: plain containers, as saved
    assert plain["nested"][1][0].shape == (1, 1) and plain["half"].dtype == jnp.bfloat16
    assert jax.dtypes.issubdtype(plain["key"].dtype, jax.dtypes.prng_key)
    assert set(checkpoint.restore(path, only=("w",))) == {"w"}


def test_format_orbax_takes_a_path_without_a_slash(tmp_path):
    checkpoint.save(tmp_path / "state", _tree(), format="orbax")
    assert (tmp_path / "state").is_dir() and _leaves_equal(checkpoint.restore(tmp_path / "state", _tree()), _tree())
    with pytest.raises(checkpoint.CheckpointError, match="format must be 'npz', 'orbax' or None"):
        checkpoint.save(tmp_path / "x", _tree(), format="zip")


def test_a_mismatch_lists_missing_extra_and_reshaped_leaves(tmp_path):
    checkpoint.save(tmp_path / "ckpt", {"a": jnp.zeros((2, 3)), "b": jnp.zeros(4)}, format="orbax")
    with pytest.raises(checkpoint.CheckpointMismatchError) as info:
        checkpoint.restore(tmp_path / "ckpt", target={"a": jnp.zeros((3, 2)), "c": jnp.zeros(1)})
    problems = "\n".join(info.value.problems)
    assert "'a': shape (2, 3) in checkpoint vs (3, 2) expected" in problems
    assert "missing from checkpoint: 'c'" in problems and "unexpected in checkpoint: 'b'" in problems


def test_saving_over_a_checkpoint_replaces_it_whole_and_leaves_nothing_beside_it(tmp_path):
    path = tmp_path / "ckpt"
    checkpoint.save(path, {"a": jnp.zeros(2)}, metadata={"v": 1}, format="orbax")
    checkpoint.save(path, {"b": jnp.ones(3)}, metadata={"v": 2}, format="orbax")
    assert checkpoint.read_metadata(path) == {"v": 2} and checkpoint.read_entries(path) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    checkpoint.save(path, {"a": jnp.zeros(2)}, metadata={"v": 1}, format="orbax")
    real_save = ocp.Checkpointer.save

    def crash(self, directory, *args, **kwargs):
        real_save(self, directory, *args, **kwargs)  # the new checkpoint is written in full, then ...
        raise OSError("disk gone")  # ... the writer dies before it is moved into place

    monkeypatch.setattr(ocp.Checkpointer, "save", crash)
    with pytest.raises(OSError, match="disk gone"):
        checkpoint.save(path, {"a": jnp.ones(2)}, metadata={"v": 2}, format="orbax")
    monkeypatch.undo()
    assert checkpoint.read_metadata(path) == {"v": 1}
    np.testing.assert_array_equal(checkpoint.restore(path, {"a": jnp.zeros(2)})["a"], np.zeros(2))
    checkpoint.save(path, {"a": jnp.ones(2)}, metadata={"v": 3}, format="orbax")  # the leftover is cleared
    assert checkpoint.read_metadata(path) == {"v": 3} and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_no_pickle_is_used_to_write_or_read(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle used")

    for name in ("dump", "dumps", "load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)
    checkpoint.save(tmp_path / "ckpt", _tree(), format="orbax")
    assert _leaves_equal(checkpoint.restore(tmp_path / "ckpt", _tree()), _tree())


def test_model_weights_and_model_checkpoint_take_directory_paths(tmp_path):
    model = _model()
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[ModelCheckpoint(str(tmp_path / "ckpt_{epoch}") + "/")])
    assert (tmp_path / "ckpt_2").is_dir() and checkpoint.read_metadata(tmp_path / "ckpt_2")["epoch"] == 2
    fresh = _model()
    assert fresh.trainer.restore_checkpoint(tmp_path / "ckpt_2") == 2
    assert _leaves_equal(fresh.trainer.train_state.params, model.trainer.train_state.params)
    model.save_weights(str(tmp_path / "weights") + "/")
    other = _model()
    other.load_weights(tmp_path / "weights")
    assert _leaves_equal(other.get_weights(), model.get_weights())


def test_npz_files_need_no_orbax(tmp_path, monkeypatch):
    checkpoint.save(str(tmp_path / "o") + "/", {"a": jnp.ones(2)}, metadata={"v": 1})
    monkeypatch.setitem(sys.modules, "orbax", None)
    monkeypatch.setitem(sys.modules, "orbax.checkpoint", None)
    checkpoint.save(tmp_path / "a.npz", {"a": jnp.ones(2)})
    np.testing.assert_array_equal(checkpoint.restore(tmp_path / "a.npz")["a"], np.ones(2))
    with pytest.raises(ImportError, match=r"pip install 'jaxnet_lite\[distributed\]'"):
        checkpoint.save(str(tmp_path / "d") + "/", {"a": jnp.ones(2)})
    # An Orbax checkpoint's header is plain JSON: what it holds can be read without Orbax (and by one process).
    assert checkpoint.read_metadata(tmp_path / "o") == {"v": 1} and checkpoint.read_entries(tmp_path / "o") == ["a"]


def test_a_directory_of_other_files_is_never_replaced(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(checkpoint.CheckpointError, match="holding other files"):
        checkpoint.save(str(folder) + "/", {"a": jnp.ones(2)})
    with pytest.raises(IsADirectoryError):  # no slash, no format: an .npz file, which cannot replace a folder
        checkpoint.save(folder, {"a": jnp.ones(2)})
    assert (folder / "notes.txt").read_text() == "keep me"
