"""Backend names, devices, errors and conversion to NumPy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from optional import import_or_skip

import xpnn


def test_namespace_default_reads_environment(monkeypatch):
    monkeypatch.delenv("XPNN_BACKEND", raising=False)
    xp, device = xpnn.namespace()
    assert xp.__name__ == "array_api_compat.numpy" and device == "cpu"
    monkeypatch.setenv("XPNN_BACKEND", "array_api_strict")
    xp, _ = xpnn.namespace()
    assert xp.__name__ == "array_api_strict"


def test_unknown_backend_lists_valid_names():
    with pytest.raises(xpnn.BackendError) as info:
        xpnn.namespace("tensorflow")
    message = str(info.value)
    assert (
        "'tensorflow'" in message and "numpy, cupy, torch, jax, dask, array_api_strict" in message
    )
    assert "\n" not in message


def test_missing_backend_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail
    with pytest.raises(
        xpnn.BackendError, match=r"'cupy' is not installed.*xpnn\[cuda12\].*xpnn\[cuda13\]"
    ):
        xpnn.namespace("cupy")


@pytest.mark.parametrize("name", ["numpy", "dask"])
def test_cpu_only_backends_refuse_cuda(name):
    if name == "dask":
        import_or_skip("dask.array", "dask")
    with pytest.raises(xpnn.BackendError, match=f"backend '{name}' runs on the CPU only.*'cuda:1'"):
        xpnn.namespace(name, "cuda:1")
    with pytest.raises(xpnn.BackendError, match="no device 'tpu'"):
        xpnn.namespace(name, "tpu")


def test_torch_cuda_without_gpu_is_refused():
    torch = import_or_skip("torch", "torch")

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(xpnn.BackendError, match="torch sees no CUDA device"):
        xpnn.namespace("torch", "cuda")


def test_jax_gpu_without_gpu_is_refused():
    jax = import_or_skip("jax", "jax")

    try:
        jax.devices("gpu")
        pytest.skip("this machine has a GPU for jax")
    except RuntimeError:
        pass
    with pytest.raises(xpnn.BackendError, match="jax sees no GPU"):
        xpnn.namespace("jax", "cuda:0")


def test_cupy_without_gpu_is_refused(monkeypatch):
    """CuPy imports fine on a machine without a GPU: the device count decides."""
    import types

    class FakeRuntimeError(Exception):
        pass

    def no_device():
        raise FakeRuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(xpnn.backends, "_import_backend", lambda name: types.ModuleType("xp"))
    with pytest.raises(xpnn.BackendError, match="'cupy' needs a CUDA device, but none is visible"):
        xpnn.namespace("cupy")


def test_strict_devices():
    xps = import_or_skip("array_api_strict", "array_api_strict")

    assert xpnn.namespace("strict", "device1")[1] == xps.Device("device1")
    assert xpnn.namespace("array-api-strict", "cpu")[1] == xps.Device("CPU_DEVICE")
    with pytest.raises(xpnn.BackendError, match="no device 'device9'"):
        xpnn.namespace("array_api_strict", "device9")


def test_native_device_objects_are_accepted():
    torch = import_or_skip("torch", "torch")

    assert xpnn.namespace("torch", torch.device("cpu"))[1] == torch.device("cpu")


def test_float64_on_jax_needs_x64(monkeypatch):
    jax = import_or_skip("jax", "jax")

    monkeypatch.setattr(jax.config, "read", lambda name: False)
    with pytest.raises(xpnn.BackendError, match="JAX_ENABLE_X64"):
        xpnn.init_network("jax", dtype="float64")


def test_float16_missing_on_strict():
    with pytest.raises(xpnn.BackendError, match="no dtype 'float16'"):
        xpnn.init_network("array_api_strict", dtype="float16")


def test_to_numpy_round_trip(backend, dtype):
    values = np.array([[1.5, -2.0], [0.0, 3.25]], dtype=dtype)
    x = backend.asarray(values)
    backend.assert_native(x)
    back = xpnn.to_numpy(x)
    assert isinstance(back, np.ndarray) and back.dtype == values.dtype
    np.testing.assert_array_equal(back, values)


def test_import_is_light():
    code = (
        "import sys, xpnn; heavy = [m for m in ('torch', 'jax', 'dask', 'cupy', "
        "'array_api_compat.numpy', 'matplotlib', 'pooch', 'safetensors') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
