"""Recurrent layers: `SimpleRNN`, `LSTM`, `GRU`, with Keras 3's arguments, defaults and weight layouts.

Each is one `lax.scan` over time. The input projection `x @ kernel + bias` runs for all time steps at
once before the loop (one large matmul, on the time-major input so the wide projection is never
transposed), so the loop body is one fused matmul `h @ recurrent_kernel` per step plus the gate
arithmetic. The step is differentiated under `jax.checkpoint`, keeping only that matmul's output per
step (`step_checkpoint_policy`), and without `return_sequences` only the final state leaves the loop:
XLA:CPU runs every op of a loop body as a call of its own, so each saved intermediate (a stacking
write forward, a read back) costs time on every step. Weights copied from Keras give Keras' outputs:
`kernel` (features, gates*units), `recurrent_kernel` (units, gates*units) with gates in Keras' order
(LSTM i, f, c, o; GRU z, r, h) and `bias` (gates*units,), or (2, 3*units) for GRU with
`reset_after=True`.

Masks (from `Embedding(mask_zero=True)`, `Masking`, or a `Masked` input) follow Keras: at a padded
step the state stays as it was and the output repeats the previous output (zeros with
`zero_output_for_mask=True`, which `Bidirectional` sets when it returns sequences).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxnet_lite import activations
from jaxnet_lite.core import Layer, LayerError, shape_str, split_rng
from jaxnet_lite.core.masking import as_bool_mask
from jaxnet_lite.core.shapes import as_int
from jaxnet_lite.core.threefry import bernoulli
from jaxnet_lite.layers.core import check_float, check_positive_int, get_initializer
from jaxnet_lite.layers.matmul import matmul_last_axis

_RATE = dict(within=lambda v: 0.0 <= v < 1.0, requirement="a number in [0, 1)")


class Recurrent(Layer):
    """What `SimpleRNN`, `LSTM` and `GRU` share: arguments, shapes, masks, dropout and the scan.

    Subclasses set `gates` and `state_count` and write either `activate(params, pre_activation, states)`,
    when a step's pre-activation is `x_t @ kernel + h @ recurrent_kernel + bias` (SimpleRNN, LSTM), or
    the general `cell(params, z_t, states, h) -> (output, states)`, where `z_t` is the input projection of
    one step and `h` the state the recurrent matmul reads (GRU).

    Input: a sequence (batch, time, features), or a list `[sequence, *initial_states]` (each state
    (batch, units)) to start from given states, as Keras' `initial_state=`. In a functional model write
    `layer(x, initial_state=[h, c])` or `layer(x, mask=m)` as in Keras.
    """

    gates: int = 1
    state_count: int = 1
    call_takes_mask = True
    #: Cost hint: the `jax.checkpoint` policy applied to one time step of the scan (None: plain autodiff,
    #: which stacks every intermediate of the gate arithmetic for the backward pass). Saving only the
    #: recurrent matmul and recomputing the elementwise gate math backward measured faster on CPU
    #: (benchmarks/RESULTS.md, "LSTM"); the values and gradients are the same.
    step_checkpoint_policy: Any = staticmethod(jax.checkpoint_policies.dots_saveable)
    #: Cost hint: where the input projection `x_t @ kernel + bias` runs: "cpu" (inside the loop body on
    #: the CPU backend, before the loop elsewhere), True (always inside) or False (always before). On
    #: XLA:CPU the small per-step matmul measured cheaper than writing, transposing and reading back the
    #: (time, batch, gates*units) projection and its gradient; on accelerators one large matmul before
    #: the loop is the usual choice (cuDNN's).
    project_inputs_in_loop: bool | str = "cpu"
    #: Cost hint for cells written as `activate`: with the projection in the loop, run a step's two
    #: matmuls as one, `[x_t, h] @ [kernel; recurrent_kernel]` (measured faster on CPU; same values).
    joint_matmul: bool = False
    weight_arguments = {"kernel": "kernel", "recurrent": "recurrent_kernel", "bias": "bias"}

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool | int = False,
        zero_output_for_mask: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("implementation", None)  # Keras' kernel-fusion switch: this layer always fuses.
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.units = check_positive_int(owner, "units", units)
        self.activation = _activation(owner, "activation", activation)
        self.recurrent_activation = _activation(owner, "recurrent_activation", recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = get_initializer(owner, "kernel_initializer", kernel_initializer)
        self.recurrent_initializer = get_initializer(owner, "recurrent_initializer", recurrent_initializer)
        self.bias_initializer = get_initializer(owner, "bias_initializer", bias_initializer)
        self.dropout = check_float(owner, "dropout", dropout, **_RATE)
        self.recurrent_dropout = check_float(owner, "recurrent_dropout", recurrent_dropout, **_RATE)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        if stateful:
            raise NotImplementedError(
                f"{owner}: stateful=True is not supported; pass the final states of one call as "
                "initial_state of the next (return_state=True) to carry state across batches"
            )
        self.unroll = _unroll(owner, unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.seed = seed
        # Set by `bind_call` on the copy that runs a graph node: the node's inputs include a mask tensor.
        self.mask_in_inputs = False

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return self.dropout > 0 or self.recurrent_dropout > 0

    # -- shapes -----------------------------------------------------------------------------------
    def _split_shapes(self, input_shape: Any) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
        if not isinstance(input_shape, list):
            return input_shape, []
        first, *rest = input_shape
        if self.mask_in_inputs:
            rest = rest[1:]
        return first, rest

    def check_input_shape(self, input_shape):
        seq, states = self._split_shapes(input_shape)
        if isinstance(seq, list) or len(seq) != 2:
            raise self.error(
                f"expects input of shape (timesteps, features) per example, got {shape_str(seq)}"
                + ("; add a time axis (Reshape((timesteps, features)) or x[:, None, :])" if len(seq) == 1 else "")
            )
        if states and (len(states) != self.state_count or any(tuple(s) != (self.units,) for s in states)):
            raise self.error(
                f"initial_state must be {self.state_count} state(s) of shape ({self.units},) per example, "
                f"got {shape_str(states)}"
            )

    def compute_output_shape(self, input_shape):
        (steps, _), _ = self._split_shapes(input_shape)
        out = (steps, self.units) if self.return_sequences else (self.units,)
        if self.return_state:
            return [out] + [(self.units,)] * self.state_count
        return out

    def compute_mask(self, x, mask):
        if isinstance(mask, list):
            mask = mask[0]
        out = mask if (self.return_sequences and mask is not None) else None
        return [out] + [None] * self.state_count if self.return_state else out

    # -- params -----------------------------------------------------------------------------------
    def make_variables(self, rng, input_shape):
        (_, features), _ = self._split_shapes(input_shape)
        k_rng, r_rng, b_rng = jax.random.split(rng, 3)
        width = self.gates * self.units
        params = {
            "kernel": self.kernel_initializer(k_rng, (features, width), self.dtype),
            "recurrent_kernel": self.recurrent_initializer(r_rng, (self.units, width), self.dtype),
        }
        if self.use_bias:
            params["bias"] = self.make_bias(b_rng)
        return params, {}

    def make_bias(self, rng: jax.Array) -> jax.Array:
        return self.bias_initializer(rng, (self.gates * self.units,), self.dtype)

    def input_bias(self, params: dict) -> jax.Array | None:
        """The bias added to the hoisted input projection."""
        return params.get("bias")

    # -- the recurrence ---------------------------------------------------------------------------
    def cell(self, params: dict, z_t: jax.Array, states: tuple, h_for_matmul: jax.Array) -> tuple[jax.Array, tuple]:
        """`(output, states)` of one step from its input projection `z_t` and the state `h_for_matmul`."""
        return self.activate(params, z_t + h_for_matmul @ params["recurrent_kernel"], states)

    def activate(self, params: dict, pre_activation: jax.Array, states: tuple) -> tuple[jax.Array, tuple]:
        """`(output, states)` from the full pre-activation `x_t @ kernel + h @ recurrent_kernel + bias`."""
        raise NotImplementedError  # pragma: no cover - a cell writes `activate` or `cell`

    def _split_inputs(self, x: Any, mask: Any) -> tuple[jax.Array, Any, list[jax.Array]]:
        if isinstance(x, (list, tuple)):
            seq, *rest = x
            if isinstance(mask, list):
                mask = mask[0]
            if self.mask_in_inputs:
                mask, rest = rest[0], rest[1:]
            return seq, mask, list(rest)
        if isinstance(mask, list):
            mask = mask[0]
        return x, mask, []

    def call(self, params, state, x, *, rng=None, training=False, mask=None):
        seq, mask, initial = self._split_inputs(x, mask)
        if not hasattr(seq, "ndim") or seq.ndim != 3:
            raise self.error(
                f"expects a batch of sequences of shape (batch, timesteps, features), got "
                f"{tuple(getattr(seq, 'shape', ())) or type(seq).__name__}"
            )
        batch, steps, features = seq.shape
        if features != params["kernel"].shape[0]:
            raise self.error(f"expects {params['kernel'].shape[0]} features per step to match its kernel "
                             f"{tuple(params['kernel'].shape)}, got input {tuple(seq.shape)}")
        if mask is not None:
            mask = as_bool_mask(mask)
            if mask.shape != (batch, steps):
                raise self.error(f"got a mask of shape {tuple(mask.shape)} for input {tuple(seq.shape)}; "
                                 f"expected ({batch}, {steps})")
        dtype = jnp.result_type(seq.dtype, params["kernel"].dtype)
        if initial:
            states = tuple(jnp.asarray(s, dtype) for s in initial)
            if len(states) != self.state_count or any(s.shape != (batch, self.units) for s in states):
                raise self.error(f"initial_state must be {self.state_count} array(s) of shape "
                                 f"({batch}, {self.units}), got {[tuple(s.shape) for s in states]}")
        else:
            states = tuple(jnp.zeros((batch, self.units), dtype) for _ in range(self.state_count))

        in_key, rec_key = split_rng(rng, 2) if training and self.stochastic else (None, None)
        if in_key is None and training and self.stochastic:
            raise self.error("needs an rng key when training with dropout: apply(..., rng=key, training=True)")
        if in_key is not None and self.dropout > 0:
            seq = seq * _dropout_mask(in_key, self.dropout, (batch, 1, features), seq.dtype)
        rec_mask = None
        if rec_key is not None and self.recurrent_dropout > 0:
            rec_mask = _dropout_mask(rec_key, self.recurrent_dropout, (batch, self.units), dtype)

        xs = jnp.swapaxes(seq, 0, 1)  # time-major: the scan runs over the leading axis
        bias = self.input_bias(params)
        in_loop = self.projects_in_loop()
        if not in_loop:  # (time, batch, gates*units): every step's projection at once
            xs = _project(xs, params["kernel"], bias)
        joint = in_loop and self.joint_matmul and type(self).activate is not Recurrent.activate
        if joint:  # [x_t, h] @ [kernel; recurrent_kernel]: one matmul per step
            stacked_kernel = jnp.concatenate([params["kernel"], params["recurrent_kernel"]], axis=0)
        step_mask = None if mask is None else jnp.swapaxes(mask, 0, 1)[..., None]
        # Every cell's output is its new first state, and a masked step keeps both: so without
        # return_sequences the output is the final state, unless masked steps output zeros.
        stack = self.return_sequences or (self.zero_output_for_mask and mask is not None)

        def step(carry, inputs):
            x_t, m_t = inputs
            h = carry[0] if rec_mask is None else carry[0] * rec_mask
            if joint:
                pre_activation = _project(jnp.concatenate([x_t, h], axis=-1), stacked_kernel, bias)
                out, new = self.activate(params, pre_activation, carry)
            else:
                out, new = self.cell(params, _project(x_t, params["kernel"], bias) if in_loop else x_t, carry, h)
            if m_t is not None:
                new = tuple(jnp.where(m_t, n, c) for n, c in zip(new, carry))
                out = jnp.where(m_t, out, jnp.zeros_like(out) if self.zero_output_for_mask else carry[0])
            return new, (out if stack else None)

        if self.step_checkpoint_policy is not None:
            step = jax.checkpoint(step, policy=self.step_checkpoint_policy, prevent_cse=False)
        final, outputs = lax.scan(step, states, (xs, step_mask), reverse=self.go_backwards,
                                  unroll=steps if self.unroll is True else max(1, int(self.unroll)))
        if not stack:
            y = final[0]
        else:
            if self.go_backwards:  # Keras returns the outputs in the order they were computed
                outputs = jnp.flip(outputs, axis=0)
            y = jnp.swapaxes(outputs, 0, 1) if self.return_sequences else outputs[-1]
        return ([y, *final] if self.return_state else y), state

    def projects_in_loop(self) -> bool:
        """Whether `x_t @ kernel` runs inside the loop body (`project_inputs_in_loop`, resolved for the
        default backend) rather than for all steps at once before it."""
        if self.project_inputs_in_loop == "cpu":
            return jax.default_backend() == "cpu"
        return bool(self.project_inputs_in_loop)

    # -- the functional API -----------------------------------------------------------------------
    def bind_call(self, inputs, *args, mask=None, initial_state=None, training=None, **kwargs):
        if args or kwargs:
            return super().bind_call(inputs, *args, **kwargs)
        if isinstance(inputs, (list, tuple)):
            inputs, *rest = inputs
            if initial_state is None and rest:
                initial_state = rest
        states = [] if initial_state is None else (
            list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state])
        if mask is None and not states:
            return inputs, self
        node_inputs = [inputs] + ([mask] if mask is not None else []) + states
        return node_inputs, self.configured(mask_in_inputs=mask is not None)


class SimpleRNN(Recurrent):
    """`h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)`, Keras' `SimpleRNN`."""

    joint_matmul = True

    def __init__(self, units: int, activation: Any = "tanh", **kwargs: Any) -> None:
        if "recurrent_activation" in kwargs:
            raise TypeError("SimpleRNN has no recurrent_activation argument")
        super().__init__(units, activation=activation, **kwargs)

    def activate(self, params, pre_activation, states):
        out = self.activation(pre_activation)
        return out, (out,)


