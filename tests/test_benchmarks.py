"""Smoke test of the benchmark harness (`python -m benchmarks`): no speed is asserted, only that its
smallest run trains every contender, measures every figure and writes a complete JSON document, under
float32 and under mixed_bfloat16 (one run of the harness serves both)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CONTENDERS = ("jnl_fit", "jnl_step", "ref_jit")  # jnl_fit_dev, ref_scan: the epoch-anatomy test; peers: slow to start
# mixed_bfloat16 on the MLP only: on CPU a bfloat16 CNN adds tens of seconds (its reference and jaxnet_lite
# model are traced, not run, in test_mixed_reference_computes_what_jaxnet_lite_computes).
LABELS = {"mlp": ("mlp", "float32"), "cnn": ("cnn", "float32"), "mlp@mixed_bfloat16": ("mlp", "mixed_bfloat16")}


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    env = dict(os.environ)  # with conftest's quick-compiling XLA flag: a few steps each
    shared = REPO.parent / "shared" / "data"
    if "JAXNET_LITE_DATA_DIR" not in env and (shared / "mnist").is_dir():
        env["JAXNET_LITE_DATA_DIR"] = str(shared)  # real MNIST when at hand, else the harness goes synthetic
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--workloads", ",".join(LABELS), "--windows", "1",
           "--steps", "4", "--contenders", ",".join(CONTENDERS), "--quiet", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    return json.loads(out.read_text()), done.stdout


def test_document_describes_machine_and_versions(bench: tuple[dict, str]) -> None:
    doc, _ = bench
    assert doc["device"]["platform"] and doc["device"]["device_kind"]
    for name in ("python", "jax", "jaxlib", "optax", "jaxnet_lite"):
        assert doc["versions"][name], name
    assert doc["settings"]["cpu_count"] >= 1
    assert doc["matmul_peak"]["gflops_median"] > 0
    assert doc["quick"] is True and "--quick" in doc["command"]
    assert doc["policies"] == ["float32", "mixed_bfloat16"] and doc["left_out"] == [] and doc["complete"] is True


def test_every_contender_trained_and_was_measured(bench: tuple[dict, str]) -> None:
    doc, _ = bench
    assert set(doc["workloads"]) == set(LABELS)
    for wname, w in doc["workloads"].items():
        assert w["workload"]["batch_size"] == {"mlp": 16, "cnn": 128}[LABELS[wname][0]]
        assert w["flops"]["train_per_example"] > w["flops"]["inference_per_example"] > 0
        assert w["reference"] == "ref_jit"
        ran = {n: c for n, c in w["contenders"].items() if "skipped" not in c}
        assert set(ran) == set(CONTENDERS), (wname, sorted(ran))
        for cname, c in ran.items():
            where = f"{wname}/{cname}"
            assert "error" not in c, (where, c.get("error"))
            assert c["trained"] and c["loss_after"] < c["loss_before"], (where, c["loss_before"], c["loss_after"])
            assert len(c["window_seconds"]) == 1, where
            assert c["train_examples_per_s"]["median"] > 0, where
            assert c["eval_examples_per_s"]["median"] > 0, where
            assert c["first_window_s"] > 0 and c["us_per_step"] > 0, where
            assert c["rss_peak_mb"] > 0 and c["achieved_gflops"] > 0, where
            assert c["ratio_to_ref"]["median"] > 0, where
        assert ran["ref_jit"]["ratio_to_ref"]["median"] == pytest.approx(1.0)


def test_mixed_precision_rows_ran_under_their_policy(bench: tuple[dict, str]) -> None:
    """Each row says its policy, and each contender's worker reports what it really computed in (the
    operands of its matmuls and convolutions) and kept its params and Adam state in."""
    import math

    doc, _ = bench
    for label, (name, policy) in LABELS.items():
        w = doc["workloads"][label]
        compute = {"float32": "float32", "mixed_bfloat16": "bfloat16"}[policy]
        assert (w["workload"]["name"], w["workload"]["policy"], w["policy"], w["compute_dtype"]) == \
            (name, policy, policy, compute)
        for cname in CONTENDERS:
            c, where = w["contenders"][cname], f"{label}/{cname}"
            assert c["info"]["matmul_dtypes"] == [compute], (where, c["info"]["matmul_dtypes"])
            assert c["info"]["param_dtypes"] == ["float32"], (where, c["info"]["param_dtypes"])
            assert c["info"]["opt_state_dtypes"] == ["float32"], (where, c["info"]["opt_state_dtypes"])
            numbers = [c["loss_after"], c["accuracy_after"], c["train_examples_per_s"]["median"], *c["train_losses"]]
            assert all(math.isfinite(x) for x in numbers), (where, numbers)


def test_policy_selection() -> None:
    """Contenders without a mixed-precision model are skipped with the reason; the sequence workloads run
    under float32 only; an unknown policy is refused by name."""
    import argparse

    from benchmarks import run, workloads

    ran, skipped = run._choose(["jnl_fit", "flax_nnx", "torch_eager"], "cnn", "gpu", False, "mixed_bfloat16")
    assert ran == ["jnl_fit"]
    for name in ("flax_nnx", "torch_eager"):  # said whether or not the package is installed
        assert skipped[name].startswith("no mixed_bfloat16 model written for this contender"), skipped[name]
    args = argparse.Namespace(quick=True, windows=None, steps=None)
    chosen, left_out = run._plan(["cnn", "lstm"], ["float32", "mixed_bfloat16"], args)
    assert [w.label for w in chosen] == ["cnn", "cnn@mixed_bfloat16", "lstm"]
    assert left_out == ["lstm@mixed_bfloat16"]
    chosen, _ = run._plan(["mlp", "cnn@mixed_bfloat16", "mlp@float32"], ["float32"], args)
    assert [(w.name, w.policy) for w in chosen] == [("mlp", "float32"), ("cnn", "mixed_bfloat16")]
    with pytest.raises(SystemExit, match="unknown policy 'mixed_float8'"):
        workloads.get("cnn", True, policy="mixed_float8")


def test_mixed_reference_computes_what_jaxnet_lite_computes() -> None:
    """Under mixed_bfloat16 the hand-written MLP and jaxnet_lite's give the same predictions from the same
    params, and both run their matmuls on bfloat16 operands."""
    import dataclasses

    import jax
    import numpy as np

    from benchmarks import reference_jax, workloads
    from benchmarks.dtypes_seen import matmul_dtypes
    from benchmarks.jnl_contenders import build_model
    from jaxnet_lite import mixed_precision

    def build_under_policy(spec):
        mixed_precision.set_global_policy(spec.policy)
        try:
            return build_model(spec)
        finally:
            mixed_precision.set_global_policy(None)

    spec = dataclasses.replace(workloads.FULL["mlp"], policy="mixed_bfloat16")
    model = build_under_policy(spec)
    params, state = model.init(jax.random.key(0), spec.input_shape)
    dense = [params[k] for k in sorted(params, key=lambda k: int(k.rsplit("_", 1)[-1]) if "_" in k else 0)]
    ref_params = {f"dense{i}": {"w": p["kernel"], "b": p["bias"]} for i, p in enumerate(dense)}
    _, apply = reference_jax.model_for(spec)
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    expected = jax.jit(lambda p, s, x: model.apply(p, s, x)[0])(params, state, x)
    logits = jax.jit(apply)(ref_params, x)
    assert logits.dtype == np.float32 and all(p["kernel"].dtype == np.float32 for p in dense)
    np.testing.assert_allclose(np.asarray(jax.nn.softmax(logits)), np.asarray(expected, np.float32), atol=1e-2)
    assert matmul_dtypes(apply, ref_params, x) == ["bfloat16"]
    assert matmul_dtypes(lambda p, s, x: model.apply(p, s, x)[0], params, state, x) == ["bfloat16"]

    cnn = dataclasses.replace(workloads.FULL["cnn"], policy="mixed_bfloat16")  # traced only: its convolutions too
    model = build_under_policy(cnn)
    params, state = model.init(jax.random.key(0), cnn.input_shape)
    images, key = np.zeros((2, 28, 28, 1), np.float32), jax.random.key(1)
    forward = lambda p, s, x: model.apply(p, s, x, rng=key, training=True)[0]  # noqa: E731
    assert matmul_dtypes(forward, params, state, images) == ["bfloat16"]
    init, apply = reference_jax.model_for(cnn)
    assert matmul_dtypes(lambda p, x: apply(p, x, key, True), init(key), images) == ["bfloat16"]
    assert matmul_dtypes(lambda p, x: reference_jax.model_for("cnn")[1](p, x, key, True), init(key), images) == \
        ["float32"]


def test_slow_contenders_are_left_out_on_cpu_unless_asked() -> None:
    from benchmarks import run

    ran, skipped = run._choose(["jnl_fit", "ref_scan"], "cnn", "cpu", include_slow=False)
    assert ran == ["jnl_fit"] and "--include-slow" in skipped["ref_scan"]
    assert run._choose(["jnl_fit", "ref_scan"], "cnn", "cpu", include_slow=True)[0] == ["jnl_fit", "ref_scan"]
    assert run._choose(["ref_scan"], "mlp", "cpu", include_slow=False)[0] == ["ref_scan"]


def test_lstm_workload_smoke(tmp_path: Path) -> None:
    """The IMDB LSTM workload end to end in its smallest form: token-id data and binary labels reach the
    contenders, they train, and the FLOPs are the count by hand. Only jaxnet_lite's and the reference run
    (each LSTM worker costs an import and a compile); the other contenders share their code paths with the CNN."""
    out = tmp_path / "lstm.json"
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--workloads", "lstm", "--windows", "1", "--steps", "2",
           "--contenders", "jnl_fit,jnl_step,ref_jit,flax_nnx", "--quiet", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    w = json.loads(out.read_text())["workloads"]["lstm"]
    assert w["workload"]["batch_size"] == 32 and w["workload"]["units"] == 32 and w["workload"]["vocab"] == 500
    assert w["data"]["x_train_shape"] == [64, 200] and w["data"]["y_train_shape"] == [64, 1]
    assert w["flops"]["train_source"].startswith("matmul FLOPs counted by hand")
    assert w["flops"]["inference_per_example"] == pytest.approx(2 * 200 * (32 + 32) * 4 * 32 + 2 * 32)
    assert w["contenders"]["flax_nnx"]["skipped"] == "no lstm model written for this contender"
    for name in ("jnl_fit", "jnl_step", "ref_jit"):
        c = w["contenders"][name]
        assert "error" not in c, (name, c.get("error"))
        assert c["trained"] and c["loss_after"] < c["loss_before"], (name, c["loss_before"], c["loss_after"])
        assert c["ratio_to_ref"]["median"] > 0 and c["achieved_gflops"] > 0, name


def test_pure_step_smoke_on_the_workloads_the_fixture_leaves_out(tmp_path: Path) -> None:
    """`jnl_step` (the pure step over `DeviceBatches`) trains and is measured on the wide MLP and the wide LSTM
    too, so with the fixture's MLP and CNN and the LSTM test above it runs on every workload."""
    out = tmp_path / "step.json"
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--workloads", "wide,lstm_wide", "--windows", "1",
           "--steps", "2", "--contenders", "jnl_step", "--quiet", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    doc = json.loads(out.read_text())
    assert set(doc["workloads"]) == {"wide", "lstm_wide"}
    for name, w in doc["workloads"].items():
        c = w["contenders"]["jnl_step"]
        assert "error" not in c, (name, c.get("error"))
        # Two steps need not lower the wide LSTM's loss: measured and finite is what is checked here.
        assert np.isfinite(c["loss_before"]) and np.isfinite(c["loss_after"]) and c["us_per_step"] > 0, name
        assert c["eval_examples_per_s"]["median"] > 0 and c["achieved_gflops"] > 0, name


