"""The doctor's case library: planted-bug setups and healthy setups.

Each case is a small function that returns the doctor's inputs: keyword arguments for
`tunesmith.diagnosis.doctor` (the Python API), or `{"recipe": {...}}` overrides for
`tunesmith.diagnosis.doctor_recipe` (the CLI path). A planted case names the check that must find it
(`expect`, with warn or fail) and the catalog ids its advice must name (`fix`). Healthy cases must
draw no warn or fail from any check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["HEALTHY", "PLANTED", "Case", "healthy", "planted", "run_case"]


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # tabular | image | sequence
    build: Callable[[], dict[str, Any]]
    expect: str | None = None  # the check that must report the planted bug (None: healthy)
    fix: tuple[str, ...] = ()  # catalog ids the advice must name
    mention: str = ""  # text the summary must contain (e.g. the leaking column)


PLANTED: list[Case] = []
HEALTHY: list[Case] = []


def planted(expect: str, *, kind: str, fix: tuple[str, ...], mention: str = "") -> Callable[[Callable], Callable]:
    def register(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        PLANTED.append(Case(fn.__name__, kind, fn, expect, fix, mention))
        return fn

    return register


def healthy(*, kind: str) -> Callable[[Callable], Callable]:
    def register(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        HEALTHY.append(Case(fn.__name__, kind, fn))
        return fn

    return register


def run_case(case: Case, *, checks: list[str] | None = None) -> Any:
    """The doctor's Diagnosis for a case (only `checks` when given)."""
    from tunesmith.diagnosis import doctor, doctor_recipe

    inputs = case.build()
    if "recipe" in inputs:
        return doctor_recipe(overrides=inputs["recipe"], checks=checks, steps=inputs.get("steps", 200))
    return doctor(**inputs, checks=checks)


from tests.doctor_cases import (  # noqa: E402, F401
    healthy_cases,
    planted_data,
    planted_leakage,
    planted_model,
    planted_reports,
    planted_run,
)
