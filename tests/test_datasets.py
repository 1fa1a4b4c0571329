"""Tests for jaxnet_lite.datasets: IDX files, MNIST sources and cache, tfds, iris and digits.

Real MNIST comes from the project's reference data (`../shared/data`, or `$JAXNET_LITE_DATA_DIR`);
those tests skip when it is absent. Everything else uses small files written here, or
tensorflow-datasets' offline mocks. No test touches the network: `socket.create_connection` is
replaced by a fake (`network`) that connects unless a test makes it fail.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from jaxnet_lite.datasets import (
    DatasetError,
    DatasetNotFoundError,
    digits,
    fashion_mnist,
    idx,
    iris,
    mnist,
)
from jaxnet_lite.datasets import _cache, _network
from jaxnet_lite.datasets import tfds as tfds_arrays
from jaxnet_lite.files import atomic_open

DATA_DIR = Path(
    os.environ.get("JAXNET_LITE_DATA_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)
MNIST_DIR = DATA_DIR / "mnist"
needs_mnist = pytest.mark.skipif(
    not MNIST_DIR.is_dir(),
    reason=f"reference MNIST not found at {MNIST_DIR} (set JAXNET_LITE_DATA_DIR to a directory holding mnist/)",
)
MNIST_TEST_HISTOGRAM = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
# md5 of the uncompressed original train-images-idx3-ubyte (header + pixels), from shared/data/README.md.
MNIST_TRAIN_IMAGES_MD5 = "6bbc9ace898e44ae57da46a324031adb"
STEMS = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Each test gets its own cache dir and no data dir from the environment."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("JAXNET_LITE_CACHE_DIR", str(cache))
    monkeypatch.delenv("JAXNET_LITE_DATA_DIR", raising=False)
    return cache


class FakeNetwork:
    """Stands in for `socket.create_connection`: records each attempt; connects unless `error` is set."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, int], float | None]] = []
        self.error: OSError | None = None

    def __call__(self, address, timeout=None, *args, **kwargs):
        self.calls.append((tuple(address), timeout))
        if self.error is not None:
            raise self.error
        return SimpleNamespace(close=lambda: None)


@pytest.fixture(autouse=True)
def network(monkeypatch):
    """No real connections, no proxies from the environment, and a fresh once-per-process probe."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    fake = FakeNetwork()
    monkeypatch.setattr(socket, "create_connection", fake)
    _network._probe.cache_clear()
    yield fake
    _network._probe.cache_clear()


def write_mnist_like(directory: Path, *, n_train=5, n_test=3, gz=True, seed=0, **override) -> dict:
    """Write the four IDX files of a tiny MNIST-format set; `override` replaces arrays by key."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    arrays.update(override)
    directory.mkdir(parents=True, exist_ok=True)
    for key, stem in STEMS.items():
        idx.write_idx(directory / (stem + (".gz" if gz else "")), arrays[key])
    return arrays


