"""Downloading a release: manifest first, then every file it lists, each SHA-256-checked.

``download_release(name, source, to)``: ``source`` is an http(s)/file URL of a release folder, or a
Hugging Face hub dataset id (``org/name``). Files already present with the right hash are
skipped; every file is written to a temporary name and renamed only once its hash matches, so a
broken or tampered download leaves nothing half-written and names the failing file.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from benchmark.errors import IntegrityError, UserError
from benchmark.files import sha256_file
from benchmark.release.manifest import MANIFEST_NAME

_CHUNK = 1 << 20


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://", "file://"))


def _fetch(url: str, dest: Path, expected_sha256: str | None, timeout: float) -> None:
    """Stream ``url`` into ``dest`` atomically, checking the SHA-256 before the rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            raise IntegrityError(f"{dest.name}: downloaded bytes from {url} have SHA-256 {digest.hexdigest()[:16]}..., "
                                 f"the manifest says {expected_sha256[:16]}...; nothing was written")
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as err:
        raise UserError(f"download of {url} failed: {err}") from err
    finally:
        Path(tmp).unlink(missing_ok=True)


def download_release(release: str, source: str, to: str | os.PathLike | None = None, timeout: float = 60.0) -> Path:
    """Fetch release ``release`` from ``source`` into ``to`` (default ``data_cards/<release>``); returns the folder."""
    from benchmark.files import read_json
    from benchmark.submissions import check_schema

    target = Path(to) if to is not None else Path("data_cards") / release
    if not _is_url(source):
        return _download_hub(source, target)
    base = source.rstrip("/") + "/"
    staging = target / ".download"
    _fetch(base + MANIFEST_NAME, staging / MANIFEST_NAME, None, timeout)
    manifest = read_json(staging / MANIFEST_NAME)
    check_schema(manifest, "manifest", "MANIFEST", f"the manifest at {base + MANIFEST_NAME} is invalid")
    if manifest["release"] != release:
        raise UserError(f"{base} serves release {manifest['release']!r}, not {release!r}")
    for rel, entry in sorted(manifest["files"].items()):
        dest = target / rel
        if dest.is_file() and sha256_file(dest) == entry["sha256"]:
            continue
        _fetch(base + rel, dest, entry["sha256"], timeout)
    # The manifest lands last: a folder with a manifest is a complete, verified release.
    os.replace(staging / MANIFEST_NAME, target / MANIFEST_NAME)
    staging.rmdir()
    return target


def _download_hub(repo_id: str, target: Path) -> Path:
    """Hub path: fetch the dataset repo's files with huggingface_hub, then check every hash."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:  # pragma: no cover - huggingface_hub ships with datasets
        raise UserError("hub downloads need huggingface_hub (pip install huggingface_hub)") from err
    from benchmark.release.manifest import verify_files

    if "/" not in repo_id:
        raise UserError(f"{repo_id!r} is neither a URL (http://, https://, file://) nor a hub dataset id (org/name)")
    snapshot_download(repo_id=repo_id, repo_type="dataset", local_dir=str(target))
    verify_files(target)
    return target
