"""MNIST loading and the book's accuracy on every backend (real data)."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest
from fuzzing import gzip_wrap as gz
from fuzzing import idx_bytes

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


def _load(folder):
    return xpnn.load_mnist_split("test", normalize=False, data_dir=folder, backend="numpy")


def test_changed_source_is_verified_again(copied):
    _load(copied)
    source = copied / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(source.read_bytes())
    data[-20] ^= 0xFF
    source.write_bytes(bytes(data))  # same size, new modification time
    with pytest.raises(xpnn.DataError, match=r"SHA-256 .* does not match the pinned"):
        _load(copied)


def test_corrupt_source_is_refused_by_checksum(copied):
    source = copied / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(source.read_bytes())
    data[-20] ^= 0xFF
    source.write_bytes(bytes(data))
    with pytest.raises(xpnn.DataError, match=r"SHA-256 .* does not match"):
        xpnn.load_mnist_split("test", data_dir=copied)


def test_source_is_parsed_from_the_bytes_that_were_hashed(copied, test_set, monkeypatch):
    """A file swapped in right after the hash check is never what gets parsed."""
    real_read_verified = mnist.read_verified
    source = copied / "t10k-labels-idx1-ubyte.gz"

    def verify_then_swap(remote, path):
        verified = real_read_verified(remote, path)
        if path == source:
            source.write_bytes(gz(idx_bytes(np.zeros(10000, np.uint8))))
        return verified

    monkeypatch.setattr(mnist, "read_verified", verify_then_swap)
    _, t = _load(copied)
    np.testing.assert_array_equal(t, test_set[1])


def test_fifo_at_a_data_file_is_one_line_at_once(copied):
    fifo = copied / "t10k-labels-idx1-ubyte.gz"
    fifo.unlink()
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(
        xpnn.DataError, match=r"t10k-labels-idx1-ubyte\.gz: cannot read \(not a regular"
    ):
        _load(copied)
    assert time.monotonic() - started < 5


def test_full_load_names_every_missing_file_at_once(tmp_path):
    with pytest.raises(xpnn.DataError) as info:
        xpnn.load_mnist(data_dir=tmp_path)
    message = str(info.value)
    for remote in mnist.MNIST_FILES.values():
        assert f"{remote.name} (SHA-256 {remote.sha256})" in message


def test_labels_are_never_64_bit_integers(backend, data_dir):
    """uint8 on every backend: nothing needs 64-bit integers on the device."""
    t = xpnn.load_mnist_labels(
        "test", data_dir=data_dir, backend=backend.name, device=backend.device
    )
    assert t.dtype == backend.xp.uint8


def test_data_dir_that_is_a_file_is_one_data_error(tmp_path, monkeypatch):
    monkeypatch.delenv("XPNN_OFFLINE", raising=False)  # downloads enabled
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    monkeypatch.setenv("XPNN_DATA_DIR", str(not_a_dir))
    with pytest.raises(xpnn.DataError, match="is not a directory"):
        xpnn.load_mnist_split("test")
    with pytest.raises(xpnn.DataError, match="is not a directory"):
        xpnn.pretrained_network()


def test_uncreatable_data_dir_is_one_data_error(tmp_path, monkeypatch):
    monkeypatch.delenv("XPNN_OFFLINE", raising=False)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(xpnn.DataError, match="cannot create the data directory"):
        xpnn.load_mnist_split("test", data_dir=blocker / "sub")
