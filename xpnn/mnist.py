"""MNIST with the book's ``load_mnist`` signature, validated, on any backend.

Each file (found or downloaded by :mod:`xpnn.download`) is read once, its SHA-256 checked, and the
same bytes parsed as IDX (magic, type, dimensions, exact length, a size cap, gzip read one byte past
the declared size, no further) and checked to be MNIST: 28x28 uint8 images, labels 0-9, as many.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from typing import Any, BinaryIO

import numpy as np

from ._files import read_regular
from .backends import device_scope, namespace
from .download import RemoteFile, ensure_files, read_verified
from .errors import DataError, check_choice

__all__ = ["MNIST_FILES", "load_mnist", "load_mnist_labels", "load_mnist_split", "read_idx"]

_CODES = {0x08: "u1", 0x09: "i1", 0x0B: "i2", 0x0C: "i4", 0x0D: "f4", 0x0E: "f8"}
_IDX_TYPES: dict[int, np.dtype[Any]] = {code: np.dtype(f">{t}") for code, t in _CODES.items()}
#: Largest IDX data section accepted by default (256 MiB; MNIST's largest file is 47 MB).
MAX_IDX_BYTES = 1 << 28

_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_PINS = """\
train-images-idx3-ubyte.gz 9912422 440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609
train-labels-idx1-ubyte.gz 28881 3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c
t10k-images-idx3-ubyte.gz 1648877 8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6
t10k-labels-idx1-ubyte.gz 4542 f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6
"""
#: The four MNIST files by (split, kind), pinned by SHA-256 and size.
MNIST_FILES = {
    ("test" if name.startswith("t10k") else "train", name.split("-")[1]): RemoteFile(
        name, sha, tuple(mirror + name for mirror in _MIRRORS), int(size)
    )
    for name, size, sha in (line.split() for line in _PINS.splitlines())
}
_Dir = str | os.PathLike[str] | None


def _read(stream: BinaryIO, size: int, name: str, what: str) -> bytes:
    pieces, got = [], 0
    while got < size and (piece := stream.read(min(size - got, 1 << 20))):
        pieces.append(piece)
        got += len(piece)
    if got < size:
        raise DataError(f"{name}: truncated {what}: expected {size} bytes, found {got}")
    return b"".join(pieces)


def _parse_idx(data: bytes, path: str | os.PathLike[str], max_bytes: int) -> np.ndarray:
    """Parse IDX bytes (gzip detected by content) into a native-order array, or DataError."""
    name, raw = os.fspath(path), io.BytesIO(data)
    stream: Any = gzip.GzipFile(fileobj=raw) if data[:2] == b"\x1f\x8b" else raw
    try:
        with stream:
            zero, code, ndim = struct.unpack(">HBB", magic := _read(stream, 4, name, "header"))
            if zero != 0:
                raise DataError(f"{name}: not an IDX file (magic {magic.hex()}, not 0000...)")
            if code not in _IDX_TYPES:
                raise DataError(f"{name}: unknown IDX type code 0x{code:02x}")
            if ndim == 0:
                raise DataError(f"{name}: IDX header declares no dimensions")
            dims = struct.unpack(f">{ndim}I", _read(stream, 4 * ndim, name, "dimensions"))
            dtype = _IDX_TYPES[code]
            if (size := dtype.itemsize * math.prod(dims)) > max_bytes:  # Python ints: no overflow
                raise DataError(f"{name}: IDX dimensions {dims}: over the {max_bytes}-byte limit")
            data = _read(stream, size, name, "data")
            if stream.read(1):  # one byte past the declared size, not the rest of a bomb
                raise DataError(f"{name}: trailing bytes after the {size} bytes declared")
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{name}: unreadable or corrupt gzip stream ({err})") from None
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str], *, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file (regular, raw or gzip) into a native-order array, or DataError.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "tiny.idx"
    >>> _ = f.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    >>> read_idx(f)
    array([7, 8, 9], dtype=uint8)
    """
    data = read_regular(path, max_bytes + 1024, DataError)  # the data and the longest header
    return _parse_idx(data, path, max_bytes)


