"""The one validation path for what a user types or points at: numbers, paths and text files.

- numbers: `Section` is the base of every recipe section (pydantic): unknown keys, NaN/inf and
  true/false where a number belongs are errors; `finite` does the same for a command-line number
  that is not a recipe field (`--timeout`).
- paths: `output_dir` and `output_file` check where a command will write before it starts (a
  file where a folder belongs, a folder under a file, a missing parent folder), so bad input
  never leaves a half-written run; the CLI turns any remaining `OSError` into exit 2 naming the
  path (cli.py).
- text: `read_text` decodes a user's file: UTF-8, or UTF-16/32 when the file starts with their
  byte-order mark; anything else is a `BadInput` naming the file and the byte that failed.

This module needs only pydantic: the recipe layer and the CLI use it without torch.
"""

from __future__ import annotations

import codecs
import math
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from tunesmith.errors import BadInput

__all__ = ["Section", "file_encoding", "finite", "output_dir", "output_file", "read_text"]


def _accepts_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return any(isinstance(a, bool) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return any(_accepts_bool(a) for a in typing.get_args(annotation))
    return origin is not None and not isinstance(origin, type)  # Annotated and friends: do not guess


class Section(BaseModel):
    """Base of every recipe section: unknown keys, NaN/inf and `true` for a number are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads `epochs: true` as 1; a YAML true where a number belongs is a typo, not a count
        annotation = cls.model_fields[info.field_name].annotation if info.field_name else Any
        if isinstance(value, bool) and not _accepts_bool(annotation):
            numeric = any(t in (int, float) for t in (annotation, *typing.get_args(annotation)))
            raise ValueError(f"{'a number' if numeric else 'one of its own values'}, not true/false")
        return value


def finite(name: str, value: float | None, *, positive: bool = False) -> float | None:
    """A command-line number that is not a recipe field: finite (and > 0 when asked), or BadInput."""
    if value is None:
        return None
    if not math.isfinite(value) or (positive and value <= 0):
        allowed = "a finite number > 0" if positive else "a finite number"
        raise BadInput(f"{name} must be {allowed}. Got {value!r} instead.")
    return value


def output_dir(path: Path, flag: str = "--out") -> Path:
    """A folder a command will create (with its parents) and write into; checked before any work."""
    if path.exists() and not path.is_dir():
        raise BadInput(f"{flag} {path} is a file, not a folder. Choose a folder path (it is created).")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BadInput(f"{flag} {path} lies under {parent}, which is a file. Choose a folder path.")
            break
    return path


def output_file(path: Path, flag: str = "--out") -> Path:
    """A file a command will write; its folder must exist (a typo there should not create a tree)."""
    if path.is_dir() or path.name in ("", ".", ".."):
        raise BadInput(f"{flag} {path} is a folder. Name a file in it, e.g. {path / 'predictions.csv'}.")
    if not path.parent.is_dir():
        state = "is a file" if path.parent.exists() else "does not exist"
        raise BadInput(f"{flag} {path}: the folder {path.parent} {state}. Create it or choose another path.")
    return path


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)  # UTF-32 LE first: it starts like UTF-16 LE


def file_encoding(path: Path) -> str:
    """The encoding of a user's text file: from its byte-order mark, else UTF-8."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    return next((name for bom, name in _BOMS if head.startswith(bom)), "utf-8")


def read_text(path: Path, what: str = "file") -> str:
    """Decode a user's text file (see `file_encoding`); BadInput naming the file and the fix otherwise."""
    raw = path.read_bytes()
    encoding = file_encoding(path)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        byte = raw[exc.start : exc.start + 1]
        raise BadInput(
            f"The {what} {path} is not valid {encoding.upper()} text (byte {exc.start}: {byte!r}). "
            "Save it as UTF-8 (or UTF-16 with a byte-order mark)."
        ) from None
