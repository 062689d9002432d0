"""Scoring dask arrays chunk by chunk (the ``dask`` extra), with a network rebuilt once per worker
from host weights (one graph key) and the confusion matrix reduced on the workers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import logging
import numbers
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import array_api_compat
import numpy as np

from .backends import backend_of, to_numpy
from .download import data_home
from .errors import BackendError, positive_int
from .mnist import load_mnist_split
from .network import Network
from .report import confusion_matrix

__all__ = ["classify", "cluster", "confusion", "mnist_dask"]


def _dask(module: str = "dask.array") -> Any:  # untyped library: Any on purpose
    try:
        return importlib.import_module(module)
    except ImportError:
        raise BackendError("dask scoring needs dask: pip install 'xpnn[dask]'") from None


class _BlockClassifier:
    """A picklable classifier of one chunk: the network's host weights, rebuilt per worker."""

    def __init__(self, network: Network) -> None:
        self.params = network.host_params()  # the copies the network holds, not from a device
        self.options: dict[str, Any] = dict(hidden=network.hidden, output=network.output,
            dtype=network.dtype_name, input_scale=network.input_scale)  # fmt: skip
        self._networks: dict[tuple[str, str], Network] = {}

    def __getstate__(self) -> dict[str, Any]:  # the networks are rebuilt where it is unpickled
        return {**self.__dict__, "_networks": {}}

    def __call__(self, block: Any) -> Any:
        device = array_api_compat.device(block)
        key = (backend_of(block), str(device))
        if key not in self._networks:  # once per library and device on each worker
            self._networks[key] = Network(self.params, backend=key[0], device=device,
                                          **self.options)  # fmt: skip
        return self._networks[key].classify(block)


