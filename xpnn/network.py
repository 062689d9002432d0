"""The chapter's network: affine layers and activations on one backend, device and dtype.

:meth:`Network.forward` runs the book's loop (section 3.4.3) for any number of layers,
``x = act(x @ W + b)``; its optimisations (JAX's ``jit``, NumPy's tanh fold) are in
:mod:`xpnn._fast`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

import array_api_compat as compat
import numpy as np

from . import _fast, backends
from ._moving import as_array, dtype_of, host_layers, move
from .activations import identity_function, relu, sigmoid, softmax
from .errors import check_choice, positive_int

__all__ = ["Network", "batched", "classify", "forward", "init_network", "predict"]


def _tanh(x: Any) -> Any:
    return compat.array_namespace(x).tanh(x)


#: Hidden activations and output functions, by the names networks and files use.
HIDDEN: dict[str, Callable[[Any], Any]] = {
    "sigmoid": sigmoid, "relu": relu, "tanh": _tanh, "identity": identity_function,
}  # fmt: skip
OUTPUT: dict[str, Callable[[Any], Any]] = {"identity": identity_function, "softmax": softmax}
Layers = list[tuple[Any, Any]]
Progress = Callable[[int], None] | None


def batched(fn: Callable[[Any], Any], x: Any, size: int | None, xp: ModuleType,
            progress: Progress = None) -> Any:  # fmt: skip
    """The one batching loop (section 3.6.3): ``fn`` of blocks of ``size`` rows of ``x``
    (``None``: all), concatenated; ``progress(rows)`` is called after each block.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> batched(lambda b: b * 2, xp.asarray([1, 2, 3]), 2, xp)
    Array([2, 4, 6], dtype=array_api_strict.int64)
    """
    n = x.shape[0]
    if isinstance(n, float) and hasattr(x, "compute_chunk_sizes"):  # dask after masking
        x = x.compute_chunk_sizes()
        n = x.shape[0]
    if size is None or len(x.shape) < 2 or not isinstance(n, int) or size >= n:
        blocks: Any = [x]
    else:
        blocks = (x[i : min(i + size, n), ...] for i in range(0, n, size))
    parts = []
    for block in blocks:
        parts.append(fn(block))
        if progress is not None and len(block.shape) > 1 and isinstance(block.shape[0], int):
            progress(block.shape[0])
    return parts[0] if len(parts) == 1 else xp.concat(parts)


def _named(layers: Layers) -> dict[str, Any]:
    """``{"W1": W1, "b1": b1, ...}`` of a list of ``(W, b)`` pairs."""
    return {f"{k}{i}": a for i, wb in enumerate(layers, 1) for k, a in zip("Wb", wb, strict=True)}


class Network:
    """A multi-layer perceptron: affine layers, hidden activations, an output function.

    Parameters
    ----------
    params : mapping
        ``{"W1": W1, "b1": b1, ..., "Wn": Wn, "bn": bn}``, ``Wi`` of shape ``(d_{i-1}, d_i)``:
        arrays of any backend or lists, copied.
    hidden : str or sequence of str
        ``"sigmoid"``, ``"relu"``, ``"tanh"`` or ``"identity"`` after every hidden layer, or one
        name per hidden layer.
    output : {"identity", "softmax"}
        The output function of :meth:`predict`.
    backend, device
        Where the weights live (see :func:`xpnn.namespace`).
    dtype : {"float32", "float64", "float16"} or None
        ``None``: the parameters' common floating dtype if the device has it, else float32.
    input_scale : float
        Factor on every input, folded into ``W1`` once (``1/255`` for uint8 pixels).

    Examples
    --------
    >>> net = Network({"W1": [[1.0, 0.0], [0.0, 1.0]], "b1": [0.0, 0.0]},
    ...               backend="array_api_strict", dtype="float64")
    >>> net.forward([3.0, 4.0])
    Array([3., 4.], dtype=array_api_strict.float64)
    """

    def __init__(
        self,
        params: Mapping[str, Any],
        *,
        hidden: str | Sequence[str] = "sigmoid",
        output: str = "identity",
        backend: str | None = None,
        device: Any = None,
        dtype: str | None = None,
        input_scale: float = 1.0,
    ) -> None:
        host = host_layers(params)
        given = (hidden,) if isinstance(hidden, str) else tuple(hidden)
        for name in given:
            check_choice(name, tuple(HIDDEN), "hidden activation")
        names = given * (len(host) - 1) if isinstance(hidden, str) else given
        if len(names) != len(host) - 1:
            raise ValueError(f"hidden: {len(names)} activations for {len(host) - 1} hidden layers")
        uniform = isinstance(hidden, str) or len(set(names)) == 1
        self.hidden: str | tuple[str, ...] = given[0] if uniform else names
        self.output = check_choice(output, tuple(OUTPUT), "output function")
        real = isinstance(input_scale, (int, float, np.floating)) and input_scale is not True
        if not (real and 0 < float(input_scale) < math.inf):
            raise ValueError(f"input_scale must be a positive finite number, got {input_scale!r}")
        self.input_scale = float(input_scale)
        self.xp, self.device = backends.namespace(backend, device)
        self.backend = backends.backend_name(backend)
        if dtype is None:  # the parameters' own dtype where the device has it
            dtype = dtype_of(host)
            dtype = dtype if dtype in backends.floating_dtypes(self.xp, self.device) else "float32"
        self.dtype_name = backends.check_dtype(self.xp, self.device, dtype)
        self.dtype = getattr(self.xp, self.dtype_name)
        info = self.xp.__array_namespace_info__()
        self._supported = (*info.dtypes(device=self.device, kind=None), self.dtype_name)
        self._host = host
        self._scope = backends.device_scope(self.device)
        self._matmul = backends.matmul(self.xp)
        # One copy of the weights on the device: those the forward pass uses.
        layers, acts = _fast.fold_sigmoid(self.xp, host, names, self.input_scale, self.dtype_name)
        self._layers, self._acts = self._placed(layers), tuple(HIDDEN[name] for name in acts)
        compile_ = backends.jit(self.xp)  # the whole pass as one program, where there is a compiler
        self._compiled = None if compile_ is None else _fast.Compiled(self._book_forward, compile_)

    def _placed(self, layers: Layers) -> Layers:
        """Host ``(W, b)`` pairs as arrays on the network's device, in its dtype."""
        with self._scope:
            return [
                tuple(self.xp.asarray(a.astype(self.dtype_name), device=self.device) for a in wb)
                for wb in layers
            ]

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Widths from input to output, e.g. ``(784, 50, 100, 10)``."""
        return (self.input_size, *(int(w.shape[1]) for w, _ in self._host))

    @property
    def input_size(self) -> int:
        """Number of input features."""
        return int(self._host[0][0].shape[0])

    @property
    def params(self) -> dict[str, Any]:
        """A copy of the weights as built (``{"W1": ..., ...}``), on the network's device."""
        return _named(self._placed(self._host))

    def host_params(self) -> dict[str, np.ndarray]:
        """NumPy copies of the weights the network was built from (before ``input_scale``)."""
        return _named([(w.copy(), b.copy()) for w, b in self._host])

    def __repr__(self) -> str:
        sizes = "-".join(map(str, self.layer_sizes))
        scale = f", input_scale={self.input_scale!r}" if self.input_scale != 1.0 else ""
        return (
            f"Network({sizes}, hidden={self.hidden!r}, output={self.output!r}, "
            f"backend={self.backend!r}, device={self.device!r}, dtype={self.dtype_name}{scale})"
        )

    def to(self, backend: str | None = None, device: Any = None, dtype: str | None = None, *,
           input_scale: float | None = None) -> Network:  # fmt: skip
        """A copy on another backend, device, dtype or input scale (``None`` keeps each)."""
        same = backend is None or backends.backend_name(backend) == self.backend
        return Network(
            self.host_params(),
            hidden=self.hidden,
            output=self.output,
            backend=self.backend if backend is None else backend,
            device=self.device if device is None and same else device,
            dtype=dtype or self.dtype_name,
            input_scale=self.input_scale if input_scale is None else input_scale,
        )

    def _prepare(self, x: Any) -> Any:
        """``x`` checked, on the network's device, in its dtype."""
        x, xp = as_array(x, "forward")
        if xp is not self.xp or compat.device(x) != self.device:
            x = move(x, self.xp, self.device, self._supported, self.dtype_name)
        if x.dtype != self.dtype:
            x = self.xp.astype(x, self.dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"network expects inputs of shape ({self.input_size},) or "
                f"(n, {self.input_size}); got shape {tuple(x.shape)}"
            )
        return x

    def _book_forward(self, layers: Layers, x: Any) -> Any:
        """The book's ``forward`` (section 3.4.3) over ``layers``: the last affine output."""
        for (w, b), act in zip(layers[:-1], self._acts, strict=True):
            x = act(self._matmul(x, w) + b)
        w, b = layers[-1]
        return self._matmul(x, w) + b

    def forward(self, x: Any) -> Any:
        """The last affine output (identity output) of ``(d,)`` or ``(n, d)``, moved here first."""
        with self._scope:
            x = self._prepare(x)
            if self._compiled is not None:
                return self._compiled.forward(self._layers, x)
            return self._book_forward(self._layers, x)

    def predict(self, x: Any) -> Any:
        """:meth:`forward`, then the output function (``softmax`` for the book's MNIST network)."""
        with self._scope:
            return OUTPUT[self.output](self.forward(x))

    def classify(self, x: Any, batch_size: int | None = None, *, progress: Progress = None) -> Any:
        """The class of each row (argmax of the logits), ``batch_size`` rows per pass.

        Batches move to the device one by one; ``progress(rows)`` follows each.

        Examples
        --------
        >>> net = init_network(dtype="float64")
        >>> net.classify([[1.0, 0.5], [-3.0, 0.0]], batch_size=1)
        array([1, 1])
        """
        if batch_size is not None:
            batch_size = positive_int(batch_size, "batch_size")
        if not hasattr(x, "shape") or len(x.shape) != 2:
            x = self._prepare(x)  # lists, and one sample (d,): one pass
        compiled = self._compiled

        def labels(block: Any) -> Any:
            block = self._prepare(block)
            if compiled is not None:  # padded to batch_size rows: one program for every batch
                return compiled.labels(self._layers, block, batch_size)
            return backends.argmax(self._book_forward(self._layers, block))

        with self._scope:
            return batched(labels, x, batch_size, self.xp, progress)


