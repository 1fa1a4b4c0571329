"""Tests for the shipped text data sets: `datasets.imdb` (Keras' IMDB loader on a shipped subset)
and `datasets.tinyshakespeare` (char-level corpus with nanoGPT's split).

Expected numbers come from shared/data/README.md and nanoGPT, not from the implementation. The
reference copies are found through `$JAXNET_LITE_DATA_DIR` (or `../shared/data`); tests that need
them skip without them. When Keras is installed, `imdb.load_data` is compared with Keras' own
loader run on the same reviews.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import itertools
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from jaxnet_lite import datasets
from jaxnet_lite.datasets import DatasetError, DatasetNotFoundError, imdb, tinyshakespeare

DATA_DIR = Path(
    os.environ.get("JAXNET_LITE_DATA_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)
SHARED_IMDB = DATA_DIR / "imdb" / "imdb_subset.npz"
SHARED_SHAKESPEARE = DATA_DIR / "tinyshakespeare" / "input.txt"
needs_shared_imdb = pytest.mark.skipif(
    not SHARED_IMDB.is_file(), reason=f"{SHARED_IMDB} not found (set JAXNET_LITE_DATA_DIR)"
)
needs_shared_shakespeare = pytest.mark.skipif(
    not SHARED_SHAKESPEARE.is_file(), reason=f"{SHARED_SHAKESPEARE} not found (set JAXNET_LITE_DATA_DIR)"
)

# From shared/data/README.md.
IMDB_TRAIN_LABELS, IMDB_TEST_LABELS = [2454, 2546], [526, 474]
SHAKESPEARE_CHARS, SHAKESPEARE_VOCAB = 1_115_394, 65
SHAKESPEARE_MD5 = "6fb458f1232090904fb40fe944165e91"
# nanoGPT's data/shakespeare_char/prepare.py prints "train has 1,003,854 tokens", "val has 111,540 tokens".
NANOGPT_TRAIN, NANOGPT_VAL = 1_003_854, 111_540
KERAS_RARE_RANK = 10**6  # the rank given to the subset's out-of-vocabulary words in Keras' file


# ---- helpers: the stored subset, read straight from the file ----


def stored_reviews(raw: bytes) -> dict[str, tuple[list[list[int]], np.ndarray]]:
    """Each split's reviews (stored encoding) and labels, in file order."""
    with np.load(io.BytesIO(raw), allow_pickle=False) as f:
        out = {}
        for split in ("train", "test"):
            tokens, offsets = f[f"{split}_tokens"].tolist(), f[f"{split}_offsets"].tolist()
            reviews = [tokens[a:b] for a, b in itertools.pairwise(offsets)]
            out[split] = (reviews, f[f"{split}_labels"])
        return out


@pytest.fixture(scope="module")
def default():
    """`imdb.load_data()` with Keras' defaults, loaded once for the tests that only read it."""
    return imdb.load_data()


@pytest.fixture(scope="module")
def shipped() -> dict[str, tuple[list[list[int]], np.ndarray]]:
    return stored_reviews(resources.files("jaxnet_lite.datasets").joinpath("_data", "imdb_subset.npz").read_bytes())


def keras_order(seed: int, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """The permutations Keras' loader applies: one RandomState, train shuffled first, then test."""
    rng = np.random.RandomState(seed)
    train, test = np.arange(n_train), np.arange(n_test)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def to_default(review: list[int], start_char: int, oov_char: int, index_from: int) -> list[int]:
    """A review loaded with other start/oov/index_from, written back in Keras' default encoding."""
    assert review[0] == start_char
    return [1] + [2 if w == oov_char else w - index_from + 3 for w in review[1:]]


def write_flat(path: Path, splits: dict[str, tuple[list[list[int]], list[int]]]) -> None:
    """A file in the shipped format (stored encoding: each review starts with 1)."""
    arrays = {}
    for split, (reviews, labels) in splits.items():
        arrays[f"{split}_tokens"] = np.array([w for r in reviews for w in r], dtype=np.int32)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(r) for r in reviews]).astype(np.int64)
        arrays[f"{split}_labels"] = np.array(labels, dtype=np.int32)
    np.savez(path, **arrays)


