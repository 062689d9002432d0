"""MNIST with the book's ``load_mnist`` signature, validated, on any backend.

Files are found (or downloaded, pinned by SHA-256) as :mod:`xpnn.download`
describes. Each file is read once, the SHA-256 of those bytes checked against
the pin, the same bytes parsed by the validating IDX reader and checked to be
MNIST (28x28 uint8 images, labels 0-9, as many labels as images). Nothing is
cached: decoding the test split takes about 0.05 s, a few percent of an
evaluation. Labels stay uint8 on every backend (one-hot labels: float32).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .backends import device_scope, namespace
from .download import RemoteFile, ensure_files, read_verified
from .errors import DataError, check_choice
from .idx import parse_idx

__all__ = ["MNIST_FILES", "load_mnist", "load_mnist_labels", "load_mnist_split"]

_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_PINS = """\
train-images-idx3-ubyte.gz 9912422 440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609
train-labels-idx1-ubyte.gz 28881 3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c
t10k-images-idx3-ubyte.gz 1648877 8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6
t10k-labels-idx1-ubyte.gz 4542 f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6
"""
#: The four MNIST files by (split, kind), pinned by SHA-256 and size.
MNIST_FILES = {
    ("test" if name.startswith("t10k") else "train", name.split("-")[1]): RemoteFile(
        name, sha, tuple(mirror + name for mirror in _MIRRORS), int(size)
    )
    for name, size, sha in (line.split() for line in _PINS.splitlines())
}


def _check_mnist(array: np.ndarray, kind: str, path: Any) -> None:
    if array.dtype != np.uint8:
        raise DataError(f"{path}: MNIST {kind} must be unsigned bytes, got {array.dtype}")
    if kind == "images" and (array.ndim != 3 or array.shape[1:] != (28, 28)):
        raise DataError(f"{path}: MNIST images must be N x 28 x 28, got {array.shape}")
    if kind == "labels" and array.ndim != 1:
        raise DataError(f"{path}: MNIST labels must be 1-D, got shape {array.shape}")
    if kind == "labels" and array.size and int(array.max()) > 9:
        raise DataError(f"{path}: MNIST label {int(array.max())} is out of range 0-9")


def _host_split(split: str, kinds: tuple[str, ...], data_dir: Any, download: bool) -> list[Any]:
    """The split's arrays (host NumPy), each read once, verified, parsed and checked."""
    check_choice(split, ("train", "test"), "MNIST split")
    remotes = [MNIST_FILES[split, kind] for kind in kinds]
    paths = ensure_files(remotes, data_dir, download=download)
    arrays = []
    for kind, remote in zip(kinds, remotes, strict=True):
        path = paths[remote.name]
        arrays.append(parse_idx(read_verified(remote, path), path))  # the bytes hashed
        _check_mnist(arrays[-1], kind, path)
    if len(arrays) == 2 and arrays[0].shape[0] != arrays[1].shape[0]:
        raise DataError(
            f"MNIST {split} split: {arrays[0].shape[0]} images but {arrays[1].shape[0]} labels"
        )
    return arrays


def _labels(labels: np.ndarray, one_hot_label: bool, xp: Any, device: Any) -> Any:
    t = xp.asarray(labels, device=device)
    if not one_hot_label:
        return t
    with device_scope(t):
        classes = xp.arange(10, dtype=t.dtype, device=device)
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

    Raises
    ------
    DataError
        Missing files that could not be downloaded, or corrupt files.
    """
    xp, dev = namespace(backend, device)
    images, labels = _host_split(split, ("images", "labels"), data_dir, download)
    images = images.reshape(images.shape[0], -1) if flatten else images[:, np.newaxis]
    x = xp.asarray(images, device=dev)
    if normalize:
        with device_scope(x):
            x = xp.astype(x, xp.float32) / 255
    return x, _labels(labels, one_hot_label, xp, dev)


def load_mnist_labels(
    split: str = "train",
    one_hot_label: bool = False,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    backend: str | None = None,
    device: Any = None,
    download: bool = True,
) -> Any:
    """Load the labels of one split only (no images needed); see :func:`load_mnist_split`."""
    xp, dev = namespace(backend, device)
    (labels,) = _host_split(split, ("labels",), data_dir, download)
    return _labels(labels, one_hot_label, xp, dev)


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

    Needs all four files (missing ones are named together); :func:`load_mnist_split`
    loads the test set alone.
    """
    ensure_files(MNIST_FILES.values(), data_dir, download=download)
    train, test = (
        load_mnist_split(
            split,
            normalize,
            flatten,
            one_hot_label,
            data_dir=data_dir,
            backend=backend,
            device=device,
            download=download,
        )
        for split in ("train", "test")
    )
    return train, test
