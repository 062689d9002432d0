"""Classify the MNIST test set with the book's pretrained network, on any backend.

Prints the backend, device, dtype, accuracy, per-class accuracy, the confusion
matrix, images/s and wall time (or all of it as JSON with --json). On a
terminal, a progress bar shows on stderr (tqdm, when installed); a dask
computation (--backend dask, --workers, --scheduler) says on stderr that it is
computing instead, since it has no batches to count until it runs.

examples:
  xpnn eval
  xpnn eval --weights model.onnx --backend torch
  xpnn eval --backend onnxruntime --weights model.onnx
  XPNN_BACKEND=torch xpnn eval --device cpu --dtype float64 --batch-size 1000 --json
  xpnn eval --backend dask --workers 4
  xpnn eval --plot figures

environment:
  XPNN_BACKEND    backend when --backend is not given (default numpy)
  XPNN_DATA_DIR   data directory when --data-dir is not given (empty: not set)
  XPNN_OFFLINE=1  never download; missing files are an error naming them all

Errors print one line on stderr and exit with status 2; Ctrl-C exits with 130,
SIGTERM with 143.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .. import backends
from ..errors import OnnxError, XpnnError, first_line
from ..report import Score, format_report, score, score_matrix
from ._common import data_dir_option, ensure_data, output_directory, output_file, positive

__all__ = ["configure", "run"]

#: The pseudo-backend that scores the exported network (or a given .onnx) in ONNX Runtime.
ONNXRUNTIME = "onnxruntime"
#: The backend the cluster options need: they run :mod:`xpnn.distributed` on dask arrays.
DASK = "dask"
#: Seconds allowed for reaching a dask scheduler, and then for it to have a worker.
SCHEDULER_TIMEOUT = 5.0
DEFAULT_BATCH_SIZE = 100
MNIST_INPUTS, MNIST_CLASSES = 784, 10
PLOTS = ("confusion_matrix.png", "misclassified.png")


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
    add = parser.add_argument
    add("--backend", metavar="NAME",
        help=f"array library: {', '.join(backends.BACKENDS)}; or {ONNXRUNTIME} to score the "
        "network (exported, or --weights model.onnx as it is) with ONNX Runtime; ndonnx is "
        f"refused here (one ONNX Runtime call per operation: use {ONNXRUNTIME}) "
        "(default: $XPNN_BACKEND, else numpy)")  # fmt: skip
    add("--device", metavar="DEVICE",
        help="cpu, cuda or cuda:N; jax also cpu:N; array_api_strict also device1, device2 "
        "(default: the backend's default device: cpu, or cuda:0 for cupy)")  # fmt: skip
    add("--dtype", default="float32", choices=["float32", "float64", "float16"],
        help="compute dtype (default: float32)")  # fmt: skip
    add("--batch-size", type=positive, default=DEFAULT_BATCH_SIZE, metavar="N",
        help="images per forward pass; also rows per chunk on a cluster "
        f"(default: {DEFAULT_BATCH_SIZE}, as in the chapter)")  # fmt: skip
    data_dir_option(parser)
    add("--weights", metavar="FILE",
        help=".safetensors, .npz, .pkl or .onnx model of a 784-...-10 network, read by "
        "xpnn.load_weights on any backend (default: the book's sample_weight.pkl from the "
        "data directory)")  # fmt: skip
    add("--json", action="store_true", help="print the report as JSON (default: text)")
    add("--quiet", action="store_true",
        help="print the accuracy line only, no progress (default: the full report, with "
        "progress on stderr when it is a terminal)")  # fmt: skip
    add("--scheduler", metavar="ADDRESS",
        help=f"with --backend {DASK}: score on the running dask cluster at ADDRESS, e.g. "
        f"tcp://scheduler-host:8786; refused after {SCHEDULER_TIMEOUT:g} s without a "
        f"scheduler's answer, or {SCHEDULER_TIMEOUT:g} s more without any worker "
        "(default: no cluster)")  # fmt: skip
    add("--workers", type=positive, metavar="N",
        help=f"with --backend {DASK}: start a local cluster of N single-threaded worker "
        "processes on 127.0.0.1, stopped at the end (default: no cluster)")  # fmt: skip
    add("--plot", metavar="DIR",
        help=f"also write {' and '.join(PLOTS)} to DIR, created if needed; every output "
        "path is checked before the run; needs xpnn[plot] (default: no figures)")  # fmt: skip


def run(args: argparse.Namespace) -> str:
    """Run ``xpnn eval``; return the report's text."""
    report = evaluate(args)
    return json.dumps(report, indent=2) if args.json else format_report(report, quiet=args.quiet)


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Check the options, load, classify and score; return the report as a dict."""
    started = time.perf_counter()
    name = args.backend if args.backend is not None else os.environ.get("XPNN_BACKEND", "")
    onnxruntime = name.strip().lower() == ONNXRUNTIME
    backend = ONNXRUNTIME if onnxruntime else backends.backend_name(args.backend)
    on_cluster = args.scheduler is not None or args.workers is not None
    if onnxruntime and (on_cluster or args.plot is not None):
        raise XpnnError(f"--scheduler, --workers and --plot are not available with {ONNXRUNTIME}")
    if args.scheduler is not None and args.workers is not None:
        raise XpnnError("give --scheduler or --workers, not both")
    if on_cluster and backend != DASK:
        raise XpnnError(f"--scheduler and --workers need --backend {DASK} (it is {backend!r})")
    if on_cluster and args.plot is not None:
        raise XpnnError("--plot is not available with --scheduler/--workers")
    book = args.weights is None
    if onnxruntime:
        return _onnxruntime(args, started, book)
    if on_cluster:
        ensure_data(args.data_dir, book_weights=book)
        return _on_cluster(args, started)
    if args.plot is None:
        return _locally(args, backend, started, None)
    with output_directory(args.plot, "--plot") as directory:
        paths = [output_file(directory / name, "--plot", image=True) for name in PLOTS]
        return _locally(args, backend, started, paths)


def _network(args: argparse.Namespace, backend: str, device: Any) -> Any:
    """The network to score, taking raw uint8 pixels (the /255 is folded into W1)."""
    from ..weights import load_weights, pretrained_network

    options = {"backend": backend, "device": device, "dtype": args.dtype}
    if args.weights is None:
        return pretrained_network(data_dir=args.data_dir, input_scale=1 / 255, **options)
    network = load_weights(args.weights, **options)
    sizes = network.layer_sizes
    if sizes[0] != MNIST_INPUTS or sizes[-1] != MNIST_CLASSES or min(sizes) < 1:
        raise XpnnError(
            f"--weights {args.weights!r}: MNIST needs a network with {MNIST_INPUTS} inputs, "
            f"{MNIST_CLASSES} outputs and no empty layer; the file has layers "
            f"{'-'.join(map(str, sizes))}"
        )
    return network.to(input_scale=1 / 255)


@contextlib.contextmanager
def _progress(args: argparse.Namespace, total: int, lazy: str = "") -> Iterator[Any]:
    """A tqdm bar's ``update`` on a terminal (None elsewhere); ``lazy``: a line instead."""
    if args.quiet or args.json or not sys.stderr.isatty():
        yield None
        return
    if lazy:
        print(f"xpnn eval: {lazy} ...", file=sys.stderr, flush=True)
        yield None
        return
    try:
        from tqdm import tqdm
    except ImportError:
        yield None
        return
    with tqdm(total=total, unit="img", desc="classifying", leave=False) as bar:
        yield bar.update


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


