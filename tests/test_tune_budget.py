"""The budget is the budget (issue 14, scope 1): --timeout is spent on trials, --trials is exact, the refit fits.

The pricing itself (TimeBudget) is checked on numbers; the studies check behaviour only (counts, states),
never seconds: the machine's load moves those.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.test_tune import TINY, small, stage_trials
from tunesmith.tuning.playbook import refit_epochs
from tunesmith.tuning.worker import EXHAUSTED, FOLD_SECONDS, REFIT_SAFETY, SEARCH_SHARE, TimeBudget, epoch_seconds


def test_the_search_ends_where_the_priced_refit_still_fits() -> None:
    budget = TimeBudget(start=1000.0, end=1100.0, refit_folds=5, refit_epochs=20, until_spent=True)
    assert budget.search_end(None) == pytest.approx(1000 + 100 * SEARCH_SHARE)  # nothing measured yet
    refit = 5 * (20 * 0.1 + FOLD_SECONDS) * REFIT_SAFETY  # 5 folds of 20 epochs at 0.1 s, plus each fold's setup
    assert budget.search_end(0.1) == pytest.approx(1100 - budget.finish() - refit)
    assert budget.search_end(10.0) == 1000.0  # a refit dearer than the budget leaves the search nothing
    assert TimeBudget(start=0.0, end=50.0).search_end(None) == 50.0  # a worker's --timeout: no refit follows
    # the final choice retrains the best network (2 seeds x 5 folds): priced like folds of the refit
    checked = TimeBudget(start=1000.0, end=1100.0, refit_folds=5, refit_epochs=20, until_spent=True, check_runs=10)
    assert checked.search_end(0.1) == pytest.approx(1100 - checked.finish() - 3 * refit)


def test_the_epoch_cost_is_a_median_of_trials_that_trained() -> None:
    from optuna.trial import create_trial

    def trial(seconds: float, epochs: int, **attrs: object) -> object:
        return create_trial(value=0.0, user_attrs={"seconds": seconds, "epochs": epochs, **attrs})

    trials = [trial(2.0, 10), trial(9.0, 10), trial(0.5, 10), trial(0.0, 10, repeat_of=0)]
    assert epoch_seconds(trials) == pytest.approx(0.2)  # median of 0.2, 0.9 and 0.05; the repeat trained nothing
    assert epoch_seconds(trials[:2], least=3) is None  # a first trial pays warm-ups: wait for three


def test_the_refit_is_capped_at_the_epochs_the_time_left_allows() -> None:
    from optuna.trial import create_trial

    improving = create_trial(
        value=0.9,
        intermediate_values={e: 0.5 + e / 100 for e in range(1, 11)},
        user_attrs={"overrides": {"train.epochs": 10}},
    )
    assert refit_epochs(improving, maximize=True)[0] == 20
    epochs, why = refit_epochs(improving, maximize=True, most=7)
    assert epochs == 7 and why.endswith("capped at 7 epochs, what the time left by --timeout allows")
    assert refit_epochs(improving, maximize=True, most=50)[0] == 20  # a cap above the plan changes nothing


def test_an_exact_trials_count_holds_under_a_timeout(tmp_path: Path) -> None:
    result = small(tmp_path / "run", trials=4, strategy="flat", timeout=600, overrides=TINY)
    assert result.complete and len(result.trials) == 4
    spent = result.metrics["tuning"]["seconds"]
    assert spent["timeout"] == 600 and set(spent["stages"]) == {"flat"} and spent["total"] > spent["refit"] > 0


@pytest.mark.slow
def test_a_timeout_without_trials_is_spent_on_more_trials(tmp_path: Path) -> None:
    """Cheap trials (iris, 2 epochs): the stage keeps sampling until its time is spent, so more time, more trials."""
    counts = {}
    for timeout in (6.0, 18.0):
        # one torch thread: two threads stall each other's steps when other work shares the cores
        overrides = {**TINY, "train.threads": 1}
        result = small(tmp_path / f"t{timeout:.0f}", strategy="flat", timeout=timeout, overrides=overrides)
        assert result.complete
        counts[timeout] = len(result.trials)
    assert counts[18.0] > 1.5 * counts[6.0] and counts[6.0] >= 5, counts


def test_a_time_bound_stage_ends_when_its_space_is_exhausted(tmp_path: Path) -> None:
    """Two points to try and minutes to spend: the stage stops once the sampler only redraws tried points."""
    space = {"model.width": {"type": "categorical", "choices": [8, 16]}}
    out = tmp_path / "run"
    result = small(out, strategy="flat", timeout=600, overrides={**TINY, "tune.space": space})
    trials = stage_trials(out, "flat")
    trained = [t for t in trials if "repeat_of" not in t.user_attrs and t.state == TrialState.COMPLETE]
    assert result.complete and len(trained) == 2
    assert all("repeat_of" in t.user_attrs for t in trials[-EXHAUSTED:])
    assert len(trials) == len(trained) + EXHAUSTED  # ended by the repeats, not by its (ten-minute) share of time


def test_edges_widen_within_sane_bounds() -> None:
    from tunesmith.tuneconfig import ParamSpec
    from tunesmith.tuning.playbook import widen, widened_space

    space = {
        "train.lr": ParamSpec(type="float", low=1e-4, high=3e-2, log=True),
        "model.depth": ParamSpec(type="int", low=1, high=4),
        "model.width": ParamSpec(type="categorical", choices=[64, 128]),  # choices stay: Optuna fixes them
        "model.dropout": ParamSpec(type="float", low=0.0, high=0.8),
        "train.batch_size": ParamSpec(type="categorical", choices=[16, 32]),
    }
    hits = [
        {"key": "train.lr", "value": 0.029, "edge": "upper"},
        {"key": "model.depth", "value": 4, "edge": "upper"},
        {"key": "model.width", "value": 64, "edge": "lower"},
        {"key": "model.dropout", "value": 0.79, "edge": "upper"},  # already at its sane bound: stays
        {"key": "train.batch_size", "value": 32, "edge": "upper"},  # the batch-size finder's to cap: never widened
    ]
    record = widen(space, hits)
    assert set(record) == {"train.lr", "model.depth"}
    grown = widened_space(space, record)
    assert (grown["train.lr"].low, grown["train.lr"].high) == (1e-4, 0.3)  # 10x past the upper edge
    assert (grown["model.depth"].low, grown["model.depth"].high) == (1, 6)  # half the width, rounded
    lr = widen({"train.lr": ParamSpec(type="float", low=1e-3, high=0.5, log=True)}, hits[:1])
    assert lr["train.lr"]["to"]["high"] == 1.0  # capped at the sane bound


def test_a_winner_at_an_edge_widens_its_range_once_and_the_record_shows_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    space = {"model.depth": {"type": "int", "low": 2, "high": 3}}  # either best is at an edge with room to grow
    result = small(out, trials=5, strategy="flat", overrides={**TINY, "tune.space": space})
    stage = json.loads((out / "tuning.json").read_text())["stages"][0]
    ((key, record),) = stage["evidence"]["widened"].items()
    assert key == "model.depth" and record["after"] == 3  # after ceil(0.7 x 5) = 4 finished trials (0..3)
    grown = (record["to"]["low"], record["to"]["high"])
    assert grown == ((1, 3) if record["edge"] == "lower" else (2, 4))
    assert f"model.depth widened at its {record['edge']} edge to [{grown[0]}, {grown[1]}]" in stage["decision"]
    trials = stage_trials(out, "flat")
    assert all(t.params["model.depth"] in (2, 3) for t in trials[:4])
    depth = trials[4].distributions["model.depth"]
    assert (depth.low, depth.high) == grown  # the last trial sampled the widened range
    assert result.complete
