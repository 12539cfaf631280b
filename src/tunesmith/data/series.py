"""Do a table's columns form one ordered series? The evidence that makes the model family a choice (T10).

A table whose feature columns are `lag_1 .. lag_24`, `x0 .. x63` or `t1, t2, ...` with values on one
scale may be a table of features (an MLP's reading) or a batch of 1-D signals, one value per step (a
1-D CNN's or an RNN's reading, which the cnn and rnn families take from the same (N, F) arrays as
(N, F, 1): models/families.py). Which reading predicts better is an empirical question, so tune's
capacity stage tries both (tuning/space.py `ambiguous_kind`). The evidence, all of it required:

- every feature column carries one name with a running integer index (`stem` + digits): a couple of
  indexed columns among unrelated ones is an ordinary table, and a sequence reading would have to
  read the unrelated columns as steps of the series;
- the indices run in the table's column order with one constant step (up or down): the order the
  prepared arrays keep, so the sequence a CNN convolves is the series itself;
- at least MIN_NAMED such columns (MIN_UNNAMED for an unnamed array, whose `x0, x1, ...` names say
  nothing: only its width and its scale do);
- a common scale on the training rows: the column standard deviations within MAX_STD_RATIO of each
  other and the column means within MAX_MEAN_SPREAD median standard deviations of each other. Lags of
  one process share its mean and spread; unrelated measurements (age, income) rarely do.

Which way time runs: an index counts forward in time (`x0 .. x63`, `t1, t2, ...`) unless the stem names a
step back in time (`lag_k`, `prev_k`, `ago_k`...: BACKWARD, k steps before the row's own time), and the
columns run newest first when the index counts back and rises along the table (lag_1 .. lag_24), or counts
forward and falls. `newest_first` lets the sequence families read the columns oldest first (the model's
`step_order`, recipe.resolve), as time ran: a recurrent model's last step, the one its state remembers
best, is then the newest value, the one that predicts the next.

Measured on the fold's training rows only (held-out rows are never read), after the column plan
(data/columns.py), before scaling.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from tunesmith.recipe import SeriesFacts

__all__ = ["BACKWARD", "MAX_MEAN_SPREAD", "MAX_STD_RATIO", "MIN_NAMED", "MIN_UNNAMED", "find_series"]

INDEXED = re.compile(r"^(?P<stem>.*?)(?P<index>\d+)$")  # the shortest stem: lag_12 -> ("lag_", 12)
MIN_NAMED = 8  # fewer steps make a short series that an MLP reads as well as a sequence model
MIN_UNNAMED = 16  # an unnamed array's only evidence of signals is its width (and its scale)
MAX_STD_RATIO = 5.0  # one scale: the largest column std at most this many times the smallest
MAX_MEAN_SPREAD = 5.0  # ... and the column means within this many median stds of each other
# a stem that says its index counts steps back in time: lag_3, sales_lag3, prev_2, shift_1, back_4, t_minus_5
BACKWARD = re.compile(r"(^|[^a-z])(lag|lags|lagged|prev|previous|shift|back|ago|minus)[^a-z]*$", re.IGNORECASE)


def find_series(x: pd.DataFrame, *, named: bool = True) -> SeriesFacts | None:
    """The series the feature columns of `x` (training rows) form, or None when they are an ordinary table.

    named: the column names are the user's (a CSV/Parquet header); False for an unnamed array (.npz),
    whose generated names x0, x1, ... only number the columns.
    """
    columns = [str(c) for c in x.columns]
    if len(columns) < (MIN_NAMED if named else MIN_UNNAMED):
        return None
    matches = [INDEXED.match(c) for c in columns]
    if any(m is None for m in matches):
        return None
    stems = {m.group("stem") for m in matches if m is not None}
    indices = np.array([int(m.group("index")) for m in matches if m is not None])
    steps = np.diff(indices)
    if len(stems) != 1 or steps[0] == 0 or not (steps == steps[0]).all():
        return None  # several names, or an index that does not run in the table's order
    numeric = all(pd.api.types.is_numeric_dtype(x[c]) and not pd.api.types.is_bool_dtype(x[c]) for c in x.columns)
    if not numeric:
        return None
    # (F,), NaN cells skipped; column by column: a whole-frame reduction makes a float64 copy of the table
    std = np.array([x[c].std(ddof=0) for c in x.columns], dtype=np.float64)
    mean = np.array([x[c].mean() for c in x.columns], dtype=np.float64)
    if not (np.isfinite(std).all() and np.isfinite(mean).all()) or std.min() <= 0:
        return None  # an empty or constant column is no step of a signal
    std_ratio = float(std.max() / std.min())
    mean_spread = float((mean.max() - mean.min()) / np.median(std))
    if std_ratio > MAX_STD_RATIO or mean_spread > MAX_MEAN_SPREAD:
        return None
    return SeriesFacts(
        first=columns[0],
        last=columns[-1],
        count=len(columns),
        step=int(steps[0]),
        std_ratio=round(std_ratio, 3),
        mean_spread=round(mean_spread, 3),
        named=named,
        newest_first=named and (BACKWARD.search(next(iter(stems))) is not None) == (steps[0] > 0),
    )
