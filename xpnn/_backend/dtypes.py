"""Floating dtypes: names, the namespace's dtype objects, JAX's 64-bit mode."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ..errors import BackendError
from .table import facts_of_namespace

__all__ = ["FLOAT_DTYPES", "dtype_name", "resolve_dtype"]

#: Floating dtypes xpnn computes in; float16 is outside the array API standard
#: but numpy, cupy, torch, jax and ndonnx have it.
FLOAT_DTYPES = ("float16", "float32", "float64")


def dtype_name(xp: ModuleType, dtype: Any) -> str:
    """Return the name (``"float32"``, ...) of a floating dtype name or object.

    Raises
    ------
    BackendError
        If ``dtype`` is not float16, float32 or float64.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> dtype_name(xp, xp.float64)
    'float64'
    """
    if isinstance(dtype, str):
        if dtype in FLOAT_DTYPES:
            return dtype
        raise BackendError(f"unknown dtype {dtype!r}; choose one of: {', '.join(FLOAT_DTYPES)}")
    for name in FLOAT_DTYPES:
        if getattr(xp, name, None) == dtype:
            return name
    raise BackendError(
        f"dtype {dtype!r} is not a floating dtype xpnn computes in; "
        f"choose one of: {', '.join(FLOAT_DTYPES)}"
    )


def resolve_dtype(xp: ModuleType, dtype: Any) -> Any:
    """Return the namespace's dtype object for a floating dtype name or object.

    Parameters
    ----------
    xp : module
        Array namespace.
    dtype : str or dtype
        ``"float16"``, ``"float32"`` or ``"float64"``, or the namespace's dtype.

    Raises
    ------
    BackendError
        If the namespace does not have that dtype (``float16`` on
        array_api_strict; ``float64`` on jax without 64-bit mode).

    Examples
    --------
    >>> import array_api_strict as xp
    >>> resolve_dtype(xp, "float32")
    array_api_strict.float32
    """
    name = dtype_name(xp, dtype)
    row = facts_of_namespace(xp)
    backend = row.name if row is not None else xp.__name__
    found = getattr(xp, name, None)
    if found is None:
        raise BackendError(f"backend {backend!r} has no dtype {name!r}")
    if name == "float64" and backend == "jax":
        import jax

        read: Any = jax.config.read
        if not read("jax_enable_x64"):
            raise BackendError(
                "dtype 'float64' on backend 'jax' needs 64-bit mode: set "
                "JAX_ENABLE_X64=1 or call jax.config.update('jax_enable_x64', True)"
            )
    return found
