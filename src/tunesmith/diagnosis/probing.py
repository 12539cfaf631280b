"""Held-out probes for the data checks: small models fitted on training rows and scored on validation rows.

`target_leakage`, `multi_column_leakage` and `category_codes` ask how well a simple predictor built
from a few columns does on rows it has not seen. They share the rows (`holdout`: the validation
split, or a seeded fifth of the training rows when there is none), the score (`heldout_score`:
classification accuracy normalized so the majority class is 0 and perfect is 1, R² for regression)
and the cheapest multivariate model (`least_squares`: a linear fit with an intercept; for classes, a
fit to the one-hot indicators, argmax). Scoring on held-out rows keeps a flexible probe honest: what
it only memorized does not count.
"""

from __future__ import annotations

import numpy as np

from tunesmith.diagnosis.base import Skip
from tunesmith.diagnosis.context import Context

__all__ = ["PROBE_ROWS", "heldout_score", "holdout", "least_squares"]

PROBE_ROWS = 5000  # training rows a probe is fitted on


def holdout(ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, x_val, y_val): flattened rows and targets (classes, or (N, K) values) to fit on and score on."""
    if ctx.task == "reconstruction":
        raise Skip("a reconstruction target is the input itself")
    x, y = ctx.rows("train"), ctx.targets("train")
    if ctx.x_val is not None:
        xv, yv = ctx.rows("val"), ctx.targets("val")
    else:  # hold out a seeded fifth of the training rows
        order = np.random.default_rng(ctx.cfg.seed).permutation(len(x))
        cut = len(x) // 5
        (xv, yv), (x, y) = (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])
    return x[:PROBE_ROWS], y[:PROBE_ROWS], xv, yv


def heldout_score(pred: np.ndarray, yv: np.ndarray, classify: bool) -> float:
    """Normalized accuracy (0 = the validation rows' majority class, 1 = perfect), or R² (the best target column)."""
    if classify:
        chance = np.unique(yv, return_counts=True)[1].max() / len(yv)
        return float(((pred == yv).mean() - chance) / (1 - chance)) if chance < 1 else 0.0
    target = yv.reshape(len(yv), -1)
    pred = pred.reshape(len(pred), -1)
    residual = ((target - pred) ** 2).sum(axis=0)
    total = ((target - target.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.max(1 - residual / np.maximum(total, 1e-12)))


def least_squares(x: np.ndarray, y: np.ndarray, xv: np.ndarray, classify: bool) -> np.ndarray:
    """Predictions on `xv` of a least-squares fit with intercept (classes: one-hot indicators, then argmax)."""
    classes = np.unique(y) if classify else None
    target = (y[:, None] == classes[None, :]).astype(np.float64) if classes is not None else y.reshape(len(y), -1)
    ones = np.ones((len(x), 1))
    coef, *_ = np.linalg.lstsq(np.hstack([x, ones]), target, rcond=None)
    out = np.hstack([xv, np.ones((len(xv), 1))]) @ coef
    return classes[np.argmax(out, axis=1)] if classes is not None else out
