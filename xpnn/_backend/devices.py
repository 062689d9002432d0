"""Device names and objects, one canonical object per backend and device.

:func:`resolve_device` turns what a user passes as ``device=`` (a name such as
``"cpu"``, ``"cuda:1"``, ``"cpu:1"``, ``"device1"``, a native device object,
or ``None``) into the one object that stands for that device on that backend,
so that devices compare equal exactly when they are the same device:
``torch.device("cuda")`` becomes ``torch.device("cuda", 0)``, a
``cupy.cuda.Device`` is checked against the visible GPUs, and objects of the
wrong kind (``namespace("cupy", object())``) are refused.

``device=None`` means the CPU on every backend except cupy, which has no CPU
device and means ``cuda:0``. In particular JAX's ``None`` is
``jax.devices("cpu")[0]``, not ``jax.devices()[0]`` (the GPU where a CUDA
build of JAX is installed).

:func:`device_scope` is the context in which CuPy must compute: CuPy runs
kernels and allocates results on its *current* device, so every computation
for a network or an input on ``cuda:1`` runs inside ``with Device(1):``.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from types import ModuleType
from typing import Any

from ..errors import BackendError
from .table import facts

__all__ = ["array_device_scope", "device_scope", "resolve_device"]

_CUDA_RE = re.compile(r"^(?:cuda|gpu)(?::(\d+))?$")
_CPU_RE = re.compile(r"^cpu(?::(\d+))?$")
_STRICT_DEVICES = ("CPU_DEVICE", "device1", "device2")
_NO_SCOPE = contextlib.nullcontext()


def _cuda_index(device: str) -> int | None:
    """Parse ``cuda``/``gpu``/``cuda:N``; return N (0 for bare ``cuda``), None if not CUDA."""
    match = _CUDA_RE.match(device)
    if match is None:
        return None
    return int(match.group(1) or 0)


def _cpu_index(device: str) -> int | None:
    """Parse ``cpu``/``cpu:N``; return N (0 for bare ``cpu``), None if not a CPU name."""
    match = _CPU_RE.match(device)
    if match is None:
        return None
    return int(match.group(1) or 0)


def _refuse(name: str, device: Any) -> BackendError:
    return BackendError(
        f"backend {name!r} has no device {device!r}; choose one of: {facts(name).devices}"
    )


def _cupy_device(index: int) -> Any:
    cupy = importlib.import_module("cupy")

    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
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
    if not 0 <= index < count:
        raise BackendError(
            f"device 'cuda:{index}' asked for, but cupy sees {count} CUDA "
            f"device(s): cuda:0 .. cuda:{count - 1}"
        )
    return cupy.cuda.Device(index)


def _cupy(device: Any) -> Any:
    if device is None:
        return _cupy_device(0)
    if isinstance(device, str):
        if device == "cpu":
            raise BackendError(
                "backend 'cupy' runs on CUDA devices only, but device 'cpu' was asked "
                "for; use backend 'numpy' for the CPU"
            )
        index = _cuda_index(device)
        if index is None:
            raise _refuse("cupy", device)
        return _cupy_device(index)
    cupy = importlib.import_module("cupy")

    if type(device) is not cupy.cuda.Device:
        raise _refuse("cupy", device)
    return _cupy_device(int(device.id))


def _torch_cuda(torch: ModuleType, index: int, shown: Any) -> Any:
    count = int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    if count == 0:
        raise BackendError(
            f"device {str(shown)!r} asked for on backend 'torch', but torch sees no "
            "CUDA device here (torch.cuda.is_available() is False); use device 'cpu'"
        )
    if index >= count:
        raise BackendError(
            f"device {str(shown)!r} asked for on backend 'torch', but torch sees "
            f"{count} CUDA device(s): cuda:0 .. cuda:{count - 1}"
        )
    return torch.device("cuda", index)


def _torch(device: Any) -> Any:
    import torch

    if device is None or device == "cpu":
        return torch.device("cpu")
    if isinstance(device, str):
        index = _cuda_index(device)
        if index is None:
            raise _refuse("torch", device)
        return _torch_cuda(torch, index, device)
    if not isinstance(device, torch.device):
        raise _refuse("torch", device)
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        return _torch_cuda(torch, device.index or 0, device)
    raise _refuse("torch", device)


def _jax_list(jax: ModuleType, platform: str) -> list[Any]:
    try:
        return list(jax.devices(platform))
    except RuntimeError:  # no such platform here
        return []


def _jax(device: Any) -> Any:
    import jax

    if device is None:
        return _jax_list(jax, "cpu")[0]
    if not isinstance(device, str):
        if not isinstance(device, jax.Device):
            raise _refuse("jax", device)
        if device not in _jax_list(jax, device.platform):
            raise BackendError(f"backend 'jax' cannot use device {device!r}: jax does not list it")
        return device
    cpu = _cpu_index(device)
    if cpu is not None:
        cpus = _jax_list(jax, "cpu")
        if cpu >= len(cpus):
            raise BackendError(
                f"device {device!r} asked for on backend 'jax', but jax sees {len(cpus)} "
                f"CPU device(s): cpu:0 .. cpu:{len(cpus) - 1} (more with XLA_FLAGS="
                "--xla_force_host_platform_device_count=N before jax is imported)"
            )
        return cpus[cpu]
    index = _cuda_index(device)
    if index is None:
        raise _refuse("jax", device)
    gpus = _jax_list(jax, "gpu")
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


def _strict(device: Any) -> Any:
    import array_api_strict

    if device is None or device == "cpu":
        return array_api_strict.Device("CPU_DEVICE")
    if isinstance(device, array_api_strict.Device):
        return device  # only array_api_strict can make one: a valid device
    if not isinstance(device, str) or device not in _STRICT_DEVICES:
        raise _refuse("array_api_strict", device)
    return array_api_strict.Device(device)


def _ndonnx(device: Any) -> Any:
    import ndonnx

    (only,) = ndonnx.__array_namespace_info__().devices()
    if device is None or device == "cpu" or device is only:
        return only
    raise _refuse("ndonnx", device)


def _cpu_only(name: str, device: Any) -> str:
    if device is None or device == "cpu":
        return "cpu"
    if isinstance(device, str) and _cuda_index(device) is not None:
        raise BackendError(
            f"backend {name!r} runs on the CPU only, but device {device!r} was asked "
            "for; use backend 'cupy' or 'torch' for CUDA"
        )
    raise BackendError(f"backend {name!r} has no device {device!r}; its only device is 'cpu'")


def resolve_device(name: str, device: Any) -> Any:
    """Return the canonical device object of backend ``name`` for ``device``.

    Parameters
    ----------
    name : str
        A canonical backend name (see :data:`xpnn.BACKENDS`).
    device : str, native device object or None
        ``None`` is the CPU on every backend except cupy (``cuda:0``).

    Raises
    ------
    BackendError
        A device the backend does not have, or that is not visible here.

    Examples
    --------
    >>> resolve_device("numpy", None)
    'cpu'
    >>> import array_api_strict
    >>> resolve_device("array_api_strict", array_api_strict.Device("device1"))
    array_api_strict.Device('device1')
    """
    if isinstance(device, str):
        device = device.strip()
        if device.lower() in ("cpu", "cuda", "gpu") or device.lower().startswith(("cpu:", "cuda:")):
            device = device.lower()
    if name in ("numpy", "dask"):
        return _cpu_only(name, device)
    if name == "cupy":
        return _cupy(device)
    if name == "torch":
        return _torch(device)
    if name == "jax":
        return _jax(device)
    if name == "ndonnx":
        return _ndonnx(device)
    return _strict(device)


def device_scope(name: str, device: Any) -> contextlib.AbstractContextManager[Any]:
    """The context in which computation for ``device`` of backend ``name`` must run.

    CuPy's device (``with cupy.cuda.Device(n):``); nothing for other backends,
    which place results with the operands.

    Examples
    --------
    >>> with device_scope("numpy", "cpu"):
    ...     pass
    """
    if name == "cupy":
        scope: contextlib.AbstractContextManager[Any] = device
        return scope
    return _NO_SCOPE


def array_device_scope(x: Any) -> contextlib.AbstractContextManager[Any]:
    """The device scope of an array's own device (see :func:`device_scope`).

    Examples
    --------
    >>> import numpy as np
    >>> with array_device_scope(np.zeros(2)):
    ...     pass
    """
    module = type(x).__module__
    if module.startswith("cupy"):
        scope: contextlib.AbstractContextManager[Any] = x.device
        return scope
    return _NO_SCOPE
