"""Exceptions that carry a message meant for the user: what is wrong and what is valid."""
from __future__ import annotations

from collections.abc import Iterable


class UserError(ValueError):
    """Bad input a user can fix (unknown name, malformed file, failed check)."""


class IntegrityError(UserError):
    """A file does not match its recorded SHA-256, or its content is unsafe or corrupt."""


def unknown_choice(kind: str, value: object, valid: Iterable[str]) -> UserError:
    """``UserError`` for a value outside a registry, listing every valid option."""
    options = ", ".join(sorted(valid))
    return UserError(f"unknown {kind} {value!r}; valid {kind}s: {options}")
