"""One table of facts about every backend xpnn runs on.

Every other module asks this table (through :func:`facts`,
:func:`facts_of_namespace` and :func:`facts_of_array`) instead of naming
libraries itself. Adding a backend is adding a row here, its device rule in
:mod:`xpnn._backend.devices`, and a test case in ``conftest.py``.

The facts about overflow, subnormals and DLPack were measured with NumPy 2.4,
torch 2.13 (CPU), JAX 0.10 (CPU), dask 2026.8, array-api-strict 2.6 and ndonnx
0.23; the CuPy row follows CuPy's documentation (no GPU was at hand).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import array_api_compat

__all__ = ["BACKENDS", "TABLE", "BackendFacts", "facts", "facts_of_array", "facts_of_namespace"]

Overflow = Literal["silent", "warns", "warns-lazily"]
FastForwardKind = Literal["jit", "tanh-fold", ""]


def _module_is(prefix: str) -> Callable[[Any], bool]:
    def check(obj: Any) -> bool:
        module = obj.__name__ if isinstance(obj, ModuleType) else type(obj).__module__
        return module == prefix or module.startswith(prefix + ".")

    return check


@dataclass(frozen=True)
class BackendFacts:
    """What xpnn knows about one backend.

    Attributes
    ----------
    name : str
        The name :func:`xpnn.namespace` accepts.
    library : str
        The module that must import for the backend to exist.
    namespace_module : str
        The array-API namespace xpnn computes with.
    extra : str
        The ``pip install 'xpnn[extra]'`` that brings the library.
    install : str
        The full install hint shown when the library is missing.
    devices : str
        The device names :func:`xpnn.namespace` accepts, for messages and docs.
    default_device : str
        The device ``device=None`` means.
    cpu : bool
        Whether the backend computes on the CPU.
    gpu : bool
        Whether the backend can compute on CUDA devices.
    many_devices : bool
        Whether arrays of this backend can live on more than one device (so
        inputs must be compared with the network's device).
    default_float, default_int : str
        The namespace's default floating and integer dtypes (JAX: without
        64-bit mode; xpnn's test suite turns 64-bit mode on).
    lazy : bool
        Whether results are computed only when asked for (dask) or are
        symbolic (ndonnx arguments).
    overflow : {"silent", "warns", "warns-lazily"}
        What ``exp`` overflowing to ``inf`` does: nothing, a RuntimeWarning
        at once (NumPy underneath), or a RuntimeWarning when a lazy graph is
        computed, outside any guard.
    flushes_subnormals : bool
        Whether float32/float64 results below the smallest normal number
        become 0 (XLA on CPU flushes them; float16 is not flushed).
    fast_forward : {"jit", "tanh-fold", ""}
        The network forward pass of its own that :mod:`xpnn._compiled` builds:
        ``"jit"`` where the library compiles a whole pass (``jax.jit``),
        ``"tanh-fold"`` where each elementwise operation is its own pass over
        memory (NumPy) and folding sigmoid layers into ``tanh`` saves three of
        four, ``""`` for the plain layer loop.
    native_sigmoid : bool
        Whether the namespace's own ``sigmoid`` gives the book formula's
        values (the same 0 below the overflow point) in one kernel instead of
        four passes (torch on the CPU: measured equal in float32 and float64).
    rounding_depends_on_position : bool
        Whether equal inputs can give results one unit in the last place
        apart depending on where they sit in the array (onnxruntime's float64
        ``exp`` rounds differently in the vectorised body and the tail).
    eager_at_scale : bool
        Whether eager values are fast enough for real workloads (ndonnx
        propagates values by running each operation as its own onnxruntime
        model: right for tracing and tests, far too slow for 10,000 images).
    dlpack_from : tuple of str
        The backends whose arrays this backend imports with ``from_dlpack``
        (on the CPU, or GPU to GPU); anything else travels through host memory.
    """

    name: str
    library: str
    namespace_module: str
    extra: str
    install: str
    devices: str
    default_device: str
    cpu: bool
    gpu: bool
    many_devices: bool
    default_float: str
    default_int: str
    lazy: bool
    overflow: Overflow
    flushes_subnormals: bool
    fast_forward: FastForwardKind
    native_sigmoid: bool
    rounding_depends_on_position: bool
    eager_at_scale: bool
    dlpack_from: tuple[str, ...]
    is_namespace: Callable[[Any], bool]
    is_array: Callable[[Any], bool]


TABLE: tuple[BackendFacts, ...] = (
    BackendFacts(
        name="numpy",
        library="numpy",
        namespace_module="array_api_compat.numpy",
        extra="",
        install="pip install numpy",
        devices="'cpu'",
        default_device="cpu",
        cpu=True,
        gpu=False,
        many_devices=False,
        default_float="float64",
        default_int="int64",
        lazy=False,
        overflow="warns",
        flushes_subnormals=False,
        fast_forward="tanh-fold",
        native_sigmoid=False,
        rounding_depends_on_position=False,
        eager_at_scale=True,
        dlpack_from=("numpy", "torch", "jax", "array_api_strict"),
        is_namespace=array_api_compat.is_numpy_namespace,
        is_array=array_api_compat.is_numpy_array,
    ),
    BackendFacts(
        name="cupy",
        library="cupy",
        namespace_module="array_api_compat.cupy",
        extra="cuda12",
        install="pip install 'xpnn[cuda12]' (cupy-cuda12x) or 'xpnn[cuda13]' (cupy-cuda13x), "
        "as nvidia-smi's 'CUDA Version' says",
        devices="'cuda', 'cuda:N' or a cupy.cuda.Device",
        default_device="cuda:0",
        cpu=False,
        gpu=True,
        many_devices=True,
        default_float="float64",
        default_int="int64",
        lazy=False,
        overflow="silent",
        flushes_subnormals=False,
        fast_forward="",
        native_sigmoid=False,
        rounding_depends_on_position=False,
        eager_at_scale=True,
        dlpack_from=("cupy", "torch", "jax"),
        is_namespace=array_api_compat.is_cupy_namespace,
        is_array=array_api_compat.is_cupy_array,
    ),
    BackendFacts(
        name="torch",
        library="torch",
        namespace_module="array_api_compat.torch",
        extra="torch",
        install="pip install 'xpnn[torch]'",
        devices="'cpu', 'cuda', 'cuda:N' or a torch.device of type cpu or cuda",
        default_device="cpu",
        cpu=True,
        gpu=True,
        many_devices=True,
        default_float="float32",
        default_int="int64",
        lazy=False,
        overflow="silent",
        flushes_subnormals=False,
        fast_forward="",
        native_sigmoid=True,
        rounding_depends_on_position=False,
        eager_at_scale=True,
        dlpack_from=("numpy", "cupy", "torch", "jax", "array_api_strict"),
        is_namespace=array_api_compat.is_torch_namespace,
        is_array=array_api_compat.is_torch_array,
    ),
    BackendFacts(
        name="jax",
        library="jax",
        namespace_module="jax.numpy",
        extra="jax",
        install="pip install 'xpnn[jax]' (jax[cuda12] for NVIDIA GPUs)",
        devices="'cpu', 'cpu:N', 'cuda', 'cuda:N' or a jax.Device",
        default_device="cpu:0",
        cpu=True,
        gpu=True,
        many_devices=True,
        default_float="float32",
        default_int="int32",
        lazy=False,
        overflow="silent",
        flushes_subnormals=True,
        fast_forward="jit",
        native_sigmoid=False,
        rounding_depends_on_position=False,
        eager_at_scale=True,
        dlpack_from=("numpy", "cupy", "torch", "jax", "array_api_strict"),
        is_namespace=array_api_compat.is_jax_namespace,
        is_array=array_api_compat.is_jax_array,
    ),
    BackendFacts(
        name="dask",
        library="dask.array",
        namespace_module="array_api_compat.dask.array",
        extra="dask",
        install="pip install 'xpnn[dask]'",
        devices="'cpu'",
        default_device="cpu",
        cpu=True,
        gpu=False,
        many_devices=False,
        default_float="float64",
        default_int="int64",
        lazy=True,
        overflow="warns-lazily",
        flushes_subnormals=False,
        fast_forward="",
        native_sigmoid=False,
        rounding_depends_on_position=False,
        eager_at_scale=True,
        dlpack_from=(),
        is_namespace=array_api_compat.is_dask_namespace,
        is_array=array_api_compat.is_dask_array,
    ),
    BackendFacts(
        name="array_api_strict",
        library="array_api_strict",
        namespace_module="array_api_strict",
        extra="strict",
        install="pip install 'xpnn[strict]'",
        devices="'cpu', 'device1', 'device2' (simulated) or an array_api_strict.Device",
        default_device="CPU_DEVICE",
        cpu=True,
        gpu=False,
        many_devices=True,
        default_float="float64",
        default_int="int64",
        lazy=False,
        overflow="warns",
        flushes_subnormals=False,
        fast_forward="",
        native_sigmoid=False,
        rounding_depends_on_position=False,
        eager_at_scale=True,
        dlpack_from=("numpy", "torch", "jax", "array_api_strict"),
        is_namespace=array_api_compat.is_array_api_strict_namespace,
        is_array=_module_is("array_api_strict"),
    ),
    BackendFacts(
        name="ndonnx",
        library="ndonnx",
        namespace_module="ndonnx",
        extra="onnx",
        install="pip install 'xpnn[onnx]'",
        devices="'cpu' (ndonnx's one device)",
        default_device="cpu",
        cpu=True,
        gpu=False,
        many_devices=False,
        default_float="float64",
        default_int="int64",
        lazy=True,
        overflow="silent",
        flushes_subnormals=False,
        fast_forward="",
        native_sigmoid=False,
        rounding_depends_on_position=True,
        eager_at_scale=False,
        dlpack_from=(),
        is_namespace=_module_is("ndonnx"),
        is_array=_module_is("ndonnx"),
    ),
)

#: Backend names accepted by :func:`xpnn.namespace`, in the order of the README's table.
BACKENDS: tuple[str, ...] = tuple(row.name for row in TABLE)

_BY_NAME = {row.name: row for row in TABLE}


def facts(name: str) -> BackendFacts:
    """Return the row of a canonical backend name.

    Examples
    --------
    >>> facts("torch").default_float
    'float32'
    """
    return _BY_NAME[name]


def facts_of_namespace(xp: ModuleType) -> BackendFacts | None:
    """Return the row whose namespace ``xp`` is, or None for an unknown namespace.

    Examples
    --------
    >>> import array_api_strict
    >>> facts_of_namespace(array_api_strict).name
    'array_api_strict'
    """
    for row in TABLE:
        if row.is_namespace(xp):
            return row
    return None


def facts_of_array(x: Any) -> BackendFacts | None:
    """Return the row of the library ``x`` belongs to, or None.

    Examples
    --------
    >>> import numpy as np
    >>> facts_of_array(np.zeros(2)).name
    'numpy'
    """
    for row in TABLE:
        if row.is_array(x):
            return row
    return None
