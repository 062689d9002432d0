"""A validating reader for IDX files (the MNIST file format), raw or gzip-compressed.

Nothing in a file is trusted before it is checked: the magic number, the type
code, the dimensions, and that the data is exactly as long as the dimensions
say (neither short nor with trailing bytes). Decompression never reads more
than the header declares (plus one byte to detect trailing data), and a header
declaring more than ``max_bytes`` is refused before anything is read, so a
gzip bomb cannot exhaust memory. Every failure is a :class:`xpnn.DataError`
naming the file.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import DataError

__all__ = ["IDX_TYPES", "parse_idx", "read_idx"]

#: IDX type codes and the big-endian NumPy dtypes they stand for.
IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: Largest data section read by default (256 MiB; MNIST's largest file is 47 MB).
DEFAULT_MAX_BYTES = 1 << 28

_CHUNK = 1 << 20


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


_GZIP_MAGIC = b"\x1f\x8b"


def _read_exactly(stream: _Readable, size: int, path: Path, what: str) -> bytes:
    """Read ``size`` bytes in chunks; memory grows with the data actually present."""
    chunks = []
    remaining = size
    while remaining:
        chunk = stream.read(min(remaining, _CHUNK))
        if not chunk:
            got = size - remaining
            raise DataError(f"{path}: truncated {what}: expected {size} bytes, found {got}")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _parse(stream: _Readable, path: Path, max_bytes: int) -> np.ndarray:
    magic = _read_exactly(stream, 4, path, "header")
    zero, type_code, ndim = struct.unpack(">HBB", magic)
    if zero != 0:
        raise DataError(f"{path}: not an IDX file (magic {magic.hex()} does not start with 0000)")
    if type_code not in IDX_TYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{type_code:02x}")
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares no dimensions")
    dims = struct.unpack(f">{ndim}I", _read_exactly(stream, 4 * ndim, path, "dimensions"))
    dtype = IDX_TYPES[type_code]
    size = dtype.itemsize * math.prod(dims)  # Python ints: no overflow
    if size > max_bytes:
        raise DataError(
            f"{path}: IDX header declares {dims} items of {dtype.itemsize} byte(s), "
            f"over the {max_bytes}-byte limit"
        )
    data = _read_exactly(stream, size, path, "data")
    if stream.read(1):
        raise DataError(
            f"{path}: trailing bytes after the {size} bytes of data the header declares"
        )
    array: np.ndarray = np.frombuffer(data, dtype=dtype).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def parse_idx(
    data: bytes, name: str | os.PathLike[str] = "<bytes>", *, max_bytes: int = DEFAULT_MAX_BYTES
) -> np.ndarray:
    """Parse an IDX file already in memory, gzip-compressed (detected by content) or raw.

    The same checks as :func:`read_idx`; used where the bytes were verified
    (hashed) first, so that exactly what was verified is parsed.

    Examples
    --------
    >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 4, 2]))
    array([4, 2], dtype=uint8)
    """
    path = Path(name)
    try:
        if data[:2] != _GZIP_MAGIC:
            return _parse(io.BytesIO(data), path, max_bytes)
        with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as stream:
            return _parse(stream, path, max_bytes)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: unreadable or corrupt gzip stream ({err})") from None


def read_idx(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Read an IDX file, gzip-compressed (detected by content) or raw.

    Parameters
    ----------
    path : path-like
        The file.
    max_bytes : int
        Largest data section accepted, as declared by the header.

    Returns
    -------
    numpy.ndarray
        The data, with the header's shape, in native byte order.

    Raises
    ------
    DataError
        Missing or unreadable file, bad magic or type code, data shorter or
        longer than declared, corrupt gzip stream, or a header over ``max_bytes``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "tiny.idx"
    >>> _ = f.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    >>> read_idx(f)
    array([7, 8, 9], dtype=uint8)
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            if not compressed:
                return _parse(raw, path, max_bytes)
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _parse(stream, path, max_bytes)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: unreadable or corrupt gzip stream ({err})") from None
