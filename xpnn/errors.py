"""Exception types raised by xpnn.

Every error that xpnn raises on purpose is one of these, so that callers (and
``scripts/eval.py``) can tell a user mistake from a bug with a single ``except``.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "DataError",
    "OnnxError",
    "WeightsError",
    "XpnnError",
    "first_line",
]


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


class OnnxError(XpnnError, ValueError):
    """A network cannot be exported to ONNX, or an ONNX model cannot be used.

    Raised for a network without a graph form, a model file that cannot be
    written or read, and a model whose input or output does not fit.
    """


def first_line(err: BaseException) -> str:
    """The first line of an error's message (its type's name if the message is empty).

    For one-line error messages that quote another library's exception.

    Examples
    --------
    >>> first_line(ValueError("bad model\\ndetails follow"))
    'bad model'
    >>> first_line(KeyError())
    'KeyError'
    """
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
