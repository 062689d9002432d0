"""Host-side preparation of a network's parameters: checked, copied, in native byte order."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._moving import to_numpy

_PARAM = re.compile(r"([Wb])([1-9][0-9]*)")


def host_layers(params: Mapping[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Check ``{W1, b1, ..., Wn, bn}``; return own C-ordered host copies as ``(W, b)`` pairs."""
    if not isinstance(params, Mapping):
        raise TypeError(f"network parameters must be a mapping, got {type(params).__name__}")
    found: dict[int, set[str]] = {}
    for key in params:
        match = _PARAM.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            raise ValueError(f"unexpected network parameter {key!r}; expected W1, b1, ..., Wn, bn")
        found.setdefault(int(match.group(2)), set()).add(match.group(1))
    if not found or sorted(found) != list(range(1, len(found) + 1)):
        raise ValueError(
            f"network parameters must be numbered W1, b1 ... Wn, bn without gaps: {sorted(params)}"
        )
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    for i in sorted(found):
        if found[i] != {"W", "b"}:
            raise ValueError(f"network parameter {({'W', 'b'} - found[i]).pop()}{i} is missing")
        w, b = (_host_copy(params[f"{k}{i}"], f"{k}{i}") for k in "Wb")
        if w.ndim != 2 or b.ndim != 1:
            raise ValueError(f"W{i} must be 2-D and b{i} 1-D, got shapes {w.shape} and {b.shape}")
        if b.shape[0] != w.shape[1]:
            raise ValueError(f"b{i} has {b.shape[0]} entries but W{i} has {w.shape[1]} columns")
        if layers and layers[-1][0].shape[1] != w.shape[0]:
            raise ValueError(
                f"W{i} has {w.shape[0]} rows but layer {i - 1} has {layers[-1][0].shape[1]} outputs"
            )
        layers.append((w, b))
    return layers


def _host_copy(value: Any, name: str) -> np.ndarray:  # host-side weight preparation
    host = np.array(value) if isinstance(value, (list, tuple, int, float)) else to_numpy(value)
    if host.dtype.kind not in "fiu":
        raise TypeError(f"network parameter {name} must be real numbers, got dtype {host.dtype}")
    return np.ascontiguousarray(host, dtype=host.dtype.newbyteorder("="))


def dtype_of(layers: list[tuple[np.ndarray, np.ndarray]]) -> str:
    names = {arr.dtype.name for pair in layers for arr in pair}
    only = names.pop() if len(names) == 1 else ""
    return only if only in ("float16", "float32", "float64") else "float32"
