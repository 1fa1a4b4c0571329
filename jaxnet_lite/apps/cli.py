"""The `jaxnet-lite` command: `demo` (the main job, embedded data) and `train mnist-cnn`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxnet_lite import __version__


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
    demo.add_argument("--epochs", type=_positive, default=None,
                      help="cap on epochs for both models (default: 150 for Iris, 40 for digits)")
    demo.add_argument("--verbose", choices=["0", "1", "2", "auto"], default="auto", help="progress output")

    train = commands.add_parser("train", help="train a named model on real data",
                                description="Train a named model. mnist-cnn is the tutorial's MNIST CNN.")
    train.add_argument("model", choices=["mnist-cnn"], help="what to train")
    train.add_argument("--data-dir", default=None,
                       help="directory holding mnist/ with the four IDX files (default: $JAXNET_LITE_DATA_DIR, "
                            "then tensorflow-datasets)")
    train.add_argument("--epochs", type=_positive, default=30, help="maximum epochs (default 30; early stopping)")
    train.add_argument("--batch-size", type=_positive, default=128, help="batch size (default 128)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--out", default=None, help="run folder (default: runs/<timestamp>)")
    train.add_argument("--verbose", choices=["0", "1", "2", "auto"], default="auto", help="progress output")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _verbose(text: str) -> int | str:
    return text if text == "auto" else int(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from jaxnet_lite.apps import runs

    if args.command == "demo":
        runs.demo(out=args.out, seed=args.seed, max_epochs=args.epochs, verbose=_verbose(args.verbose))
        return 0
    from jaxnet_lite.datasets import DatasetNotFoundError

    try:
        runs.train_mnist_cnn(data_dir=args.data_dir, epochs=args.epochs, batch_size=args.batch_size,
                             seed=args.seed, out=args.out, verbose=_verbose(args.verbose))
    except DatasetNotFoundError as e:
        print(f"jaxnet-lite: error: {e}\nOn the command line: jaxnet-lite train mnist-cnn --data-dir DIR",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
