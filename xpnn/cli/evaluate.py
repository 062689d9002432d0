"""Classify the MNIST test set with the book's pretrained network, on any backend.

Prints the backend, device, dtype, accuracy, per-class accuracy, the confusion
matrix, images/s and wall time (or all of it as JSON with --json).

examples:
  xpnn eval
  xpnn eval --backend onnxruntime --weights model.onnx
  XPNN_BACKEND=torch xpnn eval --device cpu --dtype float64 --batch-size 1000 --json
  xpnn eval --backend dask --workers 4
  xpnn eval --plot figures

environment:
  XPNN_BACKEND    backend when --backend is not given (default numpy)
  XPNN_DATA_DIR   data directory when --data-dir is not given (empty: not set)
  XPNN_OFFLINE=1  never download; missing files are an error naming them

Errors print one line on stderr and exit with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .. import backends
from ..network import Network
from ..report import Score, format_report, score, score_matrix
from ._common import (
    CommandError,
    atomic_output,
    optional_path,
    output_directory,
)

__all__ = ["configure", "run"]

#: The layer widths a network must have at its ends to classify MNIST.
MNIST_INPUTS, MNIST_CLASSES = 784, 10

#: Seconds allowed for reaching a dask scheduler (connection and handshake).
SCHEDULER_TIMEOUT = 5.0

DEFAULT_BATCH_SIZE = 100

#: The --backend name that scores an exported model with ONNX Runtime.
ONNXRUNTIME = "onnxruntime"


def positive_int(text: str) -> int:
    """Parse an integer of at least 1 (an ``argparse`` type).

    Examples
    --------
    >>> positive_int("100")
    100
    >>> positive_int("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be at least 1, got 0
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``xpnn eval`` to ``parser``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> configure(parser)
    >>> args = parser.parse_args(["--backend", "torch"])
    >>> args.backend, args.dtype, args.batch_size
    ('torch', 'float32', 100)
    """
    parser.add_argument(
        "--backend",
        default=None,
        metavar="NAME",
        help=f"array library: {', '.join(backends.BACKENDS)}; or {ONNXRUNTIME} to export the "
        "network (or read --weights model.onnx) and score it with ONNX Runtime "
        "(default: $XPNN_BACKEND, else numpy)",
    )
    parser.add_argument(
        "--device",
        default=None,
        metavar="DEVICE",
        help="cpu, cuda or cuda:N; jax also cpu:N; array_api_strict also device1, device2 "
        "(default: the backend's default device: cpu, or cuda:0 for cupy)",
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64", "float16"],
        help="compute dtype (default: float32)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"images per forward pass; also rows per chunk on a cluster "
        f"(default: {DEFAULT_BATCH_SIZE}, as in the chapter)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="directory of the MNIST files and sample_weight.pkl (default: $XPNN_DATA_DIR, "
        "else the user cache directory, ~/.cache/xpnn on Linux; an empty value counts as "
        "not given)",
    )
    parser.add_argument(
        "--weights",
        default=None,
        metavar="FILE",
        help=".safetensors, .npz or .pkl weights of a 784-...-10 network, or a .onnx model "
        f"with --backend {ONNXRUNTIME} "
        "(default: the book's sample_weight.pkl from the data directory)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the report as JSON (default: text)"
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print the accuracy line only, no progress bar (default: the full report, "
        "with a progress bar when stderr is a terminal)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="with --backend dask: score on the running dask cluster at ADDRESS, "
        f"e.g. tcp://scheduler-host:8786; refused after {SCHEDULER_TIMEOUT:g} s without "
        "a scheduler's answer (default: no cluster)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="with --backend dask: start a local cluster of N single-threaded worker "
        "processes on 127.0.0.1, stopped at the end (default: no cluster)",
    )
    parser.add_argument(
        "--plot",
        default=None,
        metavar="DIR",
        help="also write confusion_matrix.png and misclassified.png to DIR, created if "
        "needed and checked before the run; needs xpnn[plot] (default: no figures)",
    )


def _is_onnxruntime(backend: str | None) -> bool:
    name = backend if backend is not None else os.environ.get("XPNN_BACKEND", "")
    return name.strip().lower() == ONNXRUNTIME


def _checked(args: argparse.Namespace) -> str:
    """Check the combination of options before any work; return the backend name."""
    on_cluster = args.scheduler is not None or args.workers is not None
    if _is_onnxruntime(args.backend):
        if on_cluster or args.plot is not None:
            raise CommandError(
                f"--scheduler, --workers and --plot are not available with {ONNXRUNTIME}"
            )
        return ONNXRUNTIME
    if args.weights is not None and args.weights.lower().endswith(".onnx"):
        raise CommandError(f"a .onnx model is scored with --backend {ONNXRUNTIME}")
    backend = backends.backend_name(args.backend)
    if args.scheduler is not None and args.workers is not None:
        raise CommandError("give --scheduler or --workers, not both")
    if on_cluster and backend != "dask":
        raise CommandError(
            f"--scheduler and --workers need --backend dask (the backend is {backend!r})"
        )
    if args.plot is not None:
        if on_cluster:
            raise CommandError("--plot is not available with --scheduler/--workers")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CommandError("--plot needs matplotlib: pip install 'xpnn[plot]'") from None
    return backend


def _network(args: argparse.Namespace, backend: str, device: Any) -> Network:
    """The network to score, taking raw uint8 pixels (the /255 is folded into W1)."""
    from ..weights import load_weights, pretrained_network

    if args.weights is None:
        return pretrained_network(
            data_dir=optional_path(args.data_dir),
            backend=backend,
            device=device,
            dtype=args.dtype,
            input_scale=1 / 255,
        )
    network = load_weights(args.weights, backend=backend, device=device, dtype=args.dtype)
    sizes = network.layer_sizes
    if sizes[0] != MNIST_INPUTS or sizes[-1] != MNIST_CLASSES or min(sizes) < 1:
        raise CommandError(
            f"--weights {args.weights!r}: MNIST needs a network with {MNIST_INPUTS} inputs, "
            f"{MNIST_CLASSES} outputs and no empty layer; the file has layers "
            f"{'-'.join(map(str, sizes))}"
        )
    return network.to(input_scale=1 / 255)


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        tqdm: Any = importlib.import_module("tqdm").tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="img", desc="classifying", leave=False)


def _report(
    args: argparse.Namespace,
    backend: str,
    device: str,
    result: Score,
    forward: float,
    started: float,
) -> dict[str, Any]:
    return {
        "backend": backend,
        "device": device,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        **result.as_dict(),
        "images_per_second": result.n / forward if forward > 0 else float("inf"),
        "forward_seconds": forward,
        "wall_seconds": time.perf_counter() - started,
    }


def _evaluate_locally(
    args: argparse.Namespace, backend: str, started: float, plot_directory: Path | None
) -> dict[str, Any]:
    import array_api_compat

    from ..backends import namespace, to_numpy
    from ..mnist import load_mnist_split

    if backend == "jax" and args.dtype == "float64":
        jax: Any = importlib.import_module("jax")
        jax.config.update("jax_enable_x64", True)
    xp, device = namespace(backend, args.device)
    network = _network(args, backend, device)
    x, t = load_mnist_split(
        "test",
        normalize=False,
        data_dir=optional_path(args.data_dir),
        backend=backend,
        device=device,
    )
    n = x.shape[0]
    bar = _progress(n, not args.quiet and not args.json and sys.stderr.isatty())
    forward_started = time.perf_counter()
    parts = []
    for start in range(0, n, args.batch_size):
        stop = min(start + args.batch_size, n)
        parts.append(network.classify(x[start:stop, ...]))
        if bar is not None:
            bar.update(stop - start)
    labels = xp.concat(parts)
    where = str(array_api_compat.device(labels))
    predictions = to_numpy(labels)
    forward = time.perf_counter() - forward_started
    if bar is not None:
        bar.close()
    result = score(to_numpy(t), predictions)
    if plot_directory is not None:
        _write_plots(plot_directory, network, x, t, result)
    return _report(args, backend, where, result, forward, started)


def _evaluate_on_cluster(args: argparse.Namespace, started: float) -> dict[str, Any]:
    from .. import distributed

    network = _network(args, "numpy", None)
    with distributed.cluster(args.scheduler, args.workers, timeout=SCHEDULER_TIMEOUT) as client:
        x, t = distributed.mnist_dask(
            data_dir=optional_path(args.data_dir), rows_per_chunk=args.batch_size
        )
        predictions = distributed.classify(network, x, classes=MNIST_CLASSES)
        forward_started = time.perf_counter()
        matrix = distributed.confusion(predictions, t).compute()
        forward = time.perf_counter() - forward_started
        workers = len(client.scheduler_info()["workers"])
    where = f"cluster of {workers} worker(s)"
    return _report(args, "dask", where, score_matrix(matrix), forward, started)


def _evaluate_with_onnxruntime(args: argparse.Namespace, started: float) -> dict[str, Any]:
    """Export the network (or read a .onnx) and score it with ONNX Runtime."""
    from ..mnist import load_mnist_split
    from ..ort import mnist_runner

    data_dir = optional_path(args.data_dir)
    runner = mnist_runner(
        args.weights, data_dir=data_dir, dtype=args.dtype, device=args.device or "cpu"
    )
    x, t = load_mnist_split("test", normalize=False, data_dir=data_dir, backend="numpy")
    x = runner.from_pixels(x)
    forward_started = time.perf_counter()
    predictions = runner.classify(x, batch_size=args.batch_size)
    forward = time.perf_counter() - forward_started
    report = _report(args, ONNXRUNTIME, runner.device, score(t, predictions), forward, started)
    report["dtype"] = runner.dtype  # a given .onnx decides its own dtype
    return report


def _write_plots(directory: Path, network: Network, x: Any, t: Any, result: Score) -> None:
    """Write the confusion matrix and the misclassified digits, each file atomically."""
    from ..plot import confusion_matrix_figure, misclassified_figure

    figure = confusion_matrix_figure(result.confusion_matrix)
    with atomic_output(directory / "confusion_matrix.png") as stream:
        figure.savefig(stream, format="png", dpi=80)
    probabilities = network.predict(x)  # one more pass, for the confidences
    figure = misclassified_figure(x, t, probabilities)
    with atomic_output(directory / "misclassified.png") as stream:
        figure.savefig(stream, format="png", dpi=60)


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Load, classify and score as the options say; return the report as a dict."""
    started = time.perf_counter()
    backend = _checked(args)
    if backend == ONNXRUNTIME:
        return _evaluate_with_onnxruntime(args, started)
    if args.scheduler is not None or args.workers is not None:
        return _evaluate_on_cluster(args, started)
    if args.plot is None:
        return _evaluate_locally(args, backend, started, None)
    with output_directory(args.plot, "--plot") as directory:  # checked before the work
        return _evaluate_locally(args, backend, started, directory)


def run(args: argparse.Namespace) -> int:
    """Run ``xpnn eval`` and print the report; return the exit status."""
    report = evaluate(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report, quiet=args.quiet))
    return 0
