"""Where data files live, and fetching missing ones from pinned mirrors with pooch.

A file is looked for in one directory: the ``data_dir`` argument, else the
``XPNN_DATA_DIR`` environment variable, else the user cache directory
(``pooch.os_cache("xpnn")``). A missing file is downloaded from each of its
mirrors in turn; pooch streams it to a temporary file and moves it into place
only when its SHA-256 matches, so a failed, truncated or corrupted download
leaves nothing behind and the next mirror is tried. ``XPNN_OFFLINE=1`` turns
downloads off.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError

__all__ = ["RemoteFile", "data_home", "ensure_files", "sha256_of"]

ENV_DATA_DIR = "XPNN_DATA_DIR"
#: Set to 1 to forbid downloads (air-gapped machines; the test suite sets it).
ENV_OFFLINE = "XPNN_OFFLINE"


@dataclass(frozen=True)
class RemoteFile:
    """A file known by name and SHA-256, with the URLs it may be downloaded from."""

    name: str
    sha256: str
    urls: tuple[str, ...]


def data_home(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the directory data files are read from (and downloaded to).

    Examples
    --------
    >>> str(data_home("/srv/mnist"))
    '/srv/mnist'
    """
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env)
    try:
        import pooch
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


def _download(remote: RemoteFile, directory: Path) -> list[str]:
    """Try each mirror; return the failures (empty when the file arrived)."""
    import pooch

    failures = []
    for url in remote.urls:
        try:
            pooch.retrieve(
                url,
                known_hash=f"sha256:{remote.sha256}",
                fname=remote.name,
                path=directory,
                progressbar=False,
            )
        except Exception as err:  # network errors, HTTP errors, hash mismatch
            failures.append(f"{url}: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
        else:
            return []
    return failures


def ensure_files(
    remotes: Iterable[RemoteFile], directory: Path, *, download: bool = True
) -> dict[str, Path]:
    """Return the local path of each file, downloading the missing ones.

    Raises
    ------
    DataError
        One message naming every file still missing, the directory to put
        them in and the environment variable that points elsewhere.
    """
    remotes = list(remotes)
    paths = {r.name: directory / r.name for r in remotes}
    missing = [r for r in remotes if not paths[r.name].is_file()]
    if not missing:
        return paths
    reasons: list[str] = []
    if not download:
        reasons.append("downloads are turned off")
    elif os.environ.get(ENV_OFFLINE, "") not in ("", "0"):
        reasons.append(f"downloads are turned off by {ENV_OFFLINE}")
    else:
        try:
            import pooch  # noqa: F401
        except ImportError:
            reasons.append("pooch is not installed (pip install 'xpnn[data]')")
        else:
            directory.mkdir(parents=True, exist_ok=True)
            for remote in missing:
                reasons.extend(_download(remote, directory))
    still = [r.name for r in missing if not paths[r.name].is_file()]
    if still:
        detail = "; ".join(reasons)
        raise DataError(
            f"missing data file(s) {', '.join(still)} in {directory} and could not download "
            f"them ({detail}); put them in {directory} or set {ENV_DATA_DIR} to a directory "
            "that holds them"
        )
    return paths
