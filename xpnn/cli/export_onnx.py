"""Export the MNIST network to an ONNX model, traced through xpnn's own forward pass.

examples:
  xpnn export-onnx --out model.onnx
  xpnn export-onnx --out model.onnx --input-dtype uint8 --output labels
  xpnn eval --backend onnxruntime --weights model.onnx

Needs the onnx extra (pip install 'xpnn[onnx]'). Errors print one line on
stderr and exit with status 2.
"""

from __future__ import annotations

import argparse

from ._common import check_output_file, optional_path
from .evaluate import positive_int

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``xpnn export-onnx`` to ``parser``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> configure(parser)
    >>> args = parser.parse_args(["--out", "model.onnx"])
    >>> args.input_dtype, args.output, args.batch
    ('float32', 'logits', None)
    """
    from ..export import INPUT_DTYPES, OUTPUTS

    parser.add_argument("--out", required=True, metavar="PATH", help="the .onnx file to write")
    parser.add_argument(
        "--input-dtype",
        default="float32",
        choices=INPUT_DTYPES,
        help="float32: pixels in [0, 1]; uint8: raw pixels 0..255, /255 folded into W1 "
        "(default: float32)",
    )
    parser.add_argument(
        "--output",
        default="logits",
        choices=OUTPUTS,
        help="what the model returns (default: logits)",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=None,
        metavar="N",
        help="fix the batch size (default: a dynamic batch axis)",
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64"],
        help="compute dtype (default: float32)",
    )
    parser.add_argument(
        "--weights",
        default=None,
        metavar="FILE",
        help=".safetensors, .npz or .pkl weights (default: the book's sample_weight.pkl "
        "from the data directory)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="where the book's weights are (default: $XPNN_DATA_DIR, else the user cache "
        "directory; an empty value counts as not given)",
    )


def run(args: argparse.Namespace) -> int:
    """Export as the options say and print a one-line summary."""
    from ..export import OPSET, export_onnx
    from ..weights import load_weights, pretrained_network

    check_output_file(args.out, "--out")
    if args.weights:
        net = load_weights(args.weights, backend="numpy", dtype=args.dtype)
    else:
        data_dir = optional_path(args.data_dir)
        net = pretrained_network(data_dir=data_dir, backend="numpy", dtype=args.dtype)
    path = export_onnx(
        net, args.out, input_dtype=args.input_dtype, output=args.output, batch=args.batch
    )
    sizes = "-".join(str(n) for n in net.layer_sizes)
    print(
        f"wrote {path} ({path.stat().st_size:,} bytes, opset {OPSET}): {sizes} {net.hidden}, "
        f"{args.input_dtype} input, {args.output} output"
    )
    return 0