class LSTM(Recurrent):
    """Keras' `LSTM`: gates i, f, c, o; `unit_forget_bias=True` starts the forget gate's bias at 1."""

    gates = 4
    state_count = 2
    joint_matmul = True

    def __init__(self, units: int, unit_forget_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def make_bias(self, rng):
        if not self.unit_forget_bias:
            return super().make_bias(rng)
        u = self.units
        parts = [self.bias_initializer(rng, (u,), self.dtype), jnp.ones((u,), self.dtype),
                 self.bias_initializer(rng, (2 * u,), self.dtype)]
        return jnp.concatenate(parts)

    def activate(self, params, pre_activation, states):
        _, c = states
        zi, zf, zc, zo = jnp.split(pre_activation, 4, axis=-1)
        i, f, o = self.recurrent_activation(zi), self.recurrent_activation(zf), self.recurrent_activation(zo)
        c = f * c + i * self.activation(zc)
        h = o * self.activation(c)
        return h, (h, c)


class GRU(Recurrent):
    """Keras' `GRU`: gates z, r, h; `reset_after=True` (the default, cuDNN's form) applies the reset gate
    after the recurrent matmul and keeps separate input and recurrent biases, `bias` of shape (2, 3*units)."""

    gates = 3

    def __init__(self, units: int, reset_after: bool = True, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self.reset_after = bool(reset_after)

    def make_bias(self, rng):
        shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
        return self.bias_initializer(rng, shape, self.dtype)

    def input_bias(self, params):
        bias = params.get("bias")
        return bias[0] if bias is not None and self.reset_after else bias

    def cell(self, params, z_t, states, h):
        (h_prev,) = states
        u = self.units
        kernel = params["recurrent_kernel"]
        xz, xr, xh = jnp.split(z_t, 3, axis=-1)
        if self.reset_after:
            inner = h @ kernel
            if "bias" in params:
                inner = inner + params["bias"][1]
            rz, rr, rh = jnp.split(inner, 3, axis=-1)
            z, r = self.recurrent_activation(xz + rz), self.recurrent_activation(xr + rr)
            hh = self.activation(xh + r * rh)
        else:
            rz, rr = jnp.split(h @ kernel[:, : 2 * u], 2, axis=-1)
            z, r = self.recurrent_activation(xz + rz), self.recurrent_activation(xr + rr)
            hh = self.activation(xh + (r * h) @ kernel[:, 2 * u:])
        out = z * h_prev + (1 - z) * hh
        return out, (out,)


def _activation(owner: str, what: str, identifier: Any) -> Any:
    try:
        return activations.get(identifier)
    except ValueError as e:
        raise LayerError(f"{owner}: {what}: {e}") from None


def _unroll(owner: str, unroll: Any) -> bool | int:
    if isinstance(unroll, bool):
        return unroll
    number = as_int(unroll)
    if number is None or number < 1:
        raise LayerError(f"{owner}: unroll must be True, False or a positive number of steps per loop "
                         f"iteration, got {unroll!r}")
    return number


def _project(x: jax.Array, kernel: jax.Array, bias: jax.Array | None) -> jax.Array:
    """`x @ kernel + bias` over the last axis (one step (batch, features) or all (time, batch, features))."""
    z = matmul_last_axis(x, kernel)
    return z if bias is None else z + bias


def _dropout_mask(key: jax.Array, rate: float, shape: Sequence[int], dtype: Any) -> jax.Array:
    """One inverted-dropout mask, reused at every time step (Keras' recurrent dropout)."""
    keep = bernoulli(key, 1.0 - rate, shape)
    return keep.astype(dtype) / jnp.asarray(1.0 - rate, dtype)