def test_reference_lstm_matches_jaxnet_lite() -> None:
    """The hand-written LSTM computes the function jaxnet_lite's example model computes (masked steps kept,
    Keras' gate order), so the two do the same work."""
    import dataclasses

    import jax
    import numpy as np

    from benchmarks import reference_lstm, workloads
    from benchmarks.jnl_contenders import build_model

    spec = dataclasses.replace(workloads.FULL["lstm"], input_shape=(24,))  # the example's model, shorter reviews
    model = build_model(spec)
    variables = model.init(jax.random.key(0), spec.input_shape)
    params = variables.params
    ids = np.random.default_rng(0).integers(1, 500, (4, 24))
    ids[:, :10] = 0  # pre-padding, as pad_sequences writes it
    ids[1, :] = 0  # an all-padding review keeps its zero state
    ref_params = {"embed": params["embedding"]["embeddings"],
                  "lstm": {"kernel": params["lstm"]["kernel"], "recurrent": params["lstm"]["recurrent_kernel"],
                           "bias": params["lstm"]["bias"]},
                  "dense": {"w": params["dense"]["kernel"], "b": params["dense"]["bias"]}}
    expected = jax.jit(lambda p, s, x: model.apply(p, s, x)[0])(params, variables.state, ids)
    logits = jax.jit(reference_lstm.apply_lstm)(ref_params, ids)
    np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(logits)), np.asarray(expected), rtol=1e-5, atol=1e-6)


