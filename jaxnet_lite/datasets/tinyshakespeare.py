"""Tiny Shakespeare (public domain; collected for char-rnn by A. Karpathy), shipped with the package.

1,115,394 characters of Shakespeare's plays, 65 distinct: the standard small corpus for
character-level language models. `load_data()` gives the text, its character vocabulary, and
nanoGPT's `shakespeare_char` split (first 90% train, last 10% validation), so results compare
directly with nanoGPT's (validation loss about 1.47 for its GPU configuration).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from jaxnet_lite.datasets._errors import DatasetError
from jaxnet_lite.datasets._packaged import read_text

__all__ = ["TinyShakespeare", "load_data"]

_FILE = "tinyshakespeare.txt.gz"
_MD5 = "6fb458f1232090904fb40fe944165e91"  # of the decompressed text, as char-rnn's input.txt
_TRAIN_FRACTION = 0.9  # nanoGPT's data/shakespeare_char/prepare.py


@dataclass(frozen=True, eq=False, repr=False)
class TinyShakespeare:
    """The corpus with its character vocabulary; ids are positions in `vocab`.

    `train` and `val` are int32 ids of the first 90% and last 10% of `text`, split as nanoGPT's
    `prepare.py` does (`n = len(data); train = data[:int(n * 0.9)]`).
    """

    text: str
    vocab: str  # the distinct characters of `text`, sorted: nanoGPT's `sorted(list(set(data)))`
    train: np.ndarray
    val: np.ndarray

    def __repr__(self) -> str:
        """Sizes only: the text is a megabyte long."""
        return (
            f"TinyShakespeare(text=<{len(self.text)} characters>, vocab={self.vocab!r}, "
            f"train=<{len(self.train)} ids>, val=<{len(self.val)} ids>)"
        )

    @property
    def vocab_size(self) -> int:
        """How many distinct characters: the size of an embedding or of the output layer."""
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        """The int32 ids of the characters of `text`; a character not in `vocab` is a DatasetError."""
        return _encode(text, self.vocab)

    def decode(self, ids: Any) -> str:
        """The text for integer ids 0..vocab_size-1 (a list, NumPy or JAX array of any shape, read flat)."""
        array = np.asarray(ids)
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise DatasetError(f"tinyshakespeare.decode: ids must be integers, got dtype {array.dtype}")
        flat = array.reshape(-1).astype(np.int64)
        bad = flat[(flat < 0) | (flat >= len(self.vocab))]
        if bad.size:
            raise DatasetError(f"tinyshakespeare.decode: id {bad[0]} is outside 0..{len(self.vocab) - 1}")
        return _code_points(self.vocab)[flat].astype("<u4").tobytes().decode("utf-32-le")


def load_data() -> TinyShakespeare:
    """The shipped text, its vocabulary and nanoGPT's 90/10 train/validation split of its ids.

    With `data = tinyshakespeare.load_data()`: `data.vocab_size` is 65, `len(data.train)` is
    1,003,854 and `len(data.val)` 111,540; `data.decode(data.encode("To be"))` is `"To be"`.
    The text is checked against its md5, so a damaged installation fails here, not in training.
    """
    text = read_text(_FILE)
    digest = hashlib.md5(text.encode("utf-8")).hexdigest()
    if digest != _MD5:
        raise DatasetError(f"{_FILE}: md5 of the text is {digest}, expected {_MD5}; the file is damaged")
    vocab = "".join(sorted(set(text)))
    ids = _encode(text, vocab)
    n = len(ids)
    cut = int(n * _TRAIN_FRACTION)
    return TinyShakespeare(text=text, vocab=vocab, train=ids[:cut].copy(), val=ids[cut:].copy())


def _encode(text: str, vocab: str) -> np.ndarray:
    """int32 positions in `vocab` (sorted characters) of the characters of `text`."""
    if not isinstance(text, str):
        raise DatasetError(f"tinyshakespeare.encode: expected a str, got {type(text).__name__}")
    codes, known = _code_points(text), _code_points(vocab)
    ids = np.searchsorted(known, codes)
    found = np.zeros(len(codes), dtype=bool)
    inside = ids < len(known)
    found[inside] = known[ids[inside]] == codes[inside]
    if not found.all():
        at = int(np.flatnonzero(~found)[0])
        raise DatasetError(
            f"tinyshakespeare.encode: character {text[at]!r} (at position {at}) is not in the vocabulary"
        )
    return ids.astype(np.int32)


def _code_points(text: str) -> np.ndarray:
    """The Unicode code points of `text`, in order (sorted characters have sorted code points)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
