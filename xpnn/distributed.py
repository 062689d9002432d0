"""Scoring dask arrays chunk by chunk, on a dask.distributed cluster or dask's local scheduler.

The input is chunked along the batch axis only; each chunk is classified by
the chunk's own library (NumPy, or CuPy for a dask array of CuPy chunks) with
a network rebuilt once per worker from host weights that travel in the graph
as one key (shipped to each worker once, not once per chunk). Predictions are
reduced to a confusion matrix on the workers, so no process holds the input.

On GPUs, run one worker per GPU, each pinned to its device (as dask-cuda's
``LocalCUDACluster`` does with ``CUDA_VISIBLE_DEVICES``); a block of CuPy
chunks is classified on the device it lives on.

Requires the ``dask`` extra (``dask[array,distributed]``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import numbers
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import array_api_compat
import numpy as np

from .backends import backend_of, to_numpy
from .errors import BackendError, positive_int
from .network import Network
from .report import confusion_matrix

__all__ = ["BlockClassifier", "classify", "cluster", "confusion", "mnist_dask", "synthetic_rows"]


def _dask(module: str = "dask.array") -> Any:
    try:
        return importlib.import_module(module)  # untyped library: Any on purpose
    except ImportError:
        raise BackendError("dask scoring needs dask: pip install 'xpnn[dask]'") from None


class BlockClassifier:
    """A picklable classifier of one chunk: the network's host weights, rebuilt per worker.

    Examples
    --------
    >>> import numpy as np, xpnn
    >>> BlockClassifier(xpnn.init_network())(np.array([[1.0, 0.5], [-3.0, 0.0]]))
    array([1, 1])
    """

    def __init__(self, network: Network) -> None:
        self.params = network.host_params()  # the copies the network holds, not from a device
        self.options = {
            "hidden": network.hidden,
            "output": network.output,
            "dtype": network.dtype_name,
            "input_scale": network.input_scale,
        }
        self._networks: dict[tuple[str, str], Network] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"params": self.params, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _networks={})

    def __call__(self, block: Any) -> Any:
        device = array_api_compat.device(block)
        key = (backend_of(block), str(device))
        if key not in self._networks:  # once per library and device on each worker
            self._networks[key] = Network(
                self.params, backend=key[0], device=device, **self.options
            )
        return self._networks[key].classify(block)


def _classify_block(block: Any, classifier: BlockClassifier) -> Any:
    return classifier(block)


def classify(
    network: Network, x: Any, *, rows_per_chunk: int | None = None, classes: int | None = None
) -> Any:
    """Return the lazy ``(n,)`` int64 labels of a dask array ``x`` of shape ``(n, d)``.

    ``rows_per_chunk`` rechunks the batch axis; ``classes``, when given, refuses
    a network with another number of outputs before anything runs.

    Examples
    --------
    >>> import dask.array as da, numpy as np, xpnn
    >>> x = da.from_array(np.array([[1.0, 0.5], [-3.0, 0.0]]), chunks=1)
    >>> classify(xpnn.init_network(), x).compute()
    array([1, 1])
    """
    da = _dask()
    if rows_per_chunk is not None:
        rows_per_chunk = positive_int(rows_per_chunk, "rows_per_chunk")
    if classes is not None and network.layer_sizes[-1] != positive_int(classes, "classes"):
        raise ValueError(
            f"the network has {network.layer_sizes[-1]} outputs but the labels have {classes} "
            f"classes; a {classes}-class scorer needs a network with {classes} outputs"
        )
    if not isinstance(x, da.Array):
        raise TypeError(f"classify() needs a dask array, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != network.input_size:
        raise ValueError(
            f"network expects dask inputs of shape (n, {network.input_size}); got {x.shape}"
        )
    x = x.rechunk({0: rows_per_chunk, 1: -1} if rows_per_chunk else {1: -1})
    classifier = _dask("dask.delayed").delayed(BlockClassifier(network), pure=True)
    meta_xp = array_api_compat.array_namespace(x._meta)
    meta = meta_xp.empty((0,), dtype=meta_xp.int64)
    return x.map_blocks(_classify_block, classifier, dtype=np.int64, drop_axis=1, meta=meta)


def _block_counts(predictions: Any, labels: Any, classes: int) -> np.ndarray:
    """One block's ``1 x classes x classes`` counts, on the host (as the local scorer counts)."""
    return confusion_matrix(to_numpy(labels), to_numpy(predictions), classes)[np.newaxis]


