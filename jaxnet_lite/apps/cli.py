"""The `jaxnet-lite` command: `demo` (the main job, embedded data), `train mnist-cnn | imdb-lstm | imdb-bilstm |
char-gpt`, and `launch` (N local processes of one program)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from jaxnet_lite import __version__, distributed
from jaxnet_lite import launch as launcher


class _Parser(argparse.ArgumentParser):
    """Argument errors: one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxnet-lite", description="jaxnet_lite: a functional deep-learning engine on JAX.")
    parser.add_argument("--version", action="version", version=f"jaxnet_lite {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    demo = commands.add_parser("demo", help="train the tutorial MLP on Iris and a small CNN on 8x8 digits "
                                            "(embedded data, under a minute)",
                               description="Train the tutorial's MLP on Iris and a small CNN on the embedded 8x8 "
                                           "digits; print summaries, progress and test accuracy; write a run folder "
                                           "with history.json, curves.png and the weights.")
    demo.add_argument("--out", default=None, help="run folder (default: runs/<timestamp>)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--epochs", type=launcher.positive_int, default=None,
                      help="cap on epochs for both models (default: 150 for Iris, 40 for digits)")
    demo.add_argument("--verbose", choices=["0", "1", "2", "auto"], default="auto", help="progress output")

    train = commands.add_parser("train", help="train a named model on real data",
                                description="Train a named model. mnist-cnn is the tutorial's MNIST CNN; "
                                            "imdb-lstm (and imdb-bilstm) Keras' IMDB LSTM recipe on the review "
                                            "subset shipped with the package; char-gpt nanoGPT's character-level "
                                            "GPT on Tiny Shakespeare (its CPU configuration).")
    train.add_argument("model", choices=["mnist-cnn", "imdb-lstm", "imdb-bilstm", "char-gpt"], help="what to train")
    train.add_argument("--data-dir", default=None,
                       help="directory holding mnist/ with the four IDX files (default: $JAXNET_LITE_DATA_DIR, "
                            "then tensorflow-datasets)")
    train.add_argument("--epochs", type=launcher.positive_int, default=None,
                       help="maximum epochs (default: 30 for mnist-cnn, 15 for imdb; early stopping)")
    train.add_argument("--batch-size", type=launcher.positive_int, default=None,
                       help="batch size (default: 128 for mnist-cnn, 32 for imdb)")
    train.add_argument("--limit", type=launcher.positive_int, default=None, help="train on the first N examples only")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--out", default=None, help="run folder (default: runs/<timestamp>)")
    train.add_argument("--verbose", choices=["0", "1", "2", "auto"], default="auto", help="progress output")
    train.add_argument("--iters", type=launcher.positive_int, default=None, help="char-gpt: training iterations (default 2000)")
    train.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # char-gpt at toy size (tests)

    launch = commands.add_parser("launch", help="run a program as N local processes (jax.distributed)",
                                 description="Start N processes of a program on this machine, wired together for "
                                             "jax.distributed over loopback: jaxnet-lite launch -n 2 -- python "
                                             "train.py. Output lines are prefixed with the process index.")
    launcher.add_arguments(launch)
    return parser


def _verbose(text: str) -> int | str:
    return text if text == "auto" else int(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "launch":
        return launcher.run_from_arguments(args, parser)
    distributed.initialize()  # under `jaxnet-lite launch` (or a cluster): join the other processes
    if distributed.is_primary():
        return _run_job(args)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # process 0 reports for all
        return _run_job(args)


def _run_job(args: argparse.Namespace) -> int:
    from jaxnet_lite.apps import runs

    if args.command == "demo":
        runs.demo(out=args.out, seed=args.seed, max_epochs=args.epochs, verbose=_verbose(args.verbose))
        return 0
    from jaxnet_lite.datasets import DatasetNotFoundError

    gpt_only = [flag for flag, given in (("--iters", args.iters), ("--tiny", args.tiny)) if given]
    if args.model == "char-gpt":
        other = [flag for flag, given in (("--epochs", args.epochs), ("--limit", args.limit),
                                          ("--data-dir", args.data_dir)) if given is not None]
        if other:
            build_parser().error(f"char-gpt trains for --iters iterations on the shipped text; it takes no {other[0]}")
        if distributed.process_count() > 1:  # its random windows are drawn alike on every process
            print("jaxnet-lite: error: char-gpt runs as one process", file=sys.stderr)
            return 2
        size = dict(n_layer=1, n_head=2, n_embd=32, block_size=16, eval_interval=5, eval_iters=2,
                    sample_tokens=40) if args.tiny else {}
        runs.train_char_gpt(iters=args.iters or 2000, batch_size=args.batch_size or 12, seed=args.seed, out=args.out,
                            verbose=_verbose(args.verbose), **size)
        return 0
    if gpt_only:
        build_parser().error(f"{gpt_only[0]} is for char-gpt only")
    if args.model in ("imdb-lstm", "imdb-bilstm"):
        runs.train_imdb_lstm(epochs=args.epochs or 15, batch_size=args.batch_size or 32, seed=args.seed,
                             out=args.out, verbose=_verbose(args.verbose), bidirectional=args.model == "imdb-bilstm",
                             limit=args.limit)
        return 0
    try:
        runs.train_mnist_cnn(data_dir=args.data_dir, epochs=args.epochs or 30, batch_size=args.batch_size or 128,
                             seed=args.seed, out=args.out, verbose=_verbose(args.verbose), limit=args.limit)
    except DatasetNotFoundError as e:
        print(f"jaxnet-lite: error: {e}\nOn the command line: jaxnet-lite train mnist-cnn --data-dir DIR",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
