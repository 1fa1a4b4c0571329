"""IMDB movie-review sentiment (Maas et al., ACL 2011), a subset shipped with the package.

5,000 training and 1,000 test reviews, labelled 0 (negative) or 1 (positive), each a list of
word indices in Keras' `imdb` encoding: `load_data` takes the same arguments as
`keras.datasets.imdb.load_data` and returns what Keras would, so tutorials written for Keras
(an `Embedding` on `pad_sequences(x_train)`) run offline and in seconds.

The subset was cut from Keras' `imdb.npz` with Keras' defaults and a vocabulary of 500: a word
of frequency rank 1 to 496 (index 4 to 499) is known, and every rarer word was already stored as
"out of vocabulary". Those rare words cannot be told apart any more, so here they always come
out as `oov_char` (or are dropped when `oov_char=None`), whatever `num_words` says: with the
default `index_from=3`, `num_words` above 500 changes nothing.

There is no `get_word_index`: Keras downloads its word list (`imdb_word_index.json`) and it is
not shipped here, so the indices cannot be turned back into words offline.
"""

from __future__ import annotations

import io
import os
from importlib import resources
from typing import Any

import numpy as np

from jaxnet_lite.datasets._errors import DatasetError, DatasetNotFoundError

__all__ = ["load_data"]

_FILE = "imdb_subset.npz"
_SPLITS = ("train", "test")
# The stored encoding: Keras' defaults (start 1, out of vocabulary 2, words from index 3).
_STORED_START, _STORED_OOV, _STORED_INDEX_FROM = 1, 2, 3
_UNKNOWN = -1  # the rank given to stored out-of-vocabulary words, whose real rank is lost

Split = tuple[np.ndarray, np.ndarray, np.ndarray]  # word ranks (flat), offsets, labels