def write_keras_file(path: Path, splits: dict[str, tuple[list[list[int]], np.ndarray]]) -> None:
    """Keras' `imdb.npz` layout: object arrays of word-rank lists (the stored start removed,
    index i -> rank i - 3, out of vocabulary -> one very rare rank) and the labels."""
    arrays = {}
    for split, (reviews, labels) in splits.items():
        x = np.empty(len(reviews), dtype=object)
        for i, review in enumerate(reviews):
            assert review[0] == 1
            x[i] = [KERAS_RARE_RANK if w == 2 else w - 3 for w in review[1:]]
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, np.asarray(labels, dtype=np.int64)
    np.savez(path, **arrays)


def keras_imdb_loader(monkeypatch, keras_file: Path):
    """Keras' own `imdb.load_data`, reading `keras_file` instead of downloading."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    pytest.importorskip("keras")
    from keras.src.datasets import imdb as keras_imdb

    monkeypatch.setattr(keras_imdb, "get_file", lambda *args, **kwargs: str(keras_file))
    return keras_imdb.load_data


def assert_same(ours, theirs) -> None:
    (x, y), (xt, yt) = ours
    (kx, ky), (kxt, kyt) = theirs
    for got, want in ((x, kx), (xt, kxt)):
        assert len(got) == len(want)
        assert [list(r) for r in got] == [list(r) for r in want]
    np.testing.assert_array_equal(y, ky)
    np.testing.assert_array_equal(yt, kyt)


# ---- imdb ----


def test_imdb_is_exported():
    assert "imdb" in datasets.__all__ and "tinyshakespeare" in datasets.__all__
    assert datasets.imdb is imdb and datasets.tinyshakespeare is tinyshakespeare


def test_imdb_counts_types_and_labels_match_the_readme(default):
    (x, y), (xt, yt) = default
    assert x.shape == (5000,) and xt.shape == (1000,) and x.dtype == object
    assert y.shape == (5000,) and yt.shape == (1000,) and np.issubdtype(y.dtype, np.integer)
    assert np.bincount(y).tolist() == IMDB_TRAIN_LABELS and np.bincount(yt).tolist() == IMDB_TEST_LABELS
    assert type(x[0]) is list and all(type(w) is int for w in x[0])
    assert all(review[0] == 1 for review in x) and all(review[0] == 1 for review in xt)
    lengths = [len(r) for r in [*x, *xt]]  # the README counts the start as a word
    assert min(lengths) == 9 and max(lengths) == 1851
    assert max(max(r) for r in x) <= 499 and min(min(r[1:]) for r in x) >= 2


def test_imdb_defaults_give_the_stored_reviews_in_keras_shuffle_order(default, shipped):
    (x, y), (xt, yt) = default
    order_train, order_test = keras_order(113, 5000, 1000)
    reviews, labels = shipped["train"]
    assert [list(r) for r in x] == [reviews[i] for i in order_train]
    np.testing.assert_array_equal(y, labels[order_train])
    reviews, labels = shipped["test"]
    assert [list(r) for r in xt] == [reviews[i] for i in order_test]
    np.testing.assert_array_equal(yt, labels[order_test])


def test_imdb_is_deterministic_in_the_seed(default):
    first, again, other = default, imdb.load_data(seed=113), imdb.load_data(seed=8)
    assert_same(first, again)
    assert [list(r) for r in first[0][0]] != [list(r) for r in other[0][0]]
    assert sorted(map(tuple, first[0][0])) == sorted(map(tuple, other[0][0]))  # the same reviews


def test_imdb_num_words_bounds_every_index(default):
    (x, _), (xt, _) = imdb.load_data(num_words=100)
    for got, full in ((x, default[0][0]), (xt, default[1][0])):
        assert all(max(r) < 100 for r in got)
        for review, original in zip(got, full, strict=True):
            assert review == [w if w < 100 else 2 for w in original]


def test_imdb_num_words_beyond_the_shipped_vocabulary_changes_nothing(default):
    assert_same(imdb.load_data(num_words=10_000), default)


def test_imdb_skip_top_turns_frequent_words_and_the_start_into_oov(default):
    (x, _), _ = imdb.load_data(skip_top=10)
    (full, _), _ = default
    for review, original in zip(x, full, strict=True):
        # Keras compares the index (start_char included) with skip_top: 1..9 all become oov_char.
        assert review == [w if w >= 10 else 2 for w in original]
    assert all(review[0] == 2 for review in x)


def test_imdb_maxlen_keeps_only_shorter_reviews(shipped):
    (x, y), (xt, yt) = imdb.load_data(maxlen=120)
    assert all(len(r) < 120 for r in x) and all(len(r) < 120 for r in xt)
    assert len(x) == sum(len(r) < 120 for r in shipped["train"][0]) == len(y)
    assert len(xt) == sum(len(r) < 120 for r in shipped["test"][0]) == len(yt)


def test_imdb_oov_char_none_drops_the_cut_words(default):
    (x, _), _ = imdb.load_data(num_words=50, oov_char=None)
    (full, _), _ = default
    for review, original in zip(x, full, strict=True):
        assert review == [w for w in original if w < 50 and w != 2]


def test_imdb_other_start_oov_and_index_from_round_trip(default):
    start_char, oov_char, index_from = 7, 5, 10
    (x, y), (xt, yt) = imdb.load_data(start_char=start_char, oov_char=oov_char, index_from=index_from)
    (dx, dy), (dxt, dyt) = default
    assert [to_default(r, start_char, oov_char, index_from) for r in x] == [list(r) for r in dx]
    assert [to_default(r, start_char, oov_char, index_from) for r in xt] == [list(r) for r in dxt]
    np.testing.assert_array_equal(y, dy)
    np.testing.assert_array_equal(yt, dyt)
    (bare, _), _ = imdb.load_data(start_char=None, oov_char=0, index_from=0)  # ranks, 0 for rare words
    assert [[w + 3 if w else 2 for w in r] for r in bare] == [list(r)[1:] for r in dx]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"num_words": 0}, "num_words.*0"),
        ({"num_words": -5}, "num_words.*-5"),
        ({"num_words": 2.5}, "num_words.*2.5"),
        ({"maxlen": 0}, "maxlen.*0"),
        ({"maxlen": 5}, r"maxlen=5 keeps no train review"),
        ({"skip_top": -1}, "skip_top.*-1"),
        ({"start_char": True}, "start_char.*True"),
        ({"oov_char": -2}, "oov_char.*-2"),
        ({"index_from": "3"}, "index_from.*'3'"),
        ({"seed": -1}, "seed.*-1"),
    ],
)
def test_imdb_bad_arguments_are_named(kwargs, pattern):
    with pytest.raises(DatasetError, match=pattern):
        imdb.load_data(**kwargs)


def test_imdb_bad_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"missing\.npz"):
        imdb.load_data(path=tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x_train=np.zeros(3))
    with pytest.raises(DatasetError, match="lacks the arrays"):
        imdb.load_data(path=tmp_path / "other.npz")
    write_flat(tmp_path / "nostart.npz", {"train": ([[4, 5]], [0]), "test": ([[1, 4]], [1])})
    with pytest.raises(DatasetError, match=r"train split.*start with 1"):
        imdb.load_data(path=tmp_path / "nostart.npz")


@needs_shared_imdb
def test_imdb_shipped_copy_is_the_shared_file(default):
    shipped_bytes = resources.files("jaxnet_lite.datasets").joinpath("_data", "imdb_subset.npz").read_bytes()
    assert shipped_bytes == SHARED_IMDB.read_bytes()
    assert_same(imdb.load_data(path=SHARED_IMDB), default)


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory) -> Path:
    """The shared subset in Keras' own `imdb.npz` layout."""
    if not SHARED_IMDB.is_file():
        pytest.skip(f"{SHARED_IMDB} not found (set JAXNET_LITE_DATA_DIR)")
    path = tmp_path_factory.mktemp("keras") / "imdb.npz"
    write_keras_file(path, stored_reviews(SHARED_IMDB.read_bytes()))
    return path


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"start_char": 7, "oov_char": 5, "index_from": 10, "num_words": 300, "seed": 1},
        {"oov_char": None, "num_words": 80, "skip_top": 3, "maxlen": 400},
        {"start_char": None, "oov_char": 0, "index_from": 0, "maxlen": 100, "skip_top": 10, "seed": 5},
    ],
)
def test_imdb_equals_keras_on_the_same_reviews(monkeypatch, keras_file, kwargs):
    keras_load = keras_imdb_loader(monkeypatch, keras_file)
    assert_same(imdb.load_data(**kwargs), keras_load(**kwargs))


