"""Exception types raised by xpnn.

Every error that xpnn raises on purpose is one of these, so that callers (and
``scripts/eval.py``) can tell a user mistake from a bug with a single ``except``.
"""

from __future__ import annotations

__all__ = ["BackendError", "DataError", "WeightsError", "XpnnError"]


class XpnnError(Exception):
    """Base class of every error xpnn raises on purpose."""


class BackendError(XpnnError, ValueError):
    """A backend or device was asked for that is unknown, missing or unusable.

    Examples
    --------
    >>> import xpnn
    >>> try:
    ...     xpnn.namespace("nunpy")
    ... except xpnn.BackendError as err:
    ...     print(err)  # doctest: +ELLIPSIS
    unknown backend 'nunpy'; choose one of: numpy, cupy, torch, jax, dask, array_api_strict, ndonnx
    """


class DataError(XpnnError, ValueError):
    """A data file (IDX, MNIST) is missing, corrupt or not what it claims to be."""


class WeightsError(XpnnError, ValueError):
    """A weights file is malformed, unsafe or describes an inconsistent network."""
