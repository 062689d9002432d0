"""Network weights: ``.safetensors`` (native), ``.npz``, ``.onnx`` and the book's ``.pkl``.

Safetensors metadata (``xpnn.hidden``, ...) and the ``.npz`` member ``__xpnn__``
(JSON) record every setting that changes the output; each is checked strictly.
An ``.npz`` is read by ``numpy.load(allow_pickle=False)`` after a check of its
zip directory bounds what can be inflated: ``.npy`` members only, none
encrypted, repeated or overlapping, each header agreeing with its declared
size, at most :data:`MAX_NPZ_RATIO` times the file plus :data:`NPZ_RATIO_SLACK`
(and :data:`MAX_NPZ_BYTES`) in all. A ``.pkl`` is read by
:mod:`xpnn.safe_pickle`, an ``.onnx`` by ``xpnn.onnx_import``; neither runs the
file. User-named files are not pinned; the book's weights are checked against
their SHA-256 on every use (the bytes hashed are the bytes parsed). Any byte
order is accepted; every malformed or unsafe file raises :class:`xpnn.WeightsError`.
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import os
import re
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from ._files import atomic_write
from .backends import FLOAT_DTYPES
from .download import RemoteFile, data_home, ensure_files, read_verified
from .errors import WeightsError, XpnnError, check_choice
from .network import Network
from .safe_pickle import load_weight_pickle, loads_weight_pickle

__all__ = ["convert_pickle", "load_weights", "pretrained_network", "save_weights"]

#: The book's pretrained 784-50-100-10 network, as published with both editions.
BOOK_WEIGHTS = RemoteFile(
    "sample_weight.pkl",
    "b7f55a27988ba34c3777b0f1bbd464817c8a4db855723e6ff26f703501917a13",
    tuple(
        f"https://raw.githubusercontent.com/{repo}/deep-learning-from-scratch/master/ch03/sample_weight.pkl"
        for repo in ("oreilly-japan", "WegraLee")
    ),
    181853,
)

MAX_NPZ_BYTES = 1 << 30  #: Most bytes all members of an ``.npz`` may declare ...
MAX_NPZ_RATIO = 64  #: ... and at most this many times the file's size ...
NPZ_RATIO_SLACK = 1 << 16  #: ... plus this much.
MAX_NPZ_MEMBERS = 4096  #: Most members in an ``.npz``.

# TODO: take these from xpnn.network once it exports its tables of names.
_CHOICES = {
    "hidden": (("sigmoid", "relu", "tanh", "identity"), "hidden activation"),
    "output": (("identity", "softmax"), "output function"),
    "dtype": (FLOAT_DTYPES, "dtype"),
}
_NUMBER = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_SIZES = re.compile(r"[1-9][0-9]{0,9}(,[1-9][0-9]{0,9})*")
_META = "xpnn."  # safetensors metadata prefix
_NPZ_META = "__xpnn__"


def _read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except Exception as err:  # ImportError, SafetensorError, OSError, ValueError ...
        raise WeightsError(f"{path}: malformed safetensors file ({err})") from None
    return arrays, {k[len(_META) :]: v for k, v in meta.items() if k.startswith(_META)}


def _check_npz(f: IO[bytes], path: Path) -> None:
    """Refuse an archive whose members could inflate to more than the file honestly holds."""
    with zipfile.ZipFile(f) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_NPZ_MEMBERS:
            raise WeightsError(f"{path}: {len(infos)} members, over the limit of {MAX_NPZ_MEMBERS}")
        ranges = []
        for i, info in enumerate(infos):
            name = info.filename
            if info.is_dir() or not name.endswith(".npy"):
                raise WeightsError(f"{path}: member {name!r} is not a .npy array")
            if any(other.filename == name for other in infos[:i]):
                raise WeightsError(f"{path}: member {name!r} appears twice")
            if info.flag_bits & 0x1:
                raise WeightsError(f"{path}: member {name!r} is encrypted")
            f.seek(info.header_offset)  # the local header gives its own name and extra lengths
            local = f.read(30).ljust(30, b"\0")
            end = (
                info.header_offset + 30 + sum(struct.unpack("<HH", local[26:])) + info.compress_size
            )
            ranges.append((info.header_offset, end, name))
        for (_, end, first), (start, _, second) in itertools.pairwise(sorted(ranges)):
            if start < end:
                raise WeightsError(
                    f"{path}: members {first!r} and {second!r} overlap (a zip bomb?)"
                )
        total, size = sum(i.file_size for i in infos), os.fstat(f.fileno()).st_size
        if total > min(MAX_NPZ_BYTES, MAX_NPZ_RATIO * size + NPZ_RATIO_SLACK):
            raise WeightsError(
                f"{path}: members declare {total} bytes in a {size}-byte file, over the "
                f"{MAX_NPZ_RATIO}:1 ratio (+{NPZ_RATIO_SLACK}, at most {MAX_NPZ_BYTES}) of weights"
            )
        for info in infos:  # numpy allocates what a header declares: it must fit the member
            with archive.open(info) as member:
                major, minor = np.lib.format.read_magic(member)
                if (major, minor) not in ((1, 0), (2, 0)):
                    raise ValueError(f"unsupported .npy format version {major}.{minor}")
                shape, _, dtype = getattr(np.lib.format, f"read_array_header_{major}_0")(member)
                needed = member.tell() + math.prod(shape) * dtype.itemsize
            if needed != info.file_size:
                raise WeightsError(
                    f"{path}: malformed .npz file: {info.filename!r} declares {info.file_size} "
                    f"bytes but its header {shape} of {dtype} needs {needed}"
                )


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    try:
        with open(path, "rb") as f:
            _check_npz(f, path)
            f.seek(0)
            with np.load(f, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        text = arrays.pop(_NPZ_META, np.array("{}"))
        settings = json.loads(str(text[()])) if text.shape == () and text.dtype.kind == "U" else 0
        if not isinstance(settings, dict) or not all(isinstance(v, str) for v in settings.values()):
            raise ValueError(f"the {_NPZ_META} member is not a JSON object of strings")
    except WeightsError:
        raise
    except Exception as err:  # BadZipFile, CRC errors, bad headers, OSError, MemoryError ...
        raise WeightsError(f"{path}: malformed .npz file ({type(err).__name__}: {err})") from None
    return arrays, settings


def _read_onnx(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    try:
        module = importlib.import_module(".onnx_import", __package__)
    except ModuleNotFoundError as err:
        if err.name != f"{__package__}.onnx_import":
            raise
        raise WeightsError(f"{path}: reading .onnx needs the module xpnn.onnx_import") from None
    arrays, found = module.read_onnx(path)
    hidden = found["hidden"]
    return arrays, {**found, "hidden": hidden if isinstance(hidden, str) else ",".join(hidden)}


def _read_pickle(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    return load_weight_pickle(path), {}


_READERS = {".safetensors": _read_safetensors, ".npz": _read_npz, ".pkl": _read_pickle}
_READERS[".onnx"] = _read_onnx


def _parse_settings(recorded: dict[str, str], source: str) -> dict[str, Any]:
    """Check and convert recorded settings strictly; unknown keys are ignored (newer writers)."""
    out: dict[str, Any] = {}
    for key, value in recorded.items():
        try:
            if key in _CHOICES:
                options, what = _CHOICES[key]
                parts = value.split(",") if key == "hidden" else [value]
                names = tuple(check_choice(n, options, what) for n in parts)
                out[key] = names[0] if len(names) == 1 else names
            elif key == "input_scale":
                out[key] = float(value) if _NUMBER.fullmatch(value) else math.nan
                if not (math.isfinite(out[key]) and out[key] > 0):
                    raise ValueError("not a finite number > 0, such as 0.00392156862745098")
            elif key == "layer_sizes":
                if not _SIZES.fullmatch(value):
                    raise ValueError("not positive integers separated by commas, as 784,50,10")
                out[key] = tuple(int(n) for n in value.split(","))
        except ValueError as err:
            raise WeightsError(
                f"{source}: malformed recorded setting {key}={value!r}: {err}"
            ) from None
    return out


def _native(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.astype(v.dtype.newbyteorder("="), copy=False) for k, v in arrays.items()}


def _build(
    arrays: dict[str, np.ndarray], settings: dict[str, Any], source: str, **given: Any
) -> Network:
    """The network from checked arrays; the ``given`` settings that are not None win."""
    for name, arr in arrays.items():
        if arr.dtype.kind != "f":
            raise WeightsError(f"{source}: {name} has dtype {arr.dtype}, not real floating")
        if 0 in arr.shape:
            raise WeightsError(f"{source}: {name} has shape {arr.shape}: a layer without units")
    chosen: dict[str, Any] = dict(hidden="sigmoid", output="softmax", dtype=None, input_scale=1.0)
    chosen |= {k: v for k, v in settings.items() if k in chosen}
    chosen |= {k: v for k, v in given.items() if v is not None}
    try:
        network = Network(_native(arrays), **chosen)
    except XpnnError:
        raise
    except (ValueError, TypeError) as err:
        raise WeightsError(f"{source}: {err}") from None
    recorded = settings.get("layer_sizes", network.layer_sizes)
    if recorded != network.layer_sizes:
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
    hidden: str | Sequence[str] | None = None,
    output: str | None = None,
    input_scale: float | None = None,
) -> Network:
    """Build a :class:`~xpnn.Network` from a weights file, read as data (never run).

    Parameters
    ----------
    path : path-like
        ``.safetensors``, ``.npz`` or ``.pkl`` holding ``W1, b1, ..., Wn, bn``,
        or an ``.onnx`` MLP. The file is the caller's: checked, not pinned.
    backend, device
        Where the network lives (see :class:`~xpnn.Network`).
    dtype, hidden, output, input_scale
        Override the recorded settings; by default those, else the arrays'
        dtype, the book's ``sigmoid`` and ``softmax``, and scale 1.

    Raises
    ------
    WeightsError
        An unreadable, malformed or unsafe file, inconsistent or empty layers,
        malformed recorded settings or settings the arrays do not match.

    Examples
    --------
    >>> import tempfile, pathlib, xpnn
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "chapter.npz"
    >>> xpnn.save_weights(xpnn.init_network(dtype="float64"), path)
    >>> load_weights(path).forward([1.0, 0.5])
    array([0.31682708, 0.69627909])
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise WeightsError(f"{path}: unknown weights format; use .safetensors, .npz, .pkl or .onnx")
    arrays, recorded = _READERS[suffix](path)
    given = {"dtype": dtype, "hidden": hidden, "output": output, "input_scale": input_scale}
    settings = _parse_settings(recorded, str(path))
    return _build(arrays, settings, str(path), backend=backend, device=device, **given)


