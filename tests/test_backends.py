"""Backend names, devices, errors and conversion to NumPy."""

from __future__ import annotations

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


def fake_devices(monkeypatch, name, devices):
    """Make backend ``name``'s namespace report ``devices`` (any machine, GPU or not)."""
    real = xpnn.backends._devices

    def devices_of(backend):
        if backend != name:
            return real(backend)
        return tuple((xpnn.backends._label(d), d) for d in devices)

    monkeypatch.setattr(xpnn.backends, "_devices", devices_of)


@pytest.mark.parametrize("name", ["numpy", "dask"])
def test_cpu_only_backends_refuse_cuda(name):
    if name == "dask":
        import_or_skip("dask.array", "dask")
    with pytest.raises(xpnn.BackendError, match=f"'{name}' has no device 'cuda:1'.*CPU only"):
        xpnn.namespace(name, "cuda:1")
    with pytest.raises(xpnn.BackendError, match="no device 'tpu'"):
        xpnn.namespace(name, "tpu")


def test_torch_cuda_without_gpu_is_refused(monkeypatch):
    torch = import_or_skip("torch", "torch")

    fake_devices(monkeypatch, "torch", [torch.device("cpu")])
    with pytest.raises(xpnn.BackendError, match=r"no device 'cuda' \(devices: \['cpu'\]\)"):
        xpnn.namespace("torch", "cuda")


def test_jax_gpu_without_gpu_is_refused(monkeypatch):
    jax = import_or_skip("jax", "jax")

    fake_devices(monkeypatch, "jax", jax.devices("cpu"))
    with pytest.raises(xpnn.BackendError, match=r"no device 'cuda:0'.*no such CUDA device"):
        xpnn.namespace("jax", "cuda:0")


class FakeCudaDevice:
    """A stand-in for ``cupy.cuda.Device`` (no CUDA needed)."""

    __module__ = "cupy.cuda"
    entered: list = []  # noqa: RUF012

    def __init__(self, index=0):
        self.id = index

    def __eq__(self, other):
        return type(other) is FakeCudaDevice and other.id == self.id

    __hash__ = object.__hash__

    def __repr__(self):
        return f"<CUDA Device {self.id}>"

    def __enter__(self):
        FakeCudaDevice.entered.append(self.id)
        return self

    def __exit__(self, *exc):
        return False


def fake_cupy(monkeypatch, devices):
    """CuPy and array-api-compat's cupy namespace as stand-ins, reporting ``devices``."""
    import types

    def report():
        if isinstance(devices, Exception):
            raise devices
        return devices

    info = types.SimpleNamespace(devices=report)
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(Device=FakeCudaDevice)
    fake.ndarray = type("ndarray", (), {"__module__": "cupy", "device": FakeCudaDevice(1)})
    namespace = types.ModuleType("array_api_compat.cupy")
    namespace.__array_namespace_info__ = lambda: info
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "array_api_compat.cupy", namespace)
    xpnn.backends._devices.cache_clear()
    monkeypatch.setattr(xpnn.backends, "_devices", xpnn.backends._devices.__wrapped__)
    return fake


def test_cupy_without_gpu_is_refused(monkeypatch):
    """CuPy imports fine on a machine without a GPU: its device list decides."""

    class FakeRuntimeError(Exception):
        pass

    fake_cupy(monkeypatch, FakeRuntimeError("cudaErrorNoDevice: no CUDA-capable device"))
    with pytest.raises(xpnn.BackendError, match=r"'cupy' sees no device here.*cudaErrorNoDevice"):
        xpnn.namespace("cupy")


def test_cupy_devices_are_validated_and_normalised(monkeypatch):
    cupy = fake_cupy(monkeypatch, [FakeCudaDevice(0), FakeCudaDevice(1)])
    assert xpnn.namespace("cupy")[1] == cupy.cuda.Device(0)
    assert xpnn.namespace("cupy", "cuda:1")[1] == cupy.cuda.Device(1)
    assert xpnn.namespace("cupy", cupy.cuda.Device(1))[1] == cupy.cuda.Device(1)
    for bad in (object(), 1, "tpu", cupy.cuda.Device(2), "cuda:5"):
        with pytest.raises(xpnn.BackendError, match="backend 'cupy' has no device"):
            xpnn.namespace("cupy", bad)


