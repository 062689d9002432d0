"""Draw the chapter's activation functions (sigmoid and step, ReLU) with xpnn.

examples:
  xpnn plot-activations --out activations.png
  xpnn plot-activations --backend torch --out docs/activations.png

Errors print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse

from ._common import figure_options, output_file, save_figure

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
    figure_options(parser, "activations.png")


def run(args: argparse.Namespace) -> str:
    """Draw the figure and write it; return the file name."""
    from ..plot import activation_figure

    out = output_file(args.out, "--out", image=True)
    save_figure(activation_figure(args.backend, args.device), out, args.dpi)
    return str(args.out)
