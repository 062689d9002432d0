"""Read a plain MLP classifier from an ONNX model, as weights for :class:`~xpnn.Network`.

:func:`read_onnx` reads the graph with ``onnx`` and never runs it. It
recognises one chain from the single input: affine layers (``MatMul`` then an
optional ``Add``, or ``Gemm`` with ``transA=0``), an activation after each
hidden layer (``Relu``, ``Sigmoid``, ``Tanh``, or none), an optional
``Softmax`` output, and an optional classifier tail on the scores whose labels
are ``0..k-1`` (``ArgMax``, ``ArrayFeatureExtractor`` of ``0..k-1``,
``Reshape``, ``Cast``, ``ZipMap``), as torch.onnx (both exporters), skl2onnx's
``MLPClassifier`` and :func:`xpnn.export_onnx` write them. No-op ``Identity``,
``Cast`` to the input's own type and ``Flatten(axis=1)`` are passed over.

Activations are per layer: PyTorch's ``nn.Sequential`` often mixes them, so
``hidden`` is one name when every hidden layer has the same activation, else
a tuple with one name per hidden layer (``"identity"`` for none).

Anything else is a :class:`~xpnn.WeightsError` of one line, raised before any
computation: another operator or domain, a subgraph, a branch, a second
input, a weight that is not constant, an activation after the last layer,
labels that are not ``0..k-1``, shapes that do not chain, tensors whose data
does not match their declared shape, external data outside the model's
folder or beyond its file, a file over :data:`MAX_MODEL_BYTES`. Memory stays
within a small multiple of the file's size: each array is made from bytes
that are in a file, after their size was checked.

Examples
--------
>>> import pathlib, tempfile, xpnn
>>> path = xpnn.export_onnx(xpnn.init_network(), pathlib.Path(tempfile.mkdtemp()) / "m.onnx")
>>> arrays, settings = read_onnx(path)
>>> sorted(arrays), settings
(['W1', 'W2', 'W3', 'b1', 'b2', 'b3'], {'hidden': 'sigmoid', 'output': 'identity'})
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._files import read_at_most
from .errors import BackendError, WeightsError, first_line

__all__ = ["ALLOWED_OPERATORS", "MAX_MODEL_BYTES", "check_model", "read_onnx"]

#: Largest ``.onnx`` file read (external data not counted).
MAX_MODEL_BYTES = 1 << 30
#: The operators, by domain, that a plain MLP classifier needs; nothing else is run or read.
ALLOWED_OPERATORS = {
    "": frozenset(
        "MatMul Gemm Add Sub Mul Div Relu Sigmoid Tanh Softmax ArgMax Cast Reshape Flatten "
        "Identity Constant Concat".split()
    ),
    "ai.onnx.ml": frozenset({"ArrayFeatureExtractor", "LabelEncoder", "ZipMap"}),
}
_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}
_PASS = ("Identity", "Cast", "Flatten")
Error = Callable[[str], Exception]


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as err:
        raise BackendError(f"reading ONNX models needs onnx ({err}): pip install 'xpnn[onnx]'")
    return onnx


def _read_file(path: Path, error: Error) -> bytes:
    """The bytes of a regular file of at most MAX_MODEL_BYTES (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise error(f"{str(path)!r} is not a regular file")
            data = read_at_most(handle, MAX_MODEL_BYTES)
    except OSError as err:
        raise error(f"cannot read {str(path)!r}: {err.strerror or err}") from None
    if len(data) > MAX_MODEL_BYTES:
        raise error(f"{str(path)!r} is larger than {MAX_MODEL_BYTES} bytes")
    return data


def check_model(data: bytes, source: str, folder: Path | None, error: Error) -> Any:
    """Parse ``data`` and check it is safe to read or run; return the ModelProto.

    Refused, with one ``error`` line naming what was found: a file protobuf
    cannot parse, local functions or training graphs, an operator or domain
    outside :data:`ALLOWED_OPERATORS` (control flow among them), a subgraph
    attribute, a model ``onnx.checker`` refuses, external data outside
    ``folder`` (or any, without a folder) or beyond the end of its file.
    """
    onnx = _onnx()
    try:
        model = onnx.load_model_from_string(data)
    except Exception as err:  # google.protobuf.message.DecodeError
        raise error(f"{source} is not an ONNX model (truncated or damaged?): {first_line(err)}")
    if not model.HasField("graph") or len(model.functions) or len(model.training_info):
        raise error(f"{source} has no graph, or model functions or training graphs")
    for node in model.graph.node:
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        if node.op_type not in ALLOWED_OPERATORS.get(domain, ()):
            name = f"{domain}.{node.op_type}" if domain else node.op_type
            raise error(
                f"{source} uses operator {name!r}; a plain MLP classifier needs only "
                f"{', '.join(sorted(ALLOWED_OPERATORS['']))} and ai.onnx.ml's "
                f"{', '.join(sorted(ALLOWED_OPERATORS['ai.onnx.ml']))}"
            )
        if any(a.type in (a.GRAPH, a.GRAPHS) for a in node.attribute):
            raise error(f"{source}: a {node.op_type} node carries a subgraph")
    tensors = [*model.graph.initializer]
    tensors += [a.t for n in model.graph.node for a in n.attribute if a.type == a.TENSOR]
    external = [t for t in tensors if t.data_location == t.EXTERNAL]
    for tensor in external:
        _external(tensor, source, folder, error)
    try:  # the checker would look for external data beside the working directory
        onnx.checker.check_model(model) if not external else None
    except Exception as err:
        raise error(f"{source} fails onnx.checker: {first_line(err)}") from None
    return model


def _external(tensor: Any, source: str, folder: Path | None, error: Error) -> tuple[Path, int, int]:
    """Check ``tensor``'s external data lies inside ``folder`` and its file."""
    info = {entry.key: entry.value for entry in tensor.external_data}
    where = info.get("location", "")
    if folder is None:
        raise error(f"{source}: tensor {tensor.name!r} has external data, but no folder")
    path = (folder / where).resolve()
    if not where or Path(where).is_absolute() or not path.is_relative_to(folder.resolve()):
        raise error(f"{source}: tensor {tensor.name!r} has data {where!r} outside its folder")
    try:
        offset, length = int(info.get("offset", "0")), int(info.get("length", "-1"))
        size = path.stat().st_size if path.is_file() else -1
    except (ValueError, OSError) as err:
        raise error(f"{source}: tensor {tensor.name!r} has bad external data ({err})") from None
    if size < 0 or offset < 0 or length < 0 or offset + length > size:
        raise error(
            f"{source}: tensor {tensor.name!r} declares {length} bytes at {offset} "
            f"of {where!r}, which has {size if size >= 0 else 'no file of'} bytes"
        )
    return path, offset, length


def _array(tensor: Any, source: str, folder: Path, error: Error) -> np.ndarray:
    """A tensor's values, after its declared size was checked against its data."""
    onnx = _onnx()
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))
    except Exception:
        raise error(f"{source}: tensor {tensor.name!r} has element type {tensor.data_type}")
    if dtype.kind not in "fiu":
        raise error(f"{source}: tensor {tensor.name!r} holds {dtype} values, not numbers")
    count = int(np.prod(tensor.dims, dtype=object)) if tensor.dims else 1
    fields = ("float_data", "double_data", "int32_data", "int64_data", "uint64_data")
    if tensor.data_location == tensor.EXTERNAL:
        path, offset, length = _external(tensor, source, folder, error)
        have, unit = length, dtype.itemsize
    elif tensor.HasField("raw_data"):
        have, unit = len(tensor.raw_data), dtype.itemsize
    else:
        have, unit = sum(len(getattr(tensor, f)) for f in fields), 1
    if min(tensor.dims, default=0) < 0 or have != count * unit:
        raise error(
            f"{source}: tensor {tensor.name!r} declares {dtype} of shape {list(tensor.dims)} "
            f"but holds {have} {'bytes' if unit > 1 else 'values'}"
        )
    if tensor.data_location == tensor.EXTERNAL:
        with open(path, "rb") as handle:
            handle.seek(offset)
            raw = handle.read(length)
        if len(raw) != length:
            raise error(f"{source}: the external data of {tensor.name!r} is truncated")
        values = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)
        return values.reshape(tuple(tensor.dims))
    return np.array(onnx.numpy_helper.to_array(tensor))


