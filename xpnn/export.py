"""Export a :class:`~xpnn.Network` to an ONNX model built from its layers.

The graph is the network's own definition, layer by layer: for each ``(W, b)``
a ``MatMul`` and an ``Add``, then the ONNX operator of the activation name the
network computes (``sigmoid`` is ``Sigmoid``, ``relu`` ``Relu``, ``tanh``
``Tanh``, ``identity`` nothing), and at the end ``Softmax`` or ``ArgMax`` as
the output asks. This is the graph ONNX Runtime fuses best (each layer
becomes one ``FusedGemm`` kernel); a name without an operator here is refused.

Float16 networks: ONNX Runtime accumulates float16 products its own way, so
its logits differ from xpnn's by up to a few float16 units (labels of inputs
whose two best classes are that close can differ); float32 and float64 models
agree with :meth:`~xpnn.Network.forward` to rounding (``rtol=1e-5``).

Needs the ``onnx`` extra (``pip install 'xpnn[onnx]'``: onnx and onnxruntime).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._files import atomic_write
from .errors import BackendError, OnnxError, check_choice, first_line, positive_int
from .network import Network

if TYPE_CHECKING:
    import onnx

__all__ = [
    "ACTIVATIONS",
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
#: The ONNX operator of each of :class:`~xpnn.Network`'s hidden activations (None: none).
ACTIVATIONS: dict[str, str | None] = {
    "sigmoid": "Sigmoid",
    "relu": "Relu",
    "tanh": "Tanh",
    "identity": None,
}

_INSTALL = "pip install 'xpnn[onnx]'"


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as err:
        raise BackendError(
            f"exporting to ONNX needs onnx ({err}); install it with: {_INSTALL}"
        ) from None
    return onnx


def _hidden_names(net: Network) -> tuple[str, ...]:
    count = len(net.layer_sizes) - 2
    return (net.hidden,) * count if isinstance(net.hidden, str) else tuple(net.hidden)


def _nodes(onnx: Any, net: Network, input_dtype: str, output: str) -> tuple[list[Any], list[Any]]:
    """The graph's nodes and initializers: the network's layers, in order."""
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    dtype = np.dtype(net.dtype_name)
    # uint8 pixels: the /255 goes into W1 exactly as ``input_scale`` puts it there.
    scale = net.input_scale / 255 if input_dtype == "uint8" else net.input_scale
    params = net.host_params()
    activations = [*_hidden_names(net), None]
    nodes, weights, value = [], [], INPUT_NAME
    if np.dtype(input_dtype) != dtype:
        to = helper.np_dtype_to_tensor_dtype(dtype)
        nodes.append(helper.make_node("Cast", [value], ["x_cast"], to=to))
        value = "x_cast"
    for i, activation in enumerate(activations, start=1):
        w, b = params[f"W{i}"], params[f"b{i}"]
        if i == 1 and scale != 1.0:
            w = w.astype(np.float64) * scale  # as Network folds it
        weights += [numpy_helper.from_array(w.astype(dtype), f"W{i}")]
        weights += [numpy_helper.from_array(b.astype(dtype), f"b{i}")]
        nodes.append(helper.make_node("MatMul", [value, f"W{i}"], [f"xW{i}"]))
        nodes.append(helper.make_node("Add", [f"xW{i}", f"b{i}"], [f"a{i}"]))
        value = f"a{i}"
        if activation is not None:
            op = ACTIVATIONS.get(activation, "")
            if op == "":
                raise OnnxError(
                    f"{net!r} has no ONNX graph form: no ONNX operator for the activation "
                    f"{activation!r}; known: {', '.join(ACTIVATIONS)}"
                )
            if op is not None:
                nodes.append(helper.make_node(op, [value], [f"z{i}"]))
                value = f"z{i}"
    if output == "probabilities":
        nodes.append(helper.make_node("Softmax", [value], [output], axis=-1))
    elif output == "labels":
        nodes.append(helper.make_node("ArgMax", [value], [output], axis=-1, keepdims=0))
    else:  # the last value is the output
        nodes[-1].output[0] = output
    return nodes, weights


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
) -> onnx.ModelProto:
    """Build ``net``'s checked ONNX model, in memory.

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
    >>> [node.op_type for node in model.graph.node]
    ['MatMul', 'Add', 'Sigmoid', 'MatMul', 'Add', 'Sigmoid', 'MatMul', 'Add', 'ArgMax']
    """
    if not isinstance(net, Network):
        raise TypeError(f"export_onnx() needs an xpnn.Network, got {type(net).__name__}")
    input_dtype = check_choice(input_dtype, INPUT_DTYPES, "input_dtype")
    output = check_choice(output, OUTPUTS, "output")
    if batch is not None:
        batch = positive_int(batch, "batch")
    if input_dtype == "uint8" and net.input_scale != 1.0:
        raise OnnxError(
            f"input_dtype='uint8' folds the /255 of pixels into W1, but this network already "
            f"scales its input by {net.input_scale!r}; export net.to(input_scale=1.0) for "
            "uint8 pixels, or use input_dtype='float32'"
        )
    onnx = _import_onnx()
    helper = onnx.helper
    nodes, weights = _nodes(onnx, net, input_dtype, output)
    rows: int | str = BATCH_AXIS if batch is None else batch
    compute = helper.np_dtype_to_tensor_dtype(np.dtype(net.dtype_name))
    x = helper.make_tensor_value_info(
        INPUT_NAME, helper.np_dtype_to_tensor_dtype(np.dtype(input_dtype)), [rows, net.input_size]
    )
    if output == "labels":
        y = helper.make_tensor_value_info(output, onnx.TensorProto.INT64, [rows])
    else:
        y = helper.make_tensor_value_info(output, compute, [rows, net.layer_sizes[-1]])
    name = "xpnn_" + "_".join(str(n) for n in net.layer_sizes)
    graph = helper.make_graph(nodes, name, [x], [y], initializer=weights)
    from . import __version__

    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="xpnn",
        producer_version=__version__,
        doc_string=f"{net!r}: {input_dtype} input {INPUT_NAME!r}, output {output!r}",
    )
    helper.set_model_props(model, _metadata(net, input_dtype, output, batch))
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:  # onnx.checker.ValidationError, shape inference errors
        raise OnnxError(
            f"the ONNX model of {net!r} does not pass onnx.checker: {first_line(err)}"
        ) from err
    return model


def export_onnx(
    net: Network,
    path: str | os.PathLike[str],
    *,
    input_dtype: str = "float32",
    output: str = "logits",
    batch: int | None = None,
) -> Path:
    """Write ``net`` as an ONNX model of its layers.

    Parameters
    ----------
    net : Network
        Any network, on any backend; the model computes in its dtype (the
        weights are read from the host copy the network keeps).
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

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        Unknown ``input_dtype`` or ``output``, or a bad ``batch``.
    OnnxError
        An activation without an ONNX operator, a model that fails
        ``onnx.checker``, a file that cannot be written, or uint8 input for a
        network that already scales its input.
    BackendError
        onnx is not installed.

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
