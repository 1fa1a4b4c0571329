"""jaxnet_lite: a functional deep-learning engine on JAX with a Keras surface.

    import jaxnet_lite as keras          # the Keras tutorial spelling works as written
    from jaxnet_lite import Sequential, Model, Input
    from jaxnet_lite.layers import Dense, Conv2D, MaxPooling2D, Flatten, Dropout
"""

__version__ = "0.1.0"

from jaxnet_lite import (  # noqa: E402
    activations,
    callbacks,
    checkpoint,
    data,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    optimizers,
    testing,
    utils,
)
from jaxnet_lite.core import Layer, LayerError, Variables  # noqa: E402
from jaxnet_lite.models import Input, Model, Sequential  # noqa: E402
from jaxnet_lite.training import TrainState, make_eval_step, make_train_step  # noqa: E402
from jaxnet_lite.training.trainer import Trainer  # noqa: E402

__all__ = [
    "Input",
    "Layer",
    "LayerError",
    "Model",
    "Sequential",
    "TrainState",
    "Trainer",
    "Variables",
    "activations",
    "callbacks",
    "checkpoint",
    "data",
    "datasets",
    "initializers",
    "layers",
    "losses",
    "make_eval_step",
    "make_train_step",
    "metrics",
    "optimizers",
    "testing",
    "utils",
]