class _Graph:
    """The parts of a checked graph that the recogniser reads."""

    def __init__(self, model: Any, source: str, folder: Path) -> None:
        self.source, self.folder = source, folder
        graph = model.graph
        self.constants = {t.name: t for t in graph.initializer}
        self.nodes = []
        for node in graph.node:
            if node.op_type == "Constant":
                names = [a.name for a in node.attribute]
                if names != ["value"]:
                    raise self.error(f"a Constant node with {names}; only a tensor 'value' is read")
                self.constants[node.output[0]] = node.attribute[0].t
            else:
                self.nodes.append(node)
        self.users: dict[str, list[Any]] = {}
        for node in self.nodes:
            for name in node.input:
                self.users.setdefault(name, []).append(node)
        self.inputs = [v for v in graph.input if v.name not in self.constants]
        self.outputs = [v.name for v in graph.output]

    def error(self, text: str) -> WeightsError:
        return WeightsError(f"{self.source}: {text}")

    def const(self, name: str, what: str) -> np.ndarray:
        if name not in self.constants:
            raise self.error(f"{what} {name!r} is not a constant (an initializer or Constant)")
        return _array(self.constants[name], self.source, self.folder, self.error)

    def attrs(self, node: Any) -> dict[str, Any]:
        return {a.name: _onnx().helper.get_attribute_value(a) for a in node.attribute}

    def only_user(self, name: str) -> Any | None:
        users = self.users.get(name, [])
        return users[0] if len(users) == 1 and name not in self.outputs else None


