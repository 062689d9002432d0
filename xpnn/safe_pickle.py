"""Reading the book's ``sample_weight.pkl`` without ever running its code.

A prescan of the opcodes (running nothing) admits only what a ``{name: ndarray}`` dict needs
and bounds the stack, the opcode count and the estimated allocation; then ``find_class`` admits
only stand-ins, so each array is ``numpy.frombuffer`` of a checked plain dtype, shape and bytes.
"""

from __future__ import annotations

import codecs
import io
import math
import os
import pickle
import pickletools
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ._files import read_regular
from .errors import WeightsError

__all__ = ["MAX_PICKLE_BYTES", "load_weight_pickle", "loads_weight_pickle"]

MAX_PICKLE_BYTES = 1 << 28  #: Largest pickle read (the book's is 182 kB).
ALLOCATION_FACTOR = 8  #: The allocation estimate may reach this many times the file size ...
ALLOCATION_SLACK = 1 << 16  #: ... plus this (pickles of many tiny arrays need room).
MAX_STACK_DEPTH = 4096  #: ``pickle`` writes dict items in batches of 1000 pairs ...
MAX_MARK_DEPTH = 64  #: ... and NumPy nests its tuples a few levels deep.
MAX_OPCODES = 1 << 18  #: The book's pickle has 185 (about 30 per array).

_DTYPE_CODE = re.compile(r"(b1|[iu][1248]|f[248])\Z")
_MAX_NDIM = 32


def _check(ok: object, message: str, *args: object) -> None:  # args: formatted only on failure
    if not ok:
        raise WeightsError(message.format(*args) if args else message)


class _DtypeSpec:
    """Stands for ``numpy.dtype(code)``; ``BUILD`` may set its byte order, once."""

    def __init__(self, code: Any, align: Any = False, copy: Any = True) -> None:
        _check(isinstance(code, str) and _DTYPE_CODE.match(code), f"refused dtype code {code!r}")
        flags_ok = all(type(flag) in (bool, int) and flag in (0, 1) for flag in (align, copy))
        _check(flags_ok, f"refused dtype arguments {align!r}, {copy!r}")  # NumPy 1 wrote 0 and 1
        self.code, self.order, self.built = code, "=", False

    def __setstate__(self, state: Any) -> None:
        # NumPy's for a plain dtype: (3, order, None, None, None, -1, -1, 0), or 4 and metadata None
        _check(not self.built, "refused a dtype whose state is set twice")
        orders = "<>=|" if np.dtype(self.code).itemsize == 1 else "<>="
        tail = (None, None, None, -1, -1, 0)
        plain = [(3, o, *tail) for o in orders] + [(4, o, *tail, None) for o in orders]
        simple = isinstance(state, tuple) and all(type(x) in (int, str, type(None)) for x in state)
        _check(simple and state in plain, f"refused dtype state {state!r:.80}")
        self.order, self.built = state[1], True


def _array(raw: Any, spec: Any, shape: Any, fortran: Any) -> np.ndarray:
    _check(isinstance(spec, _DtypeSpec), "refused an array whose dtype is not a plain NumPy dtype")
    ok = isinstance(shape, tuple) and len(shape) <= _MAX_NDIM
    _check(ok and all(type(n) is int and n >= 0 for n in shape), f"refused array shape {shape!r}")
    _check(type(fortran) is bool, f"refused array order flag {fortran!r}")
    if isinstance(raw, str):  # Python 2 pickles read with encoding="latin1"
        raw = raw.encode("latin1")
    _check(isinstance(raw, (bytes, bytearray)), f"refused array data of type {type(raw).__name__}")
    dtype = np.dtype(str(spec.code)).newbyteorder(spec.order)  # "|" (1-byte codes) leaves it
    need = math.prod(shape) * dtype.itemsize
    _check(len(raw) == need, f"array data has {len(raw)} bytes but {shape} of {dtype} needs {need}")
    out = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()
    _check(out.dtype == dtype and out.dtype.kind in "biuf", f"refused dtype {out.dtype}")
    return out


_NDARRAY = type("ndarray", (), {})()  # stands for numpy.ndarray: for _reconstruct, not callable


