"""Wrappers: `Bidirectional` (a recurrent layer run both ways) and `TimeDistributed` (a layer per time step)."""

from __future__ import annotations

import copy
from typing import Any

import jax.numpy as jnp

from jaxnet_lite.core import Layer, LayerError, shape_str, split_mask, split_rng, with_mask
from jaxnet_lite.layers.combinators import Container
from jaxnet_lite.layers.recurrent import Recurrent

_MERGE_MODES = ("concat", "sum", "ave", "mul", None)


class Bidirectional(Container):
    """Runs `layer` forwards and a copy of it backwards over the sequence and merges the two outputs.

    Keras 3's semantics and names: the children are `forward_<name>` and `backward_<name>`; with
    `return_sequences` the backward outputs are flipped back into time order and masked steps output
    zeros; `merge_mode` is "concat" (default), "sum", "ave", "mul" or None (a list of both outputs).
    With `return_state` the output is followed by the forward then the backward final states.
    """

    def __init__(self, layer: Recurrent, merge_mode: str | None = "concat", weights: Any = None,
                 backward_layer: Recurrent | None = None, **kwargs: Any) -> None:
        if weights is not None:
            raise NotImplementedError("Bidirectional: weights= is not supported; set params after init")
        if not isinstance(layer, Recurrent):
            raise LayerError(f"Bidirectional: layer must be a recurrent layer (SimpleRNN, LSTM, GRU), "
                             f"got {type(layer).__name__}")
        if merge_mode not in _MERGE_MODES:
            raise LayerError(f"Bidirectional: merge_mode must be one of {_MERGE_MODES}, got {merge_mode!r}")
        forward = copy.copy(layer)
        if backward_layer is None:
            backward = copy.copy(layer)
            backward.go_backwards = not layer.go_backwards
        else:
            if not isinstance(backward_layer, Recurrent):
                raise LayerError("Bidirectional: backward_layer must be a recurrent layer, "
                                 f"got {type(backward_layer).__name__}")
            if backward_layer.go_backwards == layer.go_backwards:
                raise LayerError("Bidirectional: backward_layer must run in the other direction "
                                 "(go_backwards opposite to layer's)")
            for attr in ("return_sequences", "return_state"):
                if getattr(backward_layer, attr) != getattr(layer, attr):
                    raise LayerError(f"Bidirectional: layer and backward_layer must agree on {attr}")
            backward = copy.copy(backward_layer)
        base = layer.name
        forward.name, backward.name = f"forward_{base}", f"backward_{backward_layer.name if backward_layer else base}"
        for sub in (forward, backward):
            sub.zero_output_for_mask = sub.return_sequences  # as Keras forces
        self.forward_layer, self.backward_layer = forward, backward
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        super().__init__([forward, backward], **kwargs)

    @classmethod
    def default_name(cls) -> str:
        return "bidirectional"

    def check_input_shape(self, input_shape):
        seq, states = self._split(input_shape)
        self.forward_layer.check_input_shape(seq)
        count = self.forward_layer.state_count
        if states and len(states) != 2 * count:
            raise self.error(f"initial_state must hold {2 * count} states (forward then backward), "
                             f"got {shape_str(states)}")

    @staticmethod
    def _split(x: Any) -> tuple[Any, list]:
        if isinstance(x, list):
            return x[0], list(x[1:])
        return x, []

    def make_variables(self, rng, input_shape):
        seq, _ = self._split(input_shape)
        params, state = {}, {}
        for (name, layer), key in zip(self.children(), split_rng(rng, 2)):
            params[name], state[name] = layer.init(key, seq)
        return params, state

    def compute_output_shape(self, input_shape):
        seq, _ = self._split(input_shape)
        fwd = self.forward_layer.compute_output_shape(seq)
        out = fwd[0] if self.return_state else fwd
        merged = [out, out] if self.merge_mode is None else (
            (*out[:-1], 2 * out[-1]) if self.merge_mode == "concat" else out)
        if not self.return_state:
            return merged
        states = [(self.forward_layer.units,)] * (2 * self.forward_layer.state_count)
        return (merged if isinstance(merged, list) else [merged]) + states

    def call(self, params, state, x, *, rng=None, training=False):
        seq, initial = self._split(x)
        count = self.forward_layer.state_count
        if initial and len(initial) != 2 * count:
            raise self.error(f"initial_state must hold {2 * count} arrays (forward then backward), got {len(initial)}")
        halves = [initial[:count], initial[count:]] if initial else [[], []]
        outs, new_state = [], {}
        for (name, layer), key, start in zip(self.children(), split_rng(rng, 2), halves):
            arg = [seq, *start] if start else seq
            y, new_state[name] = layer.apply(params[name], state[name], arg, rng=key, training=training)
            outs.append(y)
        (fwd, *fwd_states), (bwd, *bwd_states) = [o if isinstance(o, list) else [o] for o in outs]
        (fwd, mask), (bwd, _) = split_mask(fwd), split_mask(bwd)
        if self.return_sequences:
            bwd = jnp.flip(bwd, axis=1)
        y = self._merge(fwd, bwd)
        y = [with_mask(v, mask) for v in y] if isinstance(y, list) else with_mask(y, mask)
        if self.return_state:
            head = y if isinstance(y, list) else [y]
            return head + [split_mask(s)[0] for s in fwd_states + bwd_states], new_state
        return y, new_state

    def _merge(self, fwd, bwd):
        if self.merge_mode == "concat":
            return jnp.concatenate([fwd, bwd], axis=-1)
        if self.merge_mode == "sum":
            return fwd + bwd
        if self.merge_mode == "ave":
            return (fwd + bwd) / 2
        if self.merge_mode == "mul":
            return fwd * bwd
        return [fwd, bwd]

    def bind_call(self, inputs, *args, initial_state=None, training=None, **kwargs):
        if args or kwargs:
            return super().bind_call(inputs, *args, **kwargs)
        if initial_state is None:
            return inputs, self
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        return [inputs, *states], self


