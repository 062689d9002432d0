"""Classify the MNIST test set with the book's pretrained network (or --weights), on any backend.

examples:
  xpnn eval --backend torch --dtype float64 --json
  xpnn eval --backend onnxruntime --weights model.onnx
  xpnn eval --backend dask --workers 4 --quiet

environment: XPNN_BACKEND, XPNN_DATA_DIR, XPNN_OFFLINE=1 (never download).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import array_api_compat

from .. import backends
from ..errors import OnnxError, XpnnError, first_line
from ..report import format_report, score, score_matrix
from .commands import data_dir_option, ensure_data, output_file, positive, save_figure

__all__ = ["configure", "run"]

ONNXRUNTIME = "onnxruntime"  #: scores the exported network (or a given .onnx) in ONNX Runtime
SCHEDULER_TIMEOUT = 5.0  #: seconds to reach a dask scheduler, and then for it to have a worker
BATCH_SIZE, PLOTS = 100, ("confusion_matrix.png", "misclassified.png")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``xpnn eval`` to ``parser``.

    Examples
    --------
    >>> configure(parser := argparse.ArgumentParser())
    >>> parser.parse_args(["--backend", "torch"]).batch_size
    100
    """
    add, wait = parser.add_argument, f"{SCHEDULER_TIMEOUT:g} s"
    # fmt: off
    add("--backend", metavar="NAME", help=f"{', '.join(backends.BACKENDS)} or {ONNXRUNTIME} "
        "(default: $XPNN_BACKEND, else numpy)")
    add("--device", metavar="DEVICE", help="cpu, cuda or cuda:N (default: the backend's)")
    add("--dtype", default="float32", choices=["float32", "float64", "float16"],
        help="compute dtype (default: float32)")
    add("--batch-size", type=positive, default=BATCH_SIZE, metavar="N",
        help=f"images per forward pass (default: {BATCH_SIZE}, as in the chapter)")
    data_dir_option(parser)
    add("--weights", metavar="FILE", help="a 784-...-10 network in any format "
        "xpnn.load_weights reads (default: the book's sample_weight.pkl)")
    add("--json", action="store_true", help="print the report as JSON (default: text)")
    add("--quiet", action="store_true", help="the accuracy line only (default: full report)")
    add("--plot", metavar="DIR", help=f"also write {' and '.join(PLOTS)} to DIR (default: none)")
    add = parser.add_mutually_exclusive_group().add_argument  # --scheduler or --workers
    add("--scheduler", metavar="ADDRESS", help=f"with dask: the cluster at ADDRESS; refused after "
        f"{wait} without a scheduler's answer, or {wait} more without a worker (default: none)")
    add("--workers", type=positive, metavar="N",
        help="with dask: start N single-threaded local workers (default: none)")
    # fmt: on


def run(args: argparse.Namespace) -> str:
    """Run ``xpnn eval``: check the options, load, classify and score; return the report."""
    started = time.perf_counter()
    name = args.backend if args.backend is not None else os.environ.get("XPNN_BACKEND", "")
    ort = name.strip().lower() == ONNXRUNTIME
    backend = ONNXRUNTIME if ort else backends.backend_name(args.backend)
    on_cluster = args.scheduler is not None or args.workers is not None
    if args.plot is not None and (ort or on_cluster):  # the options first, then the libraries
        raise XpnnError(f"--plot is not available with {ONNXRUNTIME} or --scheduler/--workers")
    if args.dtype == "float64" and not ort:
        backends.enable_float64(backend)  # JAX computes float64 only in its 64-bit mode
    xp = None if ort else backends.namespace(backend)[0]  # what the library is decides below
    if xp is not None and array_api_compat.is_ndonnx_namespace(xp):  # minutes for the test set
        raise XpnnError(f"ndonnx calls ONNX Runtime per operation: use --backend {ONNXRUNTIME}")
    if on_cluster and not (xp is not None and array_api_compat.is_dask_namespace(xp)):
        raise XpnnError(f"--scheduler and --workers need --backend dask (it is {backend!r})")
    with _plot_files(args.plot) as plots:
        ensure_data(args.data_dir, book_weights=args.weights is None)
        if ort:
            result = _onnxruntime(args)
        else:
            result = _on_cluster(args) if on_cluster else _locally(args, backend, plots)
    report = {"backend": backend, "dtype": args.dtype, "batch_size": args.batch_size, **result}
    report["images_per_second"] = report["n"] / max(report["forward_seconds"], 1e-9)
    report["wall_seconds"] = time.perf_counter() - started
    return json.dumps(report, indent=2) if args.json else format_report(report, quiet=args.quiet)


