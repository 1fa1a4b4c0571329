"""Keras 3's optimizers written as Optax transformations: `"adam"` and `Adam(...)` give Keras' updates.

Optax's namesakes differ from Keras (Adam places epsilon after the bias correction, Nadam has no
momentum schedule, Lion decays weights by default), so each optimizer here follows its Keras 3
`update_step` line for line, together with Keras' base-optimizer steps around it: clipping
(`clipnorm`, `clipvalue`, `global_clipnorm`), decoupled weight decay (`var -= var * weight_decay * lr`
before the update) and gradient accumulation. Each is one `optax.GradientTransformation`, so it
composes with `optax.chain`; the learning rate lives in an `optax.inject_hyperparams` state, so it may
be an Optax schedule (a function of the update count) and callbacks can change a fixed one between
epochs without recompiling. An Optax object passed to `get` is used as it is.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

LearningRate = Any  # a float, or a schedule: a function of the update count (`optax.Schedule`)


class KerasState(NamedTuple):
    """Keras' optimizer variables: `iterations` (updates applied), per-parameter slots under Keras' names
    (`momentum`, `velocity`, ...), scalars shared by all parameters (Nadam's `u_product`) and the
    gradient accumulators (`gradient_accumulation_steps`, else empty)."""

    iterations: jax.Array
    slots: dict[str, Any]
    shared: dict[str, jax.Array]
    accumulators: Any


class _Rule(NamedTuple):
    """One Keras `update_step`: `step(g, var, slots, lr, iterations, shared) -> (increment, new slots)`.

    The increment is what Keras adds to the variable (`-x` for its `assign_sub(var, x)`), computed as Keras
    computes it, so that the Optax updates are exact even where they are tiny next to the params.
    """

    slots: dict[str, float]  # slot name -> initial value, one array like each parameter
    step: Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
    shared: dict[str, float] = {}
    advance: Callable[[dict, jax.Array], dict] | None = None  # once per update, before the parameters


def _power(base: float, exponent: jax.Array, dtype: Any) -> jax.Array:
    return jnp.power(jnp.asarray(base, dtype), exponent.astype(dtype))


def _second_moment(v: jax.Array, g: jax.Array, beta_2: Any) -> jax.Array:
    """Keras' `v + (g^2 - v) * (1 - beta_2)` written as `beta_2 * v + (1 - beta_2) * g^2`: equal up to
    rounding, but once `g^2` overflows it stays `inf` (the step becomes 0) where Keras' form turns NaN."""
    return beta_2 * v + (1 - beta_2) * jnp.square(g)


# -- the update rules, each as in keras/src/optimizers/<name>.py ------------------------------------------
def _adam(beta_1: float, beta_2: float, epsilon: float, amsgrad: bool) -> _Rule:
    def step(g, var, s, lr, it, shared):
        alpha = lr * jnp.sqrt(1 - _power(beta_2, it + 1, var.dtype)) / (1 - _power(beta_1, it + 1, var.dtype))
        m = s["momentum"] + (g - s["momentum"]) * (1 - beta_1)
        v = _second_moment(s["velocity"], g, beta_2)
        new = {"momentum": m, "velocity": v}
        if amsgrad:
            v = new["velocity_hat"] = jnp.maximum(s["velocity_hat"], v)
        return -((m * alpha) / (jnp.sqrt(v) + epsilon)), new

    return _Rule({"momentum": 0.0, "velocity": 0.0, **({"velocity_hat": 0.0} if amsgrad else {})}, step)


def _nadam(beta_1: float, beta_2: float, epsilon: float) -> _Rule:
    def advance(shared, it):
        u = shared["u_product"]
        return {"u_product": u * beta_1 * (1.0 - 0.5 * _power(0.96, it + 1, u.dtype))}

    def step(g, var, s, lr, it, shared):
        b1, b2 = jnp.asarray(beta_1, var.dtype), jnp.asarray(beta_2, var.dtype)
        u_t = b1 * (1.0 - 0.5 * _power(0.96, it + 1, var.dtype))
        u_t_1 = b1 * (1.0 - 0.5 * _power(0.96, it + 2, var.dtype))
        u_product_t = shared["u_product"].astype(var.dtype)
        u_product_t_1 = u_product_t * u_t_1
        m = s["momentum"] + (g - s["momentum"]) * (1 - b1)
        v = _second_moment(s["velocity"], g, b2)
        m_hat = u_t_1 * m / (1 - u_product_t_1) + (1 - u_t) * g / (1 - u_product_t)
        v_hat = v / (1 - _power(beta_2, it + 1, var.dtype))
        return -((m_hat * lr) / (jnp.sqrt(v_hat) + epsilon)), {"momentum": m, "velocity": v}

    return _Rule({"momentum": 0.0, "velocity": 0.0}, step, {"u_product": 1.0}, advance)


def _adamax(beta_1: float, beta_2: float, epsilon: float) -> _Rule:
    def step(g, var, s, lr, it, shared):
        m = s["momentum"] + (g - s["momentum"]) * (1 - beta_1)
        u = jnp.maximum(beta_2 * s["norm"], jnp.abs(g))
        denominator = (1 - _power(beta_1, it + 1, var.dtype)) * (u + epsilon)
        return -((lr * m) / denominator), {"momentum": m, "norm": u}

    return _Rule({"momentum": 0.0, "norm": 0.0}, step)


def _lion(beta_1: float, beta_2: float) -> _Rule:
    def step(g, var, s, lr, it, shared):
        b1, b2, m = jnp.asarray(beta_1, var.dtype), jnp.asarray(beta_2, var.dtype), s["momentum"]
        return -(lr * jnp.sign(m * b1 + g * (1.0 - b1))), {"momentum": m * b2 + g * (1.0 - b2)}

    return _Rule({"momentum": 0.0}, step)


def _sgd(momentum: float, nesterov: bool) -> _Rule:
    def step(g, var, s, lr, it, shared):
        if momentum == 0:
            return -(g * lr), {}
        mu = jnp.asarray(momentum, var.dtype)
        m = s["momentum"] * mu - g * lr
        return (m * mu - g * lr if nesterov else m), {"momentum": m}

    return _Rule({"momentum": 0.0} if momentum != 0 else {}, step)


def _rmsprop(rho: float, momentum: float, epsilon: float, centered: bool) -> _Rule:
    def step(g, var, s, lr, it, shared):
        velocity = rho * s["velocity"] + (1 - rho) * jnp.square(g)
        new = {"velocity": velocity}
        if centered:
            average = new["average_gradient"] = rho * s["average_gradient"] + (1 - rho) * g
            denominator = velocity - jnp.square(average) + epsilon
        else:
            denominator = velocity + epsilon
        increment = lr * g / jnp.sqrt(denominator)
        if momentum > 0:
            increment = new["momentum"] = momentum * s["momentum"] + increment
        return -increment, new

    slots = {"velocity": 0.0, **({"momentum": 0.0} if momentum > 0 else {}),
             **({"average_gradient": 0.0} if centered else {})}
    return _Rule(slots, step)


def _adagrad(initial_accumulator_value: float, epsilon: float) -> _Rule:
    def step(g, var, s, lr, it, shared):
        accumulator = s["accumulator"] + jnp.square(g)
        return -(lr * g / jnp.sqrt(accumulator + epsilon)), {"accumulator": accumulator}

    return _Rule({"accumulator": initial_accumulator_value}, step)


def _adadelta(rho: float, epsilon: float) -> _Rule:
    def step(g, var, s, lr, it, shared):
        rms = lambda x: jnp.sqrt(x + epsilon)  # noqa: E731
        grad_avg = rho * s["accumulated_grad"] + (1 - rho) * jnp.square(g)
        delta = -(rms(s["accumulated_delta_var"]) * g) / rms(grad_avg)
        delta_avg = rho * s["accumulated_delta_var"] + (1 - rho) * jnp.square(delta)
        return lr * delta, {"accumulated_grad": grad_avg, "accumulated_delta_var": delta_avg}

    return _Rule({"accumulated_grad": 0.0, "accumulated_delta_var": 0.0}, step)


def _ftrl(learning_rate_power: float, initial_accumulator_value: float, l1: float, l2: float,
          l2_shrinkage: float, beta: float) -> _Rule:
    def step(g, var, s, lr, it, shared):
        accum, linear = s["accumulator"], s["linear"]
        l2_reg = l2 + beta / (2.0 * lr)
        grad_to_use = g + 2 * l2_shrinkage * var
        new_accum = accum + jnp.square(g)
        linear = linear + (grad_to_use - (new_accum ** -learning_rate_power - accum ** -learning_rate_power)
                           / lr * var)
        quadratic = new_accum ** -learning_rate_power / lr + 2 * l2_reg
        new_var = (jnp.clip(linear, -l1, l1) - linear) / quadratic  # FTRL sets the variable outright
        return new_var - var, {"accumulator": new_accum, "linear": linear}

    return _Rule({"accumulator": initial_accumulator_value, "linear": 0.0}, step)


# -- Keras' base-optimizer steps around the rule ---------------------------------------------------------
def _clip_by_norm(g: jax.Array, clipnorm: float) -> jax.Array:
    l2sum = jnp.sum(jnp.square(g), keepdims=True)
    positive = l2sum > 0
    l2norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, l2sum, jnp.ones_like(l2sum))), l2sum)
    return g * clipnorm / jnp.maximum(l2norm, clipnorm)


