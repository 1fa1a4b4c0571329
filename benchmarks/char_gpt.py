"""The character-level GPT race: jaxnet_lite against a hand-written JAX GPT and nanoGPT in PyTorch.

    python -m benchmarks.char_gpt                 # nanoGPT's CPU configuration, 2,000 iterations each
    python -m benchmarks.char_gpt --size gpu      # its GPU configuration (6 x 384, context 256, dropout 0.2)
    python -m benchmarks.char_gpt --quick         # a tiny model for a few steps (the smoke test)
    python -m benchmarks.char_gpt --iters 500 --contenders jnl_step,nanogpt_torch --out race.json

Every contender trains the same model (nanoGPT's `train_shakespeare_char` with its README's CPU overrides:
4 layers, 4 heads, 128 wide, context 64, batch 12, AdamW lr 1e-3 / beta2 0.99 / weight decay 0.1, 100
warm-up steps and cosine decay to 1e-4, clipping at 1.0, no dropout, no biases) for the same number of
iterations on random windows of Tiny Shakespeare's training split, then reports nanoGPT's validation
estimate on the SAME 20 random validation batches (drawn once by the parent). `--size gpu` is the
configuration nanoGPT's README trains on one A100 (`config/train_shakespeare_char.py` as it stands: 6
layers, 6 heads, 384 wide, context 256, batch 64, dropout 0.2, 5,000 iterations, 200 validation batches),
with bfloat16 compute: the "mixed_bfloat16" policy for the JAX contenders, nanoGPT's autocast for PyTorch,
which also compiles its model there as nanoGPT does by default. Each runs in its own
process; the parent alternates windows of steps between them round-robin (one process runs at a time,
each round in an order rotated by one), so a busy machine's drift falls on all of them alike:

- `jnl_step`: the example's model (`examples/char_gpt.py`) with `make_train_step` and `RandomWindows`
  (the pure step leaves the process's memory allocator as it is);
- `jnl_fit`: the same model and optimizer through `Trainer.fit` with `RandomWindows` as its dataset (on CPU
  `fit` keeps freed host memory for reuse, `jaxnet_lite.host_allocator`; the environment variables
  `MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=2147483647` give every contender that setting);
- `ref_gpt`: the hand-written JAX GPT (`reference_gpt.py`, no jaxnet_lite);
- `nanogpt_torch`: nanoGPT in PyTorch eager (`nanogpt_torch.py`), skipped when torch is not installed.

Times: "1st step" is the first training step alone (JAX's compilation is in it); "train" is the wall
time of the other steps scaled to all `iters` (N x the steady time per step), so it excludes compilation;
"÷ nanoGPT's" is the median over the rounds of the contender's window time over nanoGPT's in the same round.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.workloads import POLICIES

REPO = Path(__file__).resolve().parents[1]
CONTENDERS = ("jnl_step", "jnl_fit", "ref_gpt", "nanogpt_torch")
REFERENCE = "nanogpt_torch"


@dataclasses.dataclass(frozen=True)
class RaceConfig:
    """nanoGPT's CPU configuration (its README's command line over `config/train_shakespeare_char.py`)."""

    iters: int = 2000
    batch_size: int = 12
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    bias: bool = False
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_iters: int = 20
    seed: int = 0
    dropout: float = 0.0
    policy: str = "float32"  # what the JAX contenders compute in (Keras' policy names); autocast for PyTorch
    torch_compile: bool = False  # `torch.compile` for nanoGPT's model (its default on GPUs)


QUICK = dict(iters=5, batch_size=4, block_size=16, n_layer=1, n_head=2, n_embd=32, warmup_iters=2, eval_iters=2,
             torch_compile=False)
SIZES = {
    "cpu": {},  # the defaults: the README's CPU command line
    "gpu": dict(iters=5000, batch_size=64, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2, eval_iters=200,
                policy="mixed_bfloat16", torch_compile=True),
}
# Each size's goal: (validation loss, train time as a fraction of nanoGPT's, or None to report it only).
GOALS = {"cpu": (1.88, 0.8), "gpu": (1.47, None)}


# ------------------------------------------------------------------------------ the jaxnet_lite contenders


def _example() -> Any:
    """`examples/char_gpt.py` as a module (the examples folder is not a package)."""
    spec = importlib.util.spec_from_file_location("char_gpt_example", REPO / "examples" / "char_gpt.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class JnlContender:
    """The example's GPT and optimizer trained by the library: `make_train_step` in a plain loop over
    `RandomWindows` batches ("jnl_step"), or `Trainer.fit` with the windows as its dataset ("jnl_fit")."""

    def __init__(self, cfg: RaceConfig, train_ids: np.ndarray, val_ids: np.ndarray, eval_starts: np.ndarray,
                 vocab_size: int, *, use_fit: bool = False) -> None:
        import jax

        from jaxnet_lite import Trainer, TrainState, make_eval_step, make_train_step, mixed_precision
        from jaxnet_lite.data import RandomWindows

        self._jax, self.use_fit = jax, use_fit
        example = _example()
        mixed_precision.set_global_policy(cfg.policy)  # the layers take it when built (the worker is its own process)
        model = example.GPT(vocab_size, cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd, bias=cfg.bias,
                            dropout=cfg.dropout)
        optimizer = example.nanogpt_optimizer(cfg.iters, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.weight_decay,
                                              cfg.beta2, cfg.grad_clip)
        self.windows = RandomWindows(train_ids, cfg.batch_size, cfg.block_size, seed=cfg.seed + 1)
        span = np.arange(cfg.block_size + 1)
        self.eval_batches = [(val_ids[s[:, None] + span][:, :-1], val_ids[s[:, None] + span][:, 1:])
                             for s in eval_starts]
        self.loss = float("nan")
        if use_fit:
            self.trainer = Trainer(model, example.LOSS, optimizer, seed=cfg.seed)  # builds the state: shape declared
            params = self.trainer.variables.params
        else:
            self.ts = TrainState.create(model, optimizer, seed=cfg.seed, input_shape=(cfg.block_size,))
            self.step = make_train_step(model, example.LOSS, optimizer)
            self.eval_step = make_eval_step(model, example.LOSS)
            self.batches = iter(self.windows)
            params = self.ts.params
        self.n_params = sum(w.size for w in jax.tree.leaves(params))
        self.device = str(jax.devices()[0])

    def run(self, steps: int) -> None:
        """`steps` training steps; returns when the last one is done."""
        if self.use_fit:
            history = self.trainer.fit(self.windows, steps_per_epoch=steps, epochs=1, verbose=0)
            self._jax.block_until_ready(self.trainer.train_state)
            self.loss = history.history["loss"][-1]
            return
        for _ in range(steps):
            self.ts, logs = self.step(self.ts, next(self.batches))
        self._jax.block_until_ready(self.ts)
        self.loss = logs["loss"]

    def evaluate(self) -> float:
        """The mean loss over the shared validation windows (`Trainer.evaluate` for "jnl_fit")."""
        if self.use_fit:
            return float(self.trainer.evaluate(self.eval_batches, verbose=0))
        return float(np.mean([float(self.eval_step(self.ts.params, self.ts.state, b)["loss"])
                              for b in self.eval_batches]))


def make_contender(name: str, cfg: RaceConfig, data_path: str) -> Any:
    with np.load(data_path) as f:
        args = (cfg, f["train"], f["val"], f["eval_starts"], int(f["vocab_size"]))
    if name in ("jnl_step", "jnl_fit"):
        return JnlContender(*args, use_fit=name == "jnl_fit")
    if name == "ref_gpt":
        from benchmarks import reference_gpt

        return reference_gpt.Contender(*args)
    from benchmarks import nanogpt_torch

    return nanogpt_torch.Contender(*args)


def serve(name: str, cfg: RaceConfig, data_path: str) -> None:
    """The worker: build the contender, then obey `run K` / `eval` / `quit` lines on stdin, answering one
    line each on stdout (times taken here, around the blocking calls)."""
    start = time.perf_counter()
    contender = make_contender(name, cfg, data_path)
    _say("READY", setup_s=time.perf_counter() - start, n_params=int(contender.n_params), device=contender.device)
    for line in sys.stdin:
        command, *rest = line.split()
        start = time.perf_counter()
        if command == "run":
            contender.run(int(rest[0]))
            _say("DONE", seconds=time.perf_counter() - start)
        elif command == "eval":
            loss = contender.evaluate()
            _say("EVAL", val_loss=loss, eval_s=time.perf_counter() - start, last_train_loss=float(contender.loss))
        else:
            return


def _say(tag: str, **fields: Any) -> None:
    print(f"{tag} {json.dumps(fields)}", flush=True)


# ---------------------------------------------------------------------------------------------- the parent


def prepare_data(cfg: RaceConfig, folder: Path) -> Path:
    """The split ids and the shared validation windows (nanoGPT's `randint(len(val) - block)`), as .npz."""
    from jaxnet_lite.datasets import tinyshakespeare

    data = tinyshakespeare.load_data()
    rng = np.random.default_rng(1234 + cfg.seed)
    starts = rng.integers(0, len(data.val) - cfg.block_size, (cfg.eval_iters, cfg.batch_size))
    path = folder / "char_gpt_data.npz"
    np.savez(path, train=data.train, val=data.val, eval_starts=starts, vocab_size=data.vocab_size)
    return path


def available(name: str) -> str | None:
    """Why a contender cannot run here, or None."""
    if name == "nanogpt_torch" and importlib.util.find_spec("torch") is None:
        return "skipped: torch not installed"
    return None


class _Worker:
    """One contender's process, driven line by line."""

    def __init__(self, name: str, cfg: RaceConfig, data_path: Path, log: Path) -> None:
        self.name, self.log = name, log
        command = [sys.executable, "-m", "benchmarks.char_gpt", "--worker", name,
                   "--config", json.dumps(dataclasses.asdict(cfg)), "--data", str(data_path)]
        env = {**os.environ}
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # several JAX workers share one GPU
        with open(log, "w") as err:
            self.process = subprocess.Popen(command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=err, text=True, env=env)
        self.result: dict[str, Any] = {"window_s": []}

    def ask(self, command: str | None, tag: str) -> dict[str, Any]:
        if command is not None:
            try:
                self.process.stdin.write(command + "\n")
                self.process.stdin.flush()
            except OSError:  # the worker died: its log says why
                pass
        for line in self.process.stdout:
            if line.startswith(tag + " "):
                return json.loads(line[len(tag) + 1:])
        errors = [ln for ln in self.log.read_text().splitlines() if "Error" in ln.split(":")[0]]
        raise RuntimeError(errors[-1] if errors else f"{self.name} exited without an answer (log: {self.log.name})")

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
            except OSError:
                pass
            self.process.wait(timeout=60)


def _chunks(total: int, windows: int) -> list[int]:
    """`total` steps in `windows` near-equal windows (fewer when there are fewer steps)."""
    count = max(1, min(windows, total))
    return [total // count + (1 if i < total % count else 0) for i in range(count)]


def race(cfg: RaceConfig, contenders: list[str], windows: int = 8, quiet: bool = False) -> dict[str, dict[str, Any]]:
    """Train every contender in its own process, alternating windows of steps round-robin (each round in an
    order rotated by one), so a busy machine's drift falls on all alike; only one process runs at a time."""
    results: dict[str, dict[str, Any]] = {}
    workers: list[_Worker] = []
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))

    def fail(worker: _Worker, error: Exception) -> None:
        results[worker.name] = {"error": str(error)}
        workers.remove(worker)
        worker.process.kill()
        worker.process.wait()

    with tempfile.TemporaryDirectory() as tmp:
        data_path = prepare_data(cfg, Path(tmp))
        for name in contenders:
            reason = available(name)
            if reason is not None:
                results[name] = {"skipped": reason}
                continue
            worker = _Worker(name, cfg, data_path, Path(tmp) / f"{name}.log")
            workers.append(worker)
            try:
                worker.result.update(worker.ask(None, "READY"))
                worker.result["first_step_s"] = worker.ask("run 1", "DONE")["seconds"]
                results[name] = worker.result
                say(f"{name}: ready, first step {worker.result['first_step_s']:.1f} s")
            except RuntimeError as e:
                fail(worker, e)
        for round_index, steps in enumerate(_chunks(cfg.iters - 1, windows)):
            shift = round_index % max(len(workers), 1)
            for worker in workers[shift:] + workers[:shift]:
                try:
                    worker.result["window_s"].append(worker.ask(f"run {steps}", "DONE")["seconds"])
                except RuntimeError as e:
                    fail(worker, e)
            say(f"round {round_index + 1}: " + ", ".join(f"{w.name} {w.result['window_s'][-1]:.1f} s" for w in workers))
        for worker in list(workers):
            try:
                worker.result.update(worker.ask("eval", "EVAL"))
            except RuntimeError as e:
                fail(worker, e)
            worker.close()
    for name, r in results.items():
        if "window_s" in r:
            per_iter = sum(r["window_s"]) / (cfg.iters - 1)
            r.update(ms_per_iter=per_iter * 1e3, train_s=per_iter * cfg.iters)
    reference = results.get(REFERENCE, {}).get("window_s")
    for r in results.values():
        if reference and "window_s" in r and len(r["window_s"]) == len(reference):
            r["time_ratio_to_nanogpt"] = float(np.median([a / b for a, b in zip(r["window_s"], reference)]))
    return results


