"""Downloading a release: manifest first, then every file it lists, each SHA-256-checked.

``download_release(release, source, to=None)``: ``source`` is an http(s) URL of a release folder,
a ``file://`` URL or path of a local release folder (copied), or a Hugging Face hub dataset id
(``org/name``). ``to`` defaults to ``<cache>/releases/<release>`` (``$METAMER_BENCH_CACHE``,
default ``~/.cache/metamer-bench``), where :func:`benchmark.release.locate.resolve_release`
finds a release by name from any working directory.

Contract:

- **Never a half-written file under a release name.** Each file is written to
  ``.<name>.part`` beside its destination, its size and SHA-256 are checked against the manifest,
  it gets the mode a plain ``open()`` would give (not mkstemp's 0600) and only then is it renamed.
  A file whose bytes do not match raises :class:`IntegrityError` naming it and leaves nothing.
  The manifest lands last: a folder with a ``MANIFEST.json`` is a complete, verified release.
- **The manifest is the root of trust, so a bad one leaves nothing.** It has no hash to be
  checked against, so it is checked otherwise: a response shorter than its ``Content-Length`` is cut
  short (for every file), the manifest must parse and match its schema and the requested release
  name, and a release this package pins (:mod:`benchmark.release.known`, by name and version) must
  have the pinned SHA-256. A truncated or replaced manifest fails in one line naming it, before
  any file is fetched on its word, and its staged copy and partial file are removed, so no later
  run or loader can take it for a release.
- **Retries.** Transient failures (connection refused or reset, timeouts, a response cut short,
  HTTP 408/425/429/5xx) are retried up to ``retries`` times per file, after ``backoff``,
  ``2 * backoff``, ``4 * backoff``... seconds. Other HTTP errors (404: the source does not serve
  the file) are input errors and are not retried. When the retries are spent the download fails
  with :class:`CheckFailed` and keeps the partial file.
- **Resume.** A partial file, from this run's cut response or an earlier interrupted run, is
  continued with an HTTP ``Range`` request from its current size; a server that answers 200
  instead of 206 is read from the start. If a resumed file fails its hash (the part came from
  another version of the file), it is fetched once more from scratch before the hash failure
  is reported. Local sources are copied whole.
- Files already present with the right size and hash are skipped, so a re-run is cheap.
- Progress: one bar per file on stderr, named ``<release> <path>``, counting bytes, left on
  screen when done (off by default in the library; the CLI turns it on).
"""
from __future__ import annotations

import http.client
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from benchmark.errors import CheckFailed, IntegrityError, UserError
from benchmark.files import publish, sha256_file
from benchmark.release.locate import check_release_name, release_cache_dir
from benchmark.release.manifest import MANIFEST_NAME

_CHUNK = 1 << 20
# HTTP statuses worth another try: timeouts, rate limits and server-side failures.
TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
DEFAULT_RETRIES = 4
DEFAULT_BACKOFF = 1.0  # seconds before the first retry; doubles each time
# org/name, as the hub spells dataset ids; a string of this form that is also an existing folder is the folder.
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


class _Transient(Exception):
    """A failure that another attempt may not have (connection, timeout, cut response, 5xx)."""


