"""Small file utilities every writer shares: atomic writes and SHA-256 hashing."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from benchmark.errors import UserError

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give a finished temporary file the mode a plain ``open()`` would (``0666`` less the umask)
    and rename it onto ``path`` atomically. mkstemp makes 0600; a release file should read like any other."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, canonical_json(obj).encode("utf-8"))


# Every JSON file the project reads is small (cards, manifests, results: the largest shipped one is
# under 1 MiB); the cap refuses a hostile file before it is read into memory.
MAX_JSON_BYTES = 32 << 20


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    """``object_pairs_hook``: JSON parsers disagree on which duplicate key wins, so none may repeat."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def parse_json(text: str, source: str) -> Any:
    """Parse JSON text strictly: no duplicate keys, no NaN/Infinity, no nesting deep enough to overflow.

    Raises :class:`~benchmark.errors.UserError` (a ``ValueError``) naming ``source`` and the fault.
    """
    def refuse_constant(name: str) -> Any:
        raise UserError(f"{source}: {name} is not valid JSON (numbers must be finite)")

    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates, parse_constant=refuse_constant)
    except _DuplicateKey as err:
        raise UserError(f"{source}: duplicate key {err.args[0]!r} in one JSON object; every key may appear "
                        "once (parsers disagree on which copy wins)") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{source}: not valid JSON ({err})") from None
    except RecursionError:
        raise UserError(f"{source}: JSON nested too deeply to parse; no file of this project nests beyond a "
                        "few levels") from None


def read_json(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Read a JSON file strictly (see :func:`parse_json`), checking its size before reading it.

    Every failure (missing, too large, not UTF-8, not JSON, duplicate keys, too deep) is a
    :class:`~benchmark.errors.UserError` whose one line names the file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror or err})") from None
    if size > max_bytes:
        raise UserError(f"{path}: {size} bytes, more than the {max_bytes} a JSON file here may have")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); JSON files must be UTF-8") from None
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror or err})") from None
    return parse_json(text, str(path))