def assert_keras_layout(data, n_train, n_test):
    (x_train, y_train), (x_test, y_test) = data
    assert x_train.shape == (n_train, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (n_train,) and y_train.dtype == np.uint8
    assert x_test.shape == (n_test, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (n_test,) and y_test.dtype == np.uint8


def assert_same(data, arrays):
    (x_train, y_train), (x_test, y_test) = data
    for key, got in zip(STEMS, (x_train, y_train, x_test, y_test)):
        np.testing.assert_array_equal(got, arrays[key], err_msg=key)


# --- real MNIST from the reference data -------------------------------------------------------


@needs_mnist
def test_mnist_from_path_matches_the_original_files():
    data = mnist.load_data(path=DATA_DIR)  # a directory holding mnist/
    assert_keras_layout(data, 60000, 10000)
    (x_train, y_train), (x_test, y_test) = data
    assert np.bincount(y_test, minlength=10).tolist() == MNIST_TEST_HISTOGRAM
    assert np.bincount(y_train, minlength=10).sum() == 60000
    header = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (60000, 28, 28))
    assert hashlib.md5(header + x_train.tobytes()).hexdigest() == MNIST_TRAIN_IMAGES_MD5
    assert 0 < x_test.mean() < 255


@needs_mnist
def test_mnist_from_env_and_from_path_to_the_files_agree(monkeypatch):
    monkeypatch.setenv("JAXNET_LITE_DATA_DIR", str(DATA_DIR))
    (_, _), (x_env, y_env) = mnist.load_data()
    (_, _), (x_path, y_path) = mnist.load_data(path=MNIST_DIR)  # the files' own directory
    np.testing.assert_array_equal(x_env, x_path)
    np.testing.assert_array_equal(y_env, y_path)
    assert np.bincount(y_env, minlength=10).tolist() == MNIST_TEST_HISTOGRAM


@needs_mnist
def test_mnist_second_load_reads_the_cache(isolated_env, monkeypatch):
    first = mnist.load_data(path=MNIST_DIR)
    cached = list(isolated_env.iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".npz", cached
    forbid_idx_reads(monkeypatch)
    second = mnist.load_data(path=MNIST_DIR)
    assert_same(second, dict(zip(STEMS, (*first[0], *first[1]))))
    assert np.bincount(second[1][1], minlength=10).tolist() == MNIST_TEST_HISTOGRAM


# --- MNIST-format loading from small files ----------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_load_data_from_small_idx_files(tmp_path, gz):
    arrays = write_mnist_like(tmp_path / "mnist", gz=gz)
    data = mnist.load_data(path=tmp_path)
    assert_keras_layout(data, 5, 3)
    assert_same(data, arrays)


def test_env_dir_names_the_dataset_subdirectory(tmp_path, monkeypatch):
    mnist_arrays = write_mnist_like(tmp_path / "mnist", seed=1)
    fashion_arrays = write_mnist_like(tmp_path / "fashion_mnist", seed=2, n_train=4)
    monkeypatch.setenv("JAXNET_LITE_DATA_DIR", str(tmp_path))
    assert_same(mnist.load_data(), mnist_arrays)
    assert_same(fashion_mnist.load_data(), fashion_arrays)
    assert len(fashion_mnist.class_names) == 10


def forbid_idx_reads(monkeypatch):
    """Make reading an IDX file fail the test: the data must come from the cache."""

    def no_idx(*args, **kwargs):
        raise AssertionError("read the IDX files although a cache entry exists")

    monkeypatch.setattr(idx, "read_idx", no_idx)


def test_changed_content_replaces_the_cache_entry(tmp_path, isolated_env):
    first = write_mnist_like(tmp_path / "mnist", seed=1)
    write_mnist_like(tmp_path / "fashion_mnist", seed=2)
    fashion_mnist.load_data(path=tmp_path)
    assert_same(mnist.load_data(path=tmp_path), first)
    assert_same(mnist.load_data(path=tmp_path), first)  # from the cache
    (first_entry,) = isolated_env.glob("mnist-*.npz")
    changed = np.full(5, 7, dtype=np.uint8)
    idx.write_idx(tmp_path / "mnist" / (STEMS["y_train"] + ".gz"), changed)  # new content: new key
    (_, y_train), _ = mnist.load_data(path=tmp_path)
    np.testing.assert_array_equal(y_train, changed)
    (entry,) = isolated_env.glob("mnist-*.npz")  # one entry per dataset: the old one is gone
    assert entry != first_entry
    assert len(list(isolated_env.glob("fashion_mnist-*.npz"))) == 1  # another dataset's entry stays


def test_copies_of_the_same_data_share_one_cache_entry(tmp_path, isolated_env, monkeypatch):
    arrays = write_mnist_like(tmp_path / "a", seed=1)
    write_mnist_like(tmp_path / "b", seed=1)  # the same bytes, another path and mtime
    os.utime(tmp_path / "b" / (STEMS["x_train"] + ".gz"), ns=(0, 0))
    assert_same(mnist.load_data(path=tmp_path / "a"), arrays)
    forbid_idx_reads(monkeypatch)
    assert_same(mnist.load_data(path=tmp_path / "b"), arrays)
    assert len(list(isolated_env.iterdir())) == 1


def test_a_new_entry_removes_entries_left_by_older_versions(tmp_path, isolated_env):
    isolated_env.mkdir()
    stale = isolated_env / "mnist-863b66094f494d86cbcc.npz"  # keyed by path and mtime before
    stale.write_bytes(b"55 MB of arrays")
    unrelated = isolated_env / "notes.txt"
    unrelated.write_text("not ours to delete")
    write_mnist_like(tmp_path / "mnist")
    mnist.load_data(path=tmp_path)
    assert not stale.exists() and unrelated.exists()
    assert len(list(isolated_env.glob("mnist-*.npz"))) == 1


def test_content_digest_covers_every_byte_and_the_file_boundaries(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"xy")
    b.write_bytes(b"z")
    digest = _cache.content_digest([a, b])
    assert len(digest) == 20
    b.write_bytes(b"w")
    assert _cache.content_digest([a, b]) != digest
    a.write_bytes(b"x")
    b.write_bytes(b"yz")  # the same bytes in all, split differently
    assert _cache.content_digest([a, b]) != digest
    assert _cache.content_digest([b, a]) != _cache.content_digest([a, b])  # the order counts
    a.write_bytes(b"xy")
    b.write_bytes(b"z")
    assert _cache.content_digest([a, b]) == digest


def test_unwritable_cache_leaves_no_partial_file(tmp_path, isolated_env, monkeypatch):
    arrays = write_mnist_like(tmp_path)

    def failing_savez(file, **kwargs):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.warns(UserWarning, match="could not write dataset cache"):
        data = mnist.load_data(path=tmp_path)
    assert_same(data, arrays)
    assert list(isolated_env.iterdir()) == []


def test_corrupt_cache_file_is_rebuilt(tmp_path, isolated_env):
    arrays = write_mnist_like(tmp_path)
    mnist.load_data(path=tmp_path)
    (entry,) = isolated_env.iterdir()
    entry.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="unreadable cache file"):
        assert_same(mnist.load_data(path=tmp_path), arrays)
    assert_same(mnist.load_data(path=tmp_path), arrays)  # rewritten, read without warning


def test_atomic_open_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write(b"new but incomplete")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


# --- IDX edge cases ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_idx_round_trip(tmp_path, name, dtype):
    array = (np.arange(60) - 20).astype(dtype).reshape(3, 4, 5)
    idx.write_idx(tmp_path / name, array)
    assert (tmp_path / name).read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\x00\x00")
    back = idx.read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative and back.flags.writeable
    np.testing.assert_array_equal(back, array)


def test_idx_gzip_is_detected_from_content(tmp_path):
    idx.write_idx(tmp_path / "labels.gz", np.arange(4, dtype=np.uint8))
    (tmp_path / "labels.gz").rename(tmp_path / "labels")  # gzip bytes, no .gz suffix
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "labels"), np.arange(4))


