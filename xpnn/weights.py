"""Saving and loading network weights: safetensors natively, ``.npz``, and the book's ``.pkl``.

* ``.safetensors`` is the native format: plain tensors plus a small JSON
  header, whose metadata also records every setting that changes the
  network's output (hidden activation, output function, input scale, dtype,
  layer sizes).
* ``.npz`` holds the same: the arrays, and the settings as JSON text in a
  ``__xpnn__`` member (a 0-d string array). It is read without
  ``numpy.load``: the archive's directory is checked first (only ``.npy``
  members, no duplicates, declared sizes within a total bound and at most
  :data:`MAX_NPZ_RATIO` times their compressed size), then each member is
  decompressed up to its declared size only and parsed with pickles refused.
* ``.pkl`` (the book's ``sample_weight.pkl``) is read by the allowlist
  unpickler of :mod:`xpnn.safe_pickle`, which never runs code from the file;
  it holds arrays only, so the book's settings apply (sigmoid, softmax,
  input scale 1).

A file the user names (``load_weights(path)``, ``--weights``) is the user's
own and is not pinned; the book's ``sample_weight.pkl`` loaded from the data
directory by :func:`pretrained_network` is checked against its SHA-256 on
every use (the bytes hashed are the bytes parsed). Arrays in any byte order
are accepted and converted to the native one. Every malformed or unsafe file
raises :class:`xpnn.WeightsError`; files are written atomically.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ._files import atomic_write
from .backends import to_numpy
from .download import RemoteFile, data_home, ensure_files, read_verified
from .errors import BackendError, WeightsError
from .network import Network
from .safe_pickle import load_weight_pickle, loads_weight_pickle

__all__ = ["convert_pickle", "load_weights", "pretrained_network", "save_weights"]

#: The book's pretrained 784-50-100-10 sigmoid network, published (the same
#: file) with the Japanese original and the Korean edition.
BOOK_WEIGHTS = RemoteFile(
    "sample_weight.pkl",
    "b7f55a27988ba34c3777b0f1bbd464817c8a4db855723e6ff26f703501917a13",
    (
        "https://raw.githubusercontent.com/oreilly-japan/deep-learning-from-scratch/master/ch03/sample_weight.pkl",
        "https://raw.githubusercontent.com/WegraLee/deep-learning-from-scratch/master/ch03/sample_weight.pkl",
    ),
    181853,
)

#: Largest total of array bytes an ``.npz`` may declare.
MAX_NPZ_BYTES = 1 << 30
#: Largest compression ratio of an ``.npz`` member (weights barely compress) ...
MAX_NPZ_RATIO = 64
#: ... above this size (small members may compress better).
NPZ_RATIO_SLACK = 1 << 16
#: Most members in an ``.npz``.
MAX_NPZ_MEMBERS = 4096

_SETTINGS = ("hidden", "output", "input_scale", "dtype", "layer_sizes")
_META_PREFIX = "xpnn."  # safetensors metadata keys: xpnn.hidden, ...
_NPZ_META = "__xpnn__"  # the .npz member with the settings as JSON
_MAX_META_CHARS = 1 << 16
_NPY_HEADER_BYTES = 1 << 14


# -- reading ------------------------------------------------------------------


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
    settings = {
        key.removeprefix(_META_PREFIX): value
        for key, value in metadata.items()
        if key.startswith(_META_PREFIX)
    }
    return arrays, settings


def _npz_members(archive: zipfile.ZipFile, path: Path) -> list[tuple[str, zipfile.ZipInfo]]:
    """Check the archive's directory before anything is decompressed."""
    infos = archive.infolist()
    if len(infos) > MAX_NPZ_MEMBERS:
        raise WeightsError(f"{path}: {len(infos)} members, over the limit of {MAX_NPZ_MEMBERS}")
    members: list[tuple[str, zipfile.ZipInfo]] = []
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        if info.is_dir() or not name.endswith(".npy"):
            raise WeightsError(f"{path}: member {name!r} is not a .npy array")
        key = name[: -len(".npy")]
        if key in seen:
            raise WeightsError(f"{path}: member {name!r} appears twice")
        seen.add(key)
        if info.flag_bits & 0x1:
            raise WeightsError(f"{path}: member {name!r} is encrypted")
        if info.file_size > MAX_NPZ_RATIO * info.compress_size + NPZ_RATIO_SLACK:
            raise WeightsError(
                f"{path}: member {name!r} declares {info.file_size} bytes from "
                f"{info.compress_size} compressed, over the {MAX_NPZ_RATIO}:1 ratio weights "
                "can have (a compression bomb?)"
            )
        total += info.file_size
        if total > MAX_NPZ_BYTES:
            raise WeightsError(f"{path}: members declare over {MAX_NPZ_BYTES} bytes in all")
        members.append((key, info))
    return members


