"""Export a :class:`~xpnn.Network` to an ONNX model by tracing its own forward pass.

The network is copied to the ``ndonnx`` backend, whose arrays record ONNX
operations instead of computing, and :meth:`~xpnn.Network.forward`,
:meth:`~xpnn.Network.predict` or :meth:`~xpnn.Network.classify` is called on a
symbolic input. The graph is thus the very code that computes on NumPy, CuPy,
torch, JAX and Dask; there is no second list of ONNX nodes to keep in step.

Needs the ``onnx`` extra (``pip install 'xpnn[onnx]'``: onnx, ndonnx and, to
run the models, onnxruntime).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .activations import softmax
from .backends import namespace
from .errors import BackendError, OnnxError, first_line
from .network import Network

if TYPE_CHECKING:
    import onnx

__all__ = [
    "BATCH_AXIS",
    "INPUT_DTYPES",
    "INPUT_NAME",
    "IR_VERSION",
    "OPSET",
    "OUTPUTS",
    "export_model",
    "export_onnx",
]

#: The ONNX operator set of every exported model (ai.onnx domain).
OPSET = 21
#: The ONNX IR version of every exported model (the one that goes with opset 21).
IR_VERSION = 10
#: Input element types :func:`export_onnx` can give a model.
INPUT_DTYPES = ("float32", "uint8")
#: What an exported model can return; the model's output carries this name.
OUTPUTS = ("logits", "probabilities", "labels")
#: Name of the model's input.
INPUT_NAME = "x"
#: Name of the dynamic batch axis.
BATCH_AXIS = "batch"

_INSTALL = "pip install 'xpnn[onnx]'"


def _choice(value: object, options: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"unknown {what} {value!r}; choose one of: {', '.join(options)}")
    return value


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as err:
        raise BackendError(
            f"exporting to ONNX needs onnx ({err}); install it with: {_INSTALL}"
        ) from None
    return onnx


def _trace(net: Network, input_dtype: str, output: str, batch: int | None) -> Any:
    """Run ``net`` on a symbolic ndonnx input; return the built ModelProto."""
    xp, _ = namespace("ndonnx")  # a BackendError naming the extra where missing
    # uint8 pixels: the /255 goes into W1 exactly as ``input_scale`` puts it there.
    scale = net.input_scale / 255 if input_dtype == "uint8" else net.input_scale
    method = {"logits": "forward", "probabilities": "predict", "labels": "classify"}[output]
    try:
        traced = net.to("ndonnx", input_scale=scale)
        x = xp.argument(
            shape=(BATCH_AXIS if batch is None else batch, net.input_size),
            dtype=getattr(xp, input_dtype),
        )
        if output == "logits":
            y = traced.forward(x)
        elif output == "labels":
            y = traced.classify(x)
        elif traced.output == "softmax":
            y = traced.predict(x)
        else:  # probabilities of a network whose output function is not softmax
            method = "forward, then softmax"
            y = softmax(traced.forward(x))
        if type(y) is not type(x):
            raise TypeError(f"it returned a {type(y).__name__}, not an ndonnx array")
        expected = ("integral",) if output == "labels" else ("real floating",)
        if not xp.isdtype(y.dtype, expected):
            raise TypeError(f"it returned dtype {y.dtype} for {output}")
        return xp.build({INPUT_NAME: x}, {output: y})
    except Exception as err:
        raise OnnxError(
            f"{net!r} has no ONNX graph form: tracing its {method} with ndonnx failed "
            f"({type(err).__name__}: {err})"
        ) from err


def _graphs(graph: Any) -> list[Any]:
    """``graph`` and every subgraph nested in its nodes' attributes."""
    import onnx

    found = [graph]
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                found += _graphs(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    found += _graphs(subgraph)
    return found


def _shorten_names(model: Any) -> None:
    """Rename nodes and inner values ``n0, n1, ...``, ``v0, v1, ...``.

    The tracer's names (``Inline_0__If_0_then_branch__Constant_3_output``)
    otherwise make up a third of the file. One map over the whole model keeps
    references from subgraphs to outer values intact; the model's own input and
    output names stay.
    """
    keep = {value.name for value in (*model.graph.input, *model.graph.output)}
    names: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"v{len(names)}")

    count = 0
    for graph in _graphs(model.graph):
        for node in graph.node:
            node.name = f"n{count}"
            count += 1
            node.input[:] = [rename(name) for name in node.input]
            node.output[:] = [rename(name) for name in node.output]
        for value in (*graph.input, *graph.output, *graph.value_info):
            value.name = rename(value.name)
        for tensor in graph.initializer:
            tensor.name = rename(tensor.name)


