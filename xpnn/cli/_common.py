"""What the ``xpnn`` commands share: option types, output checks made before any work, data."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import XpnnError

#: ``--dpi`` range: 600 is print quality; far above, a figure takes gigabytes and minutes.
DPI_RANGE = (10, 600)


def integer_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An ``argparse`` type: an integer in ``low..high`` (without ``high``: at least ``low``)."""

    def parse(text: str) -> int:
        with contextlib.suppress(ValueError):
            if low <= int(text) and (high is None or int(text) <= high):
                return int(text)
        what = f"at least {low} (an integer)" if high is None else f"an integer in {low}..{high}"
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")

    return parse


positive, dpi = integer_in(1), integer_in(*DPI_RANGE)


# fmt: off
def figure_options(parser: argparse.ArgumentParser, out: str) -> None:
    """Add the options the figure commands share."""
    add = parser.add_argument
    add("--out", default=out, metavar="FILE",
        help=f"image to write; its suffix picks the format (default: {out})")
    add("--backend", metavar="NAME", help="backend (default: $XPNN_BACKEND, else numpy)")
    add("--device", metavar="DEVICE", help="device (default: the backend's)")
    add("--dpi", type=dpi, default=80,
        help="resolution of a raster image, {}..{} (default: 80)".format(*DPI_RANGE))


def data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help="directory of the MNIST files and "
        "sample_weight.pkl (default: $XPNN_DATA_DIR, else the user cache directory, "
        "~/.cache/xpnn on Linux; an empty value counts as not given)")
# fmt: on


def output_file(path: str | Path, option: str, *, image: bool = False) -> Path:
    """Check, before any work, that a file (with ``image``: a figure, in a format its suffix
    names, with matplotlib installed) can be written there."""
    target, what = Path(path).expanduser(), f"{option} {str(path)!r}"
    if target.is_dir():
        raise XpnnError(f"{what} is a directory, not a file")
    if not target.parent.is_dir():
        raise XpnnError(f"{what}: no directory {str(target.parent)!r}")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise XpnnError(f"{what}: cannot write to {str(target.parent)!r}")
    if image:
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise XpnnError("figures need matplotlib: pip install 'xpnn[plot]'") from None
        supported = Figure().canvas.get_supported_filetypes()
        if target.suffix[1:].lower() not in supported:
            names = ", ".join("." + name for name in sorted(supported))
            raise XpnnError(f"{str(path)!r}: give a file name ending in one of {names}")
    return target


def save_figure(figure: Any, path: Path, dpi: int) -> None:
    """Write ``figure`` to ``path`` (checked by :func:`output_file`) atomically."""
    from .._files import atomic_write

    fmt = path.suffix[1:].lower()
    atomic_write(path, lambda f: figure.savefig(f, format=fmt, dpi=dpi))


def ensure_data(data_dir: str | None, *, book_weights: bool) -> None:
    """Make sure the MNIST test files (and the book's weights) are there; one error names all."""
    from ..download import data_home, ensure_files
    from ..mnist import MNIST_FILES
    from ..weights import BOOK_WEIGHTS

    files = [MNIST_FILES["test", "images"], MNIST_FILES["test", "labels"]]
    ensure_files([*files, BOOK_WEIGHTS] if book_weights else files, data_home(data_dir))
