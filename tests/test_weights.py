"""Weights: safetensors, npz, and the book's pickle read without running code."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from hostile import hostile_pickles, valid_weights
from reference import CHAPTER_X, CHAPTER_Y, assert_close

import xpnn
from xpnn.safe_pickle import load_weight_pickle


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_pickles_load(tmp_path, protocol):
    weights = valid_weights()
    path = tmp_path / "w.pkl"
    path.write_bytes(pickle.dumps(weights, protocol=protocol))
    loaded = load_weight_pickle(path)
    assert sorted(loaded) == sorted(weights)
    for key, value in weights.items():
        assert loaded[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded[key], value)


@pytest.mark.parametrize("case", sorted(hostile_pickles("x")))
def test_hostile_pickles_are_refused_and_never_run(tmp_path, case):
    sentinel = tmp_path / "sentinel"
    path = tmp_path / f"{case}.pkl"
    path.write_bytes(hostile_pickles(str(sentinel))[case])
    with pytest.raises(xpnn.WeightsError) as info:
        xpnn.load_weights(path)
    assert str(path) in str(info.value)
    assert not sentinel.exists()


def test_hostile_pickle_really_is_hostile(tmp_path):
    """Guard for the test above: plain pickle.load of one does create the sentinel."""
    sentinel = tmp_path / "sentinel"
    pickle.loads(hostile_pickles(str(sentinel))["reduce-eval"])
    assert sentinel.exists()


def test_book_pickle_loads(data_dir):
    arrays = load_weight_pickle(os.path.join(data_dir, "sample_weight.pkl"))
    shapes = {k: v.shape for k, v in arrays.items()}
    assert shapes == {
        "W1": (784, 50),
        "b1": (50,),
        "W2": (50, 100),
        "b2": (100,),
        "W3": (100, 10),
        "b3": (10,),
    }
    assert all(v.dtype == np.float32 for v in arrays.values())


def test_convert_book_pickle_to_safetensors(data_dir, tmp_path):
    target = xpnn.convert_pickle(
        os.path.join(data_dir, "sample_weight.pkl"), tmp_path / "b.safetensors"
    )
    network = xpnn.load_weights(target)
    assert network.layer_sizes == (784, 50, 100, 10)
    assert (network.hidden, network.output, network.dtype_name) == ("sigmoid", "softmax", "float32")
    original = load_weight_pickle(os.path.join(data_dir, "sample_weight.pkl"))
    for key, value in network.params.items():
        np.testing.assert_array_equal(xpnn.to_numpy(value), original[key])


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_save_and_load_round_trip(backend, dtype, tmp_path, suffix):
    network = xpnn.init_network(backend.name, backend.device, dtype)
    path = tmp_path / f"net{suffix}"
    xpnn.save_weights(network, path)
    loaded = xpnn.load_weights(path, backend=backend.name, device=backend.device, output="identity")
    assert loaded.dtype_name == dtype
    y = loaded.forward(backend.asarray(CHAPTER_X, dtype))
    backend.assert_native(y)
    assert_close(y, CHAPTER_Y, dtype)
    assert [p.name for p in tmp_path.iterdir()] == [f"net{suffix}"]  # no temporary left


def test_safetensors_keeps_functions(tmp_path):
    params = {"W1": np.ones((2, 2)), "b1": np.zeros(2)}
    path = tmp_path / "r.safetensors"
    xpnn.save_weights(xpnn.Network(params, hidden="relu", output="softmax"), path)
    loaded = xpnn.load_weights(path)
    assert (loaded.hidden, loaded.output) == ("relu", "softmax")


def _safetensors_bytes(tmp_path, arrays):
    from safetensors.numpy import save_file

    path = tmp_path / "tmp.safetensors"
    save_file(arrays, str(path))
    return path.read_bytes()


def test_malformed_safetensors(tmp_path):
    good = _safetensors_bytes(
        tmp_path, {"W1": np.ones((2, 2), np.float32), "b1": np.ones(2, np.float32)}
    )
    cases = {
        "garbage": b"hello world, not safetensors",
        "truncated": good[: len(good) - 5],
        "huge-header": (10**12).to_bytes(8, "little") + b"{}",
        "bad-json": (5).to_bytes(8, "little") + b"{nope",
        "empty": b"",
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        with pytest.raises(xpnn.WeightsError, match="malformed safetensors"):
            xpnn.load_weights(path)


def test_inconsistent_or_integer_weights(tmp_path):
    inconsistent = {"W1": np.ones((2, 3), np.float32), "b1": np.ones(2, np.float32)}
    path = tmp_path / "bad.safetensors"
    path.write_bytes(_safetensors_bytes(tmp_path, inconsistent))
    with pytest.raises(xpnn.WeightsError, match="b1 has 2 entries"):
        xpnn.load_weights(path)
    integer = {"W1": np.ones((2, 2), np.int32), "b1": np.ones(2, np.int32)}
    path.write_bytes(_safetensors_bytes(tmp_path, integer))
    with pytest.raises(xpnn.WeightsError, match="not real floating"):
        xpnn.load_weights(path)


def test_malformed_npz(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(xpnn.WeightsError, match=r"malformed \.npz"):
        xpnn.load_weights(path)
    with open(path, "wb") as f:
        np.savez(f, W1=np.array([1.0, None], dtype=object), b1=np.ones(1))
    with pytest.raises(xpnn.WeightsError, match=r"malformed \.npz"):
        xpnn.load_weights(path)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(xpnn.WeightsError, match="no such weights file"):
        xpnn.load_weights(tmp_path / "none.safetensors")
    other = tmp_path / "w.h5"
    other.write_bytes(b"x")
    with pytest.raises(xpnn.WeightsError, match="unknown weights format"):
        xpnn.load_weights(other)
    with pytest.raises(xpnn.WeightsError, match="save weights as"):
        xpnn.save_weights(xpnn.init_network(), tmp_path / "w.pkl")
