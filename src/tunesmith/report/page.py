"""What the report page shows, in which order: the `Section` protocol and the sections in display order.

A section says whether it `applies` to a run directory (its data exist) and `render`s an HTML
fragment; the page lists the sections that apply, in the order of `BUILT_IN` (a fit's, then
compare's, the doctor's and tune's), then any a user added with `@register_section`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from markupsafe import Markup

from tunesmith.errors import BadInput, closest, must_be
from tunesmith.report.comparison import Comparison
from tunesmith.report.diagnosis import Findings
from tunesmith.report.files import RunFiles
from tunesmith.report.search import (
    TuningAxes,
    TuningCurves,
    TuningHistory,
    TuningImportance,
    TuningParallel,
    TuningStages,
)
from tunesmith.report.sections import (
    Baselines,
    ClassReport,
    Curves,
    Failure,
    Layers,
    LearningRate,
    RangeTest,
    RecipeChoices,
    Residuals,
    Summary,
)
from tunesmith.report.text import NeckWeights, TokenLengths

__all__ = ["BUILT_IN", "SECTIONS", "Section", "get_sections", "register_section"]


class Section(Protocol):
    name: str  # registry key and the HTML anchor (#name)
    title: str

    def applies(self, run: RunFiles) -> bool: ...
    def render(self, run: RunFiles) -> Markup: ...


BUILT_IN: tuple[type[Section], ...] = (
    Failure,
    Summary,
    Baselines,
    RecipeChoices,
    TokenLengths,
    NeckWeights,
    Curves,
    LearningRate,
    RangeTest,
    ClassReport,
    Residuals,
    Layers,
    Comparison,
    Findings,
    TuningHistory,
    TuningStages,
    TuningAxes,
    TuningCurves,
    TuningImportance,
    TuningParallel,
)
SECTIONS: dict[str, Section] = {cls.name: cls() for cls in BUILT_IN}
S = TypeVar("S", bound="type[Section]")


def register_section(cls: S) -> S:
    """Class decorator: add one instance after the sections already listed (a duplicate name is an error)."""
    if cls.name in SECTIONS:
        raise ValueError(f"A report section named {cls.name!r} is already registered ({type(SECTIONS[cls.name])}).")
    SECTIONS[cls.name] = cls()
    return cls


def get_sections(names: Sequence[str] | None = None) -> list[Section]:
    """The sections in page order (all of them, or those named)."""
    if names is None:
        return list(SECTIONS.values())
    for name in names:
        if name not in SECTIONS:
            guess = closest(name, SECTIONS)
            hint = f"Did you mean {guess!r}?" if guess else ""
            raise BadInput(must_be("sections", "write_report", f"names among {', '.join(SECTIONS)}", name, hint=hint))
    return [s for key, s in SECTIONS.items() if key in names]
