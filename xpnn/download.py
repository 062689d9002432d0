"""Where data files live, fetching the missing ones from pinned mirrors, and checking pins.

Files are looked for in one directory: the ``data_dir`` argument, else
``XPNN_DATA_DIR``, else the user cache directory (``pooch.os_cache("xpnn")``,
``~/.cache/xpnn`` on Linux); ``~`` is expanded. Missing files are fetched by
`pooch <https://www.fatiando.org/pooch/>`_ (registry of pinned SHA-256 hashes,
verification, placement) through a downloader hook that adds what pooch
lacks: several mirrors per file, tried in turn; one deadline for the whole
exchange with each mirror (connection, response headers and body:
``timeout + size / MIN_RATE`` seconds, besides ``timeout`` seconds of
silence); a size cap (the pinned size); no redirects followed; the SHA-256 of
each mirror's bytes checked before the next mirror is tried. Bytes stream
into a temporary written by :func:`xpnn._files.atomic_write` (ordinary mode,
removed on any error, Ctrl-C or SIGTERM). Downloading needs pooch (the
``data`` extra); without it, reading files already in place still works.
``XPNN_OFFLINE`` set to 1, true, yes or on forbids downloads.

:func:`read_verified` reads a pinned file once, checks its SHA-256 and returns
those very bytes for the caller to parse.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import importlib
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ._files import atomic_write, open_regular, read_at_most, sigterm_raises
from .errors import DataError, first_line

__all__ = ["DEFAULT_TIMEOUT", "RemoteFile", "data_home", "ensure_files", "read_verified"]

ENV_DATA_DIR = "XPNN_DATA_DIR"
ENV_OFFLINE = "XPNN_OFFLINE"
_ON, _OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")

#: Seconds a mirror may stay silent (connecting, or between two reads).
DEFAULT_TIMEOUT = 30.0
#: Slowest average transfer rate accepted, in bytes per second, on top of the timeout.
MIN_RATE = 20_000
#: Largest file downloaded or read when no size is pinned.
MAX_UNPINNED_BYTES = 1 << 28


@dataclass(frozen=True)
class RemoteFile:
    """A file known by name, SHA-256 and size (bytes; ``None``: unknown), and its mirrors."""

    name: str
    sha256: str
    urls: tuple[str, ...]
    size: int | None = None

    @property
    def max_bytes(self) -> int:
        """The most bytes a download or a read of this file may take."""
        return self.size if self.size is not None else MAX_UNPINNED_BYTES


def data_home(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the directory data files are read from (and downloaded to).

    An empty string (argument or environment variable) means "not set".

    Examples
    --------
    >>> str(data_home("/srv/mnist"))
    '/srv/mnist'
    """
    chosen = os.fspath(data_dir) if data_dir is not None else ""
    chosen = chosen or os.environ.get(ENV_DATA_DIR, "")
    if chosen:
        return Path(chosen).expanduser()
    try:
        pooch = importlib.import_module("pooch")
    except ImportError:
        return Path.home() / ".cache" / "xpnn"
    return Path(pooch.os_cache("xpnn"))


def offline() -> bool:
    """Whether ``XPNN_OFFLINE`` forbids downloads (1/true/yes/on; 0/false/no/off/empty allow).

    Examples
    --------
    >>> import os
    >>> os.environ["XPNN_OFFLINE"] = "Off"
    >>> offline()
    False
    >>> os.environ["XPNN_OFFLINE"] = "1"
    """
    value = os.environ.get(ENV_OFFLINE, "")
    if value.strip().lower() not in _ON + _OFF:
        raise DataError(
            f"{ENV_OFFLINE}={value!r} is not understood; use 1, true, yes or on (no downloads) "
            "or 0, false, no, off or empty (downloads allowed)"
        )
    return value.strip().lower() in _ON


def read_verified(remote: RemoteFile, path: Path) -> bytes:
    """Read a pinned regular file once, check its SHA-256 and return those bytes.

    Raises
    ------
    DataError
        The file cannot be read or is no regular file, is longer than its
        pinned size, or its SHA-256 is not the pinned one.

    Examples
    --------
    >>> import hashlib, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
    >>> _ = path.write_bytes(b"hello")
    >>> read_verified(RemoteFile("hello.txt", hashlib.sha256(b"hello").hexdigest(), ()), path)
    b'hello'
    """
    try:
        with open_regular(path) as f:
            data = read_at_most(f, remote.max_bytes)
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != remote.sha256:
        raise DataError(
            f"{path}: SHA-256 {actual} does not match the pinned {remote.sha256}; the file is "
            f"corrupt or not the expected {remote.name}: delete it and load again"
        )
    return data


class _Failed(Exception):
    """One mirror failed; the message says why."""


