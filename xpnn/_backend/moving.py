"""Moving arrays between libraries and devices: DLPack first, host memory last.

An array of another library goes to a backend through ``from_dlpack`` (with
``device=``), which shares memory where both libraries can: measured on the
CPU, NumPy to torch, torch to NumPy, JAX to NumPy, JAX to torch, and NumPy or
torch to array-api-strict share memory; NumPy and torch to JAX share memory
when the buffer is 64-byte aligned (torch's allocations always are, NumPy's
large ones often are not) and copy otherwise. On a GPU, torch, CuPy and JAX
arrays on the same device move without a copy.

Host memory is the fallback where DLPack cannot carry the array: dask and
ndonnx (no DLPack), a GPU array going to a CPU library, NumPy arrays that
are not C-ordered (torch aborts the process on negative strides, JAX refuses
non-compact strides and computes wrong values with Fortran order on a
non-default device), non-native byte order, ``longdouble``, and dtypes the target does not
have (float16 on array-api-strict; 64-bit types on JAX without 64-bit mode),
which are cast on the host to the dtype the caller will compute in.

:func:`to_numpy` is the way out to NumPy: it always returns a new array that
owns its memory.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from .devices import device_scope
from .table import BackendFacts, facts, facts_of_array

__all__ = ["check_array_type", "host_view", "move", "to_numpy"]

# Dtype kinds and sizes DLPack carries (bool, ints, IEEE floats).
_DLPACK_KINDS = "biuf"
_DLPACK_SIZES = (1, 2, 4, 8)
_MOVE_ERRORS = (BufferError, TypeError, ValueError, RuntimeError, NotImplementedError)


def check_array_type(x: Any, caller: str) -> None:
    """Refuse NumPy subclasses whose semantics xpnn cannot keep.

    ``numpy.matrix`` (always 2-D, ``*`` is a matrix product) and masked arrays
    (the mask would be dropped silently) raise :class:`TypeError`; memory maps
    and other subclasses are plain arrays for xpnn.

    Examples
    --------
    >>> import numpy as np
    >>> check_array_type(np.ma.masked_array([1.0, 2.0], mask=[0, 1]), "forward")
    Traceback (most recent call last):
    ...
    TypeError: forward() does not accept masked arrays (the mask would be lost); \
pass x.filled(value) or x.compressed()
    """
    if isinstance(x, np.matrix):
        raise TypeError(f"{caller}() does not accept numpy.matrix; pass numpy.asarray(x)")
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{caller}() does not accept masked arrays (the mask would be lost); "
            "pass x.filled(value) or x.compressed()"
        )


def host_view(x: Any) -> tuple[np.ndarray, bool]:
    """Return ``(array, fresh)``: ``x`` in host memory, and whether it is a new copy.

    The array may share memory with ``x`` (and be read-only) when ``fresh``
    is False.

    Raises
    ------
    TypeError
        If ``x`` is not an array of a known backend.
    ValueError
        If ``x`` is a lazy ndonnx array, which has no values.
    """
    if isinstance(x, np.ndarray):
        check_array_type(x, "to_numpy")
        return np.asarray(x), False
    if isinstance(x, np.generic):
        return np.asarray(x), True
    row = facts_of_array(x)
    if row is None:
        raise TypeError(f"expected an array (one of xpnn.BACKENDS), got {type(x).__name__}")
    if row.name == "dask":
        return host_view(x.compute())
    if row.name == "cupy":
        return x.get(), True
    if row.name == "torch":
        on_host = x.device.type == "cpu"
        tensor = x.detach().resolve_conj().resolve_neg().cpu()
        return tensor.numpy(), not on_host
    if row.name == "ndonnx":
        try:
            return np.asarray(x.unwrap_numpy()), False
        except ValueError:
            raise ValueError(
                "a lazy ndonnx array (from ndonnx.argument) has no values; build an "
                "ONNX model with ndonnx.build and run it instead"
            ) from None
    # jax and array_api_strict (any simulated device) export to NumPy through DLPack,
    # sharing memory on the CPU; a GPU array is copied to the host.
    try:
        return np.from_dlpack(x), False
    except _MOVE_ERRORS:
        return np.asarray(x), True


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any backend and device to a new NumPy array on the host.

    The result owns its memory: changing it never changes ``x`` (nor the
    other way round), for every backend, NumPy included. Dask arrays are
    computed; GPU arrays are copied to the host.

    Raises
    ------
    TypeError
        If ``x`` is not an array (a string, dict, None, a list) or is a
        ``numpy.matrix`` or masked array.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> x = xp.asarray([1.0, 2.0], device=xp.Device("device1"))
    >>> to_numpy(x)
    array([1., 2.])
    """
    host, fresh = host_view(x)
    if fresh and host.flags.owndata and host.flags.writeable:
        return host
    return np.array(host, copy=True)


