"""Backend and device selection, and conversion back to NumPy.

This is the only module of xpnn that imports array libraries by name. Every
other module gets its namespace from the arrays it is given
(:func:`array_api_compat.array_namespace`) or from a network that was built
through :func:`namespace`.

Backends are imported lazily: ``import xpnn`` imports neither torch, jax,
dask nor cupy, and not even ``array_api_compat.numpy``.
"""

from __future__ import annotations

import importlib
import os
import re
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from .errors import BackendError

__all__ = [
    "BACKENDS",
    "backend_name",
    "backend_of",
    "dtype_name",
    "namespace",
    "resolve_dtype",
    "to_numpy",
]

#: Backend names accepted by :func:`namespace`, in the order of the README's table.
BACKENDS = ("numpy", "cupy", "torch", "jax", "dask", "array_api_strict", "ndonnx")

_ENV_BACKEND = "XPNN_BACKEND"

# What to install when a backend is missing.
_INSTALL_HINT = {
    "numpy": "pip install numpy",
    "cupy": "pip install 'xpnn[cuda12]' (cupy-cuda12x) or 'xpnn[cuda13]' (cupy-cuda13x), "
    "as nvidia-smi's 'CUDA Version' says",
    "torch": "pip install 'xpnn[torch]'",
    "jax": "pip install 'xpnn[jax]'",
    "dask": "pip install 'xpnn[dask]'",
    "array_api_strict": "pip install 'xpnn[strict]'",
    "ndonnx": "pip install 'xpnn[onnx]'",
}

# The namespace module each backend is used through.
_NAMESPACE_MODULE = {
    "numpy": "array_api_compat.numpy",
    "cupy": "array_api_compat.cupy",
    "torch": "array_api_compat.torch",
    "jax": "jax.numpy",
    "dask": "array_api_compat.dask.array",
    "array_api_strict": "array_api_strict",
    "ndonnx": "ndonnx",
}

# The library that must import for the backend to exist at all.
_LIBRARY = {
    "numpy": "numpy",
    "cupy": "cupy",
    "torch": "torch",
    "jax": "jax",
    "dask": "dask.array",
    "array_api_strict": "array_api_strict",
    "ndonnx": "ndonnx",
}

_CUDA_RE = re.compile(r"^(?:cuda|gpu)(?::(\d+))?$")
_STRICT_DEVICES = ("CPU_DEVICE", "device1", "device2")


def backend_name(backend: str | None = None) -> str:
    """Return the canonical backend name for ``backend``.

    Parameters
    ----------
    backend : str or None
        A name from :data:`BACKENDS` (case-insensitive; ``strict`` and
        ``array-api-strict`` also name ``array_api_strict``). ``None`` reads the
        ``XPNN_BACKEND`` environment variable and falls back to ``"numpy"``.

    Returns
    -------
    str
        One of :data:`BACKENDS`.

    Raises
    ------
    BackendError
        If the name is not a known backend.

    Examples
    --------
    >>> backend_name("Torch")
    'torch'
    >>> backend_name("array-api-strict")
    'array_api_strict'
    """
    if backend is None:
        backend = os.environ.get(_ENV_BACKEND) or "numpy"
    if not isinstance(backend, str):
        raise BackendError(
            f"backend must be a name (str), got {type(backend).__name__}; "
            f"choose one of: {', '.join(BACKENDS)}"
        )
    name = backend.strip().lower().replace("-", "_")
    if name == "strict":
        name = "array_api_strict"
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    return name


def _import_backend(name: str) -> ModuleType:
    try:
        importlib.import_module(_LIBRARY[name])
    except ImportError as err:
        raise BackendError(
            f"backend {name!r} is not installed ({err}); install it with: {_INSTALL_HINT[name]}"
        ) from None
    return importlib.import_module(_NAMESPACE_MODULE[name])


def _cuda_index(device: str) -> int | None:
    """Parse ``cuda``/``cuda:N``; return N (0 for bare ``cuda``) or None if not CUDA."""
    match = _CUDA_RE.match(device)
    if match is None:
        return None
    return int(match.group(1) or 0)


def _cupy_device(index: int) -> Any:
    import cupy

    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDARuntimeError when no driver is present
        count = 0
        reason = f" ({type(err).__name__}: {err})"
    else:
        reason = ""
    if count == 0:
        raise BackendError(
            f"backend 'cupy' needs a CUDA device, but none is visible here{reason}; "
            "use backend 'numpy' (CPU) or run on a machine with an NVIDIA GPU"
        )
    if index >= count:
        raise BackendError(
            f"device 'cuda:{index}' asked for, but cupy sees {count} CUDA "
            f"device(s): cuda:0 .. cuda:{count - 1}"
        )
    return cupy.cuda.Device(index)


