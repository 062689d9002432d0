"""Two optimisations of the book's forward pass, beside the plain loop of :mod:`xpnn.network`.

- :func:`fold_sigmoid` (NumPy, PyTorch, CuPy; float32 and float64): an eager library makes
  each elementwise operation a pass over memory, and ``1 / (1 + exp(-a))`` takes four.
  ``sigmoid(a) = (1 + tanh(a / 2)) / 2``, so the halving and ``(1 + t) / 2`` fold into the
  weights once, in float64, and a hidden layer becomes ``tanh(x @ W' + b')``: one pass that
  cannot overflow, the same function up to rounding. Not in float16 (it changes labels
  there), nor where a folded weight would overflow. ``scripts/bench.py``, 10,000 images:
  xpnn numpy predict / the book's NumPy loop 0.94-1.08 over 8 runs; xpnn torch /
  ``torch.sigmoid`` by hand 0.90-1.05 (1.30-1.39 with the book's formula and no fold).
- :class:`Compiled` (JAX): ``jax.jit`` makes the whole pass one program per input shape;
  ``labels`` pads a short last batch so every batch runs the same program
  (``scripts/bench.py``: xpnn jax / hand-written ``jax.jit`` 0.99-1.16 over 6 runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import array_api_compat as compat
import numpy as np

from .backends import argmax

__all__ = ["Compiled", "fold_sigmoid"]

HostLayers = list[tuple[np.ndarray, np.ndarray]]


def fold_sigmoid(
    xp: ModuleType, layers: HostLayers, names: Sequence[str], scale: float, dtype: str
) -> tuple[HostLayers, tuple[str, ...]]:
    """Host weights for the forward pass: ``input_scale`` folded into ``W1``, sigmoid into tanh.

    Returns the layers (the caller casts them to ``dtype``) and the hidden
    activation names the forward pass runs with.
    """
    plain = [(w.astype(np.float64) * scale, b) if i == 0 and scale != 1.0 else (w, b)
             for i, (w, b) in enumerate(layers)]  # fmt: skip
    eager = (compat.is_numpy_namespace, compat.is_torch_namespace, compat.is_cupy_namespace)
    if not (any(f(xp) for f in eager) and dtype != "float16" and set(names) == {"sigmoid"}):
        return plain, tuple(names)
    folded = []
    with np.errstate(over="ignore", invalid="ignore"):  # checked below
        for i, (w, b) in enumerate(plain):
            w64, b64 = w.astype(np.float64), b.astype(np.float64)
            if i > 0:  # its input is t, not (1 + t) / 2
                w64, b64 = w64 / 2, b64 + w64.sum(axis=0) / 2
            if i < len(plain) - 1:  # tanh takes half the sigmoid's argument
                w64, b64 = w64 / 2, b64 / 2
            folded.append((w64, b64))
        exact = all(np.isfinite(a.astype(dtype)).all() for pair in folded for a in pair)
    return (folded, ("tanh",) * len(names)) if exact else (plain, tuple(names))


class Compiled:
    """The forward pass and the labels, each compiled once per input shape and dtype.

    ``traces`` counts how many times a pass has been traced (compiled) so far.
    """

    def __init__(self, chain: Callable[[Any, Any], Any], compile_: Callable[..., Any]) -> None:
        self.traces = 0

        def compiled(then: Callable[[Any], Any]) -> Any:
            def run(layers: Any, x: Any) -> Any:
                self.traces += 1  # runs only while tracing
                return then(chain(layers, x))

            return compile_(run)

        self.forward, self._labels = compiled(lambda logits: logits), compiled(argmax)

    def labels(self, layers: Any, x: Any, rows: int | None) -> Any:
        """Labels of ``x``, padded with zero rows to ``rows`` so one program serves every batch."""
        n = x.shape[0] if x.ndim == 2 else None
        if rows is None or n is None or n >= rows:
            return self._labels(layers, x)
        xp = compat.array_namespace(x)
        pad = xp.zeros((rows - n, x.shape[1]), dtype=x.dtype, device=compat.device(x))
        return self._labels(layers, xp.concat([x, pad]))[:n]
