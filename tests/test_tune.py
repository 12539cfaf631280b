"""`tune` end to end, in-process on iris (tiny trials): outputs, held-out test split, pruning, divergence,
graceful stop + resume, heartbeats, the shared budget (T52, T53)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

import tunesmith.tuning.objective as objective_module
import tunesmith.tuning.worker as worker_module
from tunesmith.data import load_data
from tunesmith.errors import BadInput
from tunesmith.fitting import fit
from tunesmith.prediction import load_run, predict
from tunesmith.recipe import make_recipe
from tunesmith.runsetup import RunSetup
from tunesmith.tuning.storage import JOURNAL, open_storage
from tunesmith.tuning.study import tune
from tunesmith.tuning.worker import load_meta, prechecks_study

# one split per trial and the network delivered: these tests are about the study's mechanics (noise-aware scoring:
# test_tune_noise.py; the final choice between the network and the linear model: test_tune_final.py)
FAST = {
    "tune.epochs": 4,
    "tune.refit_folds": 2,
    "train.early_stopping.patience": None,
    "tune.folds": 1,
    "tune.final": "network",
}
TINY = {"tune.epochs": 2}  # where only the study's bookkeeping is under test


def small(out: Path, **kwargs: Any) -> Any:
    overrides = {**FAST, **kwargs.pop("overrides", {})}
    kwargs.setdefault("data", "iris")
    return tune(out=out, overrides=overrides, progress=False, **kwargs)


def stage_trials(run_dir: Path, stage: str) -> list[optuna.trial.FrozenTrial]:
    store = open_storage(str(run_dir / JOURNAL), run_dir=None, workers=1, cfg=load_recipe_tune())
    return optuna.load_study(study_name=f"{run_dir.name}.{stage}", storage=store).get_trials()


def spy(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, read: Callable[[Any], Any]) -> list[Any]:
    """Wrap `module.name` (a function whose first argument is a RunSetup): each call appends read(its recipe)."""
    seen: list[Any] = []
    real = getattr(module, name)

    def wrapper(setup: RunSetup, *args: Any, **kwargs: Any) -> Any:
        seen.append(read(setup.recipe))
        return real(setup, *args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return seen


def load_recipe_tune() -> Any:
    from tunesmith.tuneconfig import TuneConfig

    return TuneConfig.model_validate({})


@pytest.mark.slow
def test_staged_tune_writes_the_contract(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = small(out, trials=3)
    assert result.complete
    table = pd.read_csv(out / "trials.csv")
    assert list(table.columns[:5]) == ["number", "state", "value", "seconds", "stage"]
    assert all(c.startswith("params_") for c in table.columns[5:]) and "params_model.width" in table.columns
    assert table["number"].tolist() == [0, 1, 2] and table["stage"].tolist() == ["capacity", "lr", "regularization"]
    tuning = json.loads((out / "tuning.json").read_text())
    assert tuning["direction"] == "maximize" and tuning["metric"] == "accuracy" and tuning["strategy"] == "staged"
    assert set(tuning["space"]["train.lr"]) == {"type", "low", "high", "log", "choices"}
    assert [s["name"] for s in tuning["stages"]] == ["capacity", "lr", "regularization"]
    for stage in tuning["stages"]:
        assert {"name", "trials", "best", "decision", "evidence"} <= set(stage)
        assert "divergent_share" in stage["evidence"] and "boundary" in stage["evidence"]
    assert tuning["prechecks"]["overfit_batch"]["passed"]  # T40: an MLP memorizes 64 iris rows
    assert {"suggestion", "agree"} <= set(tuning["prechecks"]["lr_find"])  # measured at the lr stage's start
    assert tuning["prechecks"]["batch_size"]["batch_size"] >= 1
    best = tuning["best"]
    assert best["value"] == table["value"].max() and str(best["trial"]) in tuning["curves"]
    assert len(tuning["curves"][str(best["trial"])]) == 4  # the validation metric of every epoch
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"task", "val", "test", "epochs", "seconds", "seed"} <= set(metrics)
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0 and "test_std" in metrics["members"]  # the ensemble's members
    linear = metrics["baselines"]["linear"]  # the refit is a fit: the baselines stand beside it, averaged alike
    assert linear["model"] == "LogisticRegressionCV" and linear["folds"] == 2 and {"val", "test"} <= set(linear)
    recipe = yaml.safe_load((out / "best_recipe.yaml").read_text())
    refit = tuning["refit"]  # 4 epochs, or 8 when the winner was still improving at its 4th ("train longer")
    assert recipe["train"]["epochs"] == refit["epochs"] == (8 if "still improving" in refit["reason"] else 4)
    first = stage_trials(out, "capacity")[0]  # each stage starts from its incumbent: here the recipe's defaults
    fixed = {"model.width": 256, "model.depth": 2, "model.activation": "relu", "model.norm": "batch", "train.lr": 1e-3}
    assert first.system_attrs["fixed_params"] == fixed and first.params == fixed
    rerun = fit(out / "best_recipe.yaml", out=tmp_path / "again", progress=False)  # re-runnable with fit
    assert rerun.metrics["epochs"] <= refit["epochs"]
    again = small(out, resume=True)  # a finished tune is complete: nothing runs again
    assert again.complete and again.metrics == result.metrics


def test_the_lr_prechecks_measure_the_capacity_winner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """T31, T33 after T40: the LR range test and the batch-size finder run once, at the lr stage's start, on the
    model the capacity stage chose (not on the recipe's starting model, width 256, which the space excludes)."""
    measured = spy(monkeypatch, worker_module, "lr_prechecks", lambda recipe: recipe.model.width)
    space = {
        "model.width": {"type": "categorical", "choices": [8, 16]},
        "train.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
    }
    small(tmp_path / "run", trials=4, overrides={**TINY, "tune.space": space})
    tuning = json.loads((tmp_path / "run" / "tuning.json").read_text())
    capacity = tuning["stages"][0]
    assert measured == [capacity["best"]["params"]["model.width"]]  # once, on the winner
    assert "lr_find" in tuning["prechecks"] and "batch_size" in tuning["prechecks"]
    # the LR, a nuisance of the capacity stage, goes with its winner: the lr stage starts from it (or from an
    # agreed range-test suggestion, T31)
    found = tuning["prechecks"]["lr_find"]
    agreed = found["agree"] and 1e-3 <= found["suggestion"] <= 3e-2
    first = stage_trials(tmp_path / "run", "lr")[0]
    assert first.params["train.lr"] == (found["suggestion"] if agreed else capacity["best"]["params"]["train.lr"])


@pytest.mark.slow
def test_two_worker_processes_share_one_measurement_of_the_lr_prechecks(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = small(out, trials=6, workers=2, overrides=TINY)
    assert result.complete
    store = open_storage(str(out / JOURNAL), run_dir=None, workers=1, cfg=load_recipe_tune())
    claims = optuna.load_study(study_name=prechecks_study(out.name), storage=store).get_trials()
    (measured,) = [t for t in claims if t.state != TrialState.PRUNED]  # a claim that lost the race withdrew
    assert measured.state == TrialState.COMPLETE  # measured once, by one of the two
    assert result.tuning["prechecks"]["lr_find"] == measured.user_attrs["result"]["lr_find"]


def test_test_split_is_read_only_by_the_final_evaluation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_reads: list[str]
) -> None:
    events, train_trial = test_reads, objective_module.train_trial

    def counted(*args: Any, **kwargs: Any) -> Any:
        events.append("trial")
        return train_trial(*args, **kwargs)

    monkeypatch.setattr(objective_module, "train_trial", counted)
    result = small(tmp_path / "run", trials=3, strategy="flat")
    assert events.count("trial") == 3 and events.count("test") == 2  # one pass per member of the 2-fold refit
    assert events.index("test") > len(events) - 1 - events[::-1].index("trial")  # first test read after the last trial
    # the final model is the ensemble of the refit members, and it is what predict uses
    members = result.metrics["members"]
    assert members["count"] == 2 and members["kind"] == "folds" and "test_std" in members
    loaded = load_data(result.best_recipe.data, seed=result.best_recipe.train.seed)  # the rows it was scored on
    predicted = predict(tmp_path / "run", loaded.x_test)["prediction"].to_numpy()
    assert np.mean(predicted == loaded.y_test) == pytest.approx(result.metrics["test"]["accuracy"], abs=1e-9)
    assert len(load_run(tmp_path / "run").members) == 2


@pytest.mark.slow
def test_pruning_cuts_bad_trials(tmp_path: Path) -> None:
    space = {"train.lr": {"type": "float", "low": 1e-6, "high": 1e-1, "log": True}}
    overrides = {"tune.space": space, "tune.pruner": "successive_halving", "tune.epochs": 9, "tune.explore": 0.5}
    small(tmp_path / "run", trials=8, strategy="flat", overrides=overrides)
    table = pd.read_csv(tmp_path / "run" / "trials.csv")
    pruned = table[table["state"] == "PRUNED"]
    assert len(pruned) >= 1
    trials = {t.number: t for t in stage_trials(tmp_path / "run", "flat")}
    for number in pruned["number"]:
        assert len(trials[number].intermediate_values) < 9  # cut before its last epoch
    assert table.loc[table["state"] == "COMPLETE", "params_train.lr"].max() > pruned["params_train.lr"].min()


def test_divergent_trials_are_infeasible_and_never_retried(tmp_path: Path) -> None:
    space = {"train.lr": {"type": "categorical", "choices": [1e-2, 1e6]}}
    overrides = {"tune.space": space, "tune.sampler": "grid", "train.optimizer": "sgd"}
    small(tmp_path / "run", trials=5, strategy="flat", overrides=overrides)
    table = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert len(table) == 2  # a grid of 2 points: no retries, no more trials
    assert set(table["state"]) == {"COMPLETE", "DIVERGED"}
    diverged = next(t for t in stage_trials(tmp_path / "run", "flat") if "diverged" in t.user_attrs)
    assert diverged.params["train.lr"] == 1e6 and diverged.constraints == {"diverged": 1.0}
    assert "diverged" in diverged.user_attrs["diverged"]["reason"]
    tuning = json.loads((tmp_path / "run" / "tuning.json").read_text())
    assert tuning["stages"][0]["evidence"]["divergent_share"] == 0.5
    assert tuning["best"]["params"] == {"train.lr": 1e-2}


def test_a_point_drawn_again_reuses_its_result_and_trains_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = spy(monkeypatch, objective_module, "train_trial", lambda recipe: recipe.model.activation)
    space = {"model.activation": {"type": "categorical", "choices": ["relu", "tanh"]}}
    overrides = {**TINY, "tune.space": space, "tune.sampler": "random", "tune.explore": 0.0}
    result = small(tmp_path / "run", trials=5, strategy="flat", overrides=overrides)
    assert sorted(trained) == sorted(set(trained))  # each point trained once: 5 draws of 2 points repeat
    trials = stage_trials(tmp_path / "run", "flat")
    repeats = [t for t in trials if "repeat_of" in t.user_attrs]
    assert len(repeats) == 5 - len(trained)
    for t in repeats:
        twin = trials[t.user_attrs["repeat_of"]]
        assert t.params == twin.params and t.value == twin.value and t.intermediate_values == twin.intermediate_values
        assert t.user_attrs["seconds"] == 0.0 and t.user_attrs["overrides"] == twin.user_attrs["overrides"]
    assert (result.trials["seconds"] == 0.0).sum() == len(repeats)


@pytest.mark.slow
def test_ctrl_c_then_resume_equals_an_uninterrupted_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = {"tune.pruner": "successive_halving", "tune.explore": 0.34}
    whole = small(tmp_path / "whole", trials=6, strategy="flat", overrides=overrides)
    one_trial = worker_module._one_trial
    calls = {"n": 0}

    def interrupt_after_three(*args: Any) -> None:
        one_trial(*args)
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C: the current trial is done, then stop

    monkeypatch.setattr(worker_module, "_one_trial", interrupt_after_three)
    stopped = small(tmp_path / "parts", trials=6, strategy="flat", overrides=overrides)
    assert not stopped.complete and len(stopped.trials) == 3
    monkeypatch.setattr(worker_module, "_one_trial", one_trial)
    resumed = tune(out=tmp_path / "parts", resume=True, progress=False)  # the study knows its recipe
    assert resumed.complete
    cols = [c for c in whole.trials.columns if c != "seconds"]
    pd.testing.assert_frame_equal(whole.trials[cols], resumed.trials[cols])  # same suggestions, same pruning


def test_a_trial_failed_by_a_heartbeat_check_does_not_crash_its_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = objective_module.ReportEpochs.on_epoch_end
    done = {"failed": False}

    def judged_stale(self: Any, trainer: Any, row: dict[str, float]) -> None:
        if not done["failed"]:  # another worker's heartbeat check fails this live trial
            done["failed"] = True
            self.trial.study._storage.set_trial_state_values(self.trial._trial_id, TrialState.FAIL)
        report(self, trainer, row)

    monkeypatch.setattr(objective_module.ReportEpochs, "on_epoch_end", judged_stale)
    result = small(tmp_path / "run", trials=2, strategy="flat", overrides=TINY)
    assert result.complete
    trials = stage_trials(tmp_path / "run", "flat")
    assert trials[0].state == TrialState.FAIL
    copy = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(copy) == 1 and copy[0].state == TrialState.COMPLETE and copy[0].params == trials[0].params
    assert sum("failed_trial" not in t.system_attrs for t in trials) == 2  # the budget holds


def test_joining_a_finished_study_runs_nothing(tmp_path: Path) -> None:
    storage = str(tmp_path / "shared.journal")
    small(tmp_path / "a", trials=2, strategy="flat", storage=storage, study="s1", overrides=TINY)
    result = small(tmp_path / "b", trials=2, strategy="flat", storage=storage, study="s1", overrides=TINY)
    assert len(result.trials) == 2  # the budget belongs to the study: b ran no trial
    meta = load_meta(open_storage(storage, run_dir=None, workers=1, cfg=load_recipe_tune()), "s1")
    assert meta is not None and meta.stages[0].trials == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trials": 0}, r"'trials' parameter of tune must be an int >= 1.*Got 0"),
        ({"workers": 0}, r"'workers' parameter of tune"),
        ({"overrides": {"tune.space": {}}}, "search space .* is empty"),
        (
            {"overrides": {"tune.space": {"model.widht": {"type": "int", "low": 8, "high": 64}}}},
            "Did you mean 'model.width'",
        ),
        ({"overrides": {"tune.sampler": "tpee"}}, "Did you mean 'tpe'"),
        ({"storage": "sqlite:///x.db", "workers": 2}, "SQLite, which is not safe for 2 parallel workers"),
        ({"storage": "mysql://u@h/db"}, "--storage must be"),
    ],
)
def test_bad_input(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        small(tmp_path / "run", strategy="flat", **kwargs)
    assert not (tmp_path / "run").exists()  # bad input leaves nothing behind


def test_study_name_clash(tmp_path: Path) -> None:
    storage = str(tmp_path / "shared.journal")
    small(tmp_path / "a", trials=1, strategy="flat", storage=storage, study="s1", overrides=TINY)
    other = {**TINY, "tune.space": {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}}
    with pytest.raises(BadInput, match=r"already exists with a different search space .*train\.lr"):
        small(tmp_path / "b", trials=1, strategy="flat", storage=storage, study="s1", overrides=other)


def test_timeout_ends_the_running_trial_and_closes_the_stages(tmp_path: Path) -> None:
    """--timeout: past its deadline a trial stops after the pruner's warm-up, and no further trial starts;
    the one scored trial is still refit and tested."""
    result = small(tmp_path / "run", trials=5, strategy="flat", timeout=0.01, overrides={"tune.epochs": 8})
    assert result.complete and len(result.trials) == 1
    (trial,) = stage_trials(tmp_path / "run", "flat")
    assert trial.user_attrs["truncated"] == 2 and len(trial.intermediate_values) == 2  # 8 // 4 epochs
    assert "test" in result.metrics


@pytest.mark.slow
def test_a_user_module_is_tuned_in_this_process_and_never_trained_in_place(tmp_path: Path) -> None:
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    out = tmp_path / "user"
    result = small(out, trials=2, model=net)
    assert result.complete and 0.0 <= result.metrics["test"]["accuracy"] <= 1.0
    tuning = json.loads((out / "tuning.json").read_text())
    assert [s["name"] for s in tuning["stages"]] == ["lr", "regularization"]  # the architecture is the user's
    assert not any(key.startswith("model.") for key in tuning["space"])  # dropout layers included
    assert isinstance(result.model, nn.Sequential) and result.model[2].p == 0.2
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # trials, prechecks, refit: copies
    with pytest.raises(BadInput, match=r"cannot receive a live nn\.Module"):
        small(tmp_path / "two", trials=2, model=net, workers=2)
    store = open_storage(str(out / JOURNAL), run_dir=None, workers=1, cfg=load_recipe_tune())
    with pytest.raises(BadInput, match="only that process can run its trials"):
        worker_module.run_worker(store, out.name)  # `tunesmith worker` cannot join: it has no model object


def test_joining_a_study_with_another_model_object_is_refused(tmp_path: Path) -> None:
    from torch import nn

    from tunesmith.tuning.study import create_study

    journal = tmp_path / "shared.journal"
    overrides = {**FAST, **TINY, "tune.trials": 3}
    store = open_storage(str(journal), run_dir=None, workers=1, cfg=load_recipe_tune())
    create_study(store, "s", RunSetup.build(make_recipe(data="iris", overrides=overrides)))  # no model object
    net = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(BadInput, match=r"created for the recipe's model.*Pass the same model="):
        tune(data="iris", overrides=overrides, storage=str(journal), study="s", out=tmp_path / "o", model=net)
