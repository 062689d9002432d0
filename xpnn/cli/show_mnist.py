"""Draw MNIST test digits with their labels and the book network's predictions.

examples:
  xpnn show-mnist --count 30 --out digits.png
  xpnn show-mnist --start 240 --count 30 --out docs/digits.png

Mistakes are drawn in red. Errors print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse

from ._common import (
    CommandError,
    add_figure_options,
    atomic_output,
    check_output_file,
    image_format,
    optional_path,
)
from .evaluate import positive_int

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
    parser.add_argument(
        "--out",
        default="digits.png",
        metavar="FILE",
        help="image to write; its suffix picks the format (default: digits.png)",
    )
    parser.add_argument(
        "--count", type=positive_int, default=30, help="how many digits (default: 30)"
    )
    parser.add_argument(
        "--start", type=int, default=0, help="index of the first test digit (default: 0)"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="data directory (default: $XPNN_DATA_DIR, else the user cache directory, "
        "~/.cache/xpnn on Linux)",
    )
    add_figure_options(parser)


def run(args: argparse.Namespace) -> int:
    """Classify the chosen digits, draw them and write the figure; print the file name."""
    if not 0 <= args.start < MNIST_TEST_SIZE:
        raise CommandError(f"--start must lie in 0..{MNIST_TEST_SIZE - 1}, got {args.start}")
    out = check_output_file(args.out, "--out")
    fmt = image_format(out, "--out")
    from ..mnist import load_mnist_split
    from ..plot import digits_figure
    from ..weights import pretrained_network

    data_dir = optional_path(args.data_dir)
    with atomic_output(out) as stream:  # the temporary is made first: checked before the work
        x, t = load_mnist_split(
            "test", normalize=False, data_dir=data_dir, backend=args.backend, device=args.device
        )
        network = pretrained_network(
            data_dir=data_dir, backend=args.backend, device=args.device, input_scale=1 / 255
        )
        part = slice(args.start, min(args.start + args.count, MNIST_TEST_SIZE))
        figure = digits_figure(x[part, ...], t[part], network.classify(x[part, ...]))
        figure.savefig(stream, format=fmt, dpi=args.dpi)
    print(args.out)
    return 0