def synthetic_reviews(seed: int) -> dict[str, tuple[list[list[int]], list[int]]]:
    """Small reviews of known words only (ranks 1..40, stored as index rank + 3)."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", 30), ("test", 12)):
        reviews = [[1, *(rng.integers(1, 41, rng.integers(1, 15)) + 3).tolist()] for _ in range(n)]
        splits[split] = (reviews, rng.integers(0, 2, n).tolist())
    return splits


def test_imdb_without_oov_words_num_words_none_cuts_the_largest_index(tmp_path):
    """Keras takes num_words=None as the largest index present and keeps only indices below it."""
    splits = synthetic_reviews(0)
    write_flat(tmp_path / "small.npz", splits)
    (x, _), (xt, _) = imdb.load_data(path=tmp_path / "small.npz", index_from=5)
    largest = max(max(r) for r in [*splits["train"][0], *splits["test"][0]]) + 2  # index_from 5, not 3
    assert all(largest not in r for r in [*x, *xt])
    assert sum(r.count(2) for r in [*x, *xt]) == sum(r.count(largest - 2) for s in splits.values() for r in s[0])


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"oov_char": None},
        {"start_char": None, "skip_top": 6},
        {"start_char": 60, "index_from": 1},  # start_char is then the largest index, and cut
        {"maxlen": 8, "num_words": 20, "seed": 3},
    ],
)
def test_imdb_equals_keras_on_reviews_without_oov_words(monkeypatch, tmp_path, kwargs):
    splits = synthetic_reviews(1)
    write_flat(tmp_path / "small.npz", splits)
    write_keras_file(tmp_path / "imdb.npz", {k: (r, np.array(y)) for k, (r, y) in splits.items()})
    keras_load = keras_imdb_loader(monkeypatch, tmp_path / "imdb.npz")
    assert_same(imdb.load_data(path=tmp_path / "small.npz", **kwargs), keras_load(**kwargs))


# ---- tinyshakespeare ----


@pytest.fixture(scope="module")
def shakespeare() -> tinyshakespeare.TinyShakespeare:
    return tinyshakespeare.load_data()


def test_shakespeare_text_and_vocabulary(shakespeare):
    assert len(shakespeare.text) == SHAKESPEARE_CHARS
    assert hashlib.md5(shakespeare.text.encode("utf-8")).hexdigest() == SHAKESPEARE_MD5
    assert len(shakespeare.vocab) == shakespeare.vocab_size == SHAKESPEARE_VOCAB
    assert list(shakespeare.vocab) == sorted(set(shakespeare.text))
    assert shakespeare.text.startswith("First Citizen:\nBefore we proceed")


def test_shakespeare_shipped_gzip_holds_the_readme_text():
    raw = resources.files("jaxnet_lite.datasets").joinpath("_data", "tinyshakespeare.txt.gz").read_bytes()
    assert hashlib.md5(gzip.decompress(raw)).hexdigest() == SHAKESPEARE_MD5


@needs_shared_shakespeare
def test_shakespeare_is_the_shared_file(shakespeare):
    assert shakespeare.text == SHARED_SHAKESPEARE.read_text(encoding="utf-8")


def test_shakespeare_split_is_nanogpts(shakespeare):
    assert len(shakespeare.train) == NANOGPT_TRAIN and len(shakespeare.val) == NANOGPT_VAL
    assert shakespeare.train.dtype == np.int32 and shakespeare.val.dtype == np.int32
    n = len(shakespeare.text)
    assert shakespeare.decode(shakespeare.train) == shakespeare.text[: int(n * 0.9)]
    assert shakespeare.decode(shakespeare.val) == shakespeare.text[int(n * 0.9) :]


def test_shakespeare_encode_decode(shakespeare):
    snippet = "To be, or not to be: that is the question.\nQUEEN:"
    ids = shakespeare.encode(snippet)
    assert ids.dtype == np.int32 and ids.tolist() == [shakespeare.vocab.index(c) for c in snippet]
    assert shakespeare.decode(ids) == snippet
    assert shakespeare.decode(ids.tolist()) == snippet and shakespeare.decode(ids.reshape(1, -1)) == snippet
    assert shakespeare.encode("").shape == (0,) and shakespeare.decode([]) == ""
    assert shakespeare.encode("\n").tolist() == [0]  # "\n" sorts first


def test_shakespeare_errors(shakespeare):
    with pytest.raises(DatasetError, match=r"'#' \(at position 3\)"):
        shakespeare.encode("abc#")
    with pytest.raises(DatasetError, match="'é'"):
        shakespeare.encode("café")
    with pytest.raises(DatasetError, match="65"):
        shakespeare.decode([0, 65])
    with pytest.raises(DatasetError, match="-1"):
        shakespeare.decode([-1])
    with pytest.raises(DatasetError, match="integers"):
        shakespeare.decode([1.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        shakespeare.vocab = "abc"  # type: ignore[misc]
    assert "1115394 characters" in repr(shakespeare) and len(repr(shakespeare)) < 300
