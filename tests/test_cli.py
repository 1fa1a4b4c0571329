"""The demo, the examples and the `jaxnet-lite` command, run end to end."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jaxnet_lite.apps import cli, runs

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def default_optimization_env() -> dict[str, str]:
    """This environment without the suite's quick-compiling XLA flag (conftest.py), for a subprocess."""
    flags = os.environ.get("XLA_FLAGS", "").replace("--xla_backend_optimization_level=0", "").strip()
    return {**os.environ, "XLA_FLAGS": flags}


def run(args, env=None, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_demo_end_to_end(tmp_path):
    # A subprocess at XLA's default optimisation level: the demo trains for hundreds of epochs, which the
    # suite's quick-compiling level would make several times slower.
    folder = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "jaxnet_lite", "demo", "--out", str(folder), "--seed", "0",
                           "--verbose", "2"], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=default_optimization_env())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Total params: 2,371" in out and "Iris test accuracy" in out and "Digits test accuracy" in out
    saved = json.loads((folder / "history.json").read_text())
    iris = saved["iris_mlp"]["test_accuracy"]
    assert iris >= 0.93 and f"Iris test accuracy: {iris:.4f}" in out
    assert saved["digits_cnn"]["test_accuracy"] >= 0.95
    assert len(saved["iris_mlp"]["history"]["val_loss"]) == saved["iris_mlp"]["epochs"]
    png = (folder / "curves.png").read_bytes()
    assert png.startswith(PNG_MAGIC)
    import matplotlib.image

    image = matplotlib.image.imread(folder / "curves.png")
    assert image.shape[0] > 300 and image.shape[1] > 600
    assert (folder / "iris_mlp.weights.npz").stat().st_size > 0
    assert (folder / "digits_cnn.weights.npz").stat().st_size > 0


def test_demo_without_matplotlib_still_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    results = runs.demo(out=tmp_path, seed=1, max_epochs=2, verbose=0)
    out = capsys.readouterr().out
    assert "no curves.png" in out and "pip install 'jaxnet_lite[plot]'" in out
    assert (tmp_path / "history.json").exists() and not (tmp_path / "curves.png").exists()
    # two epochs is the cap, not an early stop; the best epoch's weights were restored, and it says so
    assert results["iris_mlp"]["stopped_epoch"] is None and results["iris_mlp"]["restored_epoch"] in (1, 2)
    assert out.count("Ran all 2 epochs.") == 2 and "Stopped early" not in out
    assert out.count("Restored the weights of epoch") == 2


class _Stop:
    """What `_marks` reads of an EarlyStopping."""

    def __init__(self, stopped_epoch, best_epoch, restored=True):
        self.stopped_epoch, self.best_epoch = stopped_epoch, best_epoch
        self.restore_best_weights, self.best_weights = restored, [0] if restored else None


class _History:
    def __init__(self, epochs):
        self.epoch = list(range(epochs))


def test_run_marks_tell_an_early_stop_from_the_epoch_cap():
    assert runs._marks(_Stop(7, 4), _History(8), max_epochs=40) == {"stopped": 8, "best": 5}
    assert runs._marks(_Stop(39, 36), _History(40), max_epochs=40) == {"stopped": None, "best": 37}
    assert runs._marks(_Stop(0, 0, restored=False), _History(40), max_epochs=40) == {"stopped": None, "best": None}


@pytest.mark.parametrize("argv,message", [
    (["train", "resnet"], "invalid choice: 'resnet'"),
    (["train", "mnist-cnn", "--epochs", "0"], "expected a positive integer, got 0"),
    (["train", "mnist-cnn", "--batch-size", "x"], "expected a positive integer, got 'x'"),
    (["fly"], "invalid choice: 'fly'"),
    ([], "the following arguments are required: COMMAND"),
])
def test_cli_argument_errors_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert re.match(r"jaxnet-lite( \w+)?: error: ", err)


