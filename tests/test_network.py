"""The chapter's 3-layer network and the Network class on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from optional import import_or_skip
from reference import (
    CHAPTER_A1,
    CHAPTER_A2,
    CHAPTER_X,
    CHAPTER_Y,
    CHAPTER_Z1,
    CHAPTER_Z2,
    assert_close,
)

import xpnn


def test_chapter_network_steps(backend, dtype):
    """Each intermediate value the chapter prints, computed with xpnn's functions."""
    net = xpnn.init_network(backend.name, backend.device, dtype)
    p = net.params
    x = backend.asarray(CHAPTER_X, dtype)
    a1 = x @ p["W1"] + p["b1"]
    z1 = xpnn.sigmoid(a1)
    a2 = z1 @ p["W2"] + p["b2"]
    z2 = xpnn.sigmoid(a2)
    y = xpnn.identity_function(z2 @ p["W3"] + p["b3"])
    for got, want in ((a1, CHAPTER_A1), (z1, CHAPTER_Z1), (a2, CHAPTER_A2), (z2, CHAPTER_Z2)):
        assert_close(got, want, dtype)
    assert_close(y, CHAPTER_Y, dtype)
    assert tuple(p["W1"].shape) == (2, 3) and tuple(p["b1"].shape) == (3,)
    assert tuple(p["W2"].shape) == (3, 2) and tuple(p["W3"].shape) == (2, 2)


def test_forward_and_predict(backend, dtype):
    net = xpnn.init_network(backend.name, backend.device, dtype)
    x = backend.asarray(CHAPTER_X, dtype)
    y = xpnn.forward(net, x)
    backend.assert_native(y)
    assert_close(y, CHAPTER_Y, dtype)
    assert_close(xpnn.predict(net, x), CHAPTER_Y, dtype)  # identity output


def test_batch_matches_single_samples(backend, dtype):
    net = xpnn.init_network(backend.name, backend.device, dtype)
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(7, 2))
    y = xpnn.to_numpy(net.forward(backend.asarray(batch, dtype)))
    assert y.shape == (7, 2)
    for i in range(7):
        single = xpnn.to_numpy(net.forward(backend.asarray(batch[i], dtype)))
        assert_close(single, y[i], dtype)


def test_softmax_output_and_classify(backend, dtype):
    rng = np.random.default_rng(1)
    params = {"W1": rng.normal(size=(4, 5)), "b1": rng.normal(size=5)}
    params |= {"W2": rng.normal(size=(5, 3)), "b2": rng.normal(size=3)}
    net = xpnn.Network(
        params, output="softmax", backend=backend.name, device=backend.device, dtype=dtype
    )
    x = rng.normal(size=(10, 4))
    probs = net.predict(backend.asarray(x, dtype))
    backend.assert_native(probs)
    np.testing.assert_allclose(xpnn.to_numpy(probs).sum(axis=1), 1.0, rtol=1e-6)
    labels = net.classify(backend.asarray(x, dtype), batch_size=3)
    backend.assert_native(labels)
    expected = np.argmax(xpnn.to_numpy(probs), axis=1)
    np.testing.assert_array_equal(xpnn.to_numpy(labels), expected)
    np.testing.assert_array_equal(xpnn.to_numpy(net.classify(backend.asarray(x, dtype))), expected)


def test_relu_hidden(backend):
    params = {"W1": [[1.0, -1.0]], "b1": [0.0, 0.0], "W2": [[1.0], [1.0]], "b2": [0.5]}
    net = xpnn.Network(params, hidden="relu", backend=backend.name, device=backend.device)
    assert_close(
        net.forward(backend.asarray([[2.0], [-3.0]], "float64")), [[2.5], [3.5]], "float64"
    )


