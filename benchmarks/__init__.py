"""Reproducible speed runs of jaxnet_lite against a hand-written JAX + Optax reference and peers.

Run `python -m benchmarks --help` (or `python benchmarks/run.py`). The design (one worker process per
contender, windows alternated round-robin between them, medians and ratios measured in the same run)
is explained in `benchmarks/README.md`; results live in `benchmarks/RESULTS.md`.
"""
