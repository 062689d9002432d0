"""Backends: names, namespaces, devices and dtypes. All xpnn knows about array libraries.

Devices and their dtypes come from each namespace's ``__array_namespace_info__()``,
which library an array or namespace belongs to from array-api-compat's ``is_*``
predicates. The table holds only what no library states: the import name, the
install hint, whether it computes on the CPU only. ``import xpnn`` imports none.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import operator
import os
import re
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any, NamedTuple

import array_api_compat as compat

from ._moving import to_numpy
from .errors import BackendError

__all__ = ["BACKENDS", "FLOAT_DTYPES", "backend_name", "backend_of", "check_dtype", "namespace",
           "parse_device", "to_numpy"]  # fmt: skip

#: Floating dtypes xpnn computes in (float16, outside the standard, where a namespace has it).
FLOAT_DTYPES = ("float16", "float32", "float64")


class _Row(NamedTuple):  # array-api-compat's predicate of each is ``is_<name>_namespace``
    name: str
    library: str  # must import for the backend to exist
    namespace: str
    install: str
    cpu_only: bool


_TABLE = (
    _Row("numpy", "numpy", "array_api_compat.numpy", "pip install numpy", True),
    _Row("cupy", "cupy", "array_api_compat.cupy",
         "pip install 'xpnn[cuda12]' or 'xpnn[cuda13]', as nvidia-smi's CUDA Version says", False),
    _Row("torch", "torch", "array_api_compat.torch", "pip install 'xpnn[torch]'", False),
    _Row("jax", "jax", "jax.numpy", "pip install 'xpnn[jax]' (jax[cuda12] for NVIDIA GPUs)", False),
    _Row("dask", "dask.array", "array_api_compat.dask.array", "pip install 'xpnn[dask]'", True),
    _Row("array_api_strict", "array_api_strict", "array_api_strict", "pip install 'xpnn[strict]'",
         False),
    _Row("ndonnx", "ndonnx", "ndonnx", "pip install 'xpnn[onnx]'", True),
)  # fmt: skip
#: Backend names accepted by :func:`namespace`.
BACKENDS: tuple[str, ...] = tuple(row.name for row in _TABLE)
_BY_NAME = {row.name: row for row in _TABLE}
_ALIASES = {"strict": "array_api_strict", "onnx": "ndonnx"}


def backend_name(backend: str | None = None) -> str:
    """The canonical name of ``backend``; ``None`` reads ``XPNN_BACKEND``, else numpy.

    Examples
    --------
    >>> backend_name("Torch"), backend_name("array-api-strict")
    ('torch', 'array_api_strict')
    """
    if backend is None:
        backend = os.environ.get("XPNN_BACKEND") or "numpy"
    if not isinstance(backend, str):
        raise BackendError(f"backend must be a name, got {type(backend).__name__}")
    name = backend.strip().lower().replace("-", "_")
    name = _ALIASES.get(name, name)
    if name not in _BY_NAME:
        raise BackendError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    return name


def backend_of(x: Any) -> str:
    """The backend name of an array or a namespace (``TypeError`` for anything else).

    Examples
    --------
    >>> import array_api_strict
    >>> backend_of(array_api_strict.asarray([1.0]))
    'array_api_strict'
    """
    xp = x if isinstance(x, ModuleType) else compat.array_namespace(x)
    for row in _TABLE:
        if getattr(compat, f"is_{row.name}_namespace")(xp):
            return row.name
    raise TypeError(f"expected an array of one of {', '.join(BACKENDS)}, got {type(x)}")


def parse_device(text: str) -> tuple[str, int | None]:
    """Split a device name into kind and index: the one device-string parser.

    Examples
    --------
    >>> parse_device(" CUDA:1 "), parse_device("gpu"), parse_device("device1")
    (('cuda', 1), ('cuda', None), ('device1', None))
    """
    kind, sep, index = text.strip().lower().partition(":")
    kind = "cuda" if kind == "gpu" else kind
    if sep and index.isdigit():
        return kind, int(index)
    return (text.strip().lower(), None) if sep else (kind, None)


def _label(device: Any) -> str:
    """A device's name as users write it: ``cpu``, ``cuda:1``, ``cpu:1``, ``device1``."""
    text = str(device)
    quoted = re.fullmatch(r"[\w.]+\('(\w+)'\)", text)  # array_api_strict.Device('device1')
    cupy = re.fullmatch(r"<CUDA Device (\d+)>", text)
    text = quoted.group(1) if quoted else f"cuda:{cupy.group(1)}" if cupy else text
    return "cpu" if text == "CPU_DEVICE" else text.lower()


@functools.cache
def _devices(name: str) -> tuple[tuple[str, Any], ...]:
    """``(label, device)`` of each device the library reports (``meta`` aside), in its order."""
    xp = importlib.import_module(_BY_NAME[name].namespace)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns while it probes device types
            found = list(xp.__array_namespace_info__().devices())
    except Exception as err:  # CuPy without a driver: CUDARuntimeError
        raise BackendError(f"backend {name!r} sees no device here ({err})") from None
    if name == "jax":  # JAX lists its default platform only; its CPU devices always exist
        found += [d for d in importlib.import_module("jax").devices("cpu") if d not in found]
    devices = [d for d in found if d is not None and _label(d) != "meta"]
    if _BY_NAME[name].cpu_only:  # dask also lists DASK_DEVICE; ndonnx names its one none
        return (("cpu", devices[0]),)
    return tuple((_label(d), d) for d in devices)


