"""A validating reader for IDX files (the MNIST file format), raw or gzip-compressed.

Magic, type code, dimensions and exact data length are checked; a header declaring over
``max_bytes`` is refused, data is read in pieces as it comes and decompression stops one byte past
the declared size (no gzip bomb). Every failure is an :class:`xpnn.DataError` naming the file.
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
from .errors import DataError

__all__ = ["IDX_TYPES", "parse_idx", "read_idx"]

_CODES = {0x08: "u1", 0x09: "i1", 0x0B: "i2", 0x0C: "i4", 0x0D: "f4", 0x0E: "f8"}
#: IDX type codes and the big-endian NumPy dtypes they stand for.
IDX_TYPES: dict[int, np.dtype[Any]] = {code: np.dtype(f">{t}") for code, t in _CODES.items()}
#: Largest data section accepted by default (256 MiB; MNIST's largest file is 47 MB).
DEFAULT_MAX_BYTES = 1 << 28


def _read(stream: BinaryIO, size: int, name: str, what: str) -> bytes:
    pieces, got = [], 0
    while got < size and (piece := stream.read(min(size - got, 1 << 20))):
        pieces.append(piece)
        got += len(piece)
    if got < size:
        raise DataError(f"{name}: truncated {what}: expected {size} bytes, found {got}")
    return b"".join(pieces)


def _parse(stream: BinaryIO, name: str, max_bytes: int) -> np.ndarray:
    zero, code, ndim = struct.unpack(">HBB", magic := _read(stream, 4, name, "header"))
    if zero != 0:
        raise DataError(f"{name}: not an IDX file (magic {magic.hex()} does not start with 0000)")
    if code not in IDX_TYPES:
        raise DataError(f"{name}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise DataError(f"{name}: IDX header declares no dimensions")
    dims = struct.unpack(f">{ndim}I", _read(stream, 4 * ndim, name, "dimensions"))
    dtype = IDX_TYPES[code]
    if (size := dtype.itemsize * math.prod(dims)) > max_bytes:  # Python ints: no overflow
        raise DataError(f"{name}: IDX header declares {dims}, over the {max_bytes}-byte limit")
    data = _read(stream, size, name, "data")
    if stream.read(1):  # one byte past the declared size, not the rest of a bomb
        raise DataError(f"{name}: trailing bytes after the {size} bytes the header declares")
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def parse_idx(data: bytes, name: str | os.PathLike[str] = "<bytes>", *,
              max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:  # fmt: skip
    """Parse IDX bytes in memory (gzip detected by content): those verified are those parsed.

    Examples
    --------
    >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 4, 2]))
    array([4, 2], dtype=uint8)
    """
    raw = io.BytesIO(data)
    stream: Any = gzip.GzipFile(fileobj=raw) if data[:2] == b"\x1f\x8b" else raw
    try:
        with stream:
            return _parse(stream, os.fspath(name), max_bytes)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{os.fspath(name)}: unreadable or corrupt gzip stream ({err})") from None


def read_idx(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
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
    return parse_idx(data, path, max_bytes=max_bytes)