def test_uint8_input_is_cast(backend):
    params = {"W1": np.eye(3), "b1": np.zeros(3)}
    net = xpnn.Network(params, backend=backend.name, device=backend.device, dtype="float32")
    y = net.forward(backend.asarray([0, 128, 255], "uint8"))
    backend.assert_native(y)
    assert_close(y, [0.0, 128.0, 255.0], "float32")
    scaled = net.to(input_scale=1 / 255)
    assert_close(scaled.forward(backend.asarray([0, 51, 255], "uint8")), [0.0, 0.2, 1.0], "float32")


def test_input_from_another_namespace_is_moved(backend, dtype):
    net = xpnn.init_network(backend.name, backend.device, dtype)
    for x in (np.asarray(CHAPTER_X), CHAPTER_X):  # a NumPy array, a list
        y = net.forward(x)
        backend.assert_native(y)
        assert_close(y, CHAPTER_Y, dtype)


def test_network_moves_between_backends(backend, dtype):
    net = xpnn.init_network("numpy", dtype="float64").to(backend.name, backend.device, dtype)
    assert net.backend == backend.name and net.device == backend.device
    y = net.forward(backend.asarray(CHAPTER_X, dtype))
    backend.assert_native(y)
    assert_close(y, CHAPTER_Y, dtype)


def test_shape_mismatch_names_sizes(backend):
    net = xpnn.init_network(backend.name, backend.device)
    with pytest.raises(ValueError, match=r"shape \(2,\) or \(n, 2\); got shape \(3,\)"):
        net.forward(backend.asarray([1.0, 2.0, 3.0], "float32"))
    with pytest.raises(ValueError, match="got shape"):
        net.forward(backend.asarray([[[1.0, 2.0]]], "float32"))


def test_complex_and_object_inputs_are_refused(backend):
    net = xpnn.init_network(backend.name, backend.device)
    if backend.has_dtype("complex128"):
        with pytest.raises(TypeError, match="real numbers"):
            net.forward(backend.asarray([1 + 1j, 0.5], "complex128"))
    with pytest.raises(TypeError, match="real numbers"):
        net.forward(np.array([1 + 1j, 0.5]))
    with pytest.raises(TypeError, match="real numbers"):
        net.forward(np.array([1.0, None], dtype=object))
    with pytest.raises(TypeError, match="expects an array or numbers"):
        net.forward("1.0, 0.5")


def test_array_api_strict_devices_never_mix():
    """The simulated device catches computation on the wrong device."""
    xps = import_or_skip("array_api_strict", "array_api_strict")

    x = xps.asarray([1.0, 0.5], device=xps.Device("device1"))
    w = xps.asarray([[1.0], [1.0]])  # CPU_DEVICE
    with pytest.raises(ValueError, match="different devices"):
        x @ w
    net = xpnn.init_network("array_api_strict", "device2", "float64")
    y = net.forward(x)  # moved to device2 first
    assert y.device == xps.Device("device2")


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({}, ValueError, "numbered"),
        ({"W1": np.ones((2, 2))}, ValueError, "b1 is missing"),
        (
            {"W1": np.ones((2, 2)), "b1": np.ones(2), "W3": np.ones((2, 2)), "b3": np.ones(2)},
            ValueError,
            "gaps",
        ),
        ({"W1": np.ones((2, 3)), "b1": np.ones(2)}, ValueError, "b1 has 2 entries"),
        ({"W1": np.ones(2), "b1": np.ones(2)}, ValueError, "2-D"),
        (
            {"W1": np.ones((2, 3)), "b1": np.ones(3), "W2": np.ones((2, 1)), "b2": np.ones(1)},
            ValueError,
            "W2 has 2 rows",
        ),
        ({"W1": np.ones((1, 1)), "b1": np.ones(1), "extra": 1}, ValueError, "unexpected"),
        ({"W1": np.array([["a"]]), "b1": np.ones(1)}, TypeError, "real numbers"),
        ([1, 2], TypeError, "mapping"),
    ],
)
def test_bad_parameters(params, error, match):
    with pytest.raises(error, match=match):
        xpnn.Network(params)