def _check_mnist(array: np.ndarray, kind: str, path: Any) -> None:
    if array.dtype != np.uint8:
        raise DataError(f"{path}: MNIST {kind} must be unsigned bytes, got {array.dtype}")
    if kind == "images" and (array.ndim != 3 or array.shape[1:] != (28, 28)):
        raise DataError(f"{path}: MNIST images must be N x 28 x 28, got {array.shape}")
    if kind == "labels" and array.ndim != 1:
        raise DataError(f"{path}: MNIST labels must be 1-D, got shape {array.shape}")
    if kind == "labels" and array.size and int(array.max()) > 9:
        raise DataError(f"{path}: MNIST label {int(array.max())} is out of range 0-9")


def _host(split: str, kinds: tuple[str, ...], data_dir: _Dir, download: bool) -> list[Any]:
    remotes = [MNIST_FILES[check_choice(split, ("train", "test"), "MNIST split"), k] for k in kinds]
    paths = ensure_files(remotes, data_dir, download=download)
    arrays = [_parse_idx(read_verified(r, p := paths[r.name]), p, MAX_IDX_BYTES) for r in remotes]
    for kind, remote, array in zip(kinds, remotes, arrays, strict=True):
        _check_mnist(array, kind, paths[remote.name])
    if len(arrays) == 2 and len(arrays[0]) != len(arrays[1]):
        raise DataError(f"MNIST {split} split: {len(arrays[0])} images but {len(arrays[1])} labels")
    return arrays


def _labels(labels: np.ndarray, one_hot_label: bool, xp: Any, device: Any) -> Any:
    t = xp.asarray(labels, device=device)
    if not one_hot_label:
        return t
    with device_scope(t):
        classes = xp.arange(10, dtype=t.dtype, device=device)
        return xp.astype(xp.reshape(t, (-1, 1)) == classes, xp.float32)


def load_mnist_split(split: str = "test", normalize: bool = True, flatten: bool = True,
                     one_hot_label: bool = False, *, data_dir: _Dir = None,
                     backend: str | None = None, device: Any = None,
                     download: bool = True) -> tuple[Any, Any]:  # fmt: skip
    """Load one split, ``"test"`` or ``"train"``, as ``(x, t)`` (the test set needs no train file).

    ``normalize``: float32 pixels in [0, 1], else uint8; ``flatten``: images ``(N, 784)``, else
    ``(N, 1, 28, 28)``; ``one_hot_label``: float32 ``(N, 10)``, else uint8 ``(N,)``. ``data_dir``:
    see :func:`xpnn.download.data_home`; missing or corrupt files raise :class:`xpnn.DataError`.
    """
    xp, dev = namespace(backend, device)
    images, labels = _host(split, ("images", "labels"), data_dir, download)
    x = xp.asarray(images.reshape(len(images), -1) if flatten else images[:, None], device=dev)
    if normalize:
        with device_scope(x):
            x = xp.astype(x, xp.float32) / 255
    return x, _labels(labels, one_hot_label, xp, dev)


def load_mnist_labels(split: str = "train", one_hot_label: bool = False, *, data_dir: _Dir = None,
                      backend: str | None = None, device: Any = None,
                      download: bool = True) -> Any:  # fmt: skip
    """Load the labels of one split only (no images needed); see :func:`load_mnist_split`."""
    xp, dev = namespace(backend, device)
    (labels,) = _host(split, ("labels",), data_dir, download)
    return _labels(labels, one_hot_label, xp, dev)


def load_mnist(normalize: bool = True, flatten: bool = True, one_hot_label: bool = False, *,
               data_dir: _Dir = None, backend: str | None = None, device: Any = None,
               download: bool = True) -> tuple[tuple[Any, Any], tuple[Any, Any]]:  # fmt: skip
    """Load MNIST as the book does: ``((x_train, t_train), (x_test, t_test))``: all 4 files."""
    ensure_files(MNIST_FILES.values(), data_dir, download=download)
    options: dict[str, Any] = {"data_dir": data_dir, "backend": backend, "device": device}
    train = load_mnist_split("train", normalize, flatten, one_hot_label, **options)
    return train, load_mnist_split("test", normalize, flatten, one_hot_label, **options)