def test_cli_help_for_every_command(capsys):
    out = run(["-m", "jaxnet_lite", "--help"], timeout=120)  # the module entry point, in a fresh interpreter
    assert out.returncode == 0 and "usage: jaxnet-lite" in out.stdout
    for argv in (["demo", "--help"], ["train", "--help"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 0 and f"usage: jaxnet-lite {argv[0]}" in capsys.readouterr().out


def test_cli_missing_mnist_names_all_options(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JAXNET_LITE_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    assert cli.main(["train", "mnist-cnn", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "--data-dir" in err and "JAXNET_LITE_DATA_DIR" in err and "tensorflow-datasets" in err


def test_example_iris_mlp():
    out = run(["examples/iris_mlp.py", "--epochs", "60"])
    assert out.returncode == 0, out.stderr[-2000:]
    accuracies = [float(a) for a in re.findall(r"test accuracy ([\d.]+)%", out.stdout)]
    assert len(accuracies) == 2 and min(accuracies) >= 80.0
    assert out.stdout.count("Total params: 2,371") == 2


def test_example_research_loop():
    out = run(["examples/research_loop.py", "--steps", "300"])
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(re.search(r"test accuracy ([\d.]+)%", out.stdout).group(1)) >= 85.0


def test_example_mnist_cnn_smoke(shared_data):
    out = run(["examples/mnist_cnn.py", "--epochs", "1", "--limit", "3000"],
              env={"JAXNET_LITE_DATA_DIR": str(shared_data)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Total params: 34,826" in out.stdout
    assert float(re.search(r"The test accuracy is ([\d.]+)%", out.stdout).group(1)) >= 60.0  # chance: 10%


@pytest.mark.slow
def test_tutorial_mnist_two_epochs_reaches_target(shared_data, tmp_path, capsys):
    """The tutorial's MNIST CNN, 2 epochs on the real files, through `jaxnet-lite train mnist-cnn`."""
    code = cli.main(["train", "mnist-cnn", "--data-dir", str(shared_data), "--epochs", "2", "--verbose", "2",
                     "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    accuracy = float(re.search(r"The test accuracy is ([\d.]+)%", out).group(1))
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["epochs"] == 2 and len(saved["history"]["val_accuracy"]) == 2
    # Seed 0 (this test) gives 98.40%. `python -m benchmarks.tutorial_accuracy` measured seeds 0-5 at 97.81-98.42%
    # (mean 98.22%) here and Keras 3 on TensorFlow, same recipe and files, at 98.02-98.27% (mean 98.18%): the
    # issue's 98.5% after 2 epochs is above what the recipe itself reaches, in Keras too (benchmarks/RESULTS.md).
    # The full tutorial run with early stopping ends near 99% (98.95-99.18% measured); see the README's results.
    assert accuracy >= 98.0


def test_example_imdb_lstm_loss_falls():
    """Keras' IMDB LSTM recipe as the example writes it, on a small slice: it trains and its loss falls."""
    out = run(["examples/imdb_lstm.py", "--epochs", "4", "--limit", "1200"])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Total params: 24,353" in out.stdout  # Embedding 16,000 + LSTM 8,320 + Dense 33, as in Keras
    losses = [float(v) for v in re.findall(r" - loss: ([\d.]+) - val_accuracy", out.stdout)]  # training loss per epoch
    assert len(losses) >= 3 and losses[-1] < losses[0] - 0.02
    assert 0.0 <= float(re.search(r"The test accuracy is ([\d.]+)%", out.stdout).group(1)) <= 100.0


def test_cli_train_imdb_bilstm_writes_a_run_folder(tmp_path, capsys):
    code = cli.main(["train", "imdb-bilstm", "--epochs", "1", "--limit", "160", "--verbose", "2",
                     "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "bidirectional (Bidirectional)" in out and "The test accuracy is" in out
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["model"] == "imdb_bilstm" and len(saved["history"]["loss"]) == saved["epochs"] == 1
    assert (tmp_path / "imdb_bilstm.weights.npz").stat().st_size > 0
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG_MAGIC)
