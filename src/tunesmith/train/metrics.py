"""The metric registry (T63): every metric a run reports, the tasks it may judge, its direction, and how it is computed.

fit writes these metrics (metrics.json, history.csv), tune optimises one (`tune.metric`), compare
judges by one (`--metric`) and the report shows them: all read this module. Each task has a default
metric: accuracy for classification, rmse for regression, loss for reconstruction. Reconstruction runs
also report rmse, mae and r2 of the reconstruction, but only the loss may judge them.

The definitions are scikit-learn's (`accuracy_score`, `f1_score(average="macro")`, the square root of
`mean_squared_error`, `mean_absolute_error`, `r2_score` averaged over targets), with one exception: r2
is 0.0 for a target with no spread, where scikit-learn gives 1.0 to a perfect prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tunesmith.errors import BadInput, closest, must_be

__all__ = [
    "DEFAULT_FOR_TASK",
    "METRICS",
    "Metric",
    "get_metric",
    "metrics_for",
    "pick_metric",
    "standard_error",
    "task_metrics",
]

ALL_TASKS = ("classification", "regression", "reconstruction")


@dataclass(frozen=True)
class Metric:
    """One validation/test metric of metrics.json."""

    name: str
    tasks: tuple[str, ...]  # the tasks it may judge (tune.metric, compare --metric)
    higher_is_better: bool
    share_of_rows: bool = False  # accuracy-like: moves in steps of 1/rows, binomial standard error sqrt(p(1-p)/n)


# in this order in every listing (tune's error message, compare's --metric choices)
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("loss", ALL_TASKS, higher_is_better=False),
        Metric("accuracy", ("classification",), higher_is_better=True, share_of_rows=True),
        Metric("f1_macro", ("classification",), higher_is_better=True, share_of_rows=True),
        Metric("rmse", ("regression",), higher_is_better=False),
        Metric("mae", ("regression",), higher_is_better=False),
        Metric("r2", ("regression",), higher_is_better=True),
    )
}
DEFAULT_FOR_TASK = {"classification": "accuracy", "regression": "rmse", "reconstruction": "loss"}


def get_metric(name: str, *, owner: str = "get_metric") -> Metric:
    """The registered metric `name`; an unknown name is bad input naming `owner` and the closest valid one."""
    if name not in METRICS:
        guess = closest(name, METRICS)
        hint = f"Did you mean {guess!r}?" if guess else ""
        raise BadInput(must_be("metric", owner, f"one of {', '.join(METRICS)}", name, hint=hint))
    return METRICS[name]


def metrics_for(task: str) -> tuple[str, ...]:
    """The names of the metrics that may judge a `task` run, in registry order."""
    return tuple(name for name, m in METRICS.items() if task in m.tasks)


def pick_metric(metric: str, task: str, *, owner: str = "tune") -> tuple[str, bool]:
    """(metric name, whether larger is better) for a requested metric ("auto": the task's default)."""
    name = DEFAULT_FOR_TASK[task] if metric == "auto" else metric
    valid = metrics_for(task)
    if name not in valid:
        raise BadInput(f"The 'metric' parameter of {owner} must be one of {', '.join(valid)} for {task}. Got {name!r}.")
    return name, METRICS[name].higher_is_better


def standard_error(name: str, value: float, rows: int) -> float:
    """The standard error of a score `value` of metric `name` measured on `rows` rows: the slack of the tune's
    one-standard-error rule (T22). Accuracy-like scores: binomial, sqrt(p (1 - p) / n). Regression scores, for
    residuals roughly normal with spread s: the mean square has standard error s^2 sqrt(2 / n), hence rmse
    s / sqrt(2 n) (delta method), r2 (1 - r2) sqrt(2 / n), mae (s sqrt(2 / pi)) sqrt((pi / 2 - 1) / n) (half-
    normal). 0 for the loss, whose spread depends on the loss: the rule then keeps the best score."""
    metric = METRICS.get(name)
    if metric is None or rows < 1 or not math.isfinite(value):
        return 0.0
    if metric.share_of_rows:
        return math.sqrt(value * (1 - value) / rows) if 0 <= value <= 1 else 0.0
    spread = {
        "rmse": abs(value) / math.sqrt(2 * rows),
        "mae": abs(value) * math.sqrt((math.pi / 2 - 1) / rows),
        "r2": max(0.0, 1 - value) * math.sqrt(2 / rows),
    }
    return spread.get(name, 0.0)


def task_metrics(task: str, predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Headline metrics (metrics.json contract): accuracy + f1_macro, or rmse + mae + r2.

    Computed every epoch, so written in plain NumPy (scikit-learn's input validation costs ~10 ms a
    call); `tests/test_trainer.py` checks them against scikit-learn's definitions.
    """
    if task == "classification":
        t, p = targets.astype(np.int64).ravel(), predictions.astype(np.int64).ravel()
        n = int(max(t.max(initial=0), p.max(initial=0))) + 1
        confusion = np.bincount(t * n + p, minlength=n * n).reshape(n, n)
        hits, predicted, actual = np.diag(confusion), confusion.sum(0), confusion.sum(1)
        present = (predicted + actual) > 0  # classes absent from both count as in sklearn's labels=None
        f1 = np.divide(2 * hits, predicted + actual, out=np.zeros(n), where=present)
        return {"accuracy": float(hits.sum() / max(1, len(t))), "f1_macro": float(f1[present].mean())}
    p64 = predictions.reshape(len(predictions), -1).astype(np.float64)  # (N, targets)
    t64 = targets.reshape(len(targets), -1).astype(np.float64)
    err = p64 - t64
    spread = ((t64 - t64.mean(axis=0)) ** 2).sum(axis=0)  # (targets,)
    r2 = np.where(spread > 0, 1 - (err**2).sum(axis=0) / np.where(spread > 0, spread, 1), 0.0)  # no spread: 0.0
    return {"rmse": float(np.sqrt((err**2).mean())), "mae": float(np.abs(err).mean()), "r2": float(r2.mean())}
