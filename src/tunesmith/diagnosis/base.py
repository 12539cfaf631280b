"""The check interface and its registry: every doctor check is a small `Check` subclass.

A check has a stable `id`, a `group` (data, model or run), the catalog ids `tricks` of its fix, and
one method, `run(ctx) -> Finding`. Checks register with `@register_check` (a duplicate id is an
error) and are created by `create_check(id)` (an unknown id raises BadInput with the closest id).
The helpers `found`, `ok` and `skip` build findings that carry the check's id and tricks, so a
check's body only measures and decides.
"""

from __future__ import annotations

import abc
import importlib
from typing import TYPE_CHECKING, Any, ClassVar

from tunesmith.diagnosis.finding import Finding, Status, fmt
from tunesmith.errors import BadInput, closest

if TYPE_CHECKING:
    from tunesmith.diagnosis.context import Context

__all__ = ["GROUPS", "Check", "Skip", "check_ids", "create_check", "measured", "register_check"]

GROUPS = ("data", "model", "run")
BUILTIN_MODULES = (  # registration order is the order of findings and of docs/doctor.md
    "data_checks",
    "leakage_checks",
    "text_checks",
    "loss_checks",
    "model_checks",
    "run_checks",
    "signal_checks",
    "fit_checks",
)
_CHECKS: dict[str, type[Check]] = {}


class Skip(Exception):
    """Raised inside a check (or a shared measurement) that cannot run on this setup; carries the reason."""


class Check(abc.ABC):
    """One diagnosis: measure something about the setup, compare it with a documented threshold."""

    id: ClassVar[str]
    group: ClassVar[str]
    tricks: ClassVar[tuple[str, ...]] = ()  # catalog ids of the fix named in the advice

    @abc.abstractmethod
    def run(self, ctx: Context) -> Finding:
        """The finding for this setup; raise `Skip(reason)` when the check does not apply."""

    def found(
        self,
        status: Status,
        summary: str,
        *,
        advice: str = "",
        tricks: tuple[str, ...] | None = None,
        **evidence: Any,
    ) -> Finding:
        """A finding of this check; `tricks` defaults to the check's own."""
        return Finding(self.id, status, summary, evidence, advice, self.tricks if tricks is None else tricks)

    def ok(self, summary: str, **evidence: Any) -> Finding:
        return Finding(self.id, "ok", summary, evidence)


def measured(value: float, threshold: float, *, above: bool = True) -> str:
    """'0.43 > threshold 0.1': the value next to its threshold, for summary lines."""
    return f"{fmt(value)} {'>' if above else '<'} threshold {fmt(threshold)}"


def register_check(cls: type[Check]) -> type[Check]:
    """Class decorator: add a check to the registry under its `id` (unique)."""
    if cls.id in _CHECKS:
        raise ValueError(f"Doctor check {cls.id!r} is already registered ({_CHECKS[cls.id].__name__}).")
    if cls.group not in GROUPS:
        raise ValueError(f"Doctor check {cls.id!r} has group {cls.group!r}; groups are {', '.join(GROUPS)}.")
    _CHECKS[cls.id] = cls
    return cls


def check_ids() -> list[str]:
    """Every registered check id: data checks first, then model, then short-run checks."""
    _load_builtin()
    return sorted(_CHECKS, key=lambda k: GROUPS.index(_CHECKS[k].group))


def create_check(name: str) -> Check:
    """The check registered as `name`; an unknown name raises BadInput with the closest id."""
    _load_builtin()
    if name not in _CHECKS:
        guess = closest(name, _CHECKS)
        hint = f" Did you mean {guess!r}?" if guess else ""
        raise BadInput(f"Unknown doctor check {name!r}.{hint} Checks: {', '.join(check_ids())}.")
    return _CHECKS[name]()


def _load_builtin() -> None:
    """Import the modules that register the built-in checks, in documentation order (imports are cached)."""
    for module in BUILTIN_MODULES:
        importlib.import_module(f"tunesmith.diagnosis.{module}")
