"""The applications on top: the `jaxnet-lite` command (`demo`, `train`), run folders and plots.
They use only the public API."""
