"""Arrays in and out: inputs checked, moved between libraries and devices, parameters to the host.

``from_dlpack(x, device=...)`` shares memory where both libraries can; a copy
through host memory serves the rest (dask and ndonnx, GPU to a CPU library, a
dtype the device lacks). Only C-ordered native arrays go through DLPack (torch
aborts on negative strides; JAX 0.10 miscomputes Fortran-ordered imports on a
non-default device), and torch's lazy negation and conjugation are resolved
first (DLPack would export the memory without them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import array_api_compat as compat
import numpy as np

__all__ = ["as_array", "check_array_type", "dtype_of", "host_layers", "move", "to_numpy"]

Names = tuple[str, ...]

# What a refused DLPack import raises (AttributeError: a namespace without from_dlpack).
_REFUSED = (BufferError, TypeError, ValueError, RuntimeError, NotImplementedError, AttributeError)


def check_array_type(x: Any, caller: str) -> None:
    """Refuse ``numpy.matrix`` and masked arrays, whose meaning xpnn would lose (``TypeError``)."""
    if isinstance(x, np.matrix):
        raise TypeError(f"{caller}() does not accept numpy.matrix; pass numpy.asarray(x)")
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(f"{caller}() does not accept masked arrays (the mask would be lost)")


def as_array(x: Any, caller: str, real: bool = True) -> tuple[Any, ModuleType]:
    """``(x, xp)``: ``x`` as an array (lists and numbers with NumPy) of real numbers, and its
    namespace; anything else is a ``TypeError`` naming ``caller``."""
    if isinstance(x, (list, tuple, int, float, bool)):
        x = np.asarray(x)
    check_array_type(x, caller)
    try:
        xp = compat.array_namespace(x)
    except TypeError:
        raise TypeError(f"{caller}() expects an array or numbers, got {type(x).__name__}") from None
    if real and not xp.isdtype(x.dtype, ("real floating", "integral", "bool")):
        raise TypeError(f"{caller}() needs real numbers, got an array of dtype {x.dtype}")
    return x, xp


def _resolved(x: Any) -> Any:
    """A torch tensor without pending negation or conjugation, C-contiguous; others as they are."""
    if compat.is_torch_array(x):
        x = x.detach().resolve_conj().resolve_neg()
        return x if x.is_contiguous() else x.contiguous()
    return x


def _host(x: Any) -> np.ndarray:
    """``x`` in host memory, possibly sharing memory with it."""
    if isinstance(x, (np.ndarray, np.generic)):
        check_array_type(x, "to_numpy")
        return np.asarray(x)
    if compat.is_dask_array(x):
        return _host(x.compute())  # type: ignore[no-untyped-call]
    if compat.is_cupy_array(x):
        return x.get()  # type: ignore[no-any-return]
    if compat.is_torch_array(x):
        return _resolved(x).cpu().numpy()  # type: ignore[no-any-return]
    if type(x).__module__.startswith("ndonnx"):
        try:
            return np.asarray(x.unwrap_numpy())
        except ValueError:
            raise ValueError("a lazy ndonnx array has no values; run its ONNX model") from None
    if not compat.is_array_api_obj(x):
        raise TypeError(f"expected an array, got {type(x).__name__}")
    try:  # JAX and array-api-strict export to NumPy through DLPack; GPU arrays copy
        return np.from_dlpack(x)
    except _REFUSED:
        return np.asarray(x)


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any backend and device into a new NumPy array that owns its memory.

    Dask arrays are computed, GPU arrays copied to the host; anything but an array (and
    ``numpy.matrix``, masked arrays) is a ``TypeError``.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> to_numpy(xp.asarray([1.0, 2.0], device=xp.Device("device1")))
    array([1., 2.])
    """
    return np.array(_host(x), copy=True)


def _dlpack_ready(host: np.ndarray, supported: Names) -> bool:
    """Whether the target can take ``host`` as it is: native, C-ordered, of a dtype it has."""
    native = host.dtype.kind in "biuf" and host.dtype.isnative and host.flags.c_contiguous
    return native and host.dtype.name in supported


