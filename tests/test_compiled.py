"""Fast forward passes: JAX compiles once per input shape; NumPy folds sigmoid into tanh.

Both must give the plain layer loop's results (array_api_strict runs that loop).
"""

from __future__ import annotations

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
    compiled = net._fast
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
    compiled = net._fast
    assert compiled is not None
    x = _images(64).astype(np.float32) / 255
    first = np.asarray(net.forward(x))
    for seed in (4, 5, 6):
        net.forward(_images(64, seed=seed).astype(np.float32) / 255)
    assert compiled.traces == 1
    np.testing.assert_array_equal(np.asarray(net.forward(x)), first)
    net.forward(x[0])  # one sample: another shape
    assert compiled.traces == 2


def test_only_jax_and_numpy_sigmoid_networks_have_a_fast_pass() -> None:
    import_or_skip("array_api_strict", "array_api_strict")
    params = _params()
    assert xpnn.Network(params, backend="array_api_strict")._fast is None
    assert xpnn.Network(params, backend="numpy", hidden="relu")._fast is None
    assert type(xpnn.Network(params, backend="numpy")._fast).__name__ == "TanhForward"
    # float16 keeps the book's formula: its rounding gives the reference's MNIST count
    assert xpnn.Network(params, backend="numpy", dtype="float16")._fast is None
    assert type(xpnn.Network(params, backend="jax")._fast).__name__ == "JitForward"


def test_numpy_folds_only_xpnn_s_own_sigmoid(monkeypatch: pytest.MonkeyPatch) -> None:
    from xpnn import network as network_module

    monkeypatch.setitem(network_module._HIDDEN, "sigmoid", lambda xp: lambda v, xp: -v)
    net = xpnn.Network(_params(), backend="numpy", dtype="float64")
    assert net._fast is None
    x = _images(3).astype(np.float64)
    p = _params()
    want = -(-(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]) @ p["W3"] + p["b3"]
    np.testing.assert_allclose(net.forward(x), want, rtol=1e-6)


@pytest.mark.parametrize(
    ("precision", "tol"),
    [("float64", {"rtol": 1e-12, "atol": 1e-12}), ("float32", {"rtol": 2e-6, "atol": 2e-6})],
)
def test_numpy_tanh_pass_matches_the_plain_loop(precision: str, tol: dict[str, float]) -> None:
    import_or_skip("array_api_strict", "array_api_strict")
    params = _params(seed=7)
    plain = xpnn.Network(params, backend="array_api_strict", dtype=precision, input_scale=1 / 255)
    fast = xpnn.Network(params, backend="numpy", dtype=precision, input_scale=1 / 255)
    assert fast._fast is not None
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
