"""The errors xpnn raises on purpose, and the input checks the modules share.

Catching :class:`XpnnError` tells a user's mistake from a bug; all but it are
also ``ValueError``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

__all__ = ["BackendError", "DataError", "OnnxError", "WeightsError", "XpnnError"]


class XpnnError(Exception):
    """Base class of every error xpnn raises on purpose."""


class BackendError(XpnnError, ValueError):
    """A backend, device or dtype that is unknown, missing or unusable here."""


class DataError(XpnnError, ValueError):
    """A data file that is missing, corrupt or not what it claims to be."""


class WeightsError(XpnnError, ValueError):
    """A weights or model file that is malformed, unsafe or inconsistent."""


class OnnxError(XpnnError, ValueError):
    """A network that cannot be exported, or an ONNX model that cannot be used."""


# The checks every module shares (internal: not part of the API).


def first_line(err: BaseException) -> str:
    """The first line of an error's message (its type's name if it has none)."""
    return (str(err).strip() or type(err).__name__).splitlines()[0]


def check_choice(value: object, options: Sequence[str], what: str) -> str:
    """``value`` if it is one of ``options``, else a one-line ``ValueError`` listing them."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"unknown {what} {value!r}; choose one of: {', '.join(options)}")
    return value


def positive_int(value: object, what: str) -> int:
    """``value`` as an ``int`` if it is an integer of at least 1 (NumPy's too, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)
