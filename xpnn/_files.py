"""Writing files so that nothing half-written, predictable or planted is ever used.

:func:`atomic_write` creates an unpredictably named temporary next to the
target with exclusive creation (``tempfile.mkstemp``: ``O_CREAT | O_EXCL |
O_NOFOLLOW``, so a link planted at any name is never followed), writes and
flushes it, and renames it over the target with :func:`os.replace` (which
replaces a link at the target rather than writing through it). Any failure,
``KeyboardInterrupt`` included, removes the temporary before the error goes on.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "default_file_mode", "read_at_most", "temporary_in"]

_UMASK: int | None = None
_UMASK_LOCK = threading.Lock()


def _current_umask() -> int:
    """Return the process umask without changing it where the OS allows."""
    global _UMASK
    with _UMASK_LOCK:
        if _UMASK is None:
            try:
                with open("/proc/self/status", encoding="ascii") as status:
                    for line in status:
                        if line.startswith("Umask:"):
                            _UMASK = int(line.split()[1], 8)
                            break
            except (OSError, ValueError):
                pass
            if _UMASK is None:  # no /proc: the classic set-and-restore
                _UMASK = os.umask(0o022)
                os.umask(_UMASK)
        return _UMASK


def default_file_mode() -> int:
    """Return the mode an ordinary ``open(path, "w")`` would give: ``0o666`` less the umask.

    Examples
    --------
    >>> default_file_mode() & 0o600
    384
    """
    return 0o666 & ~_current_umask()


def read_at_most(handle: BinaryIO, limit: int) -> bytes:
    """Read a whole open file, or ``limit + 1`` bytes if it is longer (the caller refuses it).

    Memory follows the file's real size: ``handle.read(limit + 1)`` alone would
    reserve ``limit`` bytes up front however small the file is.

    Examples
    --------
    >>> import io
    >>> read_at_most(io.BytesIO(b"abcdef"), 4)
    b'abcde'
    """
    try:
        size = os.fstat(handle.fileno()).st_size
    except (OSError, AttributeError, io.UnsupportedOperation):
        size = 0  # not a regular file: read in pieces
    if size:
        data = handle.read(min(size, limit) + 1)
        if len(data) <= limit and len(data) == size:
            return data
        pieces = [data]
        total = len(data)
    else:
        pieces, total = [], 0
    while total <= limit:
        piece = handle.read(min(1 << 20, limit + 1 - total))
        if not piece:
            break
        pieces.append(piece)
        total += len(piece)
    return b"".join(pieces)


@contextlib.contextmanager
def temporary_in(directory: Path, name: str) -> Iterator[tuple[BinaryIO, Path]]:
    """Yield ``(file, path)`` of a new, exclusively created temporary in ``directory``.

    The temporary's name starts with ``.<name>.`` and ends with ``.tmp``; the
    middle is random. When the block raises (anything, ``KeyboardInterrupt``
    included) the temporary is removed; when it returns normally the caller
    owns ``path`` (it has been renamed away or must still be removed).
    """
    fd, raw = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    path = Path(raw)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle, path
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def atomic_write(
    path: str | os.PathLike[str],
    content: bytes | bytearray | memoryview | Callable[[BinaryIO], None],
    *,
    mode: int | None = None,
    sync: bool = False,
) -> None:
    """Write ``content`` to ``path`` atomically: a reader sees the old file or the new one.

    Parameters
    ----------
    path : path-like
        The target; its directory must exist.
    content : bytes-like or callable
        The bytes, or a function that writes them to the binary file it is given.
    mode : int or None
        Permission bits of the new file; ``None`` is :func:`default_file_mode`.
    sync : bool
        ``fsync`` the data before the rename (durable across a power cut).

    Raises
    ------
    OSError
        The directory is missing or unwritable, the disk is full, a directory
        sits at ``path`` ... Nothing is left behind in any of these cases.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> atomic_write(target, b"hello")
    >>> target.read_bytes()
    b'hello'
    """
    target = Path(path)
    with temporary_in(target.parent, target.name) as (handle, tmp):
        if callable(content):
            content(handle)
        else:
            handle.write(content)
        handle.flush()
        if hasattr(os, "fchmod"):  # POSIX; elsewhere the temporary's mode stays
            os.fchmod(handle.fileno(), default_file_mode() if mode is None else mode)
        if sync:
            os.fsync(handle.fileno())
        handle.close()
        os.replace(tmp, target)