def _timed(compute: Callable[[], Any]) -> tuple[Any, float]:
    """``compute()`` as a NumPy array, and the seconds it took."""
    begun = time.perf_counter()
    result = backends.to_numpy(compute())
    return result, time.perf_counter() - begun


def _locally(
    args: argparse.Namespace, backend: str, started: float, plots: list[Path] | None
) -> dict[str, Any]:
    import array_api_compat

    from ..mnist import load_mnist_split

    if args.dtype == "float64":  # TODO(backends): namespace() should turn on JAX's 64-bit mode
        os.environ.setdefault("JAX_ENABLE_X64", "1")  # read by JAX when imported, by it alone
    xp, device = backends.namespace(backend, args.device)
    if array_api_compat.is_ndonnx_namespace(xp):
        raise XpnnError(
            "ndonnx computes eager values with one ONNX Runtime call per operation, minutes "
            f"for the test set: use --backend {ONNXRUNTIME}, which runs the same network as "
            "one ONNX model"
        )
    ensure_data(args.data_dir, book_weights=args.weights is None)
    network = _network(args, backend, device)
    x, t = load_mnist_split(
        "test", normalize=False, data_dir=args.data_dir, backend=backend, device=device
    )
    lazy = array_api_compat.is_lazy_array(x)
    with _progress(args, x.shape[0], "computing the lazy graph" if lazy else "") as progress:
        begun = time.perf_counter()
        labels = network.classify(x, args.batch_size, progress=progress)
        predictions = backends.to_numpy(labels)
        forward = time.perf_counter() - begun
    result = score(backends.to_numpy(t), predictions)
    if plots is not None:
        from ..plot import confusion_matrix_figure, misclassified_figure
        from ._common import save_figure

        save_figure(confusion_matrix_figure(result.confusion_matrix), plots[0], 80)
        save_figure(misclassified_figure(x, t, network.predict(x)), plots[1], 80)
    where = str(array_api_compat.device(labels))
    return _report(args, backend, where, result, forward, started)


def _on_cluster(args: argparse.Namespace, started: float) -> dict[str, Any]:
    from .. import distributed

    network = _network(args, "numpy", None)
    with distributed.cluster(args.scheduler, args.workers, timeout=SCHEDULER_TIMEOUT) as client:
        workers = len(client.scheduler_info()["workers"])
        x, t = distributed.mnist_dask(data_dir=args.data_dir, rows_per_chunk=args.batch_size)
        labels = distributed.classify(network, x, classes=MNIST_CLASSES)
        with _progress(args, x.shape[0], f"computing on {workers} dask worker(s)"):
            matrix, forward = _timed(lambda: distributed.confusion(labels, t).compute())
    where = f"cluster of {workers} worker(s)"
    return _report(args, DASK, where, score_matrix(matrix), forward, started)


def _onnxruntime(args: argparse.Namespace, started: float, book: bool) -> dict[str, Any]:
    """Score with ONNX Runtime: the exported network, or a given ``.onnx`` file as it is."""
    from ..mnist import load_mnist_split
    from ..ort import mnist_runner

    ensure_data(args.data_dir, book_weights=book)
    try:
        runner = mnist_runner(
            args.weights, data_dir=args.data_dir, dtype=args.dtype, device=args.device or "cpu"
        )
        x, t = load_mnist_split("test", normalize=False, data_dir=args.data_dir, backend="numpy")
        x = runner.from_pixels(x)
        with _progress(args, x.shape[0]) as progress:
            predictions, forward = _timed(
                lambda: runner.classify(x, args.batch_size, progress=progress)
            )
        result = score(t, predictions)
    except XpnnError:
        raise
    except Exception as err:  # a model file is code: whatever it does wrong is one line
        raise OnnxError(f"{args.weights or 'the exported model'}: {first_line(err)}") from None
    report = _report(args, ONNXRUNTIME, runner.device, result, forward, started)
    report["dtype"] = runner.dtype  # a given .onnx decides its own dtype
    return report