def _constants(graph: Any) -> dict[str, Any]:
    """Values of the graph's ``Constant`` nodes, by output name, as NumPy arrays."""
    from onnx import numpy_helper

    found = {}
    for node in graph.node:
        if node.op_type == "Constant" and [a.name for a in node.attribute] == ["value"]:
            found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return found


def _plain_matmul(node: Any, constants: dict[str, Any]) -> Any | None:
    """The ``MatMul`` inside ndonnx's empty-input guard, if ``node`` is one, else None.

    ndonnx puts every matrix product in ``If(size(a) * size(b) == 0, zeros,
    MatMul(a, b))`` for a runtime that once failed on empty inputs. With
    ``b`` a constant weight matrix without empty axes, ``a`` is empty only
    when it has no rows, and ``MatMul`` itself returns the same empty result.
    """
    import onnx

    if node.op_type != "If":
        return None
    branches = {a.name: a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH}
    body = branches.get("else_branch")
    if body is None or len(body.output) != 1 or len(node.output) != 1:
        return None
    producers = {out: n for n in body.node for out in n.output}
    name = body.output[0].name
    while name in producers and producers[name].op_type == "Identity":
        name = producers[name].input[0]
    matmul = producers.get(name)
    if matmul is None or matmul.op_type != "MatMul" or len(body.node) > 3:
        return None
    weights = constants.get(matmul.input[1])
    if weights is None or weights.ndim != 2 or 0 in weights.shape:
        return None
    return onnx.helper.make_node("MatMul", list(matmul.input), list(node.output), name=node.name)


def _is_one(name: str, constants: dict[str, Any]) -> bool:
    value = constants.get(name)
    return value is not None and value.size == 1 and bool(value.reshape(()) == 1)


def _sigmoid(node: Any, producers: dict[str, Any], constants: dict[str, Any]) -> Any | None:
    """``Sigmoid(v)`` if ``node`` computes ``1 / (1 + exp(-v))``, else None."""
    import onnx

    if node.op_type != "Div" or not _is_one(node.input[0], constants):
        return None
    add = producers.get(node.input[1])
    if add is None or add.op_type != "Add":
        return None
    one, other = add.input if _is_one(add.input[0], constants) else add.input[::-1]
    exp = producers.get(other)
    if not _is_one(one, constants) or exp is None or exp.op_type != "Exp":
        return None
    neg = producers.get(exp.input[0])
    if neg is None or neg.op_type != "Neg":
        return None
    return onnx.helper.make_node("Sigmoid", [neg.input[0]], list(node.output), name=node.name)


def _used_names(graph: Any) -> set[str]:
    """Every value name read by the graph's nodes (and their subgraphs) or returned."""
    used = {value.name for value in graph.output}
    for inner in _graphs(graph):
        for node in inner.node:
            used.update(node.input)
        used.update(value.name for value in inner.output)
    return used


