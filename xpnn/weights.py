"""Saving and loading network weights: safetensors natively, ``.npz``, and the book's ``.pkl``.

* ``.safetensors`` is the native format: plain tensors plus a small JSON
  header, which also records the hidden activation and output function.
* ``.npz`` is read with ``allow_pickle=False``.
* ``.pkl`` (the book's ``sample_weight.pkl``) is read by the allowlist
  unpickler of :mod:`xpnn.safe_pickle`, which never runs code from the file.

Every malformed or unsafe file raises :class:`xpnn.WeightsError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .backends import to_numpy
from .download import RemoteFile, data_home, ensure_files
from .errors import BackendError, WeightsError
from .network import Network
from .safe_pickle import load_weight_pickle

__all__ = ["convert_pickle", "load_weights", "pretrained_network", "save_weights"]

#: The book's pretrained 784-50-100-10 sigmoid network.
BOOK_WEIGHTS = RemoteFile(
    "sample_weight.pkl",
    "b7f55a27988ba34c3777b0f1bbd464817c8a4db855723e6ff26f703501917a13",
    ("https://github.com/WegraLee/deep-learning-from-scratch/raw/master/ch03/sample_weight.pkl",),
)

_META_HIDDEN = "xpnn.hidden"
_META_OUTPUT = "xpnn.output"


def _read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    try:
        from safetensors import safe_open
    except ImportError:
        raise WeightsError(
            f"{path}: reading .safetensors needs safetensors (pip install 'xpnn[data]')"
        ) from None
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            arrays = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except Exception as err:  # SafetensorError, OSError, ValueError ...
        raise WeightsError(f"{path}: malformed safetensors file ({err})") from None
    return arrays, metadata


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as f:  # ours to close, also when np.load fails
            archive = np.load(f, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise WeightsError(f"{path}: not an .npz archive")
            with archive:
                return {key: archive[key] for key in archive.files}
    except WeightsError:
        raise
    except Exception as err:  # BadZipFile, ValueError (pickled arrays), OSError ...
        raise WeightsError(f"{path}: malformed .npz file ({err})") from None


def read_weight_arrays(
    path: str | os.PathLike[str],
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Return ``(arrays, metadata)`` from a weights file, by its extension."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _read_safetensors(path)
    if suffix == ".npz":
        return _read_npz(path), {}
    if suffix == ".pkl":
        return load_weight_pickle(path), {}
    raise WeightsError(f"{path}: unknown weights format; use .safetensors, .npz or .pkl")


def load_weights(
    path: str | os.PathLike[str],
    *,
    backend: str | None = None,
    device: Any = None,
    dtype: str | None = None,
    hidden: str | None = None,
    output: str | None = None,
) -> Network:
    """Build a :class:`~xpnn.Network` from a weights file.

    Parameters
    ----------
    path : path-like
        ``.safetensors``, ``.npz`` or ``.pkl`` holding ``W1, b1, ..., Wn, bn``.
    backend, device, dtype
        Where the network lives (see :class:`~xpnn.Network`).
    hidden, output : str or None
        Override the activation and output function; by default those stored
        in a safetensors file, else the book's ``sigmoid`` and ``softmax``.

    Raises
    ------
    WeightsError
        Unreadable, malformed or unsafe file, or inconsistent layer shapes.

    Examples
    --------
    >>> import tempfile, pathlib, xpnn
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "chapter.safetensors"
    >>> xpnn.save_weights(xpnn.init_network(dtype="float64"), path)
    >>> load_weights(path, dtype="float64").forward([1.0, 0.5])
    array([0.31682708, 0.69627909])
    """
    arrays, metadata = read_weight_arrays(path)
    hidden = hidden or metadata.get(_META_HIDDEN, "sigmoid")
    output = output or metadata.get(_META_OUTPUT, "softmax")
    for name, arr in arrays.items():
        if arr.dtype.kind != "f":
            raise WeightsError(f"{path}: {name} has dtype {arr.dtype}, not real floating")
    try:
        return Network(
            arrays, hidden=hidden, output=output, backend=backend, device=device, dtype=dtype
        )
    except (ValueError, TypeError) as err:
        if isinstance(err, (WeightsError, BackendError)):
            raise
        raise WeightsError(f"{path}: {err}") from None


def save_weights(network: Network, path: str | os.PathLike[str]) -> None:
    """Write a network's weights to ``.safetensors`` (with its functions) or ``.npz``.

    The file is written to a temporary name and renamed, so an interrupted
    save never leaves a half-written file under ``path``.
    """
    path = Path(path)
    arrays = {k: np.ascontiguousarray(to_numpy(v)) for k, v in network.params.items()}
    suffix = path.suffix.lower()
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        if suffix == ".safetensors":
            from safetensors.numpy import save_file

            metadata = {_META_HIDDEN: network.hidden, _META_OUTPUT: network.output}
            save_file(arrays, str(tmp), metadata=metadata)
        elif suffix == ".npz":
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        else:
            raise WeightsError(f"{path}: save weights as .safetensors or .npz")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def convert_pickle(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Convert a book-style ``.pkl`` (read safely) into a ``.safetensors`` file.

    The book's network is recorded as sigmoid hidden layers with a softmax output.
    """
    arrays = load_weight_pickle(source)
    network = Network(arrays, output="softmax", dtype=None)
    save_weights(network, target)
    return Path(target)


def pretrained_network(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    backend: str | None = None,
    device: Any = None,
    dtype: str = "float32",
    input_scale: float = 1.0,
    download: bool = True,
) -> Network:
    """Return the book's pretrained MNIST network (784-50-100-10, sigmoid, softmax).

    ``sample_weight.pkl`` is looked for (or downloaded, pinned by SHA-256) like
    the MNIST files, and read with the allowlist unpickler. Use
    ``input_scale=1/255`` to feed raw uint8 pixels.
    """
    directory = data_home(data_dir)
    path = ensure_files([BOOK_WEIGHTS], directory, download=download)[BOOK_WEIGHTS.name]
    network = load_weights(path, backend=backend, device=device, dtype=dtype)
    if input_scale != 1.0:
        network = network.to(input_scale=input_scale)
    return network
