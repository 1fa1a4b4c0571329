"""Training: `TrainState`, the pure train/eval steps, the one epoch loop, the `Trainer` and callbacks.

It knows models only through the layer protocol: it imports no model class.
"""

from jaxnet_lite.training.state import TrainState
from jaxnet_lite.training.step import make_eval_step, make_train_step
from jaxnet_lite.training.trainer import Trainer

__all__ = ["TrainState", "Trainer", "make_eval_step", "make_train_step"]
