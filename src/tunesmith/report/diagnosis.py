"""The doctor's findings in the report (findings.json, catalog T60-T67): status, evidence, advice, plots.

Each finding is `{"check", "status", "summary", "evidence", "advice", "tricks"}` (shared/design.md).
Evidence entries are shown as they are; two conventions get more (docs/report.md):
`value` and `threshold` (numbers) are drawn as value against threshold, one row per finding, and
an entry holding a list of numbers (a per-epoch series, per-layer norms) is drawn as a small line plot.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from markupsafe import Markup
from matplotlib.figure import Figure

from tunesmith.errors import BadInput
from tunesmith.report.files import RunFiles
from tunesmith.report.html import badge, fmt, grid, kv, note, table
from tunesmith.report.plots import log_axis, new_figure, styled, to_img

__all__ = ["Findings"]

SEVERITY = ("fail", "warn", "info", "ok", "skipped")
_COLOURS = {"fail": "#cf222e", "warn": "#bf8700", "info": "#0969da", "ok": "#1a7f37", "skipped": "#8c959f"}
MAX_SERIES_PLOTS = 8  # beyond this the page gets long; the table still lists every entry


def _is_series(value: Any) -> bool:
    return isinstance(value, list) and len(value) > 2 and all(isinstance(v, int | float) for v in value)


def _thresholded(finding: dict[str, Any]) -> bool:
    ev = finding.get("evidence") or {}
    return all(isinstance(ev.get(k), int | float) and not isinstance(ev.get(k), bool) for k in ("value", "threshold"))


class Findings:
    name = "doctor"
    title = "Doctor findings (T60-T67)"

    def applies(self, run: RunFiles) -> bool:
        return run.findings is not None

    def render(self, run: RunFiles) -> Markup:
        findings = run.findings
        if not isinstance(findings, list) or not all(isinstance(f, dict) and "check" in f for f in findings):
            raise BadInput(f"{run.path / 'findings.json'} must hold a list of findings, each with a 'check'.")
        order = sorted(findings, key=lambda f: SEVERITY.index(f.get("status")) if f.get("status") in SEVERITY else 5)
        counts = {s: sum(f.get("status") == s for f in findings) for s in SEVERITY}
        summary = " · ".join(f"{n} {s}" for s, n in counts.items() if n)
        rows = [
            [
                badge(str(f.get("status", "?"))),
                f["check"],
                f.get("summary", ""),
                self._evidence(f.get("evidence") or {}),
                f.get("advice", ""),
                ", ".join(f.get("tricks", [])),
            ]
            for f in order
        ]
        parts = [
            note(f"{len(findings)} checks: {summary}."),
            table(["status", "check", "finding", "evidence", "advice", "tricks"], rows, css="findings"),
        ]
        measured = [f for f in order if _thresholded(f)]
        figures = []
        if measured:
            figures.append(to_img(against_threshold(measured), alt="each check's value against its threshold"))
        series = [(f["check"], k, v) for f in order for k, v in (f.get("evidence") or {}).items() if _is_series(v)]
        figures += [
            to_img(series_plot(values, title=f"{check}: {key}"), alt=f"{check} evidence: {key}")
            for check, key, values in series[:MAX_SERIES_PLOTS]
        ]
        if figures:
            parts.append(grid(*figures))
        return Markup("").join(parts)

    @staticmethod
    def _evidence(evidence: dict[str, Any]) -> Markup:
        shown: dict[str, Any] = {}
        if {"value", "threshold"} <= evidence.keys():
            shown["value vs threshold"] = f"{fmt(evidence['value'])} vs {fmt(evidence['threshold'])}"
        for key, value in evidence.items():
            if key in ("value", "threshold") and "value vs threshold" in shown:
                continue
            shown[key] = f"{len(value)} values, plotted below" if _is_series(value) else value
        return kv(shown) if shown else Markup("")


@styled
def against_threshold(findings: list[dict[str, Any]]) -> Figure:
    """One row per check: value / threshold, with the threshold at 1 (log scale when ratios span decades)."""
    fig = new_figure(width=6.0, height=0.9 + 0.32 * len(findings), words=True)
    ax = fig.add_subplot()
    ratios = []
    for f in findings:
        value, limit = float(f["evidence"]["value"]), float(f["evidence"]["threshold"])
        ratios.append(value / limit if limit else np.nan)
    y = np.arange(len(findings))[::-1]
    ax.hlines(y, 0, np.nan_to_num(ratios), color="0.85", lw=3)
    ax.scatter(ratios, y, c=[_COLOURS.get(str(f.get("status")), "0.3") for f in findings], zorder=3)
    ax.axvline(1.0, color="black", lw=1, ls="--", label="threshold")
    ax.set_yticks(y, [f["check"] for f in findings])
    finite = np.asarray(ratios)[np.isfinite(ratios)]
    if len(finite) and (finite > 0).all() and finite.max() / finite.min() > 50:
        log_axis(ax, "x")
    ax.set(xlabel="value / threshold", title="evidence against thresholds")
    ax.legend(loc="lower right")
    return fig


@styled
def series_plot(values: list[float], *, title: str) -> Figure:
    fig = new_figure(width=4.2, height=2.4)
    ax = fig.add_subplot()
    ax.plot(np.arange(1, len(values) + 1), values, marker=".")
    ax.set(title=title, xlabel="index (epoch, layer, ...)")
    return fig
