"""Training: the pure train/eval steps, `TrainState`, the `Trainer` and Keras callbacks."""

from jaxnet_lite.training.state import TrainState
from jaxnet_lite.training.step import make_eval_step, make_train_step

__all__ = ["TrainState", "make_eval_step", "make_train_step"]
