"""What a tune leaves in its run directory (design.md), and the one look at the test split.

    best_recipe.yaml  the best trial's recipe with the refit's epochs: `tunesmith fit best_recipe.yaml
                      --cv K --ensemble` reruns the refit
    trials.csv        number, state, value, seconds, stage, params_<dotted.key>...
    tuning.json       direction, metric, strategy, space, stages (trials, best, decision, evidence),
                      best, curves (validation metric per epoch of the best trials), refit (epochs, why)
    recipe.yaml, model.pt, preprocess.json, env.json, fold-K/   the final refit (tunesmith fit), an ensemble
    metrics.json      the final refit's metrics: the ensemble's test (and out-of-fold val) scores, its
                      members' mean +/- std, and the tuning summary
    report.html       written by tunesmith.report from all of the above (after metrics.json)

Trial numbers are global: stage after stage, each stage's trials in Optuna's order (surplus
trials, dropped before they ran, are left out). DIVERGED in trials.csv marks an infeasible trial
(TrainingDiverged or an invalid recipe): its Optuna value is a placeholder, so the column is empty.

The final step (T53) refits the best recipe with `tune.refit_folds`-fold cross-validation over
the development rows (train + val pooled and re-split), and the final model is the ensemble of the
refit models (`data.ensemble`, tunesmith.ensemble): their averaged probabilities or target-unit
outputs, scored once on the held-out test split beside its members' mean +/- std; its validation
score is out-of-fold. Time-ordered data get K seeds trained on all of train + val instead (their
early expanding-window folds are too short to stand for the final model). Nothing before this
step reads the test rows.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from tunesmith.fitting import FitResult, fit
from tunesmith.recipe import Recipe
from tunesmith.run import write_json
from tunesmith.runsetup import SetupCache
from tunesmith.tuning.once import done_once
from tunesmith.tuning.playbook import Outcome, rank_key, refit_epochs
from tunesmith.tuning.worker import Meta, prechecks_study, stage_outcomes, stage_study

__all__ = ["Trials", "collect", "refit", "stage_seconds", "tuning_json", "write_outputs"]

log = logging.getLogger("tunesmith.tuning")

CURVES = 5  # tuning.json keeps the validation curves of this many best trials


class Trials:
    """Every trial of the study, numbered globally, with its stage."""

    def __init__(self, storage: BaseStorage, name: str, meta: Meta) -> None:
        self.meta = meta
        self.epoch_cap: int | None = None  # the refit's epochs allowed by the time left (--timeout)
        self.final: tuple[Recipe, dict[str, Any]] | None = None  # final.choose_final: the refit's recipe, and why
        self.rows: list[tuple[int, str, FrozenTrial]] = []  # (global number, stage, trial)
        for stage in meta.stages:
            for trial in stage_study(storage, name, stage, meta).get_trials(deepcopy=False):
                if not trial.user_attrs.get("surplus"):
                    self.rows.append((len(self.rows), stage.name, trial))
        number = {(stage, t.number): n for n, stage, t in self.rows}
        self.prechecks = {**meta.prechecks, **(done_once(storage, prechecks_study(name)) or {})}
        self.outcomes = stage_outcomes(storage, name, meta, label=lambda stage, t: number[(stage, t.number)])

    def feasible(self) -> list[tuple[int, str, FrozenTrial]]:
        ranked = [r for r in self.rows if r[2].state == TrialState.COMPLETE and "diverged" not in r[2].user_attrs]
        return sorted(ranked, key=lambda r: rank_key(r[2], maximize=self.meta.maximize))

    def best(self) -> tuple[int, str, FrozenTrial] | None:
        ranked = self.feasible()
        return ranked[0] if ranked else None

    def best_recipe(self) -> Recipe | None:
        """What the final model is trained with: the final choice's recipe once made, else the best trial's
        recipe with the refit's epochs."""
        if self.final is not None:
            return self.final[0]
        return self.network_recipe()

    def network_recipe(self) -> Recipe | None:
        """The best trial's recipe with the refit's epochs."""
        best = self.best()
        if best is None:
            return None
        epochs, _ = refit_epochs(best[2], maximize=self.meta.maximize, most=self.epoch_cap)
        return self.meta.recipe.with_overrides({**best[2].user_attrs["overrides"], "train.epochs": epochs})


