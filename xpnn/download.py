"""Where data files live, fetching missing ones from pinned mirrors, and checking pins.

A file is looked for in one directory: the ``data_dir`` argument, else the
``XPNN_DATA_DIR`` environment variable, else the user cache directory
(``pooch.os_cache("xpnn")`` when pooch is installed, else ``~/.cache/xpnn``).

A missing file is downloaded from each of its mirrors in turn (standard
library HTTP, with certifi's certificates when installed). Each attempt streams
into an unpredictably named, exclusively created temporary in the data
directory while hashing; it is abandoned when the server is silent for
``timeout`` seconds, when the whole transfer takes longer than
``timeout + size / MIN_RATE`` seconds, when the body is longer than the pinned
size, or when the SHA-256 does not match, and the temporary is removed
(Ctrl-C included). Only a complete, verified file is renamed into place; the
next mirror is tried otherwise. A progress bar is drawn on stderr when it is a
terminal. ``XPNN_OFFLINE=1`` turns downloads off.

Pinned files are verified again whenever they are read: :func:`read_verified`
reads a file once, checks its SHA-256 and returns those very bytes for the
caller to parse, so nothing can be swapped in between the check and the use.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ._files import read_at_most, temporary_in
from .errors import DataError

__all__ = [
    "DEFAULT_TIMEOUT",
    "RemoteFile",
    "data_home",
    "ensure_files",
    "read_verified",
    "sha256_of",
]

ENV_DATA_DIR = "XPNN_DATA_DIR"
#: Set to 1 to forbid downloads (air-gapped machines; the test suite sets it).
ENV_OFFLINE = "XPNN_OFFLINE"

#: Seconds a mirror may stay silent (connecting, or between two reads).
DEFAULT_TIMEOUT = 30.0
#: Slowest average transfer rate accepted, in bytes per second, on top of the timeout.
MIN_RATE = 20_000
#: Largest file downloaded or read when no size is pinned.
MAX_UNPINNED_BYTES = 1 << 28

_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """A file known by name, SHA-256 and size, with the URLs it may be downloaded from.

    ``size`` (bytes) bounds downloads and reads; ``None`` means unknown.
    """

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
    if data_dir is not None and os.fspath(data_dir) != "":
        return Path(data_dir)
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env)
    try:
        pooch = importlib.import_module("pooch")
    except ImportError:
        return Path.home() / ".cache" / "xpnn"
    return Path(pooch.os_cache("xpnn"))


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _mismatch(path: Path, remote: RemoteFile, actual: str) -> DataError:
    return DataError(
        f"{path}: SHA-256 {actual} does not match the pinned {remote.sha256}; the file is "
        f"corrupt or not the expected {remote.name}: delete it and load again"
    )


def read_verified(remote: RemoteFile, path: Path) -> tuple[bytes, os.stat_result]:
    """Read a pinned file once, check its SHA-256, return the bytes and the file's status.

    The caller parses exactly the bytes that were hashed. The status is that
    of the open file (``os.fstat``), so it describes the bytes read even if the
    name is replaced meanwhile.

    Raises
    ------
    DataError
        The file cannot be read, is longer than its pinned size, or its
        SHA-256 is not the pinned one.

    Examples
    --------
    >>> import hashlib, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
    >>> _ = path.write_bytes(b"hello")
    >>> pin = RemoteFile("hello.txt", hashlib.sha256(b"hello").hexdigest(), (), size=5)
    >>> read_verified(pin, path)[0]
    b'hello'
    """
    try:
        with open(path, "rb") as f:
            status = os.fstat(f.fileno())
            data = read_at_most(f, remote.max_bytes)
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != remote.sha256:
        raise _mismatch(path, remote, actual)
    return data, status


class _Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, name: str, total: int | None) -> None:
        stream = sys.stderr
        self.enabled = stream is not None and hasattr(stream, "isatty") and stream.isatty()
        self.name, self.total, self.done, self.shown = name, total, 0, -1.0

    def update(self, count: int) -> None:
        self.done += count
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.shown < 0.1 and self.done != self.total:
            return
        self.shown = now
        if self.total:
            share = min(1.0, self.done / self.total)
            bar = "#" * int(30 * share)
            text = f"{self.name} [{bar:<30}] {100 * share:5.1f}% of {self.total / 1e6:.1f} MB"
        else:
            text = f"{self.name} {self.done / 1e6:.1f} MB"
        sys.stderr.write(f"\r{text}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.shown >= 0:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class _DownloadFailed(Exception):
    """One mirror failed; the message says why."""


def _copy_body(
    response: Any, out: BinaryIO, remote: RemoteFile, deadline: float, progress: _Progress
) -> str:
    """Stream the body into ``out`` within the size and time bounds; return its SHA-256."""
    digest = hashlib.sha256()
    received = 0
    read = getattr(response, "read1", response.read)
    while True:
        if time.monotonic() > deadline:
            raise _DownloadFailed(f"too slow: not complete after {received} bytes")
        chunk = read(_CHUNK)
        if not chunk:
            break
        received += len(chunk)
        if received > remote.max_bytes:
            raise _DownloadFailed(f"longer than the expected {remote.max_bytes} bytes")
        digest.update(chunk)
        out.write(chunk)
        progress.update(len(chunk))
    if remote.size is not None and received != remote.size:
        raise _DownloadFailed(f"truncated: {received} of {remote.size} bytes")
    return digest.hexdigest()


def _fetch(url: str, remote: RemoteFile, directory: Path, timeout: float) -> None:
    """Download one URL into ``directory/remote.name``, or raise and leave nothing."""
    target = directory / remote.name
    request = urllib.request.Request(url, headers={"User-Agent": "xpnn"})
    context = _ssl_context() if url.startswith("https:") else None
    started = time.monotonic()
    with (
        temporary_in(directory, remote.name) as (out, tmp),
        urllib.request.urlopen(request, timeout=timeout, context=context) as response,
    ):
        length = response.headers.get("Content-Length")
        total = remote.size or (int(length) if length and length.isdigit() else None)
        if total is not None and total > remote.max_bytes:
            raise _DownloadFailed(f"declares {total} bytes, over the expected {remote.max_bytes}")
        deadline = started + timeout + (total or remote.max_bytes) / MIN_RATE
        progress = _Progress(remote.name, total)
        try:
            actual = _copy_body(response, out, remote, deadline, progress)
        finally:
            progress.close()
        if actual != remote.sha256:
            raise _DownloadFailed(f"SHA-256 {actual} is not the pinned {remote.sha256}")
        out.flush()
        os.fsync(out.fileno())
        out.close()
        os.replace(tmp, target)


def _describe(err: BaseException) -> str:
    if isinstance(err, _DownloadFailed):
        return str(err)
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return f"{type(err.reason).__name__}: {err.reason}"
    if isinstance(err, TimeoutError):
        return f"no data for the timeout ({err or 'timed out'})"
    text = str(err).splitlines()[0][:200] if str(err) else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _download(remote: RemoteFile, directory: Path, timeout: float) -> list[str]:
    """Try each mirror; return the failures (empty when the file arrived)."""
    failures = []
    for url in remote.urls:
        try:
            _fetch(url, remote, directory, timeout)
        except Exception as err:  # network, HTTP, timeouts, size, hash, disk
            failures.append(f"{url} ({_describe(err)})")
        else:
            return []
    return failures


def _prepare_directory(directory: Path, create: bool) -> None:
    if directory.exists() and not directory.is_dir():
        raise DataError(
            f"data directory {directory} is not a directory; point {ENV_DATA_DIR} "
            "(or data_dir / --data-dir) at a directory"
        )
    if create:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DataError(
                f"cannot create the data directory {directory} ({err.strerror or err}); "
                f"point {ENV_DATA_DIR} (or data_dir / --data-dir) at a writable directory"
            ) from None


def _manual_way(missing: list[RemoteFile], directory: Path) -> str:
    lines = "; ".join(f"{r.name} (SHA-256 {r.sha256})" for r in missing)
    return (
        f"download {lines} by hand into {directory}, or set {ENV_DATA_DIR} to a directory "
        "that holds them"
    )


def ensure_files(
    remotes: Iterable[RemoteFile],
    directory: Path,
    *,
    download: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Path]:
    """Return the local path of each file, downloading the missing ones.

    Present files are not checked here: their readers verify them
    (:func:`read_verified`) on use.

    Parameters
    ----------
    remotes : iterable of RemoteFile
        The files wanted.
    directory : Path
        The data directory.
    download : bool
        Download missing files (unless ``XPNN_OFFLINE`` is set).
    timeout : float
        Seconds a mirror may stay silent before the next one is tried.

    Raises
    ------
    DataError
        ``directory`` is not a directory or cannot be created, or files are
        still missing: one message naming every file, every URL tried with
        the reason it failed, and how to put the files in place by hand.
    """
    remotes = list(remotes)
    directory = Path(directory)
    paths = {r.name: directory / r.name for r in remotes}
    _prepare_directory(directory, create=False)
    missing = [r for r in remotes if not paths[r.name].is_file()]
    if not missing:
        return paths
    reasons: list[str] = []
    if not download:
        reasons.append("downloads are turned off")
    elif os.environ.get(ENV_OFFLINE, "") not in ("", "0"):
        reasons.append(f"downloads are turned off by {ENV_OFFLINE}")
    else:
        _prepare_directory(directory, create=True)
        for remote in missing:
            failures = _download(remote, directory, timeout)
            if failures:
                reasons.append(f"{remote.name}: every mirror failed: " + ", ".join(failures))
    still = [r for r in missing if not paths[r.name].is_file()]
    if still:
        names = ", ".join(r.name for r in still)
        raise DataError(
            f"missing data file(s) {names} in {directory} and could not download them "
            f"({'; '.join(reasons)}); {_manual_way(still, directory)}"
        )
    return paths