class _ArrayBuilder:
    """Stands for ``_reconstruct(ndarray, ...)``: an array once ``BUILD`` gives its state."""

    def __init__(self, cls: Any, shape: Any, code: Any) -> None:
        _check(cls is _NDARRAY, f"refused array subclass {cls!r}")
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:  # NumPy's ([1,] shape, dtype, fortran, data)
        _check(self.array is None, "refused an array whose state is set twice")
        ok = isinstance(state, tuple) and (len(state), state[:1]) in ((4, state[:1]), (5, (1,)))
        _check(ok, "refused an array state")
        shape, spec, fortran, raw = state[-4:]
        self.array = _array(raw, spec, shape, fortran)


def _frombuffer(buffer: Any, spec: Any, shape: Any, order: Any) -> np.ndarray:
    _check(order in ("C", "F") and isinstance(buffer, (bytes, bytearray)), "refused a buffer")
    return _array(buffer, spec, shape, order == "F")


def _bytes(text: Any = "", encoding: Any = None, *rest: Any) -> bytes:
    """Stands for ``bytes()`` and ``_codecs.encode(text, "latin1")``: how protocol 2 keeps bytes."""
    ok = isinstance(text, str) and not rest and encoding in ("latin1", None)[: 1 + (text == "")]
    _check(ok, "refused bytes() with arguments or _codecs.encode other than to latin1")
    return codecs.encode(text, "latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _ArrayBuilder for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _frombuffer for core in ("core", "_core")},
    **{(module, "bytes"): _bytes for module in ("builtins", "__builtin__")},
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DtypeSpec,
    ("_codecs", "encode"): _bytes,
}


class _AllowlistUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        _check((module, name) in _ALLOWED, f"refused to load {module}.{name} from a pickle")
        return _ALLOWED[module, name]


# The opcodes pickle.dumps of a {str: ndarray} dict uses (protocols 0-5), each with the bytes
# (CPython, 64-bit, erring high) the unpickler allocates for what it makes and per item it takes.
_FREE = """PROTO FRAME STOP MARK POP POP_MARK NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2
LONG LONG1 LONG4 FLOAT BINFLOAT STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE
SHORT_BINUNICODE BINUNICODE8 BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8 EMPTY_TUPLE
GET BINGET LONG_BINGET PUT BINPUT LONG_BINPUT MEMOIZE"""
_OPCODES: dict[str, tuple[int, int]] = {
    **dict.fromkeys(_FREE.split(), (0, 0)),
    **dict.fromkeys(("EMPTY_DICT", "REDUCE", "BUILD", "GLOBAL", "STACK_GLOBAL"), (64, 0)),
    **{"TUPLE": (40, 8), "TUPLE1": (48, 0), "TUPLE2": (56, 0), "TUPLE3": (64, 0)},
    **{"DICT": (64, 48), "SETITEM": (0, 48), "SETITEMS": (0, 48)},
}
_SLOT, _MARK_COST, _MEMO_COST = 8, 16, 16  # a stack entry; marks and memo grow by doubling


