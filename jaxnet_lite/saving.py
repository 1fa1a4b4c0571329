"""Keras' `keras.saving`: `load_model`, `register_serializable` (model files hold no pickle and no code)."""

from jaxnet_lite.models.saving import SavingError, load_model, register_serializable, save_model

__all__ = ["SavingError", "load_model", "register_serializable", "save_model"]