def test_bad_options():
    params = {"W1": np.ones((1, 1)), "b1": np.ones(1)}
    with pytest.raises(ValueError, match="hidden activation 'gelu'"):
        xpnn.Network(params, hidden="gelu")
    with pytest.raises(ValueError, match="output function"):
        xpnn.Network(params, output="sigmoid")
    with pytest.raises(ValueError, match="input_scale"):
        xpnn.Network(params, input_scale=0)
    with pytest.raises(xpnn.BackendError, match="unknown dtype 'int8'"):
        xpnn.Network(params, dtype="int8")
    with pytest.raises(ValueError, match="batch_size"):
        xpnn.Network(params).classify(np.ones((2, 1)), batch_size=0)


def test_repr_and_sizes():
    net = xpnn.init_network("numpy")
    assert net.layer_sizes == (2, 3, 2, 2)
    assert repr(net).startswith(
        "Network(2-3-2-2, hidden='sigmoid', output='identity', backend='numpy'"
    )
    assert "dtype=float32" in repr(net)


def test_network_owns_its_weights(backend):
    w = np.array([[1.0, 0.0], [0.0, 1.0]])
    net = xpnn.Network(
        {"W1": w, "b1": np.zeros(2)}, backend=backend.name, device=backend.device, dtype="float32"
    )
    w[0, 0] = 100.0  # the caller's array changes after the build
    params = net.params
    assert float(xpnn.to_numpy(params["W1"])[0, 0]) == 1.0
    x = backend.asarray([1.0, 1.0], "float32")
    assert_close(net.forward(x), [1.0, 1.0], "float32")
    if backend.name == "numpy":
        params["W1"][0, 0] = 50.0  # a copy, not the network's array
        assert_close(net.forward(x), [1.0, 1.0], "float32")


# -- compiled and lazy execution --------------------------------------------------------


PUBLIC_FUNCTIONS = [
    xpnn.sigmoid,
    xpnn.relu,
    xpnn.softmax,
    xpnn.step_function,
    xpnn.identity_function,
]


def test_everything_works_under_jax_jit():
    jax = import_or_skip("jax", "jax")

    x = jax.numpy.asarray([[1.0, 0.5], [-2.0, 3.0]], dtype="float32")
    for function in PUBLIC_FUNCTIONS:
        np.testing.assert_allclose(
            xpnn.to_numpy(jax.jit(function)(x)), xpnn.to_numpy(function(x)), rtol=1e-6
        )
    for hidden in ("sigmoid", "relu"):
        params = xpnn.init_network().host_params()
        net = xpnn.Network(params, hidden=hidden, output="softmax", backend="jax")
        for method in (net.forward, net.predict, net.classify):
            compiled = jax.jit(method)
            np.testing.assert_allclose(
                xpnn.to_numpy(compiled(x)), xpnn.to_numpy(method(x)), rtol=1e-6
            )
        compiled = jax.jit(lambda batch, net=net: xpnn.forward(net, batch))
        assert compiled(x).shape == (2, 2)


@pytest.fixture
def dask_computes(monkeypatch):
    """Count every dask compute (the synchronous scheduler, wrapped)."""
    import_or_skip("dask.array", "dask")
    import dask
    import dask.local

    calls = []

    def counting_get(*args, **kwargs):
        calls.append(1)
        return dask.local.get_sync(*args, **kwargs)

    with dask.config.set(scheduler=counting_get):
        yield calls


def test_dask_stays_lazy_until_asked(dask_computes):
    import dask.array as da

    host = np.random.default_rng(5).normal(size=(40, 2))
    x = da.from_array(host, chunks=(10, 2))
    results = [function(x) for function in PUBLIC_FUNCTIONS]
    net = xpnn.Network(xpnn.init_network().host_params(), output="softmax", backend="dask")
    results += [net.forward(x), net.predict(x), net.classify(x), net.classify(x, batch_size=15)]
    assert dask_computes == []  # nothing computed yet
    assert all(isinstance(r, da.Array) for r in results)
    labels = net.classify(x, batch_size=15).compute()
    assert len(dask_computes) == 1
    np.testing.assert_array_equal(labels, xpnn.init_network(dtype="float32").classify(host))


