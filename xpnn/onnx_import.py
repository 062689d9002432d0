"""Read a plain MLP classifier from an ONNX model (never run) as :class:`~xpnn.Network` weights.

One chain from the single float input: affine layers (``MatMul`` [+ ``Add``], or ``Gemm``), each
hidden one followed by ``Relu``/``Sigmoid``/``Tanh``/nothing, an optional ``Softmax``, and an
optional tail of labels ``0..k-1``: what torch.onnx, skl2onnx's ``MLPClassifier`` and xpnn write.
Anything else is one :class:`~xpnn.WeightsError` line.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._files import open_regular, read_regular
from .errors import BackendError, WeightsError, first_line

__all__ = ["ALLOWED_OPERATORS", "MAX_MODEL_BYTES", "load_model", "read_onnx"]

#: Largest ``.onnx`` file read (external data not counted).
MAX_MODEL_BYTES = 1 << 30
#: The operators, by domain, of plain MLP classifiers; a model with any other is refused.
ALLOWED_OPERATORS = {
    "": frozenset({"MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh"})
    | {"Softmax", "ArgMax", "Cast", "Reshape", "Flatten", "Identity", "Constant", "Concat"},
    "ai.onnx.ml": frozenset({"ArrayFeatureExtractor", "LabelEncoder", "ZipMap"}),
}
_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}
_TAIL = ("ArgMax", "ZipMap", "ArrayFeatureExtractor", "Reshape", "Cast", "Identity")
_FLOATS = (1, 10, 11)  # TensorProto FLOAT, FLOAT16, DOUBLE
Error = type[Exception]


def _onnx(name: str = "onnx") -> Any:
    """Import ``onnx`` (or ``onnxruntime``), or a BackendError naming the extra."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise BackendError(f"{name!r} is not installed ({err}): pip install 'xpnn[onnx]'") from None


def load_model(file: str | os.PathLike[str] | bytes, error: Error) -> tuple[Any, bytes, str, Any]:
    """Read (a path: a regular file of at most :data:`MAX_MODEL_BYTES`) and check an ONNX model.

    Returns ``(ModelProto, bytes, name, folder)``. One ``error`` line for: not a model, functions,
    subgraphs, operators not in :data:`ALLOWED_OPERATORS`, onnx.checker, external data elsewhere.

    >>> load_model(b"junk", ValueError)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: the ONNX model is not an ONNX model (truncated?): ...
    """
    data, source, folder = file, "the ONNX model", None
    if not isinstance(data, bytes):
        path = Path(os.fspath(data))
        source, folder = repr(str(path)), path.parent.resolve()
        if len(data := read_regular(path, MAX_MODEL_BYTES, error)) > MAX_MODEL_BYTES:
            raise error(f"{source} is larger than {MAX_MODEL_BYTES} bytes")
    onnx = _onnx()
    try:
        model = onnx.load_model_from_string(data)
    except Exception as err:  # google.protobuf.message.DecodeError
        raise error(f"{source} is not an ONNX model (truncated?): {first_line(err)}") from None
    if not model.HasField("graph") or len(model.functions) or len(model.training_info):
        raise error(f"{source} has no graph, or has model functions or training graphs")
    for node in model.graph.node:
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        if node.op_type not in ALLOWED_OPERATORS.get(domain, ()):
            op = ".".join(filter(None, (domain, node.op_type)))
            allowed = sorted(ALLOWED_OPERATORS[""]) + sorted(ALLOWED_OPERATORS["ai.onnx.ml"])
            raise error(f"{source} uses operator {op!r}; allowed: {', '.join(allowed)}")
        if any(a.type in (a.GRAPH, a.GRAPHS) for a in node.attribute):
            raise error(f"{source}: a {node.op_type} node carries a subgraph")
    constants = [a.t for n in model.graph.node for a in n.attribute if a.type == a.TENSOR]
    external = [t for t in [*model.graph.initializer, *constants] if t.data_location == t.EXTERNAL]
    for tensor in external:
        _external(tensor, source, folder, error)
    try:  # with external data, the checker would look beside the working directory
        if not external:
            onnx.checker.check_model(model)
    except Exception as err:
        raise error(f"{source} fails onnx.checker: {first_line(err)}") from None
    return model, data, source, folder


def _external(tensor: Any, source: str, folder: Path | None, error: Error) -> tuple[Path, int, int]:
    """Where ``tensor``'s external data is, once checked to be inside ``folder`` and its file."""
    info = {entry.key: entry.value for entry in tensor.external_data}
    where, name = info.get("location", ""), tensor.name
    path = (folder or Path("/")).resolve() / where
    if folder is None or not where or not path.resolve().is_relative_to(folder.resolve()):
        raise error(f"{source}: tensor {name!r} has external data {where!r} outside its folder")
    try:
        offset, length = int(info.get("offset", "0")), int(info.get("length", "-1"))
        size = path.stat().st_size if path.is_file() else -1
    except (ValueError, OSError) as err:
        raise error(f"{source}: tensor {name!r} has bad external data ({err})") from None
    if min(size, offset, length) < 0 or offset + length > size:
        raise error(f"{source}: tensor {name!r} declares {length} bytes at {offset} of {where!r}")
    return path, offset, length


