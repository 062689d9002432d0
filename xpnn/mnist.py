"""MNIST with the book's ``load_mnist`` signature, validated, cached, on any backend.

Files are found (or downloaded, pinned by SHA-256) as :mod:`xpnn.download`
describes. Decoding a file reads it into memory once, checks the SHA-256 of
those bytes against the pin, parses the same bytes with the validating IDX
reader and checks it is MNIST (28x28 uint8 images, labels 0-9, as many labels
as images). The decoded array is then cached as ``.npy`` in
``<data dir>/decoded/`` (never pickle) with a ``.json`` record of

* the source file's pinned SHA-256 as verified, and its size, modification
  time, inode and device when it was verified;
* the ``.npy`` file's size, shape and a fast content checksum (xxHash's
  XXH3-128 when ``xxhash`` is installed, else BLAKE2b).

A cached array is used only when the record is intact, names the current
pin, the source file's status is unchanged and the ``.npy`` bytes have the
recorded checksum (read once, checked, then used without a copy); anything
else (a missing, damaged, replaced or foreign entry) is rebuilt from the
source, which is then verified again. The source is not re-hashed while its
status is unchanged: the cache already holds the decoding of bytes that
matched the pin, so hashing it again on every load (about 1 ms per MB with
SHA extensions, several times that without) would add time but no
assurance. Cache writes are atomic (see :mod:`xpnn._files`) and any failure
just means no cache. Someone who can write the data directory can forge
both the ``.npy`` and its record: the data directory must be protected like
the code itself (see ``docs/threat-model.md``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._backend.devices import device_scope
from ._files import atomic_write, read_at_most
from .backends import backend_name, namespace
from .download import RemoteFile, data_home, ensure_files, read_verified
from .errors import DataError
from .idx import DEFAULT_MAX_BYTES, parse_idx

__all__ = ["MNIST_FILES", "load_mnist", "load_mnist_labels", "load_mnist_split"]

_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def _remote(name: str, sha256: str, size: int) -> RemoteFile:
    return RemoteFile(name, sha256, tuple(m + name for m in _MIRRORS), size)


#: The four MNIST files by (split, kind), pinned by SHA-256.
MNIST_FILES = {
    ("train", "images"): _remote(
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        9912422,
    ),
    ("train", "labels"): _remote(
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        28881,
    ),
    ("test", "images"): _remote(
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        1648877,
    ),
    ("test", "labels"): _remote(
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        4542,
    ),
}
_SPLITS = ("train", "test")
_CACHE_DIR = "decoded"
_CACHE_FORMAT = 2
_MAX_RECORD_BYTES = 1 << 14
_NPY_HEADER_BYTES = 1 << 14


def _check_mnist(array: np.ndarray, kind: str, path: Path) -> None:
    if array.dtype != np.uint8:
        raise DataError(f"{path}: MNIST {kind} must be unsigned bytes, got {array.dtype}")
    if kind == "images" and (array.ndim != 3 or array.shape[1:] != (28, 28)):
        raise DataError(f"{path}: MNIST images must be N x 28 x 28, got {array.shape}")
    if kind == "labels":
        if array.ndim != 1:
            raise DataError(f"{path}: MNIST labels must be 1-D, got shape {array.shape}")
        if array.size and int(array.max()) > 9:
            raise DataError(f"{path}: MNIST label {int(array.max())} is out of range 0-9")


def _cache_paths(source: Path) -> tuple[Path, Path]:
    stem = source.name.removesuffix(".gz")
    folder = source.parent / _CACHE_DIR
    return folder / f"{stem}.npy", folder / f"{stem}.json"


def _checksum_function() -> tuple[str, Callable[[Any], str]]:
    """The fastest content checksum available: XXH3-128 (about 50 GB/s), else BLAKE2b."""
    try:
        import xxhash
    except ImportError:
        return "blake2b", lambda data: hashlib.blake2b(data, digest_size=16).hexdigest()
    return "xxh3_128", xxhash.xxh3_128_hexdigest


def _checksum(data: Any) -> str:
    name, function = _checksum_function()
    return f"{name}:{function(data)}"


def _source_record(remote: RemoteFile, status: os.stat_result) -> dict[str, Any]:
    """What identifies the verified source: its pin and its file status at verification."""
    return {
        "name": remote.name,
        "sha256": remote.sha256,
        "size": status.st_size,
        "mtime_ns": status.st_mtime_ns,
        "inode": status.st_ino,
        "device": status.st_dev,
    }


def _cache_folder_usable(folder: Path) -> bool:
    """The cache folder must be a real directory, not a link planted to elsewhere."""
    try:
        return stat.S_ISDIR(os.lstat(folder).st_mode)
    except OSError:
        return False


def _npy_from_memory(buffer: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """The uint8 array in an in-memory ``.npy`` (a view, no copy), or None if its header disagrees.

    Only the first 16 KiB are parsed as the header (NumPy refuses longer headers).
    """
    stream = io.BytesIO(buffer[:_NPY_HEADER_BYTES].tobytes())
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        header = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        header = np.lib.format.read_array_header_2_0(stream)
    else:
        return None
    declared, fortran, dtype = header
    offset = stream.tell()
    if declared != shape or fortran or dtype != np.uint8:
        return None
    if len(buffer) - offset != math.prod(shape):
        return None
    return buffer[offset:].reshape(shape)


def _read_cache(remote: RemoteFile, source: Path, kind: str) -> np.ndarray | None:
    """The cached decoding of ``source``, or None when it cannot be proven to be that."""
    npy, meta = _cache_paths(source)
    if not _cache_folder_usable(npy.parent):
        return None
    try:
        with open(meta, "rb") as f:
            raw = read_at_most(f, _MAX_RECORD_BYTES)
        info = json.loads(raw) if len(raw) <= _MAX_RECORD_BYTES else None
        if not isinstance(info, dict) or info.get("format") != _CACHE_FORMAT:
            return None
        if info.get("source") != _source_record(remote, os.stat(source)):
            return None
        entry = info.get("npy")
        if not isinstance(entry, dict):
            return None
        size, checksum, shape = entry.get("size"), entry.get("checksum"), entry.get("shape")
        if not (
            type(size) is int
            and 0 < size <= DEFAULT_MAX_BYTES
            and isinstance(checksum, str)
            and checksum.startswith(_checksum_function()[0] + ":")
            and isinstance(shape, list)
            and all(type(n) is int and n >= 0 for n in shape)
        ):
            return None
        with open(npy, "rb") as f:
            if os.fstat(f.fileno()).st_size != size:
                return None
            buffer = np.empty(size, dtype=np.uint8)  # filled by the read, no zeroing
            if f.readinto(buffer.data) != size:
                return None
        if _checksum(buffer) != checksum:
            return None
        array = _npy_from_memory(buffer, tuple(shape))
        if array is not None:
            _check_mnist(array, kind, npy)
        return array
    except (OSError, ValueError, TypeError, RecursionError, MemoryError, DataError):
        # Unreadable, not JSON, JSON nested too deep, a bad .npy header ... : rebuild.
        return None


def _write_cache(
    remote: RemoteFile, source: Path, status: os.stat_result, array: np.ndarray
) -> None:
    """Cache ``array`` (decoded from ``source`` as verified) atomically; never fail."""
    npy, meta = _cache_paths(source)
    try:
        npy.parent.mkdir(exist_ok=True)
        if not _cache_folder_usable(npy.parent):
            return
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array, allow_pickle=False)
        payload = buffer.getbuffer()
        info = {
            "format": _CACHE_FORMAT,
            "source": _source_record(remote, status),
            "npy": {
                "size": payload.nbytes,
                "checksum": _checksum(payload),
                "shape": list(array.shape),
            },
        }
        atomic_write(npy, payload)  # the array first: a record never names a missing file
        atomic_write(meta, json.dumps(info, indent=1).encode())
    except OSError:
        pass  # read-only or full disk, a directory in the way ...: no cache, nothing left


def _decode(remote: RemoteFile, source: Path, kind: str) -> np.ndarray:
    cached = _read_cache(remote, source, kind)
    if cached is not None:
        return cached
    data, status = read_verified(remote, source)  # hashed ...
    array = parse_idx(data, source)  # ... and parsed: the same bytes
    _check_mnist(array, kind, source)
    _write_cache(remote, source, status, array)
    return array


def _host_split(
    split: str, kinds: tuple[str, ...], data_dir: Any, download: bool
) -> dict[str, np.ndarray]:
    if split not in _SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; choose 'train' or 'test'")
    remotes = {kind: MNIST_FILES[split, kind] for kind in kinds}
    paths = ensure_files(remotes.values(), data_home(data_dir), download=download)
    arrays = {kind: _decode(r, paths[r.name], kind) for kind, r in remotes.items()}
    if len(arrays) == 2 and arrays["images"].shape[0] != arrays["labels"].shape[0]:
        raise DataError(
            f"MNIST {split} split: {arrays['images'].shape[0]} images but "
            f"{arrays['labels'].shape[0]} labels"
        )
    return arrays


def _labels_to_backend(labels: np.ndarray, one_hot_label: bool, xp: Any, device: Any) -> Any:
    t = xp.asarray(labels, device=device)
    if not one_hot_label:
        return t
    classes = xp.arange(10, device=device)
    return xp.astype(xp.reshape(t, (-1, 1)) == classes, xp.float32)


def load_mnist_split(
    split: str = "test",
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    backend: str | None = None,
    device: Any = None,
    download: bool = True,
) -> tuple[Any, Any]:
    """Load one MNIST split as ``(x, t)``; the test split needs only the test files.

    Parameters
    ----------
    split : {"test", "train"}
        Which split.
    normalize : bool
        ``True``: float32 pixels in [0, 1]; ``False``: the raw uint8 pixels.
    flatten : bool
        ``True``: images of shape ``(N, 784)``; ``False``: ``(N, 1, 28, 28)``.
    one_hot_label : bool
        ``True``: float32 labels of shape ``(N, 10)``; ``False``: uint8 ``(N,)``.
    data_dir : path-like or None
        Where the ``.gz`` files are (or go); see :func:`xpnn.download.data_home`.
    backend, device
        Where the arrays are placed; see :func:`xpnn.namespace`.
    download : bool
        Download missing files from the pinned mirrors.

    Returns
    -------
    x, t : arrays
        Images and labels on the chosen backend and device.

    Raises
    ------
    DataError
        Missing files that could not be downloaded, or corrupt files.
    """
    xp, dev = namespace(backend, device)
    host = _host_split(split, ("images", "labels"), data_dir, download)
    images = host["images"]
    images = images.reshape(images.shape[0], -1) if flatten else images[:, np.newaxis]
    with device_scope(backend_name(backend), dev):  # CuPy: created and cast on dev
        x = xp.asarray(images, device=dev)
        if normalize:
            x = xp.astype(x, xp.float32) / 255
        return x, _labels_to_backend(host["labels"], one_hot_label, xp, dev)


def load_mnist_labels(
    split: str = "train",
    one_hot_label: bool = False,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    backend: str | None = None,
    device: Any = None,
    download: bool = True,
) -> Any:
    """Load the labels of one split only (no images needed).

    See :func:`load_mnist_split` for the parameters.
    """
    xp, dev = namespace(backend, device)
    labels = _host_split(split, ("labels",), data_dir, download)["labels"]
    with device_scope(backend_name(backend), dev):
        return _labels_to_backend(labels, one_hot_label, xp, dev)


def load_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    backend: str | None = None,
    device: Any = None,
    download: bool = True,
) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """Load MNIST as the book does: ``((x_train, t_train), (x_test, t_test))``.

    Needs all four files, the 60,000 training images among them; use
    :func:`load_mnist_split` for the test set alone. Parameters are those of
    :func:`load_mnist_split`.
    """
    train, test = (
        load_mnist_split(
            split,
            normalize,
            flatten,
            one_hot_label,
            data_dir=data_dir,
            backend=backend,
            device=device,
            download=download,
        )
        for split in ("train", "test")
    )
    return train, test
