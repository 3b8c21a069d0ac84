"""Downloading the datasets, against an HTTP server on the loopback address (no test touches the
internet): a complete transfer, an interrupted one resumed with a range request, a wrong
checksum rejected, an unreachable server reported in one line, and a gzipped file decompressed;
never a half-written file left where it would be used."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading

import pytest

from conftest import assert_user_error, run_cli
from tritonlm.corpora import downloads
from tritonlm.corpora.downloads import DownloadError, RemoteFile, dataset_text, fetch

DATA = b"".join(b"story %06d: once upon a time.\n" % i for i in range(40_000))  # ~1.2 MB


class Server(http.server.ThreadingHTTPServer):
    """Serves DATA (and a gzipped copy) with range requests; ``mode`` "cut" stops every body
    half-way, "bad-sha" publishes a wrong checksum. Records the Range headers it received."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = "normal"
        self.ranges: list[str | None] = []
        self.files = {"/data/file.txt": DATA, "/data/file.txt.gz": gzip.compress(DATA)}


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _headers(self, body: bytes, start: int = 0) -> None:
        sha = hashlib.sha256(body).hexdigest() if self.server.mode != "bad-sha" else "0" * 64
        self.send_header("X-Linked-ETag", f'"{sha}"')
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()

    def do_HEAD(self):
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self._headers(body)

    def do_GET(self):
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        header = self.headers.get("Range")
        self.server.ranges.append(header)
        start = int(header.split("=")[1].rstrip("-")) if header else 0
        self.send_response(206 if header else 200)
        if header:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self._headers(body, start)
        payload = body[start:]
        if self.server.mode == "cut":
            payload = payload[: len(payload) // 2]
        self.wfile.write(payload)
        self.wfile.flush()
        if self.server.mode == "cut":
            self.close_connection = True


@pytest.fixture
def server(monkeypatch, tmp_path):
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TRITONLM_HUB", f"http://127.0.0.1:{srv.server_address[1]}")
    monkeypatch.setenv("TRITONLM_CACHE", str(tmp_path / "cache"))
    yield srv
    srv.shutdown()
    srv.server_close()


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_complete_download_is_checked_and_renamed_into_place(server, tmp_path):
    path = fetch(RemoteFile("data/file.txt", "file.txt"), tmp_path, progress=False)
    assert path.read_bytes() == DATA and files_in(tmp_path) == ["file.txt"]
    assert fetch(RemoteFile("data/file.txt", "file.txt"), tmp_path, progress=False) == path  # reused
    assert server.ranges == [None]


def test_an_interrupted_download_resumes_where_it_stopped(server, tmp_path):
    server.mode = "cut"
    with pytest.raises(DownloadError, match=r"(stopped at|ended after) [\d,]+ .*run the same command again to resume"):
        fetch(RemoteFile("data/file.txt", "file.txt"), tmp_path, progress=False)
    part = tmp_path / "file.txt.part"
    have = part.stat().st_size
    assert 0 < have < len(DATA) and not (tmp_path / "file.txt").exists()
    server.mode = "normal"
    path = fetch(RemoteFile("data/file.txt", "file.txt"), tmp_path, progress=False)
    assert path.read_bytes() == DATA and not part.exists()
    assert server.ranges[-1] == f"bytes={have}-"  # only the missing bytes were asked for


def test_a_wrong_checksum_is_rejected_and_the_partial_file_deleted(server, tmp_path):
    server.mode = "bad-sha"
    with pytest.raises(DownloadError, match=r"SHA-256 [0-9a-f]{64}, not the published 0{64}.*deleted"):
        fetch(RemoteFile("data/file.txt", "file.txt"), tmp_path, progress=False)
    assert files_in(tmp_path) == []


def test_a_pinned_checksum_wins_over_the_servers(server, tmp_path):
    with pytest.raises(DownloadError, match="not the published"):
        fetch(RemoteFile("data/file.txt", "file.txt", sha256="f" * 64), tmp_path, progress=False)
    assert files_in(tmp_path) == []


def test_a_gzipped_dataset_is_decompressed_into_the_cache(server, monkeypatch):
    monkeypatch.setitem(downloads.DATASETS, "fixture", {"valid": RemoteFile("data/file.txt.gz", "file.txt.gz",
                                                                            gzipped=True)})
    text = dataset_text("fixture", "valid", progress=False)
    assert text.name == "file.txt" and text.read_bytes() == DATA
    assert files_in(text.parent) == ["file.txt"]  # the archive is gone, nothing half-written


def test_offline_the_command_fails_in_one_line_naming_the_url(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_cli("util.downloads", "owt", "--split", "valid",
                   env={"TRITONLM_HUB": f"http://127.0.0.1:{port}", "TRITONLM_CACHE": str(tmp_path)})
    assert_user_error(proc, rf"cannot download http://127.0.0.1:{port}/stanford-cs336/owt-sample/resolve/main/"
                            r"owt_valid.txt.gz .*place it at .*owt_valid.txt.gz \(gzipped, as published\)")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_the_leaderboard_data_argument_downloads_both_splits(server, monkeypatch):
    from tritonlm.corpora.settings import DataSettings
    from tritonlm.corpora.sources import source_pair

    monkeypatch.setitem(downloads.DATASETS, "owt", {
        "train": RemoteFile("data/file.txt.gz", "owt_train.txt.gz", gzipped=True),
        "valid": RemoteFile("data/file.txt", "owt_valid.txt"),
    })
    train, val = (s.path() for s in source_pair("owt", None, DataSettings(train_bytes=0, val_bytes=100_000)))
    assert train.read_bytes() == DATA and val.read_bytes() == DATA[: len(val.read_bytes())]
    assert 0 < val.stat().st_size <= 100_000 and val.read_bytes().endswith(b"\n")