def _torch_device(device: str | None) -> Any:
    import torch

    if device is None:
        return torch.device("cpu")
    if device == "cpu":
        return torch.device("cpu")
    index = _cuda_index(device)
    if index is None:
        raise BackendError(
            f"backend 'torch' has no device {device!r}; choose 'cpu', 'cuda' or 'cuda:N'"
        )
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise BackendError(
            f"device {device!r} asked for on backend 'torch', but torch sees no "
            "CUDA device here (torch.cuda.is_available() is False); use device 'cpu'"
        )
    if index >= count:
        raise BackendError(
            f"device {device!r} asked for on backend 'torch', but torch sees "
            f"{count} CUDA device(s): cuda:0 .. cuda:{count - 1}"
        )
    return torch.device("cuda", index)


def _jax_device(device: str | None) -> Any:
    import jax

    if device is None:
        return jax.devices()[0]
    if device == "cpu":
        return jax.devices("cpu")[0]
    index = _cuda_index(device)
    if index is None:
        raise BackendError(
            f"backend 'jax' has no device {device!r}; choose 'cpu', 'cuda' or 'cuda:N'"
        )
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        raise BackendError(
            f"device {device!r} asked for on backend 'jax', but jax sees no GPU "
            "here (install jax[cuda12] on a CUDA machine); use device 'cpu'"
        )
    if index >= len(gpus):
        raise BackendError(
            f"device {device!r} asked for on backend 'jax', but jax sees "
            f"{len(gpus)} GPU(s): cuda:0 .. cuda:{len(gpus) - 1}"
        )
    return gpus[index]


def _strict_device(xp: ModuleType, device: str | None) -> Any:
    if device is None:
        return xp.Device()
    name = "CPU_DEVICE" if device == "cpu" else device
    if name not in _STRICT_DEVICES:
        raise BackendError(
            f"backend 'array_api_strict' has no device {device!r}; choose one of: "
            "cpu, device1, device2 (device1/device2 are simulated devices)"
        )
    return xp.Device(name)


def _cpu_only_device(name: str, device: str | None) -> str:
    if device is None or device == "cpu":
        return "cpu"
    if _cuda_index(device) is not None:
        raise BackendError(
            f"backend {name!r} runs on the CPU only, but device {device!r} was asked "
            "for; use backend 'cupy' or 'torch' for CUDA"
        )
    raise BackendError(f"backend {name!r} has no device {device!r}; its only device is 'cpu'")


def _resolve_device(name: str, xp: ModuleType, device: Any) -> Any:
    if device is not None and not isinstance(device, str):
        # A native device object (torch.device, jax Device, ...): check it works.
        try:
            xp.empty((0,), device=device)
        except Exception as err:
            raise BackendError(f"backend {name!r} cannot use device {device!r}: {err}") from None
        return device
    if isinstance(device, str):
        device = device.strip()
        device = device.lower() if device.lower() in ("cpu", "cuda", "gpu") else device
    if name in ("numpy", "dask"):
        return _cpu_only_device(name, device)
    if name == "ndonnx":
        # ONNX leaves the device to the runtime: ndonnx has one device object.
        _cpu_only_device(name, device)
        return xp.__array_namespace_info__().default_device()
    if name == "cupy":
        if device == "cpu":
            raise BackendError(
                "backend 'cupy' runs on CUDA devices only, but device 'cpu' was asked "
                "for; use backend 'numpy' for the CPU"
            )
        index = 0 if device is None else _cuda_index(device)
        if index is None:
            raise BackendError(
                f"backend 'cupy' has no device {device!r}; choose 'cuda' or 'cuda:N'"
            )
        return _cupy_device(index)
    if name == "torch":
        return _torch_device(device)
    if name == "jax":
        return _jax_device(device)
    return _strict_device(xp, device)


def namespace(backend: str | None = None, device: Any = None) -> tuple[ModuleType, Any]:
    """Return the array namespace and device object for a backend.

    Parameters
    ----------
    backend : str or None
        One of :data:`BACKENDS`. ``None`` reads ``XPNN_BACKEND`` and falls back
        to ``"numpy"``.
    device : str, device object or None
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (mapped to the library's own
        device object), a native device object, or ``None`` for the backend's
        default device (the CPU, except for cupy). ``array_api_strict`` also
        accepts its simulated devices ``"device1"`` and ``"device2"``.

    Returns
    -------
    xp : module
        The array-API namespace (``array_api_compat.numpy``, ``jax.numpy``, ...).
    device : object
        The device object to pass as ``device=`` when creating arrays.

    Raises
    ------
    BackendError
        Unknown backend, backend not installed, no CUDA device visible, or a
        device the backend does not have. The message is one line.

    Examples
    --------
    >>> xp, device = namespace("numpy")
    >>> xp.__name__, device
    ('array_api_compat.numpy', 'cpu')
    >>> namespace("numpy", "cuda")
    Traceback (most recent call last):
    ...
    xpnn.errors.BackendError: backend 'numpy' runs on the CPU only, but device 'cuda' \
was asked for; use backend 'cupy' or 'torch' for CUDA
    """
    name = backend_name(backend)
    xp = _import_backend(name)
    return xp, _resolve_device(name, xp, device)