def test_wrong_magic_number_names_the_file(tmp_path):
    write_mnist_like(tmp_path, gz=False)
    labels = (tmp_path / STEMS["y_train"]).read_bytes()
    (tmp_path / STEMS["x_train"]).write_bytes(labels)  # a labels file where images belong
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: wrong magic number 2049 .*expected 2051"):
        mnist.load_data(path=tmp_path)


def test_not_an_idx_file(tmp_path):
    (tmp_path / "junk").write_bytes(b"hello world, not IDX")
    with pytest.raises(DatasetError, match=r"junk: not an IDX file: bad magic number"):
        idx.read_idx(tmp_path / "junk")


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_truncated_file(tmp_path, gz):
    write_mnist_like(tmp_path, gz=False)
    images = tmp_path / STEMS["x_test"]
    images.write_bytes(images.read_bytes()[:-100])
    if gz:
        images.with_suffix(".gz").write_bytes(gzip.compress(images.read_bytes()))
        images.unlink()
    message = r"t10k-images-idx3-ubyte(\.gz)?: truncated: header says shape \(3, 28, 28\)"
    with pytest.raises(DatasetError, match=message):
        mnist.load_data(path=tmp_path)


def test_truncated_gzip_stream(tmp_path):
    idx.write_idx(tmp_path / "a.gz", np.zeros((50, 28, 28), np.uint8))
    data = (tmp_path / "a.gz").read_bytes()
    (tmp_path / "a.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"a\.gz: corrupt or truncated gzip data"):
        idx.read_idx(tmp_path / "a.gz")


def test_truncated_header_and_trailing_bytes(tmp_path):
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DatasetError, match=r"short: truncated IDX header: 6 bytes, need 16"):
        idx.read_idx(tmp_path / "short")
    idx.write_idx(tmp_path / "long", np.arange(3, dtype=np.uint8))
    (tmp_path / "long").write_bytes((tmp_path / "long").read_bytes() + b"xx")
    with pytest.raises(DatasetError, match=r"long: 2 unexpected bytes after the data of shape \(3,\)"):
        idx.read_idx(tmp_path / "long")


