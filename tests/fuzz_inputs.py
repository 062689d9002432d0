"""Seed files and mutations shared by the fuzz tests and ``scripts/fuzz.py``."""

from __future__ import annotations

import gzip
import io
import pickle
import random

import numpy as np
from idx_files import gz, idx_bytes, mnist_images


def seed_files() -> dict[str, bytes]:
    """Valid files of every format the library reads, keyed by file suffix kind."""
    from safetensors.numpy import save

    rng = np.random.default_rng(0)
    weights = {
        "W1": rng.normal(size=(6, 4)).astype(np.float32),
        "b1": rng.normal(size=4).astype(np.float32),
        "W2": rng.normal(size=(4, 3)).astype(np.float32),
        "b2": rng.normal(size=3).astype(np.float32),
    }
    npz = io.BytesIO()
    np.savez(npz, **weights)
    return {
        "idx": idx_bytes(mnist_images(2)),
        "idx.gz": gz(idx_bytes(np.arange(10, dtype=np.uint8))),
        "pkl": pickle.dumps(weights, protocol=2),
        "pkl5": pickle.dumps(weights, protocol=5),
        "safetensors": save(weights),
        "npz": npz.getvalue(),
    }


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


def gzip_wrap(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)
