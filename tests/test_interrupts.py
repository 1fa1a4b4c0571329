"""Ctrl-C during `fit`, in every mode: each verbose level, with and without callbacks, arrays and a stream
of batches, one and two devices. A real SIGINT is sent to a child process while it trains; `fit` must
return the history so far, with usable (finite) weights, soon after the signal and long before its last
epoch (in the unwatched mode the epochs are queued without a read; the signal must still be seen)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

MODES = [{"verbose": v, "callbacks": c, "data": d}
         for v, c, d in itertools.product((0, 1, 2), (False, True), ("arrays", "stream"))]

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import jax
    from jaxnet_lite import Sequential
    from jaxnet_lite.callbacks import Callback
    from jaxnet_lite.layers import Dense

    class Seen(Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32768, 64)).astype(np.float32)  # epochs long enough for a queue of them to matter
    y = rng.integers(0, 3, len(x))

    def endless():
        while True:
            for i in range(0, len(x), 256):
                yield x[i:i + 256], y[i:i + 256]

    EPOCHS = 60
    model = Sequential([Dense(512, activation="relu", input_shape=(64,)), Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x, y, batch_size=256, epochs=1, verbose=0)  # compile first, so the signal meets training
    model.fit(endless(), steps_per_epoch=2, epochs=1, verbose=0)
    for mode in json.loads(sys.argv[1]):  # one model: its compiled programs serve every mode
        data = dict(x=x, y=y, batch_size=256) if mode["data"] == "arrays" else dict(x=endless(), steps_per_epoch=32)
        callbacks = [Seen()] if mode["callbacks"] else None
        print("READY", flush=True)
        history = model.fit(**data, epochs=EPOCHS, verbose=mode["verbose"], callbacks=callbacks)
        finite = all(bool(np.all(np.isfinite(np.asarray(a)))) for a in jax.tree.leaves(model.variables))
        usable = bool(np.all(np.isfinite(model.predict(x[:5], verbose=0))))
        print("RESULT " + json.dumps({"mode": mode, "epochs": len(history.epoch), "finite": finite,
                                      "usable": usable, "devices": jax.device_count()}), flush=True)
""")


@pytest.mark.parametrize("devices", [1, 2])
def test_ctrl_c_returns_the_history_in_every_fit_mode(devices):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(MODES)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    results, waits = [], []
    try:
        for line in child.stdout:
            if line.startswith("READY"):
                time.sleep(0.5)  # well inside training, far from its last epoch
                child.send_signal(signal.SIGINT)
                sent = time.monotonic()
            elif line.startswith("RESULT "):
                results.append(json.loads(line[len("RESULT "):]))
                waits.append(time.monotonic() - sent)
        child.wait(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, child.stderr.read()[-3000:]
    assert [r["mode"] for r in results] == MODES
    assert max(waits) < 8, dict(zip(map(json.dumps, MODES), waits))  # generous: an epoch here is ~0.3 s
    for r in results:
        assert r["devices"] == devices
        assert r["finite"] and r["usable"], r
        assert r["epochs"] < 60, r