def test_cupy_computes_inside_the_device_scope(monkeypatch):
    """Computation for a CuPy array or device runs in that device's scope."""
    cupy = fake_cupy(monkeypatch, [FakeCudaDevice(0), FakeCudaDevice(1)])
    device = cupy.cuda.Device(1)
    assert xpnn.backends.device_scope(device) is device
    assert xpnn.backends.device_scope(cupy.ndarray()) == cupy.cuda.Device(1)
    with xpnn.backends.device_scope(np.zeros(1)):  # a no-op elsewhere
        pass


def test_strict_devices():
    xps = import_or_skip("array_api_strict", "array_api_strict")

    assert xpnn.namespace("strict", "device1")[1] == xps.Device("device1")
    assert xpnn.namespace("array-api-strict", "cpu")[1] == xps.Device("CPU_DEVICE")
    with pytest.raises(xpnn.BackendError, match="no device 'device9'"):
        xpnn.namespace("array_api_strict", "device9")


def test_every_device_the_library_reports_is_accepted_by_name():
    """Devices come from the namespace: a library's new device needs no change to xpnn."""
    xps = import_or_skip("array_api_strict", "array_api_strict")

    for device in xps.__array_namespace_info__().devices():
        name = xpnn.backends._label(device)
        assert xpnn.namespace("array_api_strict", name)[1] == device
        assert xpnn.namespace("array_api_strict", device)[1] == device


def test_native_device_objects_are_accepted():
    torch = import_or_skip("torch", "torch")

    assert xpnn.namespace("torch", torch.device("cpu"))[1] == torch.device("cpu")


def test_float64_on_jax_needs_x64():
    jax = import_or_skip("jax", "jax")

    enabled = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(xpnn.BackendError, match=r"no dtype 'float64'.*JAX_ENABLE_X64"):
            xpnn.init_network("jax", dtype="float64")
    finally:
        jax.config.update("jax_enable_x64", enabled)


def test_float16_missing_on_strict():
    with pytest.raises(xpnn.BackendError, match="no dtype 'float16'"):
        xpnn.init_network("array_api_strict", dtype="float16")


@pytest.mark.parametrize("device", ["no_float64", "no_x64"])
def test_a_dtype_the_device_lacks_is_refused_up_front(device):
    import_or_skip("array_api_strict", "array_api_strict")
    with pytest.raises(xpnn.BackendError, match=f"device {device} .* no dtype 'float64'.*float32"):
        xpnn.init_network("array_api_strict", device, "float64")


def test_torch_mps_is_float32_only(monkeypatch):
    """Apple's MPS has no float64: refused up front (a stand-in device where there is no MPS)."""
    torch = import_or_skip("torch", "torch")

    import types

    mps = torch.device("mps")
    fake_devices(monkeypatch, "torch", [torch.device("cpu"), mps])
    xp, device = xpnn.namespace("torch", "mps")
    every = {"float32": torch.float32, "float64": torch.float64}  # what torch's table lists
    info = types.SimpleNamespace(dtypes=lambda device, kind: every)
    monkeypatch.setattr(xp, "__array_namespace_info__", lambda: info)
    assert device == mps
    assert xpnn.backends.check_dtype(xp, device, "float32") == "float32"
    with pytest.raises(xpnn.BackendError, match="device mps of backend 'torch' has no dtype"):
        xpnn.backends.check_dtype(xp, device, "float64")


# -- one canonical device object per device --------------------------------------------


def test_torch_devices_are_normalised(monkeypatch):
    torch = import_or_skip("torch", "torch")

    assert xpnn.namespace("torch", torch.device("cpu"))[1] == torch.device("cpu")
    for bad in (object(), 1, torch.device("meta"), "tpu"):
        with pytest.raises(xpnn.BackendError, match="backend 'torch' has no device"):
            xpnn.namespace("torch", bad)
    cuda = [torch.device("cuda", 0), torch.device("cuda", 1)]
    fake_devices(monkeypatch, "torch", [torch.device("cpu"), *cuda])  # no GPU needed
    for name in ("cuda", torch.device("cuda"), "cuda:0", torch.device("cuda", 0), "GPU"):
        device = xpnn.namespace("torch", name)[1]
        assert device == torch.device("cuda", 0) and device.index == 0, name
    assert xpnn.namespace("torch", torch.device("cuda:1"))[1] == torch.device("cuda", 1)
    with pytest.raises(xpnn.BackendError, match=r"no device .*'cuda:0', 'cuda:1'"):
        xpnn.namespace("torch", torch.device("cuda", 2))


