"""``download_release`` against a real HTTP server on 127.0.0.1 that fails, cuts responses short,
honours or ignores ``Range``: retries, resume, hash checks, file modes, the CLI verb.

The release is a small folder of random files with a real ``MANIFEST.json`` (``write_manifest``):
the downloader reads nothing but the manifest and the files it lists.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import random
import stat
import threading
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.errors import CheckFailed, IntegrityError, UserError
from benchmark.release.download import download_release
from benchmark.release.locate import resolve_release
from benchmark.release.manifest import MANIFEST_NAME, read_manifest, verify_files, write_manifest

BIG = "data/big.bin"
SIZE = 300_000


@pytest.fixture()
def source(tmp_path) -> Path:
    root = tmp_path / "served" / "v7"
    rng = random.Random(0)
    (root / "data").mkdir(parents=True)
    (root / BIG).write_bytes(rng.randbytes(SIZE))
    (root / "data" / "small.txt").write_text("a small file\n")
    write_manifest(root, {"name": "download-test", "release": "v7", "version": "0.0.1", "sets": [],
                          "generator": {"version": "test", "config": {}}, "library_versions": {}})
    return root


class _Server:
    """Serves a folder; ``faults[path]`` is a list of what the next requests of that path get:
    an HTTP status to fail with, ``"cut"`` (half the body, then the connection closes),
    ``"truncate"`` (half the body as a complete response: a Content-Length of that half, as a man in
    the middle would send) or ``"no-range"`` (the whole file with 200, ignoring ``Range``).
    ``log`` records (path, Range)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.faults, self.log = folder, {}, []
        handler = functools.partial(_Handler, self)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def requests(self, path: str) -> list[str | None]:
        return [rng for p, rng in self.log if p == path]


