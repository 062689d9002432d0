"""Multi-layer perceptrons whose weights live on one backend, device and dtype.

A :class:`Network` is built from a mapping ``{"W1": ..., "b1": ..., ...,
"Wn": ..., "bn": ...}`` of arrays of any backend (or nested lists). The
weights are converted once, when the network is built or moved with
:meth:`Network.to`; every call after that works on the resident arrays.

Inputs of another namespace or device than the network's are moved to the
network before any arithmetic (through DLPack, sharing memory where the two
libraries can, else through host memory; see :mod:`xpnn._backend.moving`), so
nothing is ever computed on the wrong device; inputs of another dtype (uint8
pixels, float64 data for a float32 network) are cast to the network's dtype.
All computation runs in the network's device scope (CuPy computes on its
current device), and matrix products run at full precision on every backend
(JAX's are asked for ``precision=HIGHEST``; see :mod:`xpnn._backend.products`).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ._backend.devices import device_scope
from ._backend.moving import check_array_type, host_view, move
from ._backend.products import matmul_for
from ._backend.table import BackendFacts, facts
from ._compiled import FastForward, fast_forward
from .activations import relu_kernel, sigmoid_kernel_for, softmax_kernel
from .backends import backend_name, dtype_name, namespace, resolve_dtype

__all__ = ["Network", "batched", "classify", "forward", "init_network", "predict"]


def _identity_kernel(x: Any, xp: ModuleType) -> Any:
    return x


# Hidden activations: each maps a namespace to its kernel (chosen once per network).
_HIDDEN: dict[str, Callable[[ModuleType], Callable[[Any, ModuleType], Any]]] = {
    "sigmoid": sigmoid_kernel_for,
    "relu": lambda xp: relu_kernel,
    "tanh": lambda xp: lambda x, xp: xp.tanh(x),
    "identity": lambda xp: _identity_kernel,
}
_OUTPUT: dict[str, Callable[[Any, ModuleType], Any]] = {
    "identity": _identity_kernel,
    "softmax": softmax_kernel,
}
_PARAM_RE = re.compile(r"^([Wb])([1-9][0-9]*)$")


def _choice(value: str, options: Mapping[str, Any], what: str) -> str:
    if value not in options:
        raise ValueError(f"unknown {what} {value!r}; choose one of: {', '.join(options)}")
    return value


def _layer_arrays(params: Mapping[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validate ``{W1, b1, ..., Wn, bn}`` and return host ``(W, b)`` pairs."""
    if not isinstance(params, Mapping):
        raise TypeError(f"network parameters must be a mapping, got {type(params).__name__}")
    indices: dict[int, set[str]] = {}
    for key in params:
        match = _PARAM_RE.match(key) if isinstance(key, str) else None
        if match is None:
            raise ValueError(f"unexpected network parameter {key!r}; expected W1, b1, ..., Wn, bn")
        indices.setdefault(int(match.group(2)), set()).add(match.group(1))
    n = len(indices)
    if n == 0 or sorted(indices) != list(range(1, n + 1)):
        raise ValueError(
            "network parameters must be numbered W1, b1 ... Wn, bn without gaps, "
            f"got {sorted(params)}"
        )
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(1, n + 1):
        if indices[i] != {"W", "b"}:
            missing = ({"W", "b"} - indices[i]).pop()
            raise ValueError(f"network parameter {missing}{i} is missing")
        # Own copies: a caller changing its arrays later must not change the network.
        w, b = (_host_parameter(params[f"{k}{i}"]) for k in ("W", "b"))
        for name, arr in ((f"W{i}", w), (f"b{i}", b)):
            if arr.dtype.kind not in "fiu":
                raise TypeError(
                    f"network parameter {name} must be real numbers, got dtype {arr.dtype}"
                )
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


