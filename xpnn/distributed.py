"""Scoring dask arrays chunk by chunk, on a dask.distributed cluster or dask's local scheduler.

The input is chunked along the batch axis only (the feature axis is rechunked
whole when needed); each chunk is classified by the chunk's own library (NumPy,
or CuPy for a dask array of CuPy chunks) with a network rebuilt once per worker
from host weights that travel in the graph as a single key, so they are shipped
to each worker once, not once per chunk. Everything stays lazy until computed,
and predictions are reduced to a 10x10 confusion matrix on the workers, so no
process ever holds the whole input.

On GPUs, run one worker per GPU, each pinned to its own device, as
dask-cuda's ``LocalCUDACluster`` (or the ``dask cuda worker`` command) does by
setting ``CUDA_VISIBLE_DEVICES`` per worker: a block of CuPy chunks is then
classified on the device it lives on, inside that device's scope. Workers
started without such pinning all use GPU 0.

Requires the ``dask`` extra (``dask[array,distributed]``).
"""

from __future__ import annotations

import contextlib
import numbers
import os
from collections.abc import Iterator
from typing import Any

import array_api_compat
import numpy as np

from ._backend.moving import host_view
from ._backend.table import facts_of_array
from .errors import BackendError
from .network import Network

__all__ = ["BlockClassifier", "classify", "cluster", "confusion", "mnist_dask", "synthetic_rows"]


def _dask_array() -> Any:
    try:
        import dask.array as da
    except ImportError:
        raise BackendError("dask scoring needs dask: pip install 'xpnn[dask]'") from None
    return da


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


class BlockClassifier:
    """A picklable classifier of one chunk: host weights, rebuilt as a network per worker.

    The weights are the host copies the network already holds
    (:meth:`Network.host_params`), never copied back from a device. On a
    worker, the block's own library and device decide where the network is
    rebuilt (NumPy, or CuPy on the GPU the block lives on).

    Examples
    --------
    >>> import numpy as np, xpnn
    >>> classify_block = BlockClassifier(xpnn.init_network())
    >>> classify_block(np.array([[1.0, 0.5], [-3.0, 0.0]]))
    array([1, 1])
    """

    def __init__(self, network: Network) -> None:
        self.params = network.host_params()
        self.hidden = network.hidden
        self.output = network.output
        self.dtype = network.dtype_name
        self.input_scale = network.input_scale
        self._networks: dict[tuple[str, str], Network] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_networks"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _networks={})

    def network_for(self, block: Any) -> Network:
        """The network for a block's library and device (built once per worker)."""
        row = facts_of_array(block)
        if row is None:
            raise TypeError(f"cannot classify a block of type {type(block).__name__}")
        device = array_api_compat.device(block) if row.many_devices else None
        key = (row.name, repr(device))
        network = self._networks.get(key)
        if network is None:
            network = Network(
                self.params,
                hidden=self.hidden,
                output=self.output,
                backend=row.name,
                device=device,
                dtype=self.dtype,
                input_scale=self.input_scale,
            )
            self._networks[key] = network
        return network

    def __call__(self, block: Any) -> Any:
        return self.network_for(block).classify(block)


def _classify_block(block: Any, classifier: BlockClassifier) -> Any:
    return classifier(block)