def _affine(g: _Graph, node: Any, value: str) -> tuple[np.ndarray, np.ndarray, str, list[Any]]:
    """``(W, b, output value, nodes)`` of the layer ``node`` (MatMul [+ Add] or Gemm) starts."""
    if node.input[0] != value or len(node.input) < 2:
        raise g.error(f"{node.op_type} {node.name!r} takes the layer input as its weight")
    w = g.const(node.input[1], f"{node.op_type} weight")
    if w.ndim != 2 or w.dtype.kind != "f":
        raise g.error(f"{node.op_type} weight {node.input[1]!r} is {w.dtype} {w.shape}, not 2-D float")
    used, out = [node], node.output[0]
    bias: np.ndarray | None = None
    if node.op_type == "Gemm":
        a = g.attrs(node)
        if a.get("transA", 0) != 0 or a.get("transB", 0) not in (0, 1):
            raise g.error(f"Gemm {node.name!r} with transA={a.get('transA', 0)} is no layer")
        w = np.ascontiguousarray(w.T) if a.get("transB", 0) else w
        w = w if a.get("alpha", 1.0) == 1.0 else w * w.dtype.type(a["alpha"])
        if len(node.input) > 2 and node.input[2]:
            bias = g.const(node.input[2], "Gemm bias")
            bias = bias if a.get("beta", 1.0) == 1.0 else bias * bias.dtype.type(a["beta"])
    else:
        add = g.only_user(out)
        if add is not None and add.op_type == "Add" and len(add.input) == 2:
            other = add.input[1] if add.input[0] == out else add.input[0]
            bias, used, out = g.const(other, "Add bias"), [node, add], add.output[0]
    if bias is None:
        bias = np.zeros(w.shape[1], dtype=w.dtype)
    if bias.size not in (1, w.shape[1]) or bias.ndim > 2 or (bias.ndim == 2 and bias.shape[0] != 1):
        raise g.error(f"bias of shape {bias.shape} for a weight of shape {w.shape}")
    return w, np.broadcast_to(bias.reshape(-1), (w.shape[1],)).astype(w.dtype), out, used


def _chain(g: _Graph) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[str], str, str, set[int]]:
    """Walk from the input: layers, activations, output function, score value, nodes used."""
    (x,) = g.inputs
    elem = x.type.tensor_type.elem_type
    value, layers, acts, output, used = x.name, [], [], "identity", set()
    while True:  # a Cast to a float type before the first layer: the network casts inputs too
        cast = (elem,) if layers else (1, 10, 11)
        users = g.users.get(value, [])
        chain = [n for n in users if n.op_type not in ("ArgMax", "ZipMap", "Sub", "Concat")]
        if not chain:
            break
        if len(users) > 1 or value in g.outputs:
            ops = ", ".join(n.op_type for n in users)
            raise g.error(f"{value!r} feeds {ops}: a branch; an MLP is one chain of layers")
        node, op, a = chain[0], chain[0].op_type, g.attrs(chain[0])
        if output == "softmax" and op != "Identity":
            raise g.error(f"{op} after Softmax")
        if op in ("MatMul", "Gemm"):
            if len(acts) < len(layers):
                acts.append("identity")
            w, b, out, nodes = _affine(g, node, value)
            if layers and layers[-1][0].shape[1] != w.shape[0]:
                raise g.error(f"a weight of shape {w.shape} after a layer of {layers[-1][0].shape[1]}")
            layers.append((w, b))
            used.update(id(n) for n in nodes)
            value = out
            continue
        if op in _ACTIVATIONS or op == "Softmax":
            if len(acts) == len(layers):
                raise g.error(f"{op} {node.name!r} where no layer precedes it")
            if op == "Softmax" and a.get("axis", -1) not in (1, -1):
                raise g.error(f"Softmax over axis {a['axis']}, not the classes")
            if op == "Softmax":
                output = "softmax"
            else:
                acts.append(_ACTIVATIONS[op])
        elif op not in _PASS or a.get("axis", 1) != 1 or (op == "Cast" and a["to"] not in cast):
            raise g.error(f"operator {op} {node.name!r} inside the chain of layers")
        used.add(id(node))
        value = node.output[0]
    if not layers:
        raise g.error("no MatMul or Gemm layer after the input")
    if len(acts) == len(layers):
        raise g.error(f"an activation ({acts[-1]}) after the last layer; the output is identity or Softmax")
    return layers, acts, output, value, used


