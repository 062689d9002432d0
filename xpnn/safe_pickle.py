"""Reading the book's ``sample_weight.pkl`` without ever running its code.

``pickle.load`` calls whatever the file names, so a hostile ``.pkl`` runs code
the moment it is loaded. :func:`load_weight_pickle` reads it in two passes.
First the opcodes are walked without running anything (``pickletools.genops``):
opcodes a weights file never needs (INST, OBJ, persistent ids, the extension
registry, out-of-band buffers) are refused, memo indices and frame sizes may
not exceed the file size (a tiny file must not make the unpickler allocate
gigabytes), and STOP must be the last byte. Then an unpickler whose
``find_class`` admits an exact allowlist builds the result: NumPy's array
reconstruction (``_reconstruct``, ``ndarray``, ``dtype``, ``_frombuffer``, under
both the ``numpy.core`` and ``numpy._core`` spellings) and ``_codecs.encode``
restricted to latin-1 (how protocol 2 stores bytes). Anything else, object or
structured dtypes and ndarray subclasses are refused with
:class:`xpnn.WeightsError` before anything is called.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import pickletools
from pathlib import Path
from typing import Any

import numpy as np

from .errors import WeightsError

__all__ = ["load_weight_pickle"]

#: Largest pickle read (the book's is 182 kB).
MAX_PICKLE_BYTES = 1 << 28


def _safe_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if not isinstance(spec, str):
        raise WeightsError(f"refused dtype specification {spec!r} (only simple codes)")
    dtype = np.dtype(spec)
    if dtype.kind not in "biuf" or dtype.hasobject or dtype.fields is not None:
        raise WeightsError(f"refused dtype {dtype} (only numeric arrays)")
    return dtype


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` in a pickle: accepted by ``_reconstruct``, not callable."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayToken()


def _safe_reconstruct(cls: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    if cls is not _NDARRAY:
        raise WeightsError(f"refused array subclass {cls!r}")
    return np.ndarray.__new__(np.ndarray, (0,), np.uint8)


def _safe_frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if not isinstance(buffer, (bytes, bytearray, pickle.PickleBuffer)):
        raise WeightsError("refused array buffer of an unexpected type")
    dtype = _safe_dtype(dtype.str if isinstance(dtype, np.dtype) else dtype)
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise WeightsError(f"refused array shape {shape!r}")
    if order not in ("C", "F"):
        raise WeightsError(f"refused array order {order!r}")
    array = np.frombuffer(bytes(buffer), dtype=dtype)
    try:
        return array.reshape(shape, order=order).copy()
    except ValueError as err:
        raise WeightsError(f"array data does not fit its shape: {err}") from None


def _latin1_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding != "latin1":
        raise WeightsError("refused _codecs.encode other than of a string to latin1")
    return codecs.encode(text, "latin1")


_RECONSTRUCT_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_FROMBUFFER_MODULES = ("numpy.core.numeric", "numpy._core.numeric")

_ALLOWED: dict[tuple[str, str], Any] = {
    **{(m, "_reconstruct"): _safe_reconstruct for m in _RECONSTRUCT_MODULES},
    **{(m, "_frombuffer"): _safe_frombuffer for m in _FROMBUFFER_MODULES},
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _safe_dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _AllowlistUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[module, name]
        except (KeyError, TypeError):
            raise WeightsError(f"refused to load {module}.{name} from a pickle") from None

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError("refused a persistent id in a pickle")


# Opcodes a weights pickle never needs: they run code by name outside
# find_class (INST and OBJ also go through it, but are refused early),
# reach for persistent ids, the extension registry or out-of-band buffers.
_FORBIDDEN_OPCODES = frozenset(
    {"INST", "OBJ", "PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4", "NEXT_BUFFER", "READONLY_BUFFER"}
)
# Opcodes whose argument sizes memory the unpickler allocates up front.
_SIZED_OPCODES = frozenset(
    {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET", "FRAME"}
)


def _prescan(data: bytes) -> None:
    """Walk the opcodes without running anything; refuse what the allowlist never needs.

    Memo indices and frame sizes are bounded by the file size, so a tiny file
    cannot make the unpickler allocate gigabytes; the STOP opcode must be the
    last byte.
    """
    stream = io.BytesIO(data)
    try:
        for opcode, arg, _ in pickletools.genops(stream):
            if opcode.name in _FORBIDDEN_OPCODES:
                raise WeightsError(f"refused pickle opcode {opcode.name}")
            if opcode.name in _SIZED_OPCODES and isinstance(arg, int) and arg > len(data):
                raise WeightsError(
                    f"pickle opcode {opcode.name} argument {arg} exceeds the file size"
                )
    except WeightsError:
        raise
    except Exception as err:  # ValueError for truncated or unknown opcodes
        raise WeightsError(f"malformed pickle ({type(err).__name__}: {err})") from None
    if stream.tell() != len(data):
        raise WeightsError(
            f"{len(data) - stream.tell()} trailing bytes after the pickle's STOP opcode"
        )


def _check_result(result: Any, path: Path) -> dict[str, np.ndarray]:
    if not isinstance(result, dict):
        raise WeightsError(f"{path}: the pickle holds a {type(result).__name__}, not a dict")
    for key, value in result.items():
        if not isinstance(key, str):
            raise WeightsError(f"{path}: key {key!r} is not a string")
        if type(value) is not np.ndarray:
            raise WeightsError(f"{path}: {key} is a {type(value).__name__}, not a NumPy array")
        if value.dtype.kind != "f":
            raise WeightsError(f"{path}: {key} has dtype {value.dtype}, not real floating")
    # C-ordered arrays: the book's W matrices unpickle as strided views, which are copied.
    return {key: np.ascontiguousarray(value) for key, value in result.items()}


def load_weight_pickle(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a pickled ``{name: float ndarray}`` dict without running its code.

    Raises
    ------
    WeightsError
        Any name outside the allowlist, a persistent id, non-numeric or
        subclassed arrays, data after the STOP opcode, a result that is not a
        dict of str to real-float arrays, or a malformed pickle.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PICKLE_BYTES + 1)
    except OSError as err:
        raise WeightsError(f"{path}: cannot read ({err})") from None
    if len(data) > MAX_PICKLE_BYTES:
        raise WeightsError(f"{path}: over the {MAX_PICKLE_BYTES}-byte limit for a weights pickle")
    try:
        _prescan(data)
        result = _AllowlistUnpickler(io.BytesIO(data)).load()
    except WeightsError as err:
        raise WeightsError(f"{path}: {err}") from None
    except Exception as err:  # malformed pickles raise many kinds of errors
        raise WeightsError(f"{path}: malformed pickle ({type(err).__name__}: {err})") from None
    return _check_result(result, path)
