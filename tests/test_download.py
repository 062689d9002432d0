"""Downloads against a local HTTP server on 127.0.0.1: dead, slow, lying and broken mirrors."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

import xpnn
from xpnn import download, weights
from xpnn.download import RemoteFile, ensure_files

PAYLOAD = bytes(range(256)) * 64  # 16384 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()
TIMEOUT = 0.5  # seconds a test mirror may stay silent


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append(self.path)
        kind = self.path.split("/")[1]
        body, length = self.server.payload, len(self.server.payload)
        try:
            if kind in ("missing", "forbidden"):
                self.send_error(404 if kind == "missing" else 403)
                return
            if kind == "redirect":  # to a local file: never followed
                self.send_response(302)
                self.send_header("Location", "file:///etc/passwd")
                self.end_headers()
                return
            if kind == "headers":  # a header byte every 0.05 s: never silent, for 30 s
                self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
                for _ in range(600):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
                return
            if kind == "silent":  # accepts, then says nothing for longer than the timeout
                time.sleep(4 * TIMEOUT)
            elif kind == "corrupt":
                body = bytes([body[0] ^ 1]) + body[1:]
            elif kind == "truncated":  # promises the whole file, sends half, hangs up
                body = body[: length // 2]
            elif kind == "oversized":  # more than the pinned size
                body = body + body
                length = len(body)
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if kind == "dribble":  # a byte every 0.1 s: never silent, never done
                for i in range(length):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.1)
            else:
                self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on this mirror, as it should
        self.close_connection = True

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client hanging up on a slow mirror is expected here


def _serve(payload):
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    httpd.payload = payload
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread


@pytest.fixture
def server(monkeypatch):
    monkeypatch.delenv("XPNN_OFFLINE", raising=False)
    httpd, thread = _serve(PAYLOAD)
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _remote(base, *kinds):
    return RemoteFile("file.bin", SHA, tuple(f"{base}/{k}/file.bin" for k in kinds), 16384)


BAD_MIRRORS = [
    "missing",
    "forbidden",
    "corrupt",
    "truncated",
    "silent",
    "dribble",
    "headers",
    "oversized",
    "redirect",
]


@pytest.mark.parametrize("bad", BAD_MIRRORS)
def test_a_bad_first_mirror_is_skipped(server, tmp_path, capfd, bad):
    httpd, base = server
    started = time.monotonic()
    paths = ensure_files([_remote(base, bad, "good")], tmp_path, timeout=TIMEOUT)
    assert time.monotonic() - started < 10  # the slow mirrors were given up on
    assert paths["file.bin"].read_bytes() == PAYLOAD
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]  # nothing partial left
    assert [r.split("/")[1] for r in httpd.requests] == [bad, "good"]
    assert capfd.readouterr().err == ""  # no log lines, no progress bar off a terminal


def test_all_mirrors_failing_is_one_message_naming_each(server, tmp_path, capfd):
    _, base = server
    remote = _remote(
        base,
        "missing",
        "forbidden",
        "corrupt",
        "truncated",
        "silent",
        "oversized",
        "headers",
        "redirect",
    )
    with pytest.raises(xpnn.DataError) as info:
        ensure_files([remote], tmp_path, timeout=TIMEOUT)
    message = str(info.value)
    assert "\n" not in message, message
    for url in remote.urls:
        assert url in message
    assert "HTTP 404" in message and "HTTP 403" in message
    assert "SHA-256" in message and "truncated" in message and "timeout" in message
    assert "deadline" in message and "HTTP 302" in message
    assert "longer than the expected 16384 bytes" in message  # stopped reading there
    assert str(tmp_path) in message and "XPNN_DATA_DIR" in message and SHA in message
    assert list(tmp_path.iterdir()) == []
    assert capfd.readouterr().err == ""


def test_interrupted_download_leaves_nothing(server, tmp_path, monkeypatch):
    _, base = server
    real_sha256 = download.hashlib.sha256

    class Interrupting:
        def __init__(self):
            self._digest = real_sha256()

        def update(self, data):
            raise KeyboardInterrupt

    monkeypatch.setattr(download.hashlib, "sha256", Interrupting)
    with pytest.raises(KeyboardInterrupt):
        ensure_files([_remote(base, "good")], tmp_path, timeout=TIMEOUT)
    assert list(tmp_path.iterdir()) == []


def test_planted_link_at_the_target_is_replaced_not_followed(server, tmp_path, tmp_path_factory):
    _, base = server
    victim = tmp_path_factory.mktemp("outside") / "victim"
    (tmp_path / "file.bin").symlink_to(victim)  # dangling: the file counts as missing
    ensure_files([_remote(base, "good")], tmp_path, timeout=TIMEOUT)
    assert not victim.exists()
    assert not (tmp_path / "file.bin").is_symlink()
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_only(server, tmp_path, monkeypatch):
    _, base = server
    terminal = _Terminal()
    monkeypatch.setattr(download.sys, "stderr", terminal)
    ensure_files([_remote(base, "good")], tmp_path, timeout=TIMEOUT)
    drawn = terminal.getvalue()
    assert drawn.startswith("\rfile.bin:") and "100%" in drawn and "16.4k/16.4k" in drawn
    os.remove(tmp_path / "file.bin")
    pipe = io.StringIO()
    monkeypatch.setattr(download.sys, "stderr", pipe)
    ensure_files([_remote(base, "good")], tmp_path, timeout=TIMEOUT)
    assert pipe.getvalue() == ""


def test_present_file_is_not_downloaded(server, tmp_path):
    httpd, base = server
    (tmp_path / "file.bin").write_bytes(PAYLOAD)
    ensure_files([_remote(base, "good")], tmp_path)
    assert httpd.requests == []


def test_offline_switch(server, tmp_path, monkeypatch):
    httpd, base = server
    monkeypatch.setenv("XPNN_OFFLINE", "1")
    with pytest.raises(xpnn.DataError, match="turned off by XPNN_OFFLINE"):
        ensure_files([_remote(base, "good")], tmp_path)
    assert httpd.requests == []


def test_book_weights_come_from_both_editions():
    urls = weights.BOOK_WEIGHTS.urls
    assert len(urls) == 2
    assert "oreilly-japan/deep-learning-from-scratch" in urls[0]
    assert "WegraLee/deep-learning-from-scratch" in urls[1]
    assert all(
        url.startswith("https://") and url.endswith("/ch03/sample_weight.pkl") for url in urls
    )


def test_book_weights_survive_a_dead_first_mirror(data_dir, tmp_path, monkeypatch):
    """pretrained_network() fetches from the second edition's mirror when the first is gone."""
    with open(os.path.join(data_dir, "sample_weight.pkl"), "rb") as f:
        book = f.read()
    monkeypatch.delenv("XPNN_OFFLINE", raising=False)
    httpd, thread = _serve(book)
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        local = RemoteFile(
            weights.BOOK_WEIGHTS.name,
            weights.BOOK_WEIGHTS.sha256,
            (f"{base}/missing/sample_weight.pkl", f"{base}/good/sample_weight.pkl"),
            weights.BOOK_WEIGHTS.size,
        )
        monkeypatch.setattr(weights, "BOOK_WEIGHTS", local)
        network = xpnn.pretrained_network(data_dir=tmp_path, backend="numpy")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
    assert network.layer_sizes == (784, 50, 100, 10)
    assert [r.split("/")[1] for r in httpd.requests] == ["missing", "good"]
    assert [p.name for p in tmp_path.iterdir()] == ["sample_weight.pkl"]