def _simplify(model: Any) -> None:
    """Rewrite the traced graph into the operators ONNX Runtime fuses best.

    Two rewrites, each to an exactly equivalent standard operator: ndonnx's
    guarded matrix products become plain ``MatMul`` (see :func:`_plain_matmul`),
    and the book's ``1 / (1 + exp(-v))`` becomes ``Sigmoid(v)``; then nodes
    whose results nobody reads are dropped. ONNX Runtime fuses ``MatMul``,
    ``Add`` and ``Sigmoid`` into one ``FusedGemm`` kernel, as for a graph
    written by hand. A graph that matches neither pattern is left as traced.
    """
    graph = model.graph
    constants = _constants(graph)
    producers = {out: node for node in graph.node for out in node.output}
    nodes = []
    for node in graph.node:
        replacement = _plain_matmul(node, constants) or _sigmoid(node, producers, constants)
        nodes.append(replacement or node)
    while True:
        del graph.node[:]
        graph.node.extend(nodes)
        used = _used_names(graph)
        kept = [node for node in nodes if any(out in used for out in node.output)]
        if len(kept) == len(nodes):
            return
        nodes = kept


def _set_shape(value: Any, dims: list[int | str]) -> None:
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for size in dims:
        dim = shape.dim.add()
        if isinstance(size, int):
            dim.dim_value = size
        else:
            dim.dim_param = size


def _metadata(net: Network, input_dtype: str, output: str, batch: int | None) -> dict[str, str]:
    from . import __version__

    scale = net.input_scale / 255 if input_dtype == "uint8" else net.input_scale
    return {
        "xpnn.version": __version__,
        "xpnn.layer_sizes": ",".join(str(n) for n in net.layer_sizes),
        "xpnn.hidden": net.hidden if isinstance(net.hidden, str) else ",".join(net.hidden),
        "xpnn.output_function": net.output,
        "xpnn.dtype": net.dtype_name,
        "xpnn.input_scale": repr(net.input_scale),
        "xpnn.folded_input_scale": repr(scale),
        "xpnn.input_dtype": input_dtype,
        "xpnn.output": output,
        "xpnn.batch": "dynamic" if batch is None else str(batch),
    }