def save_weights(network: Network, path: str | os.PathLike[str]) -> None:
    """Write ``network`` to ``.safetensors`` or ``.npz``, atomically, with all its settings.

    The weights as built (in their own precision) and the hidden activations,
    output function, input scale, dtype and layer sizes are written, so
    :func:`load_weights` gives a network whose output is bit for bit the same.
    On any failure an existing ``path`` is unchanged and nothing is left behind.

    Raises
    ------
    WeightsError
        Another extension (``.pkl`` cannot hold the settings).
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
    arrays = {k: np.ascontiguousarray(v) for k, v in _native(network.host_params()).items()}
    hidden = network.hidden
    settings = {
        "hidden": hidden if isinstance(hidden, str) else ",".join(hidden),
        "output": network.output,
        "input_scale": repr(network.input_scale),  # repr round-trips a float exactly
        "dtype": network.dtype_name,
        "layer_sizes": ",".join(map(str, network.layer_sizes)),
    }
    if suffix == ".safetensors":
        from safetensors.numpy import save

        atomic_write(path, save(arrays, metadata={_META + k: v for k, v in settings.items()}))
    else:
        members = {**arrays, _NPZ_META: np.array(json.dumps(settings))}
        atomic_write(path, lambda f: np.savez(f, **members))  # type: ignore[arg-type]


def convert_pickle(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Convert a book-style ``.pkl`` (read safely) to ``.safetensors`` or ``.npz``."""
    save_weights(Network(_native(load_weight_pickle(source)), output="softmax"), target)
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

    ``sample_weight.pkl`` is found (or downloaded) like the MNIST files, read
    once, checked against its pinned SHA-256 every time, and those same bytes
    are parsed. ``input_scale=1/255`` feeds raw uint8 pixels.

    Raises
    ------
    DataError
        The file is missing and cannot be downloaded, or is not the book's.
    """
    directory = data_home(data_dir)
    path = ensure_files([BOOK_WEIGHTS], directory, download=download)[BOOK_WEIGHTS.name]
    data, _ = read_verified(BOOK_WEIGHTS, path)
    arrays = loads_weight_pickle(data, str(path))
    given = {"hidden": "sigmoid", "output": "softmax", "input_scale": input_scale}
    return _build(arrays, {}, str(path), backend=backend, device=device, dtype=dtype, **given)
