"""Noise-aware scoring (issue 14, scope 2): a small or noisy validation split turns each trial into k folds,
the recorded standard error is the spread of those folds' scores, and a stage changes only beyond it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.test_tune import TINY, small, stage_trials
from tests.test_tune_space import _trial
from tunesmith.recipe import make_recipe
from tunesmith.runsetup import RunSetup
from tunesmith.tuneconfig import ParamSpec, TuneConfig
from tunesmith.tuning.playbook import Criteria, decide, plan_stages
from tunesmith.tuning.prechecks import CV_FOLDS, LARGE_VAL, SMALL_VAL, measure_noise


def test_a_small_validation_split_turns_on_fold_scoring() -> None:
    setup = RunSetup.build(make_recipe(data="iris"))  # 150 rows: a validation split of a couple of dozen
    noise = measure_noise(setup, metric="accuracy", maximize=True, epochs=2)
    assert noise["val_rows"] == len(setup.prep.x_val) < SMALL_VAL and noise["repeats"] == CV_FOLDS
    assert len(noise["seed_scores"]) == 3 and noise["spread"] == pytest.approx(
        np.std(noise["seed_scores"], ddof=1), abs=1e-6
    )
    assert f"{CV_FOLDS}-fold cross-validation" in noise["why"]


def test_a_large_validation_split_is_trusted_without_measuring(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16_000, 4)).astype(np.float32)
    np.savez(tmp_path / "big.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    setup = RunSetup.build(make_recipe(data=str(tmp_path / "big.npz")))
    noise = measure_noise(setup, metric="accuracy", maximize=True, epochs=2)
    assert noise["val_rows"] >= LARGE_VAL and noise["repeats"] == 1 and "seed_scores" not in noise


def test_a_trials_score_is_its_folds_mean_and_its_standard_error_their_spread(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = small(out, trials=2, strategy="flat", overrides={**TINY, "tune.folds": 3})
    for trial in stage_trials(out, "flat"):
        folds = trial.user_attrs["fold_values"]
        assert len(folds) == 3 and trial.value == pytest.approx(np.mean(folds))
        assert trial.user_attrs["se"] == pytest.approx(np.std(folds, ddof=1) / math.sqrt(3))
    tuning = json.loads((out / "tuning.json").read_text())
    assert "noise" not in tuning["prechecks"]  # tune.folds given: nothing to measure
    assert result.complete


def test_within_one_standard_error_a_stage_keeps_its_incumbent() -> None:
    space = {"train.lr": ParamSpec(type="float", low=1e-4, high=1e-1, log=True)}
    stage = plan_stages({"model.dropout": ParamSpec(type="float", low=0, high=0.5), **space}, TuneConfig(), trials=4)
    lr = next(s for s in stage if s.name == "lr")
    trials = [_trial(i, v, {"train.lr": p}) for i, (v, p) in enumerate([(0.80, 1e-3), (0.82, 3e-3), (0.70, 1e-2)])]
    judge = Criteria(maximize=True, fit_below=math.inf, epochs=10, repeats=5)
    for t in trials:
        t.user_attrs["se"] = 0.03  # the folds' spread: 0.82 is not clearly better than 0.80
    kept = decide(lr, space, trials, judge)
    assert kept.params == {"train.lr": 1e-3} and "within one standard error (0.03)" in kept.decision
    for t in trials:
        t.user_attrs["se"] = 0.005  # now it is
    moved = decide(lr, space, trials, judge)
    assert moved.params == {"train.lr": 3e-3} and "± 0.005 (one standard error over 5 folds)" in moved.decision
