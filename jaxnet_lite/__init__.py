"""jaxnet_lite: a functional deep-learning engine on JAX with a Keras surface.

    import jaxnet_lite as keras          # the Keras tutorial spelling works as written
    from jaxnet_lite import Sequential, Model, Input
    from jaxnet_lite.layers import Dense, Conv2D, MaxPooling2D, Flatten, Dropout
"""

from typing import Any

from jaxnet_lite._version import __version__
from jaxnet_lite import (
    activations,
    callbacks,
    checkpoint,
    constraints,
    data,
    datasets,
    distributed,
    initializers,
    layers,
    losses,
    metrics,
    mixed_precision,
    optimizers,
    regularizers,
    utils,
)
from jaxnet_lite.core import Layer, LayerError, Variables
from jaxnet_lite.models import Input, Model, Sequential
from jaxnet_lite import distribution, models, saving
from jaxnet_lite.training import Trainer, TrainState, make_eval_step, make_train_step

__all__ = [
    "Input",
    "Layer",
    "LayerError",
    "Model",
    "Sequential",
    "TrainState",
    "Trainer",
    "Variables",
    "__version__",
    "activations",
    "callbacks",
    "checkpoint",
    "constraints",
    "data",
    "datasets",
    "distributed",
    "distribution",
    "initializers",
    "layers",
    "losses",
    "make_eval_step",
    "make_train_step",
    "metrics",
    "mixed_precision",
    "models",
    "optimizers",
    "regularizers",
    "saving",
    "testing",
    "utils",
]


def __getattr__(name: str) -> Any:
    """`jaxnet_lite.testing` (the gradient-test kit) is imported on first use, not with the package."""
    if name == "testing":
        import importlib

        return importlib.import_module("jaxnet_lite.testing")
    raise AttributeError(f"module 'jaxnet_lite' has no attribute {name!r}")
