"""Data parallelism: 8 simulated CPU devices give the same training result as one device.

One child process per device count runs both models (an MLP with dropout, then a conv model), so the two
tests share two subprocess runs instead of starting four.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent("""
    import json
    import jax, numpy as np
    from jaxnet_lite import Sequential
    from jaxnet_lite.layers import Dense, Dropout
    from jaxnet_lite.datasets import iris
    from jaxnet_lite.utils import to_categorical
    (x, y), _ = iris.load_data()
    y = to_categorical(y, 3)
    model = Sequential([Dense(16, input_shape=(4,), activation="relu"), Dropout(0.2),
                        Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    h = model.fit(x, y, batch_size=20, epochs=3, verbose=0, validation_split=0.1)
    ts = model.trainer.train_state
    print("MLP " + json.dumps({
        "devices": jax.device_count(),
        "history": h.history,
        "params": [np.asarray(a).tolist() for a in jax.tree.leaves(ts.params)],
        "replicated": all(a.sharding.is_fully_replicated for a in jax.tree.leaves(ts.params)),
        "n_shards": len(jax.tree.leaves(ts.params)[0].sharding.device_set),
    }))
""")


# A conv model runs one step per dispatch on CPU: many sharded programs in a row, the case where XLA:CPU
# deadlocked (an all-reduce waiting for a device whose launch waited for a slot) until `fit` kept one
# dispatch in flight on CPU meshes. Before that fix this script hung and XLA aborted it after 40 s.
CNN_SCRIPT = textwrap.dedent("""
    import json
    import jax, numpy as np
    from jaxnet_lite.apps import runs
    rng = np.random.default_rng(0)
    x = rng.random((2048, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 2048)]
    model = runs.mnist_cnn()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    h = model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    loss, acc = model.evaluate(x[:500], y[:500], batch_size=64, verbose=0)
    print("CNN " + json.dumps({"devices": jax.device_count(), "history": h.history, "eval": [loss, acc]}))
""")


def run(devices: int) -> dict:
    """Both scripts in one child with `devices` CPU devices: {"MLP": ..., "CNN": ...}."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT + CNN_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    found = {}
    for line in out.stdout.splitlines():
        tag, _, rest = line.partition(" ")
        if tag in ("MLP", "CNN"):
            found[tag] = json.loads(rest)
    assert sorted(found) == ["CNN", "MLP"], out.stdout[-3000:]
    return found


@pytest.fixture(scope="module")
def runs() -> dict[int, dict]:
    return {devices: run(devices) for devices in (1, 8)}


def test_eight_devices_match_one(runs):
    one, eight = runs[1]["MLP"], runs[8]["MLP"]
    assert one["devices"] == 1 and eight["devices"] == 8
    assert eight["replicated"] and eight["n_shards"] == 8  # params live on all 8 devices
    for key in one["history"]:
        np.testing.assert_allclose(eight["history"][key], one["history"][key], rtol=1e-5, atol=1e-6)
    for a, b in zip(one["params"], eight["params"]):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)


def test_conv_model_on_eight_cpu_devices_finishes_and_matches_one(runs):
    one, eight = runs[1]["CNN"], runs[8]["CNN"]
    assert one["devices"] == 1 and eight["devices"] == 8
    # Random labels leave near-tied argmaxes, which summation order may flip: accuracy gets 1% slack.
    np.testing.assert_allclose(eight["history"]["loss"], one["history"]["loss"], rtol=2e-4)
    np.testing.assert_allclose(eight["history"]["accuracy"], one["history"]["accuracy"], atol=0.01)
    (loss_8, acc_8), (loss_1, acc_1) = eight["eval"], one["eval"]
    assert loss_8 == pytest.approx(loss_1, rel=2e-4)
    assert acc_8 == pytest.approx(acc_1, abs=0.01)
