"""Faster forward passes of a network, chosen once per network by the backend table.

Two backends get a forward pass of their own (the table's ``fast_forward`` fact);
every other one runs the network's plain layer loop.

- JAX: :class:`JitForward`. Eager JAX dispatches every operation on its own;
  traced once with :func:`jax.jit`, the whole pass (affine layers, activations,
  argmax) becomes one compiled program per input shape.
  :meth:`JitForward.classify` gives every pass the same number of rows (the
  last, shorter batch is padded with zero rows whose labels are dropped), so it
  never compiles again for another batch.
- NumPy with sigmoid hidden layers in float32 or float64: :class:`TanhForward`. NumPy runs each
  elementwise operation as a pass over memory, and a sigmoid takes four. Since
  ``sigmoid(a) = (1 + tanh(a / 2)) / 2``, the halving and the affine map
  ``(1 + t) / 2`` fold into the weights (once, in float64), and every hidden
  layer becomes ``tanh(x @ W' + b')``: one pass instead of four, and no
  overflow to guard against. The logits are the same function of the input;
  they differ from the book's formula by rounding only.

A :class:`~xpnn.Network` needs four lines::

    self._fast = fast_forward(self.xp, self._hidden_fn, self._layers)  # matmul= optional
    if self._fast is not None:                                   # in forward
        return self._fast.forward(prepare(x))
    if self._fast is not None:                                   # in classify
        return self._fast.classify(x, batch_size, prepare)

where ``prepare`` checks an input, moves it to the network's device and casts
it to the network's dtype (before the compiled program on JAX).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import array_api_compat

from ._backend.table import facts_of_namespace
from .activations import sigmoid_kernel_for

__all__ = ["FastForward", "JitForward", "TanhForward", "fast_forward"]

Layers = Sequence[tuple[Any, Any]]
Kernel = Callable[[Any, ModuleType], Any]
Prepare = Callable[[Any], Any]
Matmul = Callable[[Any, Any], Any]


def _affine_stack(layers: Layers, x: Any, hidden: Kernel, xp: ModuleType, matmul: Matmul) -> Any:
    x = xp.astype(x, layers[0][0].dtype)
    for w, b in layers[:-1]:
        x = hidden(matmul(x, w) + b, xp)
    w, b = layers[-1]
    return matmul(x, w) + b


class FastForward:
    """A network's forward pass with its own implementation (base class).

    Subclasses implement :meth:`forward`; :meth:`classify` runs it batch by
    batch.
    """

    xp: ModuleType

    def forward(self, x: Any) -> Any:
        """Return the last layer's affine output for a checked input ``x`` of any real dtype."""
        raise NotImplementedError

    def labels(self, x: Any) -> Any:
        """Return the argmax of :meth:`forward` along the last axis."""
        return self.xp.argmax(self.forward(x), axis=-1)

    def classify(
        self, x: Any, batch_size: int | None, prepare: Prepare, progress: Any = None
    ) -> Any:
        """Return the labels of the rows of ``x``, ``batch_size`` rows per pass.

        Parameters
        ----------
        x : array
            A batch ``(n, d)`` of any backend; each batch goes through
            ``prepare`` (checked and moved to the network's device) on its own.
        batch_size : int or None
            Rows per pass; ``None`` is one pass.
        prepare : callable
            The network's input check.
        """
        from .network import batched

        return batched(lambda b: self.labels(prepare(b)), x, batch_size, self.xp, progress)


class JitForward(FastForward):
    """The forward pass and the labels, each compiled once per input shape (JAX).

    Parameters
    ----------
    xp : module
        The network's namespace (``jax.numpy``).
    hidden : callable
        The hidden activation kernel ``hidden(x, xp)``.
    layers : sequence of (W, b)
        The network's resident weights.
    matmul : callable
        The matrix product ``matmul(x, w)``.

    Attributes
    ----------
    traces : int
        How many times a pass has been traced (compiled) so far: one per
        distinct input shape and dtype of :meth:`forward`, and of the labels.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from xpnn.activations import sigmoid_kernel_for
    >>> fast = JitForward(jnp, sigmoid_kernel_for(jnp), [(jnp.eye(2), jnp.zeros(2))])
    >>> fast.forward(jnp.ones((3, 2))).shape
    (3, 2)
    >>> x = jnp.asarray([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    >>> fast.classify(x, 2, lambda x: x).tolist()
    [1, 0, 1]
    >>> fast.traces
    2
    """

    def __init__(
        self, xp: ModuleType, hidden: Kernel, layers: Layers, matmul: Matmul = operator.matmul
    ) -> None:
        import jax

        self.xp = xp
        self.traces = 0
        self._layers = tuple(layers)

        def forward(layers: Layers, x: Any) -> Any:
            self.traces += 1  # runs only while jax traces
            return _affine_stack(layers, x, hidden, xp, matmul)

        def labels(layers: Layers, x: Any) -> Any:
            self.traces += 1
            return xp.argmax(_affine_stack(layers, x, hidden, xp, matmul), axis=-1)

        self._forward = jax.jit(forward)
        self._labels = jax.jit(labels)

    def forward(self, x: Any) -> Any:
        return self._forward(self._layers, x)

    def labels(self, x: Any) -> Any:
        return self._labels(self._layers, x)

    def classify(
        self, x: Any, batch_size: int | None, prepare: Prepare, progress: Any = None
    ) -> Any:
        """Return the labels of the rows of ``x``; every pass has ``batch_size`` rows.

        The last, shorter batch is padded with zero rows to ``batch_size``, and
        the labels of the padding are dropped, so that one compiled program
        serves every batch.
        """
        from .network import batched

        xp, n = self.xp, x.shape[0]
        size = n if batch_size is None else min(batch_size, n)

        def padded(block: Any) -> Any:
            batch = prepare(block)
            rows = batch.shape[0]
            if rows == size:
                return self.labels(batch)
            pad = xp.zeros(
                (size - rows, *batch.shape[1:]),
                dtype=batch.dtype,
                device=array_api_compat.device(batch),
            )
            return self.labels(xp.concat([batch, pad]))[:rows]

        return batched(padded, x, batch_size, xp, progress)