def _host_parameter(value: Any) -> np.ndarray:
    """A C-ordered host copy of one weight array (host-side weight preparation)."""
    if isinstance(value, (list, tuple, numbers.Number)):
        return np.array(value)
    host, _ = host_view(value)
    return np.array(host, copy=True, order="C")


def _positive_integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def batched(
    fn: Callable[[Any], Any],
    x: Any,
    batch_size: int | None,
    xp: ModuleType,
    progress: Callable[[int], None] | None = None,
) -> Any:
    """Apply ``fn`` to consecutive blocks of ``batch_size`` rows of ``x``; concatenate.

    The one batching loop of xpnn. ``batch_size=None`` is one block of all
    rows; ``progress(rows)`` is called after each block.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> batched(lambda b: b * 2, xp.asarray([1, 2, 3]), 2, xp)
    Array([2, 4, 6], dtype=array_api_strict.int64)
    >>> batched(lambda b: b, xp.asarray([1, 2, 3]), None, xp)
    Array([1, 2, 3], dtype=array_api_strict.int64)
    """
    n = x.shape[0]
    if batch_size is None or not isinstance(n, int):  # one block; symbolic row counts too
        out = fn(x)
        if progress is not None and isinstance(n, int):
            progress(n)
        return out
    size = min(batch_size, n)
    parts = []
    for start in range(0, n, max(size, 1)):
        block = x[start : min(start + size, n), ...] if size < n else x
        parts.append(fn(block))
        if progress is not None:
            progress(block.shape[0])
    if len(parts) == 1:
        return parts[0]
    return xp.concat(parts) if parts else fn(x)


def _default_dtype(layers: list[tuple[np.ndarray, np.ndarray]]) -> str:
    dtypes = {arr.dtype for pair in layers for arr in pair}
    if len(dtypes) == 1:
        (only,) = dtypes
        if only.name in ("float16", "float32", "float64"):
            return only.name
    return "float32"


