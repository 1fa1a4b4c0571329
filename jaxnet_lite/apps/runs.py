"""The jobs behind the `jaxnet-lite` command: the demo on embedded data, the tutorial's MNIST run and
its sequel, an LSTM over IMDB reviews, and a character-level GPT on Tiny Shakespeare.

Each writes a run folder: `history.json`, `curves.png` (when matplotlib is installed) and the weights.
Run as several processes (`jaxnet-lite launch`), the Keras-style jobs train each process on its block of
rows and process 0 alone writes the folder.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnet_lite import Sequential, Trainer, checkpoint, distributed
from jaxnet_lite.callbacks import EarlyStopping
from jaxnet_lite.data import RandomWindows
from jaxnet_lite.datasets import digits, imdb, iris, mnist, tinyshakespeare
from jaxnet_lite.initializers import RandomNormal
from jaxnet_lite.layers import LSTM, Bidirectional, Conv2D, Dense, Dropout, Embedding, Flatten, MaxPooling2D
from jaxnet_lite.layers import LayerNormalization, MultiHeadAttention, Serial, TokenAndPositionEmbedding, residual, serial
from jaxnet_lite.losses import SparseCategoricalCrossentropy
from jaxnet_lite.apps.plotting import PlottingUnavailable, plot_histories
from jaxnet_lite.utils import pad_sequences, to_categorical


def run_folder(out: str | os.PathLike | None) -> Path:
    path = Path(out) if out is not None else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    if distributed.is_primary():
        path.mkdir(parents=True, exist_ok=True)
    return path


def _write_text(path: Path, text: str) -> None:
    """Write a run folder's file (process 0 only, with several processes)."""
    if distributed.is_primary():
        path.write_text(text)


def iris_mlp() -> Sequential:
    """The tutorial's MLP: 4 -> 32 -> 32 -> 32 -> 3."""
    model = Sequential()
    model.add(Dense(32, input_shape=(4,), activation="relu"))
    model.add(Dense(32, activation="relu"))
    model.add(Dense(32, activation="relu"))
    model.add(Dense(3, activation="softmax"))
    return model


def digits_cnn() -> Sequential:
    """A small CNN in the tutorial's style for the 8x8 digits."""
    return Sequential([
        Conv2D(32, kernel_size=(3, 3), padding="same", input_shape=(8, 8, 1), activation="relu"),
        MaxPooling2D(pool_size=(2, 2)),
        Conv2D(64, kernel_size=(3, 3), activation="relu"),
        Flatten(),
        Dropout(0.3),
        Dense(10, activation="softmax"),
    ], name="digits_cnn")