def _prescan(data: bytes) -> None:
    budget = ALLOCATION_FACTOR * len(data) + ALLOCATION_SLACK
    spent = depth = memo = 0  # memo: the memo table's length (highest index stored + 1)
    marks: list[int] = []
    stream = io.BytesIO(data)
    name = ""
    ops: Any = pickletools.genops(stream)  # (opcode, its argument, its byte offset)
    for count, (opcode, arg, pos) in enumerate(ops):
        name = opcode.name
        _check(name in _OPCODES, "refused pickle opcode {} at byte {}", name, pos)
        cost, per_item = _OPCODES[name]
        before, after = opcode.stack_before, opcode.stack_after
        if pickletools.markobject in before:
            _check(marks, "pickle opcode {} at byte {} has no MARK", name, pos)
            mark, below = marks.pop(), before.index(pickletools.markobject)
            _check(depth >= mark >= below, "pickle stack underflow at byte {}", pos)
            cost += (depth - mark) * per_item
            depth = mark - below
        elif name == "POP" and marks and marks[-1] == depth:
            marks.pop()  # POP of a mark on top of the stack
        else:
            depth -= len(before)
            _check(depth >= (marks[-1] if marks else 0), "pickle stack underflow at byte {}", pos)
            cost += per_item
        if pickletools.markobject in after:
            marks.append(depth)
            cost += _MARK_COST
        else:
            depth += len(after)
            cost += _SLOT * len(after)
        if name == "FRAME":  # the unpickler buffers the whole frame
            cost += int(arg)
        elif isinstance(arg, (int, str, bytes, bytearray)):  # data twice: it and its array
            cost += sys.getsizeof(arg) * (1 if isinstance(arg, int) else 2)
        if name.endswith("PUT") or name == "MEMOIZE":
            index = memo if name == "MEMOIZE" else int(arg)
            _check(index <= len(data), "pickle memo index {} exceeds the file size", index)
            cost += _MEMO_COST * max(0, index + 1 - memo)
            memo = max(memo, index + 1)
        elif name.endswith("GET"):
            _check(int(arg) < memo, "pickle memo reference {} to an index never stored", arg)
        spent += cost
        _check(count < MAX_OPCODES, "refused: over {} opcodes, not a weights dict", MAX_OPCODES)
        too_deep = depth > MAX_STACK_DEPTH or len(marks) > MAX_MARK_DEPTH
        _check(not too_deep, "refused: stack over {} or {} marks", MAX_STACK_DEPTH, MAX_MARK_DEPTH)
        why = "refused: would allocate over {} bytes ({}x size + {}, by byte {}: {} flood?)"
        _check(spent <= budget, why, budget, ALLOCATION_FACTOR, ALLOCATION_SLACK, pos, name)
    _check(name == "STOP", "malformed pickle (no STOP opcode)")
    rest = len(data) - stream.tell()
    _check(rest == 0, f"{rest} trailing bytes after the pickle's STOP opcode")
    _check(depth == 0 and not marks, "malformed pickle (items left on the stack at STOP)")


def _result(result: Any) -> dict[str, np.ndarray]:
    _check(isinstance(result, dict), f"the pickle holds a {type(result).__name__}, not a dict")
    out: dict[str, np.ndarray] = {}
    seen: set[int] = set()  # ids of the arrays so far (all kept alive by result)
    value: Any
    for key, value in result.items():
        _check(isinstance(key, str), f"key {key!r} is not a string")
        value = value.array if isinstance(value, _ArrayBuilder) else value
        _check(type(value) is np.ndarray, f"{key} is a {type(value).__name__}, not a NumPy array")
        _check(value.dtype.kind == "f", f"{key} has dtype {value.dtype}, not real floating")
        out[key] = value.copy() if id(value) in seen else value  # one array, two names: copies
        seen.add(id(value))
    return out


def loads_weight_pickle(data: bytes, name: str = "<bytes>") -> dict[str, np.ndarray]:
    """Read a pickled ``{name: float ndarray}`` dict without running its code.

    Returns owned, C-ordered arrays in the pickle's byte order, or a WeightsError naming ``name``.

    Examples
    --------
    >>> import pickle, numpy as np
    >>> blob = pickle.dumps({"W1": np.array([[1.5, 2.0]], ">f4")}, protocol=2)
    >>> loads_weight_pickle(blob)["W1"]
    array([[1.5, 2. ]], dtype='>f4')
    """
    try:
        _check(len(data) <= MAX_PICKLE_BYTES, f"over the {MAX_PICKLE_BYTES}-byte limit")
        _prescan(data)
        return _result(_AllowlistUnpickler(io.BytesIO(data), encoding="latin1").load())
    except WeightsError as err:
        raise WeightsError(f"{name}: {err}") from None
    except Exception as err:  # malformed pickles raise many kinds of errors
        raise WeightsError(f"{name}: malformed pickle ({type(err).__name__}: {err})") from None


def load_weight_pickle(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a ``.pkl`` file (at most :data:`MAX_PICKLE_BYTES`) with :func:`loads_weight_pickle`."""
    return loads_weight_pickle(read_regular(path, MAX_PICKLE_BYTES, WeightsError), str(Path(path)))
