"""Exception types raised by xpnn.

Every error that xpnn raises on purpose is one of these, so that callers (and
``scripts/eval.py``) can tell a user mistake from a bug with a single ``except``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

__all__ = [
    "BackendError",
    "DataError",
    "OnnxError",
    "WeightsError",
    "XpnnError",
    "check_choice",
    "first_line",
    "positive_int",
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


def check_choice(value: object, options: Sequence[str], what: str) -> str:
    """Return ``value`` if it is one of ``options``, else raise a one-line ``ValueError``.

    Examples
    --------
    >>> check_choice("relu", ("sigmoid", "relu"), "activation")
    'relu'
    >>> check_choice("gelu", ("sigmoid", "relu"), "activation")
    Traceback (most recent call last):
    ...
    ValueError: unknown activation 'gelu'; choose one of: sigmoid, relu
    """
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"unknown {what} {value!r}; choose one of: {', '.join(options)}")
    return value


def positive_int(value: object, what: str) -> int:
    """Return ``value`` as an ``int`` if it is an integer of at least 1 (not a bool).

    Examples
    --------
    >>> import numpy as np
    >>> positive_int(np.int64(4), "batch_size")
    4
    >>> positive_int(0, "batch_size")
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be a positive integer, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)