class TanhForward(FastForward):
    """Sigmoid hidden layers computed as ``tanh`` with the factors folded into the weights.

    With ``t = tanh(a / 2)``, ``sigmoid(a) = (1 + t) / 2``, so a hidden layer
    ``z = sigmoid(x @ W + b)`` followed by ``z @ V + c`` is
    ``t = tanh(x @ (W / 2) + b / 2)`` followed by
    ``t @ (V / 2) + (c + sum(V, axis=0) / 2)``. The folded weights are
    computed once, in float64, and cast to the network's dtype.

    Parameters
    ----------
    xp : module
        The network's namespace.
    layers : sequence of (W, b)
        The network's resident weights (at least one hidden layer).
    matmul : callable
        The matrix product ``matmul(x, w)``.

    Examples
    --------
    >>> import numpy as np
    >>> layers = [(np.eye(2), np.zeros(2)), (np.eye(2), np.zeros(2))]
    >>> fast = TanhForward(np, layers)
    >>> x = np.array([0.0, 2.0])
    >>> bool(np.allclose(fast.forward(x), 1 / (1 + np.exp(-x))))
    True
    """

    def __init__(self, xp: ModuleType, layers: Layers, matmul: Matmul = operator.matmul) -> None:
        self.xp = xp
        self._matmul = matmul
        self.dtype = layers[0][0].dtype
        wide = xp.float64
        folded = []
        for i, (w, b) in enumerate(layers):
            w64, b64 = xp.astype(w, wide), xp.astype(b, wide)
            if i > 0:  # its input is t, not (1 + t) / 2
                b64 = b64 + xp.sum(w64, axis=0) / 2
                w64 = w64 / 2
            if i < len(layers) - 1:  # hidden: its tanh takes half the sigmoid's argument
                w64, b64 = w64 / 2, b64 / 2
            folded.append((xp.astype(w64, self.dtype), xp.astype(b64, self.dtype)))
        self._hidden, self._last = tuple(folded[:-1]), folded[-1]

    def forward(self, x: Any) -> Any:
        xp = self.xp
        if x.dtype != self.dtype:
            x = xp.astype(x, self.dtype)
        matmul = self._matmul
        for w, b in self._hidden:
            x = xp.tanh(matmul(x, w) + b)
        w, b = self._last
        return matmul(x, w) + b


def fast_forward(
    xp: ModuleType, kernel: Kernel, layers: Layers, matmul: Matmul = operator.matmul
) -> FastForward | None:
    """Return the network's fast forward pass, or ``None`` where the plain loop is best.

    Parameters
    ----------
    xp : module
        The network's namespace.
    kernel : callable
        The hidden activation kernel ``kernel(x, xp)``; only xpnn's own
        sigmoid kernel is folded into ``tanh``.
    layers : sequence of (W, b)
        The network's resident weights.
    matmul : callable
        The network's matrix product ``matmul(x, w)``.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> fast_forward(xp, lambda x, xp: x, [(xp.eye(2), xp.zeros(2))]) is None
    True
    """
    row = facts_of_namespace(xp)
    kind = "" if row is None else row.fast_forward
    if kind == "jit":
        return JitForward(xp, kernel, layers, matmul)
    # Not in float16: there tanh and the book's sigmoid round differently enough
    # to change labels (9353 against the reference's 9354 on the MNIST test set).
    wide_enough = layers[0][0].dtype != getattr(xp, "float16", None)
    if kind == "tanh-fold" and wide_enough and len(layers) > 1 and kernel is sigmoid_kernel_for(xp):
        return TanhForward(xp, layers, matmul)
    return None