def load_data(
    path: str | os.PathLike[str] | None = None,
    num_words: int | None = None,
    skip_top: int = 0,
    maxlen: int | None = None,
    seed: int | None = 113,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return `(x_train, y_train), (x_test, y_test)`, as `keras.datasets.imdb.load_data` would.

    x is a 1-D object array of lists of ints (one list per review); y is int32, 0 or 1. The
    steps are Keras' own, in its order:

    1. both splits are shuffled with `np.random.RandomState(seed)` (train first, then test);
    2. a word of rank r becomes `r + index_from`, and each review starts with `start_char`
       (none when `start_char=None`);
    3. with `maxlen`, only reviews *shorter* than `maxlen`, start included, are kept (Keras keeps
       `len < maxlen`: they are dropped, not truncated; see `jaxnet_lite.utils.pad_sequences`);
    4. every index `i` outside `skip_top <= i < num_words` becomes `oov_char`, or is dropped
       when `oov_char=None`. As in Keras this compares indices, not ranks, and also applies to
       `start_char`; `num_words=None` means the largest index present, which is cut too when
       the data holds no out-of-vocabulary word.

    The subset's own out-of-vocabulary words always fail step 4 (see the module docstring).
    `path` names another file in the shipped format (see `_read`); None reads the shipped one.
    Unlike Keras, `num_words=0` or `maxlen=0` is an error rather than "no limit", negative
    indices are refused, and x is 1-D even when every review has the same length.
    """
    _check_args(num_words, skip_top, maxlen, seed, start_char, oov_char, index_from)
    splits = _read(path)
    rng = np.random.RandomState(seed)
    extra = 0 if start_char is None else 1
    picked = {}
    for name in _SPLITS:
        ranks, offsets, labels = splits[name]
        order = np.arange(len(labels))
        rng.shuffle(order)
        if maxlen is not None:
            lengths = np.diff(offsets)[order] + extra
            if not np.any(lengths < maxlen):
                raise DatasetError(
                    f"imdb.load_data: maxlen={maxlen} keeps no {name} review: only reviews shorter "
                    f"than maxlen are kept, and the shortest has {lengths.min()} indices"
                    f"{' (start_char included)' if extra else ''}; increase maxlen"
                )
            order = order[lengths < maxlen]
        picked[name] = (*_reindex(*_take(ranks, offsets, order), start_char, index_from), labels[order])

    if num_words is None and not any(np.any(unknown) for _, unknown, _, _ in picked.values()):
        num_words = max(int(values.max(initial=0)) for values, _, _, _ in picked.values())
    out = []
    for name in _SPLITS:
        values, unknown, offsets, labels = picked[name]
        keep = ~unknown & (values >= skip_top)
        if num_words is not None:
            keep &= values < num_words
        if oov_char is not None:
            values = np.where(keep, values, oov_char)
        else:
            review = np.repeat(np.arange(len(labels)), np.diff(offsets))
            counts = np.bincount(review[keep], minlength=len(labels))
            values, offsets = values[keep], np.concatenate([[0], np.cumsum(counts)])
        out.append((_as_lists(values, offsets), labels.astype(np.int32)))
    return out[0], out[1]


def _check_args(*values: Any) -> None:
    """DatasetError naming the first argument of `load_data` that is not a valid value."""
    num_words, skip_top, maxlen, seed, start_char, oov_char, index_from = values
    rules = [
        ("num_words", num_words, True, 1, "a positive integer or None"),
        ("skip_top", skip_top, False, 0, "a non-negative integer"),
        ("maxlen", maxlen, True, 1, "a positive integer or None"),
        ("seed", seed, True, 0, "an integer in [0, 2**32) or None"),
        ("start_char", start_char, True, 0, "a non-negative integer or None"),
        ("oov_char", oov_char, True, 0, "a non-negative integer or None"),
        ("index_from", index_from, False, 0, "a non-negative integer"),
    ]
    for name, value, may_be_none, lowest, what in rules:
        if value is None and may_be_none:
            continue
        is_int = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        if not is_int or value < lowest or (name == "seed" and value >= 2**32):
            raise DatasetError(f"imdb.load_data: {name} must be {what}, got {value!r}")


def _read(path: str | os.PathLike[str] | None) -> dict[str, Split]:
    """Each split as word ranks (flat), review offsets into them, and labels.

    The file is a pickle-free `.npz`: for each split, `<split>_tokens` (int, every review in
    Keras' default encoding, concatenated), `<split>_offsets` (review i is
    `tokens[offsets[i]:offsets[i + 1]]`) and `<split>_labels`. Each review starts with 1; index
    2 (out of vocabulary) becomes rank `_UNKNOWN`, and index i >= 3 rank `i - 3`.
    """
    source = path if path is not None else _FILE
    try:
        if path is None:
            data = resources.files("jaxnet_lite.datasets").joinpath("_data", _FILE).read_bytes()
            archive = np.load(io.BytesIO(data), allow_pickle=False)
        else:
            archive = np.load(os.fspath(path), allow_pickle=False)
    except FileNotFoundError as e:
        raise DatasetNotFoundError(f"imdb.load_data: no file at path={os.fspath(source)!r}") from e
    except (OSError, ValueError) as e:
        raise DatasetError(f"imdb.load_data: {os.fspath(source)} is not a pickle-free .npz file: {e}") from e
    with archive:
        keys = [f"{s}_{part}" for s in _SPLITS for part in ("tokens", "offsets", "labels")]
        missing = [key for key in keys if key not in archive.files]
        if missing:
            raise DatasetError(f"imdb.load_data: {os.fspath(source)} lacks the arrays {missing}")
        return {s: _decode(s, *(archive[f"{s}_{part}"] for part in ("tokens", "offsets", "labels"))) for s in _SPLITS}


def _decode(name: str, tokens: np.ndarray, offsets: np.ndarray, labels: np.ndarray) -> Split:
    """Check one split's arrays and turn its stored indices back into ranks, starts removed."""
    where = f"imdb.load_data: {name} split:"
    if not all(np.issubdtype(a.dtype, np.integer) and a.ndim == 1 for a in (tokens, offsets, labels)):
        raise DatasetError(f"{where} tokens, offsets and labels must be 1-D integer arrays")
    tokens, offsets = tokens.astype(np.int64), offsets.astype(np.int64)
    n = len(labels)
    if len(offsets) != n + 1 or offsets[0] != 0 or offsets[-1] != len(tokens) or np.any(np.diff(offsets) < 1):
        raise DatasetError(f"{where} offsets must rise from 0 to {len(tokens)}, one step per review, none empty")
    if np.any((labels != 0) & (labels != 1)):
        raise DatasetError(f"{where} labels must be 0 or 1")
    is_start = np.zeros(len(tokens), dtype=bool)
    is_start[offsets[:-1]] = True
    if np.any(is_start != (tokens == _STORED_START)) or np.any(tokens < _STORED_START):
        raise DatasetError(f"{where} each review must start with {_STORED_START}, and hold no other index below 2")
    body = tokens[~is_start]
    ranks = np.where(body == _STORED_OOV, _UNKNOWN, body - _STORED_INDEX_FROM)
    return ranks, offsets - np.arange(n + 1), labels


def _take(ranks: np.ndarray, offsets: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reviews `order` (indices into the split), in that order: flat ranks and offsets."""
    starts, lengths = offsets[:-1][order], np.diff(offsets)[order]
    new_offsets = np.concatenate([[0], np.cumsum(lengths)])
    gather = np.arange(new_offsets[-1]) + np.repeat(starts - new_offsets[:-1], lengths)
    return ranks[gather], new_offsets


def _reindex(
    ranks: np.ndarray, offsets: np.ndarray, start_char: int | None, index_from: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras' step 2: `rank + index_from`, behind `start_char`; also which entries are unknown words."""
    extra = 0 if start_char is None else 1
    n = len(offsets) - 1
    lengths = np.diff(offsets)
    new_offsets = np.concatenate([[0], np.cumsum(lengths + extra)])
    values = np.empty(new_offsets[-1], dtype=np.int64)
    unknown = np.zeros(new_offsets[-1], dtype=bool)
    positions = np.arange(len(ranks)) + extra * np.repeat(np.arange(1, n + 1), lengths)
    values[positions] = ranks + index_from
    unknown[positions] = ranks == _UNKNOWN
    if start_char is not None:
        values[new_offsets[:-1]] = start_char
    return values, unknown, new_offsets


def _as_lists(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """A 1-D object array holding one Python list of ints per review, as Keras returns."""
    flat = values.tolist()
    x = np.empty(len(offsets) - 1, dtype=object)
    for i in range(len(x)):
        x[i] = flat[offsets[i] : offsets[i + 1]]
    return x
