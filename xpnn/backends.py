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
from types import ModuleType
from typing import Any

from ._backend.devices import resolve_device
from ._backend.dtypes import FLOAT_DTYPES, dtype_name, resolve_dtype
from ._backend.moving import to_numpy
from ._backend.table import BACKENDS, facts, facts_of_namespace
from .errors import BackendError

__all__ = [
    "BACKENDS",
    "FLOAT_DTYPES",
    "backend_name",
    "backend_of",
    "dtype_name",
    "namespace",
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


def backend_of(xp: ModuleType) -> str:
    """Return the backend name of a namespace (its module name if xpnn does not know it).

    Examples
    --------
    >>> import array_api_strict
    >>> backend_of(array_api_strict)
    'array_api_strict'
    """
    row = facts_of_namespace(xp)
    return xp.__name__ if row is None else row.name
