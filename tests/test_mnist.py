"""MNIST loading and the book's accuracy on every backend (real data)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile

import numpy as np
import pytest
from fuzzing import gzip_wrap as gz
from fuzzing import idx_bytes

import xpnn
from xpnn import _files, mnist

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


def _decoded(folder):
    return sorted(p.name for p in (folder / "decoded").iterdir())


CACHE_FILES = [
    "t10k-images-idx3-ubyte.json",
    "t10k-images-idx3-ubyte.npy",
    "t10k-labels-idx1-ubyte.json",
    "t10k-labels-idx1-ubyte.npy",
]


def _load(folder):
    return xpnn.load_mnist_split("test", normalize=False, data_dir=folder, backend="numpy")


def test_cache_is_written_and_used(copied, test_set, monkeypatch):
    _load(copied)
    assert _decoded(copied) == CACHE_FILES

    def no_decode(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(mnist, "parse_idx", no_decode)
    monkeypatch.setattr(mnist, "read_verified", no_decode)
    x, t = _load(copied)
    np.testing.assert_array_equal(x, test_set[0])
    np.testing.assert_array_equal(t, test_set[1])


def _same_shape_labels(npy):
    labels = np.load(npy)
    np.save(npy, (labels + 1) % 10)  # a same-shape, same-dtype, valid-looking array


def _forge_record(npy, meta):
    """Record the .npy's real size and checksum: a forger who also rewrites the record."""
    info = json.loads(meta.read_text())
    data = npy.read_bytes()
    info["npy"]["size"] = len(data)
    info["npy"]["checksum"] = mnist._checksum(data)
    meta.write_text(json.dumps(info))


def _absurd_header(npy, meta):
    data = npy.read_bytes()
    npy.write_bytes(data.replace(b"(10000, 28, 28)", b"(10000000000000, 28, 28)", 1))
    _forge_record(npy, meta)


def _object_header(npy, meta):
    data = npy.read_bytes()
    npy.write_bytes(data.replace(b"'|u1'", b"'|O' ", 1))
    _forge_record(npy, meta)


CACHE_DAMAGE = {
    "truncate": lambda npy, meta: npy.write_bytes(npy.read_bytes()[:1000]),
    "garbage": lambda npy, meta: npy.write_bytes(b"not a npy file"),
    "wrong-shape": lambda npy, meta: np.save(npy, np.zeros((3, 28, 28), np.uint8)),
    "same-shape-other-data": lambda npy, meta: np.save(npy, np.zeros((10000, 28, 28), np.uint8)),
    "absurd-header-shape": _absurd_header,  # with a record to match: MemoryError in np.load
    "object-header": _object_header,
    "one-flipped-byte": lambda npy, meta: npy.write_bytes(
        npy.read_bytes()[:-1] + bytes([npy.read_bytes()[-1] ^ 1])
    ),
    "meta-list": lambda npy, meta: meta.write_text("[]"),
    "meta-null": lambda npy, meta: meta.write_text("null"),
    "meta-string": lambda npy, meta: meta.write_text('"x"'),
    "meta-empty-object": lambda npy, meta: meta.write_text("{}"),
    "meta-deeply-nested": lambda npy, meta: meta.write_text("[" * 10000 + "]" * 10000),
    "meta-huge": lambda npy, meta: meta.write_text(" " * (1 << 20) + "{}"),
    "meta-wrong-types": lambda npy, meta: meta.write_text(
        meta.read_text().replace('"size": 7840128', '"size": "7840128"')
    ),
    "meta-other-pin": lambda npy, meta: meta.write_text(
        meta.read_text().replace(mnist.MNIST_FILES["test", "images"].sha256, "0" * 64)
    ),
    "meta-other-algorithm": lambda npy, meta: meta.write_text(
        meta.read_text().replace("xxh3_128:", "md5:").replace("blake2b:", "md5:")
    ),
    "meta-missing": lambda npy, meta: meta.unlink(),
    "npy-missing": lambda npy, meta: npy.unlink(),
    "npy-is-a-directory": lambda npy, meta: (npy.unlink(), npy.mkdir()),
}


@pytest.mark.parametrize("damage", sorted(CACHE_DAMAGE))
def test_damaged_or_forged_cache_is_never_served(copied, test_set, damage):
    _load(copied)
    folder = copied / "decoded"
    CACHE_DAMAGE[damage](
        folder / "t10k-images-idx3-ubyte.npy", folder / "t10k-images-idx3-ubyte.json"
    )
    x, _ = _load(copied)
    np.testing.assert_array_equal(x, test_set[0])
    x, _ = _load(copied)  # rebuilt (or, where a directory is in the way, decoded again)
    np.testing.assert_array_equal(x, test_set[0])


