"""Export a :class:`~xpnn.Network` to ONNX: per layer ``MatMul``, ``Add`` and the operator of its
activation (:data:`ACTIVATIONS`), then ``Softmax`` or ``ArgMax`` as asked (docs/onnx.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from ._files import atomic_write
from .errors import OnnxError, check_choice, first_line, positive_int
from .network import Network
from .onnx_import import _onnx

if TYPE_CHECKING:
    import onnx

__all__ = ["ACTIVATIONS", "INPUT_DTYPES", "IR_VERSION", "OPSET", "OUTPUTS", "export_model"]
__all__ += ["BATCH_AXIS", "INPUT_NAME", "export_onnx"]

#: The ONNX operator set (ai.onnx) and IR version of every exported model.
OPSET, IR_VERSION = 21, 10
#: Input element types of a model, and what it can return (its output's name).
INPUT_DTYPES, OUTPUTS = ("float32", "uint8"), ("logits", "probabilities", "labels")
#: Name of the model's input, and of its dynamic batch axis.
INPUT_NAME, BATCH_AXIS = "x", "batch"
#: The ONNX operator of each hidden activation name of :class:`~xpnn.Network`.
ACTIVATIONS = {"sigmoid": "Sigmoid", "relu": "Relu", "tanh": "Tanh", "identity": None}


def export_model(net: Network, *, input_dtype: str = "float32", output: str = "logits",
                 batch: int | None = None) -> onnx.ModelProto:  # fmt: skip
    """Build ``net``'s ONNX model in memory (see :func:`export_onnx`); it passes ``onnx.checker``.

    Examples
    --------
    >>> import xpnn
    >>> model = export_model(xpnn.init_network(), output="labels")
    >>> [node.op_type for node in model.graph.node][:3], model.graph.output[0].name
    (['MatMul', 'Add', 'Sigmoid'], 'labels')
    """
    if not isinstance(net, Network):
        raise TypeError(f"export_onnx() needs an xpnn.Network, got {type(net).__name__}")
    input_dtype = check_choice(input_dtype, INPUT_DTYPES, "input_dtype")
    output = check_choice(output, OUTPUTS, "output")
    batch = None if batch is None else positive_int(batch, "batch")
    if input_dtype == "uint8" and net.input_scale != 1.0:
        fix = "export net.to(input_scale=1.0), or use input_dtype='float32'"
        raise OnnxError(f"uint8 input: the network already scales by {net.input_scale!r}; {fix}")
    onnx: Any = _onnx()
    helper, dtype, rows = onnx.helper, np.dtype(net.dtype_name), batch or BATCH_AXIS
    make, kind = helper.make_node, helper.np_dtype_to_tensor_dtype
    # uint8 pixels: the /255 goes into W1 exactly as ``input_scale`` puts it there.
    folded = net.input_scale / 255 if input_dtype == "uint8" else net.input_scale
    hidden = net.hidden  # one name for every hidden layer, or a name each
    names = [hidden] * (len(net.layer_sizes) - 2) if isinstance(hidden, str) else [*hidden]
    params, nodes, weights, value = net.host_params(), [], [], INPUT_NAME
    if np.dtype(input_dtype) != dtype:
        nodes, value = [make("Cast", [value], ["x_cast"], to=kind(dtype))], "x_cast"
    for i, name in enumerate([*names, "identity"], start=1):  # the network's layers, in order
        if name not in ACTIVATIONS:
            known = ", ".join(ACTIVATIONS)
            raise OnnxError(f"{net!r}: no ONNX operator for activation {name!r}; known: {known}")
        w = params[f"W{i}"]
        w = w.astype(np.float64) * folded if i == 1 and folded != 1.0 else w  # as Network folds
        for key, arr in ((f"W{i}", w), (f"b{i}", params[f"b{i}"])):
            weights.append(onnx.numpy_helper.from_array(arr.astype(dtype), key))
        nodes.append(make("MatMul", [value, f"W{i}"], [f"xW{i}"]))
        nodes.append(make("Add", [f"xW{i}", f"b{i}"], [f"a{i}"]))
        value, op = f"a{i}", ACTIVATIONS[name]
        if op is not None:
            nodes, value = [*nodes, make(op, [value], [f"z{i}"])], f"z{i}"
    if output == "probabilities":
        nodes.append(make("Softmax", [value], [output], axis=-1))
    elif output == "labels":
        nodes.append(make("ArgMax", [value], [output], axis=-1, keepdims=0))
    else:  # the last value is the output
        nodes[-1].output[0] = output
    info = helper.make_tensor_value_info
    x = info(INPUT_NAME, kind(np.dtype(input_dtype)), [rows, net.input_size])
    scores = [rows] if output == "labels" else [rows, net.layer_sizes[-1]]
    y = info(output, kind(np.dtype("int64") if output == "labels" else dtype), scores)
    sizes = ",".join(str(n) for n in net.layer_sizes)
    graph = helper.make_graph(nodes, "xpnn_" + sizes.replace(",", "_"), [x], [y], weights)
    opsets = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION)
    model.producer_name, model.producer_version = "xpnn", __version__
    model.doc_string = f"{net!r}: {input_dtype} input {INPUT_NAME!r}, output {output!r}"
    hidden = hidden if isinstance(hidden, str) else ",".join(hidden)
    meta = {"version": __version__, "layer_sizes": sizes, "hidden": hidden}
    meta |= {"output_function": net.output, "dtype": net.dtype_name, "output": output}
    meta |= {"input_scale": repr(net.input_scale), "folded_input_scale": repr(folded)}
    meta |= {"input_dtype": input_dtype, "batch": "dynamic" if batch is None else str(batch)}
    helper.set_model_props(model, {f"xpnn.{key}": text for key, text in meta.items()})
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:  # onnx.checker.ValidationError, shape inference errors
        raise OnnxError(f"the ONNX model of {net!r} fails onnx.checker: {first_line(err)}") from err
    return model  # type: ignore[no-any-return]


def export_onnx(net: Network, path: str | os.PathLike[str], *, input_dtype: str = "float32",
                output: str = "logits", batch: int | None = None) -> Path:  # fmt: skip
    """Write ``net`` as an ONNX model of its layers, atomically; return the path.

    ``input_dtype``: ``"float32"`` (what ``net`` takes) or ``"uint8"`` (pixels 0..255, ``/255``
    folded into ``W1``); ``output``: ``"logits"`` (:meth:`Network.forward`), ``"probabilities"``
    or int64 ``"labels"``; ``batch=None``: a dynamic batch axis. Failures: :class:`~xpnn.OnnxError`.

    Examples
    --------
    >>> import tempfile, pathlib, xpnn
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "chapter.onnx"
    >>> xpnn.export_onnx(xpnn.init_network(), path, output="probabilities") == path
    True
    """
    target = Path(os.fspath(path))
    model = export_model(net, input_dtype=input_dtype, output=output, batch=batch)
    try:
        atomic_write(target, model.SerializeToString())
    except OSError as err:
        reason = err.strerror or str(err)
        raise OnnxError(f"cannot write the ONNX model to {str(target)!r}: {reason}") from None
    return target
