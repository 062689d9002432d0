"""What every ``xpnn`` command shares: one-line errors, a guarded standard output, output files.

The rule for the command line: an error is one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, TextIO

from ..errors import XpnnError

__all__ = [
    "ArgumentParser",
    "CommandError",
    "OutputError",
    "atomic_output",
    "check_output_file",
    "optional_path",
    "output_directory",
    "quiet_stdout",
    "run_guarded",
]


class CommandError(Exception):
    """A problem with what the user asked for, found after the arguments were parsed."""


class OutputError(Exception):
    """Writing to standard output failed (closed pipe, full disk)."""

    def __init__(self, err: OSError) -> None:
        super().__init__(f"cannot write to standard output: {err.strerror or err}")
        self.errno = err.errno


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``prog: error: message (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def one_line(message: object) -> str:
    """Collapse a message onto one line.

    Examples
    --------
    >>> one_line("first\\n  second")
    'first second'
    """
    return " ".join(str(message).split())


def optional_path(value: str | None) -> str | None:
    """Treat an empty path as no path, as an empty environment variable is treated.

    Examples
    --------
    >>> optional_path(""), optional_path("/srv/mnist")
    (None, '/srv/mnist')
    """
    return value if value else None


class _GuardedStdout(io.TextIOBase):
    """Standard output whose write errors become :class:`OutputError`."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as err:
            raise OutputError(err) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as err:
            raise OutputError(err) from None

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()


def quiet_stdout() -> None:
    """Point standard output at the null device, so that the exit flush cannot fail again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.__stdout__.fileno() if sys.__stdout__ else 1)
        os.close(null)
    except (OSError, ValueError):
        pass


@contextlib.contextmanager
def guarded_stdout() -> Iterator[None]:
    """Within the block, a failed write to standard output raises :class:`OutputError`."""
    original = sys.stdout
    sys.stdout = _GuardedStdout(original)
    try:
        yield
    finally:
        sys.stdout = original


def run_guarded(run: Callable[[Any], int], args: Any, prog: str) -> int:
    """Call ``run(args)`` under the command-line error rule; return the exit status.

    xpnn's own errors, :class:`CommandError` and operating-system errors print
    ``prog: error: ...`` on one line and give 2; Ctrl-C prints
    ``prog: interrupted``, ignores any further Ctrl-C (the process is about to
    exit) and gives 130; a reader that closed standard output early gives 2
    silently; any other failure to
    write the output (a full disk) is one line and 2.
    """
    try:
        with guarded_stdout():
            code = run(args)
            sys.stdout.flush()
    except OutputError as err:
        quiet_stdout()
        if err.errno != errno.EPIPE:
            _say(f"{prog}: error: {err}")
        return 2
    except (XpnnError, CommandError) as err:
        _say(f"{prog}: error: {one_line(err)}")
        return 2
    except OSError as err:  # the file system said no (a file where a directory should be, ...)
        _say(f"{prog}: error: {one_line(err)}")
        return 2
    except KeyboardInterrupt:
        _ignore_further_interrupts()
        _say(f"{prog}: interrupted")
        return 130
    return code


def _ignore_further_interrupts() -> None:
    """On the way out after Ctrl-C, a second one must not cut the exit short."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _say(line: str) -> None:
    with contextlib.suppress(OSError):
        print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def output_directory(path: str, option: str) -> Iterator[Path]:
    """Make sure, before any work, that files can be written in the directory ``path``.

    The directory (and missing parents) is created and a temporary file is
    created in it and removed, so any reason it cannot be written shows at
    once. If the block fails, the directories created here are removed again
    when empty.

    Raises
    ------
    CommandError
        ``path`` or an ancestor is a file, or the directory cannot be made or
        written to.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with output_directory(tempfile.mkdtemp() + "/figures", "--plot") as directory:
    ...     directory.is_dir()
    True
    """
    target = Path(path).expanduser()
    created: list[Path] = []
    missing = target
    while not missing.exists() and missing.parent != missing:
        created.append(missing)
        missing = missing.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as err:
        _remove_empty(created)
        reason = (
            "not a directory"
            if isinstance(err, (FileExistsError, NotADirectoryError))
            else (err.strerror or str(err))
        )
        raise CommandError(f"{option} {path!r}: cannot write files there ({reason})") from None
    try:
        yield target
    except BaseException:
        _remove_empty(created)
        raise


def _remove_empty(directories: list[Path]) -> None:
    """Remove directories made by this process, deepest first, where they are empty."""
    for directory in directories:
        with contextlib.suppress(OSError):
            directory.rmdir()


def add_figure_options(parser: argparse.ArgumentParser) -> None:
    """Add the options every figure command shares: ``--backend``, ``--device``, ``--dpi``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_figure_options(parser)
    >>> args = parser.parse_args(["--backend", "torch"])
    >>> args.backend, args.device, args.dpi
    ('torch', None, 80)
    """
    parser.add_argument(
        "--backend",
        default=None,
        metavar="NAME",
        help="backend to compute with (default: $XPNN_BACKEND, else numpy)",
    )
    parser.add_argument(
        "--device", default=None, metavar="DEVICE", help="device (default: the backend's)"
    )
    parser.add_argument(
        "--dpi", type=int, default=80, help="resolution of a raster image (default: 80)"
    )


def check_output_file(path: str, option: str) -> Path:
    """Check, before any work, that a file can be written at ``path``.

    Raises
    ------
    CommandError
        ``path`` is a directory, or its directory is missing or not writable.

    Examples
    --------
    >>> import os, tempfile
    >>> check_output_file(os.path.join(tempfile.gettempdir(), "a.png"), "--out").name
    'a.png'
    """
    target = Path(path).expanduser()
    if target.is_dir():
        raise CommandError(f"{option} {path!r} is a directory, not a file")
    parent = target.parent
    if not parent.is_dir():
        raise CommandError(f"{option} {path!r}: no directory {str(parent)!r}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CommandError(f"{option} {path!r}: cannot write to {str(parent)!r}")
    return target


def _default_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[BinaryIO]:
    """Write ``path`` through an unpredictable temporary in its directory, then rename.

    On any failure, Ctrl-C included, the temporary is removed and ``path`` is
    left as it was; an operating-system error becomes a one-line
    :class:`CommandError`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.bin"
    >>> with atomic_output(target) as f:
    ...     _ = f.write(b"xpnn")
    >>> target.read_bytes()
    b'xpnn'
    """
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise CommandError(f"cannot write {str(path)!r}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
        os.chmod(temporary, _default_file_mode())
        os.replace(temporary, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(err, OSError):
            raise CommandError(f"cannot write {str(path)!r}: {err.strerror or err}") from None
        raise


def image_format(path: Path, option: str) -> str:
    """The matplotlib format for ``path``'s suffix; checks that matplotlib is installed.

    Raises
    ------
    CommandError
        matplotlib is missing, or it cannot write files with this suffix.

    Examples
    --------
    >>> image_format(Path("digits.PNG"), "--out")
    'png'
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise CommandError("figures need matplotlib: pip install 'xpnn[plot]'") from None
    fmt = path.suffix[1:].lower()
    supported = Figure().canvas.get_supported_filetypes()
    if fmt not in supported:
        raise CommandError(
            f"{option} {str(path)!r}: give a file name ending in one of "
            f"{', '.join('.' + name for name in sorted(supported))}"
        )
    return fmt