def test_table_on_stdout(bench: tuple[dict, str]) -> None:
    _, stdout = bench
    assert "train ex/s" in stdout and "policy" in stdout
    rows = [line.split() for line in stdout.splitlines()]
    for name, policy in LABELS.values():
        for cname in CONTENDERS:
            assert [name, policy, cname] in [r[:3] for r in rows], (name, policy, cname)


def test_reference_does_not_import_jaxnet_lite() -> None:
    code = "import sys, benchmarks.reference_jax; assert 'jaxnet_lite' not in sys.modules, 'imported'"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_conv_formulations_smoke() -> None:
    """`python -m benchmarks.conv_formulations` in its smallest form prints both tables with positive times."""
    cmd = [sys.executable, "-m", "benchmarks.conv_formulations", "--shapes", "1", "--rounds", "1", "--calls", "1"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("| (28, 28, 1), 3x3x1x32 |"))
    xla_ms, im2col_ms = (float(cell) for cell in row.split("|")[2:4])
    assert xla_ms > 0 and im2col_ms > 0
    assert "tutorial CNN train step (batch 128): implementation='xla'" in done.stdout


def test_device_run_script_names_what_exists() -> None:
    """`benchmarks/device_run.sh` parses, and every test file, test and module it runs exists (the quick
    default-run check; the slow test below runs the script end to end)."""
    script = REPO / "benchmarks" / "device_run.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    named_tests = re.findall(r"(tests/test_\w+\.py)(?:::(\w+))?", text)
    assert named_tests
    for path, test in named_tests:
        assert (REPO / path).is_file(), path
        assert not test or f"def {test}(" in (REPO / path).read_text(), f"{path}::{test}"
    for module in set(re.findall(r'-m (benchmarks[\w.]*)', text)):
        assert importlib.util.find_spec(module) is not None, module


