"""Network weights: ``.safetensors`` (native), ``.npz``, ``.onnx`` and the book's ``.pkl``.

Settings are recorded (safetensors metadata ``xpnn.*``, the ``.npz`` member ``__xpnn__``) and
checked strictly; no reader runs the file, and a malformed or unsafe one is a WeightsError.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import struct
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from ._files import atomic_write, open_regular
from .backends import FLOAT_DTYPES
from .download import RemoteFile, ensure_files, read_verified
from .errors import WeightsError, XpnnError, check_choice
from .network import HIDDEN, OUTPUT, Network
from .safe_pickle import _check, load_weight_pickle, loads_weight_pickle

__all__ = ["load_weights", "pretrained_network", "save_weights"]

_BOOK_URL = "https://raw.githubusercontent.com/{}/deep-learning-from-scratch/master/ch03/"
#: The book's pretrained 784-50-100-10 network, as published with both editions.
BOOK_WEIGHTS = RemoteFile(
    "sample_weight.pkl",
    "b7f55a27988ba34c3777b0f1bbd464817c8a4db855723e6ff26f703501917a13",
    tuple(_BOOK_URL.format(repo) + "sample_weight.pkl" for repo in ("oreilly-japan", "WegraLee")),
    181853,
)
MAX_NPZ_BYTES = 1 << 30  #: Most bytes all members of an ``.npz`` may declare ...
MAX_NPZ_RATIO = 64  #: ... and at most this many times the file's size ...
NPZ_RATIO_SLACK = 1 << 16  #: ... plus this much.
MAX_NPZ_MEMBERS = 4096  #: Most members in an ``.npz``.

_CHOICES = {
    "hidden": (tuple(HIDDEN), "hidden activation"),
    "output": (tuple(OUTPUT), "output function"),
    "dtype": (FLOAT_DTYPES, "dtype"),
}
_NUMBER = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_SIZES = re.compile(r"[1-9][0-9]{0,9}(,[1-9][0-9]{0,9})*")
_META, _NPZ_META = "xpnn.", "__xpnn__"  # safetensors metadata prefix, .npz member
Arrays = dict[str, np.ndarray]
Read = tuple[Arrays, dict[str, str]]


def _read_safetensors(path: Path) -> Read:
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except Exception as err:  # ImportError, SafetensorError, OSError, ValueError ...
        raise WeightsError(f"{path}: malformed safetensors file ({err})") from None
    return arrays, {k[len(_META) :]: v for k, v in meta.items() if k.startswith(_META)}


def _check_npz(f: IO[bytes], path: Path) -> None:
    """Refuse an archive that could inflate past what the file holds (docs/threat-model.md)."""
    with zipfile.ZipFile(f) as archive:
        infos, ranges, names = archive.infolist(), [], set()
        n = len(infos)
        _check(n <= MAX_NPZ_MEMBERS, f"{path}: {n} members, over the limit of {MAX_NPZ_MEMBERS}")
        for info in infos:
            what = f"{path}: member {info.filename!r}"
            ok = info.filename.endswith(".npy") and not info.flag_bits & 1  # bit 0: encrypted
            _check(ok, f"{what} is not a .npy array, or is encrypted")
            _check(info.filename not in names, f"{what} appears twice")
            names.add(info.filename)
            f.seek(info.header_offset)  # the local header's own name and extra field lengths
            start = info.header_offset + 30 + sum(struct.unpack("<HH", f.read(30)[26:]))
            ranges.append((info.header_offset, start + info.compress_size, info.filename))
        for (_, end, one), (start, _, other) in itertools.pairwise(sorted(ranges)):
            _check(start >= end, f"{path}: members {one!r} and {other!r} overlap (a zip bomb?)")
        total, size = sum(i.file_size for i in infos), os.fstat(f.fileno()).st_size
        bound = min(MAX_NPZ_BYTES, MAX_NPZ_RATIO * size + NPZ_RATIO_SLACK)
        what = f"{path}: members declare {total} bytes, over {bound}: {MAX_NPZ_RATIO}:1 ratio"
        _check(total <= bound, f"{what} to the file's {size} + {NPZ_RATIO_SLACK} (a zip bomb?)")
        for info in infos:
            with archive.open(info) as member:
                major, minor = np.lib.format.read_magic(member)
                _check((major, minor) in ((1, 0), (2, 0)), f"{path}: .npy {major}.{minor}")
                shape, _, dtype = getattr(np.lib.format, f"read_array_header_{major}_0")(member)
                need = member.tell() + math.prod(shape) * dtype.itemsize
            what = f"{path}: malformed .npz file: {info.filename!r} declares {info.file_size} bytes"
            _check(need == info.file_size, f"{what}, its header {shape} of {dtype} {need}")


def _read_npz(path: Path) -> Read:
    try:
        with open_regular(path) as f:
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


def _read_onnx(path: Path) -> Read:
    from .onnx_import import read_onnx  # imports onnx: only for .onnx files

    arrays, found = read_onnx(path)
    return arrays, {k: v if isinstance(v, str) else ",".join(v) for k, v in found.items()}


_READERS: dict[str, Callable[[Path], Read]] = {".safetensors": _read_safetensors, ".npz": _read_npz}
_READERS |= {".onnx": _read_onnx, ".pkl": lambda path: (load_weight_pickle(path), {})}


def _parse_settings(recorded: dict[str, str], source: str) -> dict[str, Any]:
    """Check and convert recorded settings strictly; unknown keys are ignored (newer writers)."""
    out: dict[str, Any] = {}
    for key, value in recorded.items():
        try:
            if key in _CHOICES:
                parts = value.split(",") if key == "hidden" else [value]
                names = tuple(check_choice(n, *_CHOICES[key]) for n in parts)
                out[key] = names if len(names) > 1 else names[0]
            elif key == "input_scale":
                out[key] = float(value) if _NUMBER.fullmatch(value) else 0.0
                _check(0 < out[key] < math.inf, "not a finite number > 0, as 0.00392156862745098")
            elif key == "layer_sizes":
                _check(_SIZES.fullmatch(value), "not positive integers joined by commas: 784,50,10")
                out[key] = tuple(map(int, value.split(",")))
        except ValueError as err:  # WeightsError included
            where = f"{source}: malformed recorded setting {key}={value!r}"
            raise WeightsError(f"{where}: {err}") from None
    return out


def _native(arrays: Arrays) -> Arrays:
    return {k: v.astype(v.dtype.newbyteorder("="), copy=False) for k, v in arrays.items()}


def _build(arrays: Arrays, settings: dict[str, Any], source: str, **given: Any) -> Network:
    """The network from checked arrays; the ``given`` settings that are not None win."""
    for name, a in arrays.items():
        _check(a.dtype.kind == "f", f"{source}: {name} has dtype {a.dtype}, not real floating")
        _check(0 not in a.shape, f"{source}: {name} has shape {a.shape}: a layer without units")
    chosen: dict[str, Any] = dict(hidden="sigmoid", output="softmax", dtype=None, input_scale=1.0)
    chosen |= {k: v for k, v in settings.items() if k in chosen}
    chosen |= {k: v for k, v in given.items() if v is not None}
    try:
        network = Network(_native(arrays), **chosen)
    except XpnnError:
        raise
    except (ValueError, TypeError) as err:
        raise WeightsError(f"{source}: {err}") from None
    sizes = "-".join(map(str, network.layer_sizes))
    recorded = "-".join(map(str, settings.get("layer_sizes", network.layer_sizes)))
    _check(recorded == sizes, f"{source}: arrays of a {sizes} network, but it records {recorded}")
    return network


def load_weights(path: str | os.PathLike[str], *, backend: str | None = None, device: Any = None,
                 dtype: str | None = None, hidden: str | Sequence[str] | None = None,
                 output: str | None = None,
                 input_scale: float | None = None) -> Network:  # fmt: skip
    """Build a :class:`~xpnn.Network` from a weights file, read as data (never run).

    ``path`` is ``.safetensors``, ``.npz`` or ``.pkl`` holding ``W1, b1, ..., Wn, bn``, or an
    ``.onnx`` MLP. ``dtype``, ``hidden``, ``output`` and ``input_scale`` override the recorded
    settings (else the arrays' dtype, ``sigmoid``, ``softmax`` and 1); bad input: WeightsError.

    Examples
    --------
    >>> import tempfile, pathlib, xpnn
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "chapter.npz"
    >>> xpnn.save_weights(xpnn.init_network(dtype="float64"), path)
    >>> load_weights(path).forward([1.0, 0.5])
    array([0.31682708, 0.69627909])
    """
    path = Path(path)
    _check(path.is_file(), f"{path}: no such weights file")
    why = "unknown weights format; use .safetensors, .npz, .pkl or .onnx"
    _check(path.suffix.lower() in _READERS, f"{path}: {why}")
    arrays, recorded = _READERS[path.suffix.lower()](path)
    given = dict(dtype=dtype, hidden=hidden, output=output, input_scale=input_scale, device=device)
    return _build(arrays, _parse_settings(recorded, str(path)), str(path), backend=backend, **given)


def save_weights(network: Network, path: str | os.PathLike[str]) -> None:
    """Write ``network`` to ``.safetensors`` or ``.npz``, atomically, with all its settings.

    :func:`load_weights` gives back a network whose output is bit for bit the same.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    why = f"{path}: save weights as .safetensors or .npz; a .pkl cannot record the network's"
    _check(suffix in (".safetensors", ".npz"), f"{why} settings and would need pickle to read")
    arrays = {k: np.ascontiguousarray(v) for k, v in _native(network.host_params()).items()}
    hidden = ",".join((h,) if isinstance(h := network.hidden, str) else h)
    settings = {"hidden": hidden, "output": network.output, "dtype": network.dtype_name}
    settings |= {"input_scale": repr(network.input_scale)}  # repr round-trips a float exactly
    settings |= {"layer_sizes": ",".join(map(str, network.layer_sizes))}
    if suffix == ".safetensors":
        from safetensors.numpy import save

        atomic_write(path, save(arrays, metadata={_META + k: v for k, v in settings.items()}))
    else:
        members = {**arrays, _NPZ_META: np.array(json.dumps(settings))}
        atomic_write(path, lambda f: np.savez(f, **members))  # type: ignore[arg-type]


def pretrained_network(*, data_dir: str | os.PathLike[str] | None = None,
                       backend: str | None = None, device: Any = None, dtype: str = "float32",
                       input_scale: float = 1.0, download: bool = True) -> Network:  # fmt: skip
    """Return the book's pretrained MNIST network (784-50-100-10, sigmoid, softmax).

    ``sample_weight.pkl`` is found (or downloaded) like the MNIST files, its SHA-256 checked on each
    call and the bytes hashed parsed. ``input_scale=1/255`` takes uint8 pixels.
    """
    path = ensure_files([BOOK_WEIGHTS], data_dir, download=download)[BOOK_WEIGHTS.name]
    arrays = loads_weight_pickle(read_verified(BOOK_WEIGHTS, path), str(path))
    given = dict(hidden="sigmoid", output="softmax", input_scale=input_scale, dtype=dtype)
    return _build(arrays, {}, str(path), backend=backend, device=device, **given)
