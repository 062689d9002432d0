"""The chapter's activation and output functions, for arrays of any backend.

Each public function takes an array of any array-API backend and returns an
array of the same namespace, on the same device. Floating inputs keep their
dtype; integer and boolean inputs to :func:`sigmoid` and :func:`softmax` are
promoted to the namespace's default floating dtype (as NumPy does); complex
and object inputs raise :class:`TypeError`.

Python lists, tuples and scalars are accepted too and converted with NumPy
(``numpy.asarray``), so ``sigmoid([-1.0, 1.0, 2.0])`` works as in the book and
returns a NumPy array.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

__all__ = ["identity_function", "relu", "sigmoid", "softmax", "step_function"]

_PYTHON_INPUTS = (list, tuple, int, float, bool)


def as_array(x: Any, caller: str) -> tuple[Any, ModuleType]:
    """Return ``(x, xp)``: ``x`` as an array and its namespace.

    Lists, tuples and Python scalars go through ``numpy.asarray``; anything
    that is not an array raises a :class:`TypeError` naming ``caller``.
    """
    if isinstance(x, _PYTHON_INPUTS):
        x = np.asarray(x)
    try:
        xp = array_api_compat.array_namespace(x)
    except TypeError:
        raise TypeError(
            f"{caller}() expects an array (numpy, cupy, torch, jax, dask, "
            f"array_api_strict) or a list of numbers, got {type(x).__name__}"
        ) from None
    return x, xp


def as_floating(x: Any, xp: ModuleType, caller: str) -> Any:
    """Return ``x`` if it is real floating; promote integers and booleans.

    Integer and boolean arrays become the namespace's default floating dtype on
    the array's device; complex and other dtypes raise :class:`TypeError`.
    """
    if xp.isdtype(x.dtype, "real floating"):
        return x
    if xp.isdtype(x.dtype, ("integral", "bool")):
        device = array_api_compat.device(x)
        default = xp.__array_namespace_info__().default_dtypes(device=device)
        return xp.astype(x, default["real floating"])
    raise TypeError(f"{caller}() needs real numbers, got an array of dtype {x.dtype}")


def _check_real(x: Any, xp: ModuleType, caller: str) -> None:
    if not xp.isdtype(x.dtype, ("real floating", "integral", "bool")):
        raise TypeError(f"{caller}() needs real numbers, got an array of dtype {x.dtype}")


def _sigmoid_direct(x: Any, xp: ModuleType) -> Any:
    # The book's formula. For very negative x, exp(-x) overflows to inf and the
    # result 1 / inf is the correct 0; torch, jax and cupy do that silently.
    return 1 / (1 + xp.exp(-x))


# exp() argument cap per dtype for _sigmoid_from_exp_x: 0.9 * log(largest float)
# (9.98 in float16, 79.9 in float32, 638.8 in float64). exp(cap) is finite, and
# e / (1 + e) already rounds to exactly 1 there.
# Kept per namespace: dtypes of different libraries must not be compared.
_EXP_CAP: dict[int, dict[Any, float]] = {}


def _sigmoid_from_exp_x(x: Any, xp: ModuleType) -> Any:
    # Where NumPy computes eagerly and would warn on an overflow: sigmoid(x) =
    # e / (1 + e) with e = exp(min(x, cap)). exp() cannot overflow, so no guard
    # (np.errstate costs 1.5-2.7 us a call, as much as the whole sigmoid of a
    # 50-vector); very negative x underflow to subnormals and 0, which NumPy does
    # not report by default. The same 4 passes as the book's formula, and more
    # precise in the negative tail: correct subnormals down to the smallest
    # float (x > -103.9 in float32) instead of 0 below -88.7.
    caps = _EXP_CAP.setdefault(id(xp), {})
    cap = caps.get(x.dtype)
    if cap is None:
        cap = caps[x.dtype] = 0.9 * math.log(float(xp.finfo(x.dtype).max))
    e = xp.exp(xp.minimum(x, cap))
    return e / (1 + e)


def _sigmoid_native(x: Any, xp: ModuleType) -> Any:
    # torch's own sigmoid: one kernel instead of four passes, the same values in
    # float32 and float64 (0 below -88.7 / -745), more precise in float16.
    return xp.sigmoid(x)


def _sigmoid_stable(x: Any, xp: ModuleType) -> Any:
    # exp(-|x|) never overflows; pick 1 / (1 + e) or e / (1 + e) by the sign.
    e = xp.exp(-xp.abs(x))
    r = 1 / (1 + e)
    return xp.where(x >= 0, r, e * r)


def _eager_numpy(xp: ModuleType) -> bool:
    """True where arithmetic runs eagerly in NumPy, which warns on overflow."""
    return array_api_compat.is_numpy_namespace(
        xp
    ) or array_api_compat.is_array_api_strict_namespace(xp)


def sigmoid_kernel_for(xp: ModuleType) -> Callable[[Any, ModuleType], Any]:
    """Pick the sigmoid formula for a namespace (once per network, not per call).

    Every formula gives exact 0 and 1 in the limits, without warnings, and
    full relative precision wherever ``exp(-x)`` is finite (x > -88.7 in
    float32, -709.8 in float64, -11.1 in float16).

    - numpy, array_api_strict (eager NumPy, which warns on overflow):
      ``e / (1 + e)`` with ``e = exp(min(x, cap))``, 4 passes, no overflow
      possible; correct subnormals below that too, down to the smallest float.
    - torch: its own ``sigmoid``, one kernel, the same values as the book's
      formula in float32 and float64 (0 below -88.7 / -745.1), subnormals in
      float16.
    - jax, cupy, where overflow is silent: the book's 4-pass formula
      ``1 / (1 + exp(-x))``, which returns 0 below -88.7 (float32).
    - lazy or unknown namespaces (dask, others), where a warning would surface
      later, outside any guard: the 8-pass ``exp(-|x|)`` form, with
      subnormals.
    """
    if _eager_numpy(xp):
        return _sigmoid_from_exp_x
    if array_api_compat.is_torch_namespace(xp):
        return _sigmoid_native
    direct = xp.__name__ == "ndonnx" or any(  # ONNX's Exp overflows to inf silently
        check(xp)
        for check in (
            array_api_compat.is_torch_namespace,
            array_api_compat.is_jax_namespace,
            array_api_compat.is_cupy_namespace,
        )
    )
    return _sigmoid_direct if direct else _sigmoid_stable


def sigmoid_kernel(x: Any, xp: ModuleType) -> Any:
    """Sigmoid of a real floating array ``x`` of namespace ``xp``, no checks."""
    return sigmoid_kernel_for(xp)(x, xp)


def relu_kernel(x: Any, xp: ModuleType) -> Any:
    """ReLU of a real numeric array ``x`` of namespace ``xp``, no checks."""
    return xp.maximum(x, xp.zeros((), dtype=x.dtype, device=array_api_compat.device(x)))


def softmax_kernel(x: Any, xp: ModuleType, axis: int = -1) -> Any:
    """Softmax of a real floating array ``x`` along ``axis``, no checks."""
    if x.ndim == 1:  # one sample: reductions without axis/keepdims are cheaper
        e = xp.exp(x - xp.max(x))
        return e / xp.sum(e)
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    e = xp.exp(shifted)
    return e / xp.sum(e, axis=axis, keepdims=True)


def step_function(x: Any) -> Any:
    """Step function: 1 where ``x > 0``, else 0.

    Parameters
    ----------
    x : array_like
        Real numbers.

    Returns
    -------
    array
        Integer array, as in the book, of the namespace's default integer
        dtype (``int64`` on numpy, torch, dask and array_api_strict; ``int32``
        on jax unless 64-bit mode is on), on ``x``'s device.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> step_function(xp.asarray([-1.0, 1.0, 2.0]))
    Array([0, 1, 1], dtype=array_api_strict.int64)
    """
    x, xp = as_array(x, "step_function")
    _check_real(x, xp, "step_function")
    device = array_api_compat.device(x)
    default = xp.__array_namespace_info__().default_dtypes(device=device)
    return xp.astype(x > 0, default["integral"])


def sigmoid(x: Any) -> Any:
    """Logistic sigmoid ``1 / (1 + exp(-x))``, without overflow.

    Exact 0 and 1 in the limits (``sigmoid(-1e4) == 0``, ``sigmoid(1e4) == 1``)
    in float16, float32 and float64, with no RuntimeWarning.

    Parameters
    ----------
    x : array_like
        Real numbers; integers and booleans are promoted to the default
        floating dtype.

    Returns
    -------
    array
        Same namespace, device, shape and (floating) dtype as ``x``.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> sigmoid(xp.asarray([-1.0, 1.0, 2.0]))
    Array([0.26894142, 0.73105858, 0.88079708], dtype=array_api_strict.float64)
    """
    x, xp = as_array(x, "sigmoid")
    return sigmoid_kernel(as_floating(x, xp, "sigmoid"), xp)


def relu(x: Any) -> Any:
    """Rectified linear unit ``max(x, 0)``.

    Integer inputs stay integer; NaN stays NaN.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> relu(xp.asarray([-1.0, 0.0, 2.0]))
    Array([0., 0., 2.], dtype=array_api_strict.float64)
    """
    x, xp = as_array(x, "relu")
    _check_real(x, xp, "relu")
    if xp.isdtype(x.dtype, "bool"):
        return x
    return relu_kernel(x, xp)


def identity_function(x: Any) -> Any:
    """Identity output function: return ``x`` unchanged (the same object).

    Examples
    --------
    >>> import array_api_strict as xp
    >>> identity_function(xp.asarray([0.3, 0.7]))
    Array([0.3, 0.7], dtype=array_api_strict.float64)
    """
    x, _ = as_array(x, "identity_function")
    return x


def softmax(x: Any, axis: int = -1) -> Any:
    """Softmax along ``axis``, shifted by the maximum along that axis.

    Each slice along ``axis`` sums to 1. Subtracting the per-slice maximum
    (not the global one, as the chapter's notebook does) keeps every row of a
    batch exact, and ``softmax([1010, 1000, 990])`` finite.

    Parameters
    ----------
    x : array_like
        Real numbers of any shape; integers are promoted to floating.
    axis : int, default -1
        The axis that sums to 1 (the class axis of a batch).

    Examples
    --------
    >>> import array_api_strict as xp
    >>> softmax(xp.asarray([0.3, 2.9, 4.0]))
    Array([0.01821127, 0.24519181, 0.73659691], dtype=array_api_strict.float64)
    """
    x, xp = as_array(x, "softmax")
    x = as_floating(x, xp, "softmax")
    if x.ndim == 0:
        raise ValueError("softmax() needs at least one axis, got a 0-d array")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"softmax() axis {axis} is out of range for an array of {x.ndim} dims")
    return softmax_kernel(x, xp, axis)