def test_dask_relu_adds_no_array_to_the_graph():
    """A dask array of CuPy chunks must not meet a NumPy zero: relu creates no array."""
    da = import_or_skip("dask.array", "dask")
    x = da.from_array(np.array([-1.0, 2.0, np.nan]), chunks=2)
    y = xpnn.relu(x)
    assert len(y.dask.layers) == len(x.dask.layers) + 1
    assert type(y._meta) is type(x._meta)
    np.testing.assert_array_equal(y.compute(), [0.0, 2.0, np.nan])


# -- inputs the documentation promises to accept ----------------------------------------


AWKWARD_INPUTS = {
    "reversed-rows": lambda x: np.ascontiguousarray(x[::-1])[::-1],
    "reversed-columns": lambda x: np.ascontiguousarray(x[:, ::-1])[:, ::-1],
    "big-endian": lambda x: x.astype(">f8"),
    "little-endian-f4": lambda x: x.astype("<f4"),
    "longdouble": lambda x: x.astype(np.longdouble),
    "float16": lambda x: x.astype(np.float16),
    "fortran-order": np.asfortranarray,
    "memmap-like-subclass": lambda x: x.view(type("Sub", (np.ndarray,), {})),
}


@pytest.mark.parametrize("kind", list(AWKWARD_INPUTS))
def test_awkward_numpy_inputs_are_moved_and_cast(backend, kind):
    rng = np.random.default_rng(11)
    x = np.round(rng.normal(size=(5, 2)), 2)  # exact in float16 too
    x = x.astype(np.float16).astype(np.float64)
    awkward = AWKWARD_INPUTS[kind](x)
    assert np.array_equal(np.asarray(awkward, dtype=np.float64), x)
    dtype = "float32"
    net = xpnn.init_network(backend.name, backend.device, dtype)
    y = net.forward(awkward)
    backend.assert_native(y)
    assert_close(y, xpnn.init_network("numpy", dtype="float64").forward(x), dtype)


def test_numpy_scalars_where_python_numbers_are_accepted(backend):
    net = xpnn.init_network(backend.name, backend.device, "float32")
    x = backend.asarray(np.random.default_rng(2).normal(size=(7, 2)), "float32")
    expected = xpnn.to_numpy(net.classify(x))
    for size in (np.int64(3), np.int32(3), np.uint8(3)):
        np.testing.assert_array_equal(xpnn.to_numpy(net.classify(x, batch_size=size)), expected)
    scaled = net.to(input_scale=np.float32(1 / 255))
    expected_y = xpnn.to_numpy(net.forward(backend.asarray([1.0, 0.0], "float32")))
    assert_close(scaled.forward(backend.asarray([255.0, 0.0], "float32")), expected_y, "float32")
    params = xpnn.init_network().host_params()
    assert xpnn.Network(params, input_scale=np.float64(0.5)).input_scale == 0.5
    for bad in (True, np.bool_(True), 1 + 0j, np.nan, np.float32(np.inf), -1, "0.5"):
        with pytest.raises(ValueError, match="input_scale"):
            xpnn.Network(params, input_scale=bad)
    for bad in (0, -2, 2.0, True, np.float64(3.0), "3"):
        with pytest.raises(ValueError, match="batch_size"):
            net.classify(x, batch_size=bad)


def test_one_sample_is_classified_the_same_with_any_batch_size(backend):
    net = xpnn.init_network(backend.name, backend.device, "float32")
    sample = backend.asarray([1.0, 0.5], "float32")
    label = net.classify(sample)
    backend.assert_native(label)
    assert tuple(label.shape) == ()  # as the docstring says: 0-d for one sample
    for size in (1, 2, 10):
        assert int(xpnn.to_numpy(net.classify(sample, batch_size=size))) == int(
            xpnn.to_numpy(label)
        )
    assert tuple(net.classify(backend.asarray([[1.0, 0.5]] * 3, "float32"), 2).shape) == (3,)


