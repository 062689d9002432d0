"""Backend and device selection, and conversion back to NumPy: xpnn's public backend API.

The facts about each library live in one table (:mod:`xpnn._backend.table`);
devices, dtypes and moving arrays each have their module in
:mod:`xpnn._backend`. This module names them to users: :func:`namespace`,
:func:`to_numpy` and :data:`BACKENDS`.

Backends are imported lazily: ``import xpnn`` imports neither torch, jax,
dask, cupy nor ndonnx, and not even ``array_api_compat.numpy``.
"""

from __future__ import annotations

import importlib
import os
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any

from ._backend.devices import array_device_scope, resolve_device
from ._backend.dtypes import FLOAT_DTYPES, dtype_name, resolve_dtype
from ._backend.moving import to_numpy
from ._backend.table import BACKENDS, facts, facts_of_array, facts_of_namespace
from .errors import BackendError

__all__ = [
    "BACKENDS",
    "FLOAT_DTYPES",
    "backend_name",
    "backend_of",
    "device_scope",
    "dtype_name",
    "namespace",
    "parse_device",
    "resolve_dtype",
    "to_numpy",
]

_ENV_BACKEND = "XPNN_BACKEND"
_ALIASES = {"strict": "array_api_strict", "onnx": "ndonnx"}


def backend_name(backend: str | None = None) -> str:
    """Return the canonical backend name for ``backend``.

    Parameters
    ----------
    backend : str or None
        A name from :data:`BACKENDS` (case-insensitive; ``strict`` and
        ``array-api-strict`` also name ``array_api_strict``). ``None`` reads the
        ``XPNN_BACKEND`` environment variable and falls back to ``"numpy"``.

    Returns
    -------
    str
        One of :data:`BACKENDS`.

    Raises
    ------
    BackendError
        If the name is not a known backend.

    Examples
    --------
    >>> backend_name("Torch")
    'torch'
    >>> backend_name("array-api-strict")
    'array_api_strict'
    """
    if backend is None:
        backend = os.environ.get(_ENV_BACKEND) or "numpy"
    if not isinstance(backend, str):
        raise BackendError(
            f"backend must be a name (str), got {type(backend).__name__}; "
            f"choose one of: {', '.join(BACKENDS)}"
        )
    name = backend.strip().lower().replace("-", "_")
    name = _ALIASES.get(name, name)
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    return name


def _import_backend(name: str) -> ModuleType:
    row = facts(name)
    try:
        importlib.import_module(row.library)
    except ImportError as err:
        raise BackendError(
            f"backend {name!r} is not installed ({err}); install it with: {row.install}"
        ) from None
    return importlib.import_module(row.namespace_module)


def namespace(backend: str | None = None, device: Any = None) -> tuple[ModuleType, Any]:
    """Return the array namespace and canonical device object for a backend.

    Parameters
    ----------
    backend : str or None
        One of :data:`BACKENDS`. ``None`` reads ``XPNN_BACKEND`` and falls back
        to ``"numpy"``.
    device : str, device object or None
        A device name (``"cpu"``, ``"cuda"``, ``"cuda:N"``; ``"cpu:N"`` on
        jax; ``"device1"``, ``"device2"`` on array_api_strict), or a native
        device object of the backend (``torch.device``, a ``jax.Device``, a
        ``cupy.cuda.Device``, an ``array_api_strict.Device``). ``None`` is
        the CPU on every backend except cupy, whose default is ``cuda:0``.
        Every accepted device is normalised to one object per device
        (``torch.device("cuda")`` becomes ``torch.device("cuda", 0)``), so
        devices compare equal exactly when they are the same.

    Returns
    -------
    xp : module
        The array-API namespace (``array_api_compat.numpy``, ``jax.numpy``, ...).
    device : object
        The device object to pass as ``device=`` when creating arrays.

    Raises
    ------
    BackendError
        Unknown backend, backend not installed, no CUDA device visible, or a
        device the backend does not have (including objects that are not
        devices of that backend). The message is one line.

    Examples
    --------
    >>> xp, device = namespace("numpy")
    >>> xp.__name__, device
    ('array_api_compat.numpy', 'cpu')
    >>> namespace("numpy", "cuda")
    Traceback (most recent call last):
    ...
    xpnn.errors.BackendError: backend 'numpy' runs on the CPU only, but device 'cuda' \
was asked for; use backend 'cupy' or 'torch' for CUDA
    """
    name = backend_name(backend)
    xp = _import_backend(name)
    return xp, resolve_device(name, device)


def backend_of(x: Any) -> str:
    """Return the backend name of an array or namespace.

    Raises
    ------
    TypeError
        ``x`` is neither an array nor a namespace of a known backend.

    Examples
    --------
    >>> import array_api_strict
    >>> backend_of(array_api_strict.asarray([1.0]))
    'array_api_strict'
    """
    row = facts_of_namespace(x) if isinstance(x, ModuleType) else facts_of_array(x)
    if row is None:
        raise TypeError(
            f"expected an array of one of {', '.join(BACKENDS)}, got {type(x).__name__}"
        )
    return row.name


def device_scope(x: Any) -> AbstractContextManager[Any]:
    """The context in which computation for array ``x``'s device must run.

    CuPy computes on its current device, so this is ``x.device`` there; a
    no-op for every other backend.

    Examples
    --------
    >>> import numpy as np
    >>> with device_scope(np.zeros(2)):
    ...     pass
    """
    return array_device_scope(x)


def parse_device(text: str) -> tuple[str, int | None]:
    """Split a device name into its kind and index: the one device-string parser.

    Examples
    --------
    >>> parse_device(" CUDA:1 "), parse_device("gpu"), parse_device("device1")
    (('cuda', 1), ('cuda', None), ('device1', None))
    """
    kind, sep, index = text.strip().lower().partition(":")
    kind = "cuda" if kind == "gpu" else kind
    if sep and index.isdigit():
        return kind, int(index)
    return (text.strip().lower(), None) if sep else (kind, None)
