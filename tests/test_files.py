"""Atomic writes: unpredictable exclusive temporaries, links never followed, nothing left."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc

import pytest

from xpnn import _files
from xpnn._files import atomic_write, default_file_mode, open_regular, read_regular


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_writes_with_the_mode_open_gives(tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_write(tmp_path / "out.bin", b"data")
        with open(tmp_path / "plain.bin", "wb"):
            pass
        assert default_file_mode() == 0o666 & ~umask
    finally:
        os.umask(previous)
    assert (tmp_path / "out.bin").read_bytes() == b"data"
    mode = stat.S_IMODE((tmp_path / "out.bin").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.bin").stat().st_mode) == 0o666 & ~umask


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
def test_read_regular_reads_whole_files_and_one_byte_past_the_limit(tmp_path, size):
    path = tmp_path / "f"
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path.write_bytes(data)
    assert read_regular(path, 4096, ValueError) == data[:4097]
    assert read_regular(path, 1 << 30, ValueError) == data


def test_read_regular_reserves_no_more_than_the_file(tmp_path):
    """A small file read under a large limit costs about its own size, not the limit."""
    path = tmp_path / "small"
    path.write_bytes(b"x" * 1000)
    tracemalloc.start()
    try:
        read_regular(path, 1 << 28, ValueError)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 16


_SLOW_WRITE = """
import sys, time
from xpnn._files import atomic_write
def slow(f):
    f.write(b"partial")
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
atomic_write(sys.argv[1], slow)
"""


def test_sigterm_while_writing_removes_the_temporary(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITE, str(tmp_path / "out.bin")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout.readline() == b"writing\n"
        assert len(list(tmp_path.iterdir())) == 1  # the temporary
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert list(tmp_path.iterdir()) == []


def test_sigterm_handler_is_restored_and_others_are_kept(tmp_path):
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    seen = []
    atomic_write(tmp_path / "a", lambda f: seen.append(signal.getsignal(signal.SIGTERM)))
    assert seen[0] is not signal.SIG_DFL  # raising while the temporary exists
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        atomic_write(tmp_path / "b", lambda f: seen.append(signal.getsignal(signal.SIGTERM)))
        assert seen[1] is signal.SIG_IGN  # a choice someone made is left alone
    finally:
        signal.signal(signal.SIGTERM, previous)
    thread = threading.Thread(target=atomic_write, args=(tmp_path / "c", b"x"))
    thread.start()
    thread.join()
    assert (tmp_path / "c").read_bytes() == b"x"  # fine outside the main thread


def test_open_regular_reads_regular_files(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    with open_regular(tmp_path / "f") as f:
        assert f.read() == b"abc"


def test_open_regular_refuses_a_fifo_at_once(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(OSError, match="not a regular file"):
        open_regular(fifo)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("path", ["directory", "/dev/null"])
def test_open_regular_refuses_directories_and_devices(tmp_path, path):
    with pytest.raises(OSError, match="not a regular file"):
        open_regular(tmp_path if path == "directory" else path)
