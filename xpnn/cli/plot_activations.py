"""Draw the chapter's activation functions (sigmoid and step, ReLU) with xpnn.

examples:
  xpnn plot-activations --out activations.png
  xpnn plot-activations --backend torch --out docs/activations.png

Errors print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse

from ._common import add_figure_options, atomic_output, check_output_file, image_format

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``xpnn plot-activations`` to ``parser``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> configure(parser)
    >>> parser.parse_args([]).out
    'activations.png'
    """
    parser.add_argument(
        "--out",
        default="activations.png",
        metavar="FILE",
        help="image to write; its suffix picks the format (default: activations.png)",
    )
    add_figure_options(parser)


def run(args: argparse.Namespace) -> int:
    """Draw the figure and write it; print the file name."""
    out = check_output_file(args.out, "--out")
    fmt = image_format(out, "--out")
    from ..plot import activation_figure

    with atomic_output(out) as stream:  # the temporary is made first: checked before the work
        figure = activation_figure(args.backend, args.device)
        figure.savefig(stream, format=fmt, dpi=args.dpi)
    print(args.out)
    return 0
