"""Reference values from the chapter (docs: shared reference values, float64)."""

from __future__ import annotations

import numpy as np

SIGMOID_IN = [-1.0, 1.0, 2.0]
SIGMOID_OUT = [0.26894142, 0.73105858, 0.88079708]
STEP_IN = [-1.0, 1.0, 2.0]
STEP_OUT = [0, 1, 1]
RELU_IN = [-1.0, 0.0, 2.0]
RELU_OUT = [0.0, 0.0, 2.0]
SOFTMAX_IN = [0.3, 2.9, 4.0]
SOFTMAX_OUT = [0.01821127, 0.24519181, 0.73659691]
SOFTMAX_BIG_IN = [1010.0, 1000.0, 990.0]
SOFTMAX_BIG_OUT = [9.99954600e-01, 4.53978686e-05, 2.06106005e-09]

CHAPTER_X = [1.0, 0.5]
CHAPTER_A1 = [0.3, 0.7, 1.1]
CHAPTER_Z1 = [0.57444252, 0.66818777, 0.75026011]
CHAPTER_A2 = [0.51615984, 1.21402696]
CHAPTER_Z2 = [0.62624937, 0.7710107]
CHAPTER_Y = [0.31682708, 0.69627909]

# The printed values carry 8 decimals; float32 is good to ~1e-6 relative.
TOLERANCE = {"float64": {"rtol": 0, "atol": 1e-8}, "float32": {"rtol": 1e-6, "atol": 1e-7}}


def assert_close(actual: object, expected: object, dtype: str) -> None:
    """Compare a backend result (after conversion to NumPy) with expected values."""
    import xpnn

    got = xpnn.to_numpy(actual)
    assert got.dtype == np.dtype(dtype), f"dtype {got.dtype}, expected {dtype}"
    want = np.asarray(expected, dtype=np.float64)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float64), want, **TOLERANCE[dtype])
