"""The figure commands, ``xpnn plot-activations`` and ``xpnn show-mnist``; a command's
docstring is its ``--help`` text.

Examples
--------
>>> ShowMnist.configure(parser := argparse.ArgumentParser())
>>> parser.parse_args(["--start", "240"]).count
30
"""

from __future__ import annotations

import argparse

from ..errors import XpnnError
from ._common import data_dir_option, ensure_data, figure_options, output_file, positive
from ._common import save_figure as save

MNIST_TEST_SIZE = 10_000


class PlotActivations:
    """Draw the chapter's activation functions (sigmoid and step, ReLU) with xpnn.

    examples:
      xpnn plot-activations --backend torch --out docs/activations.png
    """

    @staticmethod
    def configure(parser: argparse.ArgumentParser) -> None:
        figure_options(parser, "activations.png")

    @staticmethod
    def run(args: argparse.Namespace) -> str:
        from ..plot import activation_figure

        out = output_file(args.out, "--out", image=True)
        save(activation_figure(args.backend, args.device), out, args.dpi)
        return str(args.out)


class ShowMnist:
    """Draw MNIST test digits with their labels and the book network's predictions.

    examples:
      xpnn show-mnist --start 240 --count 30 --out docs/digits.png

    Mistakes are drawn in red.
    """

    @staticmethod
    def configure(parser: argparse.ArgumentParser) -> None:
        figure_options(parser, "digits.png")
        add = parser.add_argument
        add("--count", type=positive, default=30, help="how many digits (default: 30)")
        add("--start", type=int, default=0, help="index of the first test digit (default: 0)")
        data_dir_option(parser)

    @staticmethod
    def run(args: argparse.Namespace) -> str:
        from ..mnist import load_mnist_split
        from ..plot import digits_figure
        from ..weights import pretrained_network

        start, stop, last = args.start, args.start + args.count, MNIST_TEST_SIZE - 1
        if not 0 <= start <= last:
            raise XpnnError(f"--start must lie in 0..{last}, got {start}")
        if stop > MNIST_TEST_SIZE:
            raise XpnnError(
                f"--start {start} --count {args.count} asks for digits up to {stop - 1}, but "
                f"the test set ends at {last}: use --count at most {MNIST_TEST_SIZE - start}"
            )
        out = output_file(args.out, "--out", image=True)
        ensure_data(args.data_dir, book_weights=True)
        where = {"data_dir": args.data_dir, "backend": args.backend, "device": args.device}
        x, t = load_mnist_split("test", normalize=False, **where)
        network = pretrained_network(input_scale=1 / 255, **where)
        x, t = x[start:stop, ...], t[start:stop]
        save(digits_figure(x, t, network.classify(x)), out, args.dpi)
        return str(args.out)