def test_jax_devices_are_the_listed_objects():
    jax = import_or_skip("jax", "jax")

    cpus = jax.devices("cpu")
    assert xpnn.namespace("jax", "cpu")[1] is cpus[0]
    assert xpnn.namespace("jax", cpus[-1])[1] is cpus[-1]
    assert xpnn.namespace("jax", f"cpu:{len(cpus) - 1}")[1] is cpus[-1]
    with pytest.raises(xpnn.BackendError, match=f"no device 'cpu:{len(cpus)}'.*XLA_FLAGS"):
        xpnn.namespace("jax", f"cpu:{len(cpus)}")
    for bad in (object(), 0, "tpu"):
        with pytest.raises(xpnn.BackendError, match="backend 'jax' has no device"):
            xpnn.namespace("jax", bad)


def test_device_none_is_the_cpu_even_where_jax_lists_a_gpu_first(monkeypatch):
    """``device=None`` is the CPU on every backend but cupy, whatever JAX lists first."""
    jax = import_or_skip("jax", "jax")

    class FakeGpu:
        def __str__(self):
            return "cuda:0"

    cpu = jax.devices("cpu")[0]
    fake_devices(monkeypatch, "jax", [FakeGpu(), cpu])
    device = xpnn.namespace("jax")[1]
    assert device is cpu
    net = xpnn.init_network("jax", dtype="float32")
    assert net.forward([1.0, 0.5]).devices() == {cpu}


def test_strict_device_objects_and_names():
    xps = import_or_skip("array_api_strict", "array_api_strict")

    assert xpnn.namespace("array_api_strict", xps.Device("device2"))[1] == xps.Device("device2")
    assert xpnn.namespace("array_api_strict", "CPU_DEVICE")[1] == xps.Device("CPU_DEVICE")
    with pytest.raises(xpnn.BackendError, match="no device"):
        xpnn.namespace("array_api_strict", object())


# -- JAX matrix products at full precision ------------------------------------------------


def test_jax_networks_ask_for_highest_precision_products():
    """JAX would use TF32 on a GPU by default; every product the network makes asks for HIGHEST."""
    jax = import_or_skip("jax", "jax")

    net = xpnn.init_network("jax", dtype="float32")
    jaxpr = str(jax.make_jaxpr(net.forward)(jax.numpy.ones((4, 2), dtype="float32")))
    assert jaxpr.count("dot_general[") == 3
    assert jaxpr.count("precision=(Precision.HIGHEST, Precision.HIGHEST)") == 3, jaxpr


def test_products_match_numpy_to_float32_tolerance(backend):
    """The same tolerance on every backend (jax-cuda included, where TF32 would fail it)."""
    if not backend.has_dtype("float32"):
        pytest.skip("no float32")
    rng = np.random.default_rng(7)
    params = {"W1": rng.normal(size=(64, 50)), "b1": rng.normal(size=50)}
    params |= {"W2": rng.normal(size=(50, 10)), "b2": rng.normal(size=10)}
    x = rng.normal(size=(32, 64)).astype(np.float32)
    reference = xpnn.Network(params, dtype="float64").forward(x.astype(np.float64))
    net = xpnn.Network(params, backend=backend.name, device=backend.device, dtype="float32")
    got = xpnn.to_numpy(net.forward(backend.asarray(x)))
    np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-5)


# -- to_numpy ---------------------------------------------------------------------------


def test_to_numpy_returns_a_copy(backend):
    x = backend.asarray([1.0, 2.0], "float64" if backend.has_dtype("float64") else "float32")
    first = xpnn.to_numpy(x)
    first[0] = 99.0  # a view would change x (or fail: read-only)
    assert xpnn.to_numpy(x)[0] == 1.0
    assert first.flags.owndata and first.flags.writeable


def test_to_numpy_copies_numpy_too():
    x = np.arange(3.0)
    y = xpnn.to_numpy(x)
    assert not np.shares_memory(x, y)
    assert xpnn.to_numpy(np.float32(2.5)).dtype == np.float32