def classify(network: Network, x: Any, *, classes: int | None = None) -> Any:
    """The lazy ``(n,)`` labels of a dask array ``(n, d)``; ``classes``: the outputs required.

    Examples
    --------
    >>> import dask.array as da, numpy as np, xpnn
    >>> x = da.from_array(np.array([[1.0, 0.5], [-3.0, 0.0]]), chunks=1)
    >>> classify(xpnn.init_network(), x).compute()
    array([1, 1])
    """
    outputs = network.layer_sizes[-1]
    if classes is not None and outputs != positive_int(classes, "classes"):
        raise ValueError(f"the network has {outputs} outputs but the labels have {classes} classes")
    if not isinstance(x, _dask().Array):
        raise TypeError(f"classify() needs a dask array, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != network.input_size:
        raise ValueError(f"dask inputs must be (n, {network.input_size}), got {x.shape}")
    x = x.rechunk({1: -1})  # whole rows in each chunk
    classifier = _dask("dask").delayed(_BlockClassifier(network), pure=True)  # one key
    return _dask().map_blocks(_BlockClassifier.__call__, classifier, x, dtype=np.int64,
                              drop_axis=1, meta=x._meta)  # fmt: skip


def _block_counts(predictions: Any, labels: Any, classes: int) -> np.ndarray:
    return confusion_matrix(to_numpy(labels), to_numpy(predictions), classes)[np.newaxis]


def confusion(predictions: Any, labels: Any, classes: int = 10) -> Any:
    """The lazy confusion matrix (rows: true labels), counted as :func:`report.confusion_matrix`.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> p = da.from_array(np.array([0, 1, 1]), chunks=2)
    >>> t = da.from_array(np.array([0, 1, 0]), chunks=2)
    >>> confusion(p, t, classes=2).compute()
    array([[1, 1],
           [0, 1]])
    """
    k = positive_int(classes, "classes")
    if predictions.ndim != 1 or predictions.shape != labels.shape:
        raise ValueError("predictions and labels must be 1-D of one length, got "
                         f"{predictions.shape} and {labels.shape}")  # fmt: skip
    return _dask().map_blocks(
        _block_counts, predictions, labels.rechunk(predictions.chunks), k, new_axis=(1, 2),
        chunks=((1,) * predictions.numblocks[0], (k,), (k,)), meta=np.empty((0, 0, 0), np.int64),
    ).sum(axis=0)  # fmt: skip


def _rows(base: Any, seed: int, noise: int, part: int, block_info: Any = None) -> Any:
    """Rows of the tiled images (part 0) or labels (1): row r % N, noise seeded by the first."""
    start, stop = block_info[None]["array-location"][0]
    index = np.arange(start, stop) % base[0].shape[0]
    if part:
        return base[1][index]
    x = base[0][index].reshape(stop - start, -1)
    if noise:
        jitter = np.random.default_rng([seed, start]).integers(-noise, noise + 1, size=x.shape)
        x = np.clip(x.astype(np.int16) + jitter, 0, 255).astype(np.uint8)
    return x


def mnist_dask(n: int = 10_000, *, noise: int = 0, seed: int = 0, rows_per_chunk: int = 10_000,
               data_dir: str | os.PathLike[str] | None = None) -> tuple[Any, Any]:  # fmt: skip
    """MNIST's test set ``x, t`` tiled to ``n`` rows with seeded noise, read by the workers."""
    n, rows = positive_int(n, "n"), positive_int(rows_per_chunk, "rows_per_chunk")
    if isinstance(noise, bool) or not isinstance(noise, numbers.Integral) or not 0 <= noise <= 255:
        raise ValueError(f"noise must be an integer in 0..255, got {noise!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    chunks = (rows,) * (n // rows) + ((n % rows,) if n % rows else ())
    load = _dask("dask").delayed(load_mnist_split, pure=True)  # once per worker
    base = load("test", normalize=False, data_dir=str(data_home(data_dir)), backend="numpy")
    da, args, meta = _dask(), (_rows, base, int(seed), int(noise)), np.empty(0, np.uint8)
    x = da.map_blocks(*args, 0, chunks=(chunks, (784,)), meta=meta)
    return x, da.map_blocks(*args, 1, chunks=(chunks,), meta=meta)


def _reach(dist: Any, address: str, timeout: float) -> None:
    async def attempt() -> None:
        client = dist.Client(address, asynchronous=True, timeout=timeout)
        try:
            await asyncio.wait_for(client, timeout)  # the client's own misses a silent peer
        finally:
            await client.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            pool.submit(asyncio.run, attempt()).result()
            return
        except (asyncio.TimeoutError, TimeoutError):
            reason = f"no answer within {timeout:g} s"
        except MemoryError:
            reason = "the service announced a message too large to receive"
        except Exception as err:  # whatever the comm layer raises on a bad peer or address
            reason = f"{type(err).__name__}: {' '.join(str(err).split())}"
    raise BackendError(f"could not connect to the dask scheduler at {address!r}: {reason}")


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C ignored and SIGTERM held (main thread only): no cluster half started or closed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    terminate = signal.signal(signal.SIGTERM, lambda number, frame: held.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, terminate)
        if held:
            signal.raise_signal(signal.SIGTERM)


@contextlib.contextmanager
def cluster(scheduler: str | None = None, workers: int | None = None, *,
            timeout: float = 5.0) -> Iterator[Any]:  # fmt: skip
    """A client of the scheduler at ``scheduler`` (no answer, or no worker, in ``timeout`` s each:
    :class:`BackendError`) or of ``workers`` single-threaded workers on 127.0.0.1, closed on exit.

    Examples
    --------
    >>> with cluster("tcp://127.0.0.1:1", timeout=0.5):  # doctest: +ELLIPSIS
    ...     pass
    Traceback (most recent call last):
    ...
    xpnn.errors.BackendError: could not connect to the dask scheduler at ...
    """
    dist = _dask("distributed")
    if (scheduler is None) == (workers is None):
        raise ValueError("give either a scheduler address or a number of workers")
    if scheduler is not None:
        _reach(dist, scheduler, timeout)
        with dist.Client(scheduler, timeout=timeout) as client:
            try:
                client.wait_for_workers(1, timeout=timeout)
            except TimeoutError:
                hint = f"has no worker after {timeout:g} s; start one with: dask worker {scheduler}"
                raise BackendError(f"the dask scheduler at {scheduler!r} {hint}") from None
            yield client
        return
    with _signals_held():  # Ctrl-C while the workers start is not seen
        local = dist.LocalCluster(
            n_workers=positive_int(workers, "workers"), threads_per_worker=1, processes=True,
            host="127.0.0.1", dashboard_address=":0",  # a free port, never a fixed one
            silence_logs=logging.CRITICAL,  # failures reach the client as exceptions
        )  # fmt: skip
        client = dist.Client(local)
    try:
        yield client
    finally:
        with _signals_held():
            client.close()
            local.close()