def test_the_reported_label_swap_is_caught(copied, test_set):
    """Replacing the decoded labels with a same-shape array no longer changes the score."""
    _load(copied)
    _same_shape_labels(copied / "decoded" / "t10k-labels-idx1-ubyte.npy")
    _, t = _load(copied)
    np.testing.assert_array_equal(t, test_set[1])


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
    assert not (copied / "decoded" / "t10k-labels-idx1-ubyte.npy").exists()


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


def test_unwritable_cache_still_loads(copied, test_set, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(mnist, "atomic_write", refuse)  # as on a read-only data directory
    x, _ = _load(copied)
    np.testing.assert_array_equal(x, test_set[0])
    assert not (copied / "decoded" / "t10k-images-idx3-ubyte.npy").exists()


class _Disk:
    """Free space shared by every file opened: writes fail with ENOSPC when it runs out."""

    def __init__(self, room):
        self.room = room


class _DiskFull:
    """A file on a ``_Disk``: a write past the free space writes what fits, then fails."""

    def __init__(self, handle, disk):
        self._handle, self._disk = handle, disk

    def write(self, data):
        data = memoryview(data).cast("B")
        if len(data) > self._disk.room:
            self._handle.write(data[: self._disk.room])
            self._disk.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._disk.room -= len(data)
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


@pytest.mark.parametrize("room", [0, 4096, 7_840_228])
def test_full_disk_leaves_nothing_and_still_loads(copied, test_set, monkeypatch, room):
    disk = _Disk(room)  # 7_840_228: the images' .npy fits, its record does not
    real_fdopen = _files.os.fdopen
    monkeypatch.setattr(
        _files.os, "fdopen", lambda fd, mode: _DiskFull(real_fdopen(fd, mode), disk)
    )
    for _ in range(2):
        x, t = _load(copied)
        np.testing.assert_array_equal(x, test_set[0])
        np.testing.assert_array_equal(t, test_set[1])
        names = _decoded(copied)
        assert not [n for n in names if n.endswith(".tmp")]
        assert names == (["t10k-images-idx3-ubyte.npy"] if room > 7_840_128 else [])


@pytest.mark.parametrize("blocked", [".npy", ".json"])
def test_directory_in_the_way_leaves_nothing(copied, test_set, blocked):
    folder = copied / "decoded"
    folder.mkdir()
    (folder / f"t10k-images-idx3-ubyte{blocked}").mkdir()
    for _ in range(3):
        x, _ = _load(copied)
        np.testing.assert_array_equal(x, test_set[0])
    names = _decoded(copied)
    assert not [n for n in names if n.endswith(".tmp")]
    assert f"t10k-images-idx3-ubyte{blocked}" in names


def test_interrupt_between_write_and_rename_leaves_nothing(copied, test_set, monkeypatch):
    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(_files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _load(copied)
    assert _decoded(copied) == []
    monkeypatch.undo()
    x, _ = _load(copied)
    np.testing.assert_array_equal(x, test_set[0])


def test_planted_links_are_never_followed(copied, test_set, monkeypatch, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    victim = outside / "victim"
    victim.write_bytes(b"precious")
    folder = copied / "decoded"
    folder.mkdir()
    # At the old predictable name, and at the next name the temporary would get.
    stem = "t10k-images-idx3-ubyte"
    (folder / f"{stem}.tmp{os.getpid()}.npy").symlink_to(victim)
    planted = folder / f".{stem}.npy.planted.tmp"
    planted.symlink_to(victim)
    names = iter(["planted", "planted", *(f"fresh{i}" for i in range(100))])
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: names)
    x, _ = _load(copied)
    np.testing.assert_array_equal(x, test_set[0])
    assert victim.read_bytes() == b"precious"
    assert planted.is_symlink() and os.readlink(planted) == str(victim)
    assert (folder / f"{stem}.npy").is_file() and not (folder / f"{stem}.npy").is_symlink()


def test_linked_cache_directory_is_not_used(copied, test_set, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere")
    (copied / "decoded").symlink_to(outside, target_is_directory=True)
    x, _ = _load(copied)
    np.testing.assert_array_equal(x, test_set[0])
    assert list(outside.iterdir()) == []


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
