"""Small, escaped HTML fragments that report sections are built from: tables, key-value lists, notes.

Every value passes through `markupsafe.escape` (jinja2's own), so text from a run directory (column
names, class labels, advice) can never inject markup into the report. Numbers are shown with four
significant digits; a fragment is a `Markup` string that the page template inserts unescaped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

__all__ = ["badge", "fmt", "grid", "kv", "note", "table"]


def fmt(value: Any) -> str:
    """4 significant digits for floats, thousands separators for ints, "—" for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == int(value) and abs(value) < 1e6:
            return f"{int(value):,}"
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str = "", css: str = "") -> Markup:
    """A table; cells that are already Markup (badges, nested lists) are inserted as they are."""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return Markup(f'<table class="{escape(css)}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def _cell(value: Any) -> str:
    if isinstance(value, Markup):
        return f"<td>{value}</td>"
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return f'<td class="num">{escape(fmt(value))}</td>' if numeric else f"<td>{escape(fmt(value))}</td>"


def kv(pairs: Mapping[str, Any]) -> Markup:
    """A compact key: value list (run facts, evidence)."""
    items = "".join(
        f"<dt>{escape(k)}</dt><dd>{v if isinstance(v, Markup) else escape(fmt(v))}</dd>" for k, v in pairs.items()
    )
    return Markup(f'<dl class="kv">{items}</dl>')


def note(text: str, *, css: str = "note") -> Markup:
    return Markup(f'<p class="{escape(css)}">{escape(text)}</p>')


def badge(status: str) -> Markup:
    """A coloured status word (ok / info / warn / fail / skipped, better / worse ...)."""
    slug = "-".join(status.lower().split())
    return Markup(f'<span class="badge badge-{escape(slug)}">{escape(status)}</span>')


def grid(*parts: Markup, css: str = "grid") -> Markup:
    """Figures (css "grid") or small blocks (css "cols") side by side where the screen is wide enough."""
    return Markup(f'<div class="{escape(css)}">' + "".join(parts) + "</div>")
