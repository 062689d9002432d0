"""Helpers that write synthetic IDX files for the tests."""

from __future__ import annotations

import numpy as np
from fuzzing import IDX_TYPE_CODES as TYPE_CODES
from fuzzing import gzip_wrap as gz
from fuzzing import idx_bytes

__all__ = ["TYPE_CODES", "gz", "idx_bytes", "mnist_images"]


def mnist_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