def mnist_cnn() -> Sequential:
    """The tutorial's MNIST CNN."""
    model = Sequential()
    model.add(Conv2D(32, kernel_size=(3, 3), input_shape=(28, 28, 1), activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Conv2D(64, kernel_size=(3, 3), activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dropout(0.5))
    model.add(Dense(10, activation="softmax"))
    return model


IMDB_WORDS, IMDB_MAXLEN = 500, 200


def imdb_lstm(bidirectional: bool = False) -> Sequential:
    """Keras' IMDB recipe: embed 500 words (0 = padding, masked), an LSTM(32), one sigmoid unit."""
    model = Sequential(name="imdb_bilstm" if bidirectional else "imdb_lstm")
    model.add(Embedding(IMDB_WORDS, 32, mask_zero=True, input_shape=(IMDB_MAXLEN,)))
    model.add(Bidirectional(LSTM(32)) if bidirectional else LSTM(32))
    model.add(Dense(1, activation="sigmoid"))
    return model


def _train(model: Sequential, data: Any, *, batch_size: int, epochs: int, seed: int, verbose: Any,
           patience: int, min_delta: float = 0.0005, loss: str = "categorical_crossentropy",
           validation_split: float = 0.1) -> tuple[Any, EarlyStopping, float, float]:
    (x, y), (x_test, y_test) = data
    rows, test_rows = distributed.process_rows(len(x)), distributed.process_rows(len(x_test))  # all, in one process
    (x, y), (x_test, y_test) = (x[rows], y[rows]), (x_test[test_rows], y_test[test_rows])
    model.summary()
    model.compile(loss=loss, optimizer="adam", metrics=["accuracy"], seed=seed)
    stop = EarlyStopping(min_delta=min_delta, patience=patience, restore_best_weights=True)
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, callbacks=[stop],
                        validation_split=validation_split, verbose=verbose)
    seconds = time.perf_counter() - start
    loss, acc = model.evaluate(x_test, y_test, verbose=verbose)
    return history, stop, seconds, (loss, acc)


def _marks(stop: EarlyStopping, history: Any, max_epochs: int) -> dict[str, int | None]:
    """1-based epochs to mark: where training stopped early (None when it ran to its cap) and the best
    epoch whose weights were restored (None when nothing was restored)."""
    ran = len(history.epoch)
    stopped = ran if stop.stopped_epoch and ran < max_epochs else None
    best = stop.best_epoch + 1 if stop.restore_best_weights and stop.best_weights is not None else None
    return {"stopped": stopped, "best": best}


def _report(marks: dict[str, int | None], epochs_run: int, monitor: str) -> None:
    """Say in words how training ended, so the numbers that follow are not a surprise."""
    if marks["stopped"] is not None:
        print(f"Stopped early after epoch {marks['stopped']}: {monitor} stopped improving.")
    else:
        print(f"Ran all {epochs_run} epochs.")
    if marks["best"] is not None:
        print(f"Restored the weights of epoch {marks['best']}, the best {monitor}; the test scores use them.")


def _save_plot(out: Path, runs: list) -> str:
    if not distributed.is_primary():
        return ""
    try:
        plot_histories(runs, out / "curves.png")
        return f"learning curves: {out / 'curves.png'}"
    except PlottingUnavailable as e:
        return f"no curves.png: {e}"


def demo(out: str | os.PathLike | None = None, seed: int = 0, max_epochs: int | None = None,
         verbose: Any = "auto") -> dict[str, Any]:
    """Train the tutorial MLP on Iris and a small CNN on 8x8 digits; returns the results it wrote."""
    folder = run_folder(out)
    (xi, yi), (xi_t, yi_t) = iris.load_data(seed=seed)
    iris_data = ((xi, to_categorical(yi, 3)), (xi_t, to_categorical(yi_t, 3)))
    (xd, yd), (xd_t, yd_t) = digits.load_data(seed=seed)
    scale = lambda a: np.expand_dims(a.astype("float32") / 16.0, -1)  # noqa: E731 - pixels are 0..16
    digits_data = ((scale(xd), to_categorical(yd, 10)), (scale(xd_t), to_categorical(yd_t, 10)))

    results: dict[str, Any] = {"seed": seed}
    runs = []
    for key, title, heading, model, data, cap, batch_size, patience in [
        ("iris_mlp", "Iris MLP", "Iris: the tutorial's MLP", iris_mlp(), iris_data, 150, 16, 10),
        ("digits_cnn", "Digits CNN", "Digits (8x8): a small CNN", digits_cnn(), digits_data, 40, 32, 4),
    ]:
        print(f"== {heading} ==")
        epochs = min(cap, max_epochs or cap)
        history, stop, seconds, (loss, acc) = _train(model, data, batch_size=batch_size, epochs=epochs, seed=seed,
                                                     verbose=verbose, patience=patience)
        marks = _marks(stop, history, epochs)
        _report(marks, len(history.epoch), stop.monitor)
        print(f"{title.split()[0]} test accuracy: {acc:.4f} (loss {loss:.4f})\n")
        model.save_weights(folder / f"{key}.weights.npz")
        results[key] = {"history": history.history, "epochs": len(history.epoch), "stopped_epoch": marks["stopped"],
                        "restored_epoch": marks["best"], "train_seconds": seconds, "test_loss": loss,
                        "test_accuracy": acc}
        runs.append((title, history, marks))
    _write_text(folder / "history.json", json.dumps(results, indent=2))
    note = _save_plot(folder, runs)
    print(f"Run folder: {folder}\n{note}")
    return results


def train_mnist_cnn(data_dir: str | None = None, epochs: int = 30, batch_size: int = 128, seed: int = 0,
                    out: str | os.PathLike | None = None, verbose: Any = "auto",
                    limit: int | None = None) -> dict[str, Any]:
    """The tutorial's MNIST run, ending with its `The test accuracy is 99.xx%` line."""
    (x_train, y_train), (x_test, y_test) = mnist.load_data(data_dir)
    x_train, y_train = x_train[:limit], y_train[:limit]
    folder = run_folder(out)
    prep = lambda a: np.expand_dims(a.astype("float32") / 255, -1)  # noqa: E731
    data = ((prep(x_train), to_categorical(y_train, 10)), (prep(x_test), to_categorical(y_test, 10)))
    model = mnist_cnn()
    history, stop, seconds, (loss, acc) = _train(model, data, batch_size=batch_size, epochs=epochs, seed=seed,
                                                 verbose=verbose, patience=2)
    marks = _marks(stop, history, epochs)
    _report(marks, len(history.epoch), stop.monitor)
    print("The test loss is %.2f" % loss)
    print("The test accuracy is %.2f" % (acc * 100) + "%")
    model.save_weights(folder / "mnist_cnn.weights.npz")
    results = {"seed": seed, "history": history.history, "epochs": len(history.epoch),
               "stopped_epoch": marks["stopped"], "restored_epoch": marks["best"], "train_seconds": seconds,
               "seconds_per_epoch": seconds / max(len(history.epoch), 1), "test_loss": loss, "test_accuracy": acc}
    _write_text(folder / "history.json", json.dumps(results, indent=2))
    print(f"Run folder: {folder}\n{_save_plot(folder, [('MNIST CNN', history, marks)])}")
    return results


def train_imdb_lstm(epochs: int = 15, batch_size: int = 32, seed: int = 0, out: str | os.PathLike | None = None,
                    verbose: Any = "auto", bidirectional: bool = False, limit: int | None = None) -> dict[str, Any]:
    """Keras' IMDB LSTM recipe on the review subset shipped with the package; `limit` trains on fewer reviews."""
    (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=IMDB_WORDS)
    x_train, y_train = x_train[:limit], y_train[:limit]
    folder = run_folder(out)
    data = ((pad_sequences(x_train, maxlen=IMDB_MAXLEN), y_train), (pad_sequences(x_test, maxlen=IMDB_MAXLEN), y_test))
    model = imdb_lstm(bidirectional)
    history, stop, seconds, (loss, acc) = _train(model, data, batch_size=batch_size, epochs=epochs, seed=seed,
                                                 verbose=verbose, patience=2, min_delta=0.0,
                                                 loss="binary_crossentropy", validation_split=0.2)
    marks = _marks(stop, history, epochs)
    _report(marks, len(history.epoch), stop.monitor)
    print("The test loss is %.3f" % loss)
    print("The test accuracy is %.2f%%" % (acc * 100))
    model.save_weights(folder / f"{model.name}.weights.npz")
    results = {"seed": seed, "model": model.name, "history": history.history, "epochs": len(history.epoch),
               "stopped_epoch": marks["stopped"], "restored_epoch": marks["best"], "train_seconds": seconds,
               "seconds_per_epoch": seconds / max(len(history.epoch), 1), "test_loss": loss, "test_accuracy": acc}
    _write_text(folder / "history.json", json.dumps(results, indent=2))
    title = "IMDB BiLSTM" if bidirectional else "IMDB LSTM"
    print(f"Run folder: {folder}\n{_save_plot(folder, [(title, history, marks)])}")
    return results


class CharGPT(Serial):
    """nanoGPT's character-level GPT (the model of `examples/char_gpt.py`, which explains it): embeddings,
    pre-norm blocks of causal attention and a 4x GELU MLP, a final LayerNorm, the head tied to the token
    embedding; normal(0, 0.02) init, residual projections at 0.02 / sqrt(2 * n_layer); no biases."""

    def __init__(self, vocab_size: int, block_size: int = 64, n_layer: int = 4, n_head: int = 4,
                 n_embd: int = 128) -> None:
        self.vocab_size, self.block_size, self.n_layer = vocab_size, block_size, n_layer
        normal, projection = RandomNormal(stddev=0.02), RandomNormal(stddev=0.02 / math.sqrt(2 * n_layer))
        blocks = [serial(
            residual(LayerNormalization(epsilon=1e-5, center=False, name="ln_1"),
                     MultiHeadAttention(n_head, n_embd // n_head, use_bias=False, kernel_initializer=normal,
                                        name="attn").configured(use_causal_mask=True), name="attention"),
            residual(LayerNormalization(epsilon=1e-5, center=False, name="ln_2"),
                     Dense(4 * n_embd, activation="gelu", use_bias=False, kernel_initializer=normal, name="fc"),
                     Dense(n_embd, use_bias=False, kernel_initializer=projection, name="proj"), name="mlp"),
            name=f"block_{i}") for i in range(n_layer)]
        embedding = TokenAndPositionEmbedding(vocab_size, block_size, n_embd, embeddings_initializer=normal,
                                              name="embedding")
        super().__init__([embedding, *blocks, LayerNormalization(epsilon=1e-5, center=False, name="ln_f")],
                         name="char_gpt", input_shape=(block_size,))

    def make_variables(self, rng, input_shape):
        params, state = super().make_variables(rng, input_shape)
        scale = 1.0 / math.sqrt(2 * self.n_layer)  # attention's output projection, as nanoGPT's c_proj
        return jax.tree_util.tree_map_with_path(
            lambda path, w: w * scale if "attention_output" in jax.tree_util.keystr(path) and path[-1].key == "kernel"
            else w, params), state

    def call(self, params, state, x, *, rng=None, training=False):
        h, state = super().call(params, state, x, rng=rng, training=training)
        return jnp.einsum("btd,vd->btv", h, params["embedding"]["token_embedding"]["embeddings"]), state

    def compute_output_shape(self, input_shape):
        return (*super().compute_output_shape(input_shape)[:-1], self.vocab_size)


def nanogpt_adamw(iters: int, learning_rate: float = 1e-3, min_lr: float = 1e-4, warmup_iters: int = 100
                  ) -> optax.GradientTransformation:
    """nanoGPT's optimizer: clip at 1.0, AdamW (betas 0.9 / 0.99, decay 0.1 on kernels and embeddings only),
    warm-up to `learning_rate` then cosine decay to `min_lr` at `iters`."""

    def schedule(it):
        it = jnp.asarray(it, jnp.float32)
        ratio = jnp.clip((it - warmup_iters) / max(iters - warmup_iters, 1), 0.0, 1.0)
        cosine = min_lr + 0.5 * (1.0 + jnp.cos(jnp.pi * ratio)) * (learning_rate - min_lr)
        return jnp.where(it < warmup_iters, learning_rate * (it + 1) / (warmup_iters + 1), cosine)

    decays = lambda params: jax.tree_util.tree_map_with_path(  # noqa: E731
        lambda path, _: path[-1].key in ("kernel", "embeddings"), params)
    return optax.chain(optax.clip_by_global_norm(1.0),
                       optax.adamw(schedule, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.1, mask=decays))


def sample_text(model: CharGPT, params: Any, state: Any, prompt: np.ndarray, seed: int, tokens: int,
                temperature: float = 0.8, top_k: int = 200) -> np.ndarray:
    """`tokens` ids sampled after `prompt` in one compiled loop (`examples/char_gpt.py`'s `generate`)."""
    block, length = model.block_size, len(prompt)
    width = max(length + tokens, block)
    key = jax.random.key(seed)

    @jax.jit
    def run(params, state, ids):
        def step(i, ids):
            end = length + i
            start = jnp.maximum(end - block, 0)
            logits, _ = model.apply(params, state, jax.lax.dynamic_slice_in_dim(ids, start, block, axis=1))
            logits = jax.lax.dynamic_index_in_dim(logits, end - start - 1, axis=1, keepdims=False) / temperature
            kth = jax.lax.top_k(logits, min(top_k, logits.shape[-1]))[0][:, -1:]
            chosen = jax.random.categorical(jax.random.fold_in(key, i), jnp.where(logits < kth, -jnp.inf, logits))
            return jax.lax.dynamic_update_slice_in_dim(ids, chosen[:, None].astype(jnp.int32), end, axis=1)

        return jax.lax.fori_loop(0, tokens, step, ids)

    ids = jnp.zeros((1, width), jnp.int32).at[0, :length].set(jnp.asarray(prompt, jnp.int32))
    return np.asarray(run(params, state, ids)[0, length:length + tokens])


def train_char_gpt(iters: int = 2000, eval_interval: int = 250, eval_iters: int = 20, batch_size: int = 12,
                   block_size: int = 64, n_layer: int = 4, n_head: int = 4, n_embd: int = 128,
                   sample_tokens: int = 500, seed: int = 0, out: str | os.PathLike | None = None,
                   verbose: Any = "auto") -> dict[str, Any]:
    """nanoGPT's CPU run (`train_shakespeare_char` at 4 layers, 4 heads, 128 wide, context 64, batch 12) with
    `fit`: one epoch is `eval_interval` iterations on random windows, then nanoGPT's validation estimate
    (the mean loss of `eval_iters` random batches). Ends with generated text in `sample.txt`."""
    data = tinyshakespeare.load_data()
    folder = run_folder(out)
    epochs = max(1, iters // eval_interval)
    steps = max(1, iters // epochs)  # epochs x steps = iters when eval_interval divides iters
    model = CharGPT(data.vocab_size, block_size, n_layer, n_head, n_embd)
    trainer = Trainer(model, SparseCategoricalCrossentropy(from_logits=True), nanogpt_adamw(epochs * steps), seed=seed)
    print(f"char GPT: {sum(w.size for w in jax.tree.leaves(trainer.variables.params)):,} parameters, "
          f"{epochs} x {steps} iterations of batch {batch_size} x {block_size} characters")
    start = time.perf_counter()
    history = trainer.fit(RandomWindows(data.train, batch_size, block_size, seed=seed), steps_per_epoch=steps,
                          epochs=epochs, verbose=verbose,
                          validation_data=RandomWindows(data.val, batch_size, block_size, seed=seed + 1,
                                                        steps=eval_iters))
    seconds = time.perf_counter() - start
    params, state = trainer.variables
    text = data.decode(sample_text(model, params, state, data.encode("\n"), seed, sample_tokens))
    _write_text(folder / "sample.txt", text + "\n")
    checkpoint.save(folder / "char_gpt.weights.npz", params)
    val_loss = history.history["val_loss"][-1]
    print(f"The validation loss is {val_loss:.4f} after {epochs * steps} iterations\n--- sample ---\n{text}")
    results = {"seed": seed, "iterations": epochs * steps, "iterations_per_epoch": steps,
               "history": history.history, "train_seconds": seconds, "val_loss": val_loss,
               "config": {"batch_size": batch_size, "block_size": block_size, "n_layer": n_layer, "n_head": n_head,
                          "n_embd": n_embd}}
    _write_text(folder / "history.json", json.dumps(results, indent=2))
    print(f"Run folder: {folder}\n{_save_plot(folder, [(f'char GPT (1 epoch = {steps} iterations)', history, {})])}")
    return results
