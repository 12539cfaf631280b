"""The one way a name joins a plug-in table (model families, samplers, pruners): unique names, decorator style."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def registrar(table: dict[str, Any], kind: str, name: str) -> Callable[[T], T]:
    """A decorator that files its argument in `table` under `name`; a name taken twice is a ValueError."""

    def add(entry: T) -> T:
        if name in table:
            raise ValueError(f"A {kind} named {name!r} is already registered; pick another name.")
        table[name] = entry
        return entry

    return add