def _clip_by_global_norm(grads: Any, clipnorm: float) -> Any:
    norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grads)))
    scale = clipnorm * jnp.minimum(1.0 / norm, 1.0 / clipnorm) + (norm - norm)  # NaN for a non-finite norm
    return jax.tree.map(lambda g: g * scale, grads)


def _clipper(clipnorm: float | None, clipvalue: float | None, global_clipnorm: float | None
             ) -> Callable[[Any], Any]:
    """Keras' `_clip_gradients`: at most one of the three applies."""
    if clipnorm and clipnorm > 0:
        return lambda grads: jax.tree.map(lambda g: _clip_by_norm(g, clipnorm), grads)
    if global_clipnorm and global_clipnorm > 0:
        return lambda grads: _clip_by_global_norm(grads, global_clipnorm)
    if clipvalue and clipvalue > 0:
        return lambda grads: jax.tree.map(lambda g: jnp.clip(g, -clipvalue, clipvalue), grads)
    return lambda grads: grads


def _apply_rule(rule: _Rule, grads: Any, params: Any, slots: dict, lr: jax.Array, iterations: jax.Array,
                shared: dict) -> tuple[Any, dict]:
    """`rule.step` parameter by parameter (gradients and the learning rate cast to each one's dtype)."""
    leaves, treedef = jax.tree.flatten(params)
    grad_leaves = treedef.flatten_up_to(grads)
    slot_leaves = {name: treedef.flatten_up_to(tree) for name, tree in slots.items()}
    increments, new_slots = [], {name: [] for name in slots}
    for i, (g, var) in enumerate(zip(grad_leaves, leaves)):
        mine = {name: values[i] for name, values in slot_leaves.items()}
        increment, mine = rule.step(g.astype(var.dtype), var, mine, lr.astype(var.dtype), iterations, shared)
        increments.append(increment)
        for name in new_slots:
            new_slots[name].append(mine[name])
    return (treedef.unflatten(increments),
            {name: treedef.unflatten(values) for name, values in new_slots.items()})


