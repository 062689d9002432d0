"""Inputs for fuzzing the file readers: valid seeds, mutations, floods and bombs.

Used by the test suite (the long fuzz run of ``tests/test_fuzz.py`` included);
nothing here reads or writes files, everything returns bytes.
"""

from __future__ import annotations

import gzip
import io
import pickle
import pickletools
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "container_flood",
    "gzip_wrap",
    "idx_bytes",
    "largest_cases",
    "mutate",
    "npz_bomb",
    "npz_overlap_bomb",
    "numpy1_spelling",
    "seed_files",
]

IDX_TYPE_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as IDX (big-endian).

    Examples
    --------
    >>> idx_bytes(np.array([7, 8], np.uint8))
    b'\\x00\\x00\\x08\\x01\\x00\\x00\\x00\\x02\\x07\\x08'
    """
    code = IDX_TYPE_CODES[array.dtype.str[1:]]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def gzip_wrap(data: bytes) -> bytes:
    """Gzip ``data`` reproducibly (no timestamp)."""
    return gzip.compress(data, mtime=0)


def _short_unicode(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def numpy1_spelling(blob: bytes) -> bytes:
    """Rewrite a NumPy 2 pickle (``numpy._core``) as NumPy 1 writes it (``numpy.core``).

    Text ``GLOBAL`` names are replaced in place; length-prefixed names of
    protocols 4 and 5 get their new length, and frames are rebuilt.
    """
    out = blob.replace(b"cnumpy._core.", b"cnumpy.core.")  # GLOBAL: newline-terminated text
    for module in ("numpy._core.multiarray", "numpy._core.numeric"):
        out = out.replace(
            _short_unicode(module), _short_unicode(module.replace("numpy._core", "numpy.core"))
        )
    if out[:1] == b"\x80" and out[1] >= 4:
        out = pickletools.optimize(out)  # re-frames, keeps the protocol
    return out


def weights(dtype: str = "<f4", seed: int = 0) -> dict[str, np.ndarray]:
    """A small 6-4-3 network's parameters in the given dtype (byte order included)."""
    rng = np.random.default_rng(seed)
    shapes = {"W1": (6, 4), "b1": (4,), "W2": (4, 3), "b2": (3,)}
    return {k: rng.normal(size=s).astype(dtype) for k, s in shapes.items()}


def _npz(arrays: dict[str, np.ndarray], compressed: bool = False) -> bytes:
    buffer = io.BytesIO()
    save: Any = np.savez_compressed if compressed else np.savez  # **arrays: not typable
    save(buffer, **arrays)
    return buffer.getvalue()


