"""What the ``xpnn`` commands share: option types, output checks made before any work, data."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import XpnnError, positive_int

#: Raster resolutions accepted by ``--dpi``: 600 dpi is print quality; above that a figure
#: needs gigabytes and minutes (20000 dpi would be about 52 GB).
DPI_RANGE = (10, 600)


def positive(text: str) -> int:
    """An ``argparse`` type: an integer of at least 1.

    Examples
    --------
    >>> positive("100")
    100
    >>> positive("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be at least 1 (an integer), got '0'
    """
    try:
        return positive_int(int(text), "value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be at least 1 (an integer), got {text!r}") from None


def dpi(text: str) -> int:
    """An ``argparse`` type: a resolution within :data:`DPI_RANGE`.

    Examples
    --------
    >>> dpi("20000")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be an integer in 10..600, got '20000'
    """
    low, high = DPI_RANGE
    with contextlib.suppress(ValueError):
        if low <= int(text) <= high:
            return int(text)
    raise argparse.ArgumentTypeError(f"must be an integer in {low}..{high}, got {text!r}")


def add_figure_options(parser: argparse.ArgumentParser, out: str) -> None:
    """Add ``--out``, ``--backend``, ``--device`` and ``--dpi``, shared by the figure commands."""
    parser.add_argument(
        "--out",
        default=out,
        metavar="FILE",
        help=f"image to write; its suffix picks the format (default: {out})",
    )
    parser.add_argument(
        "--backend", metavar="NAME", help="backend to compute with (default: $XPNN_BACKEND, "
        "else numpy)"
    )  # fmt: skip
    parser.add_argument("--device", metavar="DEVICE", help="device (default: the backend's)")
    parser.add_argument(
        "--dpi",
        type=dpi,
        default=80,
        help=f"resolution of a raster image, {DPI_RANGE[0]}..{DPI_RANGE[1]} (default: 80)",
    )


def output_file(path: str | Path, option: str, *, image: bool = False) -> Path:
    """Check, before any work, that a file can be written at ``path``; return it.

    With ``image``, the suffix must be a format matplotlib writes.

    Examples
    --------
    >>> import os, tempfile
    >>> output_file(os.path.join(tempfile.gettempdir(), "a.png"), "--out", image=True).name
    'a.png'
    """
    target = Path(path).expanduser()
    if target.is_dir():
        raise XpnnError(f"{option} {str(path)!r} is a directory, not a file")
    if not target.parent.is_dir():
        raise XpnnError(f"{option} {str(path)!r}: no directory {str(target.parent)!r}")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise XpnnError(f"{option} {str(path)!r}: cannot write to {str(target.parent)!r}")
    if image:
        image_format(target, option)
    return target


def image_format(path: Path, option: str) -> str:
    """The matplotlib format for ``path``'s suffix; checks that matplotlib is installed.

    Examples
    --------
    >>> image_format(Path("digits.PNG"), "--out")
    'png'
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise XpnnError("figures need matplotlib: pip install 'xpnn[plot]'") from None
    supported = Figure().canvas.get_supported_filetypes()
    if path.suffix[1:].lower() not in supported:
        raise XpnnError(
            f"{option} {str(path)!r}: give a file name ending in one of "
            f"{', '.join('.' + name for name in sorted(supported))}"
        )
    return path.suffix[1:].lower()


def save_figure(figure: Any, path: Path, dpi: int) -> None:
    """Write ``figure`` to ``path`` atomically, in the format its suffix names."""
    from .._files import atomic_write

    fmt = image_format(path, str(path))
    atomic_write(path, lambda f: figure.savefig(f, format=fmt, dpi=dpi))


@contextlib.contextmanager
def output_directory(path: str, option: str) -> Iterator[Path]:
    """Create the directory ``path`` now, so that a reason it cannot be written shows at once.

    If the block fails, the directories created here are removed again when empty.

    Examples
    --------
    >>> import tempfile
    >>> with output_directory(tempfile.mkdtemp() + "/figures", "--plot") as directory:
    ...     directory.is_dir()
    True
    """
    target = Path(path).expanduser()
    created = [p for p in (target, *target.parents) if not p.exists()]  # deepest first
    try:
        target.mkdir(parents=True, exist_ok=True)
        if not os.access(target, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied")
    except OSError as err:
        reason = "not a directory" if isinstance(err, (FileExistsError, NotADirectoryError)) else (
            err.strerror or str(err)
        )  # fmt: skip
        _remove_empty(created)
        raise XpnnError(f"{option} {path!r}: cannot write files there ({reason})") from None
    try:
        yield target
    except BaseException:
        _remove_empty(created)
        raise


def _remove_empty(directories: list[Path]) -> None:
    for directory in directories:
        with contextlib.suppress(OSError):
            directory.rmdir()


def ensure_data(data_dir: str | None, *, book_weights: bool) -> None:
    """Make sure the MNIST test files (and the book's weights) are there: one call, so that
    one message names every missing file."""
    from ..download import data_home, ensure_files
    from ..mnist import MNIST_FILES
    from ..weights import BOOK_WEIGHTS

    files = [MNIST_FILES["test", "images"], MNIST_FILES["test", "labels"]]
    ensure_files([*files, BOOK_WEIGHTS] if book_weights else files, data_home(data_dir))


def data_dir_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--data-dir``."""
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="directory of the MNIST files and sample_weight.pkl (default: $XPNN_DATA_DIR, "
        "else the user cache directory, ~/.cache/xpnn on Linux; an empty value counts as "
        "not given)",
    )