def _parse_npy(raw: bytes, name: str, allow_text: bool) -> np.ndarray:
    """An owned array from a whole ``.npy`` in memory; numbers only (or text for metadata)."""
    stream = io.BytesIO(raw[:_NPY_HEADER_BYTES])
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    kinds = "biufU" if allow_text else "biuf"
    if dtype.kind not in kinds or dtype.hasobject or dtype.fields or dtype.subdtype:
        raise ValueError(f"{name} has dtype {dtype}; weights are plain numbers")
    offset = stream.tell()
    count = math.prod(shape)
    if len(raw) - offset != count * dtype.itemsize:
        raise ValueError(
            f"{name} holds {len(raw) - offset} data bytes but its header declares "
            f"shape {shape} of {dtype}"
        )
    flat = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran else "C").copy(order="C")


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    arrays: dict[str, np.ndarray] = {}
    try:
        with open(path, "rb") as f, zipfile.ZipFile(f) as archive:
            for key, info in _npz_members(archive, path):
                with archive.open(info) as member:
                    raw = member.read(info.file_size + 1)  # never past the declared size
                if len(raw) != info.file_size:
                    raise ValueError(f"{info.filename} is shorter than declared")
                arrays[key] = _parse_npy(raw, info.filename, allow_text=key == _NPZ_META)
    except WeightsError:
        raise
    except Exception as err:  # BadZipFile, CRC errors, bad headers, OSError ...
        raise WeightsError(f"{path}: malformed .npz file ({type(err).__name__}: {err})") from None
    settings: dict[str, str] = {}
    if _NPZ_META in arrays:
        text = arrays.pop(_NPZ_META)
        try:
            if text.shape != () or text.dtype.kind != "U" or text.itemsize > 4 * _MAX_META_CHARS:
                raise ValueError("not one short string")
            loaded = json.loads(str(text[()]))
            if not isinstance(loaded, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
            ):
                raise ValueError("not an object of strings")
        except (ValueError, RecursionError) as err:
            raise WeightsError(f"{path}: malformed {_NPZ_META} settings ({err})") from None
        settings = loaded
    return arrays, settings


