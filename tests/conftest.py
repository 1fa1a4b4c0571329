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

# XLA:CPU compiles slowly (a `jax.random.uniform` of a new shape takes about a second), and the suite
# compiles the same small programs in many processes: both xdist workers and every subprocess a test
# starts. JAX's persistent compilation cache, shared through the environment, compiles each once per
# machine. JAX reads these variables when it is imported, which no test has done yet.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(REPO_ROOT / ".cache" / "jax-compilation"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
try:  # a size cap needs filelock; without it JAX fails every cache read, so the cache is left uncapped
    import filelock  # noqa: F401

    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 << 30))
except ImportError:
    pass

# Level 0 of XLA's backend (LLVM) optimisations compiles about twice as fast, and compiling is most of this
# suite's time: its programs are small and run a few times each. Subprocesses the tests start inherit it;
# the demo, which trains for hundreds of epochs, runs without it (tests/test_cli.py).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()


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
