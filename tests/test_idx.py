"""The validating IDX reader: valid files and every kind of corruption."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import threading

import numpy as np
import pytest
from idx_files import gz, idx_bytes, mnist_images

import xpnn
from xpnn import mnist
from xpnn.mnist import read_idx


@pytest.mark.parametrize("code", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_valid_files_round_trip(tmp_path, code, compress):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(code)
    data = idx_bytes(array)
    path = tmp_path / "a.idx"
    path.write_bytes(gz(data) if compress else data)
    got = read_idx(path)
    np.testing.assert_array_equal(got, array)
    assert got.dtype.isnative and got.shape == (2, 3, 4)


def test_empty_dimension_is_valid(tmp_path):
    path = tmp_path / "empty.idx"
    path.write_bytes(idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    assert read_idx(path).shape == (0, 28, 28)


def _header(type_code=0x08, dims=(3,), zero=0):
    return struct.pack(">HBB", zero, type_code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


CORRUPTIONS = {
    "wrong-magic": (_header(zero=0x1F00) + b"abc", "not an IDX file"),
    "bad-type-code": (_header(type_code=0x0A) + b"abc", "unknown IDX type code 0x0a"),
    "no-dimensions": (struct.pack(">HBB", 0, 8, 0), "declares no dimensions"),
    "short-header": (b"\x00\x00", "truncated header"),
    "missing-dims": (struct.pack(">HBB", 0, 8, 3) + b"\x00\x00\x00\x01", "truncated dimensions"),
    "truncated": (_header(dims=(10,)) + b"abc", "expected 10 bytes, found 3"),
    "trailing-bytes": (_header(dims=(3,)) + b"abcd", "trailing bytes"),
    "declares-1e9-items": (_header(dims=(10**9,)) + b"abc", "over the .*-byte limit"),
    "declares-overflow": (_header(dims=(2**32 - 1,) * 8) + b"abc", "over the .*-byte limit"),
}


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corruptions_raise_data_error(tmp_path, case, compress):
    data, match = CORRUPTIONS[case]
    path = tmp_path / f"{case}.idx"
    path.write_bytes(gz(data) if compress else data)
    with pytest.raises(xpnn.DataError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_gzip_bomb_is_capped(tmp_path):
    """A header declaring 10 images over a stream of 1 GB of zeros reads ~8 kB, then stops."""
    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(_header(dims=(10, 28, 28)))
        zeros = bytes(1 << 20)
        for _ in range(1024):
            f.write(zeros)
    assert path.stat().st_size < 2 << 20
    with pytest.raises(xpnn.DataError, match="trailing bytes"):
        read_idx(path)


def test_corrupt_gzip_stream(tmp_path):
    data = bytearray(gz(idx_bytes(mnist_images(2))))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(xpnn.DataError, match=r"corrupt gzip|truncated|trailing"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    data = gz(idx_bytes(mnist_images(2)))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(xpnn.DataError, match="corrupt gzip"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(xpnn.DataError, match="No such file"):
        read_idx(tmp_path / "nope.idx")


@pytest.mark.parametrize(
    ("array", "kind", "match"),
    [
        (np.zeros((2, 27, 28), np.uint8), "images", "N x 28 x 28"),
        (np.zeros((2, 28, 28), np.int16), "images", "unsigned bytes"),
        (np.array([1, 10], np.uint8), "labels", "label 10 is out of range"),
        (np.zeros((2, 2), np.uint8), "labels", "1-D"),
    ],
)
def test_mnist_semantics(tmp_path, array, kind, match):
    with pytest.raises(xpnn.DataError, match=match):
        mnist._check_mnist(array, kind, tmp_path / "f")


def _pin_test_split(directory, monkeypatch, images, labels):
    """Write synthetic test-split files and pin the loader to their checksums."""
    for kind, array in (("images", images), ("labels", labels)):
        data = gz(idx_bytes(array))
        remote = mnist.MNIST_FILES["test", kind]
        (directory / remote.name).write_bytes(data)
        pinned = mnist.RemoteFile(remote.name, hashlib.sha256(data).hexdigest(), (), len(data))
        monkeypatch.setitem(mnist.MNIST_FILES, ("test", kind), pinned)


def test_mnist_loader_on_synthetic_files(tmp_path, monkeypatch):
    """The whole loader path (checksum, parse, checks, cache) on made-up files."""
    images, labels = mnist_images(5), np.array([0, 9, 3, 3, 7], np.uint8)
    _pin_test_split(tmp_path, monkeypatch, images, labels)
    x, t = xpnn.load_mnist_split("test", normalize=False, flatten=False, data_dir=tmp_path)
    np.testing.assert_array_equal(x[:, 0], images)
    np.testing.assert_array_equal(t, labels)


def test_image_and_label_counts_must_match(tmp_path, monkeypatch):
    _pin_test_split(tmp_path, monkeypatch, mnist_images(3), np.zeros(4, np.uint8))
    with pytest.raises(xpnn.DataError, match="3 images but 4 labels"):
        xpnn.load_mnist_split("test", data_dir=tmp_path)


def test_fifo_is_refused_without_blocking(tmp_path):
    """open() on a FIFO would wait forever for a writer; it is refused at once."""
    fifo = tmp_path / "fifo.idx"
    os.mkfifo(fifo)
    outcome = []

    def read():
        try:
            read_idx(fifo)
        except xpnn.DataError as err:
            outcome.append(str(err))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(5)
    if thread.is_alive():  # unblock the reader before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("read_idx blocked on a FIFO")
    assert outcome and "not a regular file" in outcome[0]