def table(results: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: loss, times, and the time as a fraction of nanoGPT's (median over the rounds)."""
    rows = ["| contender | val loss | train s (excl. 1st step) | ms / iter | 1st step s (compile) | eval s "
            "| train time ÷ nanoGPT's |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in results.items():
        if "val_loss" not in r:
            rows.append(f"| {name} | {r.get('skipped') or 'failed: ' + r.get('error', '')} | | | | | |")
            continue
        ratio = f"{r['time_ratio_to_nanogpt']:.2f}" if "time_ratio_to_nanogpt" in r else "–"
        rows.append(f"| {name} | {r['val_loss']:.4f} | {r['train_s']:.1f} | {r['ms_per_iter']:.1f} | "
                    f"{r['first_step_s']:.2f} | {r['eval_s']:.2f} | {ratio} |")
    return "\n".join(rows)


def goals(cfg: RaceConfig, results: dict[str, dict[str, Any]], size: str = "cpu") -> list[str]:
    """Whether jaxnet_lite (`jnl_step`) reached the goals of `size`: the loss, and the time against nanoGPT."""
    ours = results.get("jnl_step", {})
    if "val_loss" not in ours:
        return ["goals: jnl_step did not run"]
    goal_loss, goal_ratio = GOALS[size]
    full = cfg == RaceConfig(seed=cfg.seed, **SIZES[size])
    note = "" if full else f" (not the goal's run: that is `--size {size}` and no other option)"
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    lines = [f"goal val loss <= {goal_loss}: {ours['val_loss']:.4f}, {met(ours['val_loss'] <= goal_loss)}{note}"]
    if "time_ratio_to_nanogpt" not in ours:
        lines.append("train time: nanoGPT (torch) did not run")
    elif goal_ratio is None:
        lines.append(f"train time: {ours['time_ratio_to_nanogpt']:.2f}x nanoGPT's "
                     f"({ours['ms_per_iter']:.1f} against {results[REFERENCE]['ms_per_iter']:.1f} ms per iteration)")
    else:
        ratio = ours["time_ratio_to_nanogpt"]
        lines.append(f"goal train time <= {goal_ratio}x nanoGPT's: {ratio:.2f}x, {met(ratio <= goal_ratio)}{note}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=None, help="training iterations (default 2000; 5 with --quick)")
    parser.add_argument("--size", choices=sorted(SIZES), default="cpu",
                        help="nanoGPT's CPU configuration (default) or its GPU one")
    parser.add_argument("--quick", action="store_true", help="a tiny model for a few steps (the smoke test)")
    parser.add_argument("--dropout", type=float, default=None, help="override the size's dropout rate")
    parser.add_argument("--policy", choices=POLICIES, default=None, help="override the size's compute policy")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help=f"comma-separated, from {CONTENDERS}")
    parser.add_argument("--windows", type=int, default=8, help="alternated windows of steps per contender (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        serve(args.worker, RaceConfig(**json.loads(args.config)), args.data)
        return 0

    fields = {**SIZES[args.size], **(QUICK if args.quick else {})}
    overrides = dict(iters=args.iters, dropout=args.dropout, policy=args.policy)
    fields.update({key: value for key, value in overrides.items() if value is not None})
    cfg = RaceConfig(seed=args.seed, **fields)
    if not 0.0 <= cfg.dropout < 1.0:
        parser.error(f"--dropout must be in [0, 1), got {cfg.dropout}")
    if cfg.iters < 2 or args.windows < 1:
        parser.error("--iters must be at least 2 (the first step is timed on its own) and --windows at least 1")
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = sorted(set(names) - set(CONTENDERS))
    if unknown:
        parser.error(f"unknown contenders {unknown}; choose from {CONTENDERS}")
    started, load_before = time.strftime("%Y-%m-%d %H:%M"), os.getloadavg()
    results = race(cfg, names, windows=args.windows)
    load = {"before": load_before, "after": os.getloadavg()}  # other jobs on the machine skew every contender
    print(f"\nchar GPT race, {started}: {cfg}\n"
          f"load average (1, 5, 15 min) before {load_before}, after {load['after']}\n")
    print(table(results))
    print("\n" + "\n".join(goals(cfg, results, args.size)))
    if args.out:
        record = {"date": started, "size": args.size, "config": dataclasses.asdict(cfg), "load_average": load,
                  "results": results}
        Path(args.out).write_text(json.dumps(record, indent=2))
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
