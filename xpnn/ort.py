"""Run an ONNX model of a network with ONNX Runtime, on the CPU or a CUDA GPU.

The model is checked (:func:`xpnn.onnx_import.load_model`) before ONNX Runtime loads it, its
metadata validated, inputs checked before each run and outputs after; failures are one line.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import array_api_compat.numpy as xnp
import numpy as np

from .backends import parse_device, to_numpy
from .errors import BackendError, OnnxError, first_line, positive_int
from .export import OUTPUTS, export_model
from .network import Network, batched
from .onnx_import import _onnx, load_model

__all__ = ["OnnxRunner", "mnist_runner"]

_CUDA, _CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
# ONNX Runtime's names of the element types a network's input (or scores) can have.
_FLOATS = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16"}
_INPUTS = {**_FLOATS, "tensor(uint8)": "uint8"}
_SIZES = "xpnn.layer_sizes"


def _providers(ort: Any, device: str) -> tuple[str, list[Any]]:
    """Return the canonical device name and the execution providers for it."""
    kind, index = parse_device(device) if isinstance(device, str) else ("", None)
    if kind == "cpu" and index in (None, 0):
        return "cpu", [_CPU]
    if kind != "cuda":
        raise BackendError(f"onnxruntime has no device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")
    if _CUDA not in (available := ort.get_available_providers()):
        have = f"onnxruntime {ort.__version__} has only {', '.join(available)}"
        raise BackendError(f"device {device!r}: {have}; install onnxruntime-gpu, or use 'cpu'")
    return f"cuda:{index or 0}", [(_CUDA, {"device_id": index or 0}), _CPU]


class OnnxRunner:
    """An ONNX model (a path or its bytes) of a classifier, checked, then loaded in ONNX Runtime.

    ``device`` is ``"cpu"`` or ``"cuda[:N]"`` (with onnxruntime-gpu); a model of other
    ``input_size`` or ``classes`` than given is refused. Attributes: ``device``, ``input_dtype``,
    ``input_size``, ``output`` (``"labels"``, ``"logits"`` or ``"probabilities"``), ``classes``
    (None: unknown), ``batch`` (fixed rows, None: dynamic), ``metadata``.

    Examples
    --------
    >>> import numpy as np, xpnn
    >>> runner = OnnxRunner.from_network(xpnn.init_network(), output="labels")
    >>> runner.classify([[1.0, 0.5], [-1.0, 3.0]]).tolist()
    [1, 1]
    >>> runner.from_pixels(np.array([[0, 255]], dtype=np.uint8))
    array([[0., 1.]], dtype=float32)
    """

    def __init__(self, model: str | os.PathLike[str] | bytes, *, device: str = "cpu",
                 input_size: int | None = None, classes: int | None = None) -> None:  # fmt: skip
        ort = _onnx("onnxruntime")
        self.device, providers = _providers(ort, device)
        proto, data, self.name, folder = load_model(model, OnnxError)  # before the runtime
        options, self._options = ort.SessionOptions(), ort.RunOptions()
        options.log_severity_level = self._options.log_severity_level = 4  # log fatal errors only
        if folder is not None:
            key = "session.model_external_initializers_file_folder_path"
            options.add_session_config_entry(key, str(folder))
        try:
            self.session = ort.InferenceSession(data, options, providers=providers)
        except Exception as err:
            raise OnnxError(
                f"onnxruntime cannot load {self.name} on {self.device}: {first_line(err)}"
            ) from None
        if self.device != "cpu" and self.session.get_providers()[0] != _CUDA:
            why = "no such device, or CUDA/cuDNN libraries missing"
            raise BackendError(f"onnxruntime cannot use CUDA on {self.device} ({why}); use 'cpu'")
        self.metadata: dict[str, str] = {p.key: p.value for p in proto.metadata_props}
        self._signature(input_size, classes)

    def _signature(self, input_size: int | None, classes: int | None) -> None:
        (x, *more), (y, *_) = self.session.get_inputs(), self.session.get_outputs()
        self.input_name, self.output_name, meta = x.name, y.name, self.metadata
        rows, width = x.shape if len(x.shape) == 2 else (None, None)
        self.batch: int | None = rows if isinstance(rows, int) else None
        self.input_size: int = width if isinstance(width, int) else 0
        self.input_dtype = _INPUTS.get(x.type, "")
        labels = y.type in ("tensor(int64)", "tensor(int32)") and len(y.shape) == 1
        scores = y.type in _FLOATS and len(y.shape) == 2 and isinstance(y.shape[1], int)
        self.output = meta.get("xpnn.output", "labels" if labels else "logits")
        self.dtype = meta.get("xpnn.dtype", self.input_dtype)
        try:
            sizes = [int(n) for n in meta.get(_SIZES, "1").split(",")]
            self.input_scale = float(meta.get("xpnn.input_scale", "1"))
        except ValueError:
            sizes, self.input_scale = [0], 0.0
        recorded = (sizes[0], sizes[-1]) if _SIZES in meta else None
        labelled = sizes[-1] if labels and recorded else classes  # a labels model's own record
        self.classes: int | None = y.shape[1] if scores else labelled
        have = f"{self.input_size} inputs and {self.classes or 'unknown'} classes"
        need = f"{input_size or self.input_size} inputs and {classes or self.classes} classes"
        shapes = f"takes {x.type} {x.shape}{' and more' * bool(more)}, returns {y.type} {y.shape}"
        shapes += "; a network takes (rows, features), returns labels (rows,) or (rows, classes)"
        for failed, text in [
            (more or not self.input_dtype or not self.input_size or self.batch == 0, shapes),
            (not (labels or scores), shapes),
            (self.output not in OUTPUTS or (self.output == "labels") != labels, "xpnn.output"),
            (not (math.isfinite(self.input_scale) and self.input_scale > 0), "xpnn.input_scale"),
            (min(sizes) < 1 or recorded not in (None, (self.input_size, self.classes)), _SIZES),
            (self.dtype not in _FLOATS.values(), "xpnn.dtype"),
            (have != need, f"is a network of {have}, but {need} are needed here"),
        ]:
            if failed:
                bad = f"has metadata {text}={meta.get(text)!r}: malformed, or not its graph's"
                raise OnnxError(f"{self.name} {bad if text.startswith('xpnn.') else text}")

    @classmethod
    def from_network(cls, net: Network, *, device: str = "cpu", **export: Any) -> OnnxRunner:
        """Export ``net`` in memory (options of :func:`xpnn.export_onnx`) and load it."""
        return cls(export_model(net, **export).SerializeToString(), device=device)

    def __repr__(self) -> str:
        shape = f"({self.batch or 'batch'}, {self.input_size}) {self.input_dtype}"
        return f"OnnxRunner({self.name}, {shape} -> {self.output}, device={self.device!r})"

    def from_pixels(self, pixels: Any) -> np.ndarray:
        """Raw uint8 pixels as this model's input (for a float model ``p / 255 / input_scale``)."""
        host = to_numpy(pixels)
        if host.dtype != np.uint8:
            raise TypeError(f"pixels must be uint8, got dtype {host.dtype}")
        if self.input_dtype == "uint8":
            return host
        divisor = np.asarray(255 * self.input_scale, dtype=self.input_dtype)
        return np.asarray(host.astype(self.input_dtype) / divisor)

    def run(self, x: Any) -> np.ndarray:
        """The model's output for ``x`` (a row or rows, any backend): a row each, labels 0..k-1."""
        host = np.asarray(x) if isinstance(x, (list, tuple)) else to_numpy(x)
        if host.dtype.kind not in "fiub":
            raise TypeError(f"model input must be real numbers, got dtype {host.dtype}")
        if host.ndim not in (1, 2) or host.shape[-1] != self.input_size:
            want = f"({self.input_size},) or (n, {self.input_size})"
            raise ValueError(f"{self.name} takes shape {want}; got shape {host.shape}")
        if self.input_dtype == "uint8" and host.dtype != np.uint8:
            raise TypeError(f"{self.name} takes uint8 pixels, got dtype {host.dtype}")
        feed = np.ascontiguousarray(host.reshape(-1, self.input_size), dtype=self.input_dtype)
        rows, labels = feed.shape[0], self.output == "labels"
        if self.batch not in (None, rows):
            raise OnnxError(f"{self.name} has a fixed batch of {self.batch} rows; got {rows}")
        try:
            (out,) = self.session.run([self.output_name], {self.input_name: feed}, self._options)
        except Exception as err:
            raise OnnxError(f"onnxruntime failed to run {self.name}: {first_line(err)}") from None
        shape, top = ((rows,), self.classes or 2**62) if labels else ((rows, self.classes), 1)
        if out.shape != shape or (labels and out.size and not 0 <= out.min() <= out.max() < top):
            what = f"labels {out.min()}..{out.max()}" if out.shape == shape else out.shape
            need = f" of labels 0..{top - 1}" if labels and self.classes else ""
            raise OnnxError(f"{self.name} returned {what} for {rows} rows; not {shape}{need}")
        return out[0] if host.ndim == 1 else out  # type: ignore[no-any-return]

    def classify(self, x: Any, batch_size: int | None = None, *,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:  # fmt: skip
        """Int64 labels of ``x``'s rows, ``batch_size`` per run; ``progress(rows)`` after each."""
        size = None if batch_size is None else positive_int(batch_size, "batch_size")
        host = np.asarray(x) if isinstance(x, (list, tuple)) else to_numpy(x)

        def labels(block: np.ndarray) -> np.ndarray:  # per block: only labels are kept
            out = self.run(block)
            return (out if self.output == "labels" else np.argmax(out, axis=-1)).astype(np.int64)

        return batched(labels, host, size, xnp, progress) if host.ndim == 2 else labels(host)


def mnist_runner(weights: str | os.PathLike[str] | None = None, *,
                 data_dir: str | os.PathLike[str] | None = None, dtype: str = "float32",
                 device: str = "cpu") -> OnnxRunner:  # fmt: skip
    """A runner for an MNIST ``.onnx`` (784 features, 10 classes), or weights exported.

    Other weights (``None``: the book's) are exported for uint8 pixels, as ``xpnn eval`` does.

    Examples
    --------
    >>> import pathlib, tempfile, numpy as np, xpnn
    >>> linear = xpnn.Network({"W1": np.zeros((784, 10)), "b1": np.arange(10.0)})
    >>> path = xpnn.export_onnx(linear, pathlib.Path(tempfile.mkdtemp()) / "linear.onnx")
    >>> mnist_runner(path).classify(np.zeros((2, 784), dtype=np.float32)).tolist()
    [9, 9]
    """
    from .weights import load_weights, pretrained_network

    if weights is not None and os.fspath(weights).lower().endswith(".onnx"):
        return OnnxRunner(weights, device=device, input_size=784, classes=10)
    _providers(_onnx("onnxruntime"), device)  # a device error before the export
    if weights is None:
        net = pretrained_network(data_dir=data_dir, backend="numpy", dtype=dtype)
    else:
        net = load_weights(weights, backend="numpy", dtype=dtype)
    if (net.input_size, net.layer_sizes[-1]) != (784, 10):
        sizes = f"{net.input_size} inputs and {net.layer_sizes[-1]} classes"
        raise OnnxError(f"{str(weights)!r} has {sizes}; MNIST needs 784 inputs, 10 classes")
    pixels = net.to(input_scale=1.0)  # the export folds the /255 into W1
    return OnnxRunner.from_network(pixels, input_dtype="uint8", output="labels", device=device)