def test_count_mismatch_names_both_files(tmp_path):
    write_mnist_like(tmp_path, y_train=np.zeros(4, np.uint8))
    message = r"count mismatch: .*train-images-idx3-ubyte\.gz holds 5 images.*train-labels-idx1-ubyte\.gz holds 4 labels"
    with pytest.raises(DatasetError, match=message):
        mnist.load_data(path=tmp_path)


def test_label_not_below_num_classes(tmp_path):
    write_mnist_like(tmp_path, y_test=np.array([0, 10, 3], np.uint8))
    with pytest.raises(DatasetError, match=r"t10k-images.*label 10 is not below num_classes=10"):
        mnist.load_data(path=tmp_path)


def test_wrong_image_shape(tmp_path):
    write_mnist_like(tmp_path, x_train=np.zeros((5, 27, 28), np.uint8))
    with pytest.raises(DatasetError, match=r"images must be uint8 of shape \(N, 28, 28\), got uint8 \(5, 27, 28\)"):
        mnist.load_data(path=tmp_path)


def test_missing_file(tmp_path):
    write_mnist_like(tmp_path)
    (tmp_path / (STEMS["y_test"] + ".gz")).unlink()
    with pytest.raises(DatasetNotFoundError, match=r"has no t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte\.gz"):
        mnist.load_data(path=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"IDX file not found: .*nothing-here"):
        idx.read_idx(tmp_path / "nothing-here")
    with pytest.raises(FileNotFoundError, match=r"path='.*no-such-dir'\): no such directory"):
        mnist.load_data(path=tmp_path / "no-such-dir")


def test_path_to_a_file_says_so_and_what_it_expected(tmp_path):
    write_mnist_like(tmp_path)
    expected = (
        r"expected a directory holding train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        r"t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte \(each raw or \.gz\), directly or in DIR/mnist/"
    )
    one_file = tmp_path / (STEMS["x_train"] + ".gz")
    message = rf"path={re.escape(repr(str(one_file)))}\): is a file, not a directory; {expected}"
    with pytest.raises(DatasetNotFoundError, match=message) as info:
        mnist.load_data(path=one_file)
    assert str(info.value).endswith(f"pass the directory that holds it: path={str(tmp_path)!r}")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetNotFoundError, match=rf"notes\.txt'\): is a file, not a directory; {expected}$"):
        mnist.load_data(path=tmp_path / "notes.txt")


def test_no_partial_cache_after_a_bad_file(tmp_path, isolated_env):
    write_mnist_like(tmp_path, y_train=np.zeros(4, np.uint8))
    with pytest.raises(DatasetError):
        mnist.load_data(path=tmp_path)
    assert not isolated_env.exists() or list(isolated_env.iterdir()) == []


# --- the final error, and falling through to tensorflow-datasets -------------------------------


def test_error_names_all_three_options_without_tfds(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # makes the import fail
    monkeypatch.setenv("JAXNET_LITE_DATA_DIR", str(tmp_path))  # set, but holds no mnist/
    with pytest.raises(DatasetNotFoundError) as info:
        mnist.load_data()
    message = str(info.value)
    assert "mnist.load_data(path=DIR)" in message
    assert f"JAXNET_LITE_DATA_DIR={str(tmp_path)!r} has no mnist/ subdirectory" in message
    assert "tensorflow-datasets is not installed" in message
    assert "pip install tensorflow-datasets" in message


# Offline, tfds would retry each download for minutes; the loaders probe the download host once
# (a fake connection here) and fail at once, unless the data is already prepared locally.


@pytest.fixture
def tfds_not_prepared(monkeypatch):
    """tensorflow-datasets whose builders report no prepared data, and whose downloads are recorded."""
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: False)
    downloads = []

    def data_source(name, **kwargs):
        downloads.append(name)
        raise ConnectionError("gave up after minutes of retries")

    monkeypatch.setattr(tfds, "data_source", data_source)
    return downloads


def test_offline_tfds_fails_fast_with_the_three_options(network, tfds_not_prepared):
    network.error = socket.gaierror(-2, "Name or service not known")
    start = time.monotonic()
    with pytest.raises(DatasetNotFoundError) as info:
        mnist.load_data()
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert "mnist: no data found. Provide it in one of three ways:" in message
    assert "1. mnist.load_data(path=DIR)" in message and "2. the environment variable" in message
    assert "3. tensorflow-datasets" in message
    assert "no network: cannot connect to storage.googleapis.com:443 (gaierror: " in message
    assert tfds_not_prepared == [], "tried to download although the probe found no network"
    assert network.calls == [(("storage.googleapis.com", 443), _network.PROBE_TIMEOUT_S)]


