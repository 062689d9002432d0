"""Fast forward passes: JAX compiles once per input shape; NumPy folds sigmoid into tanh.

Both must give the plain layer loop's results (array_api_strict runs that loop).
"""

from __future__ import annotations

import importlib.util
import itertools

import numpy as np
import pytest

from tests.optional import import_or_skip

jax = import_or_skip("jax", "jax")

import xpnn  # noqa: E402


def _params(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = (784, 50, 100, 10)
    out = {}
    for i, (a, b) in enumerate(itertools.pairwise(sizes), start=1):
        out[f"W{i}"] = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        out[f"b{i}"] = (0.1 * rng.standard_normal(b)).astype(np.float32)
    return out


def _images(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 784), dtype=np.uint8)


def _agree(labels: np.ndarray, logits: np.ndarray) -> None:
    """``labels`` are the argmax of ``logits``, except within float32 noise of a tie."""
    top2 = np.sort(logits, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-4
    assert clear.mean() > 0.99  # the comparison is not vacuous
    np.testing.assert_array_equal(labels[clear], np.argmax(logits, axis=1)[clear])


def test_jax_labels_match_numpy_in_every_batch_layout() -> None:
    params = _params()
    host = xpnn.Network(params, dtype="float64", input_scale=1 / 255)
    net = xpnn.Network(params, backend="jax", input_scale=1 / 255)
    x8 = _images(2345)
    logits = np.asarray(host.forward(x8))
    for batch in (None, 1000, 2345, 4000, 7):
        labels = np.asarray(net.classify(x8, batch))
        assert labels.shape == (2345,)
        _agree(labels, logits)
    np.testing.assert_allclose(np.asarray(net.forward(x8)), logits, rtol=1e-4, atol=1e-4)


def test_classify_traces_once_for_all_batches() -> None:
    net = xpnn.Network(_params(), backend="jax", input_scale=1 / 255)
    compiled = net._compiled
    assert compiled is not None
    net.classify(_images(2500), 1000)  # 1000, 1000, then 500 padded to 1000
    assert compiled.traces == 1
    net.classify(_images(3700, seed=2), 1000)  # another length, the same batch shape
    net.classify(jax.numpy.asarray(_images(1001, seed=3)), 1000)
    assert compiled.traces == 1
    net.classify(_images(2500), 500)  # a new batch size is a new shape: one more trace
    assert compiled.traces == 2


def test_forward_traces_once_per_shape() -> None:
    net = xpnn.Network(_params(), backend="jax")
    compiled = net._compiled
    assert compiled is not None
    x = _images(64).astype(np.float32) / 255
    first = np.asarray(net.forward(x))
    for seed in (4, 5, 6):
        net.forward(_images(64, seed=seed).astype(np.float32) / 255)
    assert compiled.traces == 1
    np.testing.assert_array_equal(np.asarray(net.forward(x)), first)
    net.forward(x[0])  # one sample: another shape
    assert compiled.traces == 2


def _activations(net: xpnn.Network) -> list[str]:
    return [act.__name__ for act in net._acts]


def test_only_jax_and_eager_sigmoid_networks_have_a_fast_pass() -> None:
    import_or_skip("array_api_strict", "array_api_strict")
    params = _params()
    strict = xpnn.Network(params, backend="array_api_strict")
    assert strict._compiled is None and _activations(strict) == ["sigmoid", "sigmoid"]
    assert _activations(xpnn.Network(params, backend="numpy", hidden="relu")) == ["relu"] * 2
    mixed = xpnn.Network(params, backend="numpy", hidden=["sigmoid", "relu"])
    assert _activations(mixed) == ["sigmoid", "relu"]
    assert _activations(xpnn.Network(params, backend="numpy")) == ["_tanh", "_tanh"]
    if importlib.util.find_spec("torch") is not None:  # PyTorch is eager too: folded
        assert _activations(xpnn.Network(params, backend="torch")) == ["_tanh", "_tanh"]
    # float16 keeps the book's formula: its rounding gives the reference's MNIST count
    assert _activations(xpnn.Network(params, dtype="float16")) == ["sigmoid", "sigmoid"]
    assert xpnn.Network(params, backend="jax")._compiled is not None


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_fold_that_would_overflow_falls_back_to_the_plain_loop(precision: str) -> None:
    """Weights near the dtype's limit: a folded bias would overflow, so the book's loop runs."""
    import_or_skip("array_api_strict", "array_api_strict")
    half = float(np.finfo(precision).max) / 2
    params = {"W1": np.eye(16), "b1": np.zeros(16), "W2": np.full((16, 2), half)}
    params |= {"b2": np.zeros(2), "W3": np.eye(2), "b3": np.array([0.0, 1.0])}
    net = xpnn.Network(params, backend="numpy", dtype=precision)
    assert _activations(net) == ["sigmoid", "sigmoid"]  # not folded
    x = np.full((3, 16), -100.0)  # sigmoid(-100) is tiny: the plain products stay finite
    plain = xpnn.Network(params, backend="array_api_strict", dtype=precision)
    got = net.forward(x)
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got, xpnn.to_numpy(plain.forward(x)))
    np.testing.assert_array_equal(net.classify(x), [1, 1, 1])


@pytest.mark.parametrize(
    ("precision", "tol"),
    [("float64", {"rtol": 1e-12, "atol": 1e-12}), ("float32", {"rtol": 2e-6, "atol": 2e-6})],
)
def test_numpy_tanh_pass_matches_the_plain_loop(precision: str, tol: dict[str, float]) -> None:
    import_or_skip("array_api_strict", "array_api_strict")
    params = _params(seed=7)
    plain = xpnn.Network(params, backend="array_api_strict", dtype=precision, input_scale=1 / 255)
    fast = xpnn.Network(params, backend="numpy", dtype=precision, input_scale=1 / 255)
    assert _activations(fast) == ["_tanh", "_tanh"]
    x8 = _images(1500, seed=8)
    want = xpnn.to_numpy(plain.forward(x8))
    got = fast.forward(x8)
    assert got.dtype == np.dtype(precision)
    np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(fast.forward(x8[3]), want[3], **tol)  # one sample
    # Large weights drive the hidden units into both tails: exact 0/1 saturation.
    big = {k: v * 40 for k, v in params.items()}
    want = xpnn.to_numpy(xpnn.Network(big, backend="array_api_strict", dtype=precision).forward(x8))
    got = xpnn.Network(big, backend="numpy", dtype=precision).forward(x8)
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * 1e3)
    for batch in (None, 100, 1499):
        _agree(fast.classify(x8, batch), xpnn.to_numpy(plain.forward(x8)))