def export_model(
    net: Network,
    *,
    input_dtype: str = "float32",
    output: str = "logits",
    batch: int | None = None,
    simplify: bool = True,
) -> onnx.ModelProto:
    """Trace ``net`` into a checked ONNX model, in memory.

    Parameters are those of :func:`export_onnx`, without the path.

    Returns
    -------
    onnx.ModelProto
        Passes ``onnx.checker.check_model(model, full_check=True)``.

    Examples
    --------
    >>> import xpnn
    >>> from xpnn.export import export_model
    >>> model = export_model(xpnn.init_network(), output="labels")
    >>> [(i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim])
    ...  for i in (*model.graph.input, *model.graph.output)]
    [('x', ['batch', 2]), ('labels', ['batch'])]
    """
    if not isinstance(net, Network):
        raise TypeError(f"export_onnx() needs an xpnn.Network, got {type(net).__name__}")
    input_dtype = _choice(input_dtype, INPUT_DTYPES, "input_dtype")
    output = _choice(output, OUTPUTS, "output")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch must be a positive integer or None (dynamic), got {batch!r}")
    if input_dtype == "uint8" and net.input_scale != 1.0:
        raise OnnxError(
            f"input_dtype='uint8' folds the /255 of pixels into W1, but this network already "
            f"scales its input by {net.input_scale!r}; export net.to(input_scale=1.0) for "
            "uint8 pixels, or use input_dtype='float32'"
        )
    onnx_lib = _import_onnx()
    model: onnx.ModelProto = _trace(net, input_dtype, output, batch)
    if simplify:
        _simplify(model)
    _shorten_names(model)
    rows: int | str = BATCH_AXIS if batch is None else batch
    _set_shape(model.graph.input[0], [rows, net.input_size])
    classes = net.layer_sizes[-1]
    _set_shape(model.graph.output[0], [rows] if output == "labels" else [rows, classes])
    model.graph.name = "xpnn_" + "_".join(str(n) for n in net.layer_sizes)
    opsets = {entry.domain or "ai.onnx": entry.version for entry in model.opset_import}
    if opsets.get("ai.onnx") != OPSET:
        try:
            model = onnx_lib.version_converter.convert_version(model, OPSET)
        except Exception as err:
            raise OnnxError(
                f"the traced graph uses opset {opsets}, which onnx cannot convert to "
                f"opset {OPSET} ({type(err).__name__}: {err})"
            ) from err
    model.ir_version = IR_VERSION
    from . import __version__

    model.producer_name = "xpnn"
    model.producer_version = __version__
    model.doc_string = (
        f"{net!r} as traced by xpnn: {input_dtype} input {INPUT_NAME!r}, output {output!r}"
    )
    props = {entry.key: entry.value for entry in model.metadata_props}
    props.update(_metadata(net, input_dtype, output, batch))
    props["xpnn.simplified"] = "true" if simplify else "false"
    onnx_lib.helper.set_model_props(model, props)
    try:
        onnx_lib.checker.check_model(model, full_check=True)
    except Exception as err:  # onnx.checker.ValidationError, shape inference errors
        raise OnnxError(
            f"the traced ONNX model of {net!r} does not pass onnx.checker: {first_line(err)}"
        ) from err
    return model


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a fresh temporary beside ``path``, then replace ``path``.

    On any failure, Ctrl-C included, the temporary is removed and ``path`` is
    left as it was.
    """
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(file.fileno(), 0o666 & ~umask)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def export_onnx(
    net: Network,
    path: str | os.PathLike[str],
    *,
    input_dtype: str = "float32",
    output: str = "logits",
    batch: int | None = None,
    simplify: bool = True,
) -> Path:
    """Write ``net`` as an ONNX model traced through its own forward pass.

    Parameters
    ----------
    net : Network
        Any network, on any backend; it is copied to the ``ndonnx`` backend
        in its dtype (float32 unless it computes in another).
    path : path-like
        The ``.onnx`` file to write. It is written to a temporary file in the
        same directory and then replaced, so it is never half-written.
    input_dtype : {"float32", "uint8"}
        Element type of the input ``x``. ``"float32"`` takes what ``net``
        takes (after its ``input_scale``); ``"uint8"`` takes raw pixels
        0..255 and folds the ``/255`` into ``W1``, so that the model of pixels
        ``p`` equals the float32 model of ``p / 255``.
    output : {"logits", "probabilities", "labels"}
        What the model returns: the last layer's affine output
        (:meth:`Network.forward`), its softmax (:meth:`Network.predict` for a
        softmax network) or the int64 argmax (:meth:`Network.classify`).
    batch : int or None
        ``None`` gives a dynamic batch axis named ``"batch"``; an integer fixes
        the number of rows.
    simplify : bool
        Rewrite two traced patterns into the equivalent single operators
        ONNX Runtime fuses best: ndonnx's guarded matrix products into plain
        ``MatMul``, ``1 / (1 + exp(-v))`` into ``Sigmoid``. ``False`` keeps the
        graph exactly as traced.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        Unknown ``input_dtype`` or ``output``, or a bad ``batch``.
    OnnxError
        The network has no graph form, the model fails ``onnx.checker``, the
        file cannot be written, or uint8 input for a network that already
        scales its input.
    BackendError
        onnx or ndonnx is not installed.

    Examples
    --------
    >>> import tempfile, pathlib, xpnn
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "chapter.onnx"
    >>> xpnn.export_onnx(xpnn.init_network(), path, output="probabilities") == path
    True
    """
    target = Path(os.fspath(path))
    model = export_model(
        net, input_dtype=input_dtype, output=output, batch=batch, simplify=simplify
    )
    data = model.SerializeToString()
    try:
        _write_atomically(target, data)
    except OSError as err:
        reason = err.strerror or str(err)
        raise OnnxError(f"cannot write the ONNX model to {str(target)!r}: {reason}") from None
    return target


# -- command line ------------------------------------------------------------
