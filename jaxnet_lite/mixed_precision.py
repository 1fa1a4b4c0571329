"""Mixed precision, as Keras 3 spells it: `keras.mixed_precision` with its names.

    from jaxnet_lite import mixed_precision
    mixed_precision.set_global_policy("mixed_bfloat16")    # layers built from now on compute in bfloat16
    model = Sequential([Dense(64, activation="relu"), Dense(10, activation="softmax")])
    mixed_precision.set_global_policy("float32")           # back to the default

Params and optimizer state stay float32; layers compute in the policy's compute dtype; normalization
statistics, the loss and the metrics run in float32. Under "mixed_float16" `compile` (and `Trainer`)
wrap the optimizer in `LossScaleOptimizer`, as Keras does; a hand-built train step takes it explicitly.
"""

from jaxnet_lite.core.dtype_policy import DTypePolicy, backend_supports, global_policy, set_global_policy
from jaxnet_lite.loss_scaling import (
    LossScaleOptimizer,
    LossScaleState,
    auto_loss_scaling,
    computes_in_float16,
    loss_scale_of,
)

Policy = DTypePolicy  # Keras' older name
dtype_policy = global_policy  # Keras 3's `keras.config.dtype_policy`
set_dtype_policy = set_global_policy  # Keras 3's `keras.config.set_dtype_policy`

__all__ = [
    "DTypePolicy",
    "LossScaleOptimizer",
    "LossScaleState",
    "Policy",
    "auto_loss_scaling",
    "backend_supports",
    "computes_in_float16",
    "dtype_policy",
    "global_policy",
    "loss_scale_of",
    "set_dtype_policy",
    "set_global_policy",
]
