"""Exceptions and the one template every user-facing error message is built from.

Design contract (shared/design.md): bad input exits with code 2 and one paragraph that names
the file or field, what is allowed, what was received and the fix. Every such error is a
`BadInput`; the CLI turns it into that paragraph. Anything else is a bug (exit code 1).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["BadInput", "TrainingDiverged", "TunesmithError", "closest", "must_be"]


class TunesmithError(Exception):
    """Base of every exception tunesmith raises on purpose."""


class BadInput(TunesmithError, ValueError):
    """The user's recipe, data or arguments cannot be used (CLI exit code 2)."""


class TrainingDiverged(TunesmithError, FloatingPointError):
    """The loss became NaN or infinite; the run stops cleanly (CLI exit code 2)."""


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most similar to `name`, or None when nothing is close (pip's did-you-mean).

    A candidate that differs only in case ("B" for "b") is the closest of all."""
    options = list(candidates)
    same = [c for c in options if c.casefold() == name.casefold()]
    if same:
        return same[0]
    matches = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return matches[0] if matches else None


def must_be(param: str, owner: str, allowed: str, got: object, *, hint: str = "") -> str:
    """The one error template: "The 'lr' parameter of train must be a float > 0. Got -1 instead."."""
    text = f"The {param!r} parameter of {owner} must be {allowed}. Got {got!r} instead."
    return f"{text} {hint}".rstrip()
