"""Keras' weight penalties: `L1`, `L2`, `L1L2`, `OrthogonalRegularizer`, by name too (`"l2"`).

Give them to layers (`Dense(64, kernel_regularizer=L2(1e-4))`); the penalty joins the training and
evaluation loss as in Keras. In the functional core, `model.penalty(params)` is the same penalty as
a pure function of the params, to add in a hand-written loss.
"""

from jaxnet_lite.core.weight_rules import L1, L2, L1L2, OrthogonalRegularizer, Regularizer
from jaxnet_lite.core.weight_rules import get_regularizer as get

l1, l2, l1_l2 = L1, L2, L1L2

__all__ = ["L1", "L1L2", "L2", "OrthogonalRegularizer", "Regularizer", "get", "l1", "l1_l2", "l2"]
