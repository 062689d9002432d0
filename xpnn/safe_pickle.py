"""Reading the book's ``sample_weight.pkl`` without ever running its code.

``pickle.load`` calls whatever the file names, so a hostile ``.pkl`` runs code
the moment it is loaded. :func:`load_weight_pickle` reads it in two passes.

1. The opcodes are walked without running anything (``pickletools.genops``).
   Only the opcodes a pickled ``{name: ndarray}`` dict needs are admitted (no
   lists, sets, ``INST``/``OBJ``/``NEWOBJ``, persistent ids, the extension
   registry or out-of-band buffers). The walk keeps a running estimate of what
   the unpickler would allocate (stack slots, marks, memo entries, containers,
   strings and the arrays built from them) and refuses the file as soon as
   that estimate passes ``8 x file size + 64 KiB``, or the stack grows deeper
   than a weights dict ever needs (4096 items, 64 marks): a flood of cheap
   container-building opcodes or memo references is refused after a few
   kilobytes, before anything is built. Memo references must name an index
   already stored, the stack must hold exactly the result at ``STOP``, and
   ``STOP`` must be the last byte.
2. An unpickler whose ``find_class`` admits an exact allowlist builds the
   result: NumPy's array reconstruction (``_reconstruct``, ``ndarray``,
   ``dtype``, ``_frombuffer``, under both the ``numpy.core`` (NumPy 1) and
   ``numpy._core`` (NumPy 2) spellings) and ``_codecs.encode`` restricted to
   latin-1 (how protocol 2 stores bytes). None of NumPy's own constructors
   sees the file's arguments: stand-ins record the dtype code, its byte order
   (from the dtype's pickled state) and the array's shape, order and raw
   bytes; each array is then built from a checked dtype with
   ``numpy.frombuffer`` and copied, and its final dtype is checked again.

Anything else (object, structured or flagged dtypes, ndarray subclasses,
data that does not match its shape) is refused with :class:`xpnn.WeightsError`.
"""

from __future__ import annotations

import array
import codecs
import io
import math
import os
import pickle
import pickletools
import re
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ._files import read_at_most
from .errors import WeightsError

__all__ = ["MAX_PICKLE_BYTES", "load_weight_pickle", "loads_weight_pickle"]

#: Largest pickle read (the book's is 182 kB).
MAX_PICKLE_BYTES = 1 << 28

#: The prescan's allocation estimate may not exceed this many times the file size ...
ALLOCATION_FACTOR = 8
#: ... plus this many bytes (small pickles of many tiny arrays need some room).
ALLOCATION_SLACK = 1 << 16
#: Deepest stack and mark stack admitted: ``pickle`` writes dict items in
#: batches of 1000 pairs and NumPy nests its tuples a few levels deep.
MAX_STACK_DEPTH = 4096
MAX_MARK_DEPTH = 64
#: Most opcodes admitted (the book's pickle has 185; about 30 per array).
MAX_OPCODES = 1 << 18

# Simple dtype codes a weights array may have (bool, integers, IEEE floats).
_DTYPE_CODE = re.compile(r"(b1|[iu][1248]|f[248])\Z")
_BYTE_ORDERS: dict[str, Literal["<", ">", "=", "|"]] = {"<": "<", ">": ">", "=": "=", "|": "|"}
_MAX_NDIM = 32


