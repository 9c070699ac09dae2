"""Exceptions that carry a message meant for the user: what is wrong and what is valid.

Two kinds, because the command line maps them to different exit codes (README, "Exit codes"):

- :class:`UserError`: bad input a user can fix before running (an unknown name, a malformed
  option, a path that does not exist). ``metamer-bench`` exits 2, like a usage error.
- :class:`CheckFailed` (a ``UserError``): the input was readable and a check or run on it failed
  (a submission refused at intake, a file whose SHA-256 does not match, a download that kept
  failing). ``metamer-bench`` exits 1, like ``verify`` finding problems.
"""
from __future__ import annotations

from collections.abc import Iterable


class UserError(ValueError):
    """Bad input a user can fix (unknown name, malformed file, missing path)."""


class CheckFailed(UserError):
    """A check or run on readable input failed (refused submission, hash mismatch, failed download)."""


class IntegrityError(CheckFailed):
    """A file does not match its recorded SHA-256, or its content is unsafe or corrupt."""


def unknown_choice(kind: str, value: object, valid: Iterable[str], plural: str | None = None) -> UserError:
    """``UserError`` for a value outside a registry, listing every valid option."""
    options = ", ".join(sorted(valid))
    return UserError(f"unknown {kind} {value!r}; valid {plural or kind + 's'}: {options}")
