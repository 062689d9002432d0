"""A JAX network compiles its forward pass once per input shape, and agrees with NumPy."""

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


@pytest.mark.parametrize("name", ["numpy", "array_api_strict"])
def test_eager_backends_have_no_compiled_pass(name: str) -> None:
    import_or_skip(name, name)
    assert xpnn.Network(_params(), backend=name)._compiled is None