def _tail(g: _Graph, score: str, classes: int, used: set[int]) -> None:
    """Check the rest of the graph is a classifier tail on ``score`` with labels 0..k-1."""
    labels: set[str] = set()
    reached = {score}
    k = np.arange(classes)
    for node in g.nodes:
        if id(node) in used:
            continue
        op, a = node.op_type, g.attrs(node)
        main = [name for name in node.input if name not in g.constants]
        if len(main) != 1 or main[0] not in reached:
            raise g.error(f"a {op} node {node.name!r} outside the chain of layers")
        if op in ("ArgMax", "ZipMap") and main[0] != score:
            raise g.error(f"{op} of {main[0]!r}, not of the class scores")
        if op == "ArgMax" and (a.get("axis", 0) not in (1, -1) or a.get("select_last_index", 0)):
            raise g.error("ArgMax over another axis than the classes")
        if op == "ZipMap" and list(a.get("classlabels_int64s", [])) != k.tolist():
            raise g.error("ZipMap labels that are not 0..k-1")
        if op == "ArrayFeatureExtractor":
            table = g.const(node.input[0], "label table")
            if node.input[1] not in labels or table.tolist() != k.tolist():
                raise g.error(f"class labels {table.tolist()[:12]} that are not 0..{classes - 1}")
        if op == "Reshape" and g.const(node.input[1], "shape").tolist() != [-1]:
            raise g.error("a Reshape of the labels to another shape than (-1,)")
        if op not in ("ArgMax", "ZipMap", "ArrayFeatureExtractor", "Reshape", "Cast", "Identity"):
            raise g.error(f"operator {op} {node.name!r} after the class scores")
        if op in ("Reshape", "Cast", "ArrayFeatureExtractor") and main[0] not in labels:
            raise g.error(f"{op} of the scores, not of the labels")
        if op == "Cast" and a.get("to") not in (6, 7):  # int32, int64
            raise g.error("labels cast to a type that is not an integer")
        if op != "ZipMap" and (op == "ArgMax" or main[0] in labels):
            labels.add(node.output[0])
        reached.add(node.output[0])
    missing = [name for name in g.outputs if name not in reached]
    if missing:
        raise g.error(f"output {missing[0]!r} is not computed from the input's chain")


def read_onnx(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read the weights and settings of a plain MLP from an ONNX model file.

    Parameters
    ----------
    path : path-like
        The ``.onnx`` file; external data is read from its folder only.

    Returns
    -------
    arrays : dict
        ``{"W1": ..., "b1": ..., ...}``, ``W`` of shape ``(in, out)``, ``b`` of
        shape ``(out,)``, in the float dtype stored.
    settings : dict
        ``{"hidden": name or tuple of names, "output": "identity" or "softmax"}``,
        ready for ``Network(arrays, **settings)``.

    Raises
    ------
    WeightsError
        The model is not a plain MLP classifier, or is malformed or unsafe.
    """
    file = Path(os.fspath(path))
    source = repr(str(file))
    data = _read_file(file, WeightsError)
    model = check_model(data, source, file.parent, WeightsError)
    g = _Graph(model, source, file.parent)
    if len(g.inputs) != 1:
        raise g.error(f"{len(g.inputs)} inputs ({', '.join(v.name for v in g.inputs)}); an MLP has one")
    x = g.inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in x.shape.dim]
    if x.elem_type not in (1, 10, 11) or len(dims) != 2:  # float, float16, double
        raise g.error("the input is not a 2-D float tensor (batch, features)")
    layers, acts, output, score, used = _chain(g)
    if dims[1] not in (None, layers[0][0].shape[0]):
        raise g.error(f"an input of {dims[1]} features for a weight of shape {layers[0][0].shape}")
    _tail(g, score, layers[-1][0].shape[1], used)
    arrays = {}
    for i, (w, b) in enumerate(layers, start=1):
        arrays[f"W{i}"], arrays[f"b{i}"] = w, b
    hidden: str | tuple[str, ...] = acts[0] if len(set(acts)) == 1 else tuple(acts)
    return arrays, {"hidden": hidden if acts else "identity", "output": output}