def backend_of(xp: ModuleType) -> str:
    """Return the backend name of a namespace returned by :func:`namespace`.

    Examples
    --------
    >>> import array_api_strict
    >>> backend_of(array_api_strict)
    'array_api_strict'
    """
    module = xp.__name__
    for name, namespace_module in _NAMESPACE_MODULE.items():
        if module == namespace_module:
            return name
    if array_api_compat.is_numpy_namespace(xp):
        return "numpy"
    if array_api_compat.is_torch_namespace(xp):
        return "torch"
    if array_api_compat.is_cupy_namespace(xp):
        return "cupy"
    if array_api_compat.is_jax_namespace(xp):
        return "jax"
    if array_api_compat.is_dask_namespace(xp):
        return "dask"
    return module


# Floating dtypes xpnn computes in; float16 is outside the array API standard
# but numpy, cupy, torch and jax have it.
_FLOAT_DTYPES = ("float16", "float32", "float64")


def dtype_name(xp: ModuleType, dtype: Any) -> str:
    """Return the name (``"float32"``, ...) of a floating dtype name or object.

    Raises
    ------
    BackendError
        If ``dtype`` is not float16, float32 or float64.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> dtype_name(xp, xp.float64)
    'float64'
    """
    if isinstance(dtype, str):
        if dtype in _FLOAT_DTYPES:
            return dtype
        raise BackendError(f"unknown dtype {dtype!r}; choose one of: {', '.join(_FLOAT_DTYPES)}")
    for name in _FLOAT_DTYPES:
        if getattr(xp, name, None) == dtype:
            return name
    raise BackendError(
        f"dtype {dtype!r} is not a floating dtype xpnn computes in; "
        f"choose one of: {', '.join(_FLOAT_DTYPES)}"
    )


def resolve_dtype(xp: ModuleType, dtype: Any) -> Any:
    """Return the namespace's dtype object for a floating dtype name or object.

    Parameters
    ----------
    xp : module
        Array namespace.
    dtype : str or dtype
        ``"float16"``, ``"float32"`` or ``"float64"``, or the namespace's dtype.

    Raises
    ------
    BackendError
        If the namespace does not have that dtype (``float16`` on
        array_api_strict; ``float64`` on jax without 64-bit mode).

    Examples
    --------
    >>> import array_api_strict as xp
    >>> resolve_dtype(xp, "float32")
    array_api_strict.float32
    """
    dtype = dtype_name(xp, dtype)
    found = getattr(xp, dtype, None)
    if found is None:
        raise BackendError(f"backend {backend_of(xp)!r} has no dtype {dtype!r}")
    if dtype == "float64" and backend_of(xp) == "jax":
        import jax

        if not jax.config.read("jax_enable_x64"):
            raise BackendError(
                "dtype 'float64' on backend 'jax' needs 64-bit mode: set "
                "JAX_ENABLE_X64=1 or call jax.config.update('jax_enable_x64', True)"
            )
    return found


def _is_strict_array(x: Any) -> bool:
    return type(x).__module__.startswith("array_api_strict")


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any backend and device to a NumPy array on the host.

    Dask arrays are computed; CuPy and CUDA tensors are copied to the host;
    array_api_strict arrays on a simulated device are moved to its CPU device
    first. NumPy arrays are returned as they are (no copy).

    Examples
    --------
    >>> import array_api_strict as xp
    >>> x = xp.asarray([1.0, 2.0], device=xp.Device("device1"))
    >>> to_numpy(x)
    array([1., 2.])
    """
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_dask_array(x):
        return to_numpy(x.compute())
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if type(x).__module__.startswith("ndonnx"):
        try:
            return np.asarray(x.unwrap_numpy())
        except ValueError:
            raise BackendError(
                "a lazy ndonnx array has no values to copy to the host; "
                "build it into an ONNX model and run that instead"
            ) from None
    if _is_strict_array(x):
        import array_api_strict

        return np.asarray(x.to_device(array_api_strict.Device("CPU_DEVICE")))
    return np.asarray(x)
