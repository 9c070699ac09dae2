"""``MANIFEST.json``: the SHA-256 of every file of a release, its sets and how it was made."""
from __future__ import annotations

import os
from pathlib import Path

from benchmark.errors import IntegrityError, UserError
from benchmark.files import atomic_write_json, read_json, sha256_file

MANIFEST_NAME = "MANIFEST.json"
# Folders and files of a release folder that are not part of the release (build state, caches).
EXCLUDED = (".build", ".cache")


def release_files(release_dir: Path) -> list[str]:
    """Every file of a release folder (relative POSIX paths, sorted), manifest and build state excluded."""
    out = []
    for path in sorted(release_dir.rglob("*")):
        rel = path.relative_to(release_dir).as_posix()
        if path.is_file() and rel != MANIFEST_NAME and not rel.split("/")[0] in EXCLUDED and not path.name.startswith("."):
            out.append(rel)
    return out


def write_manifest(release_dir: str | os.PathLike, header: dict) -> dict:
    """Hash every file of ``release_dir`` and write ``MANIFEST.json`` (``header`` + ``files``); returns it."""
    from benchmark.schemas import check_schema

    release_dir = Path(release_dir)
    files = {rel: {"sha256": sha256_file(release_dir / rel), "bytes": (release_dir / rel).stat().st_size}
             for rel in release_files(release_dir)}
    manifest = {**header, "files": files}
    check_schema(manifest, "manifest", "MANIFEST", "the manifest being written is invalid")
    atomic_write_json(release_dir / MANIFEST_NAME, manifest)
    return manifest


def read_manifest(release_dir: str | os.PathLike) -> dict:
    """Read and schema-check ``MANIFEST.json``; errors name the failing field."""
    from benchmark.schemas import check_schema

    path = Path(release_dir) / MANIFEST_NAME
    if not path.is_file():
        raise UserError(f"{path} not found: {release_dir} is not a frozen release (build one with "
                        "`metamer-bench build-release` or fetch one with `metamer-bench download`)")
    manifest = read_json(path)
    check_schema(manifest, "manifest", "MANIFEST", f"{path} violates the manifest schema")
    return manifest


def check_files(release_dir: str | os.PathLike, manifest: dict, only: list[str] | None = None) -> list[str]:
    """Problems with the listed files (missing, wrong size, wrong SHA-256), one line per file."""
    release_dir = Path(release_dir)
    problems = []
    for rel in sorted(only if only is not None else manifest["files"]):
        entry = manifest["files"].get(rel)
        path = release_dir / rel
        if entry is None:
            problems.append(f"{rel}: not listed in {MANIFEST_NAME}")
        elif not path.is_file():
            problems.append(f"{rel}: missing")
        elif path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            problems.append(f"{rel}: SHA-256 mismatch (expected {entry['sha256'][:16]}..., the file was changed or corrupted)")
    return problems


def verify_files(release_dir: str | os.PathLike, manifest: dict | None = None, only: list[str] | None = None) -> dict:
    """Raise :class:`IntegrityError` naming every bad file; returns the manifest."""
    manifest = manifest or read_manifest(release_dir)
    problems = check_files(release_dir, manifest, only)
    if problems:
        raise IntegrityError(f"release {release_dir} failed verification:\n  " + "\n  ".join(problems))
    return manifest
