"""The chapter's activation and output functions, for arrays of any backend.

Each takes its namespace from its input and returns an array of the same
library on the same device; lists and scalars are converted with NumPy, as in
the book. Integers and booleans become the device's default floating dtype in
:func:`sigmoid` and :func:`softmax`; complex input is a ``TypeError``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import array_api_compat as compat
import numpy as np

from ._moving import as_array
from .backends import default_dtype, device_scope

__all__ = ["identity_function", "relu", "sigmoid", "softmax", "step_function"]


def _floating(x: Any, caller: str) -> tuple[Any, ModuleType]:
    x, xp = as_array(x, caller)
    if not xp.isdtype(x.dtype, "real floating"):
        with device_scope(x):
            x = xp.astype(x, default_dtype(x, "real floating"))
    return x, xp


def step_function(x: Any) -> Any:
    """1 where ``x > 0``, else 0, as integers (the namespace's default integer dtype).

    Examples
    --------
    >>> import array_api_strict as xp
    >>> step_function(xp.asarray([-1.0, 1.0, 2.0]))
    Array([0, 1, 1], dtype=array_api_strict.int64)
    """
    x, xp = as_array(x, "step_function")
    with device_scope(x):
        return xp.astype(x > 0, default_dtype(x, "integral"))


def sigmoid(x: Any) -> Any:
    """The logistic sigmoid, the book's ``1 / (1 + exp(-x))``, without overflow warnings.

    For very negative ``x``, ``exp(-x)`` overflows to ``inf`` and the result is the
    correct 0; NumPy's warning is silenced for this call. Lazy arrays (Dask, ndonnx,
    JAX under ``jit``), whose warnings would come later, get the form ``exp(-|x|)``,
    which never overflows. Exactly 0 and 1 in the limits, in every floating dtype.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> sigmoid(xp.asarray([-1e4, 0.0, 1e4], dtype=xp.float32))
    Array([0. , 0.5, 1. ], dtype=array_api_strict.float32)
    """
    x, xp = _floating(x, "sigmoid")
    with device_scope(x):
        if compat.is_lazy_array(x):
            e = xp.exp(-xp.abs(x))
            return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        with np.errstate(over="ignore"):
            return 1 / (1 + xp.exp(-x))


def relu(x: Any) -> Any:
    """The rectified linear unit ``max(x, 0)``; integers stay integers.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> relu(xp.asarray([-1.0, 0.0, 2.0]))
    Array([0., 0., 2.], dtype=array_api_strict.float64)
    """
    x, xp = as_array(x, "relu")
    if xp.isdtype(x.dtype, "bool"):
        return x
    with device_scope(x):
        return xp.maximum(x, 0)  # a Python 0 creates no array (on no device)


def identity_function(x: Any) -> Any:
    """The identity output: ``x`` itself (lists become NumPy arrays).

    Examples
    --------
    >>> import array_api_strict as xp
    >>> identity_function(xp.asarray([0.3, 0.7]))
    Array([0.3, 0.7], dtype=array_api_strict.float64)
    """
    return as_array(x, "identity_function", real=False)[0]


def softmax(x: Any, axis: int = -1) -> Any:
    """Softmax along ``axis``, shifted by the maximum along that axis.

    Each slice sums to 1 and each row of a batch is computed as if it were alone
    (the chapter subtracts the maximum of the whole array); ``softmax([1010, 1000])``
    is finite.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> softmax(xp.asarray([0.3, 2.9, 4.0]))
    Array([0.01821127, 0.24519181, 0.73659691], dtype=array_api_strict.float64)
    """
    x, xp = _floating(x, "softmax")
    if x.ndim == 0:
        raise ValueError("softmax() needs at least one axis, got a 0-d array")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"softmax() axis {axis} is out of range for an array of {x.ndim} dims")
    with device_scope(x):
        exp_a = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
        return exp_a / xp.sum(exp_a, axis=axis, keepdims=True)
