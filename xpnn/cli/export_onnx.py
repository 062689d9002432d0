"""Export the MNIST network to an ONNX model, traced through xpnn's own forward pass.

examples:
  xpnn export-onnx --out model.onnx --input-dtype uint8 --output labels
  xpnn eval --backend onnxruntime --weights model.onnx

Needs the onnx extra (pip install 'xpnn[onnx]').
"""

from __future__ import annotations

import argparse

from ._common import data_dir_option, output_file, positive

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``xpnn export-onnx`` to ``parser``.

    Examples
    --------
    >>> configure(parser := argparse.ArgumentParser())
    >>> parser.parse_args(["--out", "model.onnx"]).output
    'logits'
    """
    from ..export import INPUT_DTYPES, OUTPUTS

    add = parser.add_argument
    # fmt: off
    add("--out", required=True, metavar="PATH", help="the .onnx file to write")
    add("--input-dtype", default="float32", choices=INPUT_DTYPES, help="float32: pixels in "
        "[0, 1]; uint8: raw pixels 0..255, /255 folded into W1 (default: float32)")
    add("--output", default="logits", choices=OUTPUTS, help="what it returns (default: logits)")
    add("--batch", type=positive, metavar="N", help="a fixed batch size (default: dynamic)")
    add("--dtype", default="float32", choices=["float32", "float64"],
        help="compute dtype (default: float32)")
    add("--weights", metavar="FILE", help="weights file, any format xpnn.load_weights reads "
        "(default: the book's sample_weight.pkl from the data directory)")
    # fmt: on
    data_dir_option(parser)


def run(args: argparse.Namespace) -> str:
    """Export as the options say; return a one-line summary."""
    from ..export import OPSET, export_onnx
    from ..weights import load_weights, pretrained_network

    output_file(args.out, "--out")
    if args.weights:
        net = load_weights(args.weights, backend="numpy", dtype=args.dtype)
    else:
        net = pretrained_network(data_dir=args.data_dir, backend="numpy", dtype=args.dtype)
    path = export_onnx(net, args.out, input_dtype=args.input_dtype, output=args.output,
                       batch=args.batch)  # fmt: skip
    return (
        f"wrote {path} ({path.stat().st_size:,} bytes, opset {OPSET}): "
        f"{'-'.join(map(str, net.layer_sizes))} {net.hidden}, {args.input_dtype} input, "
        f"{args.output} output"
    )