def _hang_up(sock: socket.socket) -> None:
    """Wake a read blocked on ``sock`` (called by the deadline's timer thread)."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _progress(remote: RemoteFile) -> Any:
    """A tqdm bar on stderr when it is a terminal and tqdm is installed, else None."""
    if not (sys.stderr and sys.stderr.isatty()):
        return None
    try:
        tqdm = importlib.import_module("tqdm").tqdm
    except ImportError:
        return None
    return tqdm(total=remote.size, desc=remote.name, unit="B", unit_scale=True, file=sys.stderr)


def _get(url: str, remote: RemoteFile, timeout: float, out: BinaryIO) -> None:
    """Stream ``url`` into ``out`` within the deadline and size cap, checking the SHA-256."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise _Failed(f"unsupported scheme {parts.scheme!r}")
    if parts.scheme == "https":
        import certifi  # a dependency of pooch's requests

        context = ssl.create_default_context(cafile=certifi.where())
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.netloc, timeout=timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    limit = timeout + remote.max_bytes / MIN_RATE
    deadline = time.monotonic() + limit
    timer: threading.Timer | None = None
    response: Any = None
    bar: Any = None
    try:
        connection.connect()
        timer = threading.Timer(deadline - time.monotonic(), _hang_up, (connection.sock,))
        timer.start()
        connection.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        if response.status != 200:
            raise _Failed(f"HTTP {response.status} {response.reason}")
        digest, received, bar = hashlib.sha256(), 0, _progress(remote)
        while chunk := response.read1(1 << 16):
            received += len(chunk)
            if received > remote.max_bytes:
                raise _Failed(f"longer than the expected {remote.max_bytes} bytes")
            digest.update(chunk)
            out.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
        if remote.size is not None and received != remote.size:
            raise _Failed(f"truncated: {received} of {remote.size} bytes")
        if digest.hexdigest() != remote.sha256:
            raise _Failed(f"SHA-256 {digest.hexdigest()} is not the pinned {remote.sha256}")
    except Exception as err:
        if time.monotonic() >= deadline:
            raise _Failed(f"not complete within the {limit:.1f} s deadline") from None
        if isinstance(err, TimeoutError):
            raise _Failed(f"silent for the {timeout} s timeout") from None
        raise
    finally:
        if timer is not None:
            timer.cancel()
        for resource in (response, connection, bar):
            if resource is not None:
                resource.close()


@dataclass
class _Mirrors:
    """pooch's downloader hook: try each mirror of ``remote``; record why each failed."""

    remote: RemoteFile
    timeout: float
    failures: list[str]

    def __call__(self, url: str, output_file: str, pooch: object) -> None:
        for mirror in self.remote.urls:
            try:
                atomic_write(
                    output_file, functools.partial(_get, mirror, self.remote, self.timeout)
                )
                return
            except Exception as err:  # network, HTTP, deadline, size, hash, disk
                why = str(err) if isinstance(err, _Failed) else f"{type(err).__name__}: {err}"
                self.failures.append(f"{mirror} ({first_line(ValueError(why))})")
        raise _Failed("every mirror failed")


def _fetch(missing: list[RemoteFile], directory: Path, timeout: float) -> str:
    """Download the missing files with pooch; return why some are still missing."""
    try:
        pooch = importlib.import_module("pooch")
    except ImportError:
        return "downloading needs pooch: pip install 'xpnn[data]'"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"cannot create the data directory {directory} ({err.strerror or err}); point "
            f"{ENV_DATA_DIR} (or data_dir / --data-dir) at a writable directory"
        ) from None
    registry = {r.name: f"sha256:{r.sha256}" for r in missing}
    store = pooch.Pooch(path=directory, base_url="", registry=registry)
    logger, failures = pooch.get_logger(), list[str]()
    level = logger.level
    logger.setLevel("WARNING")  # no "Downloading ..." line per file
    try:
        for remote in missing:
            with sigterm_raises(), contextlib.suppress(_Failed):
                store.fetch(remote.name, downloader=_Mirrors(remote, timeout, failures))
    finally:
        logger.setLevel(level)
    return "tried " + ", ".join(failures) if failures else "no mirror known"


def ensure_files(
    remotes: Iterable[RemoteFile],
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Path]:
    """Return the local path of each file by name, downloading the missing ones.

    Present files are not checked here: their readers verify them on use
    (:func:`read_verified`). Call it once with every file a task needs, so
    that all the missing ones are named together.

    Parameters
    ----------
    remotes : iterable of RemoteFile
        The files wanted.
    data_dir : path-like or None
        The data directory, resolved by :func:`data_home`.
    download : bool
        Download missing files (unless ``XPNN_OFFLINE`` forbids it).
    timeout : float
        Seconds a mirror may stay silent before the next one is tried.

    Raises
    ------
    DataError
        ``XPNN_OFFLINE`` is not understood, the directory is not one or cannot
        be created, or files are still missing: one line naming every missing
        file with its SHA-256 and every URL tried with the reason it failed.
    """
    remotes, directory = list(remotes), data_home(data_dir)
    if directory.exists() and not directory.is_dir():
        raise DataError(
            f"data directory {directory} is not a directory; point {ENV_DATA_DIR} "
            "(or data_dir / --data-dir) at a directory"
        )
    paths = {r.name: directory / r.name for r in remotes}
    missing = [r for r in remotes if not paths[r.name].exists()]
    why, forbidden = "", offline()
    if missing and (forbidden or not download):
        why = "downloads are turned off" + (f" by {ENV_OFFLINE}" if forbidden else "")
    elif missing:
        why = _fetch(missing, directory, timeout)
    still = [r for r in missing if not paths[r.name].exists()]
    if still:
        names = ", ".join(r.name for r in still)
        pins = "; ".join(f"{r.name} (SHA-256 {r.sha256})" for r in still)
        raise DataError(
            f"missing data file(s) {names} in {directory} and could not download them ({why}); "
            f"download {pins} by hand into {directory}, or set {ENV_DATA_DIR} to a directory "
            "that holds them"
        )
    return paths
