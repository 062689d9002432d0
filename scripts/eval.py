#!/usr/bin/env python
"""Classify the MNIST test set with the book's pretrained network, on any backend.

    XPNN_BACKEND=cupy python scripts/eval.py
    python scripts/eval.py --backend torch --dtype float64 --json
    python scripts/eval.py --backend onnxruntime --device cuda --weights model.onnx

Prints the backend, device, dtype, accuracy, per-class accuracy, the confusion
matrix, images/s and wall time. Errors (bad flags, unknown backend, missing
GPU or data) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, NoReturn

# Run from a checkout without installing: put the repository root first on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import xpnn
from xpnn.report import Score, score, score_matrix


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="eval.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend",
        default=None,
        help=f"one of {', '.join(xpnn.BACKENDS)}, or onnxruntime to export the network "
        "(or read --weights model.onnx) and score it with ONNX Runtime "
        "(default: $XPNN_BACKEND, else numpy)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: backend's)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16"])
    parser.add_argument("--batch-size", type=int, default=100, help="images per forward pass")
    parser.add_argument(
        "--data-dir", default=None, help="MNIST directory (default: $XPNN_DATA_DIR)"
    )
    parser.add_argument(
        "--weights",
        default=None,
        help=".safetensors/.npz/.pkl file, or .onnx with --backend onnxruntime "
        "(default: the book's)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON report instead")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, accuracy only")
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="with --backend dask: score on the dask cluster at ADDRESS (tcp://host:8786)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="with --backend dask: start a local cluster of N worker processes on 127.0.0.1",
    )
    parser.add_argument(
        "--plot",
        default=None,
        metavar="DIR",
        help="write confusion_matrix.png and misclassified.png to DIR (needs xpnn[plot])",
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.scheduler and args.workers:
        parser.error("give --scheduler or --workers, not both")
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    cluster = args.scheduler or args.workers
    if _is_onnxruntime(args.backend):
        if cluster or args.plot:
            parser.error("--scheduler, --workers and --plot are not available with onnxruntime")
        return args
    if args.weights and args.weights.lower().endswith(".onnx"):
        parser.error("a .onnx model is scored with --backend onnxruntime")
    if cluster and xpnn.backends.backend_name(args.backend) != "dask":
        parser.error("--scheduler and --workers need --backend dask")
    if cluster and args.plot:
        parser.error("--plot is not available with --scheduler/--workers")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'xpnn[plot]'")
    return args


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="img", desc="classifying", leave=False)


def _is_onnxruntime(backend: str | None) -> bool:
    name = backend if backend is not None else os.environ.get("XPNN_BACKEND", "")
    return name.strip().lower() == "onnxruntime"


def run_onnxruntime(args: argparse.Namespace, started: float) -> dict[str, Any]:
    """Export the network (or read a .onnx) and score it with ONNX Runtime."""
    from xpnn.ort import mnist_runner

    runner = mnist_runner(
        args.weights, data_dir=args.data_dir, dtype=args.dtype, device=args.device or "cpu"
    )
    x, t = xpnn.load_mnist_split("test", normalize=False, data_dir=args.data_dir, backend="numpy")
    x = runner.from_pixels(x)
    forward_started = time.perf_counter()
    predictions = runner.classify(x, batch_size=args.batch_size)
    forward_seconds = time.perf_counter() - forward_started
    report = _report(
        args, "onnxruntime", runner.device, score(t, predictions), forward_seconds, started
    )
    report["dtype"] = runner.dtype
    return report


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load, classify and score; return the report."""
    started = time.perf_counter()
    if _is_onnxruntime(args.backend):
        return run_onnxruntime(args, started)
    backend = xpnn.backends.backend_name(args.backend)
    if backend == "jax" and args.dtype == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
    xp, device = xpnn.namespace(backend, args.device)
    if args.scheduler or args.workers:
        return run_on_cluster(args, started)
    network = _network(args, backend, device)
    x, t = xpnn.load_mnist_split(
        "test", normalize=False, data_dir=args.data_dir, backend=backend, device=device
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
    predictions = xpnn.to_numpy(xp.concat(parts))
    forward_seconds = time.perf_counter() - forward_started
    if bar is not None:
        bar.close()
    result: Score = score(xpnn.to_numpy(t), predictions)
    if args.plot:
        write_plots(args.plot, network, x, t, result)
    return _report(args, backend, str(device), result, forward_seconds, started)


def run_on_cluster(args: argparse.Namespace, started: float) -> dict[str, Any]:
    """Score on a dask.distributed cluster: workers read and classify the test set."""
    from xpnn import distributed

    network = _network(args, "numpy", None)
    with distributed.cluster(args.scheduler, args.workers) as client:
        x, t = distributed.mnist_dask(data_dir=args.data_dir, rows_per_chunk=args.batch_size)
        predictions = distributed.classify(network, x)
        forward_started = time.perf_counter()
        matrix = distributed.confusion(predictions, t).compute()
        forward_seconds = time.perf_counter() - forward_started
        workers = len(client.scheduler_info()["workers"])
    device = f"cluster of {workers} worker(s)"
    return _report(args, "dask", device, score_matrix(matrix), forward_seconds, started)


def _report(
    args: argparse.Namespace,
    backend: str,
    device: str,
    result: Score,
    forward_seconds: float,
    started: float,
) -> dict[str, Any]:
    return {
        "backend": backend,
        "device": device,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        **result.as_dict(),
        "images_per_second": result.n / forward_seconds,
        "forward_seconds": forward_seconds,
        "wall_seconds": time.perf_counter() - started,
    }


def _network(args: argparse.Namespace, backend: str, device: Any) -> xpnn.Network:
    # Raw uint8 pixels go straight to the first layer, which carries the /255.
    options = {"backend": backend, "device": device, "dtype": args.dtype}
    if args.weights:
        return xpnn.load_weights(args.weights, **options).to(input_scale=1 / 255)
    return xpnn.pretrained_network(data_dir=args.data_dir, input_scale=1 / 255, **options)


def write_plots(directory: str, network: xpnn.Network, x: Any, t: Any, result: Score) -> None:
    """Write the confusion matrix and the misclassified digits as PNG files."""
    from xpnn.plot import confusion_matrix_figure, misclassified_figure

    os.makedirs(directory, exist_ok=True)
    confusion_matrix_figure(result.confusion_matrix).savefig(
        os.path.join(directory, "confusion_matrix.png"), dpi=80
    )
    probabilities = network.predict(x)  # one more pass, for the confidences
    misclassified_figure(x, t, probabilities).savefig(
        os.path.join(directory, "misclassified.png"), dpi=60
    )


def print_report(report: dict[str, Any], quiet: bool) -> None:
    line = f"accuracy: {report['accuracy']:.4f} ({report['correct']}/{report['n']})"
    if quiet:
        print(line)
        return
    print(
        f"backend: {report['backend']}  device: {report['device']}  dtype: {report['dtype']}  "
        f"batch size: {report['batch_size']}"
    )
    print(line)
    print("per-class accuracy:")
    for digit, acc in enumerate(report["per_class_accuracy"]):
        print(f"  {digit}: {acc:.4f}")
    print("confusion matrix (rows: true digit, columns: predicted digit):")
    print("      " + "".join(f"{d:>6}" for d in range(10)))
    for digit, row in enumerate(report["confusion_matrix"]):
        print(f"  {digit:>2}  " + "".join(f"{c:>6}" for c in row))
    print(
        f"speed: {report['images_per_second']:,.0f} images/s "
        f"(forward {report['forward_seconds'] * 1e3:.1f} ms), "
        f"wall time {report['wall_seconds']:.2f} s"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except xpnn.XpnnError as err:
        print(f"eval.py: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eval.py: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report, args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
