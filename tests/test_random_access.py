"""Random-access sources (`.npy` files, record sequences, tfds), their sampler and prefetching, and `fit`,
`evaluate`, `predict` and validation reading them batch by batch."""

from __future__ import annotations

import signal
import threading

import numpy as np
import pytest

from jaxnet_lite import Sequential
from jaxnet_lite.callbacks import Callback
from jaxnet_lite.data import EpochSampler, MemmapSource, Prefetch, RecordSource
from jaxnet_lite.datasets import tfds as jnl_tfds
from jaxnet_lite.layers import Dense, Flatten

N, FEATURES = 150, 6


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, FEATURES)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0).astype(np.int32)
    return x, y


@pytest.fixture(scope="module")
def files(arrays, tmp_path_factory):
    folder = tmp_path_factory.mktemp("npy")
    np.save(folder / "x.npy", arrays[0])
    np.save(folder / "y.npy", arrays[1])
    return folder / "x.npy", folder / "y.npy"


def model(seed: int = 0, inputs: int = FEATURES):
    m = Sequential([Dense(8, input_shape=(inputs,), activation="relu"), Dense(3, activation="softmax")])
    m.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"], seed=seed)
    return m


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "jaxnet_lite-prefetch" and t.is_alive()]


# -- the sampler ----------------------------------------------------------------------------------------


def test_order_is_reproducible_from_the_seed_and_new_each_epoch():
    a, b = EpochSampler(100, 10, seed=3), EpochSampler(100, 10, seed=3)
    for epoch in range(3):
        np.testing.assert_array_equal(a.order(epoch), b.order(epoch))
        np.testing.assert_array_equal(np.sort(a.order(epoch)), np.arange(100))  # a permutation
        index, weight = a.epoch(epoch)
        np.testing.assert_array_equal(index.ravel(), a.order(epoch))
        assert weight.sum() == 100
    assert not np.array_equal(a.order(0), a.order(1))
    assert not np.array_equal(a.order(0), EpochSampler(100, 10, seed=4).order(0))
    np.testing.assert_array_equal(EpochSampler(100, 10, shuffle=False).order(5), np.arange(100))


