"""The chapter's activation and output functions, for arrays of any backend.

Each public function takes an array of any array-API backend and returns an
array of the same namespace, on the same device. Floating inputs keep their
dtype; integer and boolean inputs to :func:`sigmoid` and :func:`softmax` are
promoted to the namespace's default floating dtype (as NumPy does); complex
and object inputs raise :class:`TypeError`.

Computation runs in the input's device scope (CuPy computes on its current
device, so a ``cuda:1`` input is computed inside ``with Device(1):``).
``numpy.matrix`` and masked arrays are refused with :class:`TypeError`.

Python lists, tuples and scalars are accepted too and converted with NumPy
(``numpy.asarray``), so ``sigmoid([-1.0, 1.0, 2.0])`` works as in the book and
returns a NumPy array.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ._backend.devices import array_device_scope
from ._backend.moving import check_array_type
from ._backend.table import BACKENDS, facts_of_namespace

__all__ = ["identity_function", "relu", "sigmoid", "softmax", "step_function"]

_PYTHON_INPUTS = (list, tuple, int, float, bool)


def as_array(x: Any, caller: str) -> tuple[Any, ModuleType]:
    """Return ``(x, xp)``: ``x`` as an array and its namespace.

    Lists, tuples and Python scalars go through ``numpy.asarray``; anything
    that is not an array raises a :class:`TypeError` naming ``caller``.
    """
    if isinstance(x, _PYTHON_INPUTS):
        x = np.asarray(x)
    check_array_type(x, caller)
    try:
        xp = array_api_compat.array_namespace(x)
    except TypeError:
        raise TypeError(
            f"{caller}() expects an array ({', '.join(BACKENDS)}) or a list of numbers, "
            f"got {type(x).__name__}"
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
        with array_device_scope(x):
            return xp.astype(x, default["real floating"])
    raise TypeError(f"{caller}() needs real numbers, got an array of dtype {x.dtype}")


def _check_real(x: Any, xp: ModuleType, caller: str) -> None:
    if not xp.isdtype(x.dtype, ("real floating", "integral", "bool")):
        raise TypeError(f"{caller}() needs real numbers, got an array of dtype {x.dtype}")


def _sigmoid_direct(x: Any, xp: ModuleType) -> Any:
    # The book's formula. For very negative x, exp(-x) overflows to inf and the
    # result 1 / inf is the correct 0; torch, jax, cupy and ndonnx do that silently.
    return 1 / (1 + xp.exp(-x))


def _sigmoid_direct_quiet(x: Any, xp: ModuleType) -> Any:
    # The same where NumPy computes eagerly and would warn on the overflow. The
    # guard costs about 2.7 us a call (measured on 50-wide vectors: 7.7 us
    # against 5.0 us unguarded) and spans only this call.
    with np.errstate(over="ignore"):
        return 1 / (1 + xp.exp(-x))


def _sigmoid_native(x: Any, xp: ModuleType) -> Any:
    # The namespace's own sigmoid (torch): one kernel, the book formula's values.
    return xp.sigmoid(x)


def _sigmoid_stable(x: Any, xp: ModuleType) -> Any:
    # exp(-|x|) never overflows; pick 1 / (1 + e) or e / (1 + e) by the sign.
    e = xp.exp(-xp.abs(x))
    r = 1 / (1 + e)
    return xp.where(x >= 0, r, e * r)


def sigmoid_kernel_for(xp: ModuleType) -> Callable[[Any, ModuleType], Any]:
    """Pick the sigmoid formula for a namespace (once per network, not per call).

    The backend table's ``overflow`` fact decides. The book's 4-operation
    formula ``1 / (1 + exp(-x))`` is used where overflow is silent (jax,
    cupy, ndonnx; torch's own ``sigmoid``, which gives the same values in one
    kernel, where the table's ``native_sigmoid`` says so) or can be silenced for the call (numpy,
    array_api_strict); lazy or unknown namespaces (dask, others), where a
    warning would surface later, outside any guard, get the 8-operation
    ``exp(-|x|)`` form, which never overflows. What each gives in the far
    negative tail is documented in :func:`sigmoid`.

    Examples
    --------
    >>> import array_api_strict
    >>> sigmoid_kernel_for(array_api_strict).__name__
    '_sigmoid_direct_quiet'
    """
    row = facts_of_namespace(xp)
    overflow = "warns-lazily" if row is None else row.overflow
    if overflow == "silent":
        return _sigmoid_native if row is not None and row.native_sigmoid else _sigmoid_direct
    if overflow == "warns":
        return _sigmoid_direct_quiet
    return _sigmoid_stable


def sigmoid_kernel(x: Any, xp: ModuleType) -> Any:
    """Sigmoid of a real floating array ``x`` of namespace ``xp``, no checks."""
    return sigmoid_kernel_for(xp)(x, xp)


def relu_kernel(x: Any, xp: ModuleType) -> Any:
    """ReLU of a real numeric array ``x`` of namespace ``xp``, no checks.

    The zero is a Python scalar, which keeps ``x``'s dtype and creates no
    array: an array created for it would land on the library's default device
    (JAX makes ``zeros(device=d)`` on its default device and then copies it
    to ``d``; CuPy on its current device; a dask array of CuPy chunks would
    get a NumPy chunk).
    """
    return xp.maximum(x, 0)


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
    with array_device_scope(x):
        return xp.astype(x > 0, default["integral"])


def sigmoid(x: Any) -> Any:
    """Logistic sigmoid ``1 / (1 + exp(-x))``, without overflow warnings.

    Exact 0 and 1 in the limits (``sigmoid(-1e4) == 0``, ``sigmoid(1e4) == 1``)
    in float16, float32 and float64, with no RuntimeWarning, on every backend.

    Precision in the far negative tail depends on the backend (measured; the
    thresholds are for float32, float64 in brackets):

    - Everywhere, results that are normal floating numbers (``x`` above
      ``log(tiny)``: -87.34 [-708.40]) have full relative precision.
    - numpy, array_api_strict, torch, cupy, ndonnx compute the book's formula:
      full relative precision down to -88.72 [-709.78], where ``exp(-x)``
      overflows; below that exactly 0.
    - jax computes the same formula but XLA flushes subnormal results to zero:
      exactly 0 below -87.34 [-708.40]. (float16 is not flushed.)
    - dask computes ``exp(-|x|)`` forms, which never overflow: subnormal
      results down to -103.97 [-745.13], each within one subnormal step
      (1.4e-45 [4.9e-324]) of the true value, and 0 below.

    ndonnx evaluates with onnxruntime, whose float64 ``exp`` rounds
    differently in the vectorised body and the tail of an array: equal inputs
    can give results one unit in the last place apart, so there sigmoid is
    monotone to within one unit in the last place.

    In float16 the book's formula gives 0 below -11.09, where ``exp(-x)``
    overflows (float16 subnormals start at -9.70).

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
    >>> sigmoid(xp.asarray([-1e4, 1e4], dtype=xp.float32))
    Array([0., 1.], dtype=array_api_strict.float32)
    """
    x, xp = as_array(x, "sigmoid")
    with array_device_scope(x):
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
    with array_device_scope(x):
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
    with array_device_scope(x):
        return softmax_kernel(x, xp, axis)