def collect(storage: BaseStorage, name: str, meta: Meta) -> Trials:
    return Trials(storage, name, meta)


def _state(trial: FrozenTrial) -> str:
    return "DIVERGED" if "diverged" in trial.user_attrs else trial.state.name


def write_trials_csv(path: Path, trials: Trials) -> None:
    keys = list(dict.fromkeys([*trials.meta.space, *(k for _, _, t in trials.rows for k in t.params)]))
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["number", "state", "value", "seconds", "stage", *(f"params_{k}" for k in keys)])
        for number, stage, t in trials.rows:
            value = "" if t.value is None or "diverged" in t.user_attrs else t.value
            seconds = t.user_attrs.get("seconds", "")
            out.writerow([number, _state(t), value, seconds, stage, *(t.params.get(k, "") for k in keys)])


def tuning_json(trials: Trials) -> dict[str, Any]:
    meta = trials.meta
    best = trials.best()
    plan = None if best is None else refit_epochs(best[2], maximize=meta.maximize, most=trials.epoch_cap)
    final = None if trials.final is None else trials.final[1]
    if final is not None and final["chosen"] == "linear":
        plan = (1, "the linear model is solved exactly (train.solver=exact): one step, no epochs to choose")
    curves = {str(n): [v for _, v in sorted(t.intermediate_values.items())] for n, _, t in trials.feasible()[:CURVES]}
    return {
        "direction": "maximize" if meta.maximize else "minimize",
        "metric": meta.metric,
        "strategy": meta.recipe.tune.strategy,
        "space": meta.space,
        "prechecks": trials.prechecks,
        "stages": [_stage_json(trials, o) for o in trials.outcomes],
        "best": None
        if best is None
        else {
            "trial": best[0],
            "value": best[2].value,
            "params": {k: v for k, v in best[2].user_attrs["overrides"].items() if k in meta.space},
        },
        "curves": curves,
        "final": final,
        "refit": None if plan is None else {"epochs": plan[0], "reason": plan[1]},
    }


def _stage_json(trials: Trials, outcome: Outcome) -> dict[str, Any]:
    numbers = [n for n, s, _ in trials.rows if s == outcome.name]
    best = outcome.best
    return {
        "name": outcome.name,
        "trials": numbers,
        "seconds": stage_seconds([t for _, s, t in trials.rows if s == outcome.name]),
        "best": None if best is None else {"value": best.value, "params": outcome.params},
        "decision": outcome.decision,
        "evidence": outcome.evidence,
    }


def stage_seconds(trials: list[FrozenTrial]) -> float:
    """Wall-clock seconds a stage took: its first trial's start to its last trial's end."""
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    return round((max(ends) - min(starts)).total_seconds(), 3) if starts and ends else 0.0


def refit(recipe: Recipe, run_dir: Path, *, folds: int, progress: bool, setups: SetupCache) -> FitResult:
    """T53's last steps: k-fold refit of the best recipe (on copies of the user's model `setups` hold),
    whose members' ensemble is the final model, then the one evaluation on the test split."""
    final = run_dir / "final"
    refit_recipe = recipe.with_overrides({"data.cv": folds, "data.ensemble": True})
    log.info("  the final model: the ensemble of the %d refit models (their predictions averaged)", folds)
    result = fit(
        refit_recipe,
        out=final,
        progress=progress,
        report=False,
        model=setups.user_model,
        embeddings=setups.embeddings,
    )
    for entry in sorted(final.iterdir()):  # the run directory holds the final model, as a fit's does
        if entry.name != "metrics.json":
            entry.rename(run_dir / entry.name)
    (final / "metrics.json").unlink()  # the caller writes metrics.json, last, with the tuning summary
    final.rmdir()
    return result


def write_outputs(run_dir: Path, trials: Trials) -> dict[str, Any]:
    """best_recipe.yaml, trials.csv and tuning.json (also after an interrupted search: what is known so far)."""
    recipe = trials.best_recipe()
    if recipe is not None:
        (run_dir / "best_recipe.yaml").write_text(recipe.to_yaml())
    write_trials_csv(run_dir / "trials.csv", trials)
    tuning = tuning_json(trials)
    write_json(run_dir / "tuning.json", _finite(tuning))
    return tuning


def _finite(obj: Any) -> Any:
    """JSON has no inf/nan: write them as null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
