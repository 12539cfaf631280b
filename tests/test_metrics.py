"""The metric registry (train/metrics.py): names, directions, task defaults, pick_metric's errors, r2's rule."""

from __future__ import annotations

import typing

import numpy as np
import pytest

from tunesmith.errors import BadInput
from tunesmith.train.metrics import (
    DEFAULT_FOR_TASK,
    METRICS,
    get_metric,
    metrics_for,
    pick_metric,
    task_metrics,
)
from tunesmith.tuneconfig import Metric, TuneConfig

TASKS = ("classification", "regression", "reconstruction")


def test_every_task_has_a_default_that_may_judge_it() -> None:
    assert set(DEFAULT_FOR_TASK) == set(TASKS)
    assert DEFAULT_FOR_TASK == {"classification": "accuracy", "regression": "rmse", "reconstruction": "loss"}
    for task, name in DEFAULT_FOR_TASK.items():
        assert name in metrics_for(task)
        assert pick_metric("auto", task) == (name, METRICS[name].higher_is_better)


def test_the_metrics_each_task_may_be_judged_by_in_registry_order() -> None:
    assert metrics_for("classification") == ("loss", "accuracy", "f1_macro")
    assert metrics_for("regression") == ("loss", "rmse", "mae", "r2")
    assert metrics_for("reconstruction") == ("loss",)


def test_direction_of_each_metric() -> None:
    higher = {name for name, m in METRICS.items() if m.higher_is_better}
    assert higher == {"accuracy", "f1_macro", "r2"}
    assert {name for name in METRICS if name not in higher} == {"loss", "rmse", "mae"}
    # accuracy-like scores move in steps of 1/rows: the playbook's one-standard-error rule uses it
    assert {name for name, m in METRICS.items() if m.share_of_rows} == {"accuracy", "f1_macro"}


def test_every_metric_fit_computes_is_registered() -> None:
    rng = np.random.default_rng(0)
    computed = {"loss"}
    computed |= set(task_metrics("classification", rng.integers(0, 3, 20), rng.integers(0, 3, 20)))
    computed |= set(task_metrics("regression", rng.normal(size=(20, 2)), rng.normal(size=(20, 2))))
    assert computed == set(METRICS)


@pytest.mark.parametrize(
    ("metric", "task", "message"),
    [
        ("accuracy", "regression", "The 'metric' parameter of tune must be one of loss, rmse, mae, r2 for regression. "
         "Got 'accuracy'."),
        ("rmse", "classification", "The 'metric' parameter of tune must be one of loss, accuracy, f1_macro for "
         "classification. Got 'rmse'."),
        ("rmse", "reconstruction", "The 'metric' parameter of tune must be one of loss for reconstruction. "
         "Got 'rmse'."),
    ],
)  # fmt: skip
def test_pick_metric_refuses_a_metric_the_task_cannot_be_judged_by(metric: str, task: str, message: str) -> None:
    with pytest.raises(BadInput) as err:
        pick_metric(metric, task)
    assert str(err.value) == message


def test_pick_metric_names_its_owner_and_gives_the_direction() -> None:
    assert pick_metric("r2", "regression") == ("r2", True)
    assert pick_metric("mae", "regression") == ("mae", False)
    assert pick_metric("f1_macro", "classification") == ("f1_macro", True)
    with pytest.raises(BadInput, match=r"^The 'metric' parameter of compare must be one of loss for reconstruction"):
        pick_metric("r2", "reconstruction", owner="compare")


def test_get_metric_suggests_the_closest_name() -> None:
    assert get_metric("rmse").higher_is_better is False
    with pytest.raises(BadInput, match=r"'metric' parameter of compare must be one of .* Did you mean 'accuracy'\?"):
        get_metric("acuracy", owner="compare")


def test_r2_is_zero_when_the_targets_have_no_spread() -> None:
    constant = np.full((6, 1), 3.0)
    perfect = task_metrics("regression", constant.copy(), constant)
    assert perfect == {"rmse": 0.0, "mae": 0.0, "r2": 0.0}  # scikit-learn would give 1.0 here
    off = task_metrics("regression", constant + 1.0, constant)
    assert off["r2"] == 0.0 and off["rmse"] == pytest.approx(1.0)
    # two targets, one constant: the constant one counts 0.0 in the mean, the other its usual r2
    y = np.column_stack([np.arange(6.0), np.full(6, 2.0)])
    yhat = np.column_stack([np.arange(6.0) + 0.5, np.full(6, 2.0)])
    r2_first = 1 - (6 * 0.25) / float(((np.arange(6.0) - 2.5) ** 2).sum())
    assert task_metrics("regression", yhat, y)["r2"] == pytest.approx(r2_first / 2)


def test_the_tune_metric_literal_matches_the_registry() -> None:
    assert typing.get_args(Metric) == ("auto", *METRICS)
    assert TuneConfig(metric="f1_macro").metric == "f1_macro"
    with pytest.raises(ValueError, match="metric"):
        TuneConfig(metric="auc")