def _keras_transformation(rule: _Rule, learning_rate: Any, weight_decay: float | None = None,
                         clip: Callable[[Any], Any] = lambda grads: grads,
                         accumulation_steps: int | None = None) -> optax.GradientTransformation:
    """Keras' `apply` for one update rule at a fixed learning rate (an array or number).

    Per update: accumulate gradients (every `accumulation_steps`-th call applies their mean, the others
    change nothing), clip, decay the weights (`var - var * weight_decay * lr`), then the rule on the
    decayed weights. The updates are the decay's and the rule's increments together.
    """

    def init(params: Any) -> KerasState:
        leaves = jax.tree.leaves(params)
        dtype = leaves[0].dtype if leaves else jnp.float32
        slots = {name: jax.tree.map(lambda p, v=value: jnp.full_like(p, v), params)
                 for name, value in rule.slots.items()}
        shared = {name: jnp.asarray(value, dtype) for name, value in rule.shared.items()}
        accumulators = jax.tree.map(jnp.zeros_like, params) if accumulation_steps else optax.EmptyState()
        return KerasState(jnp.zeros([], jnp.int32), slots, shared, accumulators)

    def update(grads: Any, state: KerasState, params: Any = None) -> tuple[Any, KerasState]:
        if params is None:
            raise ValueError("Keras optimizers need the params: call update(grads, state, params)")
        count, raw = state.iterations, grads
        iterations = count
        if accumulation_steps:
            now = (count + 1) % accumulation_steps == 0
            grads = jax.tree.map(lambda g, a: jnp.where(now, (g + a) / accumulation_steps, g),
                                 grads, state.accumulators)
            iterations = count // accumulation_steps  # Keras' `iterations` counts applied updates
        grads = clip(grads)
        lr = jnp.asarray(learning_rate)
        decayed, decay = params, None
        if weight_decay is not None:
            decay = jax.tree.map(lambda p: -(p * jnp.asarray(weight_decay, p.dtype) * lr.astype(p.dtype)), params)
            decayed = jax.tree.map(jnp.add, params, decay)
        shared = rule.advance(state.shared, iterations) if rule.advance else state.shared
        updates, slots = _apply_rule(rule, grads, decayed, state.slots, lr, iterations, shared)
        if decay is not None:
            updates = jax.tree.map(jnp.add, decay, updates)
        accumulators = state.accumulators
        if accumulation_steps:
            keep = lambda new, old: jnp.where(now, new, old)  # noqa: E731
            updates = jax.tree.map(lambda u: jnp.where(now, u, jnp.zeros_like(u)), updates)
            slots, shared = jax.tree.map(keep, (slots, shared), (state.slots, state.shared))
            accumulators = jax.tree.map(lambda g, a: jnp.where(now, jnp.zeros_like(a), g + a),
                                        raw, state.accumulators)
        return updates, KerasState(count + 1, slots, shared, accumulators)

    return optax.GradientTransformation(init, update)