def _resolve_device(name: str, device: Any) -> Any:
    devices = _devices(name)
    labels = [label for label, _ in devices]
    if device is None:  # the CPU where there is one, else the library's first device
        return next((d for label, d in devices if label.startswith("cpu")), devices[0][1])
    for _, d in devices:
        if device is d or (type(device) is type(d) and device == d):
            return d
    if not isinstance(device, (str, *(type(d) for _, d in devices))):
        raise BackendError(f"backend {name!r} has no device {device!r}; its devices: {labels}")
    kind, index = parse_device(_label(device.strip() if isinstance(device, str) else device))
    same_kind = [d for label, d in devices if parse_device(label)[0] == kind]
    if (index or 0) < len(same_kind):  # "cuda" and "cuda:0" are the first CUDA device
        return same_kind[index or 0]
    if kind == "cuda" and _BY_NAME[name].cpu_only:
        hint = "it runs on the CPU only; use backend 'cupy' or 'torch' for CUDA"
    elif kind == "cuda":
        hint = "no such CUDA device is visible here; use device 'cpu'"
    elif kind == "cpu" and name == "jax":
        hint = "more CPU devices: XLA_FLAGS=--xla_force_host_platform_device_count=N"
    else:
        hint = "choose one of those"
    raise BackendError(f"backend {name!r} has no device {device!r} (devices: {labels}); {hint}")


def namespace(backend: str | None = None, device: Any = None) -> tuple[ModuleType, Any]:
    """The array namespace and device object of a backend (``None``: ``XPNN_BACKEND``, or numpy).

    ``device`` is one the library reports, by name (``"cpu"``, ``"cuda:1"``, JAX's
    ``"cpu:1"``, array-api-strict's ``"device1"``) or object; ``None`` is the CPU, or the
    first device of a library without one (CuPy: ``cuda:0``). An unknown or missing
    backend, or a device it does not have here, is a one-line :class:`BackendError`.

    Examples
    --------
    >>> xp, device = namespace("numpy")
    >>> xp.__name__, device
    ('array_api_compat.numpy', 'cpu')
    """
    name = backend_name(backend)
    row = _BY_NAME[name]
    try:
        importlib.import_module(row.library)
        xp = importlib.import_module(row.namespace)
    except ImportError as err:
        raise BackendError(f"backend {name!r} is not installed ({err}); {row.install}") from None
    return xp, _resolve_device(name, device)


def floating_dtypes(xp: ModuleType, device: Any) -> list[str]:
    """The floating dtype names ``device`` has (its namespace says; float16 where present)."""
    names = list(xp.__array_namespace_info__().dtypes(device=device, kind="real floating"))
    names += ["float16"] if getattr(xp, "float16", None) is not None else []
    if _label(device) == "mps":  # Apple's GPUs have no float64; torch does not say so
        names = [n for n in names if n != "float64"]
    return [n for n in FLOAT_DTYPES if n in names]


def check_dtype(xp: ModuleType, device: Any, dtype: str) -> str:
    """``dtype``, a floating dtype name, if ``device`` has it; else a one-line error.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> check_dtype(xp, xp.Device("no_float64"), "float64")
    Traceback (most recent call last):
    ...
    xpnn.errors.BackendError: device no_float64 of backend 'array_api_strict' has no dtype \
'float64'; its floating dtypes: float32
    """
    if not isinstance(dtype, str) or dtype not in FLOAT_DTYPES:
        raise BackendError(f"unknown dtype {dtype!r}; choose one of: {', '.join(FLOAT_DTYPES)}")
    have = floating_dtypes(xp, device)
    if dtype not in have:
        backend = backend_of(xp)
        hint = "; set JAX_ENABLE_X64=1 for float64" if backend == "jax" else ""
        raise BackendError(
            f"device {_label(device)} of backend {backend!r} has no dtype {dtype!r}; "
            f"its floating dtypes: {', '.join(have)}{hint}"
        )
    return dtype


def enable_float64(backend: str | None) -> None:
    """Turn on JAX's 64-bit mode when ``backend`` is JAX; a no-op for every other backend."""
    if backend_name(backend) == "jax":
        importlib.import_module("jax").config.update("jax_enable_x64", True)


def default_dtype(x: Any, kind: str) -> Any:
    """The namespace's default dtype of ``kind`` (``"integral"``, ...) on ``x``'s device."""
    info = compat.array_namespace(x).__array_namespace_info__()
    return info.default_dtypes(device=compat.device(x))[kind]


def argmax(y: Any) -> Any:
    """The index of the largest entry along the last axis, in the device's index dtype."""
    xp = compat.array_namespace(y)
    try:
        return xp.argmax(y, axis=-1)
    except ValueError:  # array-api-strict's no_x64 device: its argmax makes int64 it cannot hold
        index = xp.arange(y.shape[-1], dtype=default_dtype(y, "indexing"), device=compat.device(y))
        best = y == xp.max(y, axis=-1, keepdims=True)
        return xp.min(xp.where(best, index, y.shape[-1]), axis=-1)


def jit(xp: ModuleType) -> Callable[..., Any] | None:
    """The namespace's whole-function compiler (``jax.jit``), or None."""
    return importlib.import_module("jax").jit if compat.is_jax_namespace(xp) else None


def matmul(xp: ModuleType) -> Callable[[Any, Any], Any]:
    """The full-precision matrix product (JAX would use TensorFloat-32 on GPUs by default)."""
    if compat.is_jax_namespace(xp):
        highest = importlib.import_module("jax").lax.Precision.HIGHEST
        return functools.partial(xp.matmul, precision=highest)
    return operator.matmul


def device_scope(x: Any) -> AbstractContextManager[Any]:
    """The context computation for array or device ``x`` runs in: CuPy's device; else none."""
    if compat.is_cupy_array(x):
        return x.device  # type: ignore[no-any-return]
    if type(x).__module__.startswith("cupy"):  # a cupy.cuda.Device
        return x  # type: ignore[no-any-return]
    return contextlib.nullcontext()
