"""The releases this package knows: identity (manifest hash) and the facts the leaderboard gates on.

A results file names its release by ``(name, version, manifest_sha256)``. Anyone can write that
triple, so the leaderboard accepts only releases pinned here, and takes the facts it ranks with
(each dataset's best reference accuracy, from which the accuracy floor follows) from this table,
never from the results file. The table is checked against the shipped release folders by
``tests/test_integrity.py``, so it cannot drift from the files it pins. A new release adds a row.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownRelease:
    """A shipped release: its manifest's SHA-256 and each dataset's best reference test accuracy."""

    name: str
    version: str
    manifest_sha256: str
    reference_best: dict[str, float]


KNOWN_RELEASES: tuple[KnownRelease, ...] = (
    KnownRelease("metamer-bench-v1", "1.0.0",
                 "b1cf314d48d3cf5515ed7a65b8236a06d8f1e5aaa63a110d2af85b6c047b9832",
                 {"CiteSeer": 0.707, "Cora": 0.815, "MUTAG": 0.95, "Photo": 0.898345}),
    KnownRelease("metamer-bench-v2", "2.0.0",
                 "0e9e7cdd4568cb333054b499a8e05a6a0cba4d1d9a9445322635b6430448dbdb",
                 {"CiteSeer": 0.693, "Cora": 0.825, "Photo": 0.893931}),
)


def known_release(name: str, version: str, manifest_sha256: str) -> KnownRelease | None:
    """The pinned release with exactly this identity, or ``None``."""
    for release in KNOWN_RELEASES:
        if (release.name, release.version, release.manifest_sha256) == (name, version, manifest_sha256):
            return release
    return None
