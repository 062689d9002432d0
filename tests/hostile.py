"""Hostile pickles for the tests: each one, if executed, creates ``sentinel``."""

from __future__ import annotations

import os
import pickle
import struct

import numpy as np


class RunsShell:
    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


class RunsEval:
    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (eval, (f"open({self.sentinel!r}, 'w').close()",))


class ArraySubclass(np.ndarray):
    """Any ndarray subclass runs its own code on unpickling: refused."""


def _unicode(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data  # SHORT_BINUNICODE


def valid_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "W1": rng.normal(size=(4, 3)).astype(np.float32),
        "b1": rng.normal(size=3).astype(np.float32),
        "W2": np.asfortranarray(rng.normal(size=(3, 2))),
        "b2": rng.normal(size=2),
    }


def hostile_pickles(sentinel: str) -> dict[str, bytes]:
    """Name -> bytes of a pickle that would create ``sentinel`` if run."""
    command = f"touch {sentinel}".encode()
    good = valid_weights()
    stack_global = (
        b"\x80\x04"
        + _unicode("os")
        + b"\x94"
        + _unicode("system")
        + b"\x94"
        + b"h\x00h\x01"  # BINGET 0, BINGET 1
        + b"\x93"  # STACK_GLOBAL
        + b"C"
        + bytes([len(command)])
        + command  # SHORT_BINBYTES
        + b"\x85R."  # TUPLE1, REDUCE, STOP
    )
    return {
        "reduce-os-system": pickle.dumps({"W1": RunsShell(sentinel)}, protocol=2),
        "reduce-eval": pickle.dumps({"W1": RunsEval(sentinel)}, protocol=4),
        "inst-opcode": b"(S'" + command + b"'\nios\nsystem\n.",
        "obj-opcode": b"(cos\nsystem\nS'" + command + b"'\no.",
        "stack-global-from-memo": stack_global,
        "nested-in-dict": pickle.dumps({**good, "meta": {"x": [RunsShell(sentinel)]}}, protocol=3),
        "appended-after-valid": pickle.dumps(good, protocol=2) + pickle.dumps(RunsShell(sentinel)),
        "object-array": pickle.dumps({"W1": np.array([1.0, RunsShell(sentinel)], dtype=object)}),
        "benign-object-array": pickle.dumps({"W1": np.array([1.0, 2.0], dtype=object)}),
        "masked-array": pickle.dumps({"W1": np.ma.masked_array([1.0, 2.0], mask=[0, 1])}),
        "ndarray-subclass": pickle.dumps({"W1": np.ones((2, 2)).view(ArraySubclass)}),
        "persistent-id": b"\x80\x02}q\x00X\x02\x00\x00\x00W1q\x01X\x01\x00\x00\x00xQs.",
        "codecs-non-latin1": (
            b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R."
        ),
        "int-array": pickle.dumps({"W1": np.ones((2, 2), np.int64)}),
        "not-a-dict": pickle.dumps([np.ones(2)]),
        "non-string-key": pickle.dumps({1: np.ones(2)}),
        "empty": b"",
        "garbage": b"\x80\x05this is not a pickle",
        "memo-bomb": b"\x80\x02}r" + struct.pack("<I", 2**31) + b".",
        "readonly-buffer": b"\x80\x05C\x01x\x98.",
        "huge-length": b"\x80\x04\x8d" + struct.pack("<Q", 1 << 62) + b"x",
    }