def test_header_trickle_is_bounded_by_the_whole_exchange_deadline(server, tmp_path):
    """Headers arriving a byte at a time (never silent) are cut off at the deadline."""
    _, base = server
    started = time.monotonic()
    with pytest.raises(xpnn.DataError, match="deadline"):
        ensure_files([_remote(base, "headers")], tmp_path, timeout=TIMEOUT)
    assert time.monotonic() - started < TIMEOUT + 16384 / download.MIN_RATE + 5  # not 30 s
    assert list(tmp_path.iterdir()) == []


def test_downloaded_files_get_the_mode_open_gives(server, tmp_path):
    _, base = server
    previous = os.umask(0o027)
    try:
        ensure_files([_remote(base, "good")], tmp_path, timeout=TIMEOUT)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "file.bin").stat().st_mode) == 0o640


_DOWNLOAD_FOREVER = """
import sys
from xpnn.download import RemoteFile, ensure_files
url, folder = sys.argv[1:]
ensure_files([RemoteFile("file.bin", "0" * 64, (url,), 16384)], folder, timeout=30)
"""


def test_sigterm_during_a_download_leaves_no_temporary(server, tmp_path):
    _, base = server
    folder = tmp_path / "data"
    folder.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", _DOWNLOAD_FOREVER, f"{base}/dribble/file.bin", str(folder)],
        env=dict(os.environ, XPNN_OFFLINE="0"),
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not list(folder.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the temporary exists
        assert list(folder.iterdir()), "the download never started"
        time.sleep(0.3)  # some bytes written
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("value", ["1", "true", "YES", "On", " on "])
def test_offline_values_that_forbid(server, tmp_path, monkeypatch, value):
    httpd, base = server
    monkeypatch.setenv("XPNN_OFFLINE", value)
    with pytest.raises(xpnn.DataError, match="turned off by XPNN_OFFLINE"):
        ensure_files([_remote(base, "good")], tmp_path, timeout=TIMEOUT)
    assert httpd.requests == []


@pytest.mark.parametrize("value", ["0", "false", "No", "OFF", ""])
def test_offline_values_that_allow(server, tmp_path, monkeypatch, value):
    _, base = server
    monkeypatch.setenv("XPNN_OFFLINE", value)
    paths = ensure_files([_remote(base, "good")], tmp_path, timeout=TIMEOUT)
    assert paths["file.bin"].read_bytes() == PAYLOAD


@pytest.mark.parametrize("value", ["maybe", "2", "offline"])
def test_offline_nonsense_is_one_line(tmp_path, monkeypatch, value):
    monkeypatch.setenv("XPNN_OFFLINE", value)
    (tmp_path / "file.bin").write_bytes(PAYLOAD)
    with pytest.raises(xpnn.DataError) as info:
        ensure_files([_remote("http://127.0.0.1:9", "good")], tmp_path)
    message = str(info.value)
    assert "\n" not in message and f"XPNN_OFFLINE={value!r}" in message
    assert "true" in message and "false" in message


def test_tilde_is_expanded_in_the_data_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XPNN_DATA_DIR", "~/x")
    assert download.data_home() == tmp_path / "x"
    assert download.data_home("~/y") == tmp_path / "y"


def test_missing_files_are_named_together_with_their_pins(tmp_path):
    from xpnn.mnist import MNIST_FILES

    wanted = [MNIST_FILES["test", "images"], MNIST_FILES["test", "labels"], weights.BOOK_WEIGHTS]
    with pytest.raises(xpnn.DataError) as info:
        ensure_files(wanted, tmp_path)
    message = str(info.value)
    assert "\n" not in message
    for remote in wanted:
        assert f"{remote.name} (SHA-256 {remote.sha256})" in message


def test_eval_offline_names_every_missing_file_at_once(tmp_path):
    from xpnn.mnist import MNIST_FILES

    result = subprocess.run(
        [sys.executable, "-m", "xpnn", "eval", "--quiet", "--data-dir", str(tmp_path)],
        env=dict(os.environ, XPNN_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    for remote in [MNIST_FILES["test", "images"], MNIST_FILES["test", "labels"]]:
        assert remote.sha256 in result.stderr
    assert weights.BOOK_WEIGHTS.sha256 in result.stderr


def test_fifo_at_the_book_weights_is_one_line_at_once(tmp_path):
    os.mkfifo(tmp_path / "sample_weight.pkl")
    started = time.monotonic()
    with pytest.raises(xpnn.DataError, match="not a regular file"):
        xpnn.pretrained_network(data_dir=tmp_path, backend="numpy", download=False)
    assert time.monotonic() - started < 5
