"""The commands besides ``eval`` (a command's docstring is its ``--help`` text), and what all
commands share: option types, and output checks made before any work.

Examples
--------
>>> ShowMnist.configure(parser := argparse.ArgumentParser())
>>> parser.parse_args(["--start", "240"]).count
30
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import XpnnError

DPI_RANGE = (10, 600)  #: 600 is print quality; far above, a figure takes gigabytes and minutes
MNIST_TEST_SIZE = 10_000


def integer_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An ``argparse`` type: an integer in ``low..high`` (without ``high``: at least ``low``)."""

    def parse(text: str) -> int:
        with contextlib.suppress(ValueError):
            if low <= int(text) and (high is None or int(text) <= high):
                return int(text)
        what = f"at least {low} (an integer)" if high is None else f"an integer in {low}..{high}"
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")

    return parse


positive, digit = integer_in(1), integer_in(0, MNIST_TEST_SIZE - 1)


# fmt: off
def figure_options(parser: argparse.ArgumentParser, out: str) -> None:
    add = parser.add_argument
    add("--out", default=out, metavar="FILE",
        help=f"image; its suffix names the format (default: {out})")
    add("--backend", metavar="NAME", help="backend (default: $XPNN_BACKEND, else numpy)")
    add("--device", metavar="DEVICE", help="device (default: the backend's)")
    add("--dpi", type=integer_in(*DPI_RANGE), default=80,
        help="resolution of a raster image, {}..{} (default: 80)".format(*DPI_RANGE))


def data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help="where the MNIST files and "
        "sample_weight.pkl are (default: $XPNN_DATA_DIR, else ~/.cache/xpnn; empty: not given)")
# fmt: on


def output_file(path: str | Path, option: str, *, image: bool = False) -> Path:
    """Check, before any work, that a file (``image``: a figure, in a format its suffix names,
    with matplotlib installed) can be written there."""
    target, what = Path(path).expanduser(), f"{option} {str(path)!r}"
    if target.is_dir():
        raise XpnnError(f"{what} is a directory, not a file")
    if not target.parent.is_dir():
        raise XpnnError(f"{what}: no directory {str(target.parent)!r}")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise XpnnError(f"{what}: cannot write to {str(target.parent)!r}")
    if image:
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise XpnnError("figures need matplotlib: pip install 'xpnn[plot]'") from None
        supported = Figure().canvas.get_supported_filetypes()
        if target.suffix[1:].lower() not in supported:
            names = ", ".join("." + name for name in sorted(supported))
            raise XpnnError(f"{str(path)!r}: give a file name ending in one of {names}")
    return target


def save_figure(figure: Any, path: Path, dpi: int) -> None:
    """Write ``figure`` to ``path`` (checked by :func:`output_file`) atomically."""
    from .._files import atomic_write

    fmt = path.suffix[1:].lower()
    atomic_write(path, lambda f: figure.savefig(f, format=fmt, dpi=dpi))


def ensure_data(data_dir: str | None, *, book_weights: bool) -> None:
    """Make sure the MNIST test files (and the book's weights) are there; one error names all."""
    from ..download import data_home, ensure_files
    from ..mnist import MNIST_FILES
    from ..weights import BOOK_WEIGHTS

    files = [MNIST_FILES["test", "images"], MNIST_FILES["test", "labels"]]
    ensure_files([*files, BOOK_WEIGHTS] if book_weights else files, data_home(data_dir))


class PlotActivations:
    """Draw the chapter's activation functions (sigmoid and step, ReLU) with xpnn.

    examples:
      xpnn plot-activations --backend torch --out docs/activations.png
    """

    @staticmethod
    def configure(parser: argparse.ArgumentParser) -> None:
        figure_options(parser, "activations.png")

    @staticmethod
    def run(args: argparse.Namespace) -> str:
        from ..plot import activation_figure

        out = output_file(args.out, "--out", image=True)
        save_figure(activation_figure(args.backend, args.device), out, args.dpi)
        return str(args.out)


class ShowMnist:
    """Draw MNIST test digits with their labels and the book network's predictions.

    examples:
      xpnn show-mnist --start 240 --count 30 --out docs/digits.png

    Mistakes are drawn in red.
    """

    @staticmethod
    def configure(parser: argparse.ArgumentParser) -> None:
        figure_options(parser, "digits.png")
        add = parser.add_argument
        add("--count", type=positive, default=30, help="how many digits (default: 30)")
        add("--start", type=digit, default=0, help="index of the first test digit (default: 0)")
        data_dir_option(parser)

    @staticmethod
    def run(args: argparse.Namespace) -> str:
        from ..mnist import load_mnist_split
        from ..plot import digits_figure
        from ..weights import pretrained_network

        start, stop, last = args.start, args.start + args.count, MNIST_TEST_SIZE - 1
        if stop > MNIST_TEST_SIZE:
            raise XpnnError(
                f"--start {start} --count {args.count} asks for digits up to {stop - 1}, but "
                f"the test set ends at {last}: use --count at most {MNIST_TEST_SIZE - start}"
            )
        out = output_file(args.out, "--out", image=True)
        ensure_data(args.data_dir, book_weights=True)
        where = {"data_dir": args.data_dir, "backend": args.backend, "device": args.device}
        x, t = load_mnist_split("test", normalize=False, **where)
        network = pretrained_network(input_scale=1 / 255, **where)
        x, t = x[start:stop, ...], t[start:stop]
        save_figure(digits_figure(x, t, network.classify(x)), out, args.dpi)
        return str(args.out)


class ExportOnnx:
    """Export the MNIST network to an ONNX model built from its layers.

    examples:
      xpnn export-onnx --out model.onnx --input-dtype uint8 --output labels
      xpnn eval --backend onnxruntime --weights model.onnx

    Needs the onnx extra (pip install 'xpnn[onnx]').
    """

    @staticmethod
    def configure(parser: argparse.ArgumentParser) -> None:
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
        add("--weights", metavar="FILE", help="a file load_weights reads (default: the book's)")
        # fmt: on
        data_dir_option(parser)

    @staticmethod
    def run(args: argparse.Namespace) -> str:
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
