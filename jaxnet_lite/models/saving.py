"""Whole-model saving: `model.save("m.keras")` and `load_model(path)`, with no pickle and no code in the file.

A `.keras` file here is one checkpoint (`jaxnet_lite.checkpoint`: a pickle-free `.npz`, written
atomically) holding the weights, optionally the optimizer state, and as JSON metadata the model's
architecture (every layer's `get_config`), its compile arguments and the input shape it was built for.

Loading rebuilds each layer from its class name. Only jaxnet_lite's own layers, classes passed in
`custom_objects` and classes registered with `register_serializable` can be named; a config that names
a Python function (a `Lambda`'s) is refused unless `safe_mode=False`, because importing it runs code,
as in Keras. Nothing in the file is ever executed.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxnet_lite import activations, checkpoint, constraints, initializers, optimizers, regularizers
from jaxnet_lite import layers as layers_lib
from jaxnet_lite.core import Layer, Variables
from jaxnet_lite.graph import Functional

FORMAT = "jaxnet_lite.model/1"
_REGISTERED: dict[str, type] = {}


class SavingError(ValueError):
    """A model cannot be saved, or a file cannot be loaded as a model; the message says why."""


def register_serializable(cls: type | None = None, *, name: str | None = None) -> Any:
    """Class decorator (Keras' `register_keras_serializable`): `load_model` may rebuild this class.

    `Sequential` and `Model` register themselves this way."""

    def register(klass: type) -> type:
        _REGISTERED[name or klass.__name__] = klass
        return klass

    return register(cls) if cls is not None else register


def _builtin_classes() -> dict[str, type]:
    classes = {name: obj for name, obj in vars(layers_lib).items() if isinstance(obj, type) and issubclass(obj, Layer)}
    classes["Functional"] = Functional
    for module in (regularizers, constraints, optimizers):
        classes.update({name: obj for name, obj in vars(module).items()
                        if isinstance(obj, type) and hasattr(obj, "get_config") and not name.startswith("_")})
    return classes


# -- configs to JSON ----------------------------------------------------------------------------------
def serialize(value: Any, where: str = "config") -> Any:
    """`value` as JSON-ready data: layers as `{"class_name", "config"}`, tuples marked, functions by name."""
    if isinstance(value, Layer):
        return {"class_name": type(value).__name__, "module": type(value).__module__,
                "config": serialize(value.get_config(), f"{where}.{value.name}")}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return {"dtype": np.dtype(value).name}
    if isinstance(value, tuple):
        return {"tuple": [serialize(v, where) for v in value]}
    if isinstance(value, list):
        return [serialize(v, where) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise SavingError(f"cannot save {where}: a dict with non-string keys {list(value)!r}")
        return {"dict": {k: serialize(v, f"{where}.{k}") for k, v in value.items()}}
    if hasattr(value, "get_config") and not isinstance(value, type):
        return {"class_name": type(value).__name__, "module": type(value).__module__,
                "config": serialize(value.get_config(), where)}
    if callable(value) and not isinstance(value, type):
        return _serialize_function(value, where)
    raise SavingError(f"cannot save {where}: {type(value).__name__} {value!r} is not a number, string, layer or "
                      "named function")


def _serialize_function(fn: Callable, where: str) -> Any:
    for registry in (activations, initializers):
        try:
            name = registry.name_of(fn) if hasattr(registry, "name_of") else None
            if name is not None and registry.get(name) is fn:
                return name
        except (ValueError, KeyError):
            pass
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or "<" in qualname:
        raise SavingError(f"cannot save {where}: the function {fn!r} has no importable name (a lambda or a "
                          "nested function); define it at module level")
    return {"function": f"{module}:{qualname}"}


# -- JSON to configs ----------------------------------------------------------------------------------
class _Loader:
    def __init__(self, custom_objects: dict[str, Any] | None, safe_mode: bool) -> None:
        self.classes = {**_builtin_classes(), **_REGISTERED, **(custom_objects or {})}
        self.custom = dict(custom_objects or {})
        self.safe_mode = safe_mode

    def value(self, data: Any) -> Any:
        if isinstance(data, list):
            return [self.value(v) for v in data]
        if not isinstance(data, dict):
            return data
        if set(data) == {"tuple"}:
            return tuple(self.value(v) for v in data["tuple"])
        if set(data) == {"dict"}:
            return {k: self.value(v) for k, v in data["dict"].items()}
        if set(data) == {"dtype"}:
            return np.dtype(data["dtype"]).name
        if set(data) == {"function"}:
            return self.function(data["function"])
        if "class_name" in data and "config" in data:
            return self.instance(data)
        if set(data) == {"tensor"}:  # graph references stay as they are
            return data
        raise SavingError(f"unrecognised entry in the model config: {sorted(data)}")

    def instance(self, data: dict) -> Any:
        name = data["class_name"]
        cls = self.classes.get(name)
        if cls is None:
            raise SavingError(f"the file names class {name!r} (from {data.get('module', '?')}), which is not a "
                              f"jaxnet_lite layer: pass custom_objects={{{name!r}: {name}}} to load_model, or "
                              "decorate the class with jaxnet_lite.saving.register_serializable")
        config = self.value(data["config"])
        if isinstance(cls, type) and issubclass(cls, Functional):
            return cls.from_config(config)
        if hasattr(cls, "from_config"):
            return cls.from_config(config)
        return cls(**config)

    def function(self, dotted: str) -> Callable:
        module, _, qualname = dotted.partition(":")
        for key in (qualname, dotted):
            if key in self.custom:
                return self.custom[key]
        if self.safe_mode:
            raise SavingError(
                f"the model refers to the Python function {dotted}; loading it would import and run code from "
                f"{module!r}. Pass custom_objects={{{qualname!r}: fn}} to load_model, or safe_mode=False if you "
                "trust this file")
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
        return target


# -- the model file -----------------------------------------------------------------------------------
def save_model(model: Any, filepath: str | os.PathLike, *, include_optimizer: bool = True) -> None:
    """Write `model` (architecture, weights, compile arguments, optionally the optimizer state) to one file."""
    path = os.fspath(filepath)
    if not path.endswith(".keras"):
        raise SavingError(f"model.save: the file name must end in .keras, got {path!r} (use save_weights for "
                          "weights only)")
    architecture = serialize(model, "model")
    compile_config = _compile_config(model)
    trainer = getattr(model, "_trainer", None)
    params, state = model.variables
    tree: dict[str, Any] = {"params": params, "state": state}
    with_optimizer = include_optimizer and compile_config is not None and trainer is not None and trainer.engine.has_state
    if with_optimizer:
        ts = trainer.train_state
        tree.update(opt_state=ts.opt_state, step=ts.step, rng=ts.rng)
    checkpoint.save(path, tree, metadata={
        "kind": "model", "format": FORMAT, "model": model.name, "architecture": architecture,
        "compile": compile_config, "input_shape": serialize(_built_input_shape(model, params)),
        "optimizer_state": with_optimizer,
    })


def _built_input_shape(model: Any, params: Any) -> Any:
    shape = model.declared_input_shape
    if shape is not None:
        return shape
    trainer = getattr(model, "_trainer", None)
    shapes = getattr(getattr(trainer, "engine", None), "input_shape", None)
    if shapes is not None:
        return shapes
    raise SavingError(f"model.save: {model.describe()} has no known input shape; declare input_shape= or "
                      "build it (fit, or init with an input shape) first")


def _compile_config(model: Any) -> dict | None:
    config = getattr(model, "_compile_arguments", None)
    if config is None:
        return None
    try:
        return serialize(config, "compile arguments")
    except SavingError as e:
        warnings.warn(f"model.save: the compile arguments cannot be saved ({e}); the model will load "
                      "uncompiled: call compile() after load_model", stacklevel=3)
        return None


def load_model(filepath: str | os.PathLike, custom_objects: dict[str, Any] | None = None, compile: bool = True,
               safe_mode: bool = True) -> Any:
    """The model saved at `filepath`, compiled as it was saved (with its optimizer state when saved).

    Predicts exactly as the saved model did. Classes outside jaxnet_lite load only when named in
    `custom_objects` or registered; functions (a `Lambda`'s) only with `safe_mode=False` or `custom_objects`.
    """
    metadata = checkpoint.read_metadata(filepath)
    if metadata.get("kind") != "model" or metadata.get("format") != FORMAT:
        raise SavingError(f"'{os.fspath(filepath)}' is not a model saved by model.save (it is "
                          f"{'a weights or training checkpoint' if 'params' in checkpoint.read_entries(filepath) else 'another checkpoint'}); "
                          "build the model in code and use load_weights")
    loader = _Loader(custom_objects, safe_mode)
    model = loader.value(metadata["architecture"])
    if not isinstance(model, Layer):
        raise SavingError(f"'{os.fspath(filepath)}': its architecture is not a layer")
    input_shape = loader.value(metadata["input_shape"])
    input_shape = [tuple(s) for s in input_shape] if isinstance(input_shape, list) else tuple(input_shape)
    compile_config = loader.value(metadata["compile"]) if metadata.get("compile") else None
    if compile and compile_config is not None:
        model.compile(**compile_config)
    abstract = jax.eval_shape(lambda k: model.init(k, input_shape), jax.random.key(0))
    if compile and compile_config is not None and metadata.get("optimizer_state"):
        trainer = model.trainer
        trainer.engine.ensure_state(input_shape)
        trainer.train_state = trainer.engine.place(checkpoint.restore(filepath, target=trainer.train_state))
        return model
    restored = checkpoint.restore(filepath, target={"params": abstract.params, "state": abstract.state},
                                  only=("params", "state"))
    model.variables = Variables(restored["params"], restored["state"])
    return model