class TimeDistributed(Container):
    """Applies `layer` to every time step: input (time, ...) -> (time, *layer's output) per example."""

    def __init__(self, layer: Layer, **kwargs: Any) -> None:
        if not isinstance(layer, Layer):
            raise LayerError(f"TimeDistributed: layer must be a jaxnet_lite Layer, got {type(layer).__name__}")
        super().__init__([layer], **kwargs)
        self.layer = layer

    @classmethod
    def default_name(cls) -> str:
        return "time_distributed"

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 2:
            raise self.error(f"expects input of rank >= 2 (timesteps, ...), got {shape_str(input_shape)}")
        self.layer.output_shape(input_shape[1:])

    def make_variables(self, rng, input_shape):
        name = self.layer_names[0]
        params, state = self.layer.init(rng, input_shape[1:])
        return {name: params}, {name: state}

    def compute_output_shape(self, input_shape):
        inner = self.layer.output_shape(input_shape[1:])
        if isinstance(inner, list):
            raise self.error(f"wraps {self.layer.describe()}, whose output is a list; TimeDistributed needs one output")
        return (input_shape[0], *inner)

    def call(self, params, state, x, *, rng=None, training=False):
        values, mask = split_mask(x)
        if not hasattr(values, "ndim") or values.ndim < 3:
            raise self.error(f"expects input of shape (batch, timesteps, ...), got "
                             f"{tuple(getattr(values, 'shape', ())) or type(values).__name__}")
        batch, steps = values.shape[:2]
        name = self.layer_names[0]
        flat = values.reshape((batch * steps, *values.shape[2:]))
        y, new = self.layer.apply(params[name], state[name], flat, rng=rng, training=training)
        y, _ = split_mask(y)
        return with_mask(y.reshape((batch, steps, *y.shape[1:])), mask), {name: new}
