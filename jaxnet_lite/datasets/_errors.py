"""Errors raised by the dataset loaders, so callers can catch data problems apart from bugs."""

from __future__ import annotations


class DatasetError(ValueError):
    """A data file or array is malformed: bad magic number, truncated, inconsistent counts or labels."""


class DatasetNotFoundError(FileNotFoundError):
    """No source for a dataset was found; the message says where it looked and how to provide one."""