@pytest.mark.parametrize("bad", ["1.0", {"a": 1}, None, [1.0, 2.0], object()])
def test_to_numpy_refuses_non_arrays(bad):
    with pytest.raises(TypeError, match="expected an array"):
        xpnn.to_numpy(bad)


def test_to_numpy_refuses_matrix_and_masked():
    with pytest.raises(TypeError, match="masked"):
        xpnn.to_numpy(np.ma.masked_array([1.0, 2.0], mask=[0, 1]))
    with pytest.warns(PendingDeprecationWarning):
        matrix = np.matrix([[1.0, 2.0]])
    with pytest.raises(TypeError, match=r"numpy\.matrix"):
        xpnn.to_numpy(matrix)


# -- moving arrays: DLPack first, host memory last ---------------------------------------


def aligned(n, dtype=np.float32, alignment=64):
    """A NumPy array whose buffer starts on an ``alignment``-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(n + alignment // itemsize, dtype)
    offset = (-raw.ctypes.data % alignment) // itemsize
    out = raw[offset : offset + n]
    out[...] = np.arange(n, dtype=dtype)
    assert out.ctypes.data % alignment == 0
    return out


def pointer(x):
    """The address of an array's first element, for NumPy, torch and JAX arrays."""
    if isinstance(x, np.ndarray):
        return x.ctypes.data
    if hasattr(x, "data_ptr"):
        return x.data_ptr()
    return x.unsafe_buffer_pointer()


@pytest.fixture
def host_copies(monkeypatch):
    """Count the moves that went through host memory (or made a host copy)."""
    from xpnn import _moving as moving

    calls = []
    for name in ("_through_host", "_host_copy"):
        original = getattr(moving, name)

        def counting(*args, _original=original, _name=name):
            calls.append(_name)
            return _original(*args)

        monkeypatch.setattr(moving, name, counting)
    return calls


def move(x, backend, device=None):
    from xpnn._moving import move as move_array

    xp, dev = xpnn.namespace(backend, device)
    supported = tuple(xp.__array_namespace_info__().dtypes(device=dev, kind=None))
    return move_array(x, xp, dev, supported, "float32")


@pytest.mark.parametrize(
    ("source", "target"),
    [("numpy", "torch"), ("torch", "numpy"), ("numpy", "jax"), ("jax", "numpy"), ("torch", "jax")],
)
def test_dlpack_moves_share_memory(source, target, host_copies):
    """Measured zero-copy pairs on the CPU: the moved array is the same memory."""
    for name in {source, target} - {"numpy"}:
        import_or_skip(name, name)
    x = aligned(1024)
    if source != "numpy":
        x = move(x, source)
    y = move(x, target)
    assert pointer(y) == pointer(x), f"{source} -> {target} copied"
    assert host_copies == []
    np.testing.assert_array_equal(xpnn.to_numpy(y), np.arange(1024, dtype=np.float32))


def test_unaligned_numpy_to_jax_is_copied_by_jax_not_through_host(host_copies):
    import_or_skip("jax", "jax")
    x = aligned(1025)[1:]  # 4 bytes past a 64-byte boundary
    y = move(x, "jax")
    assert pointer(y) != pointer(x)  # JAX copies what is not 64-byte aligned
    assert host_copies == []
    np.testing.assert_array_equal(xpnn.to_numpy(y), x)


@pytest.mark.parametrize("target", ["torch", "jax", "array_api_strict", "dask", "ndonnx"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: np.arange(12.0).reshape(3, 4)[:, ::-1],  # negative strides (torch would abort)
        lambda: np.arange(12.0).reshape(3, 4)[::-1],
        lambda: np.arange(12.0, dtype=">f8").reshape(3, 4),  # big-endian
        lambda: np.arange(12.0, dtype=np.longdouble).reshape(3, 4),
        lambda: np.arange(12.0, dtype=np.float16).reshape(3, 4),
        lambda: np.broadcast_to(np.arange(4.0), (3, 4)),  # zero strides
        lambda: np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    ],
    ids=[
        "reversed-columns",
        "reversed-rows",
        "big-endian",
        "longdouble",
        "float16",
        "broadcast",
        "fortran",
    ],
)
def test_awkward_numpy_inputs_are_moved_with_one_host_copy(target, make, host_copies):
    import_or_skip(
        {"array_api_strict": "array_api_strict", "dask": "dask.array"}.get(target, target), target
    )
    x = make()
    y = move(x, target)
    assert len(host_copies) <= 1 + (target in ("dask", "ndonnx")), host_copies
    np.testing.assert_array_equal(xpnn.to_numpy(y).astype(np.float64), x.astype(np.float64))


