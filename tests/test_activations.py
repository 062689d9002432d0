"""Activation and output functions on every backend, device and dtype."""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import (
    RELU_IN,
    RELU_OUT,
    SIGMOID_IN,
    SIGMOID_OUT,
    SOFTMAX_BIG_IN,
    SOFTMAX_BIG_OUT,
    SOFTMAX_IN,
    SOFTMAX_OUT,
    STEP_IN,
    STEP_OUT,
    assert_close,
)

import xpnn


def on_backend(backend, result):
    """Assert ``result`` lives on the case's backend and device; return it on the host."""
    backend.assert_native(result)
    return xpnn.to_numpy(result)


@pytest.mark.parametrize(
    ("function", "values", "expected"),
    [
        (xpnn.sigmoid, SIGMOID_IN, SIGMOID_OUT),
        (xpnn.relu, RELU_IN, RELU_OUT),
        (xpnn.softmax, SOFTMAX_IN, SOFTMAX_OUT),
        (xpnn.softmax, SOFTMAX_BIG_IN, SOFTMAX_BIG_OUT),
        (xpnn.identity_function, SOFTMAX_IN, SOFTMAX_IN),
    ],
    ids=["sigmoid", "relu", "softmax", "softmax-large", "identity"],
)
def test_reference_values(backend, dtype, function, values, expected):
    x = backend.asarray(values, dtype)
    result = function(x)
    backend.assert_native(result)
    assert_close(result, expected, dtype)


def test_softmax_sums_to_one(backend, dtype):
    result = on_backend(backend, xpnn.softmax(backend.asarray(SOFTMAX_IN, dtype)))
    assert abs(float(result.sum()) - 1.0) < 1e-6


def test_step_function_is_integer(backend, dtype):
    result = xpnn.step_function(backend.asarray(STEP_IN, dtype))
    backend.assert_native(result)
    assert backend.xp.isdtype(result.dtype, "integral")
    np.testing.assert_array_equal(xpnn.to_numpy(result), STEP_OUT)


def test_sigmoid_exact_limits_without_warnings(backend):
    # float16 is outside the array API standard: array_api_strict lacks it.
    floats = [f for f in ("float16", "float32", "float64") if backend.has_dtype(f)]
    assert "float32" in floats
    for name in floats:
        x = backend.asarray([-1e4, -200.0, 0.0, 200.0, 1e4], name)
        result = on_backend(backend, xpnn.sigmoid(x))  # pytest turns any warning into an error
        assert result.dtype == np.dtype(name)
        assert result[0] == 0.0 and result[-1] == 1.0
        assert result[2] == 0.5 and result[3] == 1.0
        # sigmoid(-200) = 1.38e-87: representable in float64 only.
        expected = np.asarray(np.exp(-200.0) / (1.0 + np.exp(-200.0))).astype(name)
        np.testing.assert_allclose(result[1], expected, rtol=1e-12, atol=0)


def test_sigmoid_tails_keep_relative_precision(backend):
    x = backend.asarray([-30.0, -20.0, 20.0], "float64")
    expected = 1.0 / (1.0 + np.exp(-np.array([-30.0, -20.0, 20.0])))
    np.testing.assert_allclose(on_backend(backend, xpnn.sigmoid(x)), expected, rtol=1e-12)


def test_softmax_batch_uses_row_max(backend, dtype):
    # One large row must not underflow the others (the notebook's global max does).
    rows = [SOFTMAX_IN, SOFTMAX_BIG_IN, [-1000.0, -1001.0, -1002.0]]
    batch = xpnn.softmax(backend.asarray(rows, dtype))
    backend.assert_native(batch)
    got = xpnn.to_numpy(batch)
    for i, row in enumerate(rows):
        assert_close(batch[i, ...], xpnn.to_numpy(xpnn.softmax(backend.asarray(row, dtype))), dtype)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)


def test_softmax_axis_zero(backend, dtype):
    rows = np.array([SOFTMAX_IN, SOFTMAX_BIG_IN])
    got = on_backend(backend, xpnn.softmax(backend.asarray(rows, dtype), axis=0))
    np.testing.assert_allclose(got.sum(axis=0), 1.0, rtol=1e-6)


def test_integer_input_is_promoted(backend):
    x = backend.asarray([-1, 1, 2], "int64" if backend.name != "jax" else "int32")
    result = xpnn.sigmoid(x)
    backend.assert_native(result)
    assert backend.xp.isdtype(result.dtype, "real floating")
    np.testing.assert_allclose(xpnn.to_numpy(result), SIGMOID_OUT, rtol=1e-6)
    assert xpnn.to_numpy(xpnn.relu(x)).tolist() == [0, 1, 2]


def test_complex_input_is_refused(backend):
    complex_dtypes = [d for d in ("complex128", "complex64") if backend.has_dtype(d)]
    if not complex_dtypes:
        pytest.skip(f"{backend.name} has no complex dtype")
    x = backend.asarray([1 + 1j, 2.0], complex_dtypes[0])
    for function in (xpnn.sigmoid, xpnn.softmax, xpnn.relu, xpnn.step_function):
        with pytest.raises(TypeError, match="real numbers"):
            function(x)


