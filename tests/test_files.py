"""Atomic writes: unpredictable exclusive temporaries, links never followed, nothing left."""

from __future__ import annotations

import os
import stat
import tempfile
import tracemalloc

import pytest

from xpnn import _files
from xpnn._files import atomic_write, default_file_mode, read_at_most


def test_writes_with_the_umask_mode(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write(target, b"data")
    assert target.read_bytes() == b"data"
    assert stat.S_IMODE(target.stat().st_mode) == default_file_mode()
    current = os.umask(0o077)
    os.umask(current)
    assert default_file_mode() == 0o666 & ~current


def test_callable_content_and_replacement(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_link_at_the_target_is_replaced_not_written_through(tmp_path, tmp_path_factory):
    victim = tmp_path_factory.mktemp("outside") / "victim"
    victim.write_bytes(b"precious")
    target = tmp_path / "out.bin"
    target.symlink_to(victim)
    atomic_write(target, b"data")
    assert victim.read_bytes() == b"precious"
    assert not target.is_symlink() and target.read_bytes() == b"data"


def test_links_planted_at_temporary_names_are_skipped(tmp_path, tmp_path_factory, monkeypatch):
    victim = tmp_path_factory.mktemp("outside") / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / ".out.bin.guess.tmp").symlink_to(victim)
    names = iter(["guess", "guess", "fresh"])
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: names)
    atomic_write(tmp_path / "out.bin", b"data")
    assert victim.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.bin.guess.tmp", "out.bin"]


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError, MemoryError])
def test_any_failure_removes_the_temporary(tmp_path, failure):
    def write_then_fail(f):
        f.write(b"partial")
        raise failure

    (tmp_path / "out.bin").write_bytes(b"old")
    with pytest.raises(failure):
        atomic_write(tmp_path / "out.bin", write_then_fail)
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    assert (tmp_path / "out.bin").read_bytes() == b"old"


def test_directory_at_the_target_fails_cleanly(tmp_path):
    (tmp_path / "out.bin").mkdir()
    with pytest.raises(OSError):
        atomic_write(tmp_path / "out.bin", b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_interrupt_between_write_and_rename(tmp_path, monkeypatch):
    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(_files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "out.bin", b"data")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 << 20])
def test_read_at_most_reads_whole_files_and_one_byte_past_the_limit(tmp_path, size):
    path = tmp_path / "f"
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path.write_bytes(data)
    with open(path, "rb") as f:
        assert read_at_most(f, 4096) == data[:4097]
    with open(path, "rb") as f:
        assert read_at_most(f, 1 << 30) == data


def test_read_at_most_reserves_no_more_than_the_file(tmp_path):
    """A small file read under a large limit costs about its own size, not the limit."""
    path = tmp_path / "small"
    path.write_bytes(b"x" * 1000)
    tracemalloc.start()
    try:
        with open(path, "rb") as f:
            read_at_most(f, 1 << 28)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 16