class _DtypeSpec:
    """Stands for ``numpy.dtype(code)``: records the code and, from ``BUILD``, the byte order."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.order = "="
        self.built = False

    def __setstate__(self, state: Any) -> None:
        # NumPy pickles (version, byteorder, subarray, names, fields, elsize,
        # alignment, flags[, metadata]); version 4 adds the metadata.
        if self.built:
            raise WeightsError("refused a dtype whose state is set twice")
        if not isinstance(state, tuple) or len(state) not in (8, 9):
            raise WeightsError("refused a dtype state that is not NumPy's")
        version, order, subarray, names, fields, elsize, alignment, flags = state[:8]
        if (version, len(state)) not in ((3, 8), (4, 9)):
            raise WeightsError(f"refused dtype state version {version!r}")
        if len(state) == 9 and state[8] is not None:
            raise WeightsError("refused a dtype with metadata")
        if not isinstance(order, str) or order not in _BYTE_ORDERS:
            raise WeightsError(f"refused dtype byte order {order!r}")
        if (subarray, names, fields) != (None, None, None):
            raise WeightsError("refused a structured or sub-array dtype")
        if type(flags) is not int or flags != 0:
            # NumPy sets flags for object dtypes (NPY_ITEM_HASOBJECT and friends).
            raise WeightsError(f"refused dtype flags {flags!r} (object or reference dtypes)")
        for name, value in (("size", elsize), ("alignment", alignment)):
            if type(value) is not int or value not in (-1, np.dtype(self.code).itemsize):
                raise WeightsError(f"refused dtype {name} {value!r}")
        self.order = order
        self.built = True

    def dtype(self) -> np.dtype[Any]:
        """The checked dtype this stand-in describes, in its byte order."""
        base = np.dtype(self.code)
        if self.order == "|" and base.itemsize != 1:
            raise WeightsError(f"refused byte order '|' for the {base.itemsize}-byte dtype {base}")
        result = base if self.order == "|" else base.newbyteorder(_BYTE_ORDERS[self.order])
        if (
            result.kind not in "biuf"
            or result.hasobject
            or result.fields is not None
            or result.subdtype is not None
            or result.itemsize != base.itemsize
        ):
            raise WeightsError(f"refused dtype {result}")
        return result


def _dtype_factory(code: Any, align: Any = False, copy: Any = True) -> _DtypeSpec:
    if not isinstance(code, str) or not _DTYPE_CODE.match(code):
        raise WeightsError(f"refused dtype specification {code!r} (only simple numeric codes)")
    # NumPy 2 writes booleans, NumPy 1 wrote 0 and 1.
    if not all(type(flag) in (bool, int) and flag in (0, 1) for flag in (align, copy)):
        raise WeightsError(f"refused dtype arguments {align!r}, {copy!r}")
    return _DtypeSpec(code)


def _check_shape(shape: Any) -> tuple[int, ...]:
    if not (
        isinstance(shape, tuple)
        and len(shape) <= _MAX_NDIM
        and all(type(n) is int and n >= 0 for n in shape)
    ):
        raise WeightsError(f"refused array shape {shape!r}")
    return shape


def _build_array(raw: Any, spec: Any, shape: Any, fortran: bool) -> np.ndarray:
    """Build an owned, C-ordered array from checked parts; the data must fit exactly."""
    if not isinstance(spec, _DtypeSpec):
        raise WeightsError("refused an array whose dtype is not a plain NumPy dtype")
    dtype = spec.dtype()
    shape = _check_shape(shape)
    if isinstance(raw, str):  # Python 2 pickles read with encoding="latin1"
        raw = raw.encode("latin1")
    if not isinstance(raw, (bytes, bytearray)):
        raise WeightsError(f"refused array data of type {type(raw).__name__}")
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise WeightsError(
            f"array data has {len(raw)} bytes but shape {shape} of {dtype} needs {expected}"
        )
    flat = np.frombuffer(raw, dtype=dtype)
    array_ = flat.reshape(shape, order="F" if fortran else "C").copy(order="C")
    if array_.dtype != dtype or array_.dtype.hasobject:  # re-check what was built
        raise WeightsError(f"refused array of dtype {array_.dtype}")
    return array_


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` in a pickle: accepted by ``_reconstruct``, not callable."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayToken()


class _ArrayBuilder:
    """What ``_reconstruct`` returns: becomes an array when ``BUILD`` gives it its state."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if self.array is not None:
            raise WeightsError("refused an array whose state is set twice")
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if not (isinstance(state, tuple) and len(state) == 4):
            raise WeightsError("refused an array state that is not NumPy's")
        shape, spec, fortran, raw = state
        if not isinstance(fortran, bool):
            raise WeightsError(f"refused array order flag {fortran!r}")
        self.array = _build_array(raw, spec, shape, fortran)


def _safe_reconstruct(cls: Any, shape: Any, dtype_code: Any) -> _ArrayBuilder:
    if cls is not _NDARRAY:
        raise WeightsError(f"refused array subclass {cls!r}")
    return _ArrayBuilder()


def _safe_frombuffer(buffer: Any, spec: Any, shape: Any, order: Any) -> np.ndarray:
    if order not in ("C", "F"):
        raise WeightsError(f"refused array order {order!r}")
    if not isinstance(buffer, (bytes, bytearray)):
        raise WeightsError("refused array buffer of an unexpected type")
    return _build_array(buffer, spec, shape, order == "F")


def _empty_bytes(*args: Any) -> bytes:
    # Protocol 2 pickles b"" as a call of bytes() without arguments.
    if args:
        raise WeightsError("refused bytes() with arguments")
    return b""


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
    ("numpy", "dtype"): _dtype_factory,
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}


class _AllowlistUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[module, name]
        except (KeyError, TypeError):
            raise WeightsError(f"refused to load {module}.{name} from a pickle") from None

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError("refused a persistent id in a pickle")


