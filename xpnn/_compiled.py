"""Forward passes compiled once per network, for namespaces that compile (JAX).

JAX runs every operation of an eager forward pass as its own dispatch; traced
once with :func:`jax.jit`, the whole pass (affine layers, activations, argmax)
becomes one compiled program. :func:`compiled_for` returns a
:class:`CompiledForward` for a JAX network and ``None`` for every other
namespace, so a :class:`~xpnn.Network` only needs::

    self._compiled = compiled_for(self.xp, self._hidden_fn)     # in __init__
    if self._compiled is not None:                               # in forward
        return self._compiled.forward(self._layers, prepare(x))
    if self._compiled is not None:                               # in classify
        return self._compiled.classify(self._layers, x, batch_size, prepare)

where ``prepare`` checks an input and moves it to the network's device, but
leaves its dtype: the compiled program casts it to the weights' dtype (one
program per input dtype), so that uint8 pixels are converted inside it.

JAX compiles once per input shape and dtype, so :meth:`CompiledForward.classify`
gives every forward pass the same number of rows: the last, shorter batch is
padded with zero rows, and its padded labels are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import array_api_compat

__all__ = ["CompiledForward", "compiled_for"]

Layers = Sequence[tuple[Any, Any]]
Kernel = Callable[[Any, ModuleType], Any]


def _affine_stack(layers: Layers, x: Any, hidden: Kernel, xp: ModuleType) -> Any:
    x = xp.astype(x, layers[0][0].dtype)  # uint8 pixels: the cast fuses into the program
    for w, b in layers[:-1]:
        x = hidden(x @ w + b, xp)
    w, b = layers[-1]
    return x @ w + b


class CompiledForward:
    """A network's forward pass and labels, each traced once per input shape.

    Parameters
    ----------
    xp : module
        The network's namespace (``jax.numpy``).
    hidden : callable
        The hidden activation kernel ``hidden(x, xp)``.

    Attributes
    ----------
    traces : int
        How many times the pass has been traced (compiled) so far: one per
        distinct input shape and dtype of :meth:`forward` and of the labels.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from xpnn.activations import sigmoid_kernel_for
    >>> compiled = CompiledForward(jnp, sigmoid_kernel_for(jnp))
    >>> layers = [(jnp.eye(2), jnp.zeros(2))]
    >>> compiled.forward(layers, jnp.ones((3, 2))).shape
    (3, 2)
    >>> x = jnp.asarray([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    >>> compiled.classify(layers, x, 2, lambda x: x).tolist()
    [1, 0, 1]
    >>> compiled.traces
    2
    """

    def __init__(self, xp: ModuleType, hidden: Kernel) -> None:
        import jax

        self.xp = xp
        self.traces = 0

        def forward(layers: Layers, x: Any) -> Any:
            self.traces += 1  # runs only while jax traces
            return _affine_stack(layers, x, hidden, xp)

        def labels(layers: Layers, x: Any) -> Any:
            self.traces += 1
            return xp.argmax(_affine_stack(layers, x, hidden, xp), axis=-1)

        self._forward = jax.jit(forward)
        self._labels = jax.jit(labels)

    def forward(self, layers: Layers, x: Any) -> Any:
        """Return the last layer's affine output for a prepared input ``x`` (any real dtype)."""
        return self._forward(tuple(layers), x)

    def classify(
        self,
        layers: Layers,
        x: Any,
        batch_size: int | None,
        prepare: Callable[[Any], Any],
    ) -> Any:
        """Return the labels of the rows of ``x``, ``batch_size`` rows per compiled pass.

        Parameters
        ----------
        layers : sequence of (W, b)
            The network's resident weights.
        x : array
            A batch ``(n, d)``, of any backend; each batch goes through ``prepare``
            (checked and moved to the network's device) on its own.
        batch_size : int or None
            Rows per pass; ``None`` is one pass. The last batch is padded to
            ``batch_size`` rows, so every pass has the same shape.
        prepare : callable
            The network's input preparation.
        """
        layers_t, xp = tuple(layers), self.xp
        n = x.shape[0]
        if batch_size is None or batch_size >= n:
            return self._labels(layers_t, prepare(x))
        parts = []
        for start in range(0, n, batch_size):
            batch = prepare(x[start : min(start + batch_size, n), ...])
            rows = batch.shape[0]
            if rows < batch_size:
                pad = xp.zeros(
                    (batch_size - rows, *batch.shape[1:]),
                    dtype=batch.dtype,
                    device=array_api_compat.device(batch),
                )
                parts.append(self._labels(layers_t, xp.concat([batch, pad]))[:rows])
            else:
                parts.append(self._labels(layers_t, batch))
        return xp.concat(parts)


def compiled_for(xp: ModuleType, hidden: Kernel) -> CompiledForward | None:
    """Return a :class:`CompiledForward` where ``xp`` compiles (JAX), else ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> compiled_for(np, lambda x, xp: x) is None
    True
    """
    if array_api_compat.is_jax_namespace(xp):
        return CompiledForward(xp, hidden)
    return None