def _dlpack_ready(host: np.ndarray) -> bool:
    """Whether every DLPack importer takes this NumPy array as it is.

    C order only: JAX 0.10 accepts Fortran-ordered buffers, but computes wrong
    values with them on a non-default device (measured: a float64 F-ordered
    array imported on ``cpu:1``, then ``astype`` or ``+ 0``).
    """
    dtype = host.dtype
    return (
        dtype.kind in _DLPACK_KINDS
        and dtype.itemsize in _DLPACK_SIZES
        and dtype.isnative
        and host.flags.c_contiguous
    )


def _has_dtype(target: BackendFacts, xp: ModuleType, dtype: np.dtype[Any]) -> bool:
    if getattr(xp, dtype.name, None) is None:
        return False
    if target.name == "jax" and dtype.itemsize == 8:
        import jax

        read: Any = jax.config.read
        return bool(read("jax_enable_x64"))
    return True


def _host_copy(host: np.ndarray, dtype: str) -> np.ndarray:
    """A C-ordered, native host copy of ``host``, cast to ``dtype`` unless it is carried."""
    if host.dtype.kind in _DLPACK_KINDS and host.dtype.itemsize in _DLPACK_SIZES:
        return np.ascontiguousarray(host, dtype=host.dtype.newbyteorder("="))
    return np.ascontiguousarray(host, dtype=dtype)


def _from_dlpack(xp: ModuleType, x: Any, device: Any) -> Any:
    try:
        return xp.from_dlpack(x, device=device)
    except TypeError:  # a library without the standard's device= keyword
        return array_api_compat.to_device(xp.from_dlpack(x), device)


def _through_host(host: np.ndarray, xp: ModuleType, device: Any) -> Any:
    return xp.asarray(host, device=device)


def _same_library(target: BackendFacts, x: Any, device: Any) -> Any:
    if target.name == "cupy":
        cupy = importlib.import_module("cupy")
        with device:
            return cupy.array(x, copy=True)
    return array_api_compat.to_device(x, device)


def move(x: Any, target: BackendFacts, xp: ModuleType, device: Any, dtype: str) -> Any:
    """Return ``x`` as an array of backend ``target`` on ``device``.

    Parameters
    ----------
    x : array
        An array of any backend (NumPy included), or a NumPy scalar.
    target : BackendFacts
        The backend to move to; ``xp`` is its namespace, ``device`` its
        canonical device object.
    dtype : str
        The floating dtype the caller computes in: dtypes the target lacks
        are cast to it on the host. Other dtypes are kept (the caller casts).

    Raises
    ------
    TypeError
        If ``x`` is not an array, or is a ``numpy.matrix`` or masked array.

    Examples
    --------
    >>> import numpy as np
    >>> import array_api_strict as xps
    >>> from xpnn._backend.table import facts
    >>> y = move(np.arange(3.0), facts("array_api_strict"), xps, xps.Device("device1"), "float64")
    >>> y.device
    array_api_strict.Device('device1')
    """
    if isinstance(x, np.generic):
        x = np.asarray(x)
    source = facts_of_array(x)
    if source is None:
        raise TypeError(f"expected an array (one of xpnn.BACKENDS), got {type(x).__name__}")
    if source is target:
        if not target.many_devices or array_api_compat.device(x) == device:
            return x
        return _same_library(target, x, device)
    if source is not None and source.name == "array_api_strict":
        x = np.from_dlpack(x)  # the NumPy array underneath, shared
        source = facts("numpy")
    with device_scope(target.name, device):
        if isinstance(x, np.ndarray):
            check_array_type(x, "move")
            if not (_dlpack_ready(x) and _has_dtype(target, xp, x.dtype)):
                x = _host_copy(x, dtype)
                if not _has_dtype(target, xp, x.dtype):
                    x = x.astype(dtype)
        if source.name == "torch" and not x.is_contiguous():
            x = x.contiguous()  # C order for every importer (see _dlpack_ready)
        if source.name in target.dlpack_from:
            try:
                return _from_dlpack(xp, x, device)
            except _MOVE_ERRORS:
                pass
        host, _ = host_view(x)
        if not (_dlpack_ready(host) and _has_dtype(target, xp, host.dtype)):
            host = _host_copy(host, dtype)
            if not _has_dtype(target, xp, host.dtype):
                host = host.astype(dtype)
        return _through_host(host, xp, device)
