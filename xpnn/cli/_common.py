"""What the ``xpnn`` commands share: option types, output checks made before any work, data."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import XpnnError, positive_int

#: ``--dpi`` range: 600 is print quality; far above, a figure takes gigabytes and minutes.
DPI_RANGE = (10, 600)


def positive(text: str) -> int:
    """An ``argparse`` type: an integer of at least 1 (``positive("0")`` is refused)."""
    try:
        return positive_int(int(text), "value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be at least 1 (an integer), got {text!r}") from None


def dpi(text: str) -> int:
    """An ``argparse`` type: a resolution within :data:`DPI_RANGE`."""
    with contextlib.suppress(ValueError):
        if DPI_RANGE[0] <= int(text) <= DPI_RANGE[1]:
            return int(text)
    raise argparse.ArgumentTypeError(
        "must be an integer in {}..{}, got {!r}".format(*DPI_RANGE, text)
    )


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
    """Check, before any work, that a file (with ``image``: a figure) can be written there."""
    target, what = Path(path).expanduser(), f"{option} {str(path)!r}"
    if target.is_dir():
        raise XpnnError(f"{what} is a directory, not a file")
    if not target.parent.is_dir():
        raise XpnnError(f"{what}: no directory {str(target.parent)!r}")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise XpnnError(f"{what}: cannot write to {str(target.parent)!r}")
    if image:
        image_format(target)
    return target


def image_format(path: Path) -> str:
    """The matplotlib format named by ``path``'s suffix; checks that matplotlib is there."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise XpnnError("figures need matplotlib: pip install 'xpnn[plot]'") from None
    supported, fmt = Figure().canvas.get_supported_filetypes(), path.suffix[1:].lower()
    if fmt not in supported:
        names = ", ".join("." + name for name in sorted(supported))
        raise XpnnError(f"{str(path)!r}: give a file name ending in one of {names}")
    return fmt


def save_figure(figure: Any, path: Path, dpi: int) -> None:
    """Write ``figure`` to ``path`` atomically, in the format its suffix names."""
    from .._files import atomic_write

    fmt = image_format(path)
    atomic_write(path, lambda f: figure.savefig(f, format=fmt, dpi=dpi))


@contextlib.contextmanager
def output_directory(path: str, option: str) -> Iterator[Path]:
    """Create the directory ``path`` now, so that any reason it cannot be written shows at
    once; if that or the block fails, the directories created here are removed when empty."""
    target = Path(path).expanduser()
    created = [p for p in (target, *target.parents) if not p.exists()]  # deepest first
    try:
        try:
            target.mkdir(parents=True, exist_ok=True)
            if not os.access(target, os.W_OK | os.X_OK):
                raise PermissionError(13, "permission denied")
        except OSError as err:
            mistake = isinstance(err, (FileExistsError, NotADirectoryError))
            reason = "not a directory" if mistake else err.strerror or str(err)
            raise XpnnError(f"{option} {path!r}: cannot write files there ({reason})") from None
        yield target
    except BaseException:
        for directory in created:
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise


def ensure_data(data_dir: str | None, *, book_weights: bool) -> None:
    """Make sure the MNIST test files (and the book's weights) are there: one message names
    every missing file."""
    from ..download import data_home, ensure_files
    from ..mnist import MNIST_FILES
    from ..weights import BOOK_WEIGHTS

    files = [MNIST_FILES["test", "images"], MNIST_FILES["test", "labels"]]
    ensure_files([*files, BOOK_WEIGHTS] if book_weights else files, data_home(data_dir))