# -- the Keras classes ------------------------------------------------------------------------------------
def _check_learning_rate(learning_rate: Any) -> Any:
    if callable(learning_rate):
        return learning_rate
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (numbers.Real, jax.Array)):
        raise ValueError("Argument `learning_rate` should be a float, or a schedule (a function of the update "
                         f"count, such as an optax schedule). Received instead: learning_rate={learning_rate!r}")
    return learning_rate


class Optimizer(optax.GradientTransformationExtraArgs):
    """What Keras' optimizers share, as an Optax transformation: `init(params)`, `update(grads, state, params)`.

    Keras' base arguments: `weight_decay` (decoupled: `var -= var * weight_decay * lr` before the update),
    `clipnorm` (per parameter), `clipvalue`, `global_clipnorm` (at most one of the three) and
    `gradient_accumulation_steps` (apply the mean gradient every that many calls). `use_ema` and
    `loss_scale_factor` are refused: they need the training loop's help (swapping in the averaged weights,
    scaling the loss), which `fit` does not give.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Optimizer:
        raise TypeError("Optimizer is the base of Adam, SGD, RMSprop, ...: construct one of those")

    @classmethod
    def _create(cls, rule: _Rule, learning_rate: LearningRate, config: dict[str, Any], *,
                weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
                global_clipnorm: float | None = None, use_ema: bool = False, ema_momentum: float = 0.99,
                ema_overwrite_frequency: int | None = None, loss_scale_factor: float | None = None,
                gradient_accumulation_steps: int | None = None, name: str | None = None,
                **unknown: Any) -> Optimizer:
        if unknown.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.", stacklevel=3)
        if unknown:
            raise TypeError(f"{cls.__name__}: argument(s) not recognized: {unknown}")
        if use_ema:
            raise NotImplementedError(f"{cls.__name__}(use_ema=True) is not supported: fit would have to swap the "
                                      "moving average of the weights into the model at the end of training")
        if loss_scale_factor is not None:
            raise NotImplementedError(f"{cls.__name__}(loss_scale_factor=...) is not supported: fit does not scale "
                                      "the loss before differentiating, so unscaling the gradients would be wrong")
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                             f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        if gradient_accumulation_steps and not (isinstance(gradient_accumulation_steps, numbers.Integral)
                                                and gradient_accumulation_steps >= 2):
            raise ValueError("`gradient_accumulation_steps` must be an integer >= 2. Received: "
                             f"gradient_accumulation_steps={gradient_accumulation_steps}")
        clip = _clipper(clipnorm, clipvalue, global_clipnorm)
        steps = int(gradient_accumulation_steps) if gradient_accumulation_steps else None

        def factory(learning_rate: Any) -> optax.GradientTransformation:
            return _keras_transformation(rule, learning_rate, weight_decay, clip, steps)

        inner = optax.inject_hyperparams(factory)(learning_rate=_check_learning_rate(learning_rate))
        self = tuple.__new__(cls, (inner.init, inner.update))
        self._config = {"name": name or _snake(cls.__name__), "learning_rate": learning_rate, **config,
                        "weight_decay": weight_decay, "clipnorm": clipnorm, "clipvalue": clipvalue,
                        "global_clipnorm": global_clipnorm, "use_ema": use_ema, "ema_momentum": ema_momentum,
                        "ema_overwrite_frequency": ema_overwrite_frequency,
                        "loss_scale_factor": loss_scale_factor,
                        "gradient_accumulation_steps": gradient_accumulation_steps}
        return self

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, as Keras' `get_config` (the learning rate as given, maybe a schedule)."""
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        return cls(**config)

    def __reduce__(self) -> tuple:
        return _from_config, (type(self), self.get_config())

    def __repr__(self) -> str:
        base = Optimizer._create.__kwdefaults__
        shown = {k: v for k, v in self._config.items() if k != "name" and (k not in base or v != base[k])}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def _from_config(cls: type[Optimizer], config: dict[str, Any]) -> Optimizer:
    return cls.from_config(config)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i and not name[i - 1].isupper() else c.lower()
                   for i, c in enumerate(name))


