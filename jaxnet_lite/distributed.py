"""Several processes (hosts), one program: start `jax.distributed` and ask which process this is.

Every process runs the same script. Call `initialize()` first, before anything else touches JAX's
devices; then the devices of all processes form one global mesh and `fit` trains on all of them:

    import jaxnet_lite as jnl
    jnl.distributed.initialize()          # reads the environment; a no-op for a lone process
    rows = jnl.distributed.process_rows(len(x_all))
    model.fit(x_all[rows], y_all[rows], batch_size=128)   # each process passes its block of rows

Where it reads its settings (arguments first):

- the coordinator `host:port` (process 0's address): `JAX_COORDINATOR_ADDRESS`, the name
  `jax.distributed.initialize` itself reads;
- the process count and this process's index: `JAXNET_LITE_NUM_PROCESSES` and `JAXNET_LITE_PROCESS_ID`
  (JAX reads no variable for them), which `jaxnet_lite.launch` sets;
- otherwise JAX's own cluster detection (SLURM, Open MPI, Kubernetes, Cloud TPU) fills in what is missing.

On CPU the processes talk over gloo (`jax_cpu_collectives_implementation`), set here if unset.
"""

from __future__ import annotations

import operator
import os
import sys
from collections.abc import Mapping

import jax

from jaxnet_lite.training.processes import barrier, is_primary

__all__ = ["initialize", "is_primary", "process_index", "process_count", "process_rows", "barrier",
           "COORDINATOR_ENV", "NUM_PROCESSES_ENV", "PROCESS_ID_ENV"]

COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "JAXNET_LITE_NUM_PROCESSES"
PROCESS_ID_ENV = "JAXNET_LITE_PROCESS_ID"


def _int_from_env(name: str, environ: Mapping[str, str]) -> int | None:
    text = environ.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"distributed.initialize: environment variable {name}={text!r} is not an integer") from None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, local_device_ids: list[int] | None = None,
               initialization_timeout: int = 300) -> bool:
    """Join the run's other processes (`jax.distributed.initialize`); returns whether it did.

    Arguments left out are read from the environment (module docstring). A run of one process (nothing
    given, nothing in the environment, no cluster detected, or `num_processes=1`) is left alone and
    returns False; so is a process that already joined.
    """
    environ = os.environ
    coordinator_address = coordinator_address or environ.get(COORDINATOR_ENV) or None
    if num_processes is None:
        num_processes = _int_from_env(NUM_PROCESSES_ENV, environ)
    if process_id is None:
        process_id = _int_from_env(PROCESS_ID_ENV, environ)
    if jax.distributed.is_initialized() or num_processes == 1:
        return False
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"distributed.initialize: num_processes must be at least 1, got {num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"distributed.initialize: process_id must be in 0..{num_processes - 1}, got {process_id}")
    if coordinator_address is None and num_processes is None and process_id is None and not _cluster_detected():
        return False
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id, local_device_ids=local_device_ids,
                               initialization_timeout=initialization_timeout)
    _exit_at_uncaught_error()
    return True


def _exit_at_uncaught_error() -> None:
    """After an uncaught exception's traceback, exit at once (status 1, or 130 for Ctrl-C).

    A normal exit runs `jax.distributed.shutdown`, which waits for every other process at a barrier; a
    process that failed while the others still train would hang there for minutes instead of exiting, so
    neither a launcher nor a cluster manager would learn of the failure and stop the rest.
    """
    previous = sys.excepthook

    def hook(kind, value, traceback):
        previous(kind, value, traceback)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(130 if issubclass(kind, KeyboardInterrupt) else 1)

    sys.excepthook = hook


def _cluster_detected() -> bool:
    """Whether one of the cluster managers JAX detects by itself started this process."""
    markers = ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "JOBSET_NAME", "TPU_WORKER_HOSTNAMES")
    return any(name in os.environ for name in markers)


def process_index() -> int:
    """This process's index, 0 to `process_count() - 1` (0 for a lone process)."""
    return jax.process_index()


def process_count() -> int:
    """How many processes run this program (1 without `initialize`)."""
    return jax.process_count()


def process_rows(n: int) -> slice:
    """This process's block of `n` rows: contiguous, in process order, sizes differing by at most one.

    `fit(x[process_rows(len(x))], ...)` on every process trains on all `n` rows, as one process given
    `x` whole would; a process that loads its data itself loads just these rows.
    """
    try:
        rows = operator.index(n)  # ints and NumPy integers
    except TypeError:
        rows = -1
    if rows < 0 or isinstance(n, bool):
        raise ValueError(f"process_rows: n must be a non-negative integer (a row count), got {n!r}")
    index, count = jax.process_index(), jax.process_count()
    return slice(index * rows // count, (index + 1) * rows // count)
