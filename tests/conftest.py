"""Shared test configuration: Hypothesis profiles and the location of the shared data sets."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# "ci" keeps the suite inside its time budget on 2 cores; "dev" digs deeper (HYPOTHESIS_PROFILE=dev).
settings.register_profile(
    "ci", max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("JAXNET_LITE_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (or $JAXNET_LITE_DATA_DIR); skips when the MNIST files are not there."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"MNIST data directory {SHARED_DATA / 'mnist'} is absent (set JAXNET_LITE_DATA_DIR)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def keras():
    """Keras 3 on its JAX backend, the oracle the Keras-fidelity tests compare with; skips without it."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("the Keras oracle runs on Keras' JAX backend (set KERAS_BACKEND=jax)")
    return keras
