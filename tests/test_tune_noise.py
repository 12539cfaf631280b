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


def test_on_a_noisy_split_validation_picks_the_capacity_winner_when_nothing_memorizes() -> None:
    space = {"model.depth": ParamSpec(type="int", low=0, high=4)}
    (capacity,) = plan_stages(space, TuneConfig(), trials=3)
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState, create_trial

    trials = []  # regression scored by rmse (lower is better); none gets near the chance bar's training loss
    for number, (rmse, depth, train_loss, size) in enumerate(
        [(55.0, 0, 0.50, 11), (54.2, 3, 0.30, 90_000), (58.0, 4, 0.20, 150_000)]
    ):
        trial = create_trial(
            state=TrialState.COMPLETE,
            value=rmse,
            params={"model.depth": depth},
            distributions={"model.depth": IntDistribution(0, 4)},
            user_attrs={"train_loss": train_loss, "n_params": size, "se": 1.5, "val_loss": rmse / 100},
        )
        trial.number = number
        trials.append(trial)
    one_split = decide(capacity, space, trials, Criteria(maximize=False, fit_below=0.1, epochs=10))
    assert one_split.params == {"model.depth": 4}  # one split: the closest to fitting, as before
    noisy = decide(capacity, space, trials, Criteria(maximize=False, fit_below=0.1, epochs=10, repeats=5))
    assert noisy.params == {"model.depth": 0} and "validation decides among all" in noisy.decision
    assert "the data look linear" in noisy.decision and "widen the capacity space" in noisy.decision