class Network:
    """A multi-layer perceptron: affine layers, a hidden activation, an output function.

    Parameters
    ----------
    params : mapping
        ``{"W1": W1, "b1": b1, ..., "Wn": Wn, "bn": bn}``; ``Wi`` has shape
        ``(d_{i-1}, d_i)``, ``bi`` shape ``(d_i,)``. Arrays of any backend,
        or nested lists.
    hidden : {"sigmoid", "relu"}
        Activation after every layer but the last.
    output : {"identity", "softmax"}
        Output function applied by :meth:`predict`.
    backend, device
        Where the weights live; see :func:`xpnn.namespace`.
    dtype : {"float32", "float64", "float16"} or None
        Compute dtype; ``None`` keeps the parameters' common floating dtype,
        else float32.
    input_scale : float
        Factor applied to every input before the first layer, folded into
        ``W1`` (so it costs nothing per call). ``1/255`` lets raw uint8 pixels
        feed the network directly.

    Examples
    --------
    >>> net = Network({"W1": [[1.0, 0.0], [0.0, 1.0]], "b1": [0.0, 0.0]},
    ...               backend="array_api_strict", dtype="float64")
    >>> net
    Network(2-2, hidden='sigmoid', output='identity', backend='array_api_strict', \
device=array_api_strict.Device('CPU_DEVICE'), dtype=float64)
    >>> net.forward([3.0, 4.0])
    Array([3., 4.], dtype=array_api_strict.float64)
    """

    xp: ModuleType
    device: Any
    backend: str
    dtype_name: str
    dtype: Any
    input_scale: float
    output: str
    _host: list[tuple[np.ndarray, np.ndarray]]
    _layers: tuple[tuple[Any, Any], ...]
    _hidden_layers: tuple[tuple[Any, Any], ...]
    _last_layer: tuple[Any, Any]
    _hidden_fn: Callable[[Any, ModuleType], Any]
    _output_fn: Callable[[Any, ModuleType], Any]
    _matmul: Callable[[Any, Any], Any]
    _array_type: type
    _array_dtype: Any
    _check_device: bool
    _scope: AbstractContextManager[Any]
    _facts: BackendFacts

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
        names = (hidden,) if isinstance(hidden, str) else tuple(hidden)
        for name in names:
            _choice(name, _HIDDEN, "hidden activation")
        self.output = _choice(output, _OUTPUT, "output function")
        if (
            isinstance(input_scale, bool)
            or not isinstance(input_scale, numbers.Real)
            or not (0 < float(input_scale) < float("inf"))
        ):
            raise ValueError(f"input_scale must be a positive finite number, got {input_scale!r}")
        self.input_scale = float(input_scale)
        host = _layer_arrays(params)
        if len(names) != 1 and len(names) != len(host) - 1:
            raise ValueError(
                f"hidden names {len(names)} activations for {len(host) - 1} hidden layers"
            )
        uniform = len(set(names)) <= 1
        self.hidden: str | tuple[str, ...] = names[0] if uniform and names else names
        self._hidden_names = names * (len(host) - 1) if len(names) == 1 else names
        self.xp, self.device = namespace(backend, device)
        self.backend = backend_name(backend)
        self._facts = facts(self.backend)
        self._scope = device_scope(self.backend, self.device)
        self.dtype_name = dtype_name(self.xp, dtype or _default_dtype(host))
        self.dtype = resolve_dtype(self.xp, self.dtype_name)
        self._host = host
        layers = []
        for i, (w, b) in enumerate(host):
            if i == 0 and self.input_scale != 1.0:
                w = w.astype(np.float64) * self.input_scale
            with self._scope:
                layers.append((self._place(w), self._place(b)))
        self._layers = tuple(layers)
        self._hidden_layers, self._last_layer = self._layers[:-1], self._layers[-1]
        self._hidden_fns: tuple[Callable[[Any, ModuleType], Any], ...] = tuple(
            _HIDDEN[name](self.xp) for name in self._hidden_names
        )
        self._hidden_fn = self._hidden_fns[0] if self._hidden_fns else _identity_kernel
        self._output_fn = _OUTPUT[self.output]
        self._matmul = matmul_for(self.xp)
        # A forward pass of its own on JAX (compiled once per input shape) and
        # NumPy (sigmoid layers as tanh folded into the weights), else None.
        self._fast: FastForward | None = (
            fast_forward(self.xp, self._hidden_fn, self._layers, self._matmul)
            if len(set(self._hidden_names)) <= 1
            else None
        )
        self._array_type = type(self._layers[0][1])
        self._array_dtype = self._layers[0][1].dtype  # what x.dtype compares to
        # Only compare devices where a namespace has more than one.
        self._check_device = self._facts.many_devices

    def _place(self, arr: np.ndarray, copy: bool | None = None) -> Any:
        return self.xp.asarray(arr, dtype=self.dtype, device=self.device, copy=copy)

    # -- description -------------------------------------------------------

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
        """A copy of the weights as ``{"W1": ..., "b1": ...}`` on the network's backend.

        ``input_scale`` is not folded into these: they are the weights the
        network was built from, in its dtype. Changing them does not change
        the network.
        """
        out: dict[str, Any] = {}
        with self._scope:
            for i, (w, b) in enumerate(self._host, start=1):
                out[f"W{i}"] = self._place(w, copy=True)
                out[f"b{i}"] = self._place(b, copy=True)
        return out

    def host_params(self) -> dict[str, np.ndarray]:
        """A NumPy copy of the weights the network was built from (no device round trip).

        The arrays are those the network keeps on the host, in their original
        dtype, before ``input_scale`` is folded in; changing them does not
        change the network.

        Examples
        --------
        >>> sorted(init_network().host_params())
        ['W1', 'W2', 'W3', 'b1', 'b2', 'b3']
        """
        return {
            f"{k}{i}": arr.copy()
            for i, (w, b) in enumerate(self._host, 1)
            for k, arr in (("W", w), ("b", b))
        }

    def __repr__(self) -> str:
        sizes = "-".join(str(n) for n in self.layer_sizes)
        scale = f", input_scale={self.input_scale!r}" if self.input_scale != 1.0 else ""
        return (
            f"Network({sizes}, hidden={self.hidden!r}, output={self.output!r}, "
            f"backend={self.backend!r}, device={self.device!r}, dtype={self.dtype_name}{scale})"
        )

    def to(
        self,
        backend: str | None = None,
        device: Any = None,
        dtype: str | None = None,
        *,
        input_scale: float | None = None,
    ) -> Network:
        """Return a copy of this network on another backend, device or dtype.

        ``None`` keeps the current backend, dtype and input scale, and the
        current device while the backend stays the same (else the new
        backend's default device).

        Examples
        --------
        >>> net = init_network(backend="numpy")
        >>> net.to("array_api_strict", "device1", "float64").device
        array_api_strict.Device('device1')
        """
        same_backend = backend is None or backend_name(backend) == self.backend
        if device is None and same_backend:
            device = self.device
        return Network(
            self.host_params(),
            hidden=self.hidden,
            output=self.output,
            backend=self.backend if backend is None else backend,
            device=device,
            dtype=dtype or self.dtype_name,
            input_scale=self.input_scale if input_scale is None else input_scale,
        )

    # -- computation ---------------------------------------------------------

    def _adopt(self, x: Any) -> Any:
        """Bring an input of another type, namespace or device to the network."""
        if isinstance(x, (list, tuple)):
            x = np.asarray(x)
        check_array_type(x, "forward")
        is_array: bool = isinstance(x, np.generic) or array_api_compat.is_array_api_obj(x)
        if not is_array:
            raise TypeError(
                f"network input must be an array or a list of numbers, got {type(x).__name__}"
            )
        kind = getattr(getattr(x, "dtype", None), "kind", None)
        if kind is not None and kind not in "fiub":  # NumPy: object, complex, strings
            raise TypeError(f"network input must be real numbers, got dtype {x.dtype}")
        with self._scope:
            return move(x, self._facts, self.xp, self.device, self.dtype_name)

    def _prepare(self, x: Any) -> Any:
        if (
            type(x) is not self._array_type
            or (self._check_device and array_api_compat.device(x) != self.device)
            # NumPy arrays to NumPy networks: byte order, longdouble, objects checked there
            or (isinstance(x, np.ndarray) and not (x.dtype.isnative and x.dtype.kind in "fiub"))
        ):
            x = self._adopt(x)
        if x.dtype != self._array_dtype:
            xp = self.xp
            try:
                real = xp.isdtype(x.dtype, ("real floating", "integral", "bool"))
            except (TypeError, ValueError):
                real = False
            if not real:
                raise TypeError(f"network input must be real numbers, got dtype {x.dtype}")
            x = xp.astype(x, self.dtype)
        width = x.shape[-1] if x.ndim else None
        if x.ndim not in (1, 2) or (width is not None and width != self.input_size):
            raise ValueError(
                f"network expects inputs of shape ({self.input_size},) or "
                f"(n, {self.input_size}); got shape {tuple(x.shape)}"
            )
        return x

    def _forward(self, x: Any) -> Any:
        if self._fast is not None:
            return self._fast.forward(x)
        xp, matmul = self.xp, self._matmul
        for (w, b), act in zip(self._hidden_layers, self._hidden_fns, strict=True):
            x = act(matmul(x, w) + b, xp)
        w, b = self._last_layer
        return matmul(x, w) + b

    def forward(self, x: Any) -> Any:
        """Return the last layer's affine output (the identity output, logits).

        Parameters
        ----------
        x : array_like
            One sample ``(d,)`` or a batch ``(n, d)``, of any backend and
            device (moved to the network first), or a list.

        Returns
        -------
        array
            ``(k,)`` or ``(n, k)`` on the network's backend, device and dtype.

        Examples
        --------
        >>> net = init_network(dtype="float64")
        >>> net.forward([[1.0, 0.5], [0.0, 0.0]]).shape
        (2, 2)
        """
        with self._scope:
            return self._forward(self._prepare(x))

    def predict(self, x: Any) -> Any:
        """Return the network's output: :meth:`forward` then the output function.

        Examples
        --------
        >>> net = init_network(dtype="float64")
        >>> net.predict([1.0, 0.5])
        array([0.31682708, 0.69627909])
        """
        with self._scope:
            return self._output_fn(self._forward(self._prepare(x)), self.xp)

    def classify(
        self,
        x: Any,
        batch_size: int | None = None,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> Any:
        """Return the predicted class of each row of ``x`` (argmax of the logits).

        Parameters
        ----------
        x : array_like
            A batch ``(n, d)`` of any backend, or one sample ``(d,)``; each
            batch is moved to the network on its own, so a host array larger
            than device memory streams through.
        batch_size : int or None
            Rows per forward pass; ``None`` is one pass over all rows. It has
            no effect on one sample.
        progress : callable or None
            Called with the number of rows after each batch.

        Returns
        -------
        array
            ``(n,)`` integer labels for a batch, a 0-d integer array for one
            sample, on the network's backend and device.

        Examples
        --------
        >>> net = init_network(dtype="float64")
        >>> net.classify([[1.0, 0.5], [-3.0, 0.0]], batch_size=1)
        array([1, 1])
        >>> net.classify([1.0, 0.5]).shape
        ()
        """
        if batch_size is not None:
            batch_size = _positive_integer(batch_size, "batch_size")
        if not hasattr(x, "shape") or getattr(x, "ndim", 2) != 2:
            x = self._prepare(x)  # lists, and one sample (d,): one pass
        xp = self.xp
        with self._scope:
            if x.ndim != 2:
                return xp.argmax(self._forward(x), axis=-1)
            if self._fast is not None:  # one compiled shape for every batch
                return self._fast.classify(x, batch_size, self._prepare, progress)

            def labels(block: Any) -> Any:
                return xp.argmax(self._forward(self._prepare(block)), axis=-1)

            return batched(labels, x, batch_size, xp, progress)


def init_network(backend: str | None = None, device: Any = None, dtype: str = "float32") -> Network:
    """Return the chapter's 3-layer example network (2-3-2-2, sigmoid, identity).

    Examples
    --------
    >>> net = init_network(backend="numpy", dtype="float64")
    >>> forward(net, [1.0, 0.5])
    array([0.31682708, 0.69627909])
    """
    params = {
        "W1": [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]],
        "b1": [0.1, 0.2, 0.3],
        "W2": [[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]],
        "b2": [0.1, 0.2],
        "W3": [[0.1, 0.3], [0.2, 0.4]],
        "b3": [0.1, 0.2],
    }
    return Network(params, backend=backend, device=device, dtype=dtype)


def forward(network: Network, x: Any) -> Any:
    """Return ``network``'s identity output for ``x`` (see :meth:`Network.forward`).

    Examples
    --------
    >>> forward(init_network(dtype="float64"), [1.0, 0.5])
    array([0.31682708, 0.69627909])
    """
    return network.forward(x)


def predict(network: Network, x: Any) -> Any:
    """Return ``network``'s output for ``x`` (see :meth:`Network.predict`).

    Examples
    --------
    >>> predict(init_network(dtype="float64"), [1.0, 0.5])
    array([0.31682708, 0.69627909])
    """
    return network.predict(x)


def classify(network: Network, x: Any, batch_size: int | None = None) -> Any:
    """Return predicted labels (see :meth:`Network.classify`).

    Examples
    --------
    >>> classify(init_network(dtype="float64"), [[1.0, 0.5]])
    array([1])
    """
    return network.classify(x, batch_size)
