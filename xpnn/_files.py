"""Files written atomically, and read only when they are regular files."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

__all__ = ["atomic_write", "default_file_mode", "open_regular", "read_regular", "sigterm_raises"]


def default_file_mode() -> int:
    """Return the mode ``open(path, "w")`` gives a new file: ``0o666`` less the umask."""
    try:  # Linux tells the umask without changing it
        with open("/proc/self/status", encoding="ascii") as status:
            umask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, ValueError, StopIteration):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def _exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises ``SystemExit(143)`` within (main thread, default action only) for cleanups."""
    main = threading.current_thread() is threading.main_thread()
    if own := main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        if own:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def atomic_write(
    path: str | os.PathLike[str],
    content: bytes | bytearray | memoryview | Callable[[BinaryIO], object],
) -> None:
    """Write ``content`` (bytes, or a function writing to the binary file given) atomically.

    A ``mkstemp`` temporary next to ``path`` gets the mode ``open()`` gives and replaces ``path``
    (a link there is replaced, not followed); any exception, Ctrl-C or SIGTERM removes it.
    """
    folder, name = os.path.split(os.fspath(path))
    with sigterm_raises():
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder or ".")
        try:
            with os.fdopen(fd, "wb") as handle:
                content(handle) if callable(content) else handle.write(content)
                handle.flush()
                os.fchmod(handle.fileno(), default_file_mode())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a regular file for reading, never blocking; anything else is an OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO opens at once
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], limit: int, error: type[Exception]) -> bytes:
    """A regular file's bytes, at most ``limit + 1`` (the caller refuses those), or an ``error``."""
    try:
        with open_regular(path) as handle:
            return handle.read(min(os.fstat(handle.fileno()).st_size, limit) + 1)
    except OSError as err:
        raise error(f"{os.fspath(path)}: cannot read ({err.strerror or err})") from None