def test_dlpack_and_host_paths_give_identical_results(backend, monkeypatch):
    """Forcing every move through host memory changes nothing in the results."""
    from xpnn import _moving as moving

    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 2))
    net = xpnn.init_network(backend.name, backend.device, "float32")
    direct = xpnn.to_numpy(net.forward(x))

    def refuse(*args):
        raise BufferError("no DLPack in this test")

    monkeypatch.setattr(moving, "_from_dlpack", refuse)
    np.testing.assert_array_equal(xpnn.to_numpy(net.forward(x)), direct)


# -- a real second device: jax cpu:1 ---------------------------------------------------------


def jax_cpu1():
    jax = import_or_skip("jax", "jax")
    cpus = jax.devices("cpu")
    if len(cpus) < 2:
        pytest.skip("jax has one CPU device here (XLA_FLAGS set before conftest could)")
    return jax, cpus


@pytest.mark.parametrize("hidden", ["sigmoid", "relu"])
def test_network_on_cpu1_never_computes_on_cpu0(hidden):
    jax, cpus = jax_cpu1()
    cpu0, cpu1 = cpus[:2]
    params = {"W1": [[1.0, -1.0], [0.5, 2.0]], "b1": [0.1, -0.2]}
    params |= {"W2": [[1.0], [-1.0]], "b2": [0.3]}
    net = xpnn.Network(params, hidden=hidden, backend="jax", device="cpu:1", output="softmax")
    assert net.device is cpu1
    on_cpu0 = jax.device_put(jax.numpy.asarray([[1.0, 2.0], [-1.0, 0.5]]), cpu0)
    expected = xpnn.Network(params, hidden=hidden).forward(np.asarray(on_cpu0))
    # Inputs arriving on cpu:0 are moved explicitly; nothing moves implicitly between
    # devices, so every operation runs where its operands are: on cpu:1.
    with jax.transfer_guard_device_to_device("disallow"):
        for result in (net.forward(on_cpu0), net.predict(on_cpu0), net.classify(on_cpu0)):
            assert result.devices() == {cpu1}
        for function in (xpnn.sigmoid, xpnn.relu, xpnn.softmax, xpnn.step_function):
            assert function(jax.device_put(on_cpu0, cpu1)).devices() == {cpu1}
    np.testing.assert_allclose(xpnn.to_numpy(net.forward(on_cpu0)), expected, rtol=1e-6)
    for w in net.params.values():
        assert w.devices() == {cpu1}


def test_implicit_transfers_are_caught_by_the_guard():
    """The guard the test above relies on does catch an operand left on cpu:0."""
    jax, cpus = jax_cpu1()
    a = jax.device_put(jax.numpy.ones(3), cpus[1])
    b = jax.numpy.asarray(np.ones(3))  # uncommitted, on the default device cpu:0
    with (
        jax.transfer_guard_device_to_device("disallow"),
        pytest.raises(Exception, match=r"[Dd]isallowed"),
    ):
        (a + b).block_until_ready()


@pytest.mark.parametrize(
    ("name", "library", "extra"),
    [("ndonnx", "ndonnx", "onnx"), ("jax", "jax", "jax"), ("dask", "dask.array", "dask")],
)
def test_every_missing_backend_names_its_extra(monkeypatch, name, library, extra):
    if "." in library:
        monkeypatch.delitem(sys.modules, library, raising=False)
    monkeypatch.setitem(sys.modules, library.split(".")[0], None)  # makes the import fail
    with pytest.raises(xpnn.BackendError, match=rf"'{name}' is not installed.*xpnn\[{extra}\]"):
        xpnn.namespace(name)


def test_ndonnx_has_one_device():
    ndx = import_or_skip("ndonnx", "ndonnx")

    (only,) = ndx.__array_namespace_info__().devices()
    assert xpnn.namespace("ndonnx")[1] is only
    assert xpnn.namespace("onnx", "cpu")[1] is only
    with pytest.raises(xpnn.BackendError, match="backend 'ndonnx' has no device 'cuda'"):
        xpnn.namespace("ndonnx", "cuda")