def test_network_probe_runs_once_per_process(network, tfds_not_prepared):
    network.error = ConnectionRefusedError(111, "Connection refused")
    for _ in range(3):
        with pytest.raises(DatasetNotFoundError, match="no network: cannot connect"):
            mnist.load_data()
    assert len(network.calls) == 1
    with pytest.raises(DatasetNotFoundError, match="no network: cannot connect to fashion-mnist"):
        fashion_mnist.load_data()  # another download host: probed once, too
    assert len(network.calls) == 2


def test_probe_is_bounded_when_the_name_lookup_hangs(network, monkeypatch):
    release = threading.Event()

    def hanging_lookup(*args, **kwargs):
        release.wait(30)
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "create_connection", hanging_lookup)
    monkeypatch.setattr(_network, "PROBE_TIMEOUT_S", 0.2)
    start = time.monotonic()
    try:
        reason = _network.unreachable("https://storage.googleapis.com/cvdf-datasets/mnist/")
    finally:
        release.set()
        for thread in threading.enumerate():
            if thread.name.startswith("jaxnet_lite-probe-"):
                thread.join(5)
    assert time.monotonic() - start < 2
    assert reason == "no network: storage.googleapis.com:443 did not answer within 0.2 s"


def test_probe_goes_to_the_proxy_when_one_is_set(network, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert _network.unreachable("https://storage.googleapis.com/x") is None
    monkeypatch.setenv("NO_PROXY", "example.org")
    assert _network.unreachable("https://example.org/data.gz") is None
    monkeypatch.setenv("http_proxy", "proxy.internal:8080")  # no scheme
    assert _network.unreachable("http://fashion-mnist.example/") is None
    assert [address for address, _ in network.calls] == [
        ("proxy.internal", 3128), ("example.org", 443), ("proxy.internal", 8080),
    ]


def test_prepared_tfds_data_needs_no_network(tmp_path, network):
    tfds = pytest.importorskip("tensorflow_datasets")
    pytest.importorskip("array_record")

    class JaxnetLiteTinyDigits(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Five train and three test examples, generated here: prepared without any download."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {"image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                        "label": tfds.features.ClassLabel(num_classes=10)}
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(5), "test": self._generate_examples(3)}

        def _generate_examples(self, n):
            rng = np.random.default_rng(n)
            for i in range(n):
                yield i, {"image": rng.integers(0, 256, (28, 28, 1), dtype=np.uint8), "label": i}

    JaxnetLiteTinyDigits(data_dir=tmp_path).download_and_prepare(file_format="array_record")
    network.error = socket.gaierror(-2, "Name or service not known")
    images, labels = tfds_arrays.load("jaxnet_lite_tiny_digits", "train", data_dir=tmp_path)
    assert images.shape == (5, 28, 28) and sorted(labels.tolist()) == [0, 1, 2, 3, 4]
    assert network.calls == [], "probed the network although the data is prepared locally"


def test_error_when_tfds_fails_keeps_the_cause(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("no internet")

    monkeypatch.setattr(tfds, "data_source", offline)
    message = r"(?s)path=DIR.*JAXNET_LITE_DATA_DIR is not set.*ConnectionError: no internet"
    with pytest.raises(DatasetNotFoundError, match=message) as info:
        fashion_mnist.load_data()
    assert isinstance(info.value.__cause__, ConnectionError)


# tensorflow-datasets' own offline mock: `tfds.testing.mock_data` patches `tfds.data_source` to
# return random examples with the real features (checked here: it works without TensorFlow,
# giving images (28, 28, 1) uint8 and int64 labels). Its sources reject `__getitems__`, which is
# why the reader indexes one example at a time.


@pytest.fixture
def tfds_mock():
    tfds = pytest.importorskip("tensorflow_datasets")

    def mock(num_examples):
        return tfds.testing.mock_data(num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE)

    return mock


def test_tfds_load_matches_the_idx_layout(tmp_path, tfds_mock):
    write_mnist_like(tmp_path)
    (x_idx, y_idx), _ = mnist.load_data(path=tmp_path)
    with tfds_mock(6):
        images, labels = tfds_arrays.load("mnist", "train")
    assert images.shape == (6,) + x_idx.shape[1:] and images.dtype == x_idx.dtype
    assert labels.shape == (6,) and labels.dtype == np.int64  # tfds' label dtype, kept by tfds.load
    assert labels.min() >= 0 and labels.max() < 10 and images.max() > 0


def test_tfds_iterator_gives_the_same_examples(tfds_mock):
    with tfds_mock(5):
        images, labels = tfds_arrays.load("fashion_mnist", "test")
        batches = list(tfds_arrays.load("fashion_mnist", "test", as_iterator=True, batch_size=2))
        singles = list(tfds_arrays.load("fashion_mnist", "test", as_iterator=True, keys=("label",)))
    assert [b[0].shape for b in batches] == [(2, 28, 28), (2, 28, 28), (1, 28, 28)]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), images)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), labels)
    assert [s[0].item() for s in singles] == labels.tolist()


