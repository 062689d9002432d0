"""Run an ONNX model of a network with ONNX Runtime, on the CPU or a CUDA GPU.

A model file is code: :class:`OnnxRunner` checks it with ``onnx`` before ONNX
Runtime loads it (:func:`xpnn.onnx_import.check_model`: a plain MLP's
operators only, no control flow, subgraphs or functions, external data from
the model's folder only) and validates its xpnn metadata as strictly as a
weights file's settings. Inputs are checked before a run and outputs after;
every failure is one :class:`~xpnn.OnnxError` line, and ONNX Runtime logs only
fatal errors (set for the session and for each run). Needs ``pip install
'xpnn[onnx]'`` (onnx and onnxruntime).
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import array_api_compat
import numpy as np

from .backends import parse_device, to_numpy
from .errors import BackendError, OnnxError, first_line, positive_int
from .network import batched
from .onnx_import import _read_file, check_model

if TYPE_CHECKING:
    from .network import Network

__all__ = ["OnnxRunner", "mnist_runner"]

_CUDA, _CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
_FATAL = 4  # ONNX Runtime's log severity: its errors reach us as exceptions
# ONNX Runtime's names of the element types a network's input (or scores) can have.
_FLOATS = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16"}
_INPUTS = {**_FLOATS, "tensor(uint8)": "uint8"}
_LABELS = ("tensor(int64)", "tensor(int32)")


def _import_onnxruntime() -> Any:
    try:
        return importlib.import_module("onnxruntime")
    except ImportError as err:
        raise BackendError(
            f"backend 'onnxruntime' is not installed ({err}); install it with: "
            "pip install 'xpnn[onnx]'"
        ) from None


def _providers(ort: Any, device: str) -> tuple[str, list[Any]]:
    """Return the canonical device name and the execution providers for it."""
    kind, index = parse_device(device) if isinstance(device, str) else ("", None)
    if kind == "cpu" and index in (None, 0):
        return "cpu", [_CPU]
    if kind != "cuda":
        raise BackendError(
            f"backend 'onnxruntime' has no device {device!r}; choose 'cpu', 'cuda' or 'cuda:N'"
        )
    if _CUDA not in (available := ort.get_available_providers()):
        raise BackendError(
            f"device {device!r} needs ONNX Runtime's CUDA execution provider, but the "
            f"installed onnxruntime {ort.__version__} has only {', '.join(available)}; "
            "install onnxruntime-gpu in place of onnxruntime, or use device 'cpu'"
        )
    return f"cuda:{index or 0}", [(_CUDA, {"device_id": index or 0}), _CPU]


class OnnxRunner:
    """An ONNX model of a classifier, checked, then loaded in ONNX Runtime.

    Parameters
    ----------
    model : path-like or bytes
        An ``.onnx`` file, or a serialized model.
    device : str
        ``"cpu"``, or ``"cuda"``/``"cuda:N"`` where onnxruntime-gpu has a GPU.
    input_size, classes : int or None
        The sizes the caller needs; a model of others is refused.

    Attributes
    ----------
    device, input_dtype, input_size, output, classes, batch, metadata
        ``"cpu"`` or ``"cuda:N"``; the input's dtype name and features; what
        the model returns (``"labels"``, ``"logits"`` or ``"probabilities"``,
        from xpnn's metadata, else ``"logits"`` for scores); the classes
        (``None`` if unknown); fixed rows per run (``None``: dynamic); the
        model's metadata properties.

    Examples
    --------
    >>> import xpnn
    >>> runner = OnnxRunner.from_network(xpnn.init_network(), output="labels")
    >>> runner.classify([[1.0, 0.5], [-1.0, 3.0]]).tolist()
    [1, 1]
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | bytes,
        *,
        device: str = "cpu",
        input_size: int | None = None,
        classes: int | None = None,
    ) -> None:
        ort = _import_onnxruntime()
        self.device, providers = _providers(ort, device)
        folder, self.name = None, "the ONNX model"
        if not isinstance(model, bytes):
            path = Path(os.fspath(model))
            self.name, folder, model = (
                repr(str(path)),
                path.parent.resolve(),
                _read_file(path, OnnxError),
            )
        proto = check_model(model, self.name, folder, OnnxError)  # before the runtime sees it
        options, self._run_options = ort.SessionOptions(), ort.RunOptions()
        options.log_severity_level = self._run_options.log_severity_level = _FATAL
        if folder is not None:
            key = "session.model_external_initializers_file_folder_path"
            options.add_session_config_entry(key, str(folder))
        try:
            self.session = ort.InferenceSession(model, options, providers=providers)
        except Exception as err:
            raise OnnxError(
                f"onnxruntime cannot load {self.name} on {self.device}: {first_line(err)}"
            ) from None
        if self.device != "cpu" and self.session.get_providers()[0] != _CUDA:
            raise BackendError(
                f"onnxruntime could not start its CUDA execution provider on {self.device} "
                "(no such device, or CUDA/cuDNN libraries missing); use device 'cpu'"
            )
        self.metadata: dict[str, str] = {p.key: p.value for p in proto.metadata_props}
        self._signature(input_size, classes)

    def _signature(self, input_size: int | None, classes: int | None) -> None:
        (x, *more), (y, *_) = self.session.get_inputs(), self.session.get_outputs()
        self.input_name, self.output_name = x.name, y.name
        if more or x.type not in _INPUTS or len(x.shape) != 2 or not isinstance(x.shape[1], int):
            raise OnnxError(
                f"{self.name} takes {x.type} of shape {x.shape}{' and more' if more else ''}; "
                "a network model takes one input of shape (batch, features)"
            )
        self.input_dtype, self.input_size = _INPUTS[x.type], int(x.shape[1])
        self.batch: int | None = x.shape[0] if isinstance(x.shape[0], int) else None
        if self.batch == 0 or self.input_size == 0:
            raise OnnxError(f"{self.name} declares an input of shape {x.shape}: nothing to score")
        if y.type in _LABELS and len(y.shape) == 1:
            self.output, self.classes = "labels", classes
        elif y.type in _FLOATS and len(y.shape) == 2 and isinstance(y.shape[1], int):
            self.output, self.classes = "logits", y.shape[1]
        else:
            raise OnnxError(
                f"{self.name} returns {y.type} of shape {y.shape}; a network model returns "
                "labels (batch,) or scores (batch, classes)"
            )
        meta = self.metadata
        claimed = meta.get("xpnn.output", self.output)
        if claimed not in ("logits", "probabilities", "labels") or (claimed == "labels") != (
            self.output == "labels"
        ):
            raise OnnxError(
                f"{self.name} returns {y.type} but its metadata says xpnn.output={claimed!r}"
            )
        self.output, self.dtype = claimed, meta.get("xpnn.dtype", self.input_dtype)
        try:
            sizes = [int(n) for n in meta.get("xpnn.layer_sizes", "1").split(",")]
            self.input_scale = float(meta.get("xpnn.input_scale", "1.0"))
            if not (math.isfinite(self.input_scale) and self.input_scale > 0 and min(sizes) > 0):
                raise ValueError
        except ValueError:
            raise OnnxError(
                f"{self.name} has malformed metadata (xpnn.input_scale or xpnn.layer_sizes)"
            ) from None
        if "xpnn.layer_sizes" in meta:
            if (sizes[0], self.classes or sizes[-1]) != (self.input_size, sizes[-1]):
                raise OnnxError(f"{self.name}'s xpnn.layer_sizes do not match its graph")
            self.classes = sizes[-1]
        if self.dtype not in _FLOATS.values():
            raise OnnxError(f"{self.name} has an unknown xpnn.dtype {self.dtype!r}")
        if (input_size or self.input_size, classes or self.classes) != (
            self.input_size,
            self.classes,
        ):
            have = f"{self.input_size} inputs and {self.classes or 'unknown'} classes"
            need = f"{input_size or self.input_size} inputs and {classes or self.classes} classes"
            raise OnnxError(f"{self.name} is a network of {have}, but {need} are needed here")

    @classmethod
    def from_network(
        cls,
        net: Network,
        *,
        input_dtype: str = "float32",
        output: str = "logits",
        batch: int | None = None,
        device: str = "cpu",
    ) -> OnnxRunner:
        """Export ``net`` (see :func:`xpnn.export_onnx`) and load it, in memory."""
        from .export import export_model

        model = export_model(net, input_dtype=input_dtype, output=output, batch=batch)
        return cls(model.SerializeToString(), device=device)

    def __repr__(self) -> str:
        rows = "batch" if self.batch is None else str(self.batch)
        return (
            f"OnnxRunner({self.name}, ({rows}, {self.input_size}) {self.input_dtype} -> "
            f"{self.output}, device={self.device!r})"
        )

    def from_pixels(self, pixels: Any) -> np.ndarray:
        """Raw uint8 pixels as this model's input: the first layer sees ``p / 255`` either way.

        Unchanged for a uint8 model; for a float model, ``p / 255`` divided by
        the ``input_scale`` recorded in xpnn's metadata (else 1).

        Examples
        --------
        >>> import numpy as np, xpnn
        >>> runner = OnnxRunner.from_network(xpnn.init_network())
        >>> runner.from_pixels(np.array([[0, 255]], dtype=np.uint8))
        array([[0., 1.]], dtype=float32)
        """
        host = to_numpy(pixels)
        if host.dtype != np.uint8:
            raise TypeError(f"pixels must be uint8, got dtype {host.dtype}")
        if self.input_dtype == "uint8":
            return host
        scaled: np.ndarray = host.astype(self.input_dtype) / np.asarray(
            255 * self.input_scale, dtype=self.input_dtype
        )
        return scaled

    def run(self, x: Any) -> np.ndarray:
        """Return the model's output for ``x`` (one row ``(d,)`` or rows ``(n, d)``, any backend).

        The output is checked: one result per row, labels within ``0..classes-1``.
        """
        host = np.asarray(x) if isinstance(x, (list, tuple)) else to_numpy(x)
        if host.dtype.kind not in "fiub":
            raise TypeError(f"model input must be real numbers, got dtype {host.dtype}")
        if host.ndim not in (1, 2) or host.shape[-1] != self.input_size:
            raise ValueError(
                f"{self.name} expects inputs of shape ({self.input_size},) or "
                f"(n, {self.input_size}); got shape {host.shape}"
            )
        if self.input_dtype == "uint8" and host.dtype != np.uint8:
            raise TypeError(f"{self.name} takes uint8 pixels, got dtype {host.dtype}")
        feed = np.ascontiguousarray(host.reshape(-1, self.input_size), dtype=self.input_dtype)
        rows, labels = feed.shape[0], self.output == "labels"
        if self.batch not in (None, rows):
            raise OnnxError(
                f"{self.name} has a fixed batch of {self.batch} rows; got {rows} (give it "
                f"batches of {self.batch})"
            )
        try:
            (out,) = self.session.run(
                [self.output_name], {self.input_name: feed}, self._run_options
            )
        except Exception as err:
            raise OnnxError(f"onnxruntime failed to run {self.name}: {first_line(err)}") from None
        shape, top = ((rows,), self.classes or 2**62) if labels else ((rows, self.classes), 1)
        if out.shape != shape or (labels and out.size and not 0 <= out.min() <= out.max() < top):
            what = (
                f"labels {out.min()}..{out.max()}" if out.shape == shape else f"shape {out.shape}"
            )
            raise OnnxError(
                f"{self.name} returned {what} for {rows} rows; expected shape {shape}"
                + (f" of labels 0..{top - 1}" if labels and self.classes else "")
            )
        result: np.ndarray = out[0] if host.ndim == 1 else out
        return result

    def classify(
        self,
        x: Any,
        batch_size: int | None = None,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Return the int64 label of each row of ``x``, ``batch_size`` rows per run (None: all).

        ``progress(rows)`` is called after each run.
        """
        batch_size = None if batch_size is None else positive_int(batch_size, "batch_size")
        host = np.asarray(x) if isinstance(x, (list, tuple)) else to_numpy(x)

        def labels(block: np.ndarray) -> np.ndarray:
            out = self.run(block)
            return (out if self.output == "labels" else np.argmax(out, axis=-1)).astype(np.int64)

        if host.ndim != 2:
            return labels(host)
        found: np.ndarray = batched(labels, host, batch_size, array_api_compat.numpy, progress)
        return found


def mnist_runner(
    weights: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    dtype: str = "float32",
    device: str = "cpu",
) -> OnnxRunner:
    """Return a runner for the MNIST network: a given ``.onnx``, or weights exported.

    A ``.onnx`` is checked and loaded as it is (784 features, 10 classes);
    other weights (``None``: the book's) are exported with uint8 input and
    labels output, the ``/255`` of pixels in place of any recorded
    ``input_scale``, as ``xpnn eval`` does on every backend.

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
    _providers(_import_onnxruntime(), device)  # a device error before the export
    if weights is None:
        net = pretrained_network(data_dir=data_dir, backend="numpy", dtype=dtype)
    else:
        net = load_weights(weights, backend="numpy", dtype=dtype)
    if (net.input_size, net.layer_sizes[-1]) != (784, 10):
        raise OnnxError(
            f"{os.fspath(weights or 'the weights')!r} is a network of {net.input_size} inputs "
            f"and {net.layer_sizes[-1]} classes, but 784 inputs and 10 classes are needed here"
        )
    pixels = net.to(input_scale=1.0)  # the export folds the /255 into W1
    return OnnxRunner.from_network(pixels, input_dtype="uint8", output="labels", device=device)