class _Handler(http.server.BaseHTTPRequestHandler):
    def __init__(self, server: _Server, *args, **kwargs) -> None:
        self.state = server
        super().__init__(*args, **kwargs)

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        path = self.path.lstrip("/")
        self.state.log.append((path, self.headers.get("Range")))
        fault = self.state.faults.get(path, []).pop(0) if self.state.faults.get(path) else None
        if isinstance(fault, int):
            self.send_error(fault)
            return
        file = self.state.folder / path
        if not file.is_file():
            self.send_error(404)
            return
        data = file.read_bytes()
        start = 0
        ranged = self.headers.get("Range")
        if ranged and fault != "no-range":
            start = int(ranged.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if fault == "truncate":
            body = body[: len(body) // 2]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "cut":
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture()
def server(source):
    servers = []

    def start() -> _Server:
        servers.append(_Server(source))
        return servers[-1]

    yield start
    for s in servers:
        s.httpd.shutdown()


@pytest.fixture()
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _assert_complete(target: Path, source: Path) -> None:
    assert read_manifest(target) == read_manifest(source)
    verify_files(target)
    assert not [p for p in target.rglob("*") if p.name.endswith(".part") or p.name == ".download"]


def test_a_failed_request_is_retried_and_a_cut_response_resumed_with_range(server, source, tmp_path, umask_022):
    srv = server()
    srv.faults[BIG] = [503, "cut"]
    target = download_release("v7", srv.url, tmp_path / "got", retries=3, backoff=0)
    _assert_complete(target, source)
    # 503, then a full request cut at half, then a Range request for the rest.
    assert srv.requests(BIG) == [None, None, f"bytes={SIZE // 2}-"]
    # Downloaded files read like any other file (mkstemp's 0600 used to leak through).
    for path in [target / MANIFEST_NAME, target / BIG, target / "data" / "small.txt"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_retries_are_bounded_and_the_partial_file_resumes_in_the_next_run(server, source, tmp_path):
    srv = server()
    srv.faults[BIG] = ["cut", 503, 503]
    target = tmp_path / "got"
    with pytest.raises(CheckFailed, match=r"big.bin failed after 3 attempts: HTTP 503"):
        download_release("v7", srv.url, target, retries=2, backoff=0)
    assert len(srv.requests(BIG)) == 3
    part = target / "data" / ".big.bin.part"
    assert part.stat().st_size == SIZE // 2  # kept for the next run
    assert not (target / MANIFEST_NAME).exists() and not (target / BIG).exists()
    download_release("v7", srv.url, target, retries=0, backoff=0)
    assert srv.requests(BIG)[-1] == f"bytes={SIZE // 2}-"
    _assert_complete(target, source)


def test_a_stale_partial_file_or_a_server_ignoring_range_still_gives_the_right_bytes(server, source, tmp_path):
    srv = server()
    target = tmp_path / "got"
    part = target / "data" / ".big.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1000)  # left by a run against other bytes
    download_release("v7", srv.url, target, retries=0, backoff=0)
    assert srv.requests(BIG) == ["bytes=1000-", None]  # resumed, failed the hash, fetched once from scratch
    _assert_complete(target, source)

    (target / BIG).unlink()
    part.write_bytes((source / BIG).read_bytes()[:5000])
    srv.faults[BIG] = ["no-range"]
    download_release("v7", srv.url, target, retries=0, backoff=0)
    assert srv.requests(BIG)[-1] == "bytes=5000-"  # answered with 200 and the whole file: read from the start
    _assert_complete(target, source)


def test_a_file_that_does_not_match_its_hash_is_refused_and_nothing_is_left(server, source, tmp_path):
    data = (source / BIG).read_bytes()
    (source / BIG).write_bytes(data[:-10] + b"0123456789")
    target = tmp_path / "got"
    with pytest.raises(IntegrityError, match="data/big.bin: downloaded bytes"):
        download_release("v7", server().url, target, retries=0, backoff=0)
    assert not (target / BIG).exists() and not (target / MANIFEST_NAME).exists()
    assert not [p for p in target.rglob("*") if p.name.endswith(".part")]


def test_a_file_larger_than_its_manifest_size_is_aborted_and_discarded(server, source, tmp_path):
    """A server sending a 507 MiB file the manifest lists at 363 KB must not fill the disk: the
    download stops as soon as the bytes exceed the listed size (here: 64 extra bytes)."""
    (source / BIG).write_bytes((source / BIG).read_bytes() + b"x" * 64)
    target = tmp_path / "got"
    with pytest.raises(IntegrityError, match=r"data/big\.bin: the server sent more than the \d+ bytes the manifest"):
        download_release("v7", server().url, target, retries=0, backoff=0)
    assert not (target / BIG).exists() and not (target / MANIFEST_NAME).exists()
    assert not [p for p in target.rglob("*") if p.name.endswith(".part")]


@pytest.mark.parametrize("fault", ["truncate", "cut"])
def test_a_truncated_manifest_leaves_nothing_a_later_run_trusts(server, source, tmp_path, fault, capsys):
    """Issue 17.6: the manifest is the root of every hash check; a truncated one (a short but complete-
    looking response, or a connection cut mid-way) is one line naming it, and leaves no manifest, staged
    copy or partial file that a later run or a loader could take for a release."""
    srv = server()
    target = tmp_path / "got"
    srv.faults[MANIFEST_NAME] = [fault]
    assert main(["download", "v7", "--from", srv.url, "--to", str(target), "--retries", "0", "--no-progress"]) \
        in (1, 2)
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and MANIFEST_NAME in err, err
    assert not (target / MANIFEST_NAME).exists()
    leftovers = sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) if target.exists() else []
    assert leftovers == [], leftovers  # no staged manifest, no .part, no data file fetched on its word
    with pytest.raises(UserError, match="not a frozen release"):
        read_manifest(target)
    # A later run against an honest server starts clean and ends with the complete, verified release.
    download_release("v7", srv.url, target, retries=0, backoff=0)
    _assert_complete(target, source)
    assert [rng for rng in srv.requests(MANIFEST_NAME)] == [None, None]  # the cut part was not resumed


def test_a_shortened_manifest_of_a_known_release_is_refused_by_its_pinned_hash(tmp_path):
    """A manifest that still parses after truncation (here: release v1's, one file entry dropped) cannot
    pass as a pinned release: its SHA-256 is checked against benchmark/release/known.py first."""
    repo = Path(__file__).resolve().parents[1]
    served = tmp_path / "served"
    served.mkdir()
    manifest = json.loads((repo / "data_cards" / "v1" / MANIFEST_NAME).read_text())
    dropped = sorted(manifest["files"])[-1]
    del manifest["files"][dropped]
    (served / MANIFEST_NAME).write_text(json.dumps(manifest))
    srv = _Server(served)
    try:
        target = tmp_path / "got"
        with pytest.raises(IntegrityError, match=r"MANIFEST\.json from .* has SHA-256 [0-9a-f]{12}.*; release "
                                                 r"metamer-bench-v1 1\.0\.0 is pinned to b1cf314d48d3"):
            download_release("v1", srv.url, target, retries=0, backoff=0)
        assert not target.exists() or sorted(target.rglob("*")) == []
        assert [p for p, _ in srv.log] == [MANIFEST_NAME]  # nothing fetched on its word
        # The real manifest passes the pin (the download then fails on the files this server lacks).
        (served / MANIFEST_NAME).write_bytes((repo / "data_cards" / "v1" / MANIFEST_NAME).read_bytes())
        with pytest.raises(UserError, match="HTTP 404"):
            download_release("v1", srv.url, target, retries=0, backoff=0)
    finally:
        srv.httpd.shutdown()


def test_a_missing_file_is_an_input_error_not_retried(server, source, tmp_path):
    srv = server()
    with pytest.raises(UserError, match="HTTP 404") as err:
        download_release("v7", srv.url + "nothing-here/", tmp_path / "got", retries=5, backoff=0)
    assert not isinstance(err.value, CheckFailed)
    assert len(srv.log) == 1


@pytest.mark.parametrize("as_url", [False, True])
def test_a_local_folder_is_copied_and_checked(source, tmp_path, as_url, umask_022):
    where = source.as_uri() if as_url else str(source)
    target = download_release("v7", where, tmp_path / "got")
    _assert_complete(target, source)
    assert stat.S_IMODE((target / BIG).stat().st_mode) == 0o644


def test_cli_download_goes_to_the_cache_with_named_progress_and_exit_codes(server, source, tmp_path, monkeypatch,
                                                                           capsys):
    srv = server()
    cache = tmp_path / "cache"
    monkeypatch.setenv("METAMER_BENCH_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    assert main(["download", "v7", "--from", srv.url]) == 0
    captured = capsys.readouterr()
    assert str(cache / "releases" / "v7") in captured.out
    # One bar per file, named by release and path, counting bytes, left on screen (final state + newline).
    finals = [line.rsplit("\r", 1)[-1] for line in captured.err.split("\n")]
    assert any(f.startswith(f"v7 {BIG}: 100%") and "/293k" in f for f in finals), captured.err
    assert resolve_release("v7") == cache / "releases" / "v7"
    _assert_complete(cache / "releases" / "v7", source)

    srv.faults[BIG] = [503, 503]
    assert main(["download", "v7", "--from", srv.url, "--to", str(tmp_path / "again"), "--retries", "1",
                 "--no-progress"]) == 1
    assert "failed after 2 attempts" in capsys.readouterr().err
    assert main(["download", "v7", "--from", srv.url + "missing/", "--to", str(tmp_path / "x")]) == 2
    assert json.loads((cache / "releases" / "v7" / MANIFEST_NAME).read_text())["release"] == "v7"
