"""What a table's columns are, when their type does not say it (docs/messy_data.md).

pandas reads a column with one stray word among numbers, or a column of dates, as text; one-hot
encoding those (T02) would lose the numbers or turn each day into a category. Before any
preprocessing, the feature columns of a table are read as what they hold:

- numbers with a few unparseable cells (at least NUMBER_SHARE of the filled cells parse): numbers,
  the other cells missing (imputed, T01);
- dates (at least DATE_SHARE of the filled cells parse in one format): five numeric columns
  `<col>_year`, `_month`, `_day`, `_weekday` and `_days` (days since 1970-01-01), never a category;
  the split stays as it was: `--time COL` gives time-ordered splits (T51);
- a column without a single value: dropped (it carries nothing);
- free text (mostly distinct, multi-word strings: `data.text.looks_like_text`): never one-hot encoded;
  the source makes it the text input of a text run (`data.text`, docs/text.md).

Each inference is announced (`load_data` logs it as a warning; metrics.json "data" notes) and recorded in
the resolved recipe (`data.numbers`, `data.dates`), so `predict` reads new rows the same way; the
recipe fields override it (`--set data.dates=[]` keeps every column as pandas read it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.data.text import looks_like_text
from tunesmith.recipe import DataConfig

__all__ = ["DATE_PARTS", "ColumnPlan", "expand_dates", "plan_columns"]

NUMBER_SHARE = 0.8  # a text column whose filled cells are at least this share numbers holds numbers
DATE_SHARE = 0.9  # ... at least this share dates (in one format) holds dates
DATE_FORMATS = ("ISO8601", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%Y/%m/%d")
DATE_PARTS = ("year", "month", "day", "weekday", "days")


@dataclass
class ColumnPlan:
    """How the raw feature columns become columns the preprocessor understands."""

    numbers: list[str] = field(default_factory=list)  # text columns read as numbers
    dates: list[str] = field(default_factory=list)  # columns expanded into DATE_PARTS
    empty: list[str] = field(default_factory=list)  # columns without a value, dropped
    text: list[str] = field(default_factory=list)  # free-text columns (the source decides what they become)
    notes: list[str] = field(default_factory=list)  # one sentence per inference, for the user

    @classmethod
    def recorded(cls, cfg: DataConfig) -> ColumnPlan:
        """The plan a resolved recipe recorded ("auto" in a recipe that never ran: nothing to apply)."""
        listed = [[] if v == "auto" else list(v) for v in (cfg.numbers, cfg.dates)]
        return cls(numbers=listed[0], dates=listed[1])

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame as the model reads it; columns the plan names but `frame` lacks are left to the caller."""
        present = set(frame.columns)
        frame = frame.drop(columns=[c for c in self.empty if c in present])
        numbers = {c: pd.to_numeric(frame[c], errors="coerce") for c in self.numbers if c in present}
        if numbers:
            frame = frame.assign(**numbers)
        for col in (c for c in self.dates if c in present):
            frame = expand_dates(frame, col)
        return frame


def plan_columns(
    frame: pd.DataFrame, *, source: str, numbers: Any = "auto", dates: Any = "auto", time: str | None = None
) -> ColumnPlan:
    """Infer the plan for the feature columns of `frame`; explicit lists (recipe fields) win over "auto"."""
    plan = ColumnPlan(numbers=[] if numbers == "auto" else list(numbers), dates=[] if dates == "auto" else list(dates))
    for col in frame.columns:
        values = frame[col]
        filled = values.dropna()
        if filled.empty:
            plan.empty.append(str(col))
            plan.notes.append(f"Column {str(col)!r} of {source} has no values: dropped.")
            continue
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        text = filled.astype(str).str.strip()
        if numbers == "auto" and col not in plan.dates:
            parsed = pd.to_numeric(text, errors="coerce")
            share = float(parsed.notna().mean())
            if share >= NUMBER_SHARE:
                bad = text[parsed.isna()]
                plan.numbers.append(str(col))
                plan.notes.append(
                    f"Column {str(col)!r} of {source} holds numbers with {len(bad)} cell(s) that are not "
                    f"(e.g. {bad.iloc[0]!r}): read as numbers, those cells as missing (imputed, T01). "
                    f"--set data.numbers=[] keeps it a category."
                    if len(bad)
                    else f"Column {str(col)!r} of {source} holds numbers written as text: read as numbers."
                )
                continue
        if dates == "auto" and col not in plan.numbers and _date_share(text) >= DATE_SHARE:
            plan.dates.append(str(col))
            names = ", ".join(f"{col}_{p}" for p in DATE_PARTS)
            split = (
                "It is the time column too: the splits stay time-ordered (T51)."
                if col == time
                else f"The split is not time-ordered: pass --time {col} for time-ordered splits (T51)."
            )
            plan.notes.append(
                f"Column {str(col)!r} of {source} holds dates: expanded into the numbers {names} (never "
                f"one-hot encoded). {split} --set data.dates=[] keeps it a category."
            )
        elif col not in plan.numbers and col not in plan.dates and looks_like_text(text):
            plan.text.append(str(col))
    return plan


def _parse_dates(text: pd.Series) -> pd.Series:
    """Dates in the format that parses most cells (NaT where none does)."""
    best: pd.Series | None = None
    for fmt in DATE_FORMATS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas warns about formats it cannot infer; we try each
            parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        if best is None or parsed.notna().sum() > best.notna().sum():
            best = parsed
    assert best is not None
    return best


def _date_share(text: pd.Series) -> float:
    if not text.str.contains(r"\d", regex=True).all():  # a date has digits: spare month names like "May"
        return 0.0
    return float(_parse_dates(text).notna().mean())


def expand_dates(frame: pd.DataFrame, col: str) -> pd.DataFrame:
    """Replace the date column `col` with DATE_PARTS numbers (missing where a cell is not a date)."""
    stamps = _parse_dates(frame[col].astype("string").str.strip())
    days = (stamps - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    parts = {
        f"{col}_year": stamps.dt.year,
        f"{col}_month": stamps.dt.month,
        f"{col}_day": stamps.dt.day,
        f"{col}_weekday": stamps.dt.day_of_week,
        f"{col}_days": days,
    }
    at = list(frame.columns).index(col)
    expanded = pd.DataFrame({k: v.astype(np.float64) for k, v in parts.items()}, index=frame.index)
    return pd.concat([frame.iloc[:, :at], expanded, frame.iloc[:, at + 1 :]], axis=1)
