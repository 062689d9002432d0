"""Helpers that write synthetic IDX files for the tests."""

from __future__ import annotations

import gzip
import struct

import numpy as np

TYPE_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as IDX (big-endian)."""
    code = TYPE_CODES[array.dtype.str[1:]]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def mnist_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)
