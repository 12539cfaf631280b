"""The doctor's unit of output: one `Finding` per check (shared/design.md, "Findings").

A finding is `{"check", "status", "summary", "evidence", "advice", "tricks"}`. `status` is one of
ok / info / warn / fail / skipped: `warn` and `fail` mean something is wrong and costs accuracy or
time (`fail`: results obtained with this setup are invalid, e.g. a leak or a wrong gradient);
`info` is a suggestion on a setup that works. `evidence` holds the numbers, with `value` and
`threshold` for every measured verdict, and lists of numbers (curves, per-layer norms) that the
HTML report plots. `tricks` are the catalog ids (T01-T67) of the fix named in `advice`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["SEVERITY", "Finding", "Status", "fmt", "jsonable", "series"]

Status = Literal["ok", "info", "warn", "fail", "skipped"]
SEVERITY: tuple[Status, ...] = ("fail", "warn", "info", "ok", "skipped")  # worst first
SERIES = 50  # points kept of a curve in the evidence


@dataclass(frozen=True)
class Finding:
    check: str  # the stable check id (docs/doctor.md)
    status: Status
    summary: str  # one line; a warn/fail names the measured value next to its threshold
    evidence: dict[str, Any] = field(default_factory=dict)
    advice: str = ""
    tricks: tuple[str, ...] = ()  # catalog ids of the fix

    @property
    def failed(self) -> bool:
        """True for warn and fail: something to fix."""
        return self.status in ("warn", "fail")

    @property
    def rank(self) -> int:
        """0 for fail ... 4 for skipped: sort key, worst first."""
        return SEVERITY.index(self.status)

    def to_dict(self) -> dict[str, Any]:
        """The findings.json form; numpy scalars and arrays become plain JSON values."""
        return {
            "check": self.check,
            "status": self.status,
            "summary": self.summary,
            "evidence": jsonable(self.evidence),
            "advice": self.advice,
            "tricks": list(self.tricks),
        }


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy -> Python, tuples -> lists, non-finite floats -> strings ("nan", "inf")."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return value


def fmt(value: float) -> str:
    """A number for a summary line: 4 significant digits, scientific outside [1e-3, 1e5)."""
    if not math.isfinite(value):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.2e}"


def series(values: np.ndarray | list[float]) -> list[float]:
    """At most SERIES evenly spaced points of a curve, for the evidence (the report plots them)."""
    values = np.asarray(values, dtype=float)
    idx = np.unique(np.linspace(0, len(values) - 1, min(SERIES, len(values))).round().astype(int))
    return [float(v) for v in values[idx]]
