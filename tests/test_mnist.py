"""MNIST loading and the book's accuracy on every backend (real data)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import xpnn
from xpnn import mnist

BOOK_CORRECT = 9352  # of 10000, float32 and float64 (reference values)


@pytest.fixture(scope="session")
def test_set(data_dir):
    """Host arrays of the test split, raw pixels."""
    x, t = xpnn.load_mnist_split("test", normalize=False, data_dir=data_dir, backend="numpy")
    return x, t


@pytest.mark.parametrize("batch_size", [100, None], ids=["batch100", "onebatch"])
def test_book_accuracy(backend, dtype, data_dir, batch_size):
    network = xpnn.pretrained_network(
        data_dir=data_dir, backend=backend.name, device=backend.device, dtype=dtype
    )
    x, t = xpnn.load_mnist_split(
        "test", data_dir=data_dir, backend=backend.name, device=backend.device
    )
    backend.assert_native(x)
    predictions = network.classify(x, batch_size=batch_size)
    backend.assert_native(predictions)
    correct = int(np.sum(xpnn.to_numpy(predictions) == xpnn.to_numpy(t)))
    assert correct == BOOK_CORRECT


def test_book_accuracy_from_raw_pixels(backend, dtype, data_dir):
    """The /255 folded into W1, raw uint8 pixels fed directly, gives the same count."""
    network = xpnn.pretrained_network(
        data_dir=data_dir,
        backend=backend.name,
        device=backend.device,
        dtype=dtype,
        input_scale=1 / 255,
    )
    x, t = xpnn.load_mnist_split(
        "test", normalize=False, data_dir=data_dir, backend=backend.name, device=backend.device
    )
    correct = int(np.sum(xpnn.to_numpy(network.classify(x, 1000)) == xpnn.to_numpy(t)))
    assert correct == BOOK_CORRECT


def test_book_accuracy_per_sample(data_dir, test_set):
    network = xpnn.pretrained_network(data_dir=data_dir, backend="numpy")
    x, t = test_set
    x = x.astype(np.float32) / 255
    correct = sum(int(np.argmax(network.predict(x[i])) == t[i]) for i in range(x.shape[0]))
    assert correct == BOOK_CORRECT


def test_float16_count(data_dir, test_set):
    network = xpnn.pretrained_network(data_dir=data_dir, backend="numpy", dtype="float16")
    x, t = test_set
    predictions = network.classify((x / 255).astype(np.float16), batch_size=100)
    assert int(np.sum(predictions == t)) == 9354  # the reference's float16 figure


def test_shapes_and_dtypes(backend, data_dir):
    x, t = xpnn.load_mnist_split(
        "test", data_dir=data_dir, backend=backend.name, device=backend.device
    )
    assert tuple(x.shape) == (10000, 784) and tuple(t.shape) == (10000,)
    assert x.dtype == backend.xp.float32
    host = xpnn.to_numpy(x)
    assert host.min() == 0.0 and host.max() == 1.0
    x, t = xpnn.load_mnist_split(
        "test",
        normalize=False,
        flatten=False,
        one_hot_label=True,
        data_dir=data_dir,
        backend=backend.name,
        device=backend.device,
    )
    backend.assert_native(t)
    assert tuple(x.shape) == (10000, 1, 28, 28) and x.dtype == backend.xp.uint8
    assert tuple(t.shape) == (10000, 10)
    one_hot = xpnn.to_numpy(t)
    np.testing.assert_array_equal(one_hot.sum(axis=1), 1.0)


def test_train_labels_without_train_images(data_dir):
    t = xpnn.load_mnist_labels("train", data_dir=data_dir, backend="numpy")
    assert t.shape == (60000,) and int(t[0]) == 5
    assert np.bincount(t).tolist()[:2] == [5923, 6742]


def test_full_load_names_the_missing_training_images(data_dir, tmp_path):
    for name in os.listdir(data_dir):
        if name.endswith(".gz"):
            shutil.copy(os.path.join(data_dir, name), tmp_path)
    with pytest.raises(xpnn.DataError) as info:
        xpnn.load_mnist(data_dir=tmp_path)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and str(tmp_path) in message
    assert "XPNN_DATA_DIR" in message


def test_missing_files_are_named_together(tmp_path):
    with pytest.raises(
        xpnn.DataError, match=r"t10k-images-idx3-ubyte\.gz, t10k-labels-idx1-ubyte\.gz"
    ):
        xpnn.load_mnist_split("test", data_dir=tmp_path)


def test_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="unknown MNIST split"):
        xpnn.load_mnist_split("validation", data_dir=tmp_path)


@pytest.fixture
def copied(data_dir, tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(os.path.join(data_dir, name), tmp_path)
    return tmp_path


def test_cache_is_written_and_used(copied, test_set, monkeypatch):
    xpnn.load_mnist_split("test", normalize=False, data_dir=copied)
    cached = sorted(p.name for p in (copied / "decoded").iterdir())
    assert cached == [
        "t10k-images-idx3-ubyte.json",
        "t10k-images-idx3-ubyte.npy",
        "t10k-labels-idx1-ubyte.json",
        "t10k-labels-idx1-ubyte.npy",
    ]

    def no_parse(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(mnist, "read_idx", no_parse)
    x, _ = xpnn.load_mnist_split("test", normalize=False, data_dir=copied)
    np.testing.assert_array_equal(x, test_set[0])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong-shape", "stale-source"])
def test_damaged_cache_is_rebuilt(copied, test_set, damage):
    xpnn.load_mnist_split("test", normalize=False, data_dir=copied)
    npy = copied / "decoded" / "t10k-images-idx3-ubyte.npy"
    if damage == "truncate":
        npy.write_bytes(npy.read_bytes()[:1000])
    elif damage == "garbage":
        npy.write_bytes(b"not a npy file")
    elif damage == "wrong-shape":
        np.save(npy, np.zeros((3, 28, 28), np.uint8))
    else:  # the source changed after caching: the cache is stale
        np.save(npy, np.zeros((10000, 28, 28), np.uint8))
        source = copied / "t10k-images-idx3-ubyte.gz"
        os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    x, _ = xpnn.load_mnist_split("test", normalize=False, data_dir=copied)
    np.testing.assert_array_equal(x, test_set[0])


def test_corrupt_source_is_refused_by_checksum(copied):
    source = copied / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(source.read_bytes())
    data[-20] ^= 0xFF
    source.write_bytes(bytes(data))
    with pytest.raises(xpnn.DataError, match=r"SHA-256 .* does not match"):
        xpnn.load_mnist_split("test", data_dir=copied)


def test_unwritable_cache_still_loads(copied, test_set, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(mnist.np, "save", refuse)  # as on a read-only data directory
    x, _ = xpnn.load_mnist_split("test", normalize=False, data_dir=copied)
    np.testing.assert_array_equal(x, test_set[0])
    assert not (copied / "decoded" / "t10k-images-idx3-ubyte.npy").exists()