@pytest.mark.parametrize("processes, batch, padded", [(1, 12, 12), (2, 12, 12), (4, 12, 16), (3, 9, 12)])
def test_processes_split_every_global_batch_exactly(processes, batch, padded):
    n = 50  # 50 / batch leaves a short last batch, filled with weight-0 rows
    parts = [EpochSampler(n, batch, seed=7, process_index=p, process_count=processes, padded_batch_size=padded)
             for p in range(processes)]
    order = parts[0].order(2)
    tables = [part.epoch(2) for part in parts]
    assert {t[0].shape for t in tables} == {(parts[0].steps, padded // processes)}  # equal parts
    for step in range(parts[0].steps):
        index = np.concatenate([t[0][step] for t in tables])
        weight = np.concatenate([t[1][step] for t in tables])
        real = index[weight == 1]
        np.testing.assert_array_equal(real, order[step * batch:(step + 1) * batch])  # the global batch, once
        assert set(index[weight == 0]) <= set(range(n))  # fillers are real rows, weighted 0
    assert sum(t[1].sum() for t in tables) == n


def test_sampler_errors_name_the_argument():
    with pytest.raises(ValueError, match="batch_size=10 does not split evenly across 4 processes"):
        EpochSampler(100, 10, process_index=0, process_count=4)
    with pytest.raises(ValueError, match=r"batch_size=64 is larger than the source's 40 examples: each of the 2 "
                                         r"processes would read 32 examples per step from its share of 20"):
        EpochSampler(40, 64, process_index=1, process_count=2)
    with pytest.raises(ValueError, match="process_index=2 must be below process_count=2"):
        EpochSampler(40, 4, process_index=2, process_count=2)
    with pytest.raises(ValueError, match=r"steps_per_epoch=5 asks for more batches .* \(4\)"):
        EpochSampler(40, 10, steps=5)


# -- sources --------------------------------------------------------------------------------------------


def test_memmap_source_reads_rows_in_the_asked_order(files, arrays, tmp_path):
    x, y = arrays
    source = MemmapSource(*files)
    assert len(source) == N and source._x_file is not None  # read by positional reads, not the map
    index = np.array([149, 3, 3, 0, 77, 76, 78, -1])
    bx, by = source[index]
    np.testing.assert_array_equal(bx, x[index])
    np.testing.assert_array_equal(by, y[index])
    np.testing.assert_array_equal(source[5][0], x[5])
    np.testing.assert_array_equal(source[10:13][1], y[10:13])
    wide = np.arange(20 * 4096, dtype=np.float32).reshape(20, 4096)  # 16 KiB rows: far apart, read one by one
    np.save(tmp_path / "wide.npy", wide)
    far = np.array([19, 5, 0, 6, 12])
    np.testing.assert_array_equal(MemmapSource(tmp_path / "wide.npy", np.arange(20))[far][0], wide[far])
    np.save(tmp_path / "f.npy", np.asfortranarray(x))  # Fortran order: rows are not contiguous, the map serves
    fortran = MemmapSource(tmp_path / "f.npy", files[1])
    assert fortran._x_file is None
    np.testing.assert_array_equal(fortran[index][0], x[index])
    np.testing.assert_array_equal(MemmapSource(x, y)[index][0], x[index])  # arrays in memory too
    with pytest.raises(IndexError, match=r"indices must lie in \[-150, 150\), got 3..150"):
        source[np.array([3, 150])]


def test_memmap_source_errors(files, tmp_path):
    np.save(tmp_path / "short.npy", np.zeros(149, np.int32))
    with pytest.raises(ValueError, match=r"x has 150 examples \(shape \(150, 6\)\) but y has 149 \(shape \(149,\)\)"):
        MemmapSource(files[0], tmp_path / "short.npy")
    with pytest.raises(FileNotFoundError, match="y file .*missing.npy' does not exist"):
        MemmapSource(files[0], tmp_path / "missing.npy")


def test_record_source_takes_pairs_dicts_and_sequences_without_getitems(arrays):
    x, y = arrays
    pairs = RecordSource([(x[i], y[i]) for i in range(N)])
    dicts = RecordSource([{"f": x[i], "label": y[i], "id": i} for i in range(N)], keys=("f", "label"))
    index = np.array([4, 1, 4])
    for source in (pairs, dicts):
        bx, by = source[index]
        np.testing.assert_array_equal(bx, x[index])
        np.testing.assert_array_equal(by, y[index])
    with pytest.raises(ValueError, match=r"pass keys=\(x_key, y_key\)"):
        RecordSource([{"f": x[0], "label": 0}])[np.array([0])]


# -- prefetching ----------------------------------------------------------------------------------------


def test_prefetch_keeps_order_and_raises_the_producers_error_at_its_item():
    def items():
        yield from range(5)
        raise RuntimeError("read failed at item 5")

    got = []
    with pytest.raises(RuntimeError, match="read failed at item 5"), Prefetch(items()) as queue:
        for item in queue:
            got.append(item)
    assert got == [0, 1, 2, 3, 4]
    assert not prefetch_threads()


def test_prefetch_stops_an_endless_producer_on_break_and_on_an_exception():
    made = []

    def endless():
        i = 0
        while True:
            made.append(i)
            yield i
            i += 1

    with Prefetch(endless(), size=2) as queue:
        for item in queue:
            if item == 3:
                break
    assert not prefetch_threads()
    assert len(made) <= 4 + 3  # at most the queue (2) and the item in hand ran ahead
    with pytest.raises(KeyboardInterrupt), Prefetch(endless()) as queue:
        for item in queue:
            raise KeyboardInterrupt
    assert not prefetch_threads()


# -- fit, evaluate, predict -----------------------------------------------------------------------------


def test_fit_from_files_matches_fit_from_the_same_arrays(files, arrays):
    """Unshuffled, the batches are the same, so the numbers are too: the source path adds no error."""
    x, y = arrays
    a, b = model(), model()
    h_arrays = a.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, validation_data=(x[:40], y[:40]))
    source = MemmapSource(*files)
    h_source = b.fit(source, batch_size=32, epochs=2, shuffle=False, verbose=0,
                     validation_data=MemmapSource(x[:40], y[:40]))
    for key in h_arrays.history:
        np.testing.assert_allclose(h_source.history[key], h_arrays.history[key], rtol=1e-6)
    np.testing.assert_allclose(b.evaluate(source, verbose=0), a.evaluate(x, y, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(b.predict(source, batch_size=64, verbose=0), a.predict(x, verbose=0), atol=1e-6)


def test_shuffled_fit_is_reproducible_and_shuffles(files):
    def run(seed, shuffle=True):
        m = model(seed=seed)  # the source's order comes from the trainer's seed
        m.fit(MemmapSource(*files), batch_size=16, epochs=2, steps_per_epoch=5, shuffle=shuffle, verbose=0)
        return m.get_weights()

    first, again, unshuffled = run(1), run(1), run(1, shuffle=False)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, unshuffled))


def test_fit_from_a_source_reports_bad_input_clearly(files, tmp_path):
    source = MemmapSource(*files)
    with pytest.raises(ValueError, match=r"fit: MemmapSource\(x float32\[150, 6\], y int32\[150\]\): "
                                         r"Sequential 'sequential.*' expects input shape \(4,\).*got \(6,\)"):
        model(inputs=4).fit(source, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match=r"fit: batch_size=200 is larger than the source's 150 examples"):
        model().fit(source, batch_size=200, verbose=0)
    with pytest.raises(ValueError, match="fit: x is a MemmapSource, whose examples carry their labels; leave y out"):
        model().fit(source, np.zeros(150), verbose=0)
    np.save(tmp_path / "bad.npy", np.where(np.arange(150)[:, None] == 120, np.nan, 1.0).repeat(6, 1).astype("f4"))
    with pytest.raises(ValueError, match=r"fit: batch \d+ of MemmapSource.*: x contains NaN values"):
        model().fit(MemmapSource(tmp_path / "bad.npy", files[1]), batch_size=16, shuffle=False, verbose=0)
    assert not prefetch_threads()
    uncompiled = Sequential([Dense(3, input_shape=(FEATURES,))])
    with pytest.raises(ValueError, match="predict: .*random-access sources need a compiled model"):
        uncompiled.predict(source)


def test_ctrl_c_stops_fit_from_a_source_and_its_reader(files):
    class CtrlC(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                signal.raise_signal(signal.SIGINT)

    m = model()
    history = m.fit(MemmapSource(*files), batch_size=8, epochs=3, callbacks=[CtrlC()], verbose=0)
    assert history.epoch == []
    assert not prefetch_threads()


def test_tfds_source_reads_a_locally_built_array_record_dataset(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    pytest.importorskip("array_record")

    class JaxnetLiteTinyRecords(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(4, 4, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=3)}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(60)}

        def _generate_examples(self, n):
            for i in range(n):
                yield i, {"image": np.full((4, 4, 1), i, np.uint8), "label": i % 3}

    JaxnetLiteTinyRecords(data_dir=tmp_path, file_format="array_record").download_and_prepare()
    source = jnl_tfds.source("jaxnet_lite_tiny_records", data_dir=tmp_path)
    assert len(source) == 60 and hasattr(source.records, "__getitems__")
    images, labels = jnl_tfds.load("jaxnet_lite_tiny_records", data_dir=tmp_path)
    index = np.array([59, 0, 31, 0])
    x, y = source[index]
    assert x.shape == (4, 4, 4)  # the grayscale channel squeezed, as `load` gives it
    np.testing.assert_array_equal(x, images[index])
    np.testing.assert_array_equal(y, labels[index])
    np.testing.assert_array_equal(y, x[:, 0, 0] % 3)  # each example's label belongs to its image

    m = Sequential([Flatten(input_shape=(4, 4)), Dense(3, activation="softmax")])
    m.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = m.fit(source, batch_size=20, epochs=2, verbose=0, validation_data=source)
    assert len(history.history["val_loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert m.predict(source, verbose=0).shape == (60, 3)
