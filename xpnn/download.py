"""Where data files live, fetching missing ones from pinned mirrors, and checking pins.

pooch (the ``data`` extra) keeps the registry; xpnn's hook tries each mirror in turn, one deadline
(``timeout + size / MIN_RATE`` s) for the whole exchange, the pinned size as a cap, no redirects,
writing atomically. ``XPNN_OFFLINE`` = 1/true/yes/on forbids downloads.
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

from ._files import atomic_write, read_regular, sigterm_raises
from .errors import DataError, first_line

__all__ = ["DEFAULT_TIMEOUT", "RemoteFile", "data_home", "ensure_files", "read_verified"]

ENV_DATA_DIR, ENV_OFFLINE = "XPNN_DATA_DIR", "XPNN_OFFLINE"
_SETTING = f"{ENV_DATA_DIR} (or data_dir, --data-dir)"  # where users name the data directory
_ON, _OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
#: Seconds a mirror may stay silent; bytes per second it must average beyond that.
DEFAULT_TIMEOUT, MIN_RATE = 30.0, 20_000


@dataclass(frozen=True)
class RemoteFile:
    """A file known by name, SHA-256, mirrors and size in bytes (a cap on downloads and reads)."""

    name: str
    sha256: str
    urls: tuple[str, ...]
    size: int


def data_home(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``data_dir``, else ``XPNN_DATA_DIR``, else the user cache (pooch's or ``~/.cache/xpnn``).

    Examples
    --------
    >>> str(data_home("/srv/mnist"))
    '/srv/mnist'
    """
    if chosen := os.fspath(data_dir or "") or os.environ.get(ENV_DATA_DIR, ""):
        return Path(chosen).expanduser()
    with contextlib.suppress(ImportError):
        return Path(importlib.import_module("pooch").os_cache("xpnn"))
    return Path.home() / ".cache" / "xpnn"


def read_verified(remote: RemoteFile, path: Path) -> bytes:
    """Read a pinned regular file once, check its SHA-256 and return those bytes, or DataError.

    Examples
    --------
    >>> import hashlib, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
    >>> _ = path.write_bytes(b"hello")
    >>> read_verified(RemoteFile("hello.txt", hashlib.sha256(b"hello").hexdigest(), (), 5), path)
    b'hello'
    """
    data = read_regular(path, remote.size, DataError)
    if (actual := hashlib.sha256(data).hexdigest()) != remote.sha256:
        why = f"{path}: SHA-256 {actual} does not match the pinned {remote.sha256}"
        raise DataError(f"{why}: corrupt or not {remote.name}; delete it and load again")
    return data


class _Failed(Exception):
    """A mirror failed; the message says why."""


def _hang_up(sock: socket.socket) -> None:  # the deadline's timer wakes a blocked read
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _progress(remote: RemoteFile, out: BinaryIO) -> Any:
    """``out``, drawing a tqdm bar on stderr when it is a terminal (and tqdm is installed)."""
    with contextlib.suppress(ImportError):
        tqdm = importlib.import_module("tqdm").tqdm
        off = not (sys.stderr and sys.stderr.isatty())
        options = dict(desc=remote.name, unit="B", unit_scale=True, disable=off)
        return tqdm.wrapattr(out, "write", remote.size, bytes=False, **options)
    return contextlib.nullcontext(out)