class _Graph:
    """The parts of a checked graph the recogniser reads, and its error messages."""

    def __init__(self, model: Any, source: str, folder: Path) -> None:
        self.source, self.folder, graph = source, folder, model.graph
        self.constants = {t.name: t for t in graph.initializer}
        self.nodes: list[Any] = []
        self.users: dict[str, list[Any]] = {}
        for node in graph.node:
            if node.op_type == "Constant":
                if [a.name for a in node.attribute] != ["value"]:
                    raise self.error("a Constant node without a tensor 'value'")
                self.constants[node.output[0]] = node.attribute[0].t
                continue
            self.nodes.append(node)
            for name in node.input:
                self.users.setdefault(name, []).append(node)
        self.inputs = [v for v in graph.input if v.name not in self.constants]
        self.outputs = [v.name for v in graph.output]

    def error(self, text: str) -> WeightsError:
        return WeightsError(f"{self.source}: {text}")

    def const(self, name: str, what: str) -> np.ndarray:
        """The values of a constant; data that does not fill its declared shape is refused."""
        if name not in self.constants:
            raise self.error(f"{what} {name!r} is not a constant (an initializer or Constant)")
        onnx, tensor = _onnx(), self.constants[name]
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))
        except Exception:
            dtype = np.dtype(object)
        if dtype.kind not in "fiu" or min(shape := tuple(tensor.dims), default=0) < 0:
            raise self.error(f"tensor {tensor.name!r} holds {dtype} {list(shape)}")
        if external := tensor.data_location == tensor.EXTERNAL:
            path, offset, length = _external(tensor, self.source, self.folder, WeightsError)
            with open_regular(path) as handle:  # never blocks, should a FIFO take its place
                handle.seek(offset)
                raw = handle.read(length)
        try:  # numpy refuses data of another size than the shape's before allocating for it
            if external:
                return np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype).reshape(shape)
            return np.array(onnx.numpy_helper.to_array(tensor))
        except ValueError as err:
            raise self.error(f"tensor {tensor.name!r} {list(shape)}: {first_line(err)}") from None


def _attrs(node: Any) -> dict[str, Any]:
    return {a.name: _onnx().helper.get_attribute_value(a) for a in node.attribute}


def _layer(g: _Graph, node: Any, value: str) -> tuple[np.ndarray, np.ndarray, str, list[Any]]:
    """``(W, b, output value, nodes)`` of the layer ``node`` (MatMul [+ Add] or Gemm) starts."""
    if node.input[0] != value or len(node.input) < 2:
        raise g.error(f"{node.op_type} {node.name!r} takes the layer input as its weight")
    w, a, out = g.const(node.input[1], f"{node.op_type} weight"), _attrs(node), node.output[0]
    if w.ndim != 2 or w.dtype.kind != "f":
        raise g.error(f"{node.op_type} weight {node.input[1]!r} is {w.dtype} {w.shape}")
    used, bias = [node], np.zeros(w.shape[1], w.dtype)
    if node.op_type == "Gemm":
        if a.get("transA", 0) != 0 or a.get("transB", 0) not in (0, 1):
            raise g.error(f"Gemm {node.name!r} with transA={a.get('transA', 0)} is no layer")
        w = np.ascontiguousarray(w.T) if a.get("transB", 0) else w
        w = w if a.get("alpha", 1.0) == 1.0 else w * w.dtype.type(a["alpha"])
        if len(node.input) > 2 and node.input[2]:
            bias = g.const(node.input[2], "Gemm bias") * (a.get("beta", 1.0) or 0.0)
    elif [n.op_type for n in g.users.get(out, [])] == ["Add"] and out not in g.outputs:
        add = g.users[out][0]
        other = add.input[1] if add.input[0] == out else add.input[0]
        bias, used, out = g.const(other, "Add bias"), [node, add], add.output[0]
    if bias.size not in (1, w.shape[1]) or bias.ndim > 2 or (bias.ndim == 2 and len(bias) != 1):
        raise g.error(f"a bias of shape {bias.shape} for a weight of shape {w.shape}")
    return w, np.broadcast_to(bias.reshape(-1), (w.shape[1],)).astype(w.dtype), out, used