def read_weight_arrays(
    path: str | os.PathLike[str],
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Return ``(arrays, settings)`` from a weights file, by its extension.

    Arrays are in native byte order; ``settings`` holds the recorded settings
    as text (empty for ``.pkl`` and files written by other tools).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        arrays, settings = _read_safetensors(path)
    elif suffix == ".npz":
        arrays, settings = _read_npz(path)
    elif suffix == ".pkl":
        arrays, settings = load_weight_pickle(path), {}
    else:
        raise WeightsError(f"{path}: unknown weights format; use .safetensors, .npz or .pkl")
    return _native(arrays), settings


def _native(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.astype(v.dtype.newbyteorder("="), copy=False) for k, v in arrays.items()}


def _parse_settings(settings: dict[str, str], source: str) -> dict[str, Any]:
    """Check and convert recorded settings; unknown keys are ignored (newer writers)."""
    out: dict[str, Any] = {}
    try:
        for key in ("hidden", "output", "dtype"):
            if key in settings:
                out[key] = str(settings[key])
        if "input_scale" in settings:
            scale = float(settings["input_scale"])
            if not (math.isfinite(scale) and scale > 0):
                raise ValueError(f"input_scale {settings['input_scale']!r}")
            out["input_scale"] = scale
        if "layer_sizes" in settings:
            out["layer_sizes"] = tuple(int(n) for n in settings["layer_sizes"].split(","))
    except (ValueError, TypeError, AttributeError) as err:
        raise WeightsError(f"{source}: malformed recorded setting ({err})") from None
    return out


def _build(
    arrays: dict[str, np.ndarray],
    settings: dict[str, Any],
    source: str,
    *,
    backend: str | None,
    device: Any,
    dtype: str | None,
    hidden: str | None,
    output: str | None,
    input_scale: float | None,
) -> Network:
    for name, arr in arrays.items():
        if arr.dtype.kind != "f":
            raise WeightsError(f"{source}: {name} has dtype {arr.dtype}, not real floating")
        if 0 in arr.shape:
            raise WeightsError(f"{source}: {name} has shape {arr.shape}: a layer without units")
    try:
        network = Network(
            arrays,
            hidden=hidden or settings.get("hidden", "sigmoid"),
            output=output or settings.get("output", "softmax"),
            backend=backend,
            device=device,
            dtype=dtype or settings.get("dtype"),
            input_scale=settings.get("input_scale", 1.0) if input_scale is None else input_scale,
        )
    except (ValueError, TypeError) as err:
        if isinstance(err, (WeightsError, BackendError)):
            raise
        raise WeightsError(f"{source}: {err}") from None
    recorded = settings.get("layer_sizes")
    if recorded is not None and recorded != network.layer_sizes:
        raise WeightsError(
            f"{source}: the arrays make a {'-'.join(map(str, network.layer_sizes))} network "
            f"but the file records {'-'.join(map(str, recorded))}"
        )
    return network


def load_weights(
    path: str | os.PathLike[str],
    *,
    backend: str | None = None,
    device: Any = None,
    dtype: str | None = None,
    hidden: str | None = None,
    output: str | None = None,
    input_scale: float | None = None,
) -> Network:
    """Build a :class:`~xpnn.Network` from a weights file.

    Parameters
    ----------
    path : path-like
        ``.safetensors``, ``.npz`` or ``.pkl`` holding ``W1, b1, ..., Wn, bn``.
        The file is the caller's: it is read as data (never run) but not pinned.
    backend, device
        Where the network lives (see :class:`~xpnn.Network`).
    dtype : str or None
        Compute dtype; by default the one recorded in the file, else the
        arrays' own.
    hidden, output : str or None
        Override the activation and output function; by default those
        recorded in the file, else the book's ``sigmoid`` and ``softmax``.
    input_scale : float or None
        Override the input scale; by default the recorded one, else 1.

    Raises
    ------
    WeightsError
        Unreadable, malformed or unsafe file, inconsistent layer shapes, a
        layer without units, or recorded layer sizes the arrays do not match.

    Examples
    --------
    >>> import tempfile, pathlib, xpnn
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "chapter.safetensors"
    >>> xpnn.save_weights(xpnn.init_network(dtype="float64"), path)
    >>> load_weights(path).forward([1.0, 0.5])
    array([0.31682708, 0.69627909])
    """
    arrays, recorded = read_weight_arrays(path)
    settings = _parse_settings(recorded, str(path))
    return _build(
        arrays,
        settings,
        str(path),
        backend=backend,
        device=device,
        dtype=dtype,
        hidden=hidden,
        output=output,
        input_scale=input_scale,
    )


# -- writing ------------------------------------------------------------------


def network_settings(network: Network) -> dict[str, str]:
    """Every setting that changes ``network``'s output, as text.

    Examples
    --------
    >>> import xpnn
    >>> network_settings(xpnn.init_network().to(input_scale=0.5))["input_scale"]
    '0.5'
    """
    return {
        "hidden": network.hidden if isinstance(network.hidden, str) else ",".join(network.hidden),
        "output": network.output,
        "input_scale": repr(network.input_scale),  # repr round-trips a float exactly
        "dtype": network.dtype_name,
        "layer_sizes": ",".join(str(n) for n in network.layer_sizes),
    }


def _arrays_as_built(network: Network) -> dict[str, np.ndarray]:
    """The host arrays the network was built from, in their own precision.

    Saving these (not :attr:`Network.params`, which are cast to the compute
    dtype) lets :func:`load_weights` fold the input scale into ``W1`` from the
    very same numbers, so the loaded network's output is bit for bit the same.
    """
    host = getattr(network, "_host", None)
    if host is None:  # a Network without host copies: its parameters as they are
        return {k: np.ascontiguousarray(to_numpy(v)) for k, v in network.params.items()}
    arrays: dict[str, np.ndarray] = {}
    for i, (w, b) in enumerate(host, start=1):
        arrays[f"W{i}"] = np.ascontiguousarray(w)
        arrays[f"b{i}"] = np.ascontiguousarray(b)
    return arrays


def save_weights(network: Network, path: str | os.PathLike[str]) -> None:
    """Write a network to ``.safetensors`` or ``.npz`` with every setting that changes its output.

    The weights (as the network was built from them, in their own precision)
    and the hidden activation, output function, input scale, dtype and layer
    sizes are written, so :func:`load_weights` rebuilds a network whose output
    is bit for bit the same.
    ``.pkl`` cannot hold the settings and is refused. The file is written to
    an unpredictably named temporary in the same directory and renamed over
    ``path``; on any failure (Ctrl-C included) nothing is left behind and an
    existing ``path`` is unchanged.

    Raises
    ------
    WeightsError
        Another extension.
    OSError
        The directory is missing or unwritable, the disk is full ...
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".safetensors", ".npz"):
        raise WeightsError(
            f"{path}: save weights as .safetensors or .npz (a .pkl cannot record the "
            "network's settings and would need pickle to read)"
        )
    arrays = _arrays_as_built(network)
    settings = network_settings(network)
    if suffix == ".safetensors":
        from safetensors.numpy import save

        metadata = {_META_PREFIX + key: value for key, value in settings.items()}
        atomic_write(path, save(arrays, metadata=metadata))
    else:
        buffer = io.BytesIO()
        savez: Any = np.savez  # its **arrays are not typable
        savez(buffer, **arrays, **{_NPZ_META: np.array(json.dumps(settings))})
        atomic_write(path, buffer.getbuffer())


def convert_pickle(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Convert a book-style ``.pkl`` (read safely) into a ``.safetensors`` or ``.npz`` file.

    The book's network is recorded as sigmoid hidden layers with a softmax output.
    """
    arrays = _native(load_weight_pickle(source))
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

    ``sample_weight.pkl`` is looked for (or downloaded) like the MNIST files,
    read once, checked against its pinned SHA-256 every time, and those same
    bytes are read by the allowlist unpickler. Use ``input_scale=1/255`` to
    feed raw uint8 pixels.

    Raises
    ------
    DataError
        The file is missing and cannot be downloaded, or is not the book's
        (SHA-256 mismatch).
    """
    directory = data_home(data_dir)
    path = ensure_files([BOOK_WEIGHTS], directory, download=download)[BOOK_WEIGHTS.name]
    data = read_verified(BOOK_WEIGHTS, path)
    arrays = _native(loads_weight_pickle(data, str(path)))
    return _build(
        arrays,
        {},
        str(path),
        backend=backend,
        device=device,
        dtype=dtype,
        hidden="sigmoid",
        output="softmax",
        input_scale=input_scale,
    )