def test_lists_and_scalars_go_through_numpy():
    np.testing.assert_allclose(xpnn.sigmoid(SIGMOID_IN), SIGMOID_OUT, atol=1e-8)
    assert float(xpnn.sigmoid(0.0)) == 0.5
    assert xpnn.relu((-1, 3)).tolist() == [0, 3]
    assert isinstance(xpnn.softmax([1.0, 2.0]), np.ndarray)


@pytest.mark.parametrize("bad", [None, "1.0", {"x": 1.0}, object()])
def test_non_arrays_are_refused(bad):
    with pytest.raises(TypeError, match="expects an array"):
        xpnn.sigmoid(bad)


def test_object_arrays_are_refused():
    with pytest.raises(TypeError, match="real numbers"):
        xpnn.sigmoid(np.array([1.0, "a"], dtype=object))


def test_softmax_needs_an_axis():
    with pytest.raises(ValueError, match="0-d"):
        xpnn.softmax(np.float64(1.0))
    with pytest.raises(ValueError, match="out of range"):
        xpnn.softmax(np.ones((2, 3)), axis=2)


_finite = st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    batch=hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=8), elements=_finite
    )
)
def test_property_softmax_rows_are_distributions(backend, batch):
    result = on_backend(backend, xpnn.softmax(backend.asarray(batch, "float64")))
    assert np.all(np.isfinite(result))
    assert np.all((result >= 0) & (result <= 1))
    np.testing.assert_allclose(result.sum(axis=-1), 1.0, rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(values=hnp.arrays(np.float64, st.integers(1, 32), elements=_finite))
def test_property_sigmoid_is_monotone_in_unit_interval(backend, values):
    x = np.sort(values)
    result = on_backend(backend, xpnn.sigmoid(backend.asarray(x, "float64")))
    assert np.all((result >= 0) & (result <= 1))
    # Where rounding depends on the position in the array, to within one ulp.
    slack = np.spacing(result[1:]) if backend.facts.rounding_by_position else 0.0
    assert np.all(np.diff(result) >= -slack)


def sigmoid_tail(backend, dtype: str) -> tuple[float, float]:
    """``(precise_above, zero_below)`` for sigmoid in ``dtype``, from the backend table.

    The book's formula (backends whose overflow is silent or guarded) has full
    relative precision until ``exp(-x)`` overflows, and returns 0 below; where
    subnormal results are flushed (XLA) it is 0 below ``log(tiny)``. The
    ``exp(-|x|)`` form (lazy backends) is precise for normal results and
    within one subnormal step of the truth down to half the smallest subnormal.
    """
    info = np.finfo(dtype)
    log_tiny = float(np.log(info.tiny))
    if not backend.facts.lazy:
        if backend.facts.flushes_subnormals:
            return log_tiny, log_tiny
        overflow = -float(np.log(info.max))
        return overflow, overflow
    return log_tiny, float(np.log(np.float64(info.smallest_subnormal))) - float(np.log(2.0))


@pytest.mark.parametrize("name", ["float32", "float64"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_property_sigmoid_tail_is_what_the_docs_say(backend, name, data):
    width = 32 if name == "float32" else 64
    bound = 1e4 if name == "float32" else 1e6
    values = data.draw(
        hnp.arrays(
            np.dtype(name), st.integers(1, 32), elements=st.floats(-bound, bound, width=width)
        )
    )
    got = on_backend(backend, xpnn.sigmoid(backend.asarray(values, name)))
    assert got.dtype == np.dtype(name)
    x64 = values.astype(np.float64)
    want = np.exp(-np.logaddexp(0.0, -x64)).astype(np.longdouble)  # log-sigmoid, no overflow
    if name == "float64":  # exact float64 reference in extended precision where it exists
        want = np.exp(-np.logaddexp(np.longdouble(0), -values.astype(np.longdouble)))
    precise_above, zero_below = sigmoid_tail(backend, name)
    step = np.finfo(name).smallest_subnormal
    margin = 1e-3  # thresholds are rounded in the docs; the edges are checked loosely
    precise = x64 > precise_above + margin
    zero = x64 < zero_below - margin
    rtol = 2e-6 if name == "float32" else 4e-15
    np.testing.assert_allclose(got[precise], want[precise].astype(np.float64), rtol=rtol, atol=0)
    assert np.all(got[zero] == 0), values[zero]
    between = ~precise & ~zero  # subnormal results of the exp(-|x|) form, and the edges
    error = np.abs(got.astype(np.longdouble) - want)
    close = (error <= step) | (error <= rtol * want)
    edge = (np.abs(x64 - precise_above) <= margin) | (np.abs(x64 - zero_below) <= margin)
    assert np.all(close[between] | (edge[between] & (got[between] == 0))), values[between]


def test_results_stay_on_the_input_device(backend):
    x = backend.asarray([0.5, -0.5], "float32")
    for function in (xpnn.sigmoid, xpnn.relu, xpnn.softmax, xpnn.step_function):
        assert array_api_compat.device(function(x)) == backend.device
