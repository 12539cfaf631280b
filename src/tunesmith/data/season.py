"""A season in the time column: a cycle the target repeats every P steps, and its phase for every row.

A table of lags (lag_1 .. lag_24) gives a model the last values of a series, not where the row stands in a
cycle: it must guess the cycle's phase from a few noisy lags. The time column (`--time t`) says it exactly.
When the training target repeats with an integer period of the time column's step, the rows get two more
feature columns, sin(2 pi u / P) and cos(2 pi u / P), u the row's time in steps: its phase, a column a linear
model uses as well as a network, and that keeps its meaning on rows later than every training row (the time
column itself does not: a time-ordered test split lies outside its training range).

The evidence (the training rows only; held-out rows are never read):

- the candidate periods are the integers 3 .. MAX_PERIOD steps that the training rows span at least
  MIN_CYCLES times;
- each candidate's strength is the share of the detrended target's variance (a straight line in time
  removed: a trend is no season) that one sine and cosine at that period explain (least squares with an
  intercept: the Lomb-Scargle periodogram, exact at integer periods, for unevenly spaced times too);
- a season is a line in that periodogram: the strongest period at least LINE_RATIO times the median
  strength over all candidates. Noise and autoregression have smooth spectra: on AR(1) (0.9), AR(2),
  random-walk and white-noise series of 76 to 3,000 rows (20 seeds each) the ratio stayed under 36; the
  process of benchmarks/tune_series.py scored 159 and more from 150 rows on, but 35-151 on 76 rows (six
  cycles: not always found). tests/test_season.py checks a few of each.

`data.season` overrides it: an integer period in steps, or "none". The step is the median gap between
consecutive training times (a day for daily dates); the origin is the earliest training time.

Sources: Lomb 1976, Scargle 1982 (the periodogram of unevenly sampled data); Hyndman & Athanasopoulos,
Forecasting: Principles and Practice, 7.4 and 12.1 (Fourier terms as seasonal regressors).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tunesmith.errors import BadInput

__all__ = ["LINE_RATIO", "MAX_PERIOD", "MIN_CYCLES", "fit_season", "season_terms"]

MAX_PERIOD = 400  # steps: a year of days (365), a week of hours (168)
MIN_CYCLES = 3  # the training rows must span a period this many times for it to be a candidate
LINE_RATIO = 50.0  # the season's strength over the median candidate's
MAX_ROWS = 20_000  # the strengths are read on at most the latest this many training rows
CHUNK = 64  # candidate periods evaluated at once ((rows, CHUNK) float64 arrays)


def fit_season(time: np.ndarray, y: np.ndarray | None, *, period: int | str) -> dict[str, Any] | None:
    """The season of the training rows: {"origin", "step", "period", "strength", "line"}, or None.

    time: (N,) the time column's sortable values (numbers, or datetime64 nanoseconds as int64); y: (N,) the
    target (None: only a given period can be fitted). period: "auto" (found by the evidence above), "none", or
    a period in steps (no evidence needed: "strength" and "line" are left out).
    """
    if period == "none" or (period == "auto" and y is None):
        return None
    time = np.asarray(time)
    if np.issubdtype(time.dtype, np.floating) and not np.isfinite(time).all():
        if period == "auto":
            return None  # rows without a time have no phase
        raise BadInput(
            f"data.season={period} reads each row's time, and the time column has missing values. Fill them."
        )
    order = np.argsort(time, kind="stable")
    time = time[order]
    gaps = np.diff(time)
    gaps = gaps[gaps > 0]
    if len(gaps) == 0:
        if period == "auto":
            return None
        raise BadInput(f"data.season={period} needs a time column with at least two distinct times.")
    origin, step = time[0], float(np.median(gaps))
    if period != "auto":
        return {"origin": _plain(origin), "step": step, "period": int(period)}
    assert y is not None
    u = (time[-MAX_ROWS:] - origin).astype(np.float64) / step
    y = np.asarray(y, dtype=np.float64)[order][-MAX_ROWS:]
    span = float(u[-1] - u[0])
    candidates = np.arange(3, min(MAX_PERIOD, int(span // MIN_CYCLES)) + 1)
    if len(candidates) < 2 or not np.isfinite(y).all():
        return None
    detrended = y - np.polyval(np.polyfit(u, y, 1), u)  # a trend is no season: long periods would fit part of it
    if not detrended @ detrended > 1e-12 * len(y) * max(float(np.var(y)), 1e-300):
        return None  # a constant or a straight line
    strength = np.concatenate(
        [_strength(u, detrended, candidates[i : i + CHUNK]) for i in range(0, len(candidates), CHUNK)]
    )
    best = int(np.argmax(strength))
    line = float(strength[best] / max(np.median(strength), 1e-12))
    if line < LINE_RATIO:
        return None
    return {
        "origin": _plain(origin),
        "step": step,
        "period": int(candidates[best]),
        "strength": round(float(strength[best]), 4),
        "line": round(line, 1),
    }


def season_terms(season: dict[str, Any], time: np.ndarray) -> np.ndarray:
    """(N, 2) float32: sin and cos of each row's phase in the fitted season; a row without a time is refused."""
    time = np.asarray(time)
    if np.issubdtype(time.dtype, np.floating) and not np.isfinite(time).all():
        raise BadInput(
            f"The time column {season['column']!r} has missing values; this model reads each row's phase in a "
            f"season of {season['period']} steps from it. Fill them."
        )
    u = (time - season["origin"]).astype(np.float64) / season["step"]
    angle = 2 * np.pi * u / season["period"]
    return np.column_stack([np.sin(angle), np.cos(angle)]).astype(np.float32)


def _strength(u: np.ndarray, y: np.ndarray, periods: np.ndarray) -> np.ndarray:
    """(P,) the share of y's variance one sine and cosine at each period explain (with an intercept)."""
    angle = 2 * np.pi * u[:, None] / periods[None, :]  # (N, P)
    s, c = np.sin(angle), np.cos(angle)
    s -= s.mean(axis=0)  # centring every column is the intercept's share of the fit
    c -= c.mean(axis=0)
    yc = y - y.mean()
    ss, cc, sc = (s * s).sum(0), (c * c).sum(0), (s * c).sum(0)
    sy, cy = s.T @ yc, c.T @ yc
    det = np.maximum(ss * cc - sc * sc, 1e-12)  # the 2x2 normal equations, solved for every period at once
    explained = (cc * sy * sy - 2 * sc * sy * cy + ss * cy * cy) / det
    return explained / float(yc @ yc)


def _plain(value: Any) -> float | int:
    """A JSON number: the origin of int64 nanoseconds stays an exact int."""
    return int(value) if np.issubdtype(np.asarray(value).dtype, np.integer) else float(value)