def _chain(g: _Graph) -> tuple[list[tuple[Any, Any]], list[str], str, str, set[int]]:
    """Walk from the input: layers, activations, output function, score value, nodes used."""
    layers: list[tuple[Any, Any]] = []
    acts: list[str] = []
    value, output, used = g.inputs[0].name, "identity", set[int]()
    while chain := [n for n in g.users.get(value, []) if n.op_type not in _TAIL[:2]]:
        if len(g.users[value]) > 1 or value in g.outputs:
            ops = ", ".join(n.op_type for n in g.users[value])
            raise g.error(f"{value!r} feeds {ops}: a branch; an MLP is one chain of layers")
        node, op, a = chain[0], chain[0].op_type, _attrs(chain[0])
        cast = op == "Cast" and (bool(layers) or a.get("to") not in _FLOATS)  # input casts only
        if output == "softmax" and op != "Identity":
            raise g.error(f"{op} after Softmax")
        if op in ("MatMul", "Gemm"):
            acts += ["identity"] * (len(layers) - len(acts))
            w, b, value, nodes = _layer(g, node, value)
            if layers and layers[-1][0].shape[1] != w.shape[0]:
                raise g.error(f"a weight of shape {w.shape} after a layer of {len(layers[-1][1])}")
            layers.append((w, b))
            used.update(id(n) for n in nodes)
            continue
        if op in _ACTIVATIONS or op == "Softmax":
            if len(acts) == len(layers):
                raise g.error(f"{op} {node.name!r} where no layer precedes it")
            if op == "Softmax" and a.get("axis", -1) not in (1, -1):
                raise g.error(f"Softmax over axis {a['axis']}, not the classes")
            output = "softmax" if op == "Softmax" else output
            acts += [_ACTIVATIONS[op]] if op in _ACTIVATIONS else []
        elif op not in ("Identity", "Cast", "Flatten") or a.get("axis", 1) != 1 or cast:
            raise g.error(f"operator {op} {node.name!r} inside the chain of layers")
        used.add(id(node))
        value = node.output[0]
    if not layers or len(acts) == len(layers):
        found = f"an activation ({acts[-1]})" if layers else "no MatMul or Gemm"
        raise g.error(f"{found} after the last layer; the output is identity or Softmax")
    return layers, acts, output, value, used


def _tail(g: _Graph, score: str, classes: int, used: set[int]) -> None:
    """Check the nodes after the scores are a classifier tail with labels 0..k-1."""
    labels, reached, k = set[str](), {score}, list(range(classes))
    for node in (n for n in g.nodes if id(n) not in used):
        op, a = node.op_type, _attrs(node)
        (main, *more) = [name for name in node.input if name not in g.constants] or [""]
        if op not in _TAIL or more or main not in (labels if op in _TAIL[2:5] else reached):
            raise g.error(f"a {op} node {node.name!r} outside the chain of layers and its labels")
        if op in _TAIL[:2] and main != score:
            raise g.error(f"{op} of {main!r}, not of the class scores")
        if op == "ArgMax" and (a.get("axis", 0) not in (1, -1) or a.get("select_last_index")):
            raise g.error("ArgMax over another axis than the classes")
        if op == "ZipMap" and list(a.get("classlabels_int64s", [])) != k:
            raise g.error("ZipMap labels that are not 0..k-1")
        table = g.const(node.input[0], "labels").tolist() if op == _TAIL[2] else k
        if table != k:
            raise g.error(f"class labels {table[:12]} that are not 0..{classes - 1}")
        if op == "Reshape" and g.const(node.input[1], "shape").tolist() != [-1]:
            raise g.error("a Reshape of the labels to another shape than (-1,)")
        if op == "Cast" and a.get("to") not in (6, 7):  # int32, int64
            raise g.error("labels cast to a type that is not an integer")
        if op == "ArgMax" or main in labels:
            labels.add(node.output[0])
        reached.add(node.output[0])
    if missing := [name for name in g.outputs if name not in reached]:
        raise g.error(f"output {missing[0]!r} is not computed from the chain of layers")


def read_onnx(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Return ``(arrays, settings)`` of the plain MLP in the ``.onnx`` file ``path``.

    ``arrays``: ``{"W1": (in, out), "b1": (out,), ...}`` in the dtype stored; ``settings``:
    ``{"hidden": name(s), "output": "identity" or "softmax"}``, for ``Network(arrays, **settings)``.

    >>> import pathlib, tempfile, xpnn
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.onnx"
    >>> arrays, settings = read_onnx(xpnn.export_onnx(xpnn.init_network(), path))
    >>> sorted(arrays), settings
    (['W1', 'W2', 'W3', 'b1', 'b2', 'b3'], {'hidden': 'sigmoid', 'output': 'identity'})
    """
    model, _, source, folder = load_model(path, WeightsError)
    g = _Graph(model, source, folder)
    if len(g.inputs) != 1:
        raise g.error(f"{len(g.inputs)} inputs ({', '.join(v.name for v in g.inputs)}), not one")
    x = g.inputs[0].type.tensor_type
    if x.elem_type not in _FLOATS or len(x.shape.dim) != 2:
        raise g.error("the input is not a 2-D float tensor (batch, features)")
    layers, acts, output, score, used = _chain(g)
    features = x.shape.dim[1].dim_value if x.shape.dim[1].HasField("dim_value") else None
    if features not in (None, layers[0][0].shape[0]):
        raise g.error(f"an input of {features} features for a weight of shape {layers[0][0].shape}")
    _tail(g, score, layers[-1][0].shape[1], used)
    arrays = {f"{k}{i}": a for i, p in enumerate(layers, 1) for k, a in zip("Wb", p, strict=True)}
    hidden = acts[0] if len(set(acts)) == 1 else tuple(acts)
    return arrays, {"hidden": hidden or "identity", "output": output}
