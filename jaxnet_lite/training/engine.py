"""`Engine`: the training state of one model and the compiled programs that move it.

It holds the `TrainState`, places it (and data) on the devices, and builds the compiled steps, chunks
of steps, whole epochs and evaluations from `loop.py`, cached per shape. Data sources drive it;
the `Trainer` puts the Keras API on top. Nothing here syncs with the host unless asked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnet_lite import losses as losses_lib
from jaxnet_lite import optimizers as optimizers_lib
from jaxnet_lite.core import Layer, Variables, iter_layers
from jaxnet_lite.training import loop, processes
from jaxnet_lite.training.device_copies import DeviceCopies
from jaxnet_lite.training.distribution import (
    DataParallel,
    DeviceMesh,
    Distribution,
    get_distribution,
    train_state_shardings,
)
from jaxnet_lite.training.state import TrainState
from jaxnet_lite.training.step import MetricSet, Objective
from jaxnet_lite.training.trainable import trainable_mask

_SMALL_ARRAY_BYTES = 1 << 20  # below this, `jnp.asarray` moves an array to the device faster than `device_put`


def choose_steps_per_execution(model: Layer, steps: int, backend: str | None = None) -> int:
    """How many steps to run per dispatch ("auto").

    Measured on a 2-core CPU (docs/design.md): a `lax` loop over steps made the tutorial MLP 2.3x faster
    per step, but made conv models 7x slower, because XLA:CPU compiles convolution gradients inside loop
    bodies poorly. So on CPU, a model with any layer that says `slow_in_cpu_loops` runs one step per
    dispatch and others run up to 64 steps per dispatch; on accelerators loops behave, so up to 64 steps
    run per dispatch always.
    """
    backend = backend or jax.default_backend()
    if backend == "cpu" and any(layer.slow_in_cpu_loops for layer in iter_layers(model)):
        return 1
    return max(1, min(steps, 64))


def means(host_sums: dict) -> dict[str, float]:
    """Exact means from sums already on the host, in sorted key order (as Keras logs them); a weighted
    metric is divided by its own weight total (`count/<name>`), 0 when that is 0."""

    def mean(key: str) -> float:
        total = float(host_sums.get(f"count/{key}", host_sums["count"]))
        return float(host_sums[key]) / total if total > 0 else 0.0

    return {k: mean(k) for k in sorted(host_sums) if not k.startswith("count")}


def resolve_distribution(distribution: Distribution | None, mesh: Mesh | None) -> Distribution | None:
    """The distribution a model trains under: the one given, else a `mesh` to split the batch over, else the
    global one (`set_distribution`), else `DataParallel` over every device when there are several."""
    if distribution is not None and mesh is not None:
        raise ValueError("pass distribution= or mesh=, not both (a mesh is DataParallel over its devices)")
    if distribution is not None and not isinstance(distribution, Distribution):
        raise TypeError(f"distribution must be a DataParallel or ModelParallel, got {type(distribution).__name__}")
    if mesh is not None:
        return DataParallel(DeviceMesh.from_backend_mesh(mesh))
    distribution = distribution if distribution is not None else get_distribution()
    if distribution is None and jax.device_count() > 1:
        return DataParallel()
    return distribution


def read_logs(sums: dict) -> dict[str, float]:
    """Means of device-side sums (one host transfer)."""
    return means(jax.device_get(sums))


class Engine:
    """Train state, placement and compiled programs for one model, loss, optimizer and metric set."""

    def __init__(self, model: Layer, loss: losses_lib.Loss, optimizer: optax.GradientTransformation,
                 metric_set: MetricSet, *, seed: int = 0, steps_per_execution: int | str = "auto",
                 mesh: Mesh | None = None, variables: Any = None, loss_weights: Any = None,
                 distribution: Distribution | None = None) -> None:
        if steps_per_execution != "auto" and (not isinstance(steps_per_execution, int) or steps_per_execution < 1):
            raise ValueError(f"steps_per_execution must be 'auto' or a positive int, got {steps_per_execution!r}")
        self.model, self.loss, self.optimizer, self.metric_set = model, loss, optimizer, metric_set
        self.objective = Objective.create(model, loss, loss_weights)
        self.seed = seed
        self.steps_per_execution = steps_per_execution
        self.distribution = resolve_distribution(distribution, mesh)
        self.mesh = self.distribution.device_mesh.backend_mesh if self.distribution is not None else None
        self._state_shardings: TrainState | None = None  # set when some variable is split (ModelParallel)
        # XLA:CPU can deadlock with several multi-device programs in flight (see `settle`).
        self._sync_dispatch = self.mesh is not None and self.mesh.devices.flat[0].platform == "cpu"
        self._initial_variables = variables
        self._train_state: TrainState | None = None
        self.input_shape: Any = None  # the example shape the state was built for
        self.compiled: dict[Any, Any] = {}
        self.device_copies = DeviceCopies()  # NumPy data already copied to the device, reused while unchanged

    # -- state ------------------------------------------------------------------------------------
    def ensure_state(self, input_shape: Any) -> TrainState:
        """Create the training state on first need; a model without a declared input shape waits for data."""
        if self._train_state is None:
            self.input_shape = input_shape if input_shape is not None else self.model.declared_input_shape
            abstract = jax.eval_shape(lambda k: self.model.init(k, input_shape), jax.random.key(0))
            mask = trainable_mask(self.model, abstract.params)
            if not all(jax.tree.leaves(mask)):  # some layer has trainable=False: its params never move
                self.optimizer = optimizers_lib.freeze(self.optimizer, mask)
            if self.distribution is not None and self.distribution.shards_variables:
                self._train_state = self._create_sharded(input_shape)
            else:
                ts = TrainState.create(self.model, self.optimizer, self.seed, input_shape=input_shape,
                                       variables=self._initial_variables)
                self._train_state = self.place(ts)
        return self._train_state

    def _create_sharded(self, input_shape: Any) -> TrainState:
        """The train state created directly in its layout, so no device ever holds a whole split variable."""

        def create(variables: Any) -> TrainState:
            return TrainState.create(self.model, self.optimizer, self.seed, input_shape=input_shape,
                                     variables=variables)

        abstract = jax.eval_shape(create, self._initial_variables)
        self._state_shardings = train_state_shardings(self.distribution, abstract, self.optimizer)
        return jax.jit(create, out_shardings=self._state_shardings)(self._initial_variables)

    @property
    def has_state(self) -> bool:
        return self._train_state is not None

    @property
    def train_state(self) -> TrainState:
        if self._train_state is None:
            raise RuntimeError(
                f"{self.model.describe()} has no input shape yet: its variables are created by the first "
                "fit/evaluate, or declare input_shape= on the first layer"
            )
        return self._train_state

    @train_state.setter
    def train_state(self, value: TrainState) -> None:
        self._train_state = value

    @property
    def variables(self) -> Variables:
        return Variables(self.train_state.params, self.train_state.state)

    def zero_sums(self) -> dict[str, jax.Array]:
        return self.place(loop.zero_sums(self.sum_names()))

    def sum_names(self) -> list[str]:
        return self.metric_set.sum_names

    # -- placement --------------------------------------------------------------------------------
    def _replicated(self) -> Any:
        return NamedSharding(self.mesh, PartitionSpec()) if self.mesh is not None else None

    def place(self, tree: Any) -> Any:
        """`tree` (already device arrays) replicated over the mesh (a `TrainState` in its layout when variables
        are split), or as it is on one device."""
        if self.mesh is None:
            return tree
        if self._state_shardings is not None and isinstance(tree, TrainState):
            return processes.put(tree, self._state_shardings)
        return processes.put(tree, self._replicated())

    def to_device(self, tree: Any) -> Any:
        """`tree` on the device (replicated over a mesh). `jax.Array`s are taken as they are; a NumPy array
        is copied once and the copy reused while the array is passed again unchanged (`device_copies.py`)."""

        def put(a):
            if self.mesh is not None:
                return processes.put(a, self._replicated())
            # Measured on CPU: `jnp.asarray` is quicker for a small array (17 against 28 µs), but holds two
            # copies of a large one (MNIST's 188 MB: 171 against 91 ms, 390 against 184 MB of peak memory).
            return jnp.asarray(a) if a.nbytes < _SMALL_ARRAY_BYTES else jax.device_put(a)

        def one(a):
            if isinstance(a, jax.Array):
                return put(a)
            return self.device_copies.get(np.asarray(a), put)

        return jax.tree.map(one, tree)

    def scalar(self, value: int) -> Any:
        """An int argument of a compiled program (an epoch number), put on the device explicitly, so a run on
        data already there makes no implicit transfer; with a mesh it stays an int, which jit replicates."""
        return jax.device_put(np.int32(value)) if self.mesh is None else value

    def shard_batch(self, tree: Any) -> Any:
        """Inside a compiled program: split the batch axis over the mesh's devices."""
        if self.mesh is None:
            return tree
        spec = NamedSharding(self.mesh, PartitionSpec(self.distribution.batch_dim_name))
        return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, spec), tree)

    def hold_layout(self, ts: TrainState) -> TrainState:
        """Inside a compiled program: keep a new train state in its layout when variables are split. Left to
        itself, XLA's propagation moved a replicated bias next to a split kernel onto the "model" axis."""
        if self._state_shardings is None:
            return ts
        return jax.lax.with_sharding_constraint(ts, self._state_shardings)

    def padded_batch_size(self, batch_size: int) -> int:
        """`batch_size` rounded up to a multiple of the devices along the batch axis (the extra rows weigh 0)."""
        devices = self.distribution.num_model_replicas if self.distribution is not None else 1
        return -(-batch_size // devices) * devices

    def settle(self, tree: Any) -> Any:
        """`tree`, waited for when the mesh spans several CPU devices, so one dispatch is in flight at most.

        On XLA:CPU, with several sharded programs queued, one device's launch can wait for a slot while
        another device's program waits for it inside an all-reduce: `fit` of the tutorial CNN on 2 or 8
        simulated CPU devices hung until XLA aborted (docs/design-notes.md). Accelerators are not affected.
        """
        if self._sync_dispatch:
            jax.block_until_ready(tree)
        return tree

    # -- dispatch planning ------------------------------------------------------------------------
    def steps_per_dispatch(self, steps: int) -> int:
        if self.steps_per_execution == "auto":  # walks the model's layers: decide once per epoch length
            return self.cached(("steps_per_execution", steps), lambda: choose_steps_per_execution(self.model, steps))
        return min(int(self.steps_per_execution), steps)

    def in_one_dispatch(self, k: int, steps: int, watched: bool) -> bool:
        """Whether all `steps` run as one dispatch: they fit in `k`, or loops pay ("auto" chose k > 1) and
        nobody watches between steps. One program then serves the epoch instead of a chunk and a tail."""
        return k >= steps or (k > 1 and self.steps_per_execution == "auto" and not watched)

    def output_shape(self, input_shape: Any) -> Any:
        """The model's output shape for `input_shape` (no batch axis), remembered: the model's walk over
        its layers took about a sixth of a small `evaluate` call's time."""
        key = tuple(input_shape) if isinstance(input_shape, list) else input_shape
        return self.cached(("output_shape", key), lambda: self.model.output_shape(input_shape))

    # -- compiled programs (cached per shape) -------------------------------------------------------
    def cached(self, key: tuple, build: Callable[[], Any]) -> Any:
        if key not in self.compiled:
            self.compiled[key] = build()
        return self.compiled[key]

    def train_epoch_fn(self, n: int, steps: int, batch_size: int, padded: int, shuffle: bool) -> Callable:
        """`(ts, x, y, epoch) -> (ts, sums)`: a whole epoch over device arrays in one dispatch."""
        return self.cached(("epoch", n, steps, batch_size, padded, shuffle), lambda: loop.make_train_epoch(
            self.objective, self.metric_set, self.optimizer, self.sum_names(), n, steps, batch_size, padded,
            shuffle, self.shard_batch, self.hold_layout))

    def epoch_setup_fn(self, n: int, steps: int, batch_size: int, padded: int, shuffle: bool) -> Callable:
        """`(rng, epoch) -> (index, weight, zero sums)` for epochs run in chunks."""
        return self.cached(("setup", n, steps, batch_size, padded, shuffle), lambda: loop.make_epoch_setup(
            self.sum_names(), n, steps, batch_size, padded, shuffle))

    def train_chunk_fn(self, k: int) -> Callable:
        """`(ts, sums, x, y, index, weight, start) -> (ts, sums)`: `k` steps over device arrays."""
        return self.cached(("train", k), lambda: loop.make_train_chunk(
            self.objective, self.metric_set, self.optimizer, k, self.shard_batch, self.hold_layout))

    def train_batch_fn(self) -> Callable:
        """`(ts, sums, x, y, weight) -> (ts, sums)`: one step on a batch that came from the host."""
        return self.cached(("stream",), lambda: loop.make_train_batch(
            self.objective, self.metric_set, self.optimizer, self.hold_layout))

    def eval_all_fn(self, n: int, steps: int, batch_size: int, padded: int) -> Callable:
        """`(params, state, x, y) -> sums`: a whole evaluation over device arrays in one dispatch."""
        return self.cached(("eval_all", n, steps, batch_size, padded), lambda: loop.make_eval_all(
            self.objective, self.metric_set, self.sum_names(), n, steps, batch_size, padded, self.shard_batch))

    def eval_chunk_fn(self, k: int) -> Callable:
        """`(params, state, sums, x, y, index, weight, start) -> sums`: `k` inference steps."""
        return self.cached(("eval", k), lambda: loop.make_eval_chunk(
            self.objective, self.metric_set, k, self.shard_batch))

    def eval_batch_fn(self) -> Callable:
        """`(params, state, sums, x, y, weight) -> sums`: inference on a batch that came from the host."""
        return self.cached(("eval_stream",), lambda: loop.make_eval_batch(self.objective, self.metric_set))
