"""jaxnet_lite: a functional deep-learning engine on JAX with a Keras surface."""

__version__ = "0.1.0"
