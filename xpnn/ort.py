"""Run an ONNX model of a network with ONNX Runtime, on the CPU or a CUDA GPU.

A model file is code, so :class:`OnnxRunner` checks it with ``onnx`` before
ONNX Runtime ever loads it (:func:`xpnn.onnx_import.check_model`: only the
operators of a plain MLP classifier, no control flow, no subgraphs, no
functions, external data only from the model's folder), and validates the
xpnn metadata it carries as strictly as a weights file's settings. Inputs are
checked before they reach the runtime and outputs after; every failure is one
:class:`~xpnn.OnnxError` line, and nothing of ONNX Runtime's own log is
printed (its log level is set for the session and for each run). Needs
``onnx`` and ``onnxruntime`` (``pip install 'xpnn[onnx]'``).
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

_INSTALL = "pip install 'xpnn[onnx]'"
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
_QUIET = 4  # ONNX Runtime logs only fatal errors: xpnn raises its errors as one line
# ONNX Runtime's names of the element types a network's input can have.
_INPUT_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
}
_LABEL_TYPES = ("tensor(int64)", "tensor(int32)")
_OUTPUTS = ("logits", "probabilities", "labels")


def _import_onnxruntime() -> Any:
    try:
        onnxruntime = importlib.import_module("onnxruntime")
    except ImportError as err:
        raise BackendError(
            f"backend 'onnxruntime' is not installed ({err}); install it with: {_INSTALL}"
        ) from None
    return onnxruntime


def _providers(ort: Any, device: str) -> tuple[str, list[Any]]:
    """Return the canonical device name and the execution providers for it."""
    kind, index = parse_device(device) if isinstance(device, str) else (repr(device), None)
    if kind == "cpu" and index in (None, 0):
        return "cpu", [_CPU]
    if kind != "cuda":
        raise BackendError(
            f"backend 'onnxruntime' has no device {device!r}; choose 'cpu', 'cuda' or 'cuda:N'"
        )
    available = ort.get_available_providers()
    if _CUDA not in available:
        raise BackendError(
            f"device {device!r} needs ONNX Runtime's CUDA execution provider, but the "
            f"installed onnxruntime {ort.__version__} has only {', '.join(available)}; "
            "install onnxruntime-gpu in place of onnxruntime, or use device 'cpu'"
        )
    return f"cuda:{index or 0}", [(_CUDA, {"device_id": index or 0}), _CPU]


class OnnxRunner:
    """An ONNX model of a classifier, checked, then ready to run with ONNX Runtime.

    Parameters
    ----------
    model : path-like or bytes
        An ``.onnx`` file, or a serialized model.
    device : str
        ``"cpu"`` (CPU execution provider) or ``"cuda"``/``"cuda:N"`` (CUDA
        execution provider, where the installed onnxruntime and the machine
        have it).
    input_size, classes : int or None
        The input features and classes the caller needs; a model of other
        sizes is refused with a message naming both.

    Attributes
    ----------
    device : str
        ``"cpu"`` or ``"cuda:N"``.
    input_dtype : str
        ``"float32"``, ``"float64"``, ``"float16"`` or ``"uint8"``.
    input_size : int
        Features per row.
    output : str
        ``"labels"``, ``"logits"`` or ``"probabilities"`` (from xpnn's
        metadata; a foreign model with float output counts as ``"logits"``).
    batch : int or None
        Fixed rows per call, or ``None`` for a dynamic batch axis.
    metadata : dict
        The model's metadata properties.

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
        folder: Path | None = None
        if isinstance(model, bytes):
            data, self.name = model, "the ONNX model"
        else:
            path = Path(os.fspath(model))
            self.name, folder = repr(str(path)), path.parent.resolve()
            data = _read_file(path, OnnxError)
        proto = check_model(data, self.name, folder, OnnxError)  # before the runtime sees it
        options = ort.SessionOptions()
        options.log_severity_level = _QUIET
        if folder is not None:
            key = "session.model_external_initializers_file_folder_path"
            options.add_session_config_entry(key, str(folder))
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = _QUIET
        try:
            self.session = ort.InferenceSession(data, options, providers=providers)
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
        self._read_signature(input_size, classes)

    def _read_signature(self, input_size: int | None, classes: int | None) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or not outputs:
            raise OnnxError(
                f"{self.name} has {len(inputs)} inputs and {len(outputs)} outputs; "
                "a network model has one input and an output"
            )
        x, y = inputs[0], outputs[0]
        self.input_name, self.output_name = x.name, y.name
        if x.type not in _INPUT_TYPES or len(x.shape) != 2 or not isinstance(x.shape[1], int):
            raise OnnxError(
                f"{self.name} takes {x.type} of shape {x.shape}; a network model takes "
                "rows of float or uint8 features, of shape (batch, features)"
            )
        self.input_dtype = _INPUT_TYPES[x.type]
        self.input_size: int = x.shape[1]
        self.batch: int | None = x.shape[0] if isinstance(x.shape[0], int) else None
        if self.batch == 0 or self.input_size == 0:
            raise OnnxError(f"{self.name} declares an input of shape {x.shape}: nothing to score")
        meta = self.metadata
        if y.type in _LABEL_TYPES and len(y.shape) == 1:
            self.output, self.classes = "labels", classes
        elif y.type in _INPUT_TYPES and len(y.shape) == 2 and isinstance(y.shape[1], int):
            self.output, self.classes = "logits", y.shape[1]
        else:
            raise OnnxError(
                f"{self.name} returns {y.type} of shape {y.shape}; a network model returns "
                "labels (batch,) or scores (batch, classes)"
            )
        claimed = meta.get("xpnn.output", self.output)
        if claimed not in _OUTPUTS or (claimed == "labels") != (self.output == "labels"):
            raise OnnxError(
                f"{self.name} returns {y.type} but its metadata says xpnn.output={claimed!r}"
            )
        self.output = claimed
        try:
            sizes = [int(n) for n in meta.get("xpnn.layer_sizes", "1,1").split(",")]
            self.input_scale = float(meta.get("xpnn.input_scale", "1.0"))
            if not (math.isfinite(self.input_scale) and self.input_scale > 0) or min(sizes) < 1:
                raise ValueError
        except ValueError:
            keys = "xpnn.input_scale or xpnn.layer_sizes"
            raise OnnxError(f"{self.name} has malformed metadata ({keys})") from None
        if "xpnn.layer_sizes" in meta:
            if (sizes[0], self.classes or sizes[-1]) != (self.input_size, sizes[-1]):
                raise OnnxError(f"{self.name}'s xpnn.layer_sizes do not match its graph")
            self.classes = sizes[-1]
        self.dtype = meta.get("xpnn.dtype", self.input_dtype)
        if self.dtype not in ("float16", "float32", "float64"):
            raise OnnxError(f"{self.name} has an unknown xpnn.dtype {self.dtype!r}")
        wrong_size = input_size is not None and input_size != self.input_size
        wrong_classes = classes is not None and self.classes != classes
        if wrong_size or wrong_classes:
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
        """Raw uint8 pixels (0..255) as this model's input.

        Unchanged for a uint8 model; for a float model, ``p / 255`` divided by
        the network's ``input_scale`` (from xpnn's metadata, else 1), so that
        the first layer sees the intensities ``p / 255`` either way.

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
        divisor = np.asarray(255 * self.input_scale, dtype=self.input_dtype)
        scaled: np.ndarray = host.astype(self.input_dtype) / divisor
        return scaled

    def _feed(self, x: Any) -> tuple[np.ndarray, bool]:
        host = np.asarray(x) if isinstance(x, (list, tuple)) else to_numpy(x)
        if host.dtype.kind not in "fiub":
            raise TypeError(f"model input must be real numbers, got dtype {host.dtype}")
        if host.ndim not in (1, 2) or host.shape[-1] != self.input_size:
            raise ValueError(
                f"{self.name} expects inputs of shape ({self.input_size},) or "
                f"(n, {self.input_size}); got shape {host.shape}"
            )
        if self.input_dtype == "uint8" and host.dtype != np.uint8:
            raise TypeError(
                f"{self.name} takes uint8 pixels, got dtype {host.dtype}; convert them, "
                "or use a model of float input"
            )
        single = host.ndim == 1
        host = np.ascontiguousarray(host[None, :] if single else host, dtype=self.input_dtype)
        if self.batch is not None and host.shape[0] != self.batch:
            raise OnnxError(
                f"{self.name} has a fixed batch of {self.batch} rows; got {host.shape[0]} "
                f"(score it with a batch size of {self.batch} and a multiple of it in rows)"
            )
        return host, single

    def run(self, x: Any) -> np.ndarray:
        """Return the model's output for ``x`` (one row ``(d,)`` or rows ``(n, d)``).

        ``x`` of any backend is copied to the host; floats go to a float model
        in its dtype, uint8 pixels to a uint8 model. The output is checked:
        one result per row, labels within ``0..classes-1``.
        """
        feed, single = self._feed(x)
        try:
            (out,) = self.session.run(
                [self.output_name], {self.input_name: feed}, self._run_options
            )
        except Exception as err:
            raise OnnxError(f"onnxruntime failed to run {self.name}: {first_line(err)}") from None
        out = np.asarray(out)
        rows, labels = feed.shape[0], self.output == "labels"
        shape = (rows,) if labels else (rows, self.classes)
        bad_labels = labels and out.size and (out.min() < 0 or out.max() >= (self.classes or 2**62))
        if out.shape != shape or bad_labels:
            what = f"labels {out.min()}..{out.max()}" if bad_labels else f"shape {out.shape}"
            raise OnnxError(
                f"{self.name} returned {what} for {rows} rows; expected shape {shape}"
                + (f" of labels 0..{self.classes - 1}" if labels and self.classes else "")
            )
        result: np.ndarray = out[0] if single else out
        return result

    def classify(
        self,
        x: Any,
        batch_size: int | None = None,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Return the predicted class of each row of ``x`` as int64 labels.

        Parameters
        ----------
        x : array_like
            ``(n, d)`` rows (or one row ``(d,)``) of any backend.
        batch_size : int or None
            Rows per run of the model; ``None`` is one run over all rows.
        progress : callable or None
            Called with the number of rows after each run.
        """
        if batch_size is not None:
            batch_size = positive_int(batch_size, "batch_size")
        host = np.asarray(x) if isinstance(x, (list, tuple)) else to_numpy(x)
        if host.ndim != 2:
            return self._labels(self.run(host))

        def labels(block: np.ndarray) -> np.ndarray:
            return self._labels(self.run(block))

        found: np.ndarray = batched(labels, host, batch_size, array_api_compat.numpy, progress)
        return found

    def _labels(self, out: np.ndarray) -> np.ndarray:
        labels: np.ndarray = out if self.output == "labels" else np.argmax(out, axis=-1)
        return labels.astype(np.int64, copy=False)


def mnist_runner(
    weights: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    dtype: str = "float32",
    device: str = "cpu",
) -> OnnxRunner:
    """Return a runner for the MNIST network: a given ``.onnx``, or weights exported.

    ``weights`` ending in ``.onnx`` is checked and loaded as it is and must
    take 784 features and give 10 classes; other weights files (and ``None``,
    the book's weights) are exported with uint8 input and labels output, so
    the runtime reads raw pixels and returns labels, like the other backends'
    ``classify`` on uint8 pixels (a recorded ``input_scale`` is replaced by
    the ``/255`` of pixels, as ``xpnn eval`` does on every backend).

    Examples
    --------
    >>> import pathlib, tempfile, numpy as np, xpnn
    >>> linear = xpnn.Network({"W1": np.zeros((784, 10)), "b1": np.arange(10.0)})
    >>> path = xpnn.export_onnx(linear, pathlib.Path(tempfile.mkdtemp()) / "linear.onnx")
    >>> runner = mnist_runner(path)
    >>> runner.classify(np.zeros((2, 784), dtype=np.float32)).tolist()
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
