"""Open the data files shipped inside the package (`jaxnet_lite/datasets/_data/`)."""

from __future__ import annotations

import gzip
import io
from importlib import resources


def read_text(filename: str) -> str:
    """The text of shipped file `filename`, gunzipped when it ends in `.gz`."""
    data = resources.files("jaxnet_lite.datasets").joinpath("_data", filename).read_bytes()
    if filename.endswith(".gz"):
        data = gzip.decompress(data)
    return data.decode("utf-8")


def text_stream(filename: str) -> io.StringIO:
    """Shipped file `filename` as a text stream, for `np.loadtxt`."""
    return io.StringIO(read_text(filename))