def _get(url: str, remote: RemoteFile, timeout: float, out: BinaryIO) -> None:
    """Stream ``url`` into ``out`` within the deadline and size cap, checking the SHA-256."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise _Failed(f"unsupported scheme {parts.scheme!r}")
    connection = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    if parts.scheme == "https":  # certifi comes with pooch (through requests)
        context = ssl.create_default_context(cafile=importlib.import_module("certifi").where())
        connection = http.client.HTTPSConnection(parts.netloc, timeout=timeout, context=context)
    deadline = time.monotonic() + (limit := timeout + remote.size / MIN_RATE)
    connection.connect()  # within the timeout
    timer = threading.Timer(deadline - time.monotonic(), _hang_up, (connection.sock,))
    timer.start()
    try:
        connection.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        with connection.getresponse() as response:
            if response.status != 200:
                raise _Failed(f"HTTP {response.status} {response.reason}")
            digest, received = hashlib.sha256(), 0
            with _progress(remote, out) as sink:
                while chunk := response.read1(1 << 16):
                    if (received := received + len(chunk)) > remote.size:
                        raise _Failed(f"longer than the expected {remote.size} bytes")
                    digest.update(chunk)
                    sink.write(chunk)
        if received != remote.size:
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
        timer.cancel()
        connection.close()


def _mirrors(remote: RemoteFile, timeout: float, failures: list[str], *pooch_args: Any) -> None:
    """pooch's downloader hook (then given url, output_file, pooch): each mirror in turn."""
    for mirror in remote.urls:
        try:
            return atomic_write(pooch_args[1], functools.partial(_get, mirror, remote, timeout))
        except Exception as err:  # network, HTTP, deadline, size, hash, disk
            why = err if isinstance(err, _Failed) else f"{type(err).__name__}: {err}"
            failures.append(f"{mirror} ({first_line(ValueError(why))})")
    raise _Failed


def _fetch(missing: list[RemoteFile], directory: Path, timeout: float) -> str:
    """Download the missing files with pooch; return what was tried."""
    try:
        pooch = importlib.import_module("pooch")
        directory.mkdir(parents=True, exist_ok=True)
    except ImportError:
        return "downloading needs pooch: pip install 'xpnn[data]'"
    except OSError as err:
        why = f"cannot create the data directory {directory} ({err.strerror or err})"
        raise DataError(f"{why}; point {_SETTING} at a writable one") from None
    registry = {r.name: f"sha256:{r.sha256}" for r in missing}
    store, logger, failures = pooch.Pooch(directory, "", registry), pooch.get_logger(), list[str]()
    level = logger.level
    logger.setLevel("WARNING")  # no "Downloading ..." line per file
    try:
        for remote in missing:
            with sigterm_raises(), contextlib.suppress(_Failed):
                hook = functools.partial(_mirrors, remote, timeout, failures)
                store.fetch(remote.name, downloader=hook)
    finally:
        logger.setLevel(level)
    return "tried " + ", ".join(failures) if failures else "no mirror known"


def ensure_files(remotes: Iterable[RemoteFile], data_dir: str | os.PathLike[str] | None = None, *,
                 download: bool = True,
                 timeout: float = DEFAULT_TIMEOUT) -> dict[str, Path]:  # fmt: skip
    """Return the path of each file by name in :func:`data_home`, downloading missing ones.

    Present files are verified by their readers (:func:`read_verified`). One DataError line names
    each file still missing, its SHA-256 and each URL tried. ``download=False``: no downloads.
    """
    remotes, directory = list(remotes), data_home(data_dir)
    if directory.exists() and not directory.is_dir():
        raise DataError(f"{directory} is not a directory; point {_SETTING} at one")
    paths = {r.name: directory / r.name for r in remotes}
    missing = [r for r in remotes if not paths[r.name].exists()]
    why, offline = "", os.environ.get(ENV_OFFLINE, "").strip().lower()
    if offline not in _ON + _OFF:
        what = f"{ENV_OFFLINE}={os.environ[ENV_OFFLINE]!r}"
        raise DataError(f"{what} is not understood; use 1/true/yes/on or 0/false/no/off/empty")
    if missing and (offline in _ON or not download):
        why = "downloads are turned off" + (f" by {ENV_OFFLINE}" if offline in _ON else "")
    elif missing:
        why = _fetch(missing, directory, timeout)
    if still := [r for r in missing if not paths[r.name].exists()]:
        names = ", ".join(r.name for r in still)
        pins = "; ".join(f"{r.name} (SHA-256 {r.sha256})" for r in still)
        why = f"missing data file(s) {names} in {directory} and could not download them ({why})"
        raise DataError(f"{why}; put {pins} there by hand, or point {_SETTING} to where they are")
    return paths