def _network(args: argparse.Namespace, backend: str, device: Any) -> Any:
    """The network to score, taking raw pixels (the /255 folded into W1)."""
    from ..weights import load_weights, pretrained_network

    options = {"backend": backend, "device": device, "dtype": args.dtype}
    if args.weights is None:
        return pretrained_network(data_dir=args.data_dir, input_scale=1 / 255, **options)
    network = load_weights(args.weights, **options)
    if (sizes := network.layer_sizes)[0] != 784 or sizes[-1] != 10 or min(sizes) < 1:
        raise XpnnError(
            f"--weights {args.weights!r} has layers {'-'.join(map(str, sizes))}: "
            "MNIST needs 784 inputs, 10 outputs and no empty layer"
        )
    return network.to(input_scale=1 / 255)


@contextlib.contextmanager
def _plot_files(path: str | None) -> Iterator[list[Path] | None]:
    """The ``--plot`` files (None without it), checked before any work; if the block fails,
    the directories made for them are removed when empty."""
    if path is None:
        yield None
        return
    target = Path(path).expanduser()
    created = [p for p in (target, *target.parents) if not p.exists()]  # deepest first
    try:
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            mistake = isinstance(err, (FileExistsError, NotADirectoryError))
            reason = "not a directory" if mistake else err.strerror or str(err)
            raise XpnnError(f"--plot {path!r}: cannot write files there ({reason})") from None
        yield [output_file(target / name, "--plot", image=True) for name in PLOTS]
    except BaseException:
        for directory in created:
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise


def _timed(args: argparse.Namespace, total: int, compute: Any, note: str = "") -> Any:
    """``compute(progress=...)`` on the host and its seconds; on a terminal, stderr shows a
    tqdm bar, or with ``note`` a line saying what is computed (and ``progress`` is None)."""
    shown, bar = not (args.quiet or args.json) and sys.stderr.isatty(), contextlib.nullcontext()
    if shown and note:
        print(f"xpnn eval: {note} ...", file=sys.stderr, flush=True)
    elif shown:
        with contextlib.suppress(ImportError):  # tqdm has no type hints: imported as Any
            tqdm = importlib.import_module("tqdm").tqdm
            bar = tqdm(total=total, unit="img", desc="classifying", leave=False)
    with bar:
        begun = time.perf_counter()
        result = backends.to_numpy(compute(progress=getattr(bar, "update", None)))
    return result, {"forward_seconds": time.perf_counter() - begun}


def _locally(args: argparse.Namespace, backend: str, plots: list[Path] | None) -> dict[str, Any]:
    from ..mnist import load_mnist_split

    device = backends.namespace(backend, args.device)[1]
    network = _network(args, backend, device)
    where = {"data_dir": args.data_dir, "backend": backend, "device": device}
    x, t = load_mnist_split("test", normalize=False, **where)
    lazy = "computing the dask graph" if array_api_compat.is_lazy_array(x) else ""
    labels, timed = _timed(args, x.shape[0], partial(network.classify, x, args.batch_size), lazy)
    result = score(backends.to_numpy(t), labels)
    if plots is not None:
        from ..plot import confusion_matrix_figure, misclassified_figure

        save_figure(confusion_matrix_figure(result["confusion_matrix"]), plots[0], 80)
        save_figure(misclassified_figure(x, t, network.predict(x)), plots[1], 80)
    return {"device": str(network.device), **result, **timed}  # where the labels were


def _on_cluster(args: argparse.Namespace) -> dict[str, Any]:
    from .. import distributed

    network = _network(args, "numpy", None)
    # After Ctrl-C, asyncio would log the client's cut tasks ("never retrieved"): not news.
    logging.getLogger("asyncio").disabled = True
    with distributed.cluster(args.scheduler, args.workers, timeout=SCHEDULER_TIMEOUT) as client:
        workers = len(client.scheduler_info()["workers"])
        x, t = distributed.mnist_dask(data_dir=args.data_dir, rows_per_chunk=args.batch_size)
        matrix = distributed.confusion(distributed.classify(network, x, classes=10), t)
        note = f"computing on {workers} dask worker(s)"
        counts, timed = _timed(args, x.shape[0], lambda progress: matrix.compute(), note)
    return {"device": f"cluster of {workers} worker(s)", **score_matrix(counts), **timed}


def _onnxruntime(args: argparse.Namespace) -> dict[str, Any]:
    """Score with ONNX Runtime: the exported network, or a given ``.onnx`` file as it is."""
    from ..mnist import load_mnist_split
    from ..ort import mnist_runner

    try:
        device = args.device or "cpu"
        runner = mnist_runner(args.weights, data_dir=args.data_dir, dtype=args.dtype, device=device)
        x, t = load_mnist_split("test", normalize=False, data_dir=args.data_dir, backend="numpy")
        classify = partial(runner.classify, runner.from_pixels(x), args.batch_size)
        labels, timed = _timed(args, x.shape[0], classify)
        result = score(t, labels)
    except XpnnError:
        raise
    except Exception as err:  # a model file is code: whatever it does wrong is one line
        raise OnnxError(f"{args.weights or 'the exported model'}: {first_line(err)}") from None
    return {"device": runner.device, **result, **timed, "dtype": runner.dtype}  # .onnx's own