# The opcodes that pickle.dumps of a {str: ndarray} dict uses, protocols 0-5.
_ALLOWED_OPCODES = frozenset(
    {
        *("PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK"),
        *("NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2"),
        *("LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT"),
        *("STRING", "BINSTRING", "SHORT_BINSTRING"),
        *("UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"),
        *("BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"),
        *("EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"),
        *("EMPTY_DICT", "DICT", "SETITEM", "SETITEMS"),
        *("GET", "BINGET", "LONG_BINGET", "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"),
        *("GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD"),
    }
)
_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})

# Estimated bytes the unpickler allocates (CPython, 64-bit), erring high.
_SLOT = 8  # one stack entry
_MARK_COST = 16  # the mark stack grows by doubling
_MEMO_COST = 16  # the memo table grows by doubling
_OBJECT_COST = {  # objects made by the opcode itself, besides their items
    "EMPTY_DICT": 64,
    "DICT": 64,
    "TUPLE": 40,
    "TUPLE1": 48,
    "TUPLE2": 56,
    "TUPLE3": 64,
    "REDUCE": 64,
    "BUILD": 64,
    "GLOBAL": 64,
    "STACK_GLOBAL": 64,
}
_ITEM_COST = {"DICT": 48, "SETITEM": 48, "SETITEMS": 48, "TUPLE": 8}
_DATA_OPCODES = frozenset(
    {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
    | {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "BINUNICODE8"}
)


def _int_arg(arg: Any) -> int:
    if type(arg) is not int:
        raise WeightsError(f"pickle opcode argument {arg!r} is not an integer")
    return arg


def _prescan(data: bytes) -> None:
    """Walk the opcodes without running anything; refuse what a weights dict never needs.

    Keeps the stack depth, the mark stack and the memo size, and an estimate
    of the bytes the unpickler would allocate; refuses as soon as that
    estimate exceeds ``ALLOCATION_FACTOR * len(data) + ALLOCATION_SLACK``, the
    stack grows past ``MAX_STACK_DEPTH`` items or ``MAX_MARK_DEPTH`` marks, or
    there are more than ``MAX_OPCODES`` opcodes.
    """
    budget = ALLOCATION_FACTOR * len(data) + ALLOCATION_SLACK
    spent = 0
    depth = 0
    marks = array.array("q")
    memo_size = 0  # the memo table's length: highest index stored + 1
    stream = io.BytesIO(data)
    stopped = False
    try:
        for count, (opcode, arg, pos) in enumerate(pickletools.genops(stream)):
            name = opcode.name
            if name not in _ALLOWED_OPCODES:
                raise WeightsError(f"refused pickle opcode {name} at byte {pos}")
            if count >= MAX_OPCODES:
                raise WeightsError(f"refused: over {MAX_OPCODES} opcodes, not a weights dict")
            before, after = opcode.stack_before, opcode.stack_after
            cost = _OBJECT_COST.get(name, 0)
            if pickletools.markobject in before:
                if not marks:
                    raise WeightsError(f"pickle opcode {name} at byte {pos} has no MARK")
                mark = marks.pop()
                items = depth - mark
                below = before.index(pickletools.markobject)
                if items < 0 or mark < below:
                    raise WeightsError(f"pickle stack underflow at byte {pos}")
                cost += items * _ITEM_COST.get(name, 0)
                depth = mark - below
            elif name == "POP" and marks and marks[-1] == depth:
                marks.pop()  # POP of a mark on top of the stack
            else:
                depth -= len(before)
                if depth < 0 or (marks and depth < marks[-1]):
                    raise WeightsError(f"pickle stack underflow at byte {pos}")
                cost += _ITEM_COST.get(name, 0)
            if pickletools.markobject in after:
                marks.append(depth)
                cost += _MARK_COST
            else:
                depth += len(after)
                cost += _SLOT * len(after)
            if name in _DATA_OPCODES:
                cost += 2 * sys.getsizeof(arg)  # the string and an array made from it
            elif name in ("LONG", "LONG1", "LONG4"):
                cost += sys.getsizeof(arg)
            elif name == "FRAME":  # the unpickler buffers the whole frame
                cost += _int_arg(arg)
            if name in _MEMO_PUT or name == "MEMOIZE":
                index = memo_size if name == "MEMOIZE" else _int_arg(arg)
                if index > len(data):
                    raise WeightsError(f"pickle memo index {index} exceeds the file size")
                if index >= memo_size:
                    cost += _MEMO_COST * (index + 1 - memo_size)
                    memo_size = index + 1
            elif name in _MEMO_GET and _int_arg(arg) >= memo_size:
                raise WeightsError(f"pickle memo reference {arg} to an index never stored")
            if depth > MAX_STACK_DEPTH or len(marks) > MAX_MARK_DEPTH:
                raise WeightsError(
                    f"refused: the pickle stack grows past {MAX_STACK_DEPTH} items or "
                    f"{MAX_MARK_DEPTH} marks by byte {pos} ({name} opcodes), "
                    "deeper than a weights dict needs"
                )
            spent += cost
            if spent > budget:
                raise WeightsError(
                    f"refused: the pickle would allocate over {budget} bytes by byte {pos} "
                    f"({ALLOCATION_FACTOR}x its {len(data)}-byte size + {ALLOCATION_SLACK}), "
                    f"far more than a weights dict needs (a flood of {name} opcodes?)"
                )
            if name == "STOP":
                stopped = True
    except WeightsError:
        raise
    except Exception as err:  # ValueError for truncated or unknown opcodes
        raise WeightsError(f"malformed pickle ({type(err).__name__}: {err})") from None
    if not stopped:
        raise WeightsError("malformed pickle (no STOP opcode)")
    if stream.tell() != len(data):
        raise WeightsError(
            f"{len(data) - stream.tell()} trailing bytes after the pickle's STOP opcode"
        )
    if depth != 0 or marks:  # STOP popped the result
        raise WeightsError("malformed pickle (items left on the stack at STOP)")


def _finish(value: Any, key: str) -> np.ndarray:
    if isinstance(value, _ArrayBuilder):
        if value.array is None:
            raise WeightsError(f"{key} is an array without data")
        value = value.array
    if type(value) is not np.ndarray:
        raise WeightsError(f"{key} is a {type(value).__name__}, not a NumPy array")
    if value.dtype.kind != "f":
        raise WeightsError(f"{key} has dtype {value.dtype}, not real floating")
    return value


def _check_result(result: Any) -> dict[str, np.ndarray]:
    if not isinstance(result, dict):
        raise WeightsError(f"the pickle holds a {type(result).__name__}, not a dict")
    out: dict[str, np.ndarray] = {}
    seen: dict[int, np.ndarray] = {}
    for key, value in result.items():
        if not isinstance(key, str):
            raise WeightsError(f"key {key!r} is not a string")
        array_ = _finish(value, key)
        # One array referenced under two names (a memo reference) becomes two copies.
        out[key] = array_.copy() if id(array_) in seen else array_
        seen[id(array_)] = array_
    return out


def loads_weight_pickle(data: bytes, name: str = "<bytes>") -> dict[str, np.ndarray]:
    """Read a pickled ``{name: float ndarray}`` dict from bytes without running its code.

    Parameters
    ----------
    data : bytes
        The whole pickle.
    name : str
        How error messages name the source.

    Returns
    -------
    dict of str to numpy.ndarray
        Owned, C-ordered arrays with the byte order the pickle recorded.

    Raises
    ------
    WeightsError
        Any name outside the allowlist, an opcode a weights dict never needs,
        an allocation estimate over the bound, non-numeric or subclassed
        arrays, data after the STOP opcode, a result that is not a dict of str
        to real-float arrays, or a malformed pickle.

    Examples
    --------
    >>> import pickle, numpy as np
    >>> blob = pickle.dumps({"W1": np.array([[1.5, 2.0]], ">f4")}, protocol=2)
    >>> loads_weight_pickle(blob)["W1"]
    array([[1.5, 2. ]], dtype='>f4')
    """
    if len(data) > MAX_PICKLE_BYTES:
        raise WeightsError(f"{name}: over the {MAX_PICKLE_BYTES}-byte limit for a weights pickle")
    try:
        _prescan(data)
        unpickler = _AllowlistUnpickler(io.BytesIO(data), encoding="latin1")
        return _check_result(unpickler.load())
    except WeightsError as err:
        raise WeightsError(f"{name}: {err}") from None
    except Exception as err:  # malformed pickles raise many kinds of errors
        raise WeightsError(f"{name}: malformed pickle ({type(err).__name__}: {err})") from None


def load_weight_pickle(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a pickled ``{name: float ndarray}`` file without running its code.

    The file is read once (at most :data:`MAX_PICKLE_BYTES`) and parsed from
    memory by :func:`loads_weight_pickle`.

    Raises
    ------
    WeightsError
        An unreadable file, or anything :func:`loads_weight_pickle` refuses.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = read_at_most(f, MAX_PICKLE_BYTES)
    except OSError as err:
        raise WeightsError(f"{path}: cannot read ({err})") from None
    return loads_weight_pickle(data, str(path))