def test_tfds_bad_arguments(tfds_mock):
    with tfds_mock(2):
        with pytest.raises(DatasetError, match=r"no feature \['pixels'\]; it has \['image', 'label'\]"):
            tfds_arrays.load("mnist", keys=("pixels",))
    with pytest.raises(ValueError, match=r"batch_size=8 needs as_iterator=True"):
        tfds_arrays.load("mnist", batch_size=8)
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, got 0"):
        tfds_arrays.load("mnist", as_iterator=True, batch_size=0)


@pytest.mark.parametrize("module", [mnist, fashion_mnist], ids=["mnist", "fashion_mnist"])
def test_load_data_falls_through_to_tfds(module, tfds_mock):
    with tfds_mock(4):
        data = module.load_data()  # no path, no JAXNET_LITE_DATA_DIR
    assert_keras_layout(data, 4, 4)


# --- iris and digits, shipped with the package ------------------------------------------------


def test_iris_shapes_dtypes_and_balance():
    (x_train, y_train), (x_test, y_test) = iris.load_data()
    assert x_train.shape == (120, 4) and x_train.dtype == np.float32
    assert x_test.shape == (30, 4) and x_test.dtype == np.float32
    assert y_train.dtype == np.int32 and y_test.dtype == np.int32
    assert np.bincount(y_train).tolist() == [40, 40, 40]
    assert np.bincount(y_test).tolist() == [10, 10, 10]
    assert iris.class_names == ("setosa", "versicolor", "virginica")
    assert not np.all(np.diff(y_train) >= 0), "the training set should be shuffled, not sorted by class"


def test_digits_shapes_dtypes_and_balance():
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    full = np.bincount(np.concatenate([y_train, y_test]))
    assert full.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert x_train.shape == (1438, 8, 8) and x_test.shape == (359, 8, 8)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8 and y_test.shape == (359,)
    assert x_train.max() == 16 and x_train.min() == 0
    expected_test = np.floor(0.2 * full + 0.5).astype(int)
    assert np.bincount(y_test, minlength=10).tolist() == expected_test.tolist()


def rows(x, y):
    """The examples as a sorted list of (features..., label) tuples, to compare as multisets."""
    return sorted(map(tuple, np.column_stack([x.reshape(len(x), -1), y]).tolist()))


@pytest.mark.parametrize("module", [iris, digits], ids=["iris", "digits"])
def test_split_is_a_partition_and_deterministic(module):
    (x_train, y_train), (x_test, y_test) = module.load_data(test_size=0.5, seed=3)
    x_all, y_all = module._read()
    assert rows(np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])) == rows(x_all, y_all)
    again = module.load_data(test_size=0.5, seed=3)
    np.testing.assert_array_equal(again[0][0], x_train)
    np.testing.assert_array_equal(again[1][1], y_test)
    other = module.load_data(test_size=0.5, seed=4)
    assert not np.array_equal(other[0][1], y_train)


@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.1, "0.2"])
def test_bad_test_size(test_size):
    with pytest.raises(ValueError, match="test_size must be a float strictly between 0 and 1"):
        iris.load_data(test_size=test_size)


def test_shipped_files_equal_the_reference_data():
    shipped = Path(iris.__file__).parent / "_data"
    assert (shipped / "ATTRIBUTION.md").is_file()
    for name, sub in (("iris.csv", "iris"), ("digits.csv.gz", "digits")):
        reference = DATA_DIR / sub / name
        if not reference.is_file():
            pytest.skip(f"reference data not found at {reference}")
        assert (shipped / name).read_bytes() == reference.read_bytes(), name
