"""The character-level GPT: random windows, the example's model and sampler, the `train char-gpt` job and
the race's smoke run (every model here is toy-sized)."""

import importlib.util
import itertools
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet_lite import TrainState, make_eval_step, make_train_step
from jaxnet_lite.apps import cli
from jaxnet_lite.data import RandomWindows, random_windows
from jaxnet_lite.datasets import tinyshakespeare

REPO = Path(__file__).resolve().parents[1]
TINY = dict(block_size=16, n_layer=1, n_head=2, n_embd=32)


def load_example():
    spec = importlib.util.spec_from_file_location("char_gpt_example", REPO / "examples" / "char_gpt.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = load_example()


# ------------------------------------------------------------------------------------------ windows


def test_windows_are_in_range_and_targets_are_shifted():
    data = np.arange(1000, dtype=np.int32) * 7  # distinct ids: a window's values give away its offset
    x, y = jax.jit(random_windows, static_argnames=("batch_size", "block_size"))(
        jnp.asarray(data), jax.random.key(0), batch_size=64, block_size=10)
    assert x.shape == y.shape == (64, 10) and x.dtype == jnp.int32
    starts = np.asarray(x[:, 0]) // 7
    assert (starts >= 0).all() and (starts < 1000 - 10).all() and len(set(starts)) > 50
    np.testing.assert_array_equal(x, data[starts[:, None] + np.arange(10)])
    np.testing.assert_array_equal(y, data[starts[:, None] + np.arange(1, 11)])


def test_windows_use_every_offset_nanogpt_draws_and_no_other():
    """nanoGPT draws `randint(len(data) - block)`: with 12 ids and block 10, offsets 0 and 1 only."""
    windows = RandomWindows(np.arange(12), batch_size=256, block_size=10, seed=3)
    x, y = windows.sample(jax.random.key(1))
    assert set(np.asarray(x[:, 0]).tolist()) == {0, 1}
    assert int(y.max()) == 11


def test_window_stream_is_reproducible_and_goes_on_across_iterations():
    data = np.arange(500)
    first = RandomWindows(data, batch_size=4, block_size=8, seed=5, steps=3)
    epoch_1, epoch_2 = [np.asarray(x) for x, _ in first], [np.asarray(x) for x, _ in first]
    assert len(epoch_1) == len(epoch_2) == 3 and first.drawn == 6
    assert not np.array_equal(epoch_1[0], epoch_2[0])  # each epoch sees new windows
    replay = RandomWindows(data, batch_size=4, block_size=8, seed=5)  # endless, same seed
    again = [np.asarray(x) for x, _ in itertools.islice(replay, 6)]
    np.testing.assert_array_equal(np.stack(again), np.stack(epoch_1 + epoch_2))
    np.testing.assert_array_equal(replay.batch(0)[0], epoch_1[0])


def test_windows_refuse_bad_data():
    with pytest.raises(ValueError, match="too few"):
        RandomWindows(np.arange(8), batch_size=2, block_size=8)
    with pytest.raises(ValueError, match="1-D array of integer ids"):
        RandomWindows(np.zeros((4, 20), np.int32), batch_size=2, block_size=3)
    with pytest.raises(ValueError, match="1-D array of integer ids"):
        RandomWindows(np.linspace(0, 1, 50), batch_size=2, block_size=3)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        RandomWindows(np.arange(50), batch_size=0, block_size=3)


# ---------------------------------------------------------------------------- the model and sampler


@pytest.fixture(scope="module")
def data():
    return tinyshakespeare.load_data()


@pytest.fixture(scope="module")
def trained(data):
    """The example's GPT at toy size after 40 steps of the library's step on random windows."""
    model = example.GPT(data.vocab_size, **TINY)
    optimizer = example.nanogpt_optimizer(40, learning_rate=1e-2, min_lr=1e-3, warmup_iters=4)
    ts = TrainState.create(model, optimizer, variables=jax.jit(model.init)(jax.random.key(0)))  # one compile
    step = make_train_step(model, example.LOSS, optimizer)
    for _, batch in zip(range(40), RandomWindows(data.train, batch_size=16, block_size=16, seed=0)):
        ts, _ = step(ts, batch)
    return model, ts


def test_gpt_mirrors_nanogpt_shapes_and_ties_the_head(data):
    model = example.GPT(data.vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128)
    params, _ = jax.eval_shape(lambda k: model.init(k), jax.random.key(0))
    d, layers = 128, 4  # nanoGPT without biases: wte + wpe + 12 d^2 per block + its LayerNorm weights
    expected = data.vocab_size * d + 64 * d + layers * 12 * d * d + (2 * layers + 1) * d
    assert sum(np.prod(p.shape) for p in jax.tree.leaves(params)) == expected == 804_096
    matrices = [p.shape for p in jax.tree.leaves(params) if data.vocab_size in p.shape]
    assert matrices == [(data.vocab_size, d)]  # one vocabulary matrix: the head is the token embedding


def load_benchmark(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpt_computes_what_the_race_references_compute(data, trained):
    """The example's GPT, the hand-written JAX GPT and (when installed) nanoGPT in PyTorch give the same
    loss for the same weights: the race compares one function."""
    model, ts = trained
    reference = load_benchmark("reference_gpt")
    p, d = ts.params, 32
    attn, mlp = p["block_0"]["attention"]["body"], p["block_0"]["mlp"]["body"]
    block = {"ln_1": {"scale": attn["ln_1"]["gamma"]}, "ln_2": {"scale": mlp["ln_2"]["gamma"]},
             "qkv": {"kernel": jnp.concatenate([attn["attn"][n]["kernel"].reshape(d, d)
                                                for n in ("query", "key", "value")], axis=1)},
             "proj": {"kernel": attn["attn"]["attention_output"]["kernel"].reshape(d, d)},
             "fc": {"kernel": mlp["fc"]["kernel"]}, "out": {"kernel": mlp["proj"]["kernel"]}}
    ref = {"wte": p["embedding"]["token_embedding"]["embeddings"], "blocks": [block],
           "wpe": p["embedding"]["position_embedding"]["embeddings"], "ln_f": {"scale": p["ln_f"]["gamma"]}}
    x, y = RandomWindows(data.val, batch_size=4, block_size=16, seed=2).batch(0)
    ours = float(jax.jit(lambda x, y: example.LOSS(y, model.apply(ts.params, ts.state, x)[0]).mean())(x, y))
    theirs = float(jax.jit(reference.loss_fn, static_argnums=3)(ref, x, y, 2))
    assert abs(ours - theirs) < 1e-4
    torch = pytest.importorskip("torch")
    nano = load_benchmark("nanogpt_torch").GPT(data.vocab_size, 16, n_layer=1, n_head=2, n_embd=32)
    t = lambda a, transpose=True: torch.from_numpy(np.array(a.T if transpose else a))  # noqa: E731
    nano.load_state_dict({
        "wte.weight": t(ref["wte"], False), "lm_head.weight": t(ref["wte"], False), "wpe.weight": t(ref["wpe"], False),
        "ln_f.weight": t(ref["ln_f"]["scale"], False), "blocks.0.ln_1.weight": t(block["ln_1"]["scale"], False),
        "blocks.0.ln_2.weight": t(block["ln_2"]["scale"], False),
        "blocks.0.attn.c_attn.weight": t(block["qkv"]["kernel"]),
        "blocks.0.attn.c_proj.weight": t(block["proj"]["kernel"]),
        "blocks.0.mlp.0.weight": t(block["fc"]["kernel"]), "blocks.0.mlp.2.weight": t(block["out"]["kernel"])})
    with torch.no_grad():
        torch_loss = float(nano(torch.from_numpy(np.array(x, np.int64)), torch.from_numpy(np.array(y, np.int64))))
    assert abs(torch_loss - theirs) < 1e-4


def _without_dropout_layers(tree):
    return {k: _without_dropout_layers(v) for k, v in tree.items() if not k.endswith("_drop")} \
        if isinstance(tree, dict) else tree


def test_gpt_dropout_acts_only_in_training_and_follows_the_key(data):
    """nanoGPT's GPU configuration trains with dropout: the example drops in training only (its inference is
    the dropout-free model's), and a step's key decides the mask."""
    dropped, plain = example.GPT(data.vocab_size, **TINY, dropout=0.3), example.GPT(data.vocab_size, **TINY)
    params, state = dropped.init(jax.random.key(0))
    x = jnp.asarray(RandomWindows(data.val, batch_size=2, block_size=16, seed=3).batch(0)[0])
    inference = jax.jit(lambda p, s: dropped.apply(p, s, x)[0])(params, state)
    np.testing.assert_array_equal(inference, jax.jit(lambda p, s: plain.apply(p, s, x)[0])(
        _without_dropout_layers(params), _without_dropout_layers(state)))
    training = jax.jit(lambda key: dropped.apply(params, state, x, rng=key, training=True)[0])
    first, again, other = (training(jax.random.key(seed)) for seed in (1, 1, 2))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, inference, atol=1e-3) and not np.allclose(first, other, atol=1e-3)
    with pytest.raises(ValueError, match=r"GPT: dropout must be in \[0, 1\), got 1.0"):
        example.GPT(data.vocab_size, **TINY, dropout=1.0)


def test_race_references_drop_and_compute_in_bfloat16(data):
    """The hand-written JAX GPT and nanoGPT in PyTorch at the GPU configuration's settings: dropout only
    with a key (or in training mode), and bfloat16 compute close to float32's."""
    reference = load_benchmark("reference_gpt")
    params = reference.init_params(jax.random.key(0), data.vocab_size, 16, 1, 32, False)
    x, y = (jnp.asarray(a) for a in RandomWindows(data.val, batch_size=4, block_size=16, seed=2).batch(0))
    loss = jax.jit(reference.loss_fn, static_argnums=(3, 4, 6))
    plain = float(loss(params, x, y, 2, 0.0, None, jnp.float32))
    assert float(loss(params, x, y, 2, 0.2, None, jnp.float32)) == plain  # no key: inference
    first, again, other = (float(loss(params, x, y, 2, 0.2, jax.random.key(k), jnp.float32)) for k in (1, 1, 2))
    assert first == again and len({plain, first, other}) == 3
    assert abs(float(loss(params, x, y, 2, 0.0, None, jnp.bfloat16)) - plain) < 0.02
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    nano = load_benchmark("nanogpt_torch").GPT(data.vocab_size, 16, n_layer=1, n_head=2, n_embd=32, dropout=0.2)
    tx, ty = (torch.from_numpy(np.array(a, np.int64)) for a in (x, y))
    nano.eval()
    with torch.no_grad():
        evaluated = [float(nano(tx, ty)) for _ in range(2)]
        nano.train()
        trained = [float(nano(tx, ty)) for _ in range(2)]
    assert evaluated[0] == evaluated[1] and len({evaluated[0], *trained}) == 3


def test_gpt_learns_below_the_unigram_entropy(data, trained):
    model, ts = trained
    counts = np.bincount(data.train, minlength=data.vocab_size) / len(data.train)
    unigram = -np.sum(counts[counts > 0] * np.log(counts[counts > 0]))  # 3.31 nats
    eval_step = make_eval_step(model, example.LOSS)
    val = RandomWindows(data.val, batch_size=16, block_size=16, seed=1, steps=4)
    loss = example.estimate_loss(eval_step, ts.params, ts.state, val)
    assert loss < unigram < np.log(data.vocab_size)


def test_generation_is_deterministic_and_respects_top_k(data, trained):
    model, ts = trained
    prompt = np.stack([data.encode("ROMEO: O, she "), data.encode("JULIET: Ay me!")])  # 14 ids; the block is 16
    length, new = prompt.shape[1], 6  # the text outgrows the block, so the window slides

    def sample(key, top_k):
        return np.asarray(example.generate(model, ts.params, ts.state, jnp.asarray(prompt), jax.random.key(key),
                                           max_new_tokens=new, top_k=top_k))

    forward = jax.jit(lambda ids: model.apply(ts.params, ts.state, ids)[0][:, -1])
    last_logits = lambda ids: forward(ids[:, -model.block_size:])  # noqa: E731 - crop to the block, as nanoGPT
    first, again, other = sample(1, 3), sample(1, 3), sample(2, 3)
    assert first.shape == (2, length + new) and (first[:, :length] == prompt).all()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    for step in range(new):  # each id drawn with top_k=3 is among the 3 largest logits given the ids before it
        top3 = np.argsort(np.asarray(last_logits(jnp.asarray(first[:, :length + step]))), -1)[:, -3:]
        assert all(first[b, length + step] in top3[b] for b in range(2))
    greedy = prompt  # top_k=1 is greedy decoding: nanoGPT's loop on the host (crop to the block, argmax)
    for _ in range(new):
        greedy = np.concatenate([greedy, np.argmax(np.asarray(last_logits(jnp.asarray(greedy))), -1)[:, None]], 1)
    np.testing.assert_array_equal(sample(3, 1), greedy)


def test_example_script_trains_with_dropout_in_bfloat16_and_samples(capsys):
    """`examples/char_gpt.py` end to end at toy size with its GPU-configuration options."""
    from jaxnet_lite import mixed_precision

    before = mixed_precision.global_policy()
    try:
        example.main(["--iters", "6", "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16",
                      "--batch-size", "4", "--eval-interval", "3", "--eval-iters", "2", "--dropout", "0.1",
                      "--policy", "mixed_bfloat16", "--sample", "--sample-tokens", "12"])
    finally:
        mixed_precision.set_global_policy(before)
    out = capsys.readouterr().out
    assert out.startswith("GPT: 14,976 parameters\n")  # 65*32 + 16*32 + 12*32*32 + 3*32
    assert [line.split(":")[0] for line in out.splitlines()[1:4]] == ["step 0", "step 3", "step 6"]
    sample = out.split("\n", 4)[4]  # the prompt's newline and 12 sampled characters, then print's newline
    assert len(sample) == 14 and set(sample) <= set(tinyshakespeare.load_data().vocab)


# ---------------------------------------------------------------------------------- the job and race


def test_train_char_gpt_writes_its_run_folder(tmp_path, data):
    done = subprocess.run([sys.executable, "-m", "jaxnet_lite", "train", "char-gpt", "--tiny", "--iters", "10",
                           "--out", str(tmp_path), "--verbose", "0"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["iterations"] == 10 and len(saved["history"]["val_loss"]) == 2
    assert saved["val_loss"] < np.log(data.vocab_size) + 0.1
    sample = (tmp_path / "sample.txt").read_text()
    assert len(sample) == 41 and set(sample) <= set(data.vocab) and sample.strip() in done.stdout
    assert (tmp_path / "char_gpt.weights.npz").stat().st_size > 0
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("argv, message", [
    (["train", "char-gpt", "--epochs", "3"], "takes no --epochs"),
    (["train", "mnist-cnn", "--iters", "3"], "--iters is for char-gpt only"),
])
def test_train_refuses_options_of_the_other_jobs(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_race_quick_smoke(tmp_path):
    """The race at toy size with the GPU configuration's dropout and bfloat16 compute (the default float32
    race runs in `test_benchmarks`' device-script smoke test; `ref_gpt`'s dropout and bfloat16 are tested above)."""
    out = tmp_path / "race.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--workloads", "char_gpt", "--quick", "--windows", "2",
                           "--dropout", "0.1", "--policy", "mixed_bfloat16",
                           "--contenders", "jnl_step,nanogpt_torch", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads(out.read_text())
    assert record["config"]["dropout"] == 0.1 and record["config"]["policy"] == "mixed_bfloat16"
    results = record["results"]
    assert 3.5 < results["jnl_step"]["val_loss"] < 4.5 and results["jnl_step"]["ms_per_iter"] > 0
    torch_missing = importlib.util.find_spec("torch") is None
    assert ("skipped" in results["nanogpt_torch"]) == torch_missing
    assert "| contender | val loss |" in done.stdout and "goal val loss <= 1.88" in done.stdout


def test_race_goals_follow_the_size():
    from benchmarks import char_gpt

    results = {"jnl_step": {"val_loss": 1.46, "ms_per_iter": 30.0, "time_ratio_to_nanogpt": 0.75},
               "nanogpt_torch": {"val_loss": 1.47, "ms_per_iter": 40.0}}
    gpu = char_gpt.RaceConfig(**char_gpt.SIZES["gpu"])
    assert gpu.n_embd == 384 and gpu.block_size == 256 and gpu.dropout == 0.2 and gpu.iters == 5000
    assert char_gpt.goals(gpu, results, "gpu") == [
        "goal val loss <= 1.47: 1.4600, met", "train time: 0.75x nanoGPT's (30.0 against 40.0 ms per iteration)"]
    cpu = char_gpt.goals(char_gpt.RaceConfig(iters=10), results, "cpu")
    assert cpu[0].startswith("goal val loss <= 1.88: 1.4600, met (not the goal's run")
    assert cpu[1].startswith("goal train time <= 0.8x nanoGPT's: 0.75x, met (not the goal's run")


def test_race_runs_alone():
    from benchmarks import run

    with pytest.raises(SystemExit, match="char_gpt runs alone"):
        run.main(["--workloads", "cnn,char_gpt"])
