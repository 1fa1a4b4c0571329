"""Keras' weight constraints: `MaxNorm`, `NonNeg`, `UnitNorm`, `MinMaxNorm`, by name too (`"max_norm"`).

Give them to layers (`Dense(64, kernel_constraint=MaxNorm(3))`); they project the weights after every
optimizer update. In the functional core, `model.constrain(params)` is that projection as a pure function.
"""

from jaxnet_lite.core.weight_rules import Constraint, MaxNorm, MinMaxNorm, NonNeg, UnitNorm
from jaxnet_lite.core.weight_rules import get_constraint as get

max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm

__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "get", "max_norm", "min_max_norm",
           "non_neg", "unit_norm"]
