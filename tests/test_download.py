"""Downloads against a local HTTP server on 127.0.0.1: mirrors, corruption, truncation."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

import xpnn
from xpnn.download import RemoteFile, ensure_files

PAYLOAD = bytes(range(256)) * 64
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append(self.path)
        kind = self.path.split("/")[1]
        if kind == "good":
            body, length = PAYLOAD, len(PAYLOAD)
        elif kind == "corrupt":
            body = bytes([PAYLOAD[0] ^ 1]) + PAYLOAD[1:]
            length = len(body)
        elif kind == "truncated":  # promises the whole file, sends half, hangs up
            body, length = PAYLOAD[: len(PAYLOAD) // 2], len(PAYLOAD)
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    monkeypatch.delenv("XPNN_OFFLINE", raising=False)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _remote(base, *kinds):
    return RemoteFile("file.bin", SHA, tuple(f"{base}/{k}/file.bin" for k in kinds))


@pytest.mark.parametrize(
    "kinds",
    [
        ("good",),
        ("missing", "good"),
        ("corrupt", "good"),
        ("truncated", "good"),
        ("missing", "corrupt", "truncated", "good"),
    ],
    ids=["good", "404-then-good", "corrupt-then-good", "truncated-then-good", "all-bad-then-good"],
)
def test_bad_mirrors_are_skipped(server, tmp_path, kinds):
    httpd, base = server
    paths = ensure_files([_remote(base, *kinds)], tmp_path)
    assert paths["file.bin"].read_bytes() == PAYLOAD
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]  # nothing else left
    assert [r.split("/")[1] for r in httpd.requests] == list(kinds)


def test_all_mirrors_bad_leaves_nothing(server, tmp_path):
    _, base = server
    with pytest.raises(xpnn.DataError) as info:
        ensure_files([_remote(base, "missing", "corrupt", "truncated")], tmp_path)
    message = str(info.value)
    assert "file.bin" in message and str(tmp_path) in message and "XPNN_DATA_DIR" in message
    assert "404" in message
    assert list(tmp_path.iterdir()) == []


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