def classify(
    network: Network,
    x: Any,
    *,
    rows_per_chunk: int | None = None,
    classes: int | None = None,
) -> Any:
    """Return the lazy predicted labels of a dask array ``x`` of shape ``(n, d)``.

    Parameters
    ----------
    network : Network
        Any network; its host weights travel in the graph once.
    x : dask.array.Array
        Images, any real dtype (uint8 pixels with ``input_scale=1/255``).
    rows_per_chunk : int or None
        Rechunk the batch axis to this many rows; ``None`` keeps the chunks.
    classes : int or None
        The number of classes the labels will be scored against: a network
        with another number of outputs is refused here, before anything runs.

    Returns
    -------
    dask.array.Array
        ``(n,)`` int64 labels, not yet computed.

    Raises
    ------
    ValueError
        Inputs of the wrong shape, ``rows_per_chunk`` not a positive integer,
        or a network whose output size is not ``classes``.

    Examples
    --------
    >>> import dask.array as da, numpy as np, xpnn
    >>> x = da.from_array(np.array([[1.0, 0.5], [-3.0, 0.0]]), chunks=1)
    >>> classify(xpnn.init_network(), x).compute()
    array([1, 1])
    """
    from dask.delayed import delayed

    da = _dask_array()
    if rows_per_chunk is not None:
        rows_per_chunk = _positive_int(rows_per_chunk, "rows_per_chunk")
    if classes is not None:
        classes = _positive_int(classes, "classes")
        outputs = network.layer_sizes[-1]
        if outputs != classes:
            raise ValueError(
                f"the network has {outputs} outputs but the labels have {classes} classes; "
                f"a {classes}-class scorer needs a network with {classes} outputs"
            )
    if not isinstance(x, da.Array):
        raise TypeError(f"classify() needs a dask array, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != network.input_size:
        raise ValueError(
            f"network expects dask inputs of shape (n, {network.input_size}); got {x.shape}"
        )
    if len(x.chunks[1]) > 1:
        x = x.rechunk({1: -1})
    if rows_per_chunk is not None:
        x = x.rechunk({0: rows_per_chunk})
    classifier = delayed(BlockClassifier(network), pure=True)
    meta_xp = array_api_compat.array_namespace(x._meta)
    meta = meta_xp.empty((0,), dtype=meta_xp.int64)
    return x.map_blocks(_classify_block, classifier, dtype=np.int64, drop_axis=1, meta=meta)


def _block_counts(predictions: Any, labels: Any, classes: int) -> np.ndarray:
    """The ``1 x classes x classes`` counts of one block, on the host."""
    pred = np.asarray(host_view(predictions)[0]).astype(np.int64)
    true = np.asarray(host_view(labels)[0]).astype(np.int64)
    for name, values in (("prediction", pred), ("label", true)):
        if values.size and (values.min() < 0 or values.max() >= classes):
            bad = values[(values < 0) | (values >= classes)]
            raise ValueError(
                f"{name}s must lie in 0..{classes - 1}, got {bad.size} outside "
                f"(e.g. {int(bad[0])}); they are never counted"
            )
    counts: np.ndarray = np.bincount(true * classes + pred, minlength=classes * classes)
    return counts.reshape(1, classes, classes)


def confusion(predictions: Any, labels: Any, classes: int = 10) -> Any:
    """Return the lazy ``classes x classes`` confusion matrix (rows: true labels).

    Each block of predictions is counted with its labels on the host (they
    are small integers, whatever library and device the images were on), so
    the result computes to a NumPy array. Predictions or labels outside
    ``0..classes-1`` are an error when the matrix is computed, never counted,
    as in :func:`xpnn.report.confusion_matrix`.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> p = da.from_array(np.array([0, 1, 1]), chunks=2)
    >>> t = da.from_array(np.array([0, 1, 0]), chunks=2)
    >>> confusion(p, t, classes=2).compute()
    array([[1, 1],
           [0, 1]])
    """
    da = _dask_array()
    classes = _positive_int(classes, "classes")
    if predictions.ndim != 1 or labels.ndim != 1 or predictions.shape != labels.shape:
        raise ValueError(
            f"predictions and labels must be 1-D of one length, got {predictions.shape} "
            f"and {labels.shape}"
        )
    labels = labels.rechunk(predictions.chunks)
    counts = da.map_blocks(
        _block_counts,
        predictions,
        labels,
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
    """Rows ``start:stop`` of the tiled set: base row ``r % N`` plus seeded noise.

    The noise (uniform integers in ``[-noise, noise]``, clipped to 0..255)
    depends only on ``seed`` and ``start``, so the same rows come out whether
    they are made on a worker or in a test.
    """
    index = np.arange(start, stop) % images.shape[0]
    x = images[index].reshape(stop - start, -1)
    if noise:
        rng = np.random.default_rng([seed, start])
        jitter = rng.integers(-noise, noise + 1, size=x.shape, dtype=np.int16)
        x = np.clip(x.astype(np.int16) + jitter, 0, 255).astype(np.uint8)
    return x, labels[index]


def _load_base(data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    from .mnist import load_mnist_split

    x, t = load_mnist_split("test", normalize=False, data_dir=data_dir, backend="numpy")
    return x, t


def _rows_block(
    base: tuple[np.ndarray, np.ndarray],
    seed: int,
    noise: int,
    part: int,
    block_info: Any = None,
) -> np.ndarray:
    start, stop = block_info[None]["array-location"][0]
    if part == 1:  # labels need no images: skip making the noisy pixels
        images, labels = base
        picked: np.ndarray = labels[np.arange(start, stop) % images.shape[0]]
        return picked
    return synthetic_rows(*base, start, stop, seed, noise)[0]


def mnist_dask(
    n: int = 10_000,
    *,
    noise: int = 0,
    seed: int = 0,
    rows_per_chunk: int = 10_000,
    data_dir: str | os.PathLike[str] | None = None,
) -> tuple[Any, Any]:
    """The MNIST test set, tiled to ``n`` rows with seeded noise, built lazily on the workers.

    With the defaults (``n=10000, noise=0``) it is exactly the test set. The
    test files are read by the workers from ``data_dir`` (which must be
    reachable from them: the same machine or a shared filesystem), once per
    worker; the client never holds the images.

    Returns
    -------
    x, t : dask.array.Array
        uint8 images ``(n, 784)`` and uint8 labels ``(n,)``.
    """
    import dask

    from .download import data_home

    da = _dask_array()
    n = _positive_int(n, "n")
    rows_per_chunk = _positive_int(rows_per_chunk, "rows_per_chunk")
    if isinstance(noise, bool) or not isinstance(noise, numbers.Integral) or not 0 <= noise <= 255:
        raise ValueError(f"noise must be an integer in 0..255, got {noise!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    noise, seed = int(noise), int(seed)
    base = dask.delayed(_load_base, pure=True)(str(data_home(data_dir)))
    row_chunks = (rows_per_chunk,) * (n // rows_per_chunk)
    if n % rows_per_chunk:
        row_chunks += (n % rows_per_chunk,)

    def part(index: int, chunks: tuple[tuple[int, ...], ...]) -> Any:
        return da.map_blocks(
            _rows_block,
            base,
            seed,
            noise,
            index,
            chunks=chunks,
            dtype=np.uint8,
            meta=np.empty((0,) * len(chunks), np.uint8),
        )

    return part(0, (row_chunks, (784,))), part(1, (row_chunks,))


def _probe_scheduler(address: str, timeout: float) -> None:
    """Check within ``timeout`` seconds that a dask scheduler answers at ``address``.

    One connection, dask's handshake and an ``identity`` request, all under a
    single deadline: a service that accepts and then says nothing, sends
    garbage, or announces a message too large to allocate is refused in time.
    Runs in a thread of its own, so that it works inside a running event loop.
    """
    import asyncio
    import concurrent.futures
    import importlib

    # distributed has no type hints: typed as Any on purpose.
    connect: Any = importlib.import_module("distributed.comm").connect
    security: Any = importlib.import_module("distributed.security").Security

    async def identity() -> Any:
        options = security().get_connection_args("client")  # TLS settings from dask's config
        comm = await connect(address, timeout=timeout, **options)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    def ask() -> Any:
        return asyncio.run(asyncio.wait_for(identity(), timeout))

    def fail(reason: str) -> BackendError:
        return BackendError(
            f"could not connect to the dask scheduler at {address!r}: {' '.join(reason.split())}"
        )

    scheme = address.partition("://")[0] if "://" in address else "tcp"
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="xpnn-probe") as pool:
        try:
            reply = pool.submit(ask).result()
        except (asyncio.TimeoutError, TimeoutError):
            raise fail(f"no answer within {timeout:g} s") from None
        except MemoryError:
            raise fail("the service announced a message too large to receive") from None
        except Exception as err:  # anything the comm layer raises on a bad peer or address
            hint = _SCHEME_HINTS.get(scheme, "") if isinstance(err, TypeError) else ""
            raise fail(f"{type(err).__name__}: {err}{hint}") from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        raise fail(f"the service there answered {str(reply)[:60]!r}, not as a dask scheduler")


# Why an address of these schemes fails with a TypeError inside distributed.
_SCHEME_HINTS = {
    "tls": " (tls:// needs certificates in dask's configuration, distributed.comm.tls)",
    "ucx": " (ucx:// needs the UCX communication package for distributed, distributed-ucxx)",
}


@contextlib.contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """Ignore Ctrl-C (SIGINT) within the block, in the main thread; elsewhere change nothing.

    Used while worker processes start, so that they inherit the ignored
    signal (an ignored signal stays ignored across ``exec``): a terminal
    sends Ctrl-C to every process of the foreground group, and workers that
    received it would print tracebacks of their own. Also used while the
    cluster closes after an interrupt, so that a second Ctrl-C cannot leave
    workers behind.
    """
    import signal
    import threading

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
        Address of a running scheduler, such as ``tcp://scheduler-host:8786``
        (``tls://`` addresses use the TLS settings of dask's configuration).
    workers : int or None
        Instead, start a :class:`distributed.LocalCluster` of this many
        single-threaded worker processes on 127.0.0.1, closed at the end.
        Worker processes ignore Ctrl-C; this process handles it and closes them
        (a Ctrl-C while they start is not seen).
    timeout : float
        Seconds allowed for reaching the scheduler, handshake included.

    Yields
    ------
    distributed.Client

    Raises
    ------
    BackendError
        When no dask scheduler answers at ``scheduler`` within ``timeout``
        seconds (unreachable, not a dask scheduler, unsupported address), or
        when ``distributed`` is not installed.

    Examples
    --------
    ``with cluster(workers=4) as client: ...`` scores on 4 local processes;
    an address where no scheduler answers is refused within ``timeout``:

    >>> with cluster("tcp://127.0.0.1:1", timeout=0.5):  # doctest: +ELLIPSIS
    ...     pass
    Traceback (most recent call last):
    ...
    xpnn.errors.BackendError: ...
    """
    import importlib

    try:
        dist: Any = importlib.import_module("distributed")  # untyped library: Any on purpose
    except ImportError:
        raise BackendError("dask clusters need distributed: pip install 'xpnn[dask]'") from None
    if (scheduler is None) == (workers is None):
        raise ValueError("give either a scheduler address or a number of workers")
    if scheduler is not None:
        _probe_scheduler(scheduler, timeout)
        try:
            client = dist.Client(scheduler, timeout=timeout)
        except Exception as err:  # the probe passed: this is rare, and must stay one line
            raise BackendError(
                f"could not connect to the dask scheduler at {scheduler!r} within "
                f"{timeout:g} s ({type(err).__name__}: {' '.join(str(err).split())})"
            ) from None
        with client:
            yield client
        return
    if workers is None or workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    with _interrupts_ignored():  # Ctrl-C while the workers start is not seen
        local = dist.LocalCluster(
            n_workers=workers,
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
