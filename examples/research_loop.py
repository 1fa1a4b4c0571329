"""The other level: the pure-function core in a hand-rolled training loop (no Keras surface).

`init`/`apply` are pure functions, `jax.grad` differentiates them, Optax updates the params, and one
`jax.jit` step runs the lot. Run: python examples/research_loop.py [--steps N]
"""

import argparse

import jax
import jax.numpy as jnp
import optax

from jaxnet_lite.datasets import digits
from jaxnet_lite.layers import Conv2D, Dense, Flatten, MaxPooling2D, serial

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=600)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

(x_train, y_train), (x_test, y_test) = digits.load_data()
x_train = jnp.asarray(x_train[..., None] / 16.0, jnp.float32)
x_test = jnp.asarray(x_test[..., None] / 16.0, jnp.float32)
y_train, y_test = jnp.asarray(y_train, jnp.int32), jnp.asarray(y_test, jnp.int32)

net = serial(Conv2D(16, 3, padding="same", activation="relu"), MaxPooling2D(2), Flatten(), Dense(10))
params, state = net.init(jax.random.key(args.seed), (8, 8, 1))
optimizer = optax.adam(1e-3)
opt_state = optimizer.init(params)


def loss_fn(params, state, x, y):
    logits, state = net.apply(params, state, x, training=True)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), state


@jax.jit
def train_step(params, state, opt_state, key):
    idx = jax.random.choice(key, x_train.shape[0], (64,), replace=False)
    (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x_train[idx], y_train[idx])
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), state, opt_state, loss


key = jax.random.key(args.seed + 1)
for step in range(args.steps):
    key, batch_key = jax.random.split(key)
    params, state, opt_state, loss = train_step(params, state, opt_state, batch_key)
    if step % 100 == 0 or step == args.steps - 1:
        print(f"step {step:4d}  loss {float(loss):.4f}")

logits, _ = net.apply(params, state, x_test)
accuracy = float(jnp.mean(jnp.argmax(logits, -1) == y_test))
print(f"test accuracy {accuracy * 100:.2f}%")
