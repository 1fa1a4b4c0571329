"""Constructor arguments, recorded: what lets every layer, a user's own included, describe itself.

`Layer` inherits `RecordsArguments`: each subclass's `__init__` is wrapped once, at class creation, to
keep the arguments of the outermost constructor call. `get_config` returns them and `from_config`
calls the constructor with them again, which is all that saving a model needs from a layer.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import numpy as np


class RecordsArguments:
    """Keeps the arguments each instance was constructed with (`init_arguments()`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_records_arguments", False):
            return

        @functools.wraps(init)
        def recording_init(self: Any, *args: Any, **kw: Any) -> None:
            if "_init_arguments" not in self.__dict__:  # the outermost constructor call is the one to keep
                try:
                    bound = inspect.signature(init).bind(self, *args, **kw)
                except TypeError:  # the constructor itself will raise the user's error
                    bound = None
                self._init_arguments = {} if bound is None else _by_name(bound)
            init(self, *args, **kw)

        recording_init._records_arguments = True  # type: ignore[attr-defined]
        cls.__init__ = recording_init  # type: ignore[method-assign]

    def init_arguments(self) -> dict[str, Any]:
        """The constructor's arguments by name (`*args` under `"*<name>"`), as they were given."""
        return dict(self.__dict__.get("_init_arguments", {}))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        """The instance `get_config` describes: the constructor called with those arguments again."""
        config = dict(config)
        positional = [value for key in [k for k in config if k.startswith("*")] for value in config.pop(key)]
        return cls(*positional, **config)


def _by_name(bound: inspect.BoundArguments) -> dict[str, Any]:
    """Bound arguments by name, without `self`, with `**kwargs` spread out."""
    out: dict[str, Any] = {}
    params = bound.signature.parameters
    for name, value in list(bound.arguments.items())[1:]:
        kind = params[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update({k: _plain(v) for k, v in value.items()})
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            out[f"*{name}"] = [_plain(v) for v in value]
        else:
            out[name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    """NumPy scalars as the Python numbers they hold (in tuples and lists too); everything else as given."""
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        return float(str(value))  # the decimal it spells, as the layers themselves store it (`as_float`)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return type(value)(_plain(v) for v in value)
    return value