def test_matrix_and_masked_arrays_are_refused():
    net = xpnn.init_network()
    with pytest.warns(PendingDeprecationWarning):
        matrix = np.matrix([[1.0, 0.5]])
    masked = np.ma.masked_array([[1.0, 0.5]], mask=[[0, 1]])
    for bad, match in ((matrix, r"numpy\.matrix"), (masked, "masked")):
        for call in (net.forward, net.predict, net.classify, xpnn.sigmoid, xpnn.relu, xpnn.softmax):
            with pytest.raises(TypeError, match=match):
                call(bad)


# -- ndonnx: lazy inputs give lazy outputs, and an ONNX model --------------------------------


@pytest.mark.parametrize("method", ["forward", "predict", "classify"])
@pytest.mark.parametrize("hidden", ["sigmoid", "relu"])
def test_ndonnx_network_traces_lazy_arguments_into_a_model(method, hidden):
    ndx = import_or_skip("ndonnx", "ndonnx")
    ort = import_or_skip("onnxruntime", "ndonnx")

    params = xpnn.init_network().host_params()
    options = {"hidden": hidden, "output": "softmax", "dtype": "float32", "input_scale": 0.5}
    net = xpnn.Network(params, backend="ndonnx", **options)
    for layer in net._layers:  # weights are ndonnx constants, with values
        for arr in layer:
            assert isinstance(arr, ndx.Array) and arr.unwrap_numpy().dtype == np.float32
    for dtype in (ndx.float32, ndx.uint8):
        x = ndx.argument(shape=("N", 2), dtype=dtype)
        y = getattr(net, method)(x)
        assert isinstance(y, ndx.Array)
        with pytest.raises(ValueError, match="no propagated value"):
            y.unwrap_numpy()  # lazy: nothing was computed, nothing went through the host
        model = ndx.build({"x": x}, {"y": y})
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        batch = np.array([[1, 0], [3, 5], [0, 7]], dtype=np.dtype(str(dtype).lower()))
        (got,) = session.run(None, {"x": batch})
        want = getattr(xpnn.Network(params, **options), method)(batch)
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_dask_rows_of_unknown_count_are_classified_in_batches():
    """After boolean masking a dask array has chunks of unknown size: classify still works."""
    da = import_or_skip("dask.array", "dask")
    x = np.random.default_rng(0).normal(size=(50, 2))
    masked = da.from_array(x, chunks=7)[da.from_array(x[:, 0] > 0, chunks=7)]
    assert np.isnan(masked.shape[0])
    want = xpnn.init_network(dtype="float64").classify(x[x[:, 0] > 0])
    for name in ("numpy", "dask"):
        net = xpnn.init_network(name, dtype="float64")
        rows: list[int] = []
        labels = net.classify(masked, batch_size=4, progress=rows.append)
        np.testing.assert_array_equal(xpnn.to_numpy(labels), want)
        assert sum(rows) == len(want) and max(rows) == 4  # batches of 4, not one pass


def test_torch_views_with_the_negative_bit_are_resolved_before_moving():
    """``-t`` may be a lazy negation view: moving its raw memory would drop the sign."""
    torch = import_or_skip("torch", "torch")
    t = torch.arange(4.0).reshape(2, 2)
    view = torch._neg_view(t)
    assert view.is_neg() and view.is_contiguous()
    net = xpnn.Network({"W1": np.eye(2), "b1": np.zeros(2)}, dtype="float64")
    np.testing.assert_array_equal(net.forward(view), -t.numpy())
    np.testing.assert_array_equal(xpnn.to_numpy(view), -t.numpy())
