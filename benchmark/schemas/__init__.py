"""JSON Schemas of every file the benchmark reads or writes, and the helpers that check them.

``benchmark/schemas/<name>.schema.json``: ``submission`` (the entry card), ``program_submission``,
``predictions``, ``result`` (a results file), ``manifest`` (a release's MANIFEST.json) and
``data_card`` (the metamer block of a release card). Errors name the field path
(``card.models[0].seeds: ...``) and the schema's message, so a user sees what is wrong and what is
valid. The release, the leaderboard and intake all import these helpers from here (issue 13.4:
they used to live in submission intake, which release/ and leaderboard/ then had to import).
"""
from __future__ import annotations

import functools
import json
import re
from importlib import resources

from benchmark.errors import UserError

_MAX_LISTED = 8


@functools.lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """The JSON Schema ``benchmark/schemas/<name>.schema.json`` (``predictions``, ``submission``, ``result``)."""
    path = resources.files("benchmark.schemas") / f"{name}.schema.json"
    if not path.is_file():
        raise UserError(f"no schema {name!r}; schemas live in benchmark/schemas/")
    return json.loads(path.read_text(encoding="utf-8"))


def json_path(root: str, parts) -> str:
    """``root.a[0]['b c']`` for a jsonschema error path."""
    out = root
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)):
            out += f".{part}"
        else:
            out += f"[{str(part)!r}]"
    return out


def schema_problems(instance: object, schema: dict, root: str) -> list[str]:
    """Every violation of ``schema`` by ``instance``, as ``"<field path>: <message>"``, sorted by path."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        message = error.message
        if len(message) > 300:  # jsonschema quotes whole sub-documents; keep the line readable
            message = message[:300] + " ..."
        problems.append(f"{json_path(root, error.absolute_path)}: {message}")
    return problems


def raise_problems(problems: list[str], what: str, error: type[UserError] = UserError) -> None:
    """Raise ``error`` listing up to 8 problems (and how many more) if there are any."""
    if not problems:
        return
    shown = problems[:_MAX_LISTED]
    more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    raise error(f"{what} ({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n  "
                + "\n  ".join(shown) + more)


def check_schema(instance: object, name: str, root: str, what: str) -> None:
    """Raise :class:`UserError` naming each field of ``instance`` that violates schema ``name``."""
    raise_problems(schema_problems(instance, load_schema(name), root), what)