class Adam(Optimizer):
    """Keras' Adam: epsilon is added to `sqrt(v)`, with the bias correction folded into the step size."""

    def __new__(cls, learning_rate: LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                epsilon: float = 1e-7, amsgrad: bool = False, **kwargs: Any) -> Adam:
        config = dict(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad)
        return cls._create(_adam(beta_1, beta_2, epsilon, amsgrad), learning_rate, config, **kwargs)


class AdamW(Adam):
    """Keras' AdamW: Adam with decoupled weight decay (0.004 by default; it must be a number)."""

    def __new__(cls, learning_rate: LearningRate = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, **kwargs: Any) -> AdamW:
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        config = dict(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad)
        return cls._create(_adam(beta_1, beta_2, epsilon, amsgrad), learning_rate, config,
                           weight_decay=weight_decay, **kwargs)


class Nadam(Optimizer):
    """Keras' Nadam, with its momentum schedule `beta_1 * (1 - 0.5 * 0.96 ** t)`."""

    def __new__(cls, learning_rate: LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                epsilon: float = 1e-7, **kwargs: Any) -> Nadam:
        config = dict(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
        return cls._create(_nadam(beta_1, beta_2, epsilon), learning_rate, config, **kwargs)


class Adamax(Optimizer):
    """Keras' Adamax (Adam with the infinity norm)."""

    def __new__(cls, learning_rate: LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                epsilon: float = 1e-7, **kwargs: Any) -> Adamax:
        config = dict(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
        return cls._create(_adamax(beta_1, beta_2, epsilon), learning_rate, config, **kwargs)


class Lion(Optimizer):
    """Keras' Lion: the sign of an interpolated momentum; no weight decay unless asked for."""

    def __new__(cls, learning_rate: LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.99,
                **kwargs: Any) -> Lion:
        if beta_1 <= 0 or beta_1 > 1:
            raise ValueError("Argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer degenerates "
                             f"to SignSGD. Received: beta_1={beta_1}.")
        return cls._create(_lion(beta_1, beta_2), learning_rate, dict(beta_1=beta_1, beta_2=beta_2), **kwargs)


class SGD(Optimizer):
    """Keras' SGD: `m = momentum * m - lr * g; var += m` (Nesterov: `var += momentum * m - lr * g`)."""

    def __new__(cls, learning_rate: LearningRate = 0.01, momentum: float = 0.0, nesterov: bool = False,
                **kwargs: Any) -> SGD:
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
            raise ValueError(f"`momentum` must be a float between [0, 1]. Received: momentum={momentum!r}")
        config = dict(momentum=momentum, nesterov=nesterov)
        return cls._create(_sgd(momentum, nesterov), learning_rate, config, **kwargs)


class RMSprop(Optimizer):
    """Keras' RMSprop: epsilon inside the square root; optional momentum and centering."""

    def __new__(cls, learning_rate: LearningRate = 0.001, rho: float = 0.9, momentum: float = 0.0,
                epsilon: float = 1e-7, centered: bool = False, **kwargs: Any) -> RMSprop:
        config = dict(rho=rho, momentum=momentum, epsilon=epsilon, centered=centered)
        return cls._create(_rmsprop(rho, momentum, epsilon, centered), learning_rate, config, **kwargs)


class Adagrad(Optimizer):
    """Keras' Adagrad: accumulators start at `initial_accumulator_value`; epsilon inside the square root."""

    def __new__(cls, learning_rate: LearningRate = 0.001, initial_accumulator_value: float = 0.1,
                epsilon: float = 1e-7, **kwargs: Any) -> Adagrad:
        config = dict(initial_accumulator_value=initial_accumulator_value, epsilon=epsilon)
        return cls._create(_adagrad(initial_accumulator_value, epsilon), learning_rate, config, **kwargs)


class Adadelta(Optimizer):
    """Keras' Adadelta (its step is scaled by the learning rate, 0.001 by default as in Keras)."""

    def __new__(cls, learning_rate: LearningRate = 0.001, rho: float = 0.95, epsilon: float = 1e-7,
                **kwargs: Any) -> Adadelta:
        return cls._create(_adadelta(rho, epsilon), learning_rate, dict(rho=rho, epsilon=epsilon), **kwargs)


class Ftrl(Optimizer):
    """Keras' FTRL-proximal, with its L1, L2 and L2-shrinkage strengths and `beta`."""

    def __new__(cls, learning_rate: LearningRate = 0.001, learning_rate_power: float = -0.5,
                initial_accumulator_value: float = 0.1, l1_regularization_strength: float = 0.0,
                l2_regularization_strength: float = 0.0, l2_shrinkage_regularization_strength: float = 0.0,
                beta: float = 0.0, **kwargs: Any) -> Ftrl:
        checks = {"initial_accumulator_value": initial_accumulator_value,
                  "l1_regularization_strength": l1_regularization_strength,
                  "l2_regularization_strength": l2_regularization_strength,
                  "l2_shrinkage_regularization_strength": l2_shrinkage_regularization_strength}
        for arg, value in checks.items():
            if value < 0.0:
                raise ValueError(f"`{arg}` needs to be positive or zero. Received: {arg}={value}.")
        if learning_rate_power > 0.0:
            raise ValueError("`learning_rate_power` needs to be negative or zero. Received: "
                             f"learning_rate_power={learning_rate_power}.")
        config = dict(learning_rate_power=learning_rate_power, **checks, beta=beta)
        rule = _ftrl(learning_rate_power, initial_accumulator_value, l1_regularization_strength,
                     l2_regularization_strength, l2_shrinkage_regularization_strength, beta)
        return cls._create(rule, learning_rate, config, **kwargs)


_BY_NAME: dict[str, type[Optimizer]] = {cls.__name__.lower(): cls for cls in (
    Adam, AdamW, Nadam, Adamax, Lion, SGD, RMSprop, Adagrad, Adadelta, Ftrl)}


def get(identifier: str | optax.GradientTransformation, **kwargs: Any) -> optax.GradientTransformation:
    """`get("adam")` is `Adam()` (Keras' update rule and defaults; keyword arguments go to the constructor);
    an Optax `GradientTransformation` (one of these, or Optax's own) is used as it is."""
    if isinstance(identifier, optax.GradientTransformation):
        if kwargs:
            raise ValueError(f"optimizer arguments {sorted(kwargs)} apply to a name, not to an Optax object")
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(f"unknown optimizer {identifier!r}; expected one of {sorted(_BY_NAME)} or an Optax "
                             "GradientTransformation")
        return cls(**kwargs)
    raise ValueError(f"optimizer must be a name or an optax.GradientTransformation, got {identifier!r}")


# -- the learning rate in a training state -----------------------------------------------------------------
def _hyperparams_state(opt_state: Any) -> tuple[Any, Any]:
    """Find the `inject_hyperparams` state, at the top, inside a chain or inside a wrapper that keeps an
    `inner_state` (loss scaling, `optax.masked`): `(state, path)`."""
    if hasattr(opt_state, "hyperparams"):
        return opt_state, ()
    if hasattr(opt_state, "inner_state") and hasattr(opt_state, "_replace"):
        found, path = _hyperparams_state(opt_state.inner_state)
        return (found, ("inner_state", *path)) if found is not None else (None, ())
    if isinstance(opt_state, tuple) and not hasattr(opt_state, "_fields"):
        for i, inner in enumerate(opt_state):
            found, path = _hyperparams_state(inner)
            if found is not None:
                return found, (i, *path)
    return None, ()


def get_learning_rate(opt_state: Any) -> Any:
    """The learning rate in an `inject_hyperparams` state (possibly inside a chain), or None.

    For a schedule it is the value the last update used (the schedule's first value before any update).
    """
    state, _ = _hyperparams_state(opt_state)
    return None if state is None else state.hyperparams.get("learning_rate")


def set_learning_rate(opt_state: Any, value: float) -> Any:
    """A copy of an `inject_hyperparams` state with a new learning rate (no recompilation needed).

    A learning rate given as a schedule is refused (TypeError, as Keras refuses to set it): the next
    update would overwrite the value with the schedule's own.
    """
    state, path = _hyperparams_state(opt_state)
    if state is None or "learning_rate" not in state.hyperparams:
        raise ValueError("this optimizer's learning rate is not adjustable: build it by name or with "
                         "optax.inject_hyperparams")
    if "learning_rate" in getattr(state, "hyperparams_states", {}):
        raise TypeError("This optimizer was created with a schedule as its `learning_rate`, hence its learning "
                        "rate is not settable (by ReduceLROnPlateau, LearningRateScheduler or "
                        "trainer.learning_rate). Give the optimizer a float learning rate to set it.")
    hp = dict(state.hyperparams)
    hp["learning_rate"] = jnp.asarray(value, dtype=jnp.asarray(hp["learning_rate"]).dtype)
    return _replace_at(opt_state, path, state._replace(hyperparams=hp))


def _replace_at(tree: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    if isinstance(path[0], str):
        return tree._replace(**{path[0]: _replace_at(getattr(tree, path[0]), path[1:], value)})
    items = list(tree)
    items[path[0]] = _replace_at(items[path[0]], path[1:], value)
    return type(tree)(items)


def freeze(optimizer: optax.GradientTransformation, trainable: Any) -> optax.GradientTransformation:
    """Zero the updates of params whose `trainable` mask leaf is False (Keras' `layer.trainable = False`).

    The optimizer still sees the gradients (its state keeps its shape); only the final updates are
    dropped, so frozen params never move.
    """

    def zero_frozen(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, keep: u if keep else jnp.zeros_like(u), updates, trainable), state

    return optax.chain(optimizer, optax.GradientTransformation(lambda params: optax.EmptyState(), zero_frozen))