def seed_files() -> dict[str, bytes]:
    """Valid files of every format the library reads, keyed by kind.

    Kinds: ``idx``, ``idx.gz``, pickles of protocols 2 and 5 in little- and
    big-endian (``pkl``, ``pkl5``, ``pkl-be``, ``pkl5-be``, ``pkl-numpy1``),
    ``npz``, ``npz-be``, ``npz-deflated`` and ``safetensors`` (when installed).
    """
    rng = np.random.default_rng(0)
    little, big = weights("<f4"), weights(">f8")
    seeds = {
        "idx": idx_bytes(rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8)),
        "idx.gz": gzip_wrap(idx_bytes(np.arange(10, dtype=np.uint8))),
        "pkl": pickle.dumps(little, protocol=2),
        "pkl5": pickle.dumps(little, protocol=5),
        "pkl-be": pickle.dumps(big, protocol=3),
        "pkl5-be": pickle.dumps(big, protocol=5),
        "pkl-numpy1": numpy1_spelling(pickle.dumps(big, protocol=4)),
        "npz": _npz(little),
        "npz-be": _npz(big),
        "npz-deflated": _npz(little, compressed=True),
    }
    try:
        from safetensors.numpy import save
    except ImportError:
        pass
    else:
        seeds["safetensors"] = save(little)
    return seeds


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Flip, insert, delete, truncate, duplicate or splice a few bytes."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(6)
        pos = rng.randrange(len(out) + 1)
        if choice == 0 and out:
            out[min(pos, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif choice == 1:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice == 2:
            del out[pos : pos + rng.randint(1, 16)]
        elif choice == 3:
            del out[pos:]
        elif choice == 4:
            out[pos:pos] = out[max(0, pos - 16) : pos]
        elif out:
            out[min(pos, len(out) - 1)] = rng.choice((0, 0xFF, 0x7F, 0x80))
    return bytes(out)


#: Floods: (prefix, repeated unit, suffix). Each unit costs the unpickler far
#: more than its few bytes, by growing the stack, the marks, the memo, or by
#: building containers the memo keeps alive.
FLOODS: dict[str, tuple[bytes, bytes, bytes]] = {
    "EMPTY_SET": (b"", b"\x8f", b""),
    "EMPTY_LIST": (b"", b"]", b""),
    "EMPTY_DICT": (b"", b"}", b""),
    "MARK": (b"", b"(", b""),
    "EMPTY_TUPLE": (b"", b")", b""),
    "NONE": (b"", b"N", b""),
    "TUPLE1": (b"", b"N\x85", b""),
    "MEMOIZE": (b"", b"N\x94", b""),
    "BINPUT": (b"", b"Nq\xff", b""),
    "BINGET": (b"N\x94", b"h\x00", b""),
    "DICT": (b"", b"(d", b""),
    "SETITEM": (b"}", b"NNs", b""),
    "MEMO-KEPT-DICTS": (b"", b"}\x940", b"N"),  # stack stays flat; the memo keeps each
    "MEMO-KEPT-TUPLES": (b"", b"N\x85\x940", b"N"),
    "SETITEMS-BATCHES": (b"}", b"(NNNNu", b""),
}


def container_flood(kind: str, size: int) -> bytes:
    """A protocol-4 pickle of about ``size`` bytes made of one cheap opcode unit, repeated."""
    prefix, unit, suffix = FLOODS[kind]
    return b"\x80\x04" + prefix + unit * max(1, size // len(unit)) + suffix + b"."


def npz_bomb(uncompressed: int, *, name: str = "W1.npy", declare: int | None = None) -> bytes:
    """A deflated ``.npz`` whose one member inflates to about ``uncompressed`` bytes of zeros.

    Built in 1 MiB pieces, so making a large bomb costs little memory.
    ``declare`` writes a different uncompressed size into the headers (a
    lying archive).
    """
    header = io.BytesIO()
    count = max(0, (uncompressed - 128) // 8)
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (count,)}
    )
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open(name, "w", force_zip64=True) as member,
    ):
        member.write(header.getvalue())
        remaining = 8 * count
        zeros = bytes(min(remaining, 1 << 20))
        while remaining:
            piece = min(remaining, len(zeros))
            member.write(zeros[:piece])
            remaining -= piece
    data = buffer.getvalue()
    if declare is not None:
        data = _declare_size(data, declare)
    return data


def npz_overlap_bomb(members: int, kernel: int) -> bytes:
    """An ``.npz`` of stored members whose data ranges overlap: each holds all that follow.

    Member ``i``'s data is its ``.npy`` header (``uint8``, one dimension)
    followed by member ``i+1``'s local header and data, and so on down to
    ``kernel`` zero bytes shared by all, so a file of about ``kernel`` bytes
    makes ``members`` arrays of about ``kernel`` bytes each. Every CRC and
    size is right, and no member is compressed at all.
    """
    names = [f"a{i}.npy".encode() for i in range(members)]
    local = [
        struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(n), 0) + n
        for n in names
    ]
    headers: list[bytes] = [b""] * members
    rest = kernel  # bytes after member i's .npy header
    for i in reversed(range(members)):
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "|u1", "fortran_order": False, "shape": (rest,)}
        )
        headers[i] = header.getvalue()
        rest += len(headers[i]) + len(local[i])
    pieces = [piece for pair in zip(local, headers, strict=True) for piece in pair]
    pieces.append(bytes(kernel))
    body = b"".join(pieces)
    central, offset = [], 0
    for i, name in enumerate(names):
        start = offset + len(local[i])
        data = memoryview(body)[start:]
        crc = zlib.crc32(data)
        central.append(
            struct.pack(
                "<4s6H3I5H2I",
                b"PK\x01\x02",
                20,
                20,
                0,
                0,
                0,
                0,
                crc,
                len(data),
                len(data),
                len(name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + name
        )
        offset = start + len(headers[i])
    directory = b"".join(central)
    end = struct.pack(
        "<4s4H2IH", b"PK\x05\x06", 0, 0, members, members, len(directory), len(body), 0
    )
    return body + directory + end


def _declare_size(data: bytes, size: int) -> bytes:
    """Overwrite the uncompressed size in every local and central header."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = out.find(signature)
        while start != -1:
            out[start + offset : start + offset + 4] = struct.pack("<I", size & 0xFFFFFFFF)
            start = out.find(signature, start + 4)
    return bytes(out)


#: Generators of hostile inputs for the long fuzz run, by kind: (suffix, make(rng)).
HOSTILE: dict[str, tuple[str, Callable[[random.Random], bytes]]] = {
    "pkl-flood": (
        ".pkl",
        lambda rng: container_flood(
            rng.choice(sorted(FLOODS)), 1 << 20 if rng.random() < 0.01 else rng.choice((64, 4096))
        ),
    ),
    "npz-bomb": (
        ".npz",
        lambda rng: npz_bomb(
            rng.choice((1 << 16, 1 << 20, 8 << 20)), declare=rng.choice((None, 100, 1 << 31))
        ),
    ),
    "npz-overlap": (
        ".npz",
        lambda rng: npz_overlap_bomb(rng.randint(2, 100), rng.choice((64, 4096, 65536))),
    ),
}


def largest_cases() -> list[tuple[str, str, bytes]]:
    """The biggest hostile inputs, as ``(kind, suffix, data)``: every flood at 1 MiB, bombs.

    A fuzz run starts with these, so that its memory bound is measured against
    inputs that try hardest to exceed it.
    """
    cases = [("pkl-flood", ".pkl", container_flood(kind, 1 << 20)) for kind in sorted(FLOODS)]
    cases += [
        ("npz-bomb", ".npz", npz_bomb(400 << 20)),  # the reported 0.4 MB -> 400 MB
        ("npz-bomb", ".npz", npz_bomb(8 << 20, declare=100)),
        ("npz-bomb", ".npz", npz_bomb(1 << 16, declare=1 << 31)),
        ("npz-overlap", ".npz", npz_overlap_bomb(450, 380_000)),  # 0.38 MB -> 171 MB
    ]
    return cases