@pytest.mark.slow
def test_device_run_script_smoke(tmp_path: Path) -> None:
    """`benchmarks/device_run.sh` (the prepared GPU-machine check) runs end to end in its quick mode, with
    its optional steps."""
    env = {**os.environ, "DEVICE_RUN_QUICK": "1", "DEVICE_RUN_ANATOMY": "1", "DEVICE_RUN_SEQUENCE": "1",
           "DEVICE_RUN_PROFILE": "1", "DEVICE_RUN_GPT": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "device_run.sh")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    assert "tests exit status: 0" in done.stdout
    assert "jax" in (tmp_path / "env.txt").read_text()
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert set(doc["workloads"]) == {"cnn", "mlp", "mlp@mixed_bfloat16"} and doc["complete"] is True
    assert "sequence exit status: 0" in done.stdout and "char_gpt exit status: 0" in done.stdout
    assert set(json.loads((tmp_path / "sequence.json").read_text())["workloads"]) == {"lstm"}
    assert "char_gpt gpu exit status: 0" in done.stdout
    gpu_race = json.loads((tmp_path / "char_gpt_gpu.json").read_text())
    assert gpu_race["size"] == "gpu" and gpu_race["config"]["dropout"] == 0.2
    assert "epoch anatomy exit status: 0" in done.stdout
    assert set(json.loads((tmp_path / "anatomy.json").read_text())["contenders"]) == {"jnl_fit", "jnl_fit_dev",
                                                                                      "ref_scan"}
    assert "profile exit status: 0" in done.stdout
    assert [r["contender"] for r in json.loads((tmp_path / "profile.json").read_text())] == ["jnl_fit_dev", "ref_jit"]


def test_epoch_anatomy_splits_epoch_and_step_costs(tmp_path: Path) -> None:
    from benchmarks import epoch_anatomy

    assert epoch_anatomy.fit_line([8, 64, 512], [1e-3 + 8 * 2e-5, 1e-3 + 64 * 2e-5, 1e-3 + 512 * 2e-5]) == \
        pytest.approx((1e-3, 2e-5))
    out = tmp_path / "anatomy.json"
    assert epoch_anatomy.main(["--repeats", "1,2", "--rounds", "1", "--steps", "16", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["steps_per_epoch"] == {"1": 8, "2": 15}
    for name in epoch_anatomy.CONTENDERS:
        seconds = doc["contenders"][name]["seconds_per_epoch"]
        assert set(seconds) == {"1", "2"} and all(s > 0 for s in seconds.values()), name


def test_tutorial_accuracy_takes_a_policy(capsys: pytest.CaptureFixture) -> None:
    """`benchmarks.tutorial_accuracy --policy` accepts the policies it can train under and refuses others."""
    from benchmarks import tutorial_accuracy

    with pytest.raises(SystemExit) as refused:
        tutorial_accuracy.main(["--policy", "mixed_bfloat61"])
    assert refused.value.code == 2 and "mixed_bfloat16" in capsys.readouterr().err
    assert "mixed_bfloat16" in tutorial_accuracy.POLICIES and "float32" in tutorial_accuracy.POLICIES