def init_network(backend: str | None = None, device: Any = None, dtype: str = "float32") -> Network:
    """The chapter's 3-layer example network (2-3-2-2, sigmoid, identity output).

    Examples
    --------
    >>> forward(init_network(dtype="float64"), [1.0, 0.5])
    array([0.31682708, 0.69627909])
    """
    params = {
        "W1": [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]], "b1": [0.1, 0.2, 0.3],
        "W2": [[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]], "b2": [0.1, 0.2],
        "W3": [[0.1, 0.3], [0.2, 0.4]], "b3": [0.1, 0.2],
    }  # fmt: skip
    return Network(params, backend=backend, device=device, dtype=dtype)


def forward(network: Network, x: Any) -> Any:
    """The book's ``forward(network, x)``: :meth:`Network.forward`.

    >>> forward(init_network(dtype="float64"), [1.0, 0.5])
    array([0.31682708, 0.69627909])
    """
    return network.forward(x)


def predict(network: Network, x: Any) -> Any:
    """The book's ``predict(network, x)``: :meth:`Network.predict`.

    >>> predict(init_network(dtype="float64"), [1.0, 0.5]).shape
    (2,)
    """
    return network.predict(x)


def classify(network: Network, x: Any, batch_size: int | None = None) -> Any:
    """The book's batch loop (section 3.6.3): :meth:`Network.classify`.

    >>> classify(init_network(dtype="float64"), [[1.0, 0.5]])
    array([1])
    """
    return network.classify(x, batch_size)
