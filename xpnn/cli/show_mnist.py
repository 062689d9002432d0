"""Draw MNIST test digits with their labels and the book network's predictions.

examples:
  xpnn show-mnist --count 30 --out digits.png
  xpnn show-mnist --start 240 --count 30 --out docs/digits.png

Mistakes are drawn in red. Errors print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse

from ..errors import XpnnError
from ._common import data_dir_option, ensure_data, figure_options, output_file, positive
from ._common import save_figure as save

__all__ = ["configure", "run"]

MNIST_TEST_SIZE = 10_000


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``xpnn show-mnist`` to ``parser``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> configure(parser)
    >>> args = parser.parse_args(["--start", "240"])
    >>> args.out, args.start, args.count
    ('digits.png', 240, 30)
    """
    figure_options(parser, "digits.png")
    parser.add_argument("--count", type=positive, default=30, help="how many digits (default: 30)")
    parser.add_argument(
        "--start", type=int, default=0, help="index of the first test digit (default: 0)"
    )
    data_dir_option(parser)


def run(args: argparse.Namespace) -> str:
    """Classify the chosen digits, draw them and write the figure; return the file name."""
    last = MNIST_TEST_SIZE - 1
    if not 0 <= args.start <= last:
        raise XpnnError(f"--start must lie in 0..{last}, got {args.start}")
    if args.start + args.count > MNIST_TEST_SIZE:
        raise XpnnError(
            f"--start {args.start} --count {args.count} asks for digits up to "
            f"{args.start + args.count - 1}, but the test set ends at {last}: use --count "
            f"at most {MNIST_TEST_SIZE - args.start}"
        )
    out = output_file(args.out, "--out", image=True)
    from ..mnist import load_mnist_split
    from ..plot import digits_figure
    from ..weights import pretrained_network

    ensure_data(args.data_dir, book_weights=True)
    where = {"data_dir": args.data_dir, "backend": args.backend, "device": args.device}
    x, t = load_mnist_split("test", normalize=False, **where)
    network = pretrained_network(input_scale=1 / 255, **where)
    x, t = x[args.start : args.start + args.count, ...], t[args.start : args.start + args.count]
    save(digits_figure(x, t, network.classify(x)), out, args.dpi)
    return str(args.out)
