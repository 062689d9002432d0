"""MNIST with the book's ``load_mnist`` signature, validated, cached, on any backend.

Files are found (or downloaded, pinned by SHA-256) as :mod:`xpnn.download`
describes. The first load of a file checks its SHA-256, parses it with the
validating IDX reader and checks it is MNIST (28x28 uint8 images, labels 0-9,
as many labels as images); the decoded array is then cached as ``.npy`` in
``<data dir>/decoded/`` (never pickle), keyed by the source file's size and
modification time, so later loads skip all of that. A stale or unreadable
cache entry is rebuilt; an unwritable directory just means no cache.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .backends import namespace
from .download import RemoteFile, data_home, ensure_files, sha256_of
from .errors import DataError
from .idx import read_idx

__all__ = ["MNIST_FILES", "load_mnist", "load_mnist_labels", "load_mnist_split"]

_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def _remote(name: str, sha256: str) -> RemoteFile:
    return RemoteFile(name, sha256, tuple(m + name for m in _MIRRORS))


#: The four MNIST files by (split, kind), pinned by SHA-256.
MNIST_FILES = {
    ("train", "images"): _remote(
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    ("train", "labels"): _remote(
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    ("test", "images"): _remote(
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    ("test", "labels"): _remote(
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
}
_SPLITS = ("train", "test")
_CACHE_DIR = "decoded"


def _check_mnist(array: np.ndarray, kind: str, path: Path) -> None:
    if array.dtype != np.uint8:
        raise DataError(f"{path}: MNIST {kind} must be unsigned bytes, got {array.dtype}")
    if kind == "images" and (array.ndim != 3 or array.shape[1:] != (28, 28)):
        raise DataError(f"{path}: MNIST images must be N x 28 x 28, got {array.shape}")
    if kind == "labels":
        if array.ndim != 1:
            raise DataError(f"{path}: MNIST labels must be 1-D, got shape {array.shape}")
        if array.size and int(array.max()) > 9:
            raise DataError(f"{path}: MNIST label {int(array.max())} is out of range 0-9")


def _cache_paths(source: Path) -> tuple[Path, Path]:
    stem = source.name.removesuffix(".gz")
    folder = source.parent / _CACHE_DIR
    return folder / f"{stem}.npy", folder / f"{stem}.json"


def _source_key(source: Path) -> dict[str, int]:
    stat = source.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _read_cache(source: Path, kind: str) -> np.ndarray | None:
    npy, meta = _cache_paths(source)
    try:
        info = json.loads(meta.read_text())
        if info.get("source") != _source_key(source):
            return None
        array = np.load(npy, allow_pickle=False)
        if list(array.shape) != info["shape"] or array.dtype != np.uint8:
            return None
        _check_mnist(array, kind, npy)
    except (OSError, ValueError, KeyError, TypeError, DataError):
        return None
    return array


def _write_cache(source: Path, array: np.ndarray) -> None:
    npy, meta = _cache_paths(source)
    try:
        npy.parent.mkdir(exist_ok=True)
        tmp = npy.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, array, allow_pickle=False)
        os.replace(tmp, npy)
        info = {"source": _source_key(source), "shape": list(array.shape)}
        tmp_meta = meta.with_suffix(f".tmp{os.getpid()}")
        tmp_meta.write_text(json.dumps(info))
        os.replace(tmp_meta, meta)
    except OSError:
        pass  # a read-only data directory: no cache, every load decodes


def _decode(remote: RemoteFile, source: Path, kind: str) -> np.ndarray:
    cached = _read_cache(source, kind)
    if cached is not None:
        return cached
    actual = sha256_of(source)
    if actual != remote.sha256:
        raise DataError(
            f"{source}: SHA-256 {actual} does not match the expected {remote.sha256}; "
            "the file is corrupt or not the MNIST file: delete it and load again"
        )
    array = read_idx(source)
    _check_mnist(array, kind, source)
    _write_cache(source, array)
    return array


def _host_split(
    split: str, kinds: tuple[str, ...], data_dir: Any, download: bool
) -> dict[str, np.ndarray]:
    if split not in _SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; choose 'train' or 'test'")
    remotes = {kind: MNIST_FILES[split, kind] for kind in kinds}
    paths = ensure_files(remotes.values(), data_home(data_dir), download=download)
    arrays = {kind: _decode(r, paths[r.name], kind) for kind, r in remotes.items()}
    if len(arrays) == 2 and arrays["images"].shape[0] != arrays["labels"].shape[0]:
        raise DataError(
            f"MNIST {split} split: {arrays['images'].shape[0]} images but "
            f"{arrays['labels'].shape[0]} labels"
        )
    return arrays


def _labels_to_backend(labels: np.ndarray, one_hot_label: bool, xp: Any, device: Any) -> Any:
    t = xp.asarray(labels, device=device)
    if not one_hot_label:
        return t
    classes = xp.arange(10, device=device)
    return xp.astype(xp.reshape(t, (-1, 1)) == classes, xp.float32)


def load_mnist_split(
    split: str = "test",
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    backend: str | None = None,
    device: Any = None,
    download: bool = True,
) -> tuple[Any, Any]:
    """Load one MNIST split as ``(x, t)``; the test split needs only the test files.

    Parameters
    ----------
    split : {"test", "train"}
        Which split.
    normalize : bool
        ``True``: float32 pixels in [0, 1]; ``False``: the raw uint8 pixels.
    flatten : bool
        ``True``: images of shape ``(N, 784)``; ``False``: ``(N, 1, 28, 28)``.
    one_hot_label : bool
        ``True``: float32 labels of shape ``(N, 10)``; ``False``: uint8 ``(N,)``.
    data_dir : path-like or None
        Where the ``.gz`` files are (or go); see :func:`xpnn.download.data_home`.
    backend, device
        Where the arrays are placed; see :func:`xpnn.namespace`.
    download : bool
        Download missing files from the pinned mirrors.

    Returns
    -------
    x, t : arrays
        Images and labels on the chosen backend and device.

    Raises
    ------
    DataError
        Missing files that could not be downloaded, or corrupt files.
    """
    xp, dev = namespace(backend, device)
    host = _host_split(split, ("images", "labels"), data_dir, download)
    images = host["images"]
    images = images.reshape(images.shape[0], -1) if flatten else images[:, np.newaxis]
    x = xp.asarray(images, device=dev)
    if normalize:
        x = xp.astype(x, xp.float32) / 255
    return x, _labels_to_backend(host["labels"], one_hot_label, xp, dev)


def load_mnist_labels(
    split: str = "train",
    one_hot_label: bool = False,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    backend: str | None = None,
    device: Any = None,
    download: bool = True,
) -> Any:
    """Load the labels of one split only (no images needed).

    See :func:`load_mnist_split` for the parameters.
    """
    xp, dev = namespace(backend, device)
    labels = _host_split(split, ("labels",), data_dir, download)["labels"]
    return _labels_to_backend(labels, one_hot_label, xp, dev)


def load_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    backend: str | None = None,
    device: Any = None,
    download: bool = True,
) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """Load MNIST as the book does: ``((x_train, t_train), (x_test, t_test))``.

    Needs all four files, the 60,000 training images among them; use
    :func:`load_mnist_split` for the test set alone. Parameters are those of
    :func:`load_mnist_split`.
    """
    options = {"data_dir": data_dir, "backend": backend, "device": device, "download": download}
    train = load_mnist_split("train", normalize, flatten, one_hot_label, **options)
    test = load_mnist_split("test", normalize, flatten, one_hot_label, **options)
    return train, test