def confusion(predictions: Any, labels: Any, classes: int = 10) -> Any:
    """Return the lazy ``classes x classes`` confusion matrix (rows: true labels).

    Labels or predictions outside ``0..classes-1`` are an error when it is
    computed, never counted, as in :func:`xpnn.report.confusion_matrix`.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> p = da.from_array(np.array([0, 1, 1]), chunks=2)
    >>> t = da.from_array(np.array([0, 1, 0]), chunks=2)
    >>> confusion(p, t, classes=2).compute()
    array([[1, 1],
           [0, 1]])
    """
    classes = positive_int(classes, "classes")
    if predictions.ndim != 1 or predictions.shape != labels.shape:
        raise ValueError(
            f"predictions and labels must be 1-D of one length, got {predictions.shape} "
            f"and {labels.shape}"
        )
    counts = _dask().map_blocks(
        _block_counts,
        predictions,
        labels.rechunk(predictions.chunks),
        classes,
        new_axis=(1, 2),
        chunks=((1,) * predictions.numblocks[0], (classes,), (classes,)),
        dtype=np.int64,
        meta=np.empty((0, 0, 0), np.int64),
    )
    return counts.sum(axis=0)


def synthetic_rows(
    images: np.ndarray, labels: np.ndarray, start: int, stop: int, seed: int, noise: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``start:stop`` of the tiled set: base row ``r % N`` plus noise seeded by ``start``."""
    index = np.arange(start, stop) % images.shape[0]
    x = images[index].reshape(stop - start, -1)
    if noise:
        jitter = np.random.default_rng([seed, start]).integers(-noise, noise + 1, size=x.shape)
        x = np.clip(x.astype(np.int16) + jitter, 0, 255).astype(np.uint8)
    return x, labels[index]


def _load_base(data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    from .mnist import load_mnist_split

    x, t = load_mnist_split("test", normalize=False, data_dir=data_dir, backend="numpy")
    return x, t


def _rows_block(
    base: tuple[np.ndarray, np.ndarray], seed: int, noise: int, part: int, block_info: Any = None
) -> np.ndarray:
    start, stop = block_info[None]["array-location"][0]
    if part == 1:  # labels need no images: skip making the noisy pixels
        return base[1][np.arange(start, stop) % base[0].shape[0]]
    return synthetic_rows(*base, start, stop, seed, noise)[0]


def mnist_dask(
    n: int = 10_000,
    *,
    noise: int = 0,
    seed: int = 0,
    rows_per_chunk: int = 10_000,
    data_dir: str | os.PathLike[str] | None = None,
) -> tuple[Any, Any]:
    """The MNIST test set tiled to ``n`` rows with seeded noise, ``(x, t)``, made on the workers.

    With the defaults it is exactly the test set. The workers read the files
    from ``data_dir`` (the same machine or a shared filesystem), once each.
    """
    from .download import data_home

    da, n = _dask(), positive_int(n, "n")
    rows_per_chunk = positive_int(rows_per_chunk, "rows_per_chunk")
    for name, value, high in (("noise", noise, 255), ("seed", seed, None)):
        bad = isinstance(value, bool) or not isinstance(value, numbers.Integral)
        if bad or value < 0 or (high is not None and value > high):
            span = f"in 0..{high}" if high else "of at least 0"
            raise ValueError(f"{name} must be an integer {span}, got {value!r}")
    base = _dask("dask").delayed(_load_base, pure=True)(str(data_home(data_dir)))
    rows = (rows_per_chunk,) * (n // rows_per_chunk) + (
        (n % rows_per_chunk,) if n % rows_per_chunk else ()
    )

    def part(index: int, chunks: tuple[tuple[int, ...], ...]) -> Any:
        meta = np.empty((0,) * len(chunks), np.uint8)
        return da.map_blocks(
            _rows_block,
            base,
            int(seed),
            int(noise),
            index,
            chunks=chunks,
            dtype=np.uint8,
            meta=meta,
        )

    return part(0, (rows, (784,))), part(1, (rows,))


def _reach(dist: Any, address: str, timeout: float) -> None:
    """Connect a client to ``address`` and close it, all within ``timeout`` seconds.

    distributed's own ``timeout`` does not cover a peer that accepts and then
    says nothing, so the whole attempt runs under one deadline; in a thread of
    its own, so that it also works inside a running event loop.
    """

    async def attempt() -> None:
        client = dist.Client(address, asynchronous=True, timeout=timeout)
        try:
            await asyncio.wait_for(client, timeout)
        finally:
            await client.close()

    def fail(reason: str) -> BackendError:
        return BackendError(f"could not connect to the dask scheduler at {address!r}: {reason}")

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="xpnn-connect") as pool:
        try:
            pool.submit(asyncio.run, attempt()).result()
        except (asyncio.TimeoutError, TimeoutError):
            raise fail(f"no answer within {timeout:g} s") from None
        except MemoryError:
            raise fail("the service announced a message too large to receive") from None
        except Exception as err:  # whatever the comm layer raises on a bad peer or address
            raise fail(f"{type(err).__name__}: {' '.join(str(err).split())}") from None


@contextlib.contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """Ignore Ctrl-C in the block (main thread only): workers started here inherit that,
    so a terminal's Ctrl-C to the whole group reaches this process only, which closes them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def cluster(
    scheduler: str | None = None, workers: int | None = None, *, timeout: float = 5.0
) -> Iterator[Any]:
    """Connect to a running dask scheduler, or start a local cluster, for a ``with`` block.

    Parameters
    ----------
    scheduler : str or None
        Address of a running scheduler, such as ``tcp://scheduler-host:8786``.
        Refused (:class:`BackendError`) when no scheduler answers within
        ``timeout`` seconds, or when it has no worker ``timeout`` seconds later.
    workers : int or None
        Instead, start this many single-threaded worker processes on
        127.0.0.1 (they ignore Ctrl-C; this process closes them).
    timeout : float
        Seconds allowed for reaching the scheduler, and then for a worker.

    Examples
    --------
    >>> with cluster("tcp://127.0.0.1:1", timeout=0.5):  # doctest: +ELLIPSIS
    ...     pass
    Traceback (most recent call last):
    ...
    xpnn.errors.BackendError: could not connect to the dask scheduler at ...
    """
    try:
        dist: Any = importlib.import_module("distributed")
    except ImportError:
        raise BackendError("dask clusters need distributed: pip install 'xpnn[dask]'") from None
    if (scheduler is None) == (workers is None):
        raise ValueError("give either a scheduler address or a number of workers")
    if scheduler is not None:
        _reach(dist, scheduler, timeout)
        with dist.Client(scheduler, timeout=timeout) as client:
            try:
                client.wait_for_workers(1, timeout=timeout)
            except TimeoutError:
                raise BackendError(
                    f"the dask scheduler at {scheduler!r} has no worker (none joined within "
                    f"{timeout:g} s); start workers with: dask worker {scheduler}"
                ) from None
            yield client
        return
    with _interrupts_ignored():  # Ctrl-C while the workers start is not seen
        local = dist.LocalCluster(
            n_workers=positive_int(workers, "workers"),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",  # a free port, never a fixed one
        )
        client = dist.Client(local)
    try:
        yield client
    finally:
        with _interrupts_ignored():
            client.close()
            local.close()