def _host_copy(host: np.ndarray, supported: Names, dtype: str) -> np.ndarray:
    """A C-ordered, native copy; cast to ``dtype`` where the target lacks the array's dtype."""
    keep = host.dtype.name in supported
    return np.ascontiguousarray(host, dtype=host.dtype.newbyteorder("=") if keep else dtype)


def _from_dlpack(xp: ModuleType, x: Any, device: Any) -> Any:
    return xp.from_dlpack(x, device=device)


def _through_host(x: Any, xp: ModuleType, device: Any, supported: Names, dtype: str) -> Any:
    host = _host(x)
    if not _dlpack_ready(host, supported):
        host = _host_copy(host, supported, dtype)
    return xp.asarray(host, device=device)


def move(x: Any, xp: ModuleType, device: Any, supported: Names, dtype: str) -> Any:
    """``x`` (an array of any backend) as an array of ``xp`` on ``device``.

    ``supported`` names the dtypes the device has; an array of another dtype is cast
    to ``dtype`` (the caller's compute dtype) on the host.
    """
    if isinstance(x, np.generic):
        x = np.asarray(x)
    check_array_type(x, "move")
    if compat.array_namespace(x) is xp:  # the same library, another device
        if compat.is_cupy_array(x):  # CuPy copies to its current device
            with device:
                return xp.asarray(x, copy=True)
        return compat.to_device(x, device)
    source = _resolved(x)
    if isinstance(source, np.ndarray) and not _dlpack_ready(source, supported):
        source = _host_copy(source, supported, dtype)
    if str(source.dtype).rsplit(".", 1)[-1] in supported:
        try:
            return _from_dlpack(xp, source, device)
        except _REFUSED:
            pass
    return _through_host(source, xp, device, supported, dtype)


_PARAM = re.compile(r"([Wb])([1-9][0-9]*)")


def host_layers(params: Mapping[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Check ``{W1, b1, ..., Wn, bn}``; return own C-ordered host copies as ``(W, b)`` pairs."""
    if not isinstance(params, Mapping):
        raise TypeError(f"network parameters must be a mapping, got {type(params).__name__}")
    found: dict[int, set[str]] = {}
    for key in params:
        match = _PARAM.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            raise ValueError(f"unexpected network parameter {key!r}; expected W1, b1, ..., Wn, bn")
        found.setdefault(int(match.group(2)), set()).add(match.group(1))
    if not found or sorted(found) != list(range(1, len(found) + 1)):
        raise ValueError(
            f"network parameters must be numbered W1, b1 ... Wn, bn without gaps: {sorted(params)}"
        )
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    for i in sorted(found):
        if found[i] != {"W", "b"}:
            raise ValueError(f"network parameter {({'W', 'b'} - found[i]).pop()}{i} is missing")
        w, b = (_own_copy(params[f"{k}{i}"], f"{k}{i}") for k in "Wb")
        if w.ndim != 2 or b.ndim != 1:
            raise ValueError(f"W{i} must be 2-D and b{i} 1-D, got shapes {w.shape} and {b.shape}")
        if b.shape[0] != w.shape[1]:
            raise ValueError(f"b{i} has {b.shape[0]} entries but W{i} has {w.shape[1]} columns")
        if layers and layers[-1][0].shape[1] != w.shape[0]:
            raise ValueError(
                f"W{i} has {w.shape[0]} rows but layer {i - 1} has {layers[-1][0].shape[1]} outputs"
            )
        layers.append((w, b))
    return layers


def _own_copy(value: Any, name: str) -> np.ndarray:  # host-side weight preparation
    host = np.array(value) if isinstance(value, (list, tuple, int, float)) else to_numpy(value)
    if host.dtype.kind not in "fiu":
        raise TypeError(f"network parameter {name} must be real numbers, got dtype {host.dtype}")
    return np.ascontiguousarray(host, dtype=host.dtype.newbyteorder("="))


def dtype_of(layers: list[tuple[np.ndarray, np.ndarray]]) -> str:
    names = {arr.dtype.name for pair in layers for arr in pair}
    only = names.pop() if len(names) == 1 else ""
    return only if only in ("float16", "float32", "float64") else "float32"