def _part_path(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.part"


class _HttpSource:
    """A release folder served over http(s): ``GET base/<rel>``, with ``Range`` to resume."""

    def __init__(self, base: str, timeout: float) -> None:
        self.base, self.timeout = base.rstrip("/") + "/", timeout

    def url(self, rel: str) -> str:
        return self.base + urllib.parse.quote(rel)

    def fetch_into(self, rel: str, part: Path, size: int | None, bar) -> bool:
        """One attempt: continue ``part`` with the rest of ``rel``; True when it resumed a partial file."""
        offset = part.stat().st_size if part.exists() else 0
        if size is not None and offset >= size:
            return offset > 0  # complete (or too long): the hash check decides
        url = self.url(rel)
        request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            if err.code == 416:  # the part is not a prefix the server can continue: start over
                part.unlink(missing_ok=True)
                raise _Transient(f"HTTP 416 for a resume at byte {offset}") from err
            if err.code in TRANSIENT_HTTP:
                raise _Transient(f"HTTP {err.code} {err.reason}") from err
            raise UserError(f"{url}: HTTP {err.code} {err.reason}; the source does not serve this file "
                            "(is --from the URL of the release folder?)") from err
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            raise _Transient(str(getattr(err, "reason", err))) from err
        with response:
            resumed = offset > 0 and response.status == 206
            if not resumed:
                offset = 0  # a fresh request, or a server that ignored Range: read from the start
            # http.client's read(n) returns short, without an error, when the connection closes
            # before Content-Length bytes: count them ourselves (the manifest has no other size).
            declared = response.headers.get("Content-Length")
            expected_end = offset + int(declared) if declared and declared.isdigit() else None
            bar.reset(total=size)
            bar.update(offset)
            written = offset
            with open(part, "ab" if resumed else "wb") as out:
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except (http.client.HTTPException, OSError) as err:  # IncompleteRead, reset, timeout
                        raise _Transient(f"response cut short ({err!r})") from err
                    if not chunk:
                        break
                    written += len(chunk)
                    if size is not None and written > size:  # stop at once: never store more than listed
                        out.close()
                        part.unlink(missing_ok=True)
                        raise IntegrityError(f"{url}: the server sent more than the {size} bytes the manifest "
                                             "lists for this file; aborted and discarded")
                    out.write(chunk)
                    bar.update(len(chunk))
        got = part.stat().st_size
        if expected_end is not None and got < expected_end:
            raise _Transient(f"response cut short at {got} of the {expected_end} bytes the server announced")
        if size is not None and got < size:
            raise _Transient(f"response cut short at {got} of {size} bytes")
        return resumed


class _LocalSource:
    """A release folder on this machine (a path or a ``file://`` URL): files are copied whole."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def url(self, rel: str) -> str:
        return str(self.folder / rel)

    def fetch_into(self, rel: str, part: Path, size: int | None, bar) -> bool:
        source = self.folder / rel
        if not source.is_file():
            raise UserError(f"the source folder {self.folder} has no file {rel}")
        bar.reset(total=size)
        with open(source, "rb") as src, open(part, "wb") as out:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                out.write(chunk)
                bar.update(len(chunk))
        return False


def _download_file(source, rel: str, dest: Path, sha256: str | None, size: int | None, *, retries: int,
                   backoff: float, desc: str, progress: bool) -> None:
    """Fetch ``rel`` into ``dest`` by the contract in the module docstring."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest)
    if sha256 is None:
        part.unlink(missing_ok=True)  # nothing to check a resumed part against: start clean
    failures, restarted = 0, False
    with tqdm(total=size, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=True,
              disable=not progress) as bar:
        while True:
            try:
                resumed = source.fetch_into(rel, part, size, bar)
            except _Transient as err:
                failures += 1
                if failures > retries:
                    if sha256 is None:  # nothing to check a resumed part against: keep nothing
                        part.unlink(missing_ok=True)
                        kept = "nothing was kept"
                    else:
                        kept = f"the partial file {part} is kept and a re-run resumes it"
                    raise CheckFailed(f"download of {source.url(rel)} failed after {failures} attempts: {err}; "
                                      f"{kept}") from err
                time.sleep(backoff * 2 ** (failures - 1))
                continue
            if sha256 is None:
                break
            actual = sha256_file(part)
            if actual == sha256 and (size is None or part.stat().st_size == size):
                break
            part.unlink()
            if resumed and not restarted:
                restarted = True  # the kept part belonged to other bytes: one clean try
                continue
            raise IntegrityError(f"{rel}: downloaded bytes from {source.url(rel)} have SHA-256 {actual[:16]}..., "
                                 f"the manifest says {sha256[:16]}...; nothing was written")
    publish(part, dest)


def download_release(release: str, source: str, to: str | os.PathLike | None = None, timeout: float = 60.0, *,
                     retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF, progress: bool = False) -> Path:
    """Fetch release ``release`` from ``source`` into ``to`` (default ``<cache>/releases/<release>``);
    returns the folder. See the module docstring for retries, resume and what is checked."""
    check_release_name(release)
    if retries < 0 or backoff < 0:
        raise UserError(f"retries and backoff must be >= 0, got {retries} and {backoff}")
    target = Path(to) if to is not None else release_cache_dir() / release
    if source.startswith(("http://", "https://")):
        src = _HttpSource(source, timeout)
    elif HUB_ID.fullmatch(source) and not Path(source).exists():
        return _download_hub(source, target)
    else:
        folder = Path(urllib.request.url2pathname(urllib.parse.urlparse(source).path)
                      if source.startswith("file://") else source).expanduser()
        if not folder.is_dir():
            raise UserError(f"source {source} is neither an http(s) URL, an existing release folder, nor a hub "
                            "dataset id (org/name)")
        src = _LocalSource(folder)
    staging = target / ".download"
    created = [p for p in (target, *target.parents) if not p.exists()]
    try:
        manifest = _fetch_manifest(src, release, source, staging, retries=retries, backoff=backoff, progress=progress)
    except BaseException:
        # A manifest that failed its checks is no release: remove its staged copy and every folder
        # this call created, so nothing is left that a later run or a loader could trust.
        shutil.rmtree(staging, ignore_errors=True)
        for folder in created:  # deepest first; only if still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    for rel, entry in sorted(manifest["files"].items()):
        dest = target / rel
        if dest.is_file() and dest.stat().st_size == entry["bytes"] and sha256_file(dest) == entry["sha256"]:
            continue
        _download_file(src, rel, dest, entry["sha256"], entry["bytes"], retries=retries, backoff=backoff,
                       desc=f"{release} {rel}", progress=progress)
    # The manifest lands last: a folder with a manifest is a complete, verified release.
    os.replace(staging / MANIFEST_NAME, target / MANIFEST_NAME)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def _fetch_manifest(src, release: str, source: str, staging: Path, *, retries: int, backoff: float,
                    progress: bool) -> dict:
    """Fetch ``MANIFEST.json`` into ``staging`` and check it (module docstring); returns it parsed."""
    from benchmark.files import read_json, sha256_file
    from benchmark.release.known import KNOWN_RELEASES
    from benchmark.schemas import check_schema

    where = src.url(MANIFEST_NAME)
    path = staging / MANIFEST_NAME
    _download_file(src, MANIFEST_NAME, path, None, None, retries=retries, backoff=backoff,
                   desc=f"{release} {MANIFEST_NAME}", progress=progress)
    try:
        manifest = read_json(path)
    except UserError as err:
        raise IntegrityError(f"{MANIFEST_NAME} from {where} cannot be read ({str(err).removeprefix(f'{path}: ')}); "
                             "truncated or not a manifest, nothing was kept") from err
    check_schema(manifest, "manifest", "MANIFEST", f"the manifest at {where} is invalid")
    for pinned in KNOWN_RELEASES:
        if (pinned.name, pinned.version) == (manifest["name"], manifest["version"]):
            actual = sha256_file(path)
            if actual != pinned.manifest_sha256:
                raise IntegrityError(f"{MANIFEST_NAME} from {where} has SHA-256 {actual[:12]}...; release "
                                     f"{pinned.name} {pinned.version} is pinned to {pinned.manifest_sha256[:12]}... "
                                     "(benchmark/release/known.py): truncated or replaced, nothing was kept")
    if manifest["release"] != release:
        raise UserError(f"{source} serves release {manifest['release']!r}, not {release!r}")
    return manifest


def _download_hub(repo_id: str, target: Path) -> Path:
    """Hub path: fetch the dataset repo's files with huggingface_hub (which resumes), then check every hash."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:  # pragma: no cover - huggingface_hub ships with datasets
        raise UserError("hub downloads need huggingface_hub (pip install huggingface_hub)") from err
    from benchmark.release.manifest import verify_files

    try:
        snapshot_download(repo_id=repo_id, repo_type="dataset", local_dir=str(target))
    except Exception as err:  # network, auth, unknown repo: one line, not a traceback
        raise CheckFailed(f"hub download of dataset {repo_id} failed: {type(err).__name__}: {err}") from err
    verify_files(target)
    return target
